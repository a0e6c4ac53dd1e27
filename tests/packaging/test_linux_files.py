"""packaging/linux's desktop integration files, checked by the tools a desktop uses."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import check_install
import pytest

LINUX = Path(__file__).resolve().parents[2] / "packaging" / "linux"


@pytest.mark.skipif(shutil.which("update-mime-database") is None,
                    reason="needs update-mime-database (shared-mime-info)")
def test_mime_type_compiles_with_the_dcm_glob_and_the_dicm_magic(tmp_path: Path) -> None:
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy(LINUX / "lucida-mime.xml", packages / "lucida.xml")
    done = subprocess.run(["update-mime-database", "-V", str(tmp_path / "mime")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "*.dcm" in (tmp_path / "mime" / "globs2").read_text()
    assert "application/dicom" in (tmp_path / "mime" / "types").read_text()
    magic = (tmp_path / "mime" / "magic").read_bytes()
    assert b"[60:application/dicom]" in magic and b"DICM" in magic and b">128=" in magic


def test_mime_checker_flags_a_file_without_the_magic(tmp_path: Path) -> None:
    assert check_install._check_mime(LINUX / "lucida-mime.xml") == []
    root = ET.parse(LINUX / "lucida-mime.xml").getroot()
    for match in root.iter(f"{check_install.MIME_NS}match"):
        match.set("offset", "0")
    broken = tmp_path / "broken.xml"
    ET.ElementTree(root).write(broken)
    assert check_install._check_mime(broken) == ["the MIME type has no DICM magic at offset 128"]


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="needs desktop-file-validate (desktop-file-utils)")
def test_desktop_entry_is_valid_and_opens_dicom() -> None:
    done = subprocess.run(["desktop-file-validate", str(LINUX / "lucida.desktop")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout
    text = (LINUX / "lucida.desktop").read_text()
    assert "\nExec=lucida %F\n" in text  # app/launch_paths.py takes the paths
    assert "\nMimeType=application/dicom;\n" in text and "\nIcon=lucida\n" in text


def test_icon_is_a_square_svg() -> None:
    root = ET.parse(LINUX / "lucida.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 256 256"


def test_archive_launcher_runs_the_bundle_beside_it(tmp_path: Path) -> None:
    app = tmp_path / "lucida-9.9" / "lucida-app"
    app.mkdir(parents=True)
    (app / "lucida").write_text('#!/bin/sh\necho "bundle got: $*"\n')
    (app / "lucida").chmod(0o755)
    launcher = tmp_path / "lucida-9.9" / "lucida"
    shutil.copy(LINUX / "lucida-launcher.sh", launcher)
    launcher.chmod(0o755)
    link = tmp_path / "on-path"  # started through a link, from another folder
    link.symlink_to(launcher)
    done = subprocess.run([str(link), "--smoke-test", "a b"], capture_output=True, text=True,
                          check=True, cwd="/")
    assert done.stdout == "bundle got: --smoke-test a b\n"
