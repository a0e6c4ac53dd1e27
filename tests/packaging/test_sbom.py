"""packaging/bundle/sbom.py on a tiny fake bundle and a real (tiny) virtual environment.

cyclonedx-py really scans a fresh venv holding two fake distributions; only the one whose
file the fake PyInstaller run "collected" may stay in the SBOM, the model pack must be
listed with the sha256 of each of its files, and the document must pass the CycloneDX
schema (and a broken one must not).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sbom = pytest.importorskip("sbom", reason="needs the `package` extra (cyclonedx-bom)")

if shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent)) is None:
    pytest.skip("cyclonedx-py is not installed beside this Python (pip install -e '.[package]')",
                allow_module_level=True)


def _fake_dist(site: Path, name: str, version: str, licence: str) -> Path:
    pkg = site / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    info = site / f"{name}-{version}.dist-info"
    (info / "licenses").mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n"
        f"License-Expression: {licence}\nLicense-File: LICENSE\n")
    (info / "licenses" / "LICENSE").write_text(f"The {name} licence text, word for word.\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text(
        f"{name}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/licenses/LICENSE,,\n"
        f"{info.name}/INSTALLER,,\n{info.name}/RECORD,,\n")
    return pkg / "__init__.py"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sbom")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    used = _fake_dist(site, "usedpkg", "1.2.3", "MIT")
    _fake_dist(site, "unusedpkg", "4.5.6", "GPL-3.0-only")
    bundle = root / "bundle"
    pack = bundle / "_internal" / "resources" / "models" / "tiny-pack"
    pack.mkdir(parents=True)
    (pack / "model.onnx").write_bytes(b"not really onnx, but bytes with a hash")
    (pack / "manifest.json").write_text(json.dumps(
        {"id": "tiny-pack", "version": "0.3.0", "name": "Tiny pack", "license": "Apache-2.0"}))
    native = root / "libprivate.so.1"
    native.write_bytes(b"\x7fELF fake")
    collected = root / "collected.json"
    collected.write_text(json.dumps({
        "modules": [str(used)], "datas": [],
        "binaries": [["libprivate.so.1", str(native)]]}))
    pyproject = root / "pyproject.toml"
    pyproject.write_text('[project]\nname = "fakeapp"\nversion = "0.1.0"\n')
    return {"python": python, "site": site, "bundle": bundle, "pack": pack,
            "collected": collected, "pyproject": pyproject, "native": native}


def test_sbom_lists_only_what_the_bundle_holds_and_is_schema_valid(
        fake: dict[str, Path]) -> None:
    bom, dists = sbom.build(fake["collected"], fake["bundle"], str(fake["python"]),
                            fake["pyproject"], search_path=[str(fake["site"])])
    assert set(dists) == {"usedpkg"}
    document = sbom.JsonV1Dot6(bom).output_as_string(indent=1)
    sbom.validate(document)  # raises on a schema violation
    doc = json.loads(document)
    assert doc["specVersion"] == "1.6"
    by_name = {c["name"]: c for c in doc["components"]}
    assert "unusedpkg" not in by_name
    assert by_name["usedpkg"]["version"] == "1.2.3"
    assert "MIT" in json.dumps(by_name["usedpkg"]["licenses"])
    # The native library no distribution owns, with its hash.
    native = by_name["libprivate.so.1"]
    assert native["hashes"][0]["content"] == hashlib.sha256(
        fake["native"].read_bytes()).hexdigest()
    model = by_name["tiny-pack"]
    assert model["type"] == "machine-learning-model"
    assert model["version"] == "0.3.0"
    files = {c["name"]: c["hashes"][0] for c in model["components"]}
    onnx_bytes = (fake["pack"] / "model.onnx").read_bytes()
    assert files["tiny-pack/model.onnx"] == {"alg": "SHA-256",
                                             "content": hashlib.sha256(onnx_bytes).hexdigest()}
    notices = sbom.notices(bom, dists)
    assert "usedpkg 1.2.3  [library]  licence: MIT" in notices
    assert "The usedpkg licence text, word for word." in notices
    assert "unusedpkg" not in notices
    assert "tiny-pack 0.3.0  [machine-learning-model]  licence: Apache-2.0" in notices
    assert "not for diagnostic use" in notices


def test_validator_rejects_a_broken_document(fake: dict[str, Path]) -> None:
    bom, _ = sbom.build(fake["collected"], fake["bundle"], str(fake["python"]),
                        fake["pyproject"], search_path=[str(fake["site"])])
    doc = json.loads(sbom.JsonV1Dot6(bom).output_as_string())
    doc["components"][0]["type"] = "not-a-component-type"
    with pytest.raises(SystemExit, match="not valid CycloneDX"):
        sbom.validate(json.dumps(doc))


def test_a_bundled_distribution_the_scan_misses_is_an_error(fake: dict[str, Path],
                                                            tmp_path: Path) -> None:
    # Collected from a distribution that the scanned environment does not have.
    other_site = tmp_path / "site"
    other_site.mkdir()
    ghost = _fake_dist(other_site, "ghostpkg", "9.9", "MIT")
    collected = tmp_path / "collected.json"
    collected.write_text(json.dumps({"modules": [str(ghost)], "datas": [], "binaries": []}))
    with pytest.raises(SystemExit, match="ghostpkg"):
        sbom.build(collected, fake["bundle"], str(fake["python"]), fake["pyproject"],
                   search_path=[str(other_site)])
