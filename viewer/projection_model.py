"""Pure helpers of the 2-D projection view: letters, VOI choices, distances (no Qt, no VTK)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.projection import ProjectionImage, SpacingKind, VoiFunction
from core.voi import auto_window, default_window, full_range_window

_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def opposite_direction(value: str) -> str:
    """"L" → "R", "LF" → "RH" (each letter of a compound Patient Orientation value)."""
    return "".join(_OPPOSITE.get(ch, ch) for ch in value.strip().upper())


def edge_letters(orientation: tuple[str, str] | None) -> dict[str, str]:
    """Letters on the four edges from Patient Orientation (row direction, column direction).

    The first value is where a row runs (towards the right edge), the second where a
    column runs (towards the bottom edge); left and top show their opposites. No
    orientation: no letters (never invented ones).
    """
    if orientation is None:
        return {"left": "", "right": "", "top": "", "bottom": ""}
    row, col = (v.strip().upper() for v in orientation)
    return {"right": row, "left": opposite_direction(row) if row else "",
            "bottom": col, "top": opposite_direction(col) if col else ""}


@dataclass(frozen=True)
class VoiChoice:
    """One entry of the F-key cycle: a file window, a file VOI LUT, auto or full range."""

    label: str                        # shown beside W/L: "file: CHEST", "auto", "full range"
    kind: str                         # "window" or "lut"
    index: int = 0                    # which file window / LUT
    center: float = 0.0
    width: float = 1.0
    function: VoiFunction = VoiFunction.LINEAR


def voi_choices(image: ProjectionImage, frame: Any) -> list[VoiChoice]:
    """The file's windows and VOI LUTs first (its default first), then auto and full range.

    CT presets in HU mean nothing on a radiograph or ultrasound, so they are not offered.
    """
    out: list[VoiChoice] = []
    for i, w in enumerate(image.voi_windows):
        name = w.explanation or (f"{i + 1}" if len(image.voi_windows) > 1 else "")
        label = "file" + (f": {name}" if name else "")
        if w.function is not VoiFunction.LINEAR:
            label += f", {w.function.value.lower().replace('_', ' ')}"   # "file: A, sigmoid"
        out.append(VoiChoice(label, "window", i, w.center, w.width, w.function))
    for i, lut in enumerate(image.voi_luts):
        name = lut.explanation or f"LUT {i + 1}"
        out.append(VoiChoice(f"file: {name}", "lut", i))
    ac, aw = auto_window(frame)
    out.append(VoiChoice("auto", "window", 0, ac, aw))
    fc, fw = full_range_window(image)
    out.append(VoiChoice("full range", "window", 0, fc, fw))
    return out


def spacing_text(image: ProjectionImage) -> str:
    """"0.143 × 0.143 mm at detector" or "uncalibrated px"."""
    if image.pixel_spacing_mm is None:
        return str(SpacingKind.UNCALIBRATED)
    r, c = image.pixel_spacing_mm
    size = f"{r:.3g} mm" if math.isclose(r, c) else f"{r:.3g} × {c:.3g} mm"
    return f"{size} {image.spacing_kind}"


@dataclass
class Distance:
    """A length between two pixel positions (row, col; the DICOM pixel-centre convention)."""

    a: tuple[float, float]
    b: tuple[float, float]
    frame: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def compute(self, image: ProjectionImage) -> None:
        dr, dc = self.b[0] - self.a[0], self.b[1] - self.a[1]
        if image.pixel_spacing_mm is None:
            length = math.hypot(dr, dc)
            self.stats = {"length_px": round(length, 2)}
            self.label = f"{length:.1f} px"
        else:
            rs, cs = image.pixel_spacing_mm
            length = math.hypot(dr * rs, dc * cs)
            self.stats = {"length_mm": round(length, 2), "spacing": str(image.spacing_kind)}
            self.label = f"{length:.1f} mm {image.spacing_kind}"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Distance:
        """Back from ``record`` (ValueError for a slice view's or a damaged record)."""
        if record.get("view") != "projection" or record.get("kind") != "distance":
            raise ValueError(f"not a 2-D image distance: {record.get('kind')!r} "
                             f"in {record.get('view')!r}")
        (ar, ac), (br, bc) = record["points_px"]
        return cls(a=(float(ar), float(ac)), b=(float(br), float(bc)),
                   frame=int(record.get("frame", 0)))

    def record(self, series_uid: str) -> dict[str, Any]:
        """JSON-able, like the slice views' records but in pixel positions, not LPS."""
        return {"kind": "distance", "view": "projection", "series_uid": series_uid,
                "points_px": [list(self.a), list(self.b)], "frame": self.frame,
                "stats": dict(self.stats), "label": self.label}


def default_choice(image: ProjectionImage, frame: Any) -> VoiChoice:
    """What the image opens with: the file's first window, else its first LUT, else auto."""
    choices = voi_choices(image, frame)
    if image.voi_windows or image.voi_luts:
        return choices[0]
    if image.is_colour:
        return choices[-1]
    return next(c for c in choices if c.label == "auto")


def lut_equivalent_window(image: ProjectionImage, index: int) -> tuple[float, float]:
    """(center, width) spanned by a VOI LUT's input range: where a drag starts from it."""
    lut = image.voi_luts[index]
    n = int(np.asarray(lut.data).size)
    return lut.first_mapped + n / 2.0, float(max(n, 1))


__all__ = ["Distance", "VoiChoice", "default_choice", "default_window", "edge_letters",
           "lut_equivalent_window", "opposite_direction", "spacing_text", "voi_choices"]
