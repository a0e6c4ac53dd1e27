"""packaging/bundle/deb_depends.py on real ELF files: Qt's xcb platform plugin and its
platform library, copied from the venv's PySide6 into a tiny fake bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import deb_depends
import pytest

if shutil.which("dpkg") is None or shutil.which("objdump") is None:
    pytest.skip("needs a Debian system with binutils (dpkg -S, objdump)",
                allow_module_level=True)

QT = Path(pytest.importorskip("PySide6").__file__).parent / "Qt"


def test_depends_are_needed_sonames_minus_bundled_mapped_to_packages(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "plugins").mkdir(parents=True)
    shutil.copy(QT / "plugins" / "platforms" / "libqxcb.so", bundle / "plugins")
    shutil.copy(QT / "lib" / "libQt6XcbQpa.so.6", bundle)
    (bundle / "notes.txt").write_text("not an ELF file")
    assert {p.name for p in deb_depends.elf_files(bundle)} == {"libqxcb.so",
                                                               "libQt6XcbQpa.so.6"}
    needed = deb_depends.needed(bundle / "libQt6XcbQpa.so.6")
    assert "libxcb.so.1" in needed and "libQt6Gui.so.6" in needed

    req = deb_depends.requirements(bundle)
    # Bundled: never a dependency. libqxcb.so needs libQt6XcbQpa.so.6, which is here.
    assert "libQt6XcbQpa.so.6" not in req.external
    # On the system: mapped to the Debian package that owns it.
    assert "libxcb.so.1" in req.packages.get("libxcb1", set())
    assert any(p.startswith("libc6") for p in req.packages)
    # Neither bundled nor on the system (the rest of Qt is not in this fake bundle).
    assert "libQt6Gui.so.6" in req.unresolved

    depends = req.depends(glibc_version="2.36")
    assert "libxcb1" in depends
    assert "libc6 (>= 2.36)" in depends
    assert "libgl1" in depends  # opened with dlopen(): added by name, with its reason
    assert depends == sorted(depends, key=lambda d: d.split(" ")[0])


def test_glibc_version_is_the_build_machines() -> None:
    version = deb_depends.glibc_upstream_version()
    assert version is not None and version.count(".") == 1
