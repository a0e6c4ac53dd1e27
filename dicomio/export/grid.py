"""Which source frame is slice k of the loaded volume (from ``dicomio.load``'s plan).

A SEG frame must lie on a source image's pixels. The loader's plan lists the source
frames it used; each frame's own position, mapped through the volume's inverse affine,
gives its slice k (so gaps kept as blank slices are handled), and a volume whose voxels
are not source pixels (resampled: gantry tilt, uneven spacing) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pydicom

from dicomio.export.model import ExportRefused
from dicomio.load import VolumePlan, plan_volume
from dicomio.source import DicomSource

#: Largest distance (in voxels) between a source frame and the volume grid point it
#: is taken for; DS values carry ~1e-6 relative rounding, so 1 % of a voxel is ample.
GRID_TOLERANCE = 0.01


@dataclass(frozen=True)
class SourceSlot:
    """One source frame: the dataset that holds it and its 0-based frame index."""

    dataset: int  # index into SourceGrid.datasets
    frame: int  # 0-based frame in that dataset (0 for single-frame images)


@dataclass
class SourceGrid:
    """Source datasets (headers only) and the slot of each volume slice k."""

    datasets: list[pydicom.Dataset]
    slots: dict[int, SourceSlot]  # volume k -> source frame
    shape: tuple[int, int, int]
    affine: npt.NDArray[np.float64]
    multiframe: bool

    @property
    def frame_count(self) -> int:
        """Frames of the SEG's pixel array as highdicom counts them for these sources."""
        if self.multiframe:
            return int(self.datasets[0].get("NumberOfFrames", 1) or 1)
        return len(self.datasets)

    def frame_of(self, k: int) -> int:
        """The SEG pixel-array frame (source order) of volume slice k."""
        slot = self.slots.get(k)
        if slot is None:
            raise ExportRefused(
                f"slice {k} of the volume has no source image (a gap filled with blank "
                "slices); a finding there cannot be referenced: edit it out and export again")
        return slot.frame if self.multiframe else slot.dataset

    def dataset_of(self, k: int) -> pydicom.Dataset:
        self.frame_of(k)  # refuses a slice without a source
        return self.datasets[self.slots[k].dataset]


def _refuse_unless_on_grid(plan: VolumePlan, shape: tuple[int, int, int],
                           affine: npt.NDArray[np.float64]) -> None:
    if plan.resampled:
        raise ExportRefused(
            "this volume was resampled on loading (gantry tilt or uneven slice spacing), "
            "so its voxels are not the source pixels a DICOM SEG must lie on; export refused")
    if tuple(plan.shape) != tuple(shape) or not np.allclose(plan.affine, affine, atol=1e-4):
        raise ExportRefused(
            "the findings' grid differs from the source series' grid (reloaded or "
            "re-sorted since the run?); run the model again on this series, then export")


def source_grid(sources: Sequence[DicomSource], shape: tuple[int, int, int],
                affine: npt.NDArray[np.float64]) -> SourceGrid:
    """Map each volume slice to its source frame; refuse where that is not exact."""
    plan = plan_volume(list(sources))
    affine = np.asarray(affine, dtype=np.float64)
    _refuse_unless_on_grid(plan, shape, affine)
    inverse = np.linalg.inv(affine)
    order: dict[DicomSource, int] = {}
    slots: dict[int, SourceSlot] = {}
    for frame in plan.frames:
        if frame.position is None:
            raise ExportRefused(f"{frame.source} has no ImagePositionPatient; a SEG needs one")
        kji = (inverse @ np.array([*frame.position, 1.0]))[:3]
        k = round(float(kji[0]))
        if np.max(np.abs(kji - [k, 0.0, 0.0])) > GRID_TOLERANCE or not 0 <= k < shape[0]:
            raise ExportRefused(
                f"{frame.source} frame {frame.frame_index + 1} is not on the volume grid; "
                "export refused (its pixels are not the volume's voxels)")
        _check_axes(frame.source, frame.orientation, affine)
        index = order.setdefault(frame.source, len(order))
        slots[k] = SourceSlot(index, frame.frame_index)
    datasets = [_read_header(src) for src in order]
    multiframe = any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in datasets)
    if multiframe and len(datasets) > 1:
        raise ExportRefused(
            "the series is made of several multi-frame images; a SEG is written on one "
            "multi-frame image or on single-frame images only")
    return SourceGrid(datasets, slots, shape, affine, multiframe)


def _check_axes(source: DicomSource, orientation: tuple[float, ...] | None,
                affine: npt.NDArray[np.float64]) -> None:
    # Rows run along the volume's i axis and columns along j: then pixel (r, c) of the
    # frame is voxel (k, r, c), with no flip.
    if orientation is None:
        raise ExportRefused(f"{source} has no ImageOrientationPatient; a SEG needs one")
    i_axis = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    j_axis = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    if not (np.allclose(orientation[:3], i_axis, atol=1e-3)
            and np.allclose(orientation[3:6], j_axis, atol=1e-3)):
        raise ExportRefused(f"{source} is not oriented like the volume's rows and columns "
                            "(reoriented on loading); export refused")


def _read_header(source: DicomSource) -> pydicom.Dataset:
    # Headers only: highdicom needs the source's attributes, never its pixels.
    with source.open() as fp:
        return pydicom.dcmread(fp, stop_before_pixels=True)
