"""What the PyInstaller bundle must leave out (used by packaging/lucida.spec, tested alone).

Host libraries: bundling the build machine's libstdc++, libX11, fontconfig, freetype or
GL stack breaks newer Mesa drivers on the target, so these come from the target system
and become .deb Depends (packaging/bundle/deb_depends.py derives them). Qt pieces: the
virtual keyboard and GTK3 theme plugins drag in QML/Quick and GTK, and Lucida uses
neither QML nor Wayland (VTK renders through GLX on xcb).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# Sonames (basename prefixes up to ".so") that the target system provides.
HOST_LIBRARY_PREFIXES: tuple[str, ...] = (
    "ld-linux", "libc", "libm", "libdl", "libpthread", "librt", "libutil", "libresolv",
    "libstdc++", "libgcc_s", "libatomic",
    "libX11", "libX11-xcb", "libXau", "libXdmcp", "libXext", "libXrender", "libXi",
    "libXfixes", "libXcursor", "libXrandr", "libXinerama", "libXxf86vm", "libXt", "libSM",
    "libICE", "libxcb", "libxkbcommon", "libxshmfence",
    "libGL", "libGLX", "libGLdispatch", "libOpenGL", "libEGL", "libGLESv2", "libgbm",
    "libdrm", "libwayland",
    "libfontconfig", "libfreetype", "libexpat", "libpng16", "libbrotlicommon", "libbrotlidec",
    "libharfbuzz", "libgraphite2",
    "libglib-2.0", "libgobject-2.0", "libgio-2.0", "libgmodule-2.0", "libgthread-2.0",
    "libpcre2", "libffi", "libdbus-1", "libsystemd", "libudev", "libcap", "libmount",
    "libblkid", "libselinux", "libgtk", "libgdk", "libatk", "libpango", "libcairo",
    "libz", "libbz2", "liblzma", "libzstd", "liblz4",
    "libssl", "libcrypto", "libgssapi", "libkrb5", "libk5crypto", "libcom_err",
)
# Libraries found here belong to the build machine's distribution.
SYSTEM_LIBRARY_DIRS: tuple[str, ...] = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/",
                                        "/usr/local/lib/")
# auditwheel renames the libraries a wheel vendors (libXau-154567c4.so.6): private copies
# with unique sonames, which cannot clash with the system's.
_VENDORED = re.compile(r"-[0-9a-f]{8}$")
_SONAME = re.compile(r"^(?P<stem>.+?)\.so(\..*)?$")

# Files under these bundle folders are dropped (dest paths, posix, relative to _internal).
EXCLUDED_DEST_PARTS: tuple[str, ...] = (
    "PySide6/Qt/qml/",
    "PySide6/Qt/translations/",  # Lucida speaks English only
    "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin",
    "PySide6/Qt/plugins/platformthemes/libqgtk3",
    "PySide6/Qt/plugins/wayland-",
    "PySide6/Qt/plugins/platforms/libqwayland",
    "PySide6/Qt/plugins/platforms/libqeglfs",
    "PySide6/Qt/plugins/platforms/libqlinuxfb",
    "PySide6/Qt/plugins/platforms/libqvnc",
    "PySide6/Qt/plugins/platforms/libqvkkhrdisplay",
    "PySide6/Qt/plugins/egldeviceintegrations/",
    "PySide6/Qt/plugins/generic/",
    "PySide6/Qt/plugins/networkinformation/",
    "PySide6/Qt/plugins/tls/",
    "PySide6/Qt/plugins/qmltooling/",
    "PySide6/Qt/plugins/qmllint/",
    "PySide6/Qt/plugins/designer/",
    "PySide6/Qt/plugins/sqldrivers/",
    "PySide6/Qt/plugins/imageformats/libqpdf",
)
# Qt libraries nothing in Lucida loads (QML/Quick, Wayland, designer, PDF, virtual keyboard).
EXCLUDED_QT_LIBRARIES = re.compile(
    r"^libQt6(Qml|Quick|Labs|Lottie|Wayland|WlShell|Designer|Help|UiTools|VirtualKeyboard|"
    r"Pdf|EglFS|EglFs|ShaderTools|Sql|Test)[A-Za-z0-9]*\.so"
)
# Python packages that may be importable in the build venv but are never needed at run
# time (tests, type checkers, tools, optional back-ends of libraries Lucida uses).
EXCLUDED_MODULES: tuple[str, ...] = (
    "tkinter", "_tkinter", "readline", "IPython", "jupyter", "notebook", "matplotlib", "pytest",
    "_pytest", "pytestqt", "mypy", "ruff", "importlinter", "grimp", "atheris", "torch",
    "monai", "PyQt5", "PyQt6", "PySide2", "PySide6.QtQml", "PySide6.QtQuick",
    "PySide6.QtQuickWidgets", "PySide6.QtNetwork", "PySide6.QtSql", "PySide6.QtTest",
    "PySide6.QtDesigner", "PySide6.QtUiTools", "PySide6.QtHelp", "PyInstaller", "pip", "setuptools",
    "cyclonedx", "psutil", "pydicom_data", "data_store",
)


# Lucida's own packages (import-linter's root packages, plus net/ for PACS networking).
LUCIDA_ROOMS: tuple[str, ...] = ("app", "viewer", "inference", "core", "dicomio", "store",
                                 "review", "net")


def lucida_modules(root: Path, rooms: Iterable[str] = LUCIDA_ROOMS) -> list[str]:
    """Every module of Lucida's rooms, named from the files: subcommands are imported by
    name (app/cli.py) and app/commands is a namespace package, which PyInstaller's
    collect_submodules() does not walk."""
    names: list[str] = []
    for room in rooms:
        for source in sorted((root / room).rglob("*.py")):
            parts = source.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def library_stem(name: str) -> str:
    """``libX11.so.6`` -> ``libX11``; ``libxcb-icccm.so.4.0.0`` -> ``libxcb-icccm``."""
    base = PurePosixPath(name).name
    match = _SONAME.match(base)
    return match.group("stem") if match else base


def is_host_library(name: str) -> bool:
    """True for a shared library the target system must provide (never bundled)."""
    stem = library_stem(name)
    if _VENDORED.search(stem):
        return False
    for prefix in HOST_LIBRARY_PREFIXES:
        # "libc" must not match "libcrypto"-like names by accident: exact stem, or the
        # prefix followed by a separator ("libxcb" covers "libxcb-icccm").
        if stem == prefix or stem.startswith(prefix + "-") or stem.startswith(prefix + "_"):
            return True
    return False


def is_excluded_dest(dest: str) -> bool:
    """True for a bundle path (relative to _internal) that Lucida never uses."""
    posix = dest.replace("\\", "/")
    if any(part in posix for part in EXCLUDED_DEST_PARTS):
        return True
    return bool(EXCLUDED_QT_LIBRARIES.match(PurePosixPath(posix).name))


def is_system_path(src: str) -> bool:
    """True for a file of the build machine's distribution (not of Python or a wheel)."""
    return src.startswith(SYSTEM_LIBRARY_DIRS)


def keep_entry(dest: str, src: str, kind: str) -> bool:
    """Whether a PyInstaller TOC entry (dest, src, kind) stays in the bundle.

    A binary stays only when it comes with Python or a wheel and is not a host library
    by name: whatever PyInstaller found in the system's library folders (pulled in as a
    dependency of a dependency) is the target system's business, declared as Depends.
    """
    if is_excluded_dest(dest):
        return False
    if kind != "BINARY":
        return True
    return not (is_host_library(dest) or is_system_path(src))


def filter_toc(entries: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [entry for entry in entries if keep_entry(entry[0], entry[1], entry[2])]
