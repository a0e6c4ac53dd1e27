"""A boolean region stored as its bounding crop: the form in which a finding's voxels travel
from the pipeline (``inference.finding_mask``) to the review (``review.model.SparseMask``,
which adds editing and serialisation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
Index3 = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class CropMask:
    """``array`` (bool, 3-D) starts at ``offset`` (k, j, i) on a series grid. The offset may
    be negative and the crop may overhang the grid; :meth:`full` keeps what lies inside."""

    offset: Index3
    array: BoolArray

    def __post_init__(self) -> None:
        arr = np.asarray(self.array, dtype=np.bool_)
        if arr.ndim != 3:
            raise ValueError(f"a {type(self).__name__} needs a 3-D array, got shape "
                             f"{arr.shape}")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "offset", tuple(int(v) for v in self.offset))

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.array))

    def full(self, shape: tuple[int, ...]) -> BoolArray:
        """The mask on a whole grid of ``shape``; voxels outside the grid are dropped."""
        out = np.zeros(tuple(int(s) for s in shape[:3]), dtype=np.bool_)
        lo = [max(0, o) for o in self.offset]
        hi = [min(int(shape[a]), self.offset[a] + self.array.shape[a]) for a in range(3)]
        if all(h > low for low, h in zip(lo, hi, strict=True)):
            out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = self.array[tuple(
                slice(lo[a] - self.offset[a], hi[a] - self.offset[a]) for a in range(3))]
        return out
