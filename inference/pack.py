"""A model pack on disk: a folder or a ``.zip`` with manifest, ONNX files and a model card.

A pack comes from outside, so nothing in it is trusted. Only plain files and folders
count: a symbolic link, device, FIFO or socket inside a pack is refused by name, never
followed or opened. Every read stops at a cap counted in bytes actually read, never in
the size a directory entry or a zip header claims. (The path the caller names may
itself be a link: the user chose it. Nothing inside the pack is followed.)
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from core.errors import ModelPackError
from inference.manifest import Manifest, parse_manifest

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20
# Never through a final link, never blocking on a FIFO that slipped past the checks.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
# What a damaged or hostile zip raises besides BadZipFile (encrypted member: RuntimeError,
# unknown compression: NotImplementedError, truncated stream: EOFError / zlib.error).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
               ValueError)


@dataclass(frozen=True)
class PackLimits:
    """What reading or installing one pack may cost; bytes are counted as they are read."""

    manifest_bytes: int = 1 << 20
    card_bytes: int = 1 << 20  # shown in a dock and a terminal
    file_bytes: int = 4 << 30  # one ONNX protobuf stops at 2 GiB
    total_bytes: int = 8 << 30
    entries: int = 10_000  # files and folders
    depth: int = 16  # nested folders


DEFAULT_LIMITS = PackLimits()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def kind_of(mode: int) -> str:
    """What a file is, in words, for messages ('a symbolic link', 'a FIFO', ...)."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def not_plain(label: str, kind: str) -> ModelPackError:
    return ModelPackError(
        f"{label} is {kind}; a model pack holds plain files and folders only (no links, "
        "devices, FIFOs or sockets): replace it with the real file and try again"
    )


def too_large(label: str, cap: int, what: str) -> ModelPackError:
    return ModelPackError(
        f"{label} is larger than {size_text(cap)}, the limit for {what}; this is not a "
        "usable model pack: check that you chose the right file"
    )


def open_plain(path: Path, label: str, *, follow: bool = False) -> IO[bytes]:
    """Open a regular file for reading: never a device, FIFO or socket, and (unless
    ``follow``, for a path the user named) never through a symbolic link.

    Raises FileNotFoundError as is; other refusals are ModelPackError naming ``label``.
    """
    try:
        before = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ModelPackError(f"cannot read {label}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(before.st_mode):
        raise not_plain(label, kind_of(before.st_mode))
    try:
        fd = os.open(path, _READ_FLAGS | (0 if follow else _NO_FOLLOW))
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since lstat
            raise not_plain(label, "a symbolic link") from exc
        raise ModelPackError(f"cannot read {label}: {exc.strerror or exc}") from exc
    try:
        now = os.fstat(fd)
        # The file opened is the one checked (also where O_NOFOLLOW does not exist).
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
                before.st_dev, before.st_ino):
            raise ModelPackError(f"{label} changed while it was being opened; try again")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def copy_capped(src: IO[bytes], write: Callable[[bytes], object], cap: int) -> int | None:
    """Copy ``src`` to ``write``; None as soon as more than ``cap`` bytes have come."""
    n = 0
    while chunk := src.read(min(_CHUNK, cap - n + 1)):
        n += len(chunk)
        if n > cap:
            return None
        write(chunk)
    return n


def _folder_path(root: Path, rel: PurePosixPath) -> Path:
    """``rel`` under ``root``; every folder on the way must be a real folder, not a link."""
    path = root
    for i, part in enumerate(rel.parts[:-1]):
        path = path / part
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode):  # "a/b" where "a" is a file: there is no such file
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        if not stat.S_ISDIR(mode):
            raise not_plain(f"{root.name}/{'/'.join(rel.parts[:i + 1])}", kind_of(mode))
    return path / rel.parts[-1]


def _unsafe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return (not name or name.startswith("/") or "\\" in name or ":" in name or "\0" in name
            or ".." in p.parts)


