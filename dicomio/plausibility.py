"""Plausibility of every header value that feeds a Volume's affine and grid.

Each check takes the numbers of one DICOM element and returns the value to
use — possibly corrected, with a :class:`Note` the user will see — or raises
:class:`ImplausibleValue` (a :class:`~core.errors.DicomReadError`) whose
message names the element and the value, e.g. ``PixelSpacing 0\\0.7 is not
positive``. The loader turns a refusal into "this file (or frame) is left
out", and into an error when nothing is left (see :mod:`dicomio.load`).

The rule behind the thresholds: a value is **refused** when it is impossible
(wrong count, NaN/inf, zero or negative lengths) or beyond what any imaging
device produces, because then no correction can be trusted; it is
**corrected with a warning** when it is near a valid value and the correction
is small and well defined (a direction cosine vector that is not quite unit
length or not quite perpendicular); it is corrected **silently** only within
the rounding of DICOM's decimal strings (DS, at most 16 characters), which
real scanners produce all the time.

========================  ==========================================  ====================
value                     refused                                     corrected, warned
========================  ==========================================  ====================
ImageOrientationPatient   ≠ 6 values, NaN/inf, zero vector, length    length off by >1e-3
                          off by ≥ 10 %, row/column > 1° off 90°      (normalised); angle
                                                                      off by > 0.06°
                                                                      (made perpendicular)
ImagePositionPatient      ≠ 3 values, NaN/inf, beyond 100 m           —
PixelSpacing              ≠ 2 values, NaN/inf, ≤ 0, > 100 mm,         —
                          < 1e-4 mm
SliceThickness,           NaN/inf, 0, < 1e-4 mm, > 1000 mm; negative  the loader falls back
SpacingBetweenSlices      except where the sign has a meaning (NM)    to the next source
(only where used)
Rows, Columns             0, > 32768                                  —
========================  ==========================================  ====================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import DicomReadError
from core.volume import VolumeWarning, WarningCode

#: Direction cosines are DS text, rounded by writers to 5–8 digits: a vector
#: length off by up to this much (and a row·column cosine up to this much,
#: 0.06°) is rounding and is corrected without a word.
COSINE_ROUNDING = 1e-3
#: A cosine vector whose length is off by 10 % or more was not a rounded unit
#: vector (cosines truncated to one decimal are still within 5 %).
COSINE_LENGTH_LIMIT = 0.1
#: Row and column more than this far from perpendicular are refused: pixels
#: are square-gridded in every device, so such a header is wrong, and the
#: symmetric correction would move an edge pixel of a 500 mm field by more
#: than 2 mm.
ORTHOGONALITY_LIMIT_DEG = 1.0
#: No part of a patient lies 100 m from the scanner's origin; larger values are
#: corrupt (and, at 1e7 mm, beyond the float32 precision that renderers use).
POSITION_LIMIT_MM = 1e5
#: Pixel sizes outside [0.1 µm, 100 mm] come from no device: whole-slide
#: microscopy at 40× has 2.5e-4 mm pixels, the coarsest gamma cameras ~10 mm.
PIXEL_MIN_MM = 1e-4
PIXEL_MAX_MM = 100.0
#: A slice thickness up to a metre is real: CT localizers state their
#: projection depth (e.g. 650 mm) as SliceThickness.
STEP_MAX_MM = 1000.0
#: Matrices of real images stay below ~17 000 pixels a side (stitched long-leg
#: radiographs, film digitisers); more is a corrupt header, and would be
#: allocated before any pixel data were read.
MATRIX_MAX = 32768


class ImplausibleValue(DicomReadError):
    """A header value that cannot describe a real image; the message names the element."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__(message)
        self.element = element


@dataclass(frozen=True)
class Note:
    """A corrected or suspicious value: ``key`` groups the same problem over many files."""

    key: str
    message: str


def shown(values: Sequence[float] | float) -> str:
    """Values as DICOM writes a multi-valued DS: ``0\\0.7``."""
    items = [values] if isinstance(values, (int, float)) else list(values)
    return "\\".join(f"{float(v):g}" for v in items)


def numbers(raw: Any, element: str) -> tuple[float, ...] | None:
    """The numbers of an element as read by pydicom or the lean reader; None when
    absent or empty. Text that is not a number is refused, naming the element."""
    if raw is None or raw == "":
        return None
    items = [raw] if isinstance(raw, (str, bytes, int, float)) else list(raw)
    if not items:
        return None
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        text = "\\".join(str(v) for v in items)
        raise ImplausibleValue(element, f"{element} '{text}' is not a number") from None


def _finite(values: Sequence[float], element: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ImplausibleValue(element, f"{element} {shown(values)} is not finite")


def _count(values: Sequence[float], n: int, element: str, what: str) -> None:
    if len(values) != n:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} has {len(values)} value(s); it needs {n} "
            f"({what})")


