"""stroke_voxels: the voxels a brush stroke covers, exactly, on anisotropic grids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from viewer.brush import stroke_voxels

# k → S 2.0 mm, j → P 0.9 mm, i → L 0.8 mm (like the "axial" phantom).
AFFINE = np.array([[0.0, 0.0, 0.8, 12.0],
                   [0.0, 0.9, 0.0, -70.0],
                   [2.0, 0.0, 0.0, -160.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE = (30, 40, 50)


def lps(kji: tuple[float, float, float]) -> np.ndarray:
    return AFFINE[:3, :3] @ np.asarray(kji, float) + AFFINE[:3, 3]


def as_set(offset: tuple[int, int, int], crop: np.ndarray) -> set[tuple[int, int, int]]:
    return {(int(a + offset[0]), int(b + offset[1]), int(c + offset[2]))
            for a, b, c in np.argwhere(crop)}


def test_single_point_axial_is_an_ellipse_of_voxels_on_one_slice() -> None:
    offset, crop = stroke_voxels(AFFINE, SHAPE, "axial", [lps((5, 10, 10))], 2.0)
    expected = {(5, 10 + dj, 10 + di) for dj, di in itertools.product(range(-3, 4), repeat=2)
                if (0.9 * dj) ** 2 + (0.8 * di) ** 2 <= 4.0}
    assert as_set(offset, crop) == expected
    assert len(expected) == 21                  # 5 + 2·5 + 2·3 (rows dj = 0, ±1, ±2)
    assert crop.dtype == bool and crop.shape[0] == 1


def test_segment_axial_covers_a_capsule_and_not_the_neighbour_slices() -> None:
    a, b = lps((7, 10, 10)), lps((7, 10, 20))
    got = as_set(*stroke_voxels(AFFINE, SHAPE, "axial", [a, b], 1.0))
    expected = {(7, 10, i) for i in range(9, 22)} | \
               {(7, 10 + dj, i) for dj in (-1, 1) for i in range(10, 21)}
    assert got == expected


def test_coronal_stroke_stays_in_one_row_of_j() -> None:
    # Coronal: in-plane axes L and S; normal along −P, so only j = 12 is painted.
    got = as_set(*stroke_voxels(AFFINE, SHAPE, "coronal", [lps((10, 12, 25))], 2.1))
    assert {j for _, j, _ in got} == {12}
    expected = {(10 + dk, 12, 25 + di) for dk, di in itertools.product(range(-2, 3), range(-3, 4))
                if (2.0 * dk) ** 2 + (0.8 * di) ** 2 <= 2.1 ** 2}
    assert got == expected


def test_flipped_grid_and_clipping_at_the_volume_edge() -> None:
    flipped = AFFINE.copy()
    flipped[:3, :3] *= -1                      # k → I, j → A, i → R
    p = flipped[:3, :3] @ np.array([0.0, 0.0, 0.0]) + flipped[:3, 3]   # corner voxel
    got = as_set(*stroke_voxels(flipped, SHAPE, "axial", [p], 1.0))
    assert got == {(0, 0, 0), (0, 0, 1), (0, 1, 0)}
    outside = p + np.array([50.0, 50.0, 0.0])  # beyond the corner (R/A of it)
    _off, crop = stroke_voxels(flipped, SHAPE, "axial", [outside], 1.0)
    assert crop.size == 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="plane"):
        stroke_voxels(AFFINE, SHAPE, "oblique", [lps((1, 1, 1))], 1.0)
    with pytest.raises(ValueError, match="N×3"):
        stroke_voxels(AFFINE, SHAPE, "axial", np.zeros((0, 3)), 1.0)
