"""Per-frame geometry and rescale of multi-frame objects.

Enhanced CT/MR/PET (and legacy-converted enhanced) objects keep geometry in
functional groups: PlanePositionSequence, PlaneOrientationSequence,
PixelMeasuresSequence and PixelValueTransformationSequence, each either in the
Shared Functional Groups (same for every frame) or per frame; the per-frame
item wins. Older multi-frame objects (NM, some US/XA) have at most one
ImagePositionPatient at the top level: their frames are placed along the
slice normal at SpacingBetweenSlices (or SliceThickness), or, without any
geometry, simply stacked in frame order (the caller warns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset


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
    seq = seq_owner.get(keyword)
    if not seq:
        return None
    item = seq[0]
    return item if isinstance(item, Dataset) else None


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(
                value, (str, bytes))):
            return tuple(float(v) for v in value)
        return (float(value),)
    except (TypeError, ValueError):
        return None


def _lookup(groups: list[Dataset | None], seq_keyword: str, attr: str) -> Any:
    for group in groups:
        item = _first(group, seq_keyword)
        if item is not None and attr in item and item[attr].value not in (None, ""):
            return item[attr].value
    return None


def enhanced_frames(ds: Dataset) -> list[FrameAttrs] | None:
    """Frame attributes from functional groups, or None when the file has none."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    if not per_frame and shared is None:
        return None
    count = int(ds.get("NumberOfFrames", 1) or 1)
    frames: list[FrameAttrs] = []
    for f in range(count):
        own = per_frame[f] if per_frame and f < len(per_frame) else None
        groups: list[Dataset | None] = [own, shared]
        pos = _floats(_lookup(groups, "PlanePositionSequence", "ImagePositionPatient"))
        iop = _floats(_lookup(groups, "PlaneOrientationSequence", "ImageOrientationPatient"))
        spacing = _floats(_lookup(groups, "PixelMeasuresSequence", "PixelSpacing"))
        thick = _floats(_lookup(groups, "PixelMeasuresSequence", "SliceThickness"))
        slope = _floats(_lookup(groups, "PixelValueTransformationSequence", "RescaleSlope"))
        icpt = _floats(_lookup(groups, "PixelValueTransformationSequence", "RescaleIntercept"))
        wc = _floats(_lookup(groups, "FrameVOILUTSequence", "WindowCenter"))
        ww = _floats(_lookup(groups, "FrameVOILUTSequence", "WindowWidth"))
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
