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
BitsAllocated,            not 1/8/16/32; BitsStored negative;         BitsStored 0 or
BitsStored,               PixelRepresentation not 0/1;                absent → BitsAllocated;
PixelRepresentation,      SamplesPerPixel > 4                         SamplesPerPixel 0 → 1
SamplesPerPixel
NumberOfFrames            NaN/inf, > 100 000                          0 or absent → 1
(all of the above)        more than 4 GiB of decoded pixels per file  —
RescaleSlope,             NaN/inf; values beyond float32              slope 0 → 1 (loader)
RescaleIntercept
========================  ==========================================  ====================

Values that pydicom cannot convert at all (an unknown VR, a wrong byte length, text
in an unknown character set: pydicom converts lazily and raises on first access)
are read through :func:`element_value`, which refuses them naming the element, or
:func:`optional_value` for what is only shown (descriptions, names), where such a
value is treated as absent. No other code in the loader touches a value of an
untrusted data set directly.
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
#: Frames in one file: enhanced and legacy multi-frame objects have up to a few
#: thousand. The loader keeps a few objects per frame, so a crafted count is
#: refused before any of them is made.
FRAMES_MAX = 100_000
#: Decoded pixel bytes of one file (Rows × Columns × SamplesPerPixel × BitsAllocated/8
#: × NumberOfFrames). Decoders allocate this much before they look at the data, so a
#: small compressed file claiming more is refused before any decoder runs; a 2,000-frame
#: 1024 × 1024 16-bit object is exactly this large.
DECODED_MAX_BYTES = 4 << 30
#: The largest finite float32 (the widest voxel type a Volume uses).
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ImplausibleValue(DicomReadError):
    """A header value that cannot describe a real image; the message names the element."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__(message)
        self.element = element


class UnreadableValue(ImplausibleValue):
    """A value pydicom cannot convert (unknown VR, wrong byte length, undecodable text)."""


def _unreadable(keyword: str, exc: BaseException) -> UnreadableValue:
    if isinstance(exc, RecursionError):
        return UnreadableValue(keyword, f"{keyword} cannot be read: its sequences are nested "
                               "too deeply (RecursionError)")
    if isinstance(exc, MemoryError):
        return UnreadableValue(keyword, f"{keyword} cannot be read: it is too large to hold "
                               "in memory (MemoryError)")
    return UnreadableValue(
        keyword, f"{keyword} cannot be read: {type(exc).__name__}: {exc}"[:300])


def element_value(ds: Any, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)``, or :class:`UnreadableValue` naming the element.

    pydicom converts an element's raw bytes on first access, and a crafted element
    fails there in many ways: NotImplementedError (unknown VR), BytesLengthException
    (an Exception only), ValueError, struct.error, LookupError (character set),
    RecursionError (a sequence nested thousands of levels inside a defined-length
    one, parsed only now). Every one of them is this element's refusal, so that the
    file is left out with a reason instead of ending the import. ``ds`` may also be
    the lean reader's stand-in, which never raises.
    """
    try:
        return ds.get(keyword, default)
    except Exception as exc:  # any conversion failure is this element's refusal
        raise _unreadable(keyword, exc) from exc


def optional_value(ds: Any, keyword: str, default: Any = None) -> Any:
    """A value that is only shown (a description, a name, a window): ``default`` when
    pydicom cannot convert it, so a damaged label never costs the image."""
    try:
        return element_value(ds, keyword, default)
    except UnreadableValue:
        return default


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
    except (TypeError, ValueError, OverflowError):
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


def check_pixel_format(*, samples: int, bits_allocated: int, bits_stored: int,
                       pixel_representation: int, frames: int, rows: int, columns: int
                       ) -> None:
    """Refuse a pixel description no decoder can honour or that would decode to more
    than :data:`DECODED_MAX_BYTES` (the values as read; the caller's defaults applied)."""
    if bits_allocated not in (1, 8, 16, 32):
        raise ImplausibleValue("BitsAllocated",
                               f"BitsAllocated {bits_allocated} is not supported (1, 8, 16 "
                               "or 32 are)")
    if bits_stored < 0:
        raise ImplausibleValue("BitsStored", f"BitsStored {bits_stored} is negative")
    if pixel_representation not in (0, 1):
        raise ImplausibleValue(
            "PixelRepresentation", f"PixelRepresentation {pixel_representation} is neither "
            "0 (unsigned) nor 1 (signed)")
    if not 1 <= samples <= 4:
        raise ImplausibleValue("SamplesPerPixel",
                               f"SamplesPerPixel {samples} is not 1 to 4")
    if not 1 <= frames <= FRAMES_MAX:
        raise ImplausibleValue("NumberOfFrames", f"NumberOfFrames {frames} is more than the "
                               f"{FRAMES_MAX} frames Lucida reads from one file")
    decoded = rows * columns * samples * bits_allocated // 8 * frames
    if decoded > DECODED_MAX_BYTES:
        raise ImplausibleValue(
            "NumberOfFrames" if frames > 1 else "Rows",
            f"Rows {rows}, Columns {columns}, NumberOfFrames {frames} (× {samples} "
            f"sample(s) of {bits_allocated} bits) describe {decoded} bytes of pixels, more "
            f"than the {DECODED_MAX_BYTES >> 30} GiB Lucida decodes from one file")


def check_frame_count(value: float | None) -> int:
    """NumberOfFrames as a count: absent, empty or below 1 is one frame (old writers
    put 0); a value that is not a finite number is refused."""
    if value is None:
        return 1
    if not math.isfinite(value):
        raise ImplausibleValue("NumberOfFrames", f"NumberOfFrames {shown(value)} is not finite")
    return max(int(value), 1)


def check_rescale(slope: float, intercept: float, stored: tuple[int, int],
                  label: str = "") -> None:
    """RescaleSlope and RescaleIntercept must be finite, and so must every value they
    give for the stored range in float32 (the widest voxel type)."""
    for element, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if not math.isfinite(value):
            raise ImplausibleValue(element, f"{element}{label} {shown(value)} is not finite")
    far = max(abs(stored[0] * slope + intercept), abs(stored[1] * slope + intercept))
    if not far <= FLOAT32_MAX:
        raise ImplausibleValue(
            "RescaleSlope", f"RescaleSlope{label} {shown(slope)}, RescaleIntercept{label} "
            f"{shown(intercept)} give values up to {far:.3g}, beyond what a voxel can hold")


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