def zip_index(zf: zipfile.ZipFile, label: str, limits: PackLimits
              ) -> dict[str, zipfile.ZipInfo]:
    """The zip's files by pack-relative name (one top folder stripped), after refusing
    unsafe names, links and other special entries, duplicates and too many entries."""
    infos = zf.infolist()
    if len(infos) > limits.entries:
        raise ModelPackError(f"{label} holds {len(infos)} entries, more than the "
                             f"{limits.entries} a model pack may have")
    entries: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in infos:
        name = info.filename
        if _unsafe_name(name):
            raise ModelPackError(f"{label} holds an unsafe path {name!r}: a pack's files must "
                                 "stay inside it (no absolute paths, '..', '\\' or ':')")
        path = PurePosixPath(name)
        if len(path.parts) > limits.depth + 1:
            raise ModelPackError(f"{label}: {name} is nested more than {limits.depth} folders "
                                 "deep")
        mode = info.external_attr >> 16  # Unix st_mode, 0 when the zip tool set none
        allowed = (0, stat.S_IFDIR) if info.is_dir() else (0, stat.S_IFREG)
        if stat.S_IFMT(mode) not in allowed:
            raise not_plain(f"{label}: {name}", kind_of(mode))
        entries.append((info, path))
    files = [(info, path) for info, path in entries if not info.is_dir()]
    strip = 0
    if MANIFEST_NAME not in {str(path) for _, path in files}:
        tops = {path.parts[0] for _, path in entries}
        if len(tops) == 1 and all(len(path.parts) > 1 for _, path in files):
            strip = 1
    members: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info, path in files:
        key = "/".join(path.parts[strip:])
        if key.casefold() in seen:  # one file on Windows and macOS
            raise ModelPackError(f"{label} holds {key!r} twice (names that differ only in "
                                 "case count as one); get a fresh copy of the pack")
        seen.add(key.casefold())
        members[key] = info
    return members


class _Budget:
    """Running totals of one copy: entries, and bytes actually written against the caps."""

    def __init__(self, limits: PackLimits, label: str) -> None:
        self.limits, self.label = limits, label
        self.used = self.entries = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.entries:
            raise ModelPackError(f"{self.label} holds more than {self.limits.entries} files "
                                 "and folders, more than a model pack may have")

    def copy(self, src: IO[bytes], dest: Path, label: str) -> None:
        cap = min(self.limits.file_bytes, self.limits.total_bytes - self.used)
        with dest.open("xb") as out:
            n = copy_capped(src, out.write, cap)
        if n is None:
            if cap == self.limits.file_bytes:
                raise too_large(label, cap, "one file of a model pack")
            raise too_large(self.label, self.limits.total_bytes, "a whole model pack")
        self.used += n


def _copy_folder(src: Path, dest: Path, rel: str, depth: int, budget: _Budget) -> None:
    if depth > budget.limits.depth:
        raise ModelPackError(f"{budget.label}/{rel} is nested more than {budget.limits.depth} "
                             "folders deep")
    dest.mkdir()
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        budget.entry()
        label = f"{budget.label}/{rel}{entry.name}"
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            _copy_folder(Path(entry.path), dest / entry.name, f"{rel}{entry.name}/", depth + 1,
                         budget)
        elif stat.S_ISREG(mode):
            with open_plain(Path(entry.path), label) as fh:
                budget.copy(fh, dest / entry.name, label)
        else:
            raise not_plain(label, kind_of(mode))


