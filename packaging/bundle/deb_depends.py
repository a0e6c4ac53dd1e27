"""The .deb's Depends: the system libraries the bundle's ELF files need but do not ship.

Every ELF file under the bundle is read with ``objdump -p``; its NEEDED sonames minus
the sonames the bundle holds are the target system's business. Each is found where the
build machine has it (``ldconfig -p``) and mapped to its Debian package (``dpkg -S``).
Libraries loaded with dlopen() (no NEEDED entry) are added by name with the reason.

    python packaging/bundle/deb_depends.py dist/lucida      # prints the Depends line
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Loaded with dlopen(), so no ELF file names them: VTK's glad loader opens libGL/libEGL,
# Qt's xcb platform plugin needs xcb-cursor for pointer shapes.
DLOPENED_PACKAGES: dict[str, str] = {
    "libgl1": "VTK opens libGL.so.1 at run time (glad)",
    "libegl1": "VTK and Qt open libEGL.so.1 at run time",
    "libxcb-cursor0": "Qt's xcb platform plugin (Qt >= 6.5) needs it to start",
}
# Useful but not required: Mesa's software and hardware drivers, a default font.
RECOMMENDS: tuple[str, ...] = ("libgl1-mesa-dri", "fonts-dejavu-core", "shared-mime-info",
                               "desktop-file-utils")
_NEEDED = re.compile(r"^\s*NEEDED\s+(\S+)", re.MULTILINE)
_LDCONFIG = re.compile(r"^\s*(\S+)\s+\((?P<flags>[^)]*)\)\s+=>\s+(?P<path>\S+)", re.MULTILINE)


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink() and is_elf(path):
                yield path


def needed(path: Path) -> list[str]:
    """The sonames an ELF file's dynamic section names (``objdump -p``)."""
    done = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True,
                          check=False)
    return _NEEDED.findall(done.stdout)


def system_libraries() -> dict[str, str]:
    """soname -> path of the x86-64 libraries the dynamic loader knows (``ldconfig -p``)."""
    done = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    out: dict[str, str] = {}
    for match in _LDCONFIG.finditer(done.stdout):
        if "x86-64" in match.group("flags"):
            out.setdefault(match.group(1), match.group("path"))
    return out


def debian_package(path: str) -> str | None:
    """The package owning a library file; merged-/usr systems list it under either root."""
    real = os.path.realpath(path)
    candidates = dict.fromkeys([path, real] + [
        p.replace("/lib/", "/usr/lib/", 1) if not p.startswith("/usr/") else p.replace(
            "/usr/lib/", "/lib/", 1) for p in (path, real)])
    for candidate in candidates:
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0 and ":" in done.stdout:
            return done.stdout.split(":", 1)[0].strip()
    return None


def package_version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip()


@dataclass
class Requirements:
    """What the bundle needs from the system, by soname and by package."""

    external: dict[str, set[str]] = field(default_factory=dict)  # soname -> needing files
    packages: dict[str, set[str]] = field(default_factory=dict)  # package -> sonames
    unresolved: dict[str, set[str]] = field(default_factory=dict)  # soname -> needing files

    def depends(self, glibc_version: str | None = None) -> list[str]:
        names = set(self.packages) | set(DLOPENED_PACKAGES)
        out = []
        for name in sorted(names):
            if name == "libc6" and glibc_version:
                # The bundle needs the build machine's glibc or newer.
                out.append(f"libc6 (>= {glibc_version})")
            else:
                out.append(name)
        return out


def external_sonames(files: Iterable[Path], bundled: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in files:
        for soname in needed(path):
            if soname not in bundled:
                out.setdefault(soname, set()).add(path.name)
    return out


def requirements(root: Path) -> Requirements:
    files = list(elf_files(root))
    bundled = {p.name for p in root.rglob("*") if ".so" in p.name}
    req = Requirements(external=external_sonames(files, bundled))
    known = system_libraries()
    for soname, users in sorted(req.external.items()):
        path = known.get(soname)
        package = debian_package(path) if path else None
        if package is None:
            req.unresolved[soname] = users
        else:
            req.packages.setdefault(package.split(":")[0], set()).add(soname)
    return req


def glibc_upstream_version() -> str | None:
    version = package_version("libc6")
    match = re.match(r"^(?:\d+:)?(\d+\.\d+)", version)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: deb_depends.py BUNDLE_DIR", file=sys.stderr)
        return 2
    req = requirements(Path(args[0]))
    for soname, users in sorted(req.unresolved.items()):
        print(f"warning: {soname} (needed by {', '.join(sorted(users)[:3])}) is not on this "
              "system: a plugin that will not load", file=sys.stderr)
    print(", ".join(req.depends(glibc_upstream_version())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
