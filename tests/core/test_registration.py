"""Rigid registration (core/registration.py): the matrix conventions, and a moved copy of
LIDC-IDRI-0001 registered back within 1 mm and 1° of the transform it was made with."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from core.errors import CancelledError
from core.progress import CancelToken
from core.registration import (
    RegistrationSettings,
    apply,
    euler_to_matrix,
    register_rigid,
    rigid_matrix,
    rotation_angle_deg,
    transform_difference,
    volume_image,
    working_image,
)
from core.volume import Volume

# The known motion of the "prior": 6 / -9 / 4 mm and 5° about an oblique axis.
SHIFT_MM = (6.0, -9.0, 4.0)
AXIS = (1.0, 1.0, 0.5)
ANGLE_DEG = 5.0


def read_lidc(shared_data: Path) -> Volume:
    from dicomio.load import read_volume

    files = sorted((shared_data / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))
    assert len(files) >= 133
    return read_volume(files)


def moved_copy(volume: Volume, matrix: np.ndarray, crop: tuple[int, int] = (10, 8)) -> Volume:
    """The same voxels placed by ``matrix`` (fixed LPS → copy LPS) in a new frame of
    reference, a few slices cropped at each end so the two extents differ.

    The anatomy at voxel v is at ``A v`` in ``volume`` and at ``matrix A v`` in the copy, so
    ``matrix`` is exactly the transform a registration must recover.
    """
    start, end = crop
    shift = np.eye(4)
    shift[0, 3] = start  # copy index k = source index k - start
    array = volume.array[start: volume.shape[0] - end].copy()
    return Volume(array, matrix @ volume.affine @ shift, modality=volume.modality,
                  frame_of_reference_uid="1.2.826.0.1.3680043.8.498.999")


def grid_points(volume: Volume) -> np.ndarray:
    """LPS mm of 27 points spread over the whole volume (corners, edges, centre)."""
    k, j, i = (np.array([0.0, (n - 1) / 2.0, n - 1.0]) for n in volume.shape)
    kk, jj, ii = np.meshgrid(k, j, i, indexing="ij")
    return volume.index_to_lps(np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1))


def test_rigid_matrix_rotates_about_its_centre_then_shifts() -> None:
    centre = np.array([10.0, -20.0, 30.0])
    m = rigid_matrix((0, 0, 1), 90.0, (1.0, 2.0, 3.0), centre)
    np.testing.assert_allclose(apply(m, centre), centre + np.array([1.0, 2.0, 3.0]), atol=1e-12)
    # 90° about +z: +x goes to +y.
    np.testing.assert_allclose(apply(m, centre + np.array([5.0, 0, 0])),
                               centre + np.array([1.0, 7.0, 3.0]), atol=1e-12)
    assert rotation_angle_deg(m) == pytest.approx(90.0)
    with pytest.raises(ValueError):
        rigid_matrix((0, 0, 0), 5.0, (0, 0, 0))


def test_euler_transform_to_matrix_agrees_with_simpleitk() -> None:
    t = sitk.Euler3DTransform((5.0, -3.0, 12.0), 0.05, -0.08, 0.11, (4.0, -6.0, 2.5))
    m = euler_to_matrix(t)
    rng = np.random.default_rng(3)
    for p in rng.uniform(-200, 200, size=(10, 3)):
        np.testing.assert_allclose(apply(m, p), t.TransformPoint(tuple(p)), atol=1e-9)


def test_transform_difference_measures_distance_and_angle() -> None:
    a = rigid_matrix((0, 1, 0), 2.0, (0, 0, 0))
    b = rigid_matrix((0, 1, 0), 3.0, (0.5, 0, 0))
    points = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    distance, angle = transform_difference(a, b, points)
    assert angle == pytest.approx(1.0, abs=1e-9)
    assert 0.5 < distance < 0.5 + 100 * np.radians(1.0) + 1e-6


def test_working_image_is_about_4_mm_and_keeps_the_extent() -> None:
    affine = np.diag([2.5, 0.7, 0.7, 1.0])
    affine[:3, :3] = np.column_stack([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)])
    volume = Volume(np.zeros((40, 120, 120), dtype=np.int16), affine)
    image = working_image(volume_image(volume), RegistrationSettings())
    spacing = np.array(image.GetSpacing())  # (i, j, k)
    np.testing.assert_allclose(spacing, (0.7 * 6, 0.7 * 6, 5.0))
    assert image.GetSize() == (20, 20, 20)


@pytest.mark.shared
def test_moved_lidc_registers_back_within_1mm_and_1deg(shared_data: Path) -> None:
    current = read_lidc(shared_data)
    truth = rigid_matrix(AXIS, ANGLE_DEG, SHIFT_MM, current.center_lps())
    prior = moved_copy(current, truth)
    fractions: list[float] = []
    start = time.perf_counter()
    result = register_rigid(current, prior, progress=lambda f, _m="": fractions.append(f))
    seconds = time.perf_counter() - start
    distance, angle = transform_difference(result.matrix, truth, grid_points(current))
    assert distance < 1.0, f"{distance:.2f} mm off somewhere in the volume"
    assert angle < 1.0
    # The starting point (centres aligned) was far off: the optimiser did the work.
    assert transform_difference(np.eye(4), truth, grid_points(current))[0] > 15.0
    assert result.iterations > 5 and result.metric < -0.5
    assert fractions and fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    assert seconds < 20.0
    # Lock-step: the nodule of SOURCE.md (column 316, row 367, z ≈ -115.9) is found again.
    zs = current.index_to_lps(np.stack([np.arange(current.shape[0]),
                                        np.zeros(current.shape[0]),
                                        np.zeros(current.shape[0])], axis=1))[:, 2]
    nodule_current = current.index_to_lps((int(np.argmin(np.abs(zs + 115.9))), 367, 316))
    in_prior = prior.lps_to_index(result.map_points(nodule_current))
    expected = prior.lps_to_index(apply(truth, nodule_current))
    assert np.abs(in_prior - expected).max() < 1.0  # within a voxel of the prior


@pytest.mark.shared
def test_registration_can_be_cancelled(shared_data: Path) -> None:
    current = read_lidc(shared_data)
    prior = moved_copy(current, rigid_matrix(AXIS, ANGLE_DEG, SHIFT_MM, current.center_lps()))
    cancel = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        seen.append(message)
        if "level" in message:  # the optimiser is iterating: stop it now
            cancel.cancel()

    start = time.perf_counter()
    with pytest.raises(CancelledError):
        register_rigid(current, prior, progress=progress, cancel=cancel)
    assert time.perf_counter() - start < 10.0
    assert sum("level" in m for m in seen) <= 3  # stopped at once, not after the run


@pytest.mark.shared
def test_resampled_prior_on_another_grid_registers_back(shared_data: Path) -> None:
    """A harder prior: resampled (linear) onto its own grid of 3 mm slices and 1.4 mm
    pixels, covering less of the chest, so no voxel is shared with the current series."""
    from core.resample import resample_array

    current = read_lidc(shared_data)
    truth = rigid_matrix((-0.4, 1.0, 0.8), -4.0, (-5.0, 7.0, -6.0), current.center_lps())
    grid = np.eye(4)
    grid[:3, :3] = np.column_stack([(0, 0, 3.0), (0, 1.4, 0), (1.4, 0, 0)])
    grid[:3, 3] = current.center_lps() - (45 * 3.0, 0, 0)[::-1] - (170.0, 170.0, 0.0)
    shape = (90, 243, 243)
    array = resample_array(current.array, current.affine, np.linalg.inv(truth) @ grid, shape,
                           fill_value=-1024.0)
    prior = Volume(np.rint(array).astype(np.int16), grid, modality="CT")
    result = register_rigid(current, prior)
    distance, angle = transform_difference(result.matrix, truth, grid_points(current))
    assert distance < 1.0 and angle < 1.0, (distance, angle)
