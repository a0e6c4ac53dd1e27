"""The brush preview's mask arithmetic on crops (no full grid), voxel for voxel."""

from __future__ import annotations

import numpy as np


def test_combine_adds_and_erases_on_the_joint_box_only() -> None:
    from app.review_canvas import combine, overlay_tag
    from review.model import SparseMask

    grid = (9, 11, 13)
    base = np.zeros(grid, dtype=bool)
    base[1:4, 2:5, 3:9] = True  # not symmetric in any axis
    base[2, 6, 8] = True
    stroke = np.zeros(grid, dtype=bool)
    stroke[3, 4:9, 7:12] = True  # overlaps the base at (3, 4, 7..8)
    a, b = SparseMask.from_full(base), SparseMask.from_full(stroke)

    added = combine(a, b, erase=False)
    np.testing.assert_array_equal(added.to_full(grid), base | stroke)
    erased = combine(a, b, erase=True)
    np.testing.assert_array_equal(erased.to_full(grid), base & ~stroke)
    assert erased.voxel_count == base.sum() - (base & stroke).sum()
    # Empty cases: painting onto nothing gives the stroke; erasing nothing changes nothing.
    empty = SparseMask.empty_mask()
    np.testing.assert_array_equal(combine(empty, b, erase=False).to_full(grid), stroke)
    assert combine(empty, b, erase=True).empty
    assert combine(a, empty, erase=False) is a
    assert (overlay_tag("m12"), overlay_tag("r1"), overlay_tag("i3")) == ("12", "r1", "i3")
