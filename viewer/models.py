"""Plain models the views render: window/level, cursor, slab, measurements.

They hold state and emit Qt signals (QtCore only, no widgets), so tests can
drive them without a window and several views can share one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QObject, Signal

from viewer.measure import Measurement
from viewer.presets import AUTO, PRESETS, RELATIVE_PRESETS, auto_window, relative_window

SLAB_MODES = ("none", "mip", "minip", "mean")


class WindowLevelModel(QObject):
    """Display window (width, level) in the volume's units, plus the active preset name."""

    changed = Signal(float, float)

    def __init__(self, width: float = 400.0, level: float = 40.0) -> None:
        super().__init__()
        self._width = float(width)
        self._level = float(level)
        self.preset = ""

    @property
    def width(self) -> float:
        return self._width

    @property
    def level(self) -> float:
        return self._level

    def set(self, width: float, level: float, preset: str = "") -> None:
        width = max(float(width), 1e-3)
        self.preset = preset
        if (width, float(level)) == (self._width, self._level):
            return
        self._width, self._level = width, float(level)
        self.changed.emit(self._width, self._level)

    def apply_preset(self, name: str, array: npt.NDArray[Any] | None) -> None:
        """A CT preset (brain … bone, see PRESETS), one computed from ``array``
        (RELATIVE_PRESETS, for MR and other non-HU images) or "auto": percentiles of
        ``array`` (without an array those leave the window as it is)."""
        if name == AUTO:
            if array is not None:
                w, lev = auto_window(array)
                self.set(w, lev, AUTO)
            return
        if name in RELATIVE_PRESETS:  # computed from the volume (MR and other non-HU)
            if array is not None:
                w, lev = relative_window(name, array)
                self.set(w, lev, name)
            return
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}, "
                             f"{sorted(RELATIVE_PRESETS)} or 'auto'")
        p = PRESETS[name]
        self.set(p.width, p.level, name)

    def grey(self, value: float) -> float:
        """Displayed grey (0–255) of a voxel value under this window."""
        lo = self._level - self._width / 2.0
        return float(np.clip((value - lo) / self._width, 0.0, 1.0) * 255.0)


class CursorModel(QObject):
    """The linked cursor: one LPS point (mm) shared by all views."""

    changed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._lps = np.zeros(3)

    @property
    def lps(self) -> np.ndarray:
        return self._lps.copy()

    def set(self, lps: Sequence[float]) -> None:
        p = np.asarray(lps, dtype=np.float64).reshape(3)
        if np.array_equal(p, self._lps):
            return
        self._lps = p
        self.changed.emit(self._lps.copy())


class SlabModel(QObject):
    """Thick-slab rendering: mode ("none", "mip", "minip", "mean") and thickness in mm."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.mode = "none"
        self.thickness_mm = 0.0

    def set(self, mode: str, thickness_mm: float) -> None:
        if mode not in SLAB_MODES:
            raise ValueError(f"slab mode must be one of {SLAB_MODES}, got {mode!r}")
        if thickness_mm < 0:
            raise ValueError(f"slab thickness must be ≥ 0 mm, got {thickness_mm}")
        self.mode, self.thickness_mm = mode, float(thickness_mm)
        self.changed.emit()


class MeasurementList(QObject):
    """Ordered measurements of the open series; ``selected`` is an index or -1."""

    changed = Signal()
    selection_changed = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Measurement] = []
        self.selected = -1

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Measurement:
        return self._items[index]

    def items(self) -> list[Measurement]:
        return list(self._items)

    def add(self, m: Measurement) -> int:
        self._items.append(m)
        self.changed.emit()
        return len(self._items) - 1

    def replace_all(self, items: Sequence[Measurement]) -> None:
        self._items = list(items)
        self.selected = -1
        self.changed.emit()

    def delete(self, index: int) -> None:
        if not 0 <= index < len(self._items):
            raise IndexError(f"no measurement {index} (have {len(self._items)})")
        del self._items[index]
        if self.selected == index:
            self.selected = -1
        elif self.selected > index:
            self.selected -= 1
        self.changed.emit()

    def select(self, index: int) -> None:
        if not -1 <= index < len(self._items):
            raise IndexError(f"no measurement {index} (have {len(self._items)})")
        self.selected = index
        self.selection_changed.emit(index)

    def records(self) -> list[dict[str, Any]]:
        return [m.to_record() for m in self._items]
