"""DICOM SEG (highdicom) onto a target Volume's grid, one mask per segment.

Frames are placed by their own geometry (PlanePositionSequence, orientation, spacing):
a frame on the target's grid is copied voxel for voxel; frames on another grid of the
same frame of reference are stacked and resampled by nearest neighbour (with a note).
Where a frame names its source image and the caller knows that image's slice, the two
must agree. Segments may overlap (every segment keeps its own mask); the label map is
a first-wins union for display. Odd or broken input is a ``problem`` sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from core.resample import resample_array
from core.volume import Label, Volume
from dicomio.derived.common import first, floats, items, lab_to_rgb, referenced_series, text
from dicomio.derived.model import (
    DerivedObject,
    ImportedFinding,
    centroid_lps,
    crop,
    union_label_map,
)
from dicomio.derived.placement import FramePlane, exact_index, normal_range_text

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


class _Refused(Exception):
    """A reason this SEG cannot be shown on the target, worded for the user."""


def _plane(ds: Dataset, frame: Any, n: int) -> FramePlane:
    shared = first(ds, "SharedFunctionalGroupsSequence")

    def group(keyword: str) -> Any:
        return first(frame, keyword) or first(shared, keyword)

    pos = group("PlanePositionSequence")
    ori = group("PlaneOrientationSequence")
    meas = group("PixelMeasuresSequence")
    if pos is None or ori is None or meas is None:
        missing = [name for name, item in (("PlanePositionSequence", pos),
                   ("PlaneOrientationSequence", ori), ("PixelMeasuresSequence", meas))
                   if item is None]
        raise _Refused(f"frame {n} has no {' or '.join(missing)}, so it cannot be placed")
    try:
        ipp = floats(getattr(pos, "ImagePositionPatient", None), 3, "ImagePositionPatient")
        iop = floats(getattr(ori, "ImageOrientationPatient", None), 6, "ImageOrientationPatient")
        spacing = floats(getattr(meas, "PixelSpacing", None), 2, "PixelSpacing")
    except ValueError as exc:
        raise _Refused(f"frame {n}: {exc}") from exc
    row, col = iop[:3], iop[3:]
    if (np.any(spacing <= 0) or abs(np.linalg.norm(row) - 1) > 0.01
            or abs(np.linalg.norm(col) - 1) > 0.01 or abs(np.dot(row, col)) > 0.02):
        raise _Refused(f"frame {n} has impossible geometry (orientation {iop.tolist()}, "
                       f"spacing {spacing.tolist()})")
    return FramePlane(ipp, row, col, (float(spacing[0]), float(spacing[1])),
                      int(ds.Rows), int(ds.Columns))


def _segment_of(ds: Dataset, frame: Any, n: int) -> int:
    ident = first(frame, "SegmentIdentificationSequence") or first(
        first(ds, "SharedFunctionalGroupsSequence"), "SegmentIdentificationSequence")
    try:
        return int(ident.ReferencedSegmentNumber)
    except (AttributeError, TypeError, ValueError) as exc:
        raise _Refused(f"frame {n} does not say which segment it belongs to") from exc


def _source_uid(frame: Any) -> str:
    for deriv in items(frame, "DerivationImageSequence"):
        for src in items(deriv, "SourceImageSequence"):
            uid = text(src, "ReferencedSOPInstanceUID")
            if uid:
                return uid
    return ""


def _frame_masks(seg: Any, ds: Dataset, n: int, seg_type: str,
                 numbers: list[int]) -> dict[int, npt.NDArray[np.bool_]]:
    """Segment number -> bool frame for frame ``n`` (1-based)."""
    stored = np.asarray(seg.get_stored_frame(n))
    if stored.shape != (int(ds.Rows), int(ds.Columns)):
        raise _Refused(f"frame {n} has {stored.shape} pixels, not Rows×Columns "
                       f"{int(ds.Rows)}×{int(ds.Columns)}")
    if seg_type == "LABELMAP":  # one frame holds every segment, by value
        return {s: stored == s for s in numbers}
    segment = _segment_of(ds, items(ds, "PerFrameFunctionalGroupsSequence")[n - 1], n)
    if seg_type == "FRACTIONAL":
        top = float(getattr(ds, "MaximumFractionalValue", 255) or 255)
        return {segment: stored.astype(np.float64) > top / 2}
    return {segment: stored > 0}


def read_seg(ds: Dataset, target: Volume,
             instance_slices: Mapping[str, int] | None = None) -> DerivedObject:
    """A SEG data set (with pixel data) as findings on ``target``'s grid.

    ``instance_slices`` maps the target's SOP instance UIDs to their slice index k; when a
    frame names one of them, its geometric placement must agree. Never raises for bad
    input: the result's ``problem`` says why it cannot be shown.
    """
    obj = DerivedObject(
        kind="SEG", sop_instance_uid=text(ds, "SOPInstanceUID"),
        series_uid=text(ds, "SeriesInstanceUID"),
        description=text(ds, "SeriesDescription") or text(ds, "ContentLabel") or "Segmentation",
        referenced_series_uids=tuple(referenced_series(ds)),
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"))
    try:
        _fill(obj, ds, target, instance_slices or {})
    except _Refused as exc:
        obj.problem = f"This segmentation cannot be shown: {exc}."
    except Exception as exc:  # highdicom / pydicom on hostile input: never escapes
        obj.problem = f"This segmentation cannot be read: {type(exc).__name__}: {exc}."
    if obj.problem:
        obj.label_map = None
        obj.findings = [f if f.mask is None else _without_mask(f) for f in obj.findings]
    return obj


def _without_mask(f: ImportedFinding) -> ImportedFinding:
    from dataclasses import replace

    return replace(f, mask=None, centroid_lps=None)


def _fill(obj: DerivedObject, ds: Dataset, target: Volume,
          instance_slices: Mapping[str, int]) -> None:
    import highdicom as hd

    if text(ds, "SOPClassUID") != SEG_SOP_CLASS:
        raise _Refused(f"SOP class {text(ds, 'SOPClassUID') or 'missing'} is not Segmentation")
    if target.frame_of_reference_uid and obj.frame_of_reference_uid and (
            obj.frame_of_reference_uid != target.frame_of_reference_uid):
        raise _Refused("it belongs to another frame of reference than this series")
    seg_type = text(ds, "SegmentationType").upper()
    descriptions = {int(d.SegmentNumber): d for d in items(ds, "SegmentSequence")}
    if not descriptions:
        raise _Refused("it has no SegmentSequence (no segments are described)")
    numbers = sorted(descriptions)
    per_frame = items(ds, "PerFrameFunctionalGroupsSequence")
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if len(per_frame) != n_frames:
        raise _Refused(f"it has {len(per_frame)} per-frame groups for {n_frames} frames")
    if n_frames == 0:
        raise _Refused("it has no frames")
    planes = [_plane(ds, per_frame[n - 1], n) for n in range(1, n_frames + 1)]
    outside = normal_range_text(planes, target.affine, target.shape)
    if outside:
        refs = "" if (obj.referenced_series_uids or any(_source_uid(f) for f in per_frame)) \
            else ", and it references no images"
        raise _Refused(outside + refs)
    # Our own checks first (clear sentences), then highdicom's parser for the pixels.
    seg = hd.seg.Segmentation.from_dataset(ds, copy=False)

    shape = target.shape
    planes_by_seg: dict[int, dict[int, npt.NDArray[np.bool_]]] = {s: {} for s in numbers}
    off_grid: list[int] = []
    for n, plane in enumerate(planes, start=1):
        where = exact_index(plane, target.affine)
        if where is None:
            off_grid.append(n)
            continue
        k, j0, i0 = where
        ref = _source_uid(per_frame[n - 1])
        if ref in instance_slices and instance_slices[ref] != k:
            raise _Refused(f"frame {n} names the image at slice {instance_slices[ref] + 1} "
                           f"but its position puts it at slice {k + 1}")
        if not 0 <= k < shape[0]:
            continue
        for segment, frame in _frame_masks(seg, ds, n, seg_type, numbers).items():
            if segment not in planes_by_seg:
                raise _Refused(f"frame {n} belongs to segment {segment}, which is not described")
            if not frame.any():
                continue
            dest = planes_by_seg[segment].setdefault(k, np.zeros(shape[1:], dtype=bool))
            _paste(dest, frame, j0, i0)

    full_masks: dict[int, npt.NDArray[np.bool_]] = {}
    for segment, by_k in planes_by_seg.items():
        if by_k:
            full = np.zeros(shape, dtype=bool)
            for k, plane_mask in by_k.items():
                full[k] = plane_mask
            full_masks[segment] = full
    if off_grid:
        _resample_off_grid(seg, ds, planes, off_grid, seg_type, numbers, target, full_masks)
        obj.notes.append(f"{len(off_grid)} of {n_frames} frames lie on another grid and were "
                         "resampled onto this series by nearest neighbour")

    labels: list[Label] = []
    any_pixels = False
    for segment in numbers:
        d = descriptions[segment]
        name = text(d, "SegmentLabel") or f"Segment {segment}"
        color = lab_to_rgb(getattr(d, "RecommendedDisplayCIELabValue", None)) or (255, 0, 0)
        mask = crop(full_masks[segment]) if segment in full_masks else None
        any_pixels = any_pixels or mask is not None
        algo = first(d, "SegmentationAlgorithmIdentificationSequence")
        obj.findings.append(ImportedFinding(
            number=segment, label_name=name, color_rgb=color, source_kind="SEG",
            source_sop_instance_uid=obj.sop_instance_uid, mask=mask,
            centroid_lps=centroid_lps(mask, target.affine) if mask is not None else None,
            tracking_id=text(d, "TrackingID"), tracking_uid=text(d, "TrackingUID"),
            finding_type=_code(d, "SegmentedPropertyTypeCodeSequence"),
            finding_site=_code(d, "AnatomicRegionSequence"),
            creator=text(d, "SegmentAlgorithmType"),
            algorithm=text(d, "SegmentAlgorithmName") or text(algo, "AlgorithmName")))
        labels.append(Label(segment, name, color))
    if not any_pixels:
        raise _Refused("none of its segmented pixels fall inside this series")
    obj.label_map = union_label_map(obj.findings, shape, target.affine, target.series_uid,
                                    labels)


def _code(d: Any, keyword: str) -> str:
    item = first(d, keyword)
    return text(item, "CodeMeaning")


def _paste(dest: npt.NDArray[np.bool_], frame: npt.NDArray[np.bool_], j0: int, i0: int) -> None:
    """OR ``frame`` into ``dest`` with its (0, 0) at (j0, i0), clipped to ``dest``."""
    rows, cols = frame.shape
    j_lo, i_lo = max(j0, 0), max(i0, 0)
    j_hi, i_hi = min(j0 + rows, dest.shape[0]), min(i0 + cols, dest.shape[1])
    if j_lo >= j_hi or i_lo >= i_hi:
        return
    dest[j_lo:j_hi, i_lo:i_hi] |= frame[j_lo - j0:j_hi - j0, i_lo - i0:i_hi - i0]


def _resample_off_grid(seg: Any, ds: Dataset, planes: list[FramePlane], frames: list[int],
                       seg_type: str, numbers: list[int], target: Volume,
                       full_masks: dict[int, npt.NDArray[np.bool_]]) -> None:
    """Stack the off-grid frames on their own regular grid, then nearest-neighbour it."""
    ref = planes[frames[0] - 1]
    for n in frames:
        p = planes[n - 1]
        if not (np.allclose(p.row_cosine, ref.row_cosine, atol=1e-3)
                and np.allclose(p.column_cosine, ref.column_cosine, atol=1e-3)
                and np.allclose(p.spacing, ref.spacing, rtol=1e-4)):
            raise _Refused("its frames on another grid do not share one orientation and spacing")
    normal = ref.normal
    offsets = np.array([np.dot(planes[n - 1].position - ref.position, normal) for n in frames])
    for n in frames:  # in-plane: every frame must start at the same row/column origin
        d = planes[n - 1].position - ref.position
        in_plane = d - np.dot(d, normal) * normal
        if np.linalg.norm(in_plane) > 0.1 * min(ref.spacing):
            raise _Refused("its frames on another grid are shifted within their planes")
    distinct = np.unique(np.round(offsets, 3))
    gaps = np.diff(distinct)
    step = float(np.median(gaps)) if gaps.size else float(
        getattr(ds, "SliceThickness", 0) or np.linalg.norm(target.affine[:3, 0]))
    if step <= 0:
        raise _Refused("its frames' spacing along the slice normal is not positive")
    base = float(distinct.min())
    slots = (offsets - base) / step
    if np.any(np.abs(slots - np.rint(slots)) > 0.1):
        raise _Refused("its frames on another grid are not evenly spaced")
    n_slots = int(np.rint(slots).max()) + 1
    if n_slots > 4096:
        raise _Refused(f"its frames would need a grid of {n_slots} slices")
    affine = ref.affine(step)
    affine[:3, 3] = ref.position + normal * base
    stacks: dict[int, npt.NDArray[np.uint8]] = {}
    for n, slot in zip(frames, np.rint(slots).astype(int), strict=True):
        for segment, frame in _frame_masks(seg, ds, n, seg_type, numbers).items():
            stack = stacks.setdefault(segment, np.zeros((n_slots, ref.rows, ref.columns),
                                                        dtype=np.uint8))
            stack[slot] |= frame.astype(np.uint8)
    for segment, stack in stacks.items():
        out = resample_array(stack, affine, target.affine, target.shape,
                             interpolation="nearest", output_dtype=np.uint8) > 0
        if segment in full_masks:
            full_masks[segment] |= out
        elif out.any():
            full_masks[segment] = out
