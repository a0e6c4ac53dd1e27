"""Per-frame geometry and rescale of multi-frame objects.

Enhanced CT/MR/PET (and legacy-converted enhanced) objects keep geometry in
functional groups: PlanePositionSequence, PlaneOrientationSequence,
PixelMeasuresSequence and PixelValueTransformationSequence, each either in the
Shared Functional Groups (same for every frame) or per frame; the per-frame
item wins. Older multi-frame objects (NM, some US/XA) have at most one
ImagePositionPatient at the top level: their frames are placed along the
slice normal at SpacingBetweenSlices (or SliceThickness), or, without any
geometry, simply stacked in frame order (the caller warns).

Every value is read through :func:`dicomio.plausibility.element_value`: pydicom
converts a functional group (and each sequence in it) on first access, and a
value it cannot convert refuses the file naming the element; the window, which is
only shown, is then treated as absent instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from pydicom.dataset import Dataset

from dicomio.plausibility import element_value, optional_value


@dataclass(frozen=True)
class FrameAttrs:
    """Geometry and rescale of one frame, each None when the file does not say."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slope: float | None
    intercept: float | None
    window_center: float | None
    window_width: float | None


def _first(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = element_value(seq_owner, keyword)
    return first_item(seq)


def first_item(seq: Any) -> Dataset | None:
    """The first item of a sequence value, or None (absent, empty, or not a sequence:
    an element with the wrong VR reads as bytes or text)."""
    if not seq or isinstance(seq, (str, bytes)):
        return None
    try:
        item = seq[0]
    except (TypeError, IndexError, KeyError):
        return None
    return item if isinstance(item, Dataset) else None


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(
                value, (str, bytes))):
            return tuple(float(v) for v in value)
        return (float(value),)
    except (TypeError, ValueError, OverflowError):
        return None


def functional_value(groups: list[Dataset | None], seq_keyword: str, attr: str,
                     optional: bool = False) -> Any:
    """``attr`` of the first item of ``seq_keyword`` in the first group that has it
    (per-frame item, then shared item), or None; see :func:`element_value`."""
    read = optional_value if optional else element_value
    for group in groups:
        item = _first(group, seq_keyword)
        if item is None:
            continue
        value = read(item, attr)
        if value is not None and not (isinstance(value, str) and value == ""):
            return value
    return None


def _functional_floats(groups: list[Dataset | None], seq: str, attr: str,
                       optional: bool = False) -> tuple[float, ...] | None:
    return _floats(functional_value(groups, seq, attr, optional))


def per_frame_items(ds: Any) -> Any:
    """PerFrameFunctionalGroupsSequence as read (a Sequence, or None when absent or not
    a sequence); refused naming it when pydicom cannot convert it."""
    per_frame = element_value(ds, "PerFrameFunctionalGroupsSequence")
    if not per_frame or isinstance(per_frame, (str, bytes)):
        return None
    return per_frame


def enhanced_frames(ds: Dataset, number_of_frames: int | None = None
                    ) -> list[FrameAttrs] | None:
    """Frame attributes from functional groups, or None when the file has none.

    ``number_of_frames`` is the caller's checked count (NumberOfFrames is read, and
    may be refused, by the loader); without it the element is read here."""
    per_frame = per_frame_items(ds)
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    if not per_frame and shared is None:
        return None
    if number_of_frames is None:
        number_of_frames = int(element_value(ds, "NumberOfFrames", 1) or 1)
    count = number_of_frames
    frames: list[FrameAttrs] = []
    for f in range(count):
        own = per_frame[f] if per_frame and f < len(per_frame) else None
        groups: list[Dataset | None] = [own if isinstance(own, Dataset) else None, shared]
        get = partial(_functional_floats, groups)
        pos = get("PlanePositionSequence", "ImagePositionPatient")
        iop = get("PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = get("PixelMeasuresSequence", "PixelSpacing")
        thick = get("PixelMeasuresSequence", "SliceThickness")
        slope = get("PixelValueTransformationSequence", "RescaleSlope")
        icpt = get("PixelValueTransformationSequence", "RescaleIntercept")
        # The window is only shown: a value pydicom cannot convert is left out.
        wc = get("FrameVOILUTSequence", "WindowCenter", optional=True)
        ww = get("FrameVOILUTSequence", "WindowWidth", optional=True)
        frames.append(FrameAttrs(
            position=(pos[0], pos[1], pos[2]) if pos and len(pos) == 3 else None,
            orientation=iop if iop and len(iop) == 6 else None,
            pixel_spacing=(spacing[0], spacing[1]) if spacing and len(spacing) == 2 else None,
            slice_thickness=thick[0] if thick else None,
            slope=slope[0] if slope else None,
            intercept=icpt[0] if icpt else None,
            window_center=wc[0] if wc else None,
            window_width=ww[0] if ww else None,
        ))
    return frames
