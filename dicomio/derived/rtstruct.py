"""RT Structure Set: each ROI's closed planar contours rasterised onto a target grid.

A contour is used when all its points lie on one of the target's slice planes (within
0.1 of a slice step) and it is CLOSED_PLANAR; others are counted in a note. Filling is
Pillow's polygon fill on voxel centres: a voxel is in when its centre lies inside the
contour or on it. Contours of one ROI on one slice combine by XOR, so an inner contour
is a hole (the usual RTSTRUCT convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from core.volume import Label, Volume
from dicomio.derived.common import items, text
from dicomio.derived.model import (
    DerivedObject,
    ImportedFinding,
    centroid_lps,
    crop,
    union_label_map,
)

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SLICE_TOLERANCE = 0.1  # of a slice step


def referenced_series(ds: Dataset) -> list[str]:
    """Series UIDs named by ReferencedFrameOfReferenceSequence / RT referenced series."""
    out: list[str] = []
    for frame in items(ds, "ReferencedFrameOfReferenceSequence"):
        for study in items(frame, "RTReferencedStudySequence"):
            for series in items(study, "RTReferencedSeriesSequence"):
                uid = text(series, "SeriesInstanceUID")
                if uid and uid not in out:
                    out.append(uid)
    return out


def _color(value: Any) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in value)
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    except (TypeError, ValueError):
        return (255, 0, 0)


def _fill_polygon(shape: tuple[int, int], points_ji: npt.NDArray[np.float64]
                  ) -> npt.NDArray[np.bool_]:
    """Voxels (j, i) whose centre is inside or on the polygon (Pillow's fill)."""
    img = Image.new("1", (shape[1], shape[0]), 0)
    xy = [(float(i), float(j)) for j, i in points_ji]
    ImageDraw.Draw(img).polygon(xy, fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def read_rtstruct(ds: Dataset, target: Volume) -> DerivedObject:
    """An RTSTRUCT's ROIs as masks on ``target``'s grid. Never raises for bad input."""
    obj = DerivedObject(
        kind="RTSTRUCT", sop_instance_uid=text(ds, "SOPInstanceUID"),
        series_uid=text(ds, "SeriesInstanceUID"),
        description=text(ds, "StructureSetLabel") or text(ds, "SeriesDescription")
        or "Structure set",
        referenced_series_uids=tuple(referenced_series(ds)))
    try:
        _fill(obj, ds, target)
    except Exception as exc:
        obj.findings, obj.label_map = [], None
        obj.problem = f"This structure set cannot be read: {type(exc).__name__}: {exc}."
    return obj


def _fill(obj: DerivedObject, ds: Dataset, target: Volume) -> None:
    rois = {int(r.ROINumber): r for r in items(ds, "StructureSetROISequence")}
    if not rois:
        obj.problem = "This structure set cannot be shown: it has no StructureSetROISequence."
        return
    frames = {text(r, "ReferencedFrameOfReferenceUID") for r in rois.values()} - {""}
    obj.frame_of_reference_uid = next(iter(frames), "") if len(frames) == 1 else ""
    if target.frame_of_reference_uid and frames and target.frame_of_reference_uid not in frames:
        obj.problem = ("This structure set cannot be shown: its contours belong to another "
                       "frame of reference than this series.")
        return
    interpreted = {int(o.ReferencedROINumber): text(o, "RTROIInterpretedType")
                   for o in items(ds, "RTROIObservationsSequence")
                   if getattr(o, "ReferencedROINumber", None) is not None}
    inv = np.linalg.inv(target.affine)
    shape = target.shape
    skipped, outside = 0, 0
    labels: list[Label] = []
    for contour_item in items(ds, "ROIContourSequence"):
        number = int(contour_item.ReferencedROINumber)
        roi = rois.get(number)
        name = text(roi, "ROIName") or f"ROI {number}"
        color = _color(getattr(contour_item, "ROIDisplayColor", None))
        planes: dict[int, npt.NDArray[np.bool_]] = {}
        for contour in items(contour_item, "ContourSequence"):
            kind = text(contour, "ContourGeometricType")
            data = np.asarray([float(v) for v in getattr(contour, "ContourData", [])])
            if kind != "CLOSED_PLANAR" or data.size < 9 or data.size % 3:
                skipped += 1
                continue
            lps = np.c_[data.reshape(-1, 3), np.ones(data.size // 3)]
            kji = (inv @ lps.T).T[:, :3]
            k = float(np.rint(kji[0, 0]))
            if np.any(np.abs(kji[:, 0] - k) > SLICE_TOLERANCE) or not np.all(np.isfinite(kji)):
                skipped += 1  # not on one of this series' slice planes
                continue
            if not 0 <= k < shape[0]:
                outside += 1
                continue
            filled = _fill_polygon(shape[1:], kji[:, 1:])
            dest = planes.setdefault(int(k), np.zeros(shape[1:], dtype=bool))
            dest ^= filled
        full = np.zeros(shape, dtype=bool)
        for k, plane in planes.items():
            full[k] = plane
        mask = crop(full)
        obj.findings.append(ImportedFinding(
            number=number, label_name=name, color_rgb=color, source_kind="RTSTRUCT",
            source_sop_instance_uid=obj.sop_instance_uid, mask=mask,
            centroid_lps=centroid_lps(mask, target.affine) if mask is not None else None,
            finding_type=interpreted.get(number, ""),
            creator=text(roi, "ROIGenerationAlgorithm")))
        labels.append(Label(number, name, color))
    if skipped:
        obj.notes.append(f"{skipped} contours are not closed planar contours on this series' "
                         "slice planes and were not drawn")
    if outside:
        obj.notes.append(f"{outside} contours lie outside this series' slices")
    if not any(f.mask is not None for f in obj.findings):
        obj.problem = ("This structure set cannot be shown: none of its contours lie on this "
                       "series' slices.")
        return
    obj.label_map = union_label_map(obj.findings, shape, target.affine, target.series_uid,
                                    labels)
