"""Each finding's own voxels, as the pipeline made them, handed to the review as they are.

A finding is one connected component (segmentation packs) or one box's inscribed
ellipsoid (detector packs). Re-deriving it later from the label map is not exact:
components may have been labelled with 6- or 18-connectivity, and ellipsoids may touch
or overlap (a label map holds one label per voxel). So the step that makes a finding
also keeps its mask: a boolean crop and the (k, j, i) offset of its first voxel on the
source grid. Crops may overlap one another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.volume import Finding

BoolArray = npt.NDArray[np.bool_]
Index3 = tuple[int, int, int]


@dataclass(frozen=True)
class FindingMask:
    """A finding's voxels: ``array`` (bool, 3-D) starts at ``offset`` on the source grid."""

    offset: Index3
    array: BoolArray

    def __post_init__(self) -> None:
        arr = np.asarray(self.array, dtype=np.bool_)
        if arr.ndim != 3:
            raise ValueError(f"a finding mask needs a 3-D array, got shape {arr.shape}")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "offset", tuple(int(v) for v in self.offset))

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.array))

    def full(self, shape: tuple[int, ...]) -> BoolArray:
        """The mask on a whole grid of ``shape`` (the crop lies inside it)."""
        out = np.zeros(shape, dtype=np.bool_)
        region = tuple(slice(o, o + s) for o, s in zip(self.offset, self.array.shape,
                                                       strict=True))
        out[region] = self.array
        return out


class Findings(list[Finding]):
    """Findings (a plain list to every caller) that also carry ``masks``: finding id →
    its :class:`FindingMask`, so the masks travel wherever the list goes in-process."""

    def __init__(self, findings: Iterable[Finding] = (),
                 masks: Mapping[int, FindingMask] | None = None) -> None:
        super().__init__(findings)
        self.masks: dict[int, FindingMask] = dict(masks or {})


def to_arrays(masks: Mapping[int, FindingMask]) -> dict[str, npt.NDArray[Any]]:
    """Masks as named arrays for ``np.savez`` (exact: the bool crops themselves)."""
    ids = sorted(masks)
    out: dict[str, npt.NDArray[Any]] = {
        "ids": np.asarray(ids, dtype=np.int64),
        "offsets": np.asarray([masks[i].offset for i in ids], dtype=np.int64).reshape(-1, 3),
    }
    for i in ids:
        out[f"mask_{i}"] = masks[i].array
    return out


def from_arrays(data: Mapping[str, npt.NDArray[Any]]) -> dict[int, FindingMask]:
    """The inverse of :func:`to_arrays`."""
    ids = [int(v) for v in np.asarray(data["ids"])]
    offsets = np.asarray(data["offsets"]).reshape(-1, 3)
    return {i: FindingMask((int(o[0]), int(o[1]), int(o[2])), np.asarray(data[f"mask_{i}"]))
            for i, o in zip(ids, offsets, strict=True)}
