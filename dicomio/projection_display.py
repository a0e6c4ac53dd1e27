"""The display rules a 2-D image's header carries: VOI, inversion, shutters, orientation, cine.

Every value is read through :func:`dicomio.plausibility.optional_value`: these
elements only change how an image is shown, so one pydicom cannot convert is
ignored with a warning instead of costing the image (see :mod:`dicomio.load`).
Each function returns what it found and appends to ``warnings`` what it left out.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from core.projection import Shutter, VoiFunction, VoiLut, VoiWindow
from core.volume import VolumeWarning, WarningCode
from dicomio.multiframe import first_item, per_frame_items
from dicomio.plausibility import optional_value

__all__ = ["frame_time_ms", "inverted", "patient_orientation", "shutters", "voi_luts",
           "voi_windows"]

_ORIENTATION = re.compile(r"^[APLRHF]{1,3}$")


def _warn(warnings: list[VolumeWarning], message: str) -> None:
    warnings.append(VolumeWarning(WarningCode.OTHER, message))


def _values(raw: Any) -> list[Any]:
    """A possibly multi-valued element as a list (absent: empty)."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, (str, bytes, int, float)):
        return [raw]
    try:
        return list(raw)
    except TypeError:
        return [raw]


def _floats(raw: Any) -> list[float] | None:
    """Numbers of an element; None when any is not a finite number."""
    try:
        out = [float(v) for v in _values(raw)]
    except (TypeError, ValueError, OverflowError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _text(ds: Any, keyword: str) -> str:
    value = optional_value(ds, keyword)
    return "" if value is None else str(value).strip().upper()


def _voi_source(ds: Any) -> Any:
    """Where the VOI module is: the data set, or an enhanced object's Frame VOI LUT
    functional group (shared, else the first frame's)."""
    if optional_value(ds, "WindowCenter") is not None or optional_value(
            ds, "VOILUTSequence") is not None:
        return ds
    for group in (first_item(optional_value(ds, "SharedFunctionalGroupsSequence")),
                  _first_per_frame(ds)):
        item = first_item(optional_value(group, "FrameVOILUTSequence")) if group else None
        if item is not None:
            return item
    return ds


def _first_per_frame(ds: Any) -> Any:
    try:
        return first_item(per_frame_items(ds))
    except Exception:  # an unreadable functional group only costs the window here
        return None


def voi_windows(ds: Any, warnings: list[VolumeWarning]) -> list[VoiWindow]:
    """Every Window Center / Width pair (PS3.3 C.11.2.1.2), with its explanation and
    the VOI LUT Function, in file order (the first is the default)."""
    src = _voi_source(ds)
    centers_raw = optional_value(src, "WindowCenter")
    widths_raw = optional_value(src, "WindowWidth")
    if centers_raw is None and widths_raw is None:
        return []
    centers, widths = _floats(centers_raw), _floats(widths_raw)
    if centers is None or widths is None or not centers or len(centers) != len(widths):
        _warn(warnings, f"Window Center {centers_raw!s:.40} / Window Width {widths_raw!s:.40} "
              "are not matching numbers: the file's window is ignored")
        return []
    name = _text(src, "VOILUTFunction") or "LINEAR"
    try:
        function = VoiFunction(name)
    except ValueError:
        _warn(warnings, f"VOI LUT Function '{name[:20]}' is not LINEAR, LINEAR_EXACT or "
              "SIGMOID: LINEAR is used")
        function = VoiFunction.LINEAR
    explanations = [str(v).strip() for v in _values(
        optional_value(src, "WindowCenterWidthExplanation"))]
    out: list[VoiWindow] = []
    for n, (center, width) in enumerate(zip(centers, widths, strict=True)):
        # C.11.2.1.2: Window Width >= 1 for LINEAR, > 0 for LINEAR_EXACT and SIGMOID.
        if width < 1 if function is VoiFunction.LINEAR else width <= 0:
            _warn(warnings, f"Window Width {width:g} is not valid for {function.value}: "
                  f"window {n + 1} is ignored")
            continue
        text = explanations[n] if n < len(explanations) else ""
        out.append(VoiWindow(center, width, function, text))
    return out


def voi_luts(ds: Any, pixel_representation: int, warnings: list[VolumeWarning]
             ) -> list[VoiLut]:
    """Every VOI LUT Sequence item as a table. pydicom's :func:`apply_voi` reads the
    descriptor and the data (0 entries meaning 65536, US/OW LUT Data, byte order);
    it is applied to each input value the table covers, so the table is pydicom's."""
    from pydicom.pixels.processing import apply_voi

    src = _voi_source(ds)
    seq = optional_value(src, "VOILUTSequence")
    if not seq or isinstance(seq, (str, bytes)):
        return []
    holder = src
    if src is not ds:  # apply_voi reads the byte order from the data set's file meta
        from pydicom.dataset import Dataset

        holder = Dataset()
        holder.VOILUTSequence = seq
        if getattr(ds, "file_meta", None) is not None:
            holder.file_meta = ds.file_meta
    out: list[VoiLut] = []
    for n, item in enumerate(seq):
        try:
            desc = [int(v) for v in _values(item.LUTDescriptor)]
            entries = desc[0] or 1 << 16
            first = desc[1]
            table = apply_voi(np.arange(first, first + entries, dtype=np.int64), holder, n)
            bits = desc[2]
        except Exception as exc:  # a damaged table costs only itself
            _warn(warnings, f"VOI LUT {n + 1} cannot be read ({type(exc).__name__}: "
                  f"{str(exc)[:80]}): it is ignored")
            continue
        # LUT Descriptor's first value is US or SS like the pixels (C.11.2.1.1).
        if pixel_representation == 1 and first >= 1 << 15:
            first -= 1 << 16
        explanation = str(optional_value(item, "LUTExplanation") or "").strip()
        out.append(VoiLut(first, bits, np.asarray(table), explanation))
    return out


def inverted(ds: Any, photometric: str, warnings: list[VolumeWarning]) -> bool:
    """Whether minimum values are shown white.

    PS3.3 C.11.6.1 (Presentation LUT Shape, used as in the DX/MG/CR image modules
    C.8.11.7): IDENTITY "shall be used if Photometric Interpretation is MONOCHROME2",
    INVERSE ("output after inversion is in P-Values") "shall be used if Photometric
    Interpretation is MONOCHROME1". The shape restates the photometric
    interpretation: MONOCHROME1 with INVERSE is ONE inversion, not two. IDENTITY on a
    MONOCHROME1 image contradicts the header; the photometric interpretation, which
    defines what the stored values mean, wins (still inverted), with a warning.
    INVERSE on MONOCHROME2 asks for an inverted display and is honoured.
    """
    shape = _text(ds, "PresentationLUTShape")
    mono1 = photometric == "MONOCHROME1"
    if shape == "IDENTITY" and mono1:
        _warn(warnings, "Presentation LUT Shape IDENTITY on a MONOCHROME1 image contradicts "
              "it: shown as MONOCHROME1 (low values white)")
    elif shape not in ("", "IDENTITY", "INVERSE"):
        _warn(warnings, f"Presentation LUT Shape '{shape[:20]}' is not IDENTITY or INVERSE: "
              "ignored")
    return mono1 or shape == "INVERSE"


def patient_orientation(ds: Any, warnings: list[VolumeWarning]) -> tuple[str, str] | None:
    """Patient Orientation (0020,0020): direction of the rows, then of the columns
    (PS3.3 C.7.6.1.1.1), each of A P L R H F letters; None when absent or malformed."""
    raw = optional_value(ds, "PatientOrientation")
    values = [str(v).strip().upper() for v in _values(raw)]
    if not values or values == [""]:
        return None
    if len(values) != 2 or not all(_ORIENTATION.match(v) for v in values):
        _warn(warnings, f"Patient Orientation '{chr(92).join(values)[:30]}' is not two "
              "direction codes (A P L R H F): no orientation letters are shown")
        return None
    return values[0], values[1]


def frame_time_ms(ds: Any, frames: int, warnings: list[VolumeWarning]) -> float | None:
    """Milliseconds between frames: Frame Time, Frame Time Vector (its increments,
    the first being 0), Recommended Display Frame Rate, Cine Rate, in that order.
    Only a multi-frame image has one."""
    if frames < 2:
        return None
    candidates: list[tuple[str, float | None]] = []
    ft = _floats(optional_value(ds, "FrameTime"))
    candidates.append(("Frame Time", ft[0] if ft else None))
    ftv = _floats(optional_value(ds, "FrameTimeVector"))
    steps = ftv[1:] if ftv and len(ftv) > 1 else None
    candidates.append(("Frame Time Vector", float(np.mean(steps)) if steps else None))
    for keyword, label in (("RecommendedDisplayFrameRate", "Recommended Display Frame Rate"),
                           ("CineRate", "Cine Rate")):
        rate = _floats(optional_value(ds, keyword))
        candidates.append((label, 1000.0 / rate[0] if rate and rate[0] > 0 else None))
    for label, value in candidates:
        if value is None:
            continue
        if 0 < value <= 60_000:
            return value
        _warn(warnings, f"{label} gives {value:g} ms between frames: ignored")
    return None


def shutters(ds: Any, warnings: list[VolumeWarning]) -> list[Shutter]:
    """Display Shutter module (PS3.3 C.7.6.11): each shape in Shutter Shape, with its
    elements; the shown value outside them is Shutter Presentation Value or, when
    given, the colour of Shutter Presentation Color CIELab Value."""
    shapes = [str(v).strip().upper() for v in _values(optional_value(ds, "ShutterShape"))]
    if not shapes:
        return []
    pv = _floats(optional_value(ds, "ShutterPresentationValue"))
    value = int(min(max(pv[0], 0), 65535)) if pv else 0
    lab = _floats(optional_value(ds, "ShutterPresentationColorCIELabValue"))
    rgb = _cielab_to_rgb(lab) if lab and len(lab) == 3 else None
    out: list[Shutter] = []
    for shape in shapes:
        params = _shutter_params(ds, shape)
        if params is None:
            _warn(warnings, f"the {shape.lower()[:20]} display shutter's elements are missing "
                  "or invalid: it is ignored")
            continue
        out.append(Shutter(shape.lower(), params, value, rgb))
    return out


def _shutter_params(ds: Any, shape: str) -> tuple[float, ...] | None:
    def get(keyword: str, n: int | None) -> list[float] | None:
        values = _floats(optional_value(ds, keyword))
        if not values or (n is not None and len(values) != n):
            return None
        return values

    if shape == "RECTANGULAR":
        edges = [get(k, 1) for k in ("ShutterLeftVerticalEdge", "ShutterRightVerticalEdge",
                                     "ShutterUpperHorizontalEdge",
                                     "ShutterLowerHorizontalEdge")]
        if any(e is None for e in edges):
            return None
        left, right, upper, lower = (e[0] for e in edges if e is not None)
        return (left, right, upper, lower) if left <= right and upper <= lower else None
    if shape == "CIRCULAR":
        centre = get("CenterOfCircularShutter", 2)
        radius = get("RadiusOfCircularShutter", 1)
        if centre is None or radius is None or radius[0] <= 0:
            return None
        return centre[0], centre[1], radius[0]
    if shape == "POLYGONAL":
        vertices = get("VerticesOfThePolygonalShutter", None)
        if vertices is None or len(vertices) < 6 or len(vertices) % 2:
            return None
        return tuple(vertices)
    return None


def _cielab_to_rgb(lab: list[float]) -> tuple[int, int, int] | None:
    """A DICOM CIELab triplet (PS3.3 C.10.7.1.1: L* 0..100 and a*, b* -128..127 scaled
    to 0..65535, D65) as 8-bit sRGB, converted by LittleCMS through Pillow."""
    from PIL import Image, ImageCms

    if not all(0 <= v <= 65535 for v in lab):
        return None
    lab_profile = ImageCms.createProfile("LAB", colorTemp=6500)
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(lab_profile, srgb, "LAB", "RGB")
    # Pillow's LAB mode (LittleCMS Lab 8-bit): L* 0..100 as 0..255, a* and b* + 128; the
    # same linear scales as DICOM's, over 0..255 instead of 0..65535.
    l8, a8, b8 = (round(v / 65535 * 255) for v in lab)
    pixel = Image.new("LAB", (1, 1), (l8, a8, b8))
    result = ImageCms.applyTransform(pixel, transform)
    if result is None:
        return None
    r, g, b = result.getpixel((0, 0))  # type: ignore[misc]
    return int(r), int(g), int(b)
