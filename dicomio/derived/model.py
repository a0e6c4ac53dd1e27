"""Plain results of reading a DICOM SEG, SR (TID 1500) or RTSTRUCT onto a target grid.

Nothing here knows pydicom: the readers fill these, the app shows them. Every mask lives
on the TARGET volume's grid (the series the user opened), as a bool crop plus its offset,
so overlapping segments each keep their own voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.volume import FloatArray, LabelMap

SourceKind = Literal["SEG", "SR", "RTSTRUCT"]


@dataclass(frozen=True)
class ImportedMeasurement:
    """One numeric measurement, as stored: ``value`` is the DS text, never reformatted."""

    name: str  # concept name meaning, e.g. "Volume"
    value: str  # NumericValue exactly as in the file, e.g. "33.5824"
    unit: str  # unit code value (UCUM), e.g. "ml"
    #: Modifiers that tell same-named measurements apart, e.g. ("Derivation: Mean",).
    qualifiers: tuple[str, ...] = ()

    @property
    def as_float(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class MaskCrop:
    """A bool mask on the target grid: ``array`` starts at target index ``offset`` (k, j, i)."""

    offset: tuple[int, int, int]
    array: npt.NDArray[np.bool_]

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.array))

    def full(self, shape: tuple[int, int, int]) -> npt.NDArray[np.bool_]:
        """The mask expanded to the whole target grid."""
        out = np.zeros(shape, dtype=bool)
        k, j, i = self.offset
        dk, dj, di = self.array.shape
        out[k:k + dk, j:j + dj, i:i + di] = self.array
        return out


@dataclass(frozen=True)
class ImportedFinding:
    """One segment, ROI or measurement group of an imported object."""

    number: int  # segment number, ROI number or measurement group index (1-based)
    label_name: str
    color_rgb: tuple[int, int, int]
    source_kind: SourceKind
    source_sop_instance_uid: str
    mask: MaskCrop | None = None  # None: an SR measurement without a region (or not placed)
    centroid_lps: tuple[float, float, float] | None = None
    measurements: tuple[ImportedMeasurement, ...] = ()
    tracking_id: str = ""
    tracking_uid: str = ""
    finding_type: str = ""  # coded finding meaning, e.g. "Neoplasm, Primary"
    finding_site: str = ""
    qualitative: tuple[tuple[str, str], ...] = ()  # (concept, coded value meaning)
    creator: str = ""  # SEG algorithm type (AUTOMATIC / SEMIAUTOMATIC / MANUAL), RT interpreter
    algorithm: str = ""  # SEG algorithm name, if any
    #: SR only: (SEG SOP instance UID, segment number) this group measures.
    referenced_segment: tuple[str, int] | None = None


@dataclass
class DerivedObject:
    """One SEG / SR / RTSTRUCT as read against one target series."""

    kind: SourceKind
    sop_instance_uid: str
    series_uid: str
    description: str
    referenced_series_uids: tuple[str, ...] = ()
    frame_of_reference_uid: str = ""
    findings: list[ImportedFinding] = field(default_factory=list)
    #: Display union on the target grid: each voxel holds the LOWEST finding number that
    #: covers it (first wins). Overlaps are only complete in ``findings[n].mask``.
    label_map: LabelMap | None = None
    #: Empty when it can be shown; otherwise one sentence saying why not.
    problem: str = ""
    #: Things the user should know although it is shown (resampled, skipped contours).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


def centroid_lps(mask: MaskCrop, affine: FloatArray) -> tuple[float, float, float] | None:
    """Mean voxel centre of a mask, in LPS mm (None when the mask is empty)."""
    idx = np.argwhere(mask.array)
    if idx.size == 0:
        return None
    mean = idx.mean(axis=0) + np.asarray(mask.offset, dtype=np.float64)
    lps = affine @ np.append(mean, 1.0)
    return float(lps[0]), float(lps[1]), float(lps[2])


def crop(full: npt.NDArray[np.bool_]) -> MaskCrop | None:
    """The smallest crop holding every true voxel; None when there is none."""
    idx = np.argwhere(full)
    if idx.size == 0:
        return None
    lo = idx.min(axis=0)
    hi = idx.max(axis=0) + 1
    sub = full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return MaskCrop((int(lo[0]), int(lo[1]), int(lo[2])), np.ascontiguousarray(sub))


def union_label_map(findings: list[ImportedFinding], shape: tuple[int, int, int],
                    affine: FloatArray, series_uid: str, labels: list[Any]) -> LabelMap | None:
    """First-wins union of the findings' masks (lowest number on top) for display."""
    with_mask = [f for f in findings if f.mask is not None]
    if not with_mask:
        return None
    top = max(f.number for f in with_mask)
    dtype = np.uint8 if top < 256 else np.uint16
    array = np.zeros(shape, dtype=dtype)
    for f in sorted(with_mask, key=lambda f: f.number, reverse=True):  # lowest written last
        assert f.mask is not None
        k, j, i = f.mask.offset
        dk, dj, di = f.mask.array.shape
        view = array[k:k + dk, j:j + dj, i:i + di]
        view[f.mask.array] = f.number
    return LabelMap(array=array, affine=affine, labels=labels, series_uid=series_uid)
