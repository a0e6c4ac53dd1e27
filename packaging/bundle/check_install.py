"""Checks of an installed tree (``dpkg -x`` root) and of the bundle's SBOM.

    python packaging/bundle/check_install.py deb-root ROOT DEB
    python packaging/bundle/check_install.py sbom BUNDLE_DIR
Each prints what it checked and exits 1 with the reasons when something is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from sbom import sha256, validate

MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def check_deb_root(root: Path, deb: Path) -> list[str]:
    """What is wrong with a .deb extracted into root (empty list: nothing)."""
    problems: list[str] = []
    exe = root / "opt/lucida/lucida"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        problems.append("opt/lucida/lucida is not an executable file")
    if not (root / "opt/lucida/_internal/build_info.json").is_file():
        problems.append("opt/lucida/_internal/build_info.json is missing")
    for name in ("README.txt", "THIRD-PARTY-NOTICES.txt", "lucida.cdx.json"):
        if not (root / "opt/lucida" / name).is_file():
            problems.append(f"opt/lucida/{name} is missing")
    link = root / "usr/bin/lucida"
    if not link.is_symlink() or os.readlink(link) != "/opt/lucida/lucida":
        problems.append("usr/bin/lucida is not a link to /opt/lucida/lucida")
    desktop = root / "usr/share/applications/lucida.desktop"
    if not desktop.is_file():
        problems.append("usr/share/applications/lucida.desktop is missing")
    else:
        text = desktop.read_text()
        if "MimeType=application/dicom;" not in text or "Exec=lucida" not in text:
            problems.append("the desktop entry lacks Exec=lucida or MimeType=application/dicom;")
        if shutil.which("desktop-file-validate"):
            done = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0 or "error" in done.stdout.lower():
                problems.append(f"desktop-file-validate: {done.stdout.strip()}")
    problems += _check_mime(root / "usr/share/mime/packages/lucida.xml")
    if not (root / "usr/share/icons/hicolor/scalable/apps/lucida.svg").is_file():
        problems.append("the icon usr/share/icons/hicolor/scalable/apps/lucida.svg is missing")
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    for needle in ("Package: lucida", "Architecture: amd64", "Depends:", "libc6 (>=",
                   "libgl1", "libxcb-cursor0", "postinst"):
        if needle not in info:
            problems.append(f"dpkg-deb --info lacks {needle!r}")
    return problems


def _check_mime(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path.name} is missing"]
    mime = ET.parse(path).getroot().find(f"{MIME_NS}mime-type")
    if mime is None or mime.get("type") != "application/dicom":
        return ["the MIME file does not define application/dicom"]
    globs = {g.get("pattern") for g in mime.iter(f"{MIME_NS}glob")}
    matches = [(m.get("value"), m.get("offset")) for m in mime.iter(f"{MIME_NS}match")]
    problems = []
    if "*.dcm" not in globs:
        problems.append("the MIME type has no *.dcm glob")
    if ("DICM", "128") not in matches:
        problems.append("the MIME type has no DICM magic at offset 128")
    return problems


def check_sbom(bundle: Path) -> list[str]:
    """Schema-valid, lists each bundled pack with the sha256 of each of its files."""
    document = (bundle / "lucida.cdx.json").read_text()
    try:
        validate(document)
    except SystemExit as exc:
        return [str(exc)]
    bom = json.loads(document)
    problems: list[str] = []
    models = {c["bom-ref"]: c for c in bom.get("components", [])
              if c.get("type") == "machine-learning-model"}
    packs = bundle / "_internal" / "resources" / "models"
    for pack in sorted(p for p in packs.iterdir() if (p / "manifest.json").is_file()):
        comp = models.get(f"model:{pack.name}")
        if comp is None:
            problems.append(f"model pack {pack.name} is not in the SBOM")
            continue
        listed = {c["name"]: c["hashes"][0]["content"] for c in comp.get("components", [])}
        for file in sorted(f for f in pack.iterdir() if f.is_file()):
            if listed.get(f"{pack.name}/{file.name}") != sha256(file):
                problems.append(f"SBOM sha256 of {pack.name}/{file.name} is wrong or missing")
    names = {c["name"].lower() for c in bom.get("components", [])}
    for needed in ("numpy", "vtk", "pyside6_essentials", "onnxruntime", "pydicom", "cpython"):
        if needed not in names:
            problems.append(f"the SBOM does not list {needed}")
    for dev_only in ("pytest", "mypy", "ruff"):
        if dev_only in names:
            problems.append(f"the SBOM lists the dev-only tool {dev_only}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "deb-root":
        problems = check_deb_root(Path(args[1]), Path(args[2]))
    elif len(args) == 2 and args[0] == "sbom":
        problems = check_sbom(Path(args[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problems:
        print(f"{args[0]} check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"{args[0]} check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
