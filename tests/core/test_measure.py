"""``core.measure``: the surface-only diameter equals the all-voxel one."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.measure import longest_diameter_mm, mask_diameter_mm


def test_surface_diameter_equals_the_all_voxel_diameter() -> None:
    """Random blobby masks on a sheared, anisotropic grid with an offset: dropping the
    interior voxels never changes the longest diameter."""
    rng = np.random.default_rng(11)
    affine = np.eye(4)
    affine[:3, :3] = [[0.9, 0.1, 0.0], [0.0, 1.1, 0.2], [0.0, 0.0, 2.5]]
    affine[:3, 3] = [-40.0, 12.0, 7.5]
    checked = 0
    for _ in range(25):
        mask = ndimage.binary_closing(rng.random((12, 14, 16)) < 0.55)
        if mask.sum() < 2:
            continue
        offset = (3, -2, 5)
        expect = longest_diameter_mm(np.argwhere(mask) + np.array(offset), affine)
        assert mask_diameter_mm(mask, offset, affine) == expect
        checked += 1
    assert checked > 20
    # A solid block: interior voxels exist and are dropped; the diagonal is exact.
    block = np.ones((5, 6, 7), dtype=bool)
    assert mask_diameter_mm(block, (0, 0, 0), np.eye(4)) == np.sqrt(4**2 + 5**2 + 6**2)
    assert mask_diameter_mm(np.zeros((2, 2, 2), dtype=bool), (0, 0, 0), np.eye(4)) == 0.0
