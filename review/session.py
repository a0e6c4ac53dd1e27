"""The review session of one model run (skeleton: signatures are the contract)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from core.volume import LabelMap
from review.model import Reason, ReviewFinding, SparseMask

if TYPE_CHECKING:
    from store.library import Library

Listener = Callable[[list[str]], None]


class ReviewError(Exception):
    """A review action that is refused (signed off, pending findings, unknown key)."""


class ReviewSession:
    run_id: int
    series_uid: str
    affine: npt.NDArray[np.float64]
    shape: tuple[int, int, int]
    reviewer: str
    signed_off: bool

    @classmethod
    def open(cls, library: Library, run_id: int, *, reviewer: str | None = None
             ) -> ReviewSession:
        raise NotImplementedError

    @property
    def findings(self) -> list[ReviewFinding]:
        raise NotImplementedError

    def get(self, key: str) -> ReviewFinding:
        raise NotImplementedError

    def set_reviewer(self, name: str) -> None:
        raise NotImplementedError

    def accept(self, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def reject(self, keys: Iterable[str], reason: Reason, text: str = "") -> None:
        raise NotImplementedError

    def reset(self, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def paint(self, key: str, voxels: SparseMask, *, erase: bool) -> None:
        raise NotImplementedError

    def add_finding(self, label_name: str, mask: SparseMask, label_value: int = 1) -> str:
        raise NotImplementedError

    def interpolate(self, key: str) -> None:
        raise NotImplementedError

    def undo(self) -> str | None:
        raise NotImplementedError

    def redo(self) -> str | None:
        raise NotImplementedError

    @property
    def can_undo(self) -> bool:
        raise NotImplementedError

    @property
    def can_redo(self) -> bool:
        raise NotImplementedError

    @property
    def undo_text(self) -> str | None:
        raise NotImplementedError

    @property
    def redo_text(self) -> str | None:
        raise NotImplementedError

    def progress(self) -> tuple[int, int]:
        raise NotImplementedError

    def next_pending(self, after_key: str | None = None) -> str | None:
        raise NotImplementedError

    def previous_pending(self, before_key: str | None) -> str | None:
        raise NotImplementedError

    def kept(self) -> list[ReviewFinding]:
        raise NotImplementedError

    def sign_off(self) -> None:
        raise NotImplementedError

    def reopen(self) -> None:
        raise NotImplementedError

    def add_listener(self, callback: Listener) -> None:
        raise NotImplementedError

    def remove_listener(self, callback: Listener) -> None:
        raise NotImplementedError

    def label_map(self) -> LabelMap:
        raise NotImplementedError


__all__ = ["Listener", "ReviewError", "ReviewSession", "Sequence"]
