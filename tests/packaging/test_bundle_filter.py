"""packaging/bundle/bundle_filter.py: what the PyInstaller bundle leaves out, and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bundle_filter import (
    EXCLUDED_MODULES,
    filter_toc,
    is_excluded_dest,
    is_host_library,
    keep_entry,
    library_stem,
    lucida_modules,
)

REPO = Path(__file__).resolve().parents[2]
# Dev-only packages that Lucida's code uses when present and does without otherwise.
OPTIONAL_AT_RUN_TIME = {"psutil"}
# Modules of ours that only benchmarks and tests call (bench/review_keys.py drives keys
# through QtTest); the app never does, so the bundle needs not carry what they import.
BENCH_ONLY = {("PySide6.QtTest", "app/review_timing.py")}


@pytest.mark.parametrize("name", [
    "libstdc++.so.6", "libgcc_s.so.1", "libX11.so.6", "libX11-xcb.so.1", "libxcb.so.1",
    "libxcb-icccm.so.4", "libxcb-cursor.so.0", "libGL.so.1", "libGLX.so.0", "libEGL.so.1",
    "libfontconfig.so.1", "libfreetype.so.6", "libdrm.so.2", "libglib-2.0.so.0",
    "libdbus-1.so.3", "libxkbcommon-x11.so.0", "libc.so.6", "ld-linux-x86-64.so.2",
    "libssl.so.3", "PySide6/Qt/lib/libX11.so.6",
])
def test_host_libraries_are_left_to_the_target_system(name: str) -> None:
    assert is_host_library(name)
    assert not keep_entry(name, "/anywhere/" + name, "BINARY")


@pytest.mark.parametrize("name", [
    # Private copies a wheel vendors under a unique (hashed) soname cannot clash.
    "pillow.libs/libXau-154567c4.so.6.0.0", "libcrypto-5409cd36.so.1.1.1k",
    "libvtkCommonCore.so", "libQt6Core.so.6", "libpython3.11.so.1.0", "libcrypt.so.1",
    "libicuuc.so.73", "libGLU_custom.so",  # a name that only starts like a host family
])
def test_bundled_libraries_stay(name: str) -> None:
    assert not is_host_library(name)


def test_soname_stem() -> None:
    assert library_stem("a/b/libxcb-icccm.so.4.0.0") == "libxcb-icccm"
    assert library_stem("libcrypto-5409cd36.so.1.1.1k") == "libcrypto-5409cd36"
    assert library_stem("libvtkCommonCore.so") == "libvtkCommonCore"


def test_anything_from_the_system_library_folders_is_left_out() -> None:
    # Dependencies of dependencies (libqgtk3 pulls pango, libthai, ...) found by PyInstaller.
    assert not keep_entry("libthai.so.0", "/lib/x86_64-linux-gnu/libthai.so.0", "BINARY")
    assert not keep_entry("libsqlite3.so.0", "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0",
                          "BINARY")
    assert keep_entry("libpython3.11.so.1.0", "/root/.pyenv/versions/3.11.7/lib/"
                      "libpython3.11.so.1.0", "BINARY")
    # Data files are never judged as libraries.
    assert keep_entry("certifi/cacert.pem", "/usr/lib/python3/certifi/cacert.pem", "DATA")


@pytest.mark.parametrize("dest", [
    "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "PySide6/Qt/qml/QtQuick/Controls/qmldir",
    "PySide6/Qt/lib/libQt6Quick.so.6", "PySide6/Qt/lib/libQt6Qml.so.6",
    "PySide6/Qt/lib/libQt6WaylandClient.so.6", "PySide6/Qt/lib/libQt6Pdf.so.6",
    "PySide6/Qt/plugins/platforms/libqwayland-egl.so",
    "PySide6/Qt/translations/qtbase_de.qm",
])
def test_unused_qt_pieces_are_left_out(dest: str) -> None:
    assert is_excluded_dest(dest)


@pytest.mark.parametrize("dest", [
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so",
    "PySide6/Qt/plugins/imageformats/libqjpeg.so",
    "PySide6/Qt/lib/libQt6Widgets.so.6", "PySide6/Qt/lib/libQt6OpenGLWidgets.so.6",
    "PySide6/Qt/lib/libQt6XcbQpa.so.6", "PySide6/Qt/lib/libQt6DBus.so.6",
    "resources/models/lucida-lung-nodules/model.onnx",
])
def test_what_lucida_needs_stays(dest: str) -> None:
    assert not is_excluded_dest(dest)


def test_filter_toc_keeps_order_and_drops_only_the_excluded() -> None:
    toc = [("libvtkCommonCore.so", "/venv/vtkmodules/libvtkCommonCore.so", "BINARY"),
           ("libX11.so.6", "/lib/x86_64-linux-gnu/libX11.so.6", "BINARY"),
           ("PySide6/Qt/qml/x.qml", "/venv/PySide6/Qt/qml/x.qml", "DATA"),
           ("resources/hanging_protocols.json", "/repo/resources/hanging_protocols.json",
            "DATA")]
    assert filter_toc(toc) == [toc[0], toc[3]]


def test_no_excluded_module_is_imported_by_lucida() -> None:
    """A module left out of the bundle must not be one Lucida's code imports."""
    sources = [p for room in ("app", "viewer", "inference", "core", "dicomio", "store",
                              "review", "net") for p in (REPO / room).rglob("*.py")]
    assert sources
    for module in EXCLUDED_MODULES:
        pattern = re.compile(rf"^\s*(import|from)\s+{re.escape(module)}(\s|\.|$)", re.M)
        users = [p for p in sources if pattern.search(p.read_text(errors="replace"))]
        users = [p for p in users
                 if (module, p.relative_to(REPO).as_posix()) not in BENCH_ONLY]
        if module in OPTIONAL_AT_RUN_TIME:
            users = [p for p in users if "except ImportError" not in p.read_text()]
        assert not users, f"{module} is left out of the bundle but imported by {users}"


def test_the_spec_applies_the_filter_to_binaries_and_datas() -> None:
    spec = (REPO / "packaging" / "lucida.spec").read_text()
    assert "a.binaries = filter_toc(a.binaries)" in spec
    assert "a.datas = filter_toc(a.datas)" in spec
    assert "excludes=list(EXCLUDED_MODULES)" in spec
    assert re.search(r"strip=False[,)]", spec) and not re.search(r"strip=True[,)]", spec)


def test_every_module_of_lucida_is_named_for_the_bundle_namespace_packages_too() -> None:
    names = set(lucida_modules(REPO))
    # app/commands has no __init__.py: collect_submodules() would miss all of these.
    for command in (REPO / "app" / "commands").glob("*.py"):
        assert f"app.commands.{command.stem}" in names
    assert {"app", "app.cli", "core.volume", "inference.worker", "viewer.panel"} <= names
    assert not any(n.endswith("__init__") for n in names)
