"""The Windows and macOS installer recipes and the CI workflow that runs them.

They cannot run here (no Windows, no macOS): these tests check what can be checked on
Linux. The workflow is validated against GitHub's workflow schema; the shell recipe is
linted by shellcheck; the macOS Info.plist and the finishing step run for real on a
bundle laid out as PyInstaller's BUNDLE lays it out, with a build_info.json written by
the real packaging step; the macOS spec is executed over the shared spec with recording
stand-ins for PyInstaller's build targets (BUNDLE is a no-op off macOS); the Inno Setup
script and build.ps1 are checked to agree with each other and with the shared spec.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import yaml

from app import __version__
from app import build_info as bi

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "installers.yml"
MACOS = REPO / "packaging" / "macos"
WINDOWS = REPO / "packaging" / "windows"
PY = sys.executable  # tests below monkeypatch sys.executable to a frozen app's
BIN = Path(PY).parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


app_bundle = _load(MACOS / "app_bundle.py")


# ----------------------------------------------------------------------------- workflow

def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = BIN / "check-jsonschema"
    return subprocess.run([str(tool), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_workflow_is_a_valid_github_workflow(tmp_path: Path) -> None:
    done = _check_jsonschema(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    # The validator does reject a broken workflow (a job without runs-on).
    broken = _workflow()
    del broken["jobs"]["installer"]["runs-on"]
    bad = tmp_path / "broken.yml"
    bad.write_text(yaml.safe_dump({("on" if k is True else k): v for k, v in broken.items()}))
    assert _check_jsonschema(bad).returncode != 0


def test_workflow_matrix_covers_the_three_systems() -> None:
    data = _workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    job = data["jobs"]["installer"]
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["strategy"]["fail-fast"] is False
    include = job["strategy"]["matrix"]["include"]
    assert {row["os"] for row in include} == {"ubuntu-22.04", "windows-2022", "macos-14"}
    assert {row["label"] for row in include} == {"linux", "windows", "macos"}
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert job["timeout-minutes"] <= 90


def test_workflow_runs_each_systems_recipe_and_uploads_installer_and_sbom() -> None:
    job = _workflow()["jobs"]["installer"]
    runs = {step["if"]: step["run"] for step in job["steps"] if "run" in step and "if" in step}
    assert runs["runner.os == 'Linux'"].endswith(" make package-test")
    assert re.search(r"^package-test:", (REPO / "Makefile").read_text(), re.M)
    assert "./packaging/windows/build.ps1" in runs["runner.os == 'Windows'"]
    assert (WINDOWS / "build.ps1").is_file()
    assert runs["runner.os == 'macOS'"] == "./packaging/macos/build.sh"
    assert os.access(MACOS / "build.sh", os.X_OK)
    # Windows renders through Mesa: the runner's own driver has no OpenGL 3.2 for VTK.
    gl = [s for s in job["steps"] if "setup-headless-display-action" in s.get("uses", "")]
    assert gl and gl[0]["if"] == "runner.os == 'Windows'"

    upload = next(s for s in job["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact@")
                  and s["with"]["name"].startswith("lucida-"))
    assert upload["with"]["path"] == "${{ matrix.artifacts }}"
    assert upload["with"]["if-no-files-found"] == "error"
    installers = {"linux": ["lucida_0.1.0_amd64.deb", "lucida-0.1.0-linux-x86_64.tar.xz"],
                  "windows": [_windows_setup_name("0.1.0")],
                  "macos": [_macos_dmg_name("0.1.0", "arm64")]}
    for row in job["strategy"]["matrix"]["include"]:
        globs = row["artifacts"].split()
        # The SBOM where the packaging step writes it, under the name the app looks for.
        assert f"dist/lucida/{bi.SBOM_FILE}" in globs and f"dist/lucida/{bi.NOTICES_FILE}" in globs
        for name in installers[row["label"]]:
            assert any(fnmatch.fnmatch(f"dist/{name}", g) for g in globs), (row["label"], name)


def test_sbom_and_notices_names_agree_with_the_packaging_step() -> None:
    tail = (REPO / "packaging" / "linux" / "build_bundle.sh").read_text()
    assert f'--out "$DIST/{bi.SBOM_FILE}"' in tail
    assert f'--notices "$DIST/{bi.NOTICES_FILE}"' in tail
    assert f'"$DIST/_internal/{bi.BUILD_INFO_FILE}"' in tail


def test_every_recipe_runs_the_linux_packaging_tail() -> None:
    """Each step of build_bundle.sh after PyInstaller (build_info, SBOM, README) is in the
    Windows and macOS recipes too, so all three installers carry the same files."""
    tail = (REPO / "packaging" / "linux" / "build_bundle.sh").read_text()
    steps = set(re.findall(r"packaging/bundle/\w+\.py", tail)) | {"packaging/linux/README.txt"}
    assert {"packaging/bundle/build_info.py", "packaging/bundle/sbom.py"} <= steps
    mac = (MACOS / "build.sh").read_text()
    win = (WINDOWS / "build.ps1").read_text().replace("\\", "/")
    for step in steps:
        assert step in mac, f"macOS recipe lacks {step}"
        assert step in win, f"Windows recipe lacks {step}"


# ----------------------------------------------------------------------------- icons

def test_icons_are_drawn_from_the_linux_svg(tmp_path: Path) -> None:
    """packaging/icons.py as the recipes run it: a 1024 px PNG with the drawing where the SVG
    puts it, an .ico with the Windows sizes, an .icns Pillow reads back."""
    from PIL import Image

    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # needs no display
    done = subprocess.run([PY, str(REPO / "packaging" / "icons.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "lucida.png") as png:
        rgba = png.convert("RGBA")
        assert rgba.size == (1024, 1024)
        assert rgba.getpixel((4, 4))[3] == 0  # outside the rounded tile: transparent
        assert rgba.getpixel((80, 512))[:3] == (0x1E, 0x21, 0x27)  # the dark tile
        r, _g, b, _ = rgba.getpixel((512, 130))  # the accent-blue crosshair, top arm
        assert b > 200 and r < 120
    with Image.open(tmp_path / "lucida.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(tmp_path / "lucida.icns") as icns:
        assert (512, 512, 2) in icns.info["sizes"]
    for recipe in (MACOS / "build.sh", WINDOWS / "build.ps1"):  # drawn before PyInstaller
        text = recipe.read_text().replace("\\", "/")
        assert "build/icons" in text
        pyinstaller = '"-m", "PyInstaller"' if recipe.suffix == ".ps1" else "-m PyInstaller"
        assert text.index("packaging/icons.py") < text.index(pyinstaller), recipe


# ----------------------------------------------------------------------------- shell recipes

def test_macos_build_script_passes_shellcheck() -> None:
    tool = BIN / "shellcheck"
    done = subprocess.run([str(tool), "--severity=style", str(MACOS / "build.sh")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    # And shellcheck is awake: it flags an unquoted variable.
    probe = subprocess.run([str(tool), "-"], input='#!/bin/bash\nrm -rf $1/x\n',
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "SC2086" in probe.stdout


# ----------------------------------------------------------------------------- macOS

def test_info_plist_declares_dicom_and_the_system_floor() -> None:
    plist = app_bundle.info_plist("0.2.0rc1", "202612052330-abc1234", "13.0")
    again = plistlib.loads(plistlib.dumps(plist))  # serialisable as Info.plist XML
    assert again["CFBundleShortVersionString"] == "0.2.0"
    assert again["CFBundleVersion"] == "202612052330-abc1234"
    assert again["LSMinimumSystemVersion"] == "13.0"
    assert again["NSHighResolutionCapable"] is True
    assert "not for diagnostic use" in again["NSHumanReadableCopyright"]
    declared = again["UTImportedTypeDeclarations"][0]
    assert declared["UTTypeIdentifier"] == "org.nema.dicom"
    assert "public.data" in declared["UTTypeConformsTo"]
    assert declared["UTTypeTagSpecification"]["public.filename-extension"][0] == "dcm"
    assert declared["UTTypeTagSpecification"]["public.mime-type"] == ["application/dicom"]
    types = {ct for doc in again["CFBundleDocumentTypes"] for ct in doc["LSItemContentTypes"]}
    assert types == {"org.nema.dicom", "public.folder"}
    assert all(doc["CFBundleTypeRole"] == "Viewer" and doc["LSHandlerRank"] == "Alternate"
               for doc in again["CFBundleDocumentTypes"])


def test_minimum_macos_is_the_newest_wheel_floor() -> None:
    tags = ["cp311-cp311-macosx_11_0_arm64", "cp311-cp311-macosx_14_0_arm64",
            "py3-none-any", "cp311-cp311-macosx_10_9_universal2"]
    assert app_bundle.minimum_macos(tags) == "14.0"
    assert app_bundle.minimum_macos(["py3-none-any"]) == "12.0"
    # This (Linux) environment's real wheels: tags are read, none is a macOS one.
    real = app_bundle.installed_wheel_tags()
    assert any("manylinux" in t for t in real)
    assert app_bundle.minimum_macos(real) == "12.0"


def test_short_version() -> None:
    assert [app_bundle.short_version(v) for v in ("1.2.3", "0.2.0rc1", "2", "dev", "1.2.3.4")] \
        == ["1.2.3", "0.2.0", "2", "0.0.0", "1.2.3"]


def _pyinstaller_app(root: Path) -> Path:
    """An .app laid out as PyInstaller 6's BUNDLE leaves it (Info.plist with its own keys
    merged with ours, code in Frameworks, data in Resources)."""
    app = root / "Lucida.app"
    for sub in ("MacOS", "Frameworks", "Resources"):
        (app / "Contents" / sub).mkdir(parents=True)
    (app / "Contents/MacOS/lucida").write_bytes(b"\xcf\xfa\xed\xfe")
    base = {"CFBundleExecutable": "lucida", "CFBundleIdentifier": app_bundle.BUNDLE_ID,
            "CFBundlePackageType": "APPL", "CFBundleShortVersionString": __version__}
    base.update(app_bundle.info_plist(__version__, "0", "12.0"))
    (app / "Contents/Info.plist").write_bytes(plistlib.dumps(base))
    return app


def _onefolder(root: Path) -> Path:
    """dist/lucida as packaging/linux/build_bundle.sh finishes it, build_info.json written by
    the real packaging step."""
    dist = root / "dist" / "lucida"
    (dist / "_internal").mkdir(parents=True)
    subprocess.run([PY, str(REPO / "packaging/bundle/build_info.py"),
                    str(dist / "_internal" / bi.BUILD_INFO_FILE)], check=True, cwd=REPO,
                   capture_output=True, timeout=60)
    (dist / bi.SBOM_FILE).write_text('{"bomFormat": "CycloneDX"}')
    (dist / bi.NOTICES_FILE).write_text("notices\n")
    (dist / "README.txt").write_text("RESEARCH USE ONLY\n")
    return dist


def test_finish_puts_build_files_where_the_frozen_app_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, dist = _pyinstaller_app(tmp_path), _onefolder(tmp_path)
    built = json.loads((dist / "_internal" / bi.BUILD_INFO_FILE).read_text())
    done = subprocess.run([PY, str(MACOS / "app_bundle.py"), "finish", str(app),
                           str(dist)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert built["build_id"] in done.stdout

    plist = plistlib.loads((app / "Contents/Info.plist").read_bytes())
    assert plist["CFBundleVersion"] == built["build_id"]
    assert plist["CFBundleShortVersionString"] == __version__
    assert plist["CFBundleExecutable"] == "lucida"  # BUNDLE's own keys kept
    frameworks = app / "Contents" / "Frameworks"
    for name in (bi.BUILD_INFO_FILE, bi.SBOM_FILE, bi.NOTICES_FILE, "README.txt"):
        assert (app / "Contents/Resources" / name).is_file()
        link = frameworks / name
        assert link.is_symlink() and os.readlink(link) == f"../Resources/{name}"

    # The frozen app (sys._MEIPASS is Contents/Frameworks) reads them through the links.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(frameworks), raising=False)
    monkeypatch.setattr(sys, "executable", str(app / "Contents/MacOS/lucida"))
    bi.build_info.cache_clear()
    try:
        info = bi.build_info()
        assert (info.build_id, info.commit) == (built["build_id"], built["commit"])
        docs = bi.shipped_documents()
        assert docs["SBOM (CycloneDX)"] == frameworks / bi.SBOM_FILE
        assert docs["Third-party notices"].read_text() == "notices\n"
    finally:
        bi.build_info.cache_clear()

    # Run twice (a rebuild): links replaced, not an error.
    assert subprocess.run([PY, str(MACOS / "app_bundle.py"), "finish", str(app),
                           str(dist)], capture_output=True, timeout=60).returncode == 0


def test_finish_refuses_an_incomplete_build(tmp_path: Path) -> None:
    app, dist = _pyinstaller_app(tmp_path), _onefolder(tmp_path)
    (dist / bi.SBOM_FILE).unlink()
    done = subprocess.run([PY, str(MACOS / "app_bundle.py"), "finish", str(app),
                           str(dist)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and bi.SBOM_FILE in done.stderr
    shutil.rmtree(app / "Contents" / "Frameworks")
    with pytest.raises(FileNotFoundError, match="BUNDLE"):
        app_bundle.finish(app, dist)


class _Target:
    """Records how the spec calls one of PyInstaller's build targets."""

    made: ClassVar[list[_Target]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.pure: list[Any] = []
        self.binaries: list[Any] = []
        self.datas: list[Any] = []
        self.scripts: list[Any] = []
        _Target.made.append(self)


def test_macos_spec_wraps_the_shared_specs_collect_in_a_bundle(tmp_path: Path) -> None:
    """The macOS spec runs packaging/lucida.spec as if invoked directly (its ROOT is the
    repository) and hands its COLLECT to BUNDLE with our Info.plist."""
    targets = {name: type(name, (_Target,), {}) for name in
               ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    _Target.made = []
    spec = MACOS / "lucida-macos.spec"
    namespace: dict[str, Any] = {"__name__": "__main__", "SPECPATH": str(MACOS),
                                 "workpath": str(tmp_path), **targets}
    exec(compile(spec.read_text(encoding="utf-8"), str(spec), "exec"), namespace)
    kinds = [type(t).__name__ for t in _Target.made]
    assert kinds == ["Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"]
    analysis, exe, collect, bundle = (_Target.made[i] for i in (0, 2, 3, 4))
    assert Path(analysis.args[0][0]) == REPO / "packaging" / "entry.py"
    assert exe.kwargs["name"] == "lucida" and exe.kwargs["exclude_binaries"] is True
    assert bundle.args[0] is collect
    assert bundle.kwargs["name"] == "Lucida.app"
    assert bundle.kwargs["bundle_identifier"] == app_bundle.BUNDLE_ID
    assert bundle.kwargs["icon"] in (None, str(REPO / "build/icons/lucida.icns"))
    plist = bundle.kwargs["info_plist"]
    assert plist["CFBundleDocumentTypes"] and plist["LSMinimumSystemVersion"] == "12.0"
    assert (tmp_path / "collected.json").is_file()  # the shared spec's record for the SBOM


# ----------------------------------------------------------------------------- Windows

def _iss() -> str:
    return (WINDOWS / "lucida.iss").read_text(encoding="utf-8")


def _iss_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";") or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def _windows_setup_name(version: str) -> str:
    setup = dict(line.split("=", 1) for line in _iss_sections(_iss())["Setup"])
    return setup["OutputBaseFilename"].replace("{#AppVersion}", version) + ".exe"


def _macos_dmg_name(version: str, arch: str) -> str:
    match = re.search(r'dmg="dist/([^"]+)"', (MACOS / "build.sh").read_text())
    assert match
    return match.group(1).replace("${version}", version).replace("$(uname -m)", arch)


def test_inno_setup_defines_agree_with_build_ps1() -> None:
    """Every {#Name} the script uses is defined in it or passed by build.ps1 with /DName=,
    and everything build.ps1 passes is used."""
    text = _iss()
    used = set(re.findall(r"\{#(\w+)\}", text))
    defined = set(re.findall(r"^#define\s+(\w+)", text, re.M))
    guarded = set(re.findall(r"^#ifndef\s+(\w+)", text, re.M))
    ps1 = (WINDOWS / "build.ps1").read_text()
    iscc_call = ps1[ps1.index("Invoke-Native $Iscc"):ps1.index("lucida.iss")]
    passed = set(re.findall(r'"/D(\w+)=', iscc_call))
    assert passed == guarded  # each has a default or an #error, and nothing else is passed
    assert used <= defined | passed, used - defined - passed
    assert "#error" in text.split("#ifndef AppVersion", 1)[1].split("#endif", 1)[0]


def test_inno_setup_installs_the_one_folder_build() -> None:
    sections = _iss_sections(_iss())
    setup = dict(line.split("=", 1) for line in sections["Setup"])
    assert setup["DefaultDirName"] == r"{autopf}\Lucida"
    assert setup["Compression"].startswith("lzma2") and setup["SolidCompression"] == "yes"
    assert setup["ChangesAssociations"] == "yes"
    assert setup["ArchitecturesInstallIn64BitMode"] == "x64compatible"
    assert re.fullmatch(r"\{\{[0-9A-F-]{36}\}", setup["AppId"])
    assert "{#BuildId}" in setup["AppVerName"]
    files = sections["Files"]
    assert files == [r'Source: "{#SourceDir}\*"; DestDir: "{app}"; '
                     "Flags: ignoreversion recursesubdirs createallsubdirs",
                     r'Source: "{#IconFile}"; DestDir: "{app}"; DestName: "lucida.ico"; '
                     "Flags: ignoreversion"]
    assert setup["SetupIconFile"] == "{#IconFile}"
    # The executable the shared spec builds (EXE name "lucida").
    assert re.search(r'name="lucida"', (REPO / "packaging" / "lucida.spec").read_text())
    assert '#define AppExe "lucida.exe"' in _iss()
    icons = sections["Icons"]
    assert any(line.startswith(r'Name: "{group}\Lucida";') for line in icons)
    assert any("{uninstallexe}" in line for line in icons)
    assert any(line.startswith(r'Name: "{autodesktop}\Lucida"') and "Tasks: desktopicon" in line
               for line in icons)


def test_inno_setup_dcm_association_is_an_optional_task() -> None:
    sections = _iss_sections(_iss())
    tasks = {re.match(r'Name: "(\w+)"', line).group(1)  # type: ignore[union-attr]
             for line in sections["Tasks"]}
    assert tasks == {"desktopicon", "dcmassoc"}
    assert all("Flags: unchecked" in line for line in sections["Tasks"])
    registry = sections["Registry"]
    assert registry and all(line.endswith("Tasks: dcmassoc") for line in registry)
    assert any(r'Subkey: "Software\Classes\.dcm\OpenWithProgids"' in line for line in registry)
    # Same command line as the Linux desktop entry (Exec=lucida %F): the file as argument.
    command = next(line for line in registry if r"shell\open\command" in line)
    assert '"""{app}\\{#AppExe}"" ""%1"""' in command
    assert "Exec=lucida %F" in (REPO / "packaging/linux/lucida.desktop").read_text()
    # Whatever is registered is removed on uninstall (key or value).
    for line in registry:
        if "DefaultIcon" in line or r"shell\open" in line:
            continue  # below the ProgID key, which uninsdeletekey removes
        assert "uninsdelete" in line, line


def test_build_ps1_installs_checks_and_uninstalls() -> None:
    text = (WINDOWS / "build.ps1").read_text()
    assert "$ErrorActionPreference = \"Stop\"" in text
    assert '".[package]"' in text and '"packaging\\lucida.spec"' in text
    assert "/VERYSILENT" in text and "/TASKS=dcmassoc" in text
    assert '"--smoke-test"' in text and "unins000.exe" in text
    # The installer it looks for is the one the script produces.
    produced = _windows_setup_name("$($Info.version)")
    assert f'"dist\\{produced}"' in text
