"""Where model packs live: bundled in ``resources/models``, installed in ``<library>/models``."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import ModelPackError
from inference.pack import MANIFEST_NAME, ModelPack

log = logging.getLogger(__name__)

_MAX_UNPACKED_BYTES = 8 << 30


def bundled_models_dir() -> Path:
    """``resources/models`` of this installation (found without importing ``resources``)."""
    return Path(__file__).resolve().parent.parent / "resources" / "models"


@dataclass
class PackProblem:
    """A pack folder that could not be read; listed so the user sees why it is missing."""

    source: Path
    message: str


class Registry:
    """Bundled plus user packs; a user pack with the same id replaces the bundled one."""

    def __init__(self, user_dir: Path, bundled_dir: Path | None = None) -> None:
        self.user_dir = Path(user_dir)
        self.bundled_dir = bundled_models_dir() if bundled_dir is None else Path(bundled_dir)
        self.problems: list[PackProblem] = []

    @classmethod
    def for_library(cls, library_dir: Path) -> Registry:
        return cls(Path(library_dir) / "models")

    def _scan(self, folder: Path, bundled: bool) -> list[ModelPack]:
        packs: list[ModelPack] = []
        if not folder.is_dir():
            return packs
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if not (
                (entry.is_dir() and (entry / MANIFEST_NAME).is_file())
                or (entry.is_file() and entry.suffix == ".zip")
            ):
                continue
            try:
                packs.append(ModelPack.open(entry, bundled=bundled))
            except ModelPackError as exc:
                self.problems.append(PackProblem(entry, str(exc)))
                log.warning("skipping model pack %s: %s", entry.name, exc)
        return packs

    def list(self) -> list[ModelPack]:
        self.problems = []
        by_id: dict[str, ModelPack] = {}
        for pack in self._scan(self.bundled_dir, True) + self._scan(self.user_dir, False):
            by_id[pack.id] = pack
        return sorted(by_id.values(), key=lambda p: p.id)

    def get(self, pack_id: str) -> ModelPack:
        for pack in self.list():
            if pack.id == pack_id:
                return pack
        known = ", ".join(p.id for p in self.list()) or "none"
        raise ModelPackError(
            f"no model pack with id {pack_id!r} (installed: {known}); "
            "see `lucida models list` or install one with `lucida models install PACK`"
        )

    def resolve(self, ref: str | Path) -> ModelPack:
        """A pack by id, or by a path to a pack folder / ``.zip``."""
        path = Path(ref)
        if path.exists():
            return ModelPack.open(path)
        return self.get(str(ref))

    def install(self, source: str | Path, *, replace: bool = False) -> ModelPack:
        """Copy a pack (folder or .zip) into the user folder after checking every hash."""
        src = Path(source).expanduser()
        pack = ModelPack.open(src)
        pack.verify()  # refuses a hash mismatch, naming the file
        self.user_dir.mkdir(parents=True, exist_ok=True)
        target = self.user_dir / pack.id
        if target.exists() and not replace:
            raise ModelPackError(
                f"a model pack {pack.id!r} is already installed at {target}; "
                "remove it first (`lucida models remove ID`) or install with --replace"
            )
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.user_dir))
        try:
            unpacked = staging / pack.id
            if src.is_dir():
                shutil.copytree(src, unpacked)
            else:
                _safe_extract(src, unpacked)
            installed = ModelPack.open(unpacked)
            installed.verify()
            if installed.id != pack.id:
                raise ModelPackError("the pack changed while it was being installed")
            if target.exists():
                shutil.rmtree(target)
            unpacked.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("installed model pack %s %s", pack.id, pack.manifest.version)
        return ModelPack.open(target)

    def remove(self, pack_id: str) -> Path:
        target = self.user_dir / pack_id
        if not (target / MANIFEST_NAME).is_file():
            for pack in self.list():
                if pack.id == pack_id and pack.bundled:
                    raise ModelPackError(
                        f"{pack_id!r} is bundled with Lucida and cannot be removed"
                    )
            raise ModelPackError(f"no installed model pack {pack_id!r} in {self.user_dir}")
        shutil.rmtree(target)
        return target


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unzip refusing absolute paths, '..', links and zip bombs; strips one top folder."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in infos)
            if total > _MAX_UNPACKED_BYTES:
                raise ModelPackError(f"{archive.name} unpacks to {total} bytes; refusing")
            names = [PurePosixPath(i.filename) for i in infos]
            for n in names:
                if n.is_absolute() or ".." in n.parts or "\\" in str(n):
                    raise ModelPackError(f"{archive.name} holds an unsafe path {n}")
            strip = 0
            if MANIFEST_NAME not in {str(n) for n in names}:
                tops = {n.parts[0] for n in names}
                if len(tops) == 1:
                    strip = 1
            dest.mkdir(parents=True)
            for info, name in zip(infos, names, strict=True):
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ModelPackError(f"{archive.name} holds a symbolic link {name}")
                parts = name.parts[strip:]
                if not parts:
                    continue
                out = dest.joinpath(*parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fin, out.open("wb") as fout:
                    shutil.copyfileobj(fin, fout)
    except zipfile.BadZipFile as exc:
        raise ModelPackError(f"{archive.name} is not a readable .zip ({exc})") from exc