@dataclass
class ModelPack:
    """A validated manifest plus access to the pack's files.

    ``source`` is the folder or the ``.zip``; files are read on demand, within ``limits``.
    """

    source: Path
    manifest: Manifest
    bundled: bool = False
    limits: PackLimits = field(default=DEFAULT_LIMITS, repr=False)
    _verified: bool = field(default=False, repr=False)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def is_zip(self) -> bool:
        return self.source.is_file()

    @classmethod
    def open(cls, path: str | Path, *, bundled: bool = False,
             limits: PackLimits = DEFAULT_LIMITS) -> ModelPack:
        """Read and validate the manifest of a pack folder or ``.zip``."""
        source = Path(path).expanduser()
        try:
            mode = source.stat().st_mode
        except FileNotFoundError:
            raise ModelPackError(f"model pack {source} does not exist") from None
        except OSError as exc:
            raise ModelPackError(f"cannot read model pack {source}: {exc.strerror or exc}"
                                 ) from exc
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ModelPackError(f"model pack {source} is {kind_of(mode)}; a model pack is a "
                                 "folder or a .zip file")
        pack = cls(source=source, manifest=_placeholder(), bundled=bundled, limits=limits)
        raw = pack.read_bytes(MANIFEST_NAME, cap=limits.manifest_bytes, what="a manifest")
        pack.manifest = parse_manifest(raw, f"{source.name}/{MANIFEST_NAME}")
        return pack

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        """The pack's zip; damage anywhere while it is open becomes a ModelPackError."""
        try:
            with open_plain(self.source, self.source.name, follow=True) as fh, \
                    zipfile.ZipFile(fh) as zf:
                yield zf
        except ModelPackError:
            raise
        except FileNotFoundError:
            raise ModelPackError(f"model pack {self.source} does not exist") from None
        except _ZIP_ERRORS as exc:
            raise ModelPackError(f"{self.source.name} is not a readable .zip ({exc}); get a "
                                 "fresh copy of the pack") from exc

    @contextmanager
    def _member(self, relative: str) -> Iterator[IO[bytes]]:
        """One plain file of the pack, open for reading (``relative`` uses '/')."""
        rel = PurePosixPath(relative)
        if _unsafe_name(relative) or not rel.parts:
            raise ModelPackError(f"{relative!r} points outside the model pack")
        missing = ModelPackError(f"model pack {self.source.name} has no file {relative}")
        if self.is_zip:
            with self._zip() as zf:
                info = zip_index(zf, self.source.name, self.limits).get(str(rel))
                if info is None:
                    raise missing
                with zf.open(info) as fh:
                    yield fh
            return
        label = f"{self.source.name}/{relative}"
        try:
            fh = open_plain(_folder_path(self.source, rel), label)
        except FileNotFoundError:
            raise missing from None
        except OSError as exc:
            raise ModelPackError(f"cannot read {label}: {exc.strerror or exc}") from exc
        with fh:
            yield fh

    def read_bytes(self, relative: str, *, cap: int | None = None,
                   what: str = "one file of a model pack") -> bytes:
        """Bytes of one file of the pack, refused past ``cap`` (default: the file cap)."""
        limit = self.limits.file_bytes if cap is None else cap
        out = bytearray()
        with self._member(relative) as fh:
            if copy_capped(fh, out.extend, limit) is None:
                raise too_large(f"{self.source.name}/{relative}", limit, what)
        return bytes(out)

    def file_sha256(self, relative: str) -> str:
        h = hashlib.sha256()
        with self._member(relative) as fh:
            if copy_capped(fh, h.update, self.limits.file_bytes) is None:
                raise too_large(f"{self.source.name}/{relative}", self.limits.file_bytes,
                                "one file of a model pack")
        return h.hexdigest()

    def verify(self) -> None:
        """Check every ONNX file against its sha256; raises naming the file that differs."""
        for entry in self.manifest.files:
            _check_hash(self.id, entry.path, self.file_sha256(entry.path), entry.sha256)
        self._verified = True

    def onnx_bytes(self) -> list[bytes]:
        """The ONNX files' bytes, in manifest order, each checked against its sha256."""
        out = []
        for entry in self.manifest.files:
            data = self.read_bytes(entry.path)
            _check_hash(self.id, entry.path, sha256_bytes(data), entry.sha256)
            out.append(data)
        self._verified = True
        return out

    def model_card(self) -> str:
        """The card's text, or a line saying why it cannot be shown."""
        try:
            data = self.read_bytes(self.manifest.model_card, cap=self.limits.card_bytes,
                                   what="a model card")
        except ModelPackError as exc:
            return f"# {self.manifest.name}\n\n(The model card cannot be shown: {exc}.)\n"
        return data.decode("utf-8", errors="replace")

    def hashes(self) -> dict[str, str]:
        return {f.path: f.sha256 for f in self.manifest.files}

    def copy_to(self, dest: Path) -> None:
        """Write every file of the pack into the new folder ``dest``, within the limits."""
        budget = _Budget(self.limits, self.source.name)
        if not self.is_zip:
            _copy_folder(self.source, dest, "", 0, budget)
            return
        with self._zip() as zf:
            members = zip_index(zf, self.source.name, self.limits)
            dest.mkdir()
            for key, info in members.items():
                out = dest.joinpath(*key.split("/"))
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fh:
                    budget.copy(fh, out, f"{self.source.name}/{key}")


def _check_hash(pack_id: str, path: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise ModelPackError(
            f"model pack {pack_id}: {path} has sha256 {actual[:16]}…, the manifest "
            f"says {expected[:16]}…; the file is damaged or was changed — "
            "do not use this pack, get a fresh copy from its publisher"
        )


def _placeholder() -> Manifest:
    # Replaced right away in ModelPack.open; avoids an Optional manifest everywhere.
    return Manifest.model_construct()
