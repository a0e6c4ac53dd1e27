"""Where model packs live: bundled in ``resources/models``, installed in ``<library>/models``.

An id names a pack, never a path: every id is checked against the manifest's id rule
before it touches the file system, and only direct children of the user models
folder that are real folders (or ``.zip`` files), not links, are ever replaced or
removed. Installs are staged in a hidden folder beside the target and moved in at the
end, so a failed install leaves nothing behind and an installed pack it would replace
is untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelPackError
from inference.manifest import Manifest, MaskByStep, is_pack_id, validate_pack_id
from inference.pack import DEFAULT_LIMITS, MANIFEST_NAME, ModelPack, PackLimits, kind_of

log = logging.getLogger(__name__)


def bundled_models_dir() -> Path:
    """``resources/models`` of this installation (found without importing ``resources``)."""
    return Path(__file__).resolve().parent.parent / "resources" / "models"


@dataclass
class PackProblem:
    """A pack folder that could not be read; listed so the user sees why it is missing."""

    source: Path
    message: str


def _lmode(path: Path) -> int | None:
    """``st_mode`` of ``path`` itself (a link is not followed); None when it is absent."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


class Registry:
    """Bundled plus user packs; a user pack with the same id replaces the bundled one."""

    def __init__(self, user_dir: Path, bundled_dir: Path | None = None, *,
                 limits: PackLimits = DEFAULT_LIMITS) -> None:
        self.user_dir = Path(user_dir)
        self.bundled_dir = bundled_models_dir() if bundled_dir is None else Path(bundled_dir)
        self.limits = limits
        self.problems: list[PackProblem] = []

    @classmethod
    def for_library(cls, library_dir: Path) -> Registry:
        return cls(Path(library_dir) / "models")

    def _scan(self, folder: Path, bundled: bool) -> list[ModelPack]:
        packs: list[ModelPack] = []
        if not folder.is_dir():
            return packs
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")):  # staging folders, notes
                continue
            mode = _lmode(entry)
            if mode is None:
                continue
            if stat.S_ISLNK(mode):
                self.problems.append(PackProblem(entry, (
                    f"{entry} is a symbolic link; Lucida does not follow links in a models "
                    "folder: delete the link and install the pack with "
                    "`lucida models install PACK`")))
                continue
            if not ((stat.S_ISDIR(mode) and _lmode(entry / MANIFEST_NAME) is not None)
                    or (stat.S_ISREG(mode) and entry.suffix == ".zip")):
                continue
            try:
                packs.append(ModelPack.open(entry, bundled=bundled, limits=self.limits))
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
        validate_pack_id(pack_id)
        packs = self.list()
        for pack in packs:
            if pack.id == pack_id:
                return pack
        known = ", ".join(p.id for p in packs) or "none"
        raise ModelPackError(
            f"no model pack with id {pack_id!r} (installed: {known}); "
            "see `lucida models list` or install one with `lucida models install PACK`"
        )

    def resolve(self, ref: str | Path) -> ModelPack:
        """A pack by id (first), else by a path to a pack folder / ``.zip``."""
        if isinstance(ref, str) and is_pack_id(ref):
            for pack in self.list():
                if pack.id == ref:
                    return pack
        path = Path(ref).expanduser()
        if os.path.lexists(path):
            return ModelPack.open(path, limits=self.limits)
        if isinstance(ref, str) and is_pack_id(ref):
            return self.get(ref)
        raise ModelPackError(f"{str(ref)!r} is neither the id of a model pack (see `lucida "
                             "models list`) nor an existing pack folder or .zip")

    def _target(self, pack_id: str) -> Path:
        """``<user models>/<id>``: a direct child of the models folder, whatever the id."""
        validate_pack_id(pack_id)
        target = self.user_dir / pack_id
        if target.parent != self.user_dir or target.name != pack_id:
            raise ModelPackError(f"{pack_id!r} does not name a folder in {self.user_dir}")
        return target

    def install(self, source: str | Path, *, replace: bool = False) -> ModelPack:
        """Copy a pack (folder or .zip) into the user folder after checking every hash."""
        src = Path(source).expanduser()
        pack = ModelPack.open(src, limits=self.limits)
        pack.verify()  # refuses a hash mismatch, naming the file
        target = self._target(pack.id)
        mode = _lmode(target)
        if mode is not None and not stat.S_ISDIR(mode):
            raise ModelPackError(
                f"{target} exists and is {kind_of(mode)}, not an installed pack; nothing was "
                "changed: move it out of the models folder and install again")
        if mode is not None and not replace:
            raise ModelPackError(
                f"a model pack {pack.id!r} is already installed at {target}; "
                "remove it first (`lucida models remove ID`) or install with --replace"
            )
        try:
            self.user_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.user_dir))
        except OSError as exc:
            raise ModelPackError(f"cannot write to the models folder {self.user_dir}: "
                                 f"{exc.strerror or exc}; check its permissions") from exc
        try:
            if not pack.is_zip and _inside(self.user_dir, src):
                raise ModelPackError(f"{src} holds the models folder {self.user_dir}; choose "
                                     "the pack's own folder")
            unpacked = staging / pack.id
            pack.copy_to(unpacked)
            installed = ModelPack.open(unpacked, limits=self.limits)
            installed.verify()
            if installed.manifest != pack.manifest:
                raise ModelPackError(f"{src} changed while it was being installed; try again")
            _move_in(unpacked, target, staging / "previous")
        except OSError as exc:
            raise ModelPackError(
                f"could not install {pack.id} into {self.user_dir}: {exc.strerror or exc}; "
                "nothing was installed: check free disk space and permissions") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("installed model pack %s %s", pack.id, pack.manifest.version)
        return ModelPack.open(target, limits=self.limits)

    def remove(self, pack_id: str) -> tuple[Path, ...]:
        """Delete the installed pack(s) with this id from the user models folder."""
        target = self._target(pack_id)
        mine = tuple(p.source for p in self._scan(self.user_dir, False) if p.id == pack_id)
        if not mine:
            if any(p.id == pack_id and p.bundled for p in self.list()):
                raise ModelPackError(f"{pack_id!r} is bundled with Lucida and cannot be removed")
            mode = _lmode(target)
            if mode is not None:
                raise ModelPackError(
                    f"{target} is {kind_of(mode)}, not an installed model pack (see `lucida "
                    "models list`); nothing was removed")
            raise ModelPackError(f"no installed model pack {pack_id!r} in {self.user_dir}")
        for path in mine:
            mode = _lmode(path)
            # _scan only yields real folders and .zip files directly in user_dir; re-checked
            # here because this is the one place that deletes.
            if path.parent != self.user_dir or mode is None or stat.S_ISLNK(mode):
                raise ModelPackError(f"{path} is not a pack in {self.user_dir}; nothing removed")
            # Out of sight first: an interrupted delete leaves a hidden folder, not half a pack.
            trash = self.user_dir / f".remove-{uuid.uuid4().hex}"
            try:
                os.rename(path, trash)
                if stat.S_ISDIR(mode):
                    shutil.rmtree(trash)
                else:
                    trash.unlink()
            except OSError as exc:
                raise ModelPackError(f"could not remove {path}: {exc.strerror or exc}; check "
                                     "the permissions of the models folder") from exc
            log.info("removed model pack %s (%s)", pack_id, path)
        return mine


def _inside(folder: Path, maybe_parent: Path) -> bool:
    return folder.resolve().is_relative_to(maybe_parent.resolve())


def _move_in(unpacked: Path, target: Path, previous: Path) -> None:
    """Rename ``unpacked`` to ``target``; an existing ``target`` is put back if that fails."""
    if _lmode(target) is None:
        os.rename(unpacked, target)
        return
    os.rename(target, previous)
    try:
        os.rename(unpacked, target)
    except OSError:
        os.rename(previous, target)
        raise


def mask_packs(manifest: Manifest, packs: Iterable[ModelPack]) -> dict[str, str]:
    """Where the packs that ``manifest``'s ``mask_by`` steps need are (by id), for
    ``pipeline.run(mask_packs=...)``; a pack that is not installed is named in the error."""
    have = {p.id: str(p.source) for p in packs}
    out: dict[str, str] = {}
    for step in manifest.postprocessing:
        if isinstance(step, MaskByStep):
            if step.model not in have:
                raise ModelPackError(
                    f"{manifest.id} keeps its findings inside the output of model "
                    f"{step.model!r}, which is not installed; install that pack first")
            out[step.model] = have[step.model]
    return out
