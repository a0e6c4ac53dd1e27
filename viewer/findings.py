"""Findings layer model: AI / reader findings as masks with a review status.

A plain model (QtCore signals only, no widgets) shared by every slice view;
each view draws it with ``viewer.findings_visual``. Masks are crops on the
shown volume's voxel grid: ``offset`` (k, j, i) is the crop's first voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QObject, Signal

STATUSES = ("pending", "accepted", "rejected", "edited", "added-by-reader", "imported")
SOLID_STATUSES = ("accepted", "edited", "added-by-reader")


@dataclass(frozen=True)
class FindingShape:
    """One finding: a bool mask crop on the volume grid, its colour, status and short tag."""

    key: str
    offset: tuple[int, int, int]
    mask: npt.NDArray[np.bool_] = field(repr=False)
    color_rgb: tuple[int, int, int] = (255, 196, 0)
    status: str = "pending"
    tag: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        m = np.asarray(self.mask)
        if m.ndim != 3:
            raise ValueError(f"mask must be 3-D (k, j, i), got shape {m.shape}")
        object.__setattr__(self, "mask", m.astype(bool, copy=False))
        object.__setattr__(self, "offset", tuple(int(v) for v in self.offset))
        object.__setattr__(self, "color_rgb", tuple(int(v) for v in self.color_rgb))

    def with_status(self, status: str) -> FindingShape:
        return replace(self, status=status)

    def contains_index(self, kji: npt.ArrayLike) -> bool:
        """Whether voxel (k, j, i) of the volume grid is inside the mask."""
        rel = np.asarray(kji, dtype=int) - np.asarray(self.offset)
        if np.any(rel < 0) or np.any(rel >= np.asarray(self.mask.shape)):
            return False
        return bool(self.mask[rel[0], rel[1], rel[2]])


class FindingsLayer(QObject):
    """Findings plus their display style; signals tell the views what to redraw.

    ``shape_changed(key)`` — that one finding was added, edited or removed
    (redraw only it); ``changed()`` — the whole set or the style changed.
    """

    changed = Signal()
    shape_changed = Signal(str)
    selection_changed = Signal(object)     # key or None

    def __init__(self) -> None:
        super().__init__()
        self._shapes: dict[str, FindingShape] = {}
        self._selected: str | None = None
        self._style: dict[str, Any] = {"opacity": 0.25, "fill": True, "outline": True,
                                       "visible": True, "show_rejected": False}

    # -- findings
    def set_findings(self, shapes: list[FindingShape]) -> None:
        self._shapes = {s.key: s for s in shapes}
        if self._selected not in self._shapes:
            self._selected = None
        self.changed.emit()

    def update(self, shape: FindingShape) -> None:
        """Add or replace one finding (a brush stroke, a status change)."""
        self._shapes[shape.key] = shape
        self.shape_changed.emit(shape.key)

    def remove(self, key: str) -> None:
        if self._shapes.pop(key, None) is not None:
            if self._selected == key:
                self._selected = None
                self.selection_changed.emit(None)
            self.shape_changed.emit(key)

    def get(self, key: str) -> FindingShape | None:
        return self._shapes.get(key)

    def shapes(self) -> list[FindingShape]:
        return list(self._shapes.values())

    def keys(self) -> list[str]:
        return list(self._shapes)

    def set_selected(self, key: str | None) -> None:
        if key is not None and key not in self._shapes:
            raise KeyError(key)
        if key == self._selected:
            return
        old, self._selected = self._selected, key
        self.selection_changed.emit(key)
        for k in (old, key):
            if k is not None and k in self._shapes:
                self.shape_changed.emit(k)

    @property
    def selected(self) -> str | None:
        return self._selected

    def hit(self, kji: npt.ArrayLike) -> str | None:
        """Key of a shown finding holding voxel (k, j, i); the selected one wins."""
        keys = sorted(self._shapes, key=lambda k: k != self._selected)
        for key in keys:
            s = self._shapes[key]
            if s.status == "rejected" and not self.show_rejected:
                continue
            if s.contains_index(kji):
                return key
        return None

    # -- style
    def _set_style(self, name: str, value: Any) -> None:
        if self._style[name] != value:
            self._style[name] = value
            self.changed.emit()

    @property
    def opacity(self) -> float:
        return float(self._style["opacity"])

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._set_style("opacity", float(np.clip(value, 0.0, 1.0)))

    @property
    def fill(self) -> bool:
        return bool(self._style["fill"])

    @fill.setter
    def fill(self, value: bool) -> None:
        self._set_style("fill", bool(value))

    @property
    def outline(self) -> bool:
        return bool(self._style["outline"])

    @outline.setter
    def outline(self, value: bool) -> None:
        self._set_style("outline", bool(value))

    @property
    def visible(self) -> bool:
        return bool(self._style["visible"])

    @visible.setter
    def visible(self, value: bool) -> None:
        self._set_style("visible", bool(value))

    @property
    def show_rejected(self) -> bool:
        return bool(self._style["show_rejected"])

    @show_rejected.setter
    def show_rejected(self, value: bool) -> None:
        self._set_style("show_rejected", bool(value))
