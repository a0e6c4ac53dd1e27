"""The DICOM SEG of the kept findings (highdicom): one BINARY segment each.

Only source frames that some kept mask touches become SEG frames; they are handed
to highdicom with their own source positions, so each SEG frame lies exactly on its
source image and references it.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
import numpy.typing as npt

from dicomio.export.grid import SourceGrid
from dicomio.export.model import AlgorithmInfo, ExportContext, ExportFinding, ExportRefused


def code(coded: tuple[str, str, str]) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(*coded)


def algorithm_identification(algorithm: AlgorithmInfo) -> hd.AlgorithmIdentificationSequence:
    parameters = {k: v for k, v in (("pack", algorithm.pack_id), ("sha256", algorithm.sha256),
                                    ("provider", algorithm.provider)) if v}
    return hd.AlgorithmIdentificationSequence(
        # Name, version and source are LO (at most 64 characters); the full name and the
        # hashes are in the SR and the audit log.
        name=algorithm.name[:64], family=code(algorithm.family),
        version=(algorithm.version or "0")[:64], source=algorithm.manufacturer[:64],
        parameters=parameters or None)


def segment_description(finding: ExportFinding,
                        algorithm: AlgorithmInfo) -> hd.seg.SegmentDescription:
    # MANUAL segments carry no algorithm identification (the standard forbids it).
    ident = None if finding.algorithm_type == "MANUAL" else algorithm_identification(algorithm)
    return hd.seg.SegmentDescription(
        segment_number=finding.number,
        segment_label=f"{finding.tracking_id} {finding.label_name}"[:64],
        segmented_property_category=code(finding.category),
        segmented_property_type=code(finding.property_type),
        algorithm_type=finding.algorithm_type,
        algorithm_identification=ident,
        tracking_uid=finding.tracking_uid,
        tracking_id=finding.tracking_id,
        display_color=hd.color.CIELabColor.from_rgb(*finding.color_rgb),
    )


def _clip(finding: ExportFinding, shape: tuple[int, int, int]
          ) -> tuple[int, npt.NDArray[np.bool_], tuple[slice, slice]]:
    """The finding's crop clipped to the grid (a crop may reach past an edge): its
    first slice k, the clipped crop, and its (rows, columns) on the grid."""
    lo = [int(v) for v in finding.offset]
    hi = [o + n for o, n in zip(lo, finding.mask.shape, strict=True)]
    clo = [max(v, 0) for v in lo]
    chi = [min(v, n) for v, n in zip(hi, shape, strict=True)]
    if any(b <= a for a, b in zip(clo, chi, strict=True)):
        return 0, np.zeros((0, 0, 0), dtype=bool), (slice(0, 0), slice(0, 0))
    crop = finding.mask[tuple(slice(a - o, b - o) for a, b, o in zip(clo, chi, lo, strict=True))]
    return clo[0], crop, (slice(clo[1], chi[1]), slice(clo[2], chi[2]))


def mask_frames(findings: Sequence[ExportFinding], grid: SourceGrid
                ) -> tuple[list[int], npt.NDArray[np.generic]]:
    """Volume slices that carry a mask, and their pixel array for highdicom.

    Segments that do not overlap go as one (frames, rows, cols) array of segment
    numbers, a tenth of the bytes of the (frames, rows, cols, segments) booleans that
    overlapping ones need; highdicom writes the same BINARY SEG from either.
    """
    shape = grid.shape
    clipped = [_clip(f, shape) for f in findings]
    slices = sorted({k0 + int(dk) for k0, crop, _ in clipped
                     for dk in np.flatnonzero(crop.reshape(crop.shape[0], -1).any(axis=1))})
    if not slices:
        raise ExportRefused("the kept findings have empty masks: nothing to export as a SEG")
    for k in slices:
        grid.frame_of(k)  # refuses a mask on a slice without a source image
    row = {k: n for n, k in enumerate(slices)}
    dtype = np.uint8 if len(findings) < 256 else np.uint16
    labels = np.zeros((len(slices), shape[1], shape[2]), dtype=dtype)
    for s, (k0, crop, (rows, cols)) in enumerate(clipped, start=1):
        for dk in range(crop.shape[0]):
            if k0 + dk not in row:
                continue
            target = labels[row[k0 + dk], rows, cols]
            if np.any(target[crop[dk]]):
                return slices, _stacked(clipped, row, shape)
            target[crop[dk]] = s
    return slices, labels


def _stacked(clipped: list[tuple[int, npt.NDArray[np.bool_], tuple[slice, slice]]],
             row: dict[int, int], shape: tuple[int, int, int]) -> npt.NDArray[np.bool_]:
    """Overlapping segments: one boolean plane per segment."""
    array = np.zeros((len(row), shape[1], shape[2], len(clipped)), dtype=bool)
    for s, (k0, crop, (rows, cols)) in enumerate(clipped):
        for dk in range(crop.shape[0]):
            if k0 + dk in row:
                array[row[k0 + dk], rows, cols, s] |= crop[dk]
    return array


def build_seg(findings: Sequence[ExportFinding], algorithm: AlgorithmInfo,
              context: ExportContext, grid: SourceGrid) -> hd.seg.Segmentation:
    slices, array = mask_frames(findings, grid)
    # The source's own positions (exact DS strings), not ones recomputed from the affine.
    positions = [_source_position(grid, k) for k in slices]
    descriptions = [segment_description(f, algorithm) for f in findings]
    return hd.seg.Segmentation(
        source_images=grid.datasets,
        pixel_array=array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=context.series_number_base + 1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=algorithm.manufacturer,
        manufacturer_model_name=algorithm.name[:64] or "Lucida",
        software_versions=context.software_version or algorithm.version or "0",
        device_serial_number=(algorithm.sha256 or "0")[:64],
        content_description="Reviewed AI findings, research use only"[:64],
        content_creator_name=_person(context.reviewer),
        content_label="LUCIDA_REVIEW",
        plane_positions=positions,
    )


def _source_position(grid: SourceGrid, k: int) -> hd.PlanePositionSequence:
    ds = grid.dataset_of(k)
    if grid.multiframe:
        frame = grid.slots[k].frame
        item = ds.PerFrameFunctionalGroupsSequence[frame]
        pos = item.PlanePositionSequence[0].ImagePositionPatient
    else:
        pos = ds.ImagePositionPatient
    return hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                    tuple(float(v) for v in pos))


def _person(name: str) -> str:
    # PN: family^given. A login name is one component: a trailing caret says so.
    name = name.strip()[:60] or "Unknown"
    return name if "^" in name else f"{name}^"
