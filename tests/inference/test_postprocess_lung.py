"""The lung-mask post-processing steps on small asymmetric phantoms whose grids are
anisotropic and not axial (permuted and flipped axes, an oblique one): each step must
read the patient directions from the affine, never from the array's axis order."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from core.errors import ModelPackError
from inference import postprocess as pp
from inference.manifest import parse_manifest


def _affine(columns: list[tuple[float, float, float]]) -> np.ndarray:
    """Columns = the LPS step (mm) of array axes 0, 1, 2."""
    a = np.eye(4)
    a[:3, :3] = np.array(columns, dtype=np.float64).T
    a[:3, 3] = (-12.5, 30.0, 101.0)
    return a


def _rot_x(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


_OBLIQUE = _rot_x(25.0) @ np.diag([0.9, 1.3, 2.5])  # axis 2 ~ S, tilted 25° toward A/P

# (affine, the array axis along S/I): the classic axial grid, a permuted and flipped one
# (axis 1 runs toward the feet), and an oblique one (25°: still mostly S/I).
GRIDS: dict[str, tuple[np.ndarray, int]] = {
    "axial": (_affine([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)]), 0),
    "permuted-flipped": (_affine([(-1.5, 0, 0), (0, 0, -3.0), (0, 0.8, 0)]), 1),
    "oblique": (_affine([tuple(_OBLIQUE[:, 0]), tuple(_OBLIQUE[:, 1]),
                         tuple(_OBLIQUE[:, 2])]), 2),
}
SHAPE = (14, 17, 19)


def _put(arr: np.ndarray, si: int, along_si: slice, lateral: tuple[slice, slice],
         value: int) -> None:
    """Set a box given by its extent along the S/I axis and the two other axes in order."""
    others = [a for a in range(3) if a != si]
    index: list[slice] = [slice(None)] * 3
    index[si] = along_si
    index[others[0]], index[others[1]] = lateral
    arr[tuple(index)] = value


def test_face_normals_and_planes_follow_the_affine() -> None:
    for name, (affine, si) in GRIDS.items():
        normals = pp.face_normals(affine)
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0), name
        assert pp.plane_axis(affine, "axial") == si, name
    affine = GRIDS["permuted-flipped"][0]
    assert pp.plane_axis(affine, "sagittal") == 0 and pp.plane_axis(affine, "coronal") == 2


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_clear_border_lateral_keeps_what_only_the_top_and_bottom_cut(grid: str) -> None:
    affine, si = GRIDS[grid]
    labels = np.zeros(SHAPE, dtype=np.uint8)
    n_si = SHAPE[si]
    # A: a "lung" through the whole S/I extent (both S/I faces), lateral sides inside.
    _put(labels, si, slice(0, n_si), (slice(2, 6), slice(3, 8)), 1)
    # B: "air around the body": touches the last face of the first lateral axis.
    _put(labels, si, slice(3, 6), (slice(9, None), slice(10, 13)), 1)
    # C: inside everything; D: another label touching a lateral face (not listed).
    _put(labels, si, slice(4, 7), (slice(8, 10), slice(2, 4)), 1)
    _put(labels, si, slice(2, 4), (slice(0, 2), slice(14, 17)), 2)
    before = labels.copy()
    pp.clear_border(labels, [1], "lateral", affine)
    assert (labels[before == 2] == 2).all()  # label 2 was not asked for
    removed = (before == 1) & (labels == 0)
    b = np.zeros(SHAPE, dtype=bool)
    _put(b.view(np.uint8), si, slice(3, 6), (slice(9, None), slice(10, 13)), 1)
    assert np.array_equal(removed, b)
    # "all": the S/I faces count too, so A goes; C (inside) still stays.
    pp.clear_border(labels, [1], "all", affine)
    c = np.zeros(SHAPE, dtype=np.uint8)
    _put(c, si, slice(4, 7), (slice(8, 10), slice(2, 4)), 1)
    assert np.array_equal(labels == 1, c == 1)


def test_clear_border_same_array_other_affine_clears_other_component() -> None:
    """One array, two grids: which component touches only S/I faces depends on the affine."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[:, 3:6, 4:8] = 1  # spans array axis 0
    labels[5:8, 0:SHAPE[1], 12:15] = 2  # spans array axis 1
    axial = pp.clear_border(labels.copy(), None, "lateral", GRIDS["axial"][0])
    assert (axial == 1).any() and not (axial == 2).any()
    permuted = pp.clear_border(labels.copy(), None, "lateral", GRIDS["permuted-flipped"][0])
    assert not (permuted == 1).any() and (permuted == 2).any()


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_keep_large_components_relative_to_the_largest(grid: str) -> None:
    _, si = GRIDS[grid]
    labels = np.zeros(SHAPE, dtype=np.uint8)
    _put(labels, si, slice(1, 11), (slice(1, 6), slice(1, 6)), 1)  # 250 voxels
    _put(labels, si, slice(1, 6), (slice(8, 13), slice(8, 10)), 1)  # 50: 20 %, kept
    _put(labels, si, slice(1, 3), (slice(1, 4), slice(10, 14)), 1)  # 24: 9.6 %, dropped
    _put(labels, si, slice(12, 13), (slice(12, 13), slice(14, 15)), 2)  # other label
    pp.keep_large_components(labels, [1], 0.1)
    assert int((labels == 1).sum()) == 300
    assert int((labels == 2).sum()) == 1
    pp.keep_large_components(labels, None, 0.5)
    assert int((labels == 1).sum()) == 250 and int((labels == 2).sum()) == 1


