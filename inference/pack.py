"""A model pack on disk: a folder or a ``.zip`` with manifest, ONNX files and a model card."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import ModelPackError
from inference.manifest import Manifest, parse_manifest

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelPack:
    """A validated manifest plus access to the pack's files.

    ``source`` is the folder or the ``.zip``; files are read on demand.
    """

    source: Path
    manifest: Manifest
    bundled: bool = False
    _verified: bool = field(default=False, repr=False)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def is_zip(self) -> bool:
        return self.source.is_file()

    @classmethod
    def open(cls, path: str | Path, *, bundled: bool = False) -> ModelPack:
        """Read and validate the manifest of a pack folder or ``.zip``."""
        source = Path(path).expanduser()
        if not source.exists():
            raise ModelPackError(f"model pack {source} does not exist")
        pack = cls(source=source, manifest=_placeholder(), bundled=bundled)
        raw = pack.read_bytes(MANIFEST_NAME)
        pack.manifest = parse_manifest(raw, f"{source.name}/{MANIFEST_NAME}")
        return pack

    def read_bytes(self, relative: str) -> bytes:
        """Bytes of one file of the pack (``relative`` uses '/' separators)."""
        rel = PurePosixPath(relative)
        if rel.is_absolute() or ".." in rel.parts:
            raise ModelPackError(f"{relative!r} points outside the model pack")
        if self.source.is_dir():
            path = self.source.joinpath(*rel.parts)
            if not path.is_file():
                raise ModelPackError(f"model pack {self.source.name} has no file {relative}")
            return path.read_bytes()
        try:
            with zipfile.ZipFile(self.source) as zf:
                name = _zip_member(zf, relative)
                if name is None:
                    raise ModelPackError(f"model pack {self.source.name} has no file {relative}")
                return zf.read(name)
        except zipfile.BadZipFile as exc:
            raise ModelPackError(f"{self.source.name} is not a readable .zip ({exc})") from exc

    def file_sha256(self, relative: str) -> str:
        if self.source.is_dir():
            path = self.source.joinpath(*PurePosixPath(relative).parts)
            if not path.is_file():
                raise ModelPackError(f"model pack {self.source.name} has no file {relative}")
            return sha256_file(path)
        return sha256_bytes(self.read_bytes(relative))

    def verify(self) -> None:
        """Check every ONNX file against its sha256; raises naming the file that differs."""
        for entry in self.manifest.files:
            actual = self.file_sha256(entry.path)
            if actual != entry.sha256:
                raise ModelPackError(
                    f"model pack {self.id}: {entry.path} has sha256 {actual[:16]}…, the manifest "
                    f"says {entry.sha256[:16]}…; the file is damaged or was changed — "
                    "do not use this pack, get a fresh copy from its publisher"
                )
        self._verified = True

    def onnx_bytes(self) -> list[bytes]:
        """The ONNX files' bytes, in manifest order, each checked against its sha256."""
        out = []
        for entry in self.manifest.files:
            data = self.read_bytes(entry.path)
            actual = sha256_bytes(data)
            if actual != entry.sha256:
                raise ModelPackError(
                    f"model pack {self.id}: {entry.path} has sha256 {actual[:16]}…, the manifest "
                    f"says {entry.sha256[:16]}…; the file is damaged or was changed — "
                    "do not use this pack, get a fresh copy from its publisher"
                )
            out.append(data)
        self._verified = True
        return out

    def model_card(self) -> str:
        try:
            return self.read_bytes(self.manifest.model_card).decode("utf-8", errors="replace")
        except ModelPackError:
            return f"# {self.manifest.name}\n\n(This pack has no model card.)\n"

    def hashes(self) -> dict[str, str]:
        return {f.path: f.sha256 for f in self.manifest.files}


def _zip_member(zf: zipfile.ZipFile, relative: str) -> str | None:
    """Name of ``relative`` in the zip, also when the pack sits in one top folder."""
    names = zf.namelist()
    if relative in names:
        return relative
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1:
        candidate = f"{next(iter(tops))}/{relative}"
        if candidate in names:
            return candidate
    return None


def _placeholder() -> Manifest:
    # Replaced right away in ModelPack.open; avoids an Optional manifest everywhere.
    return Manifest.model_construct()
