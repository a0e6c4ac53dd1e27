"""Voxel data with geometry: the objects every room passes around.

A bare ndarray never crosses a room boundary: it always travels with its
affine (``[k, j, i]`` index → LPS mm) and the series it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from core import geometry
from core.errors import GeometryError

FloatArray = npt.NDArray[np.float64]


class WarningCode(StrEnum):
    """Kinds of geometry and content problems a reader reports to the user."""

    GANTRY_TILT = "gantry_tilt"
    UNEVEN_SPACING = "uneven_spacing"
    MISSING_SLICES = "missing_slices"
    MIXED_ORIENTATION = "mixed_orientation"
    DUPLICATE_POSITION = "duplicate_position"
    RESAMPLED = "resampled"
    #: A header value was corrected (e.g. direction cosines normalised) or replaced.
    IMPLAUSIBLE_GEOMETRY = "implausible_geometry"
    OTHER = "other"


@dataclass(frozen=True)
class VolumeWarning:
    """A problem the user must see, with a plain-language message."""

    code: WarningCode
    message: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


@dataclass(eq=False)
class Volume:
    """A 3-D image: ``array[k, j, i]`` plus a 4×4 affine to LPS mm.

    ``metadata`` holds plain, non-identifying descriptive values (modality,
    series description, window presets, rescale units). Identifying text
    (patient name, ID, birth date) lives in ``identity`` so the viewer can
    hide it with one toggle and logs never see it.
    """

    array: npt.NDArray[Any]
    affine: FloatArray
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    modality: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    warnings: list[VolumeWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise GeometryError(f"a Volume needs a 3-D array, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise GeometryError(f"affine must be 4×4, got {self.affine.shape}")
        if not np.allclose(self.affine[3], [0, 0, 0, 1]):
            raise GeometryError("affine bottom row must be (0, 0, 0, 1)")
        if not np.all(np.isfinite(self.affine)):
            raise GeometryError(f"affine is not finite: {self.affine.tolist()}")
        if geometry.is_singular(self.affine):
            raise GeometryError("affine is singular")

    # Geometry, always derived from the affine: nothing else stores it.
    @property
    def shape(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape
        return int(k), int(j), int(i)

    @property
    def spacing_mm(self) -> FloatArray:
        """Voxel size in mm along (k, j, i)."""
        return geometry.spacing_from_affine(self.affine)

    @property
    def direction(self) -> FloatArray:
        """Columns: unit LPS vectors of k, j, i."""
        return geometry.direction_from_affine(self.affine)

    @property
    def origin_lps(self) -> FloatArray:
        """LPS mm of the centre of voxel (0, 0, 0)."""
        return np.asarray(self.affine[:3, 3], dtype=np.float64)

    def index_to_lps(self, index_kji: npt.ArrayLike) -> FloatArray:
        return geometry.index_to_lps(self.affine, index_kji)

    def lps_to_index(self, lps_point: npt.ArrayLike) -> FloatArray:
        return geometry.lps_to_index(self.affine, lps_point)

    def value_at_lps(self, lps_point: npt.ArrayLike) -> Any:
        """Voxel value nearest to an LPS point; raises if it lies outside."""
        idx = np.rint(self.lps_to_index(lps_point)).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.array(self.shape)):
            raise GeometryError(f"LPS point {np.asarray(lps_point).tolist()} is outside the volume")
        return self.array[tuple(idx)]

    def center_lps(self) -> FloatArray:
        return self.index_to_lps((np.array(self.shape, dtype=np.float64) - 1) / 2)

    @property
    def orientation_code(self) -> str:
        return geometry.orientation_code(self.affine)

    def with_array(self, array: npt.NDArray[Any]) -> Volume:
        """Same geometry and metadata, new voxels (shape must match)."""
        if array.shape != self.array.shape:
            raise GeometryError(f"shape {array.shape} differs from {self.array.shape}")
        return replace(self, array=array, metadata=dict(self.metadata),
                       warnings=list(self.warnings))


@dataclass(frozen=True)
class Label:
    """One class of a label map: value in the array, name, display colour, coded concept."""

    value: int
    name: str
    color_rgb: tuple[int, int, int] = (255, 0, 0)
    code: tuple[str, str, str] | None = None  # (scheme, value, meaning), e.g. SCT


@dataclass(eq=False)
class LabelMap:
    """Integer labels on a grid (usually the source series' grid)."""

    array: npt.NDArray[np.integer[Any]]
    affine: FloatArray
    labels: list[Label]
    series_uid: str = ""

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise GeometryError(f"a LabelMap needs a 3-D array, got {self.array.shape}")


@dataclass(eq=False)
class HeatMap:
    """Float scores in [0, 1] (probability or anomaly) on a grid."""

    array: npt.NDArray[np.floating[Any]]
    affine: FloatArray
    name: str = "probability"
    series_uid: str = ""

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim not in (3, 4):
            raise GeometryError(f"a HeatMap needs a 3-D or 4-D array, got {self.array.shape}")


@dataclass(frozen=True)
class Finding:
    """One highlighted region for the radiologist to accept, reject or edit."""

    id: int
    label_value: int
    label_name: str
    centroid_lps: tuple[float, float, float]
    centroid_index: tuple[float, float, float]  # (k, j, i)
    bbox_index: tuple[tuple[int, int, int], tuple[int, int, int]]  # (min kji, max kji) inclusive
    volume_mm3: float
    longest_diameter_mm: float
    max_score: float
    mean_score: float
    voxel_count: int
    series_uid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label_value": self.label_value,
            "label_name": self.label_name,
            "centroid_lps_mm": list(self.centroid_lps),
            "centroid_index_kji": list(self.centroid_index),
            "bbox_index_kji": [list(self.bbox_index[0]), list(self.bbox_index[1])],
            "volume_mm3": self.volume_mm3,
            "longest_diameter_mm": self.longest_diameter_mm,
            "max_score": self.max_score,
            "mean_score": self.mean_score,
            "voxel_count": self.voxel_count,
            "series_uid": self.series_uid,
        }