def _tube(si: int, along_si: bool) -> np.ndarray:
    """A square tube (wall 1 voxel, lumen 3×3) open at both ends: along S/I or across."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    if along_si:
        _put(labels, si, slice(None), (slice(3, 8), slice(4, 9)), 1)
        _put(labels, si, slice(None), (slice(4, 7), slice(5, 8)), 0)
    else:  # along the second lateral axis, crossing the S/I slices at their middle
        _put(labels, si, slice(4, 9), (slice(3, 8), slice(None)), 1)
        _put(labels, si, slice(5, 8), (slice(4, 7), slice(None)), 0)
    return labels


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_fill_holes_2d_axial_fills_a_tube_only_when_it_runs_head_to_foot(grid: str) -> None:
    affine, si = GRIDS[grid]
    along = _tube(si, along_si=True)
    assert int((pp.fill_holes(along.copy(), [1]) == 1).sum()) == int((along == 1).sum())
    filled = pp.fill_holes_2d(along.copy(), [1], "axial", affine)
    lumen = np.zeros(SHAPE, dtype=np.uint8)
    _put(lumen, si, slice(None), (slice(4, 7), slice(5, 8)), 1)
    assert np.array_equal(filled == 1, (along == 1) | (lumen == 1))
    across = _tube(si, along_si=False)
    assert np.array_equal(pp.fill_holes_2d(across.copy(), [1], "axial", affine), across)


def test_fill_holes_2d_leaves_other_labels_alone() -> None:
    affine, si = GRIDS["permuted-flipped"]
    labels = _tube(si, along_si=True)
    _put(labels, si, slice(2, 3), (slice(5, 6), slice(6, 7)), 2)  # inside the lumen
    out = pp.fill_holes_2d(labels, [1], "axial", affine)
    assert int((out == 2).sum()) == 1


def _slabs(shape: tuple[int, ...], axis: int, gap: int) -> np.ndarray:
    """Two slabs across ``axis``, ``gap`` voxels apart, not reaching the other faces."""
    labels = np.zeros(shape, dtype=np.uint8)
    mid = shape[axis] // 2
    index = [slice(3, n - 3) for n in shape]
    index[axis] = slice(2, mid - gap // 2)
    labels[tuple(index)] = 1
    index[axis] = slice(mid - gap // 2 + gap, shape[axis] - 2)
    labels[tuple(index)] = 1
    return labels


@pytest.mark.parametrize("grid_mm", [0.0, 2.0])
def test_closing_bridges_gaps_narrower_than_the_ball_in_mm(grid_mm: float) -> None:
    """Anisotropic voxels: a 3-voxel gap is 9 mm along one axis, 2.4 mm along another.
    A 3 mm ball bridges the 2.4 mm gap but not the 9 mm one."""
    affine = _affine([(-0.8, 0, 0), (0, 0, -3.0), (0, 0.8, 0)])  # axis 1: 3 mm, S/I
    shape = (40, 16, 40)
    narrow = _slabs(shape, axis=0, gap=3)  # 2.4 mm
    wide = _slabs(shape, axis=1, gap=3)  # 9 mm
    for labels, bridged in ((narrow, True), (wide, False)):
        before = labels.copy()
        labels[labels.shape[0] // 2, 8, 8] = 2 if bridged else 0  # another label in a gap
        pp.closing(labels, [1], 3.0, grid_mm, affine)
        assert (labels[before == 1] == 1).all()  # nothing removed
        gap = (before == 0) & (labels == 1)
        if bridged:
            # The gap between the slabs' faces is filled (not its rim, nor the other label).
            centre = labels[shape[0] // 2, 6:-6, 6:-6]
            assert (centre[centre != 2] == 1).all() and int((labels == 2).sum()) == 1
        else:
            assert int(gap.sum()) < 0.1 * int((before == 1).sum()), int(gap.sum())
            assert not (labels[:, shape[1] // 2, 6:-6][6:-6] == 1).all()


def test_closing_fills_a_pleural_indent_on_a_coarse_grid() -> None:
    """A juxtapleural nodule: a ball (radius 6 mm) inside a lung-like block, touching its
    side, is cut out of the mask. A 9 mm closing fills it, exact (grid 0) or on a ~2 mm
    grid; a 3 mm one does not."""
    affine = _affine([(0, 0, 2.0), (0, 0.7, 0), (0.7, 0, 0)])
    shape = (30, 60, 60)
    k, j, i = np.indices(shape)
    lps = np.einsum("ab,bkji->akji", affine[:3, :3], np.array([k, j, i])) + \
        affine[:3, 3, None, None, None]
    centre = affine[:3, :3] @ np.array([15, 30, 7.5 + 6.0 / 0.7]) + affine[:3, 3]
    notch = np.linalg.norm(lps - centre[:, None, None, None], axis=0) < 6.0
    block = (i >= 8) & (i < 52) & (j >= 10) & (j < 50) & (k >= 3) & (k < 27)
    for radius, grid_mm, filled in ((9.0, 0.0, True), (9.0, 2.0, True), (3.0, 0.0, False)):
        labels = (block & ~notch).astype(np.uint8)
        pp.closing(labels, None, radius, grid_mm, affine)
        inside = notch & block
        share = float(labels[inside].mean())
        assert (share > 0.95) if filled else (share < 0.5), (radius, grid_mm, share)


@pytest.mark.parametrize(("step", "expected"), [
    ({"step": "clear_border", "faces": "top"}, r"postprocessing\[0\]\.clear_border\.faces"),
    ({"step": "keep_large_components"},
     r"keep_large_components\.min_fraction: required field is missing"),
    ({"step": "keep_large_components", "min_fraction": 0},
     r"keep_large_components\.min_fraction: Input should be greater than 0"),
    ({"step": "fill_holes_2d", "plane": "oblique"}, r"fill_holes_2d\.plane"),
    ({"step": "closing", "radius_mm": 3, "grid_mm": 4},
     r"closing: grid_mm 4\.0 is coarser than radius_mm 3\.0"),
    ({"step": "closing", "radius_mm": 3, "shape": "cube"}, r"closing\.shape: unknown key"),
])
def test_new_steps_are_validated_with_clear_messages(step: dict[str, Any],
                                                     expected: str) -> None:
    from inference.lung_pack import manifest

    m = manifest("0" * 64)
    m["postprocessing"] = [step]
    with pytest.raises(ModelPackError, match=expected):
        parse_manifest(json.dumps(m))