def check_orientation(values: Sequence[float], element: str = "ImageOrientationPatient"
                      ) -> tuple[tuple[float, ...], list[Note]]:
    """Unit, perpendicular row and column cosines, or a refusal (see module doc).

    Always returns an exactly orthonormal pair, so nothing downstream can build
    a sheared in-plane grid from rounding."""
    _count(values, 6, element, "row then column direction cosines")
    _finite(values, element)
    key = element.split(" ")[0]  # the keyword, without "(frame n)": one warning per series
    notes: list[Note] = []
    vectors = []
    for name, v in (("row", np.asarray(values[:3])), ("column", np.asarray(values[3:]))):
        length = float(np.linalg.norm(v))
        if length < 1e-6:
            raise ImplausibleValue(
                element, f"{element} {shown(values)}: the {name} direction is a zero vector")
        if abs(length - 1.0) >= COSINE_LENGTH_LIMIT:
            raise ImplausibleValue(
                element, f"{element} {shown(values)}: the {name} direction has length "
                f"{length:.4g}, not 1 (direction cosines are unit vectors)")
        if abs(length - 1.0) > COSINE_ROUNDING:
            notes.append(Note(
                f"{key}:length",
                f"{element} {shown(values)}: the {name} direction has length {length:.4g}, "
                "not 1; it was normalised"))
        vectors.append(v / length)
    row, col = vectors
    cosine = float(row @ col)
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    off_deg = abs(90.0 - angle)
    if off_deg > ORTHOGONALITY_LIMIT_DEG:
        raise ImplausibleValue(
            element, f"{element} {shown(values)}: row and column are {angle:.2f}° apart, not "
            f"90° (more than {ORTHOGONALITY_LIMIT_DEG:g}° off); the pixel grid would be sheared")
    if abs(cosine) > COSINE_ROUNDING:
        notes.append(Note(
            f"{key}:angle",
            f"{element} {shown(values)}: row and column are {off_deg:.2f}° off perpendicular; "
            f"each was turned by {off_deg / 2:.2f}° to make them perpendicular (positions "
            "at the image edge may be off by that angle)"))
    # Nearest orthonormal pair (polar decomposition): splits the correction
    # evenly between row and column, and is the identity on an exact pair.
    u, _, vt = np.linalg.svd(np.stack([row, col], axis=1), full_matrices=False)
    q = u @ vt
    return tuple(float(x) for x in (*q[:, 0], *q[:, 1])), notes


def check_position(values: Sequence[float], element: str = "ImagePositionPatient"
                   ) -> tuple[float, float, float]:
    _count(values, 3, element, "x, y, z in mm")
    _finite(values, element)
    far = max(abs(v) for v in values)
    if far > POSITION_LIMIT_MM:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} lies {far / 1000:.4g} m from the origin of "
            f"patient space; no patient position is beyond {POSITION_LIMIT_MM / 1000:g} m")
    return float(values[0]), float(values[1]), float(values[2])


def check_pixel_spacing(values: Sequence[float], element: str = "PixelSpacing"
                        ) -> tuple[float, float]:
    _count(values, 2, element, "row spacing, column spacing in mm")
    _finite(values, element)
    if min(values) <= 0:
        raise ImplausibleValue(element, f"{element} {shown(values)} is not positive")
    if max(values) > PIXEL_MAX_MM:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} mm is larger than {PIXEL_MAX_MM:g} mm per "
            "pixel, which no imaging device produces")
    if min(values) < PIXEL_MIN_MM:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} mm is smaller than {PIXEL_MIN_MM:g} mm "
            "(0.1 µm) per pixel, which no imaging device produces")
    return float(values[0]), float(values[1])


def check_slice_step(values: Sequence[float], element: str, *, signed: bool = False) -> float:
    """A slice thickness or spacing in mm; negative only where ``signed`` (NM's
    SpacingBetweenSlices, whose sign gives the stacking direction)."""
    _count(values, 1, element, "one length in mm")
    _finite(values, element)
    value = float(values[0])
    if value == 0 or (value < 0 and not signed):
        raise ImplausibleValue(
            element, f"{element} {shown(values)} is {'zero' if value == 0 else 'negative'}")
    if abs(value) > STEP_MAX_MM:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} mm is larger than {STEP_MAX_MM:g} mm")
    if abs(value) < PIXEL_MIN_MM:
        raise ImplausibleValue(
            element, f"{element} {shown(values)} mm is smaller than {PIXEL_MIN_MM:g} mm")
    return value


def check_matrix(rows: int, columns: int) -> None:
    if rows < 1 or columns < 1:
        raise ImplausibleValue(
            "Rows" if rows < 1 else "Columns",
            f"Rows {rows}, Columns {columns}: the image is empty")
    if max(rows, columns) > MATRIX_MAX:
        raise ImplausibleValue(
            "Rows" if rows > MATRIX_MAX else "Columns",
            f"Rows {rows}, Columns {columns}: more than {MATRIX_MAX} pixels along a side, "
            "which is not a real image matrix")


def summarise(notes: Iterable[Note]) -> list[VolumeWarning]:
    """One warning per kind of note: the first file's text, and how many more had it."""
    first: dict[str, str] = {}
    count: dict[str, int] = {}
    for note in notes:
        first.setdefault(note.key, note.message)
        count[note.key] = count.get(note.key, 0) + 1
    out = []
    for key, message in first.items():
        more = count[key] - 1
        suffix = f" (and in {more} more image(s))" if more else ""
        out.append(VolumeWarning(WarningCode.IMPLAUSIBLE_GEOMETRY, message + suffix))
    return out
