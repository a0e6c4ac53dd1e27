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
from typing import Any

import numpy as np
import numpy.typing as npt

from core.mask import CropMask
from core.volume import Finding

# A finding's voxels: a boolean crop and the (k, j, i) offset of its first voxel.
FindingMask = CropMask


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
