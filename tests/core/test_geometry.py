"""Geometry of core.Volume against SimpleITK and nibabel, with asymmetric data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core import convert, geometry
from core.errors import GeometryError
from core.resample import grid_covering, resample_array
from core.volume import Volume


def oblique_affine() -> np.ndarray:
    """An arbitrary (non-round) oblique affine with anisotropic spacing."""
    rot = Rotation.from_euler("xyz", [17.3, -8.1, 31.7], degrees=True).as_matrix()
    # rot columns become the unit directions of i (row), j (column) and the normal.
    iop = [*rot[:, 0], *rot[:, 1]]
    normal = np.cross(rot[:, 0], rot[:, 1])
    return geometry.affine_from_dicom(iop, [-101.3, 57.9, 12.25], [0.83, 0.61], 2.7 * normal)


def test_affine_from_dicom_matches_simpleitk_physical_points() -> None:
    affine = oblique_affine()
    array = np.random.default_rng(0).integers(-1000, 1000, (7, 9, 11)).astype(np.int16)
    image = convert.to_sitk(array, affine)
    for k, j, i in [(0, 0, 0), (6, 8, 10), (3, 2, 9), (5, 7, 1)]:
        expected = image.TransformIndexToPhysicalPoint((i, j, k))
        np.testing.assert_allclose(geometry.index_to_lps(affine, [k, j, i]), expected, atol=1e-9)
        assert image.GetPixel(i, j, k) == array[k, j, i]
    back_array, back_affine = convert.from_sitk(image)
    np.testing.assert_array_equal(back_array, array)
    np.testing.assert_allclose(back_affine, affine, atol=1e-12)


def test_pixel_spacing_order_is_row_then_column() -> None:
    # PixelSpacing = (row spacing, column spacing): j steps by the first value.
    affine = geometry.affine_from_dicom([1, 0, 0, 0, 1, 0], [0, 0, 0], [0.5, 0.9], [0, 0, 3])
    np.testing.assert_allclose(geometry.spacing_from_affine(affine), [3.0, 0.5, 0.9])
    np.testing.assert_allclose(geometry.index_to_lps(affine, [0, 1, 0]), [0, 0.5, 0])
    np.testing.assert_allclose(geometry.index_to_lps(affine, [0, 0, 1]), [0.9, 0, 0])


def test_lps_index_round_trip() -> None:
    affine = oblique_affine()
    pts = np.random.default_rng(1).uniform(-5, 20, (50, 3))
    np.testing.assert_allclose(
        geometry.lps_to_index(affine, geometry.index_to_lps(affine, pts)), pts, atol=1e-9
    )


def test_nifti_affine_maps_same_voxel_to_ras() -> None:
    import nibabel as nib

    affine = oblique_affine()
    array = np.arange(7 * 9 * 11, dtype=np.int16).reshape(7, 9, 11)
    img = nib.Nifti1Image(convert.array_to_ijk(array), convert.to_ras_affine_ijk(affine))
    k, j, i = 4, 2, 8
    ras = img.affine @ np.array([i, j, k, 1.0])
    lps = geometry.index_to_lps(affine, [k, j, i])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)
    assert np.asarray(img.dataobj)[i, j, k] == array[k, j, i]
    np.testing.assert_allclose(convert.from_ras_affine_ijk(img.affine), affine, atol=1e-12)


def test_orientation_letters() -> None:
    axial = geometry.affine_from_dicom([1, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1], [0, 0, 1])
    assert geometry.orientation_code(axial) == "SPL"
    sagittal = geometry.affine_from_dicom([0, 1, 0, 0, 0, -1], [0, 0, 0], [1, 1], [-1, 0, 0])
    assert geometry.orientation_code(sagittal) == "RIP"
    assert geometry.axis_letter([0.2, -0.97, 0.05]) == "AL"


def test_volume_rejects_bad_geometry() -> None:
    with pytest.raises(GeometryError, match="3-D"):
        Volume(np.zeros((4, 4)), np.eye(4))
    singular = np.eye(4)
    singular[2, 2] = 0
    with pytest.raises(GeometryError, match="singular"):
        Volume(np.zeros((2, 2, 2)), singular)


def test_volume_rejects_non_finite_affine() -> None:
    affine = oblique_affine()
    affine[1, 3] = np.nan
    with pytest.raises(GeometryError, match="affine is not finite"):
        Volume(np.zeros((2, 2, 2)), affine)


def test_singularity_is_scale_free() -> None:
    # 50 µm isotropic voxels (micro-CT) are a fine grid, not a singular one...
    tiny = np.diag([5e-5, 5e-5, 5e-5, 1.0])
    assert Volume(np.zeros((2, 2, 2)), tiny).spacing_mm[0] == pytest.approx(5e-5)
    # ...while two axes along the same direction are singular whatever their size.
    flat = np.eye(4)
    flat[:3, 0] = (0, 3.0, 0.001)
    with pytest.raises(GeometryError, match="singular"):
        Volume(np.zeros((2, 2, 2)), flat)


def test_check_affine_names_what_is_wrong() -> None:
    good = geometry.affine_from_dicom([1, 0, 0, 0, 1, 0], [0, 0, 0], [0.8, 0.7], [0, 0, 2.5])
    geometry.check_affine(good, handedness=-1)  # a DICOM stack: det < 0
    sheared = good.copy()
    sheared[:3, 0] = (0, 0.9, 2.5)  # k leans along j: a tilted stack not resampled
    with pytest.raises(GeometryError,
                       match=r"affine is sheared: its axes are up to 19\.799° off perpendicular"):
        geometry.check_affine(sheared)
    geometry.check_affine(sheared, orthogonal=False)
    reversed_k = good.copy()
    reversed_k[:3, 0] *= -1
    with pytest.raises(GeometryError, match="\\+k does not run along the slice normal"):
        geometry.check_affine(reversed_k, handedness=-1)
    infinite = good.copy()
    infinite[0, 3] = np.inf
    with pytest.raises(GeometryError, match="not finite"):
        geometry.check_affine(infinite)


def test_affine_from_dicom_refuses_cosines_that_would_scale_or_shear() -> None:
    with pytest.raises(GeometryError, match="not a pair of perpendicular unit vectors"):
        geometry.affine_from_dicom([0.9, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1], [0, 0, 1])
    with pytest.raises(GeometryError, match="not a pair of perpendicular unit vectors"):
        geometry.affine_from_dicom([1, 0, 0, 0.1, 0.995, 0], [0, 0, 0], [1, 1], [0, 0, 1])


def test_value_at_lps_uses_affine() -> None:
    affine = oblique_affine()
    array = np.zeros((7, 9, 11), dtype=np.int16)
    array[5, 1, 8] = 42
    vol = Volume(array, affine)
    assert vol.value_at_lps(vol.index_to_lps([5, 1, 8])) == 42
    with pytest.raises(GeometryError, match="outside"):
        vol.value_at_lps(vol.index_to_lps([50, 1, 8]))


def test_resample_onto_flipped_grid_keeps_world_positions() -> None:
    affine = oblique_affine()
    rng = np.random.default_rng(2)
    array = rng.integers(0, 100, (6, 8, 10)).astype(np.int16)
    # Same voxel centres, every axis reversed: nearest resampling must be an exact flip.
    flipped = affine.copy()
    flipped[:3, :3] = -affine[:3, :3]
    flipped[:3, 3] = geometry.index_to_lps(affine, [5, 7, 9])
    out = resample_array(array, affine, flipped, (6, 8, 10), interpolation="nearest")
    np.testing.assert_array_equal(out, array[::-1, ::-1, ::-1])


def test_grid_covering_encloses_source_and_linear_resample_is_exact_on_ramp() -> None:
    affine = oblique_affine()
    k, j, i = np.meshgrid(np.arange(6), np.arange(8), np.arange(10), indexing="ij")
    lps = geometry.index_to_lps(affine, np.stack([k, j, i], -1).reshape(-1, 3))
    ramp = (2.0 * lps[:, 0] - 0.5 * lps[:, 1] + 0.25 * lps[:, 2]).reshape(6, 8, 10)
    target, shape = grid_covering(affine, (6, 8, 10), np.eye(3), [1.0, 1.0, 1.0])
    lo, hi = geometry.bounds_lps(affine, (6, 8, 10))
    tlo, thi = geometry.bounds_lps(target, shape)
    assert np.all(tlo <= lo + 1e-6) and np.all(thi >= hi - 1.0 - 1e-6)
    out = resample_array(ramp.astype(np.float32), affine, target, shape, fill_value=np.nan)
    # Inside the source, linear interpolation of a linear ramp is exact.
    tk, tj, ti = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    tl = geometry.index_to_lps(target, np.stack([tk, tj, ti], -1).reshape(-1, 3))
    src_idx = geometry.lps_to_index(affine, tl)
    inside = np.all((src_idx >= 0) & (src_idx <= np.array([5, 7, 9])), axis=1)
    expected = 2.0 * tl[:, 0] - 0.5 * tl[:, 1] + 0.25 * tl[:, 2]
    assert inside.sum() > 100
    np.testing.assert_allclose(out.reshape(-1)[inside], expected[inside], atol=1e-3)
