"""Lucida.app's Info.plist, and the finishing step after PyInstaller's BUNDLE.

``info_plist()`` is what packaging/macos/lucida-macos.spec hands to BUNDLE: document types
for DICOM files (an imported ``org.nema.dicom`` type: .dcm/.dicom/.dic, application/dicom)
and folders, high-resolution and dark-mode support, and the lowest macOS every bundled
wheel supports. ``finish()`` then runs on the built bundle: the packaging step writes
build_info.json (in _internal), the SBOM and the third-party notices into dist/lucida
after PyInstaller, so they are copied into the .app the way PyInstaller lays out data files
(the file in Contents/Resources, a relative link in Contents/Frameworks, which is
``sys._MEIPASS``), and the bundle's version fields are set from build_info.json:
one source of truth for ``lucida --version``, the About box and Finder.

    python packaging/macos/app_bundle.py finish dist/Lucida.app dist/lucida
"""

from __future__ import annotations

import argparse
import json
import plistlib
import re
import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

BUNDLE_ID = "org.lucida.viewer"
#: Copied from the one-folder build (dist/lucida, as packaging/linux/build_bundle.sh lays
#: it out) into the .app; app/build_info.py finds them there.
SHIPPED_FILES = ("_internal/build_info.json", "lucida.cdx.json", "THIRD-PARTY-NOTICES.txt")
OPTIONAL_FILES = ("README.txt",)
#: Below every wheel's own floor: Qt 6.8 itself needs macOS 12.
MACOS_FLOOR = (12, 0)
NOTICE = "Research use only — not for diagnostic use."

_MACOS_TAG = re.compile(r"macosx_(\d+)_(\d+)_")
_NUMERIC_VERSION = re.compile(r"^\d+(\.\d+){0,2}")


def minimum_macos(wheel_tags: Iterable[str], floor: tuple[int, int] = MACOS_FLOOR) -> str:
    """The highest ``macosx_X_Y`` among the bundled wheels' tags (a wheel built for macOS 14
    does not load on 13), never below ``floor``: LSMinimumSystemVersion."""
    best = floor
    for tag in wheel_tags:
        match = _MACOS_TAG.search(tag)
        if match:
            best = max(best, (int(match.group(1)), int(match.group(2))))
    return f"{best[0]}.{best[1]}"


def installed_wheel_tags() -> list[str]:
    """The ``Tag:`` lines of every installed distribution's WHEEL file (this environment
    is the one PyInstaller bundles)."""
    tags: list[str] = []
    for dist in metadata.distributions():
        text = dist.read_text("WHEEL") or ""
        tags += [line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("Tag:")]
    return tags


def short_version(version: str) -> str:
    """CFBundleShortVersionString must be one to three integers: ``0.2.0rc1`` -> ``0.2.0``."""
    match = _NUMERIC_VERSION.match(version.strip())
    return match.group(0) if match else "0.0.0"


def info_plist(version: str, build_id: str, minimum_system: str) -> dict[str, Any]:
    """Keys BUNDLE merges over its own (name, executable, identifier, icon)."""
    dicom_type = "org.nema.dicom"
    return {
        "CFBundleName": "Lucida",
        "CFBundleDisplayName": "Lucida",
        "CFBundleShortVersionString": short_version(version),
        "CFBundleVersion": build_id,
        "LSMinimumSystemVersion": minimum_system,
        "LSApplicationCategoryType": "public.app-category.medical",
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follows the system's dark mode
        "NSHumanReadableCopyright": NOTICE,
        # DICOM has no system UTI: declare it (imported: Lucida does not own the format).
        "UTImportedTypeDeclarations": [{
            "UTTypeIdentifier": dicom_type,
            "UTTypeDescription": "DICOM image",
            "UTTypeConformsTo": ["public.data", "public.image"],
            "UTTypeTagSpecification": {
                "public.filename-extension": ["dcm", "dicom", "dic"],
                "public.mime-type": ["application/dicom"],
            },
        }],
        "CFBundleDocumentTypes": [
            {"CFBundleTypeName": "DICOM image", "CFBundleTypeRole": "Viewer",
             "LSHandlerRank": "Alternate", "LSItemContentTypes": [dicom_type]},
            # A study is usually a folder of extension-less files: offered, never default.
            {"CFBundleTypeName": "Folder of DICOM files", "CFBundleTypeRole": "Viewer",
             "LSHandlerRank": "Alternate", "LSItemContentTypes": ["public.folder"]},
        ],
    }


def finish(app: Path, onefolder: Path) -> dict[str, Any]:
    """Copy the shipped files of ``onefolder`` (dist/lucida) into ``app`` and set its
    version fields from build_info.json. Returns the Info.plist as written."""
    contents = app / "Contents"
    resources, frameworks = contents / "Resources", contents / "Frameworks"
    for folder in (resources, frameworks):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: is {app} a PyInstaller BUNDLE?")
    missing = [name for name in SHIPPED_FILES if not (onefolder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{onefolder} lacks {', '.join(missing)}: run the packaging "
                                "step (packaging/linux/build_bundle.sh's tail) first")
    for rel in (*SHIPPED_FILES, *(n for n in OPTIONAL_FILES if (onefolder / n).is_file())):
        name = Path(rel).name
        shutil.copy2(onefolder / rel, resources / name)
        link = frameworks / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / "Resources" / name)
    built = json.loads((resources / "build_info.json").read_text(encoding="utf-8"))
    plist_path = contents / "Info.plist"
    with plist_path.open("rb") as fh:
        plist: dict[str, Any] = plistlib.load(fh)
    plist["CFBundleShortVersionString"] = short_version(str(built["version"]))
    plist["CFBundleVersion"] = str(built["build_id"])
    with plist_path.open("wb") as fh:
        plistlib.dump(plist, fh)
    return plist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fin = sub.add_parser("finish", help="copy build_info/SBOM/notices in, set the version")
    fin.add_argument("app", type=Path)
    fin.add_argument("onefolder", type=Path, help="the one-folder build (dist/lucida)")
    sub.add_parser("min-macos", help="print the lowest macOS the installed wheels support")
    args = parser.parse_args(argv)
    if args.command == "finish":
        plist = finish(args.app, args.onefolder)
        print(f"{args.app}: {plist['CFBundleShortVersionString']} "
              f"(build {plist['CFBundleVersion']})")
    else:
        print(minimum_macos(installed_wheel_tags()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
