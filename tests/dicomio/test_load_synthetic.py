"""Series → Volume on synthetic series written as real DICOM files (dicomio.write_image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from core.errors import CancelledError, DicomReadError
from core.progress import CancelToken
from core.volume import Volume, WarningCode
from dicomio.load import plan_volume, read_volume
from dicomio.write_image import SeriesInfo, write_series

SHAPE = (12, 20, 24)
SPACING = (2.5, 0.8, 0.7)  # k, j, i
MARKERS = {"left": 1001, "anterior": 1002, "superior": 1003}

_ORIENTATIONS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    # name: (row cosines -> i axis, column cosines -> j axis)
    "axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    "coronal": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
    "sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, -1.0])),
}


def _oblique() -> tuple[np.ndarray, np.ndarray]:
    rot = Rotation.from_euler("xyz", [17.3, -28.9, 41.7], degrees=True).as_matrix()
    return rot[:, 0], rot[:, 1]


def _affine(row: np.ndarray, col: np.ndarray, reverse: bool,
            origin: tuple[float, float, float] = (-12.5, 30.25, 101.0)) -> np.ndarray:
    normal = np.cross(row, col)
    affine = np.eye(4)
    affine[:3, 0] = (-normal if reverse else normal) * SPACING[0]
    affine[:3, 1] = col * SPACING[1]
    affine[:3, 2] = row * SPACING[2]
    affine[:3, 3] = origin
    return affine


def _phantom(affine: np.ndarray, shape: tuple[int, int, int] = SHAPE) -> Volume:
    """Asymmetric values, unique-ish per voxel, plus markers at the most left,
    most anterior and most superior voxel (in LPS)."""
    k, j, i = np.indices(shape)
    array = ((k * 37 + j * 11 + i * 3) % 700 - 350).astype(np.int16)
    vol = Volume(array=array, affine=affine, modality="CT")
    idx = np.stack([k, j, i], axis=-1).reshape(-1, 3)
    lps = vol.index_to_lps(idx)
    centre = (np.array(shape) - 1) / 2
    used: set[tuple[int, ...]] = set()
    for name, axis, sign in (("left", 0, 1), ("anterior", 1, -1), ("superior", 2, 1)):
        # Most extreme voxel; among ties the one nearest the centre of that face.
        score = np.round(sign * lps[:, axis], 4) - 1e-6 * np.linalg.norm(idx - centre, axis=1)
        for flat in np.argsort(-score):
            target = tuple(int(x) for x in idx[flat])
            if target not in used:
                break
        used.add(target)
        array[target] = MARKERS[name]
    return vol


def _check_same_anatomy(read: Volume, original: Volume) -> None:
    """``read`` holds exactly the voxels of ``original``: each of its voxels sits on a
    voxel of ``original`` with the same value, and every voxel of ``original`` is hit
    once (a dropped, repeated or extra slice fails)."""
    # Both grids are slices × rows × columns of the same files, whatever the slice order.
    assert read.shape == original.shape
    idx = np.stack(np.indices(read.shape), axis=-1).reshape(-1, 3)
    lps = read.index_to_lps(idx)
    src = original.lps_to_index(lps)
    assert np.allclose(src, np.rint(src), atol=1e-3), "voxel centres do not coincide"
    src_i = np.rint(src).astype(int)
    assert np.all(src_i >= 0) and np.all(src_i < np.array(original.shape))
    hit = np.ravel_multi_index(tuple(src_i.T), original.shape)
    assert np.unique(hit).size == original.array.size, "some source voxels are read twice"
    expected = original.array[src_i[:, 0], src_i[:, 1], src_i[:, 2]]
    np.testing.assert_array_equal(read.array.reshape(-1), expected)


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
@pytest.mark.parametrize("reverse", [False, True], ids=["head_first", "feet_first"])
def test_orientations_round_trip(tmp_path: Path, orientation: str, reverse: bool) -> None:
    row, col = _oblique() if orientation == "oblique" else _ORIENTATIONS[orientation]
    original = _phantom(_affine(row, col, reverse))
    info = SeriesInfo(patient_position="FFS" if reverse else "HFS",
                      series_description=f"phantom {orientation}")
    paths = write_series(original, tmp_path / "s", info, file_order_seed=7)
    # Shuffled names: file name order must not match slice order.
    assert [p.name for p in paths] != sorted(p.name for p in paths)

    vol = read_volume(sorted(paths))
    assert vol.warnings == []
    # +k runs along the DICOM slice normal row × col (ITK convention).
    expected = original.affine.copy()
    if reverse:
        expected[:3, 0] = -expected[:3, 0]
        expected[:3, 3] = original.index_to_lps((SHAPE[0] - 1, 0, 0))
    np.testing.assert_allclose(vol.affine, expected, atol=1e-4)
    assert vol.array.dtype == np.int16
    _check_same_anatomy(vol, original)
    expected_array = original.array[::-1] if reverse else original.array
    np.testing.assert_array_equal(vol.array, expected_array)
    for name, value in MARKERS.items():
        where = np.argwhere(original.array == value)[0]
        assert vol.value_at_lps(original.index_to_lps(where)) == value, name
    # The marker really is at the patient's left / anterior / superior extreme.
    lps = vol.index_to_lps(np.argwhere(vol.array == MARKERS["left"])[0])
    corners = vol.index_to_lps(np.array([[a, b, c] for a in (0, SHAPE[0] - 1)
                                         for b in (0, SHAPE[1] - 1) for c in (0, SHAPE[2] - 1)]))
    assert lps[0] == pytest.approx(corners[:, 0].max(), abs=1e-3)
    assert vol.metadata["series_description"] == f"phantom {orientation}"
    assert vol.metadata["units"] == "HU"
    assert vol.metadata["number_of_instances"] == SHAPE[0]
    assert vol.identity["patient_name"] == "SYNTHETIC^PHANTOM"

    plan = plan_volume(paths)
    assert plan.shape == vol.shape
    np.testing.assert_allclose(plan.affine, vol.affine)


def test_metadata_and_streaming(tmp_path: Path) -> None:
    original = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    info = SeriesInfo(window_center=40, window_width=400, patient_id="PID-1",
                      patient_birth_date="19700101")
    paths = write_series(original, tmp_path / "s", info, file_order_seed=3)
    seen: list[int] = []
    arrays_at_first: list[np.ndarray] = []
    fractions: list[float] = []

    def on_slice(k: int, partial: Volume) -> None:
        if not seen:
            arrays_at_first.append(partial.array.copy())
            np.testing.assert_allclose(partial.affine, original.affine, atol=1e-4)
        seen.append(k)

    vol = read_volume(paths, on_slice=on_slice,
                      progress=lambda f, m="": fractions.append(f))
    assert sorted(seen) == list(range(SHAPE[0]))
    first = arrays_at_first[0]
    assert first.shape == SHAPE
    # Only one slice was filled at the first callback; the rest is background (−1024 HU).
    filled = [k for k in range(SHAPE[0]) if not np.all(first[k] == -1024)]
    assert filled == [seen[0]]
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert vol.metadata["window_center"] == 40
    assert vol.metadata["window_width"] == 400
    assert vol.metadata["photometric"] == "MONOCHROME2"
    assert vol.metadata["transfer_syntaxes"] == {"1.2.840.10008.1.2.1"}
    assert vol.identity == {"patient_name": "SYNTHETIC^PHANTOM", "patient_id": "PID-1",
                            "patient_birth_date": "19700101"}
    assert vol.modality == "CT"
    assert vol.series_uid == info.series_uid


def test_cancel(tmp_path: Path) -> None:
    original = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    paths = write_series(original, tmp_path / "s")
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        read_volume(paths, cancel=token)


def test_rescale_slope_intercept_gives_float(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    base = _phantom(affine)
    values = base.array.astype(np.float64) * 0.5 - 100.0  # multiples of 0.5
    original = Volume(values, affine)
    paths = write_series(original, tmp_path / "s", rescale_slope=0.5, rescale_intercept=-100.0)
    vol = read_volume(paths)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, values.astype(np.float32))


def test_integer_rescale_keeps_int16(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["coronal"], reverse=False)
    original = _phantom(affine)
    paths = write_series(original, tmp_path / "s", rescale_intercept=-1024, signed=False,
                         rescale_slope=1.0)
    vol = read_volume(paths)
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, original.array)


def test_unsigned_values(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    base = _phantom(affine)
    values = base.array.astype(np.int32) + 40000  # beyond int16: needs float32 or uint range
    paths = write_series(Volume(values, affine), tmp_path / "s", signed=False, modality="MR")
    assert pydicom.dcmread(paths[0]).PixelRepresentation == 0
    vol = read_volume(paths)
    assert vol.array.dtype == np.float32  # widened: 40000+ does not fit int16
    np.testing.assert_array_equal(vol.array, values.astype(np.float32))
    assert vol.modality == "MR"
    assert vol.metadata["units"] == ""


def _edit(paths: list[Path], edit: object) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        edit(ds)  # type: ignore[operator]
        ds.save_as(p, enforce_file_format=True)


def test_pixel_padding_maps_to_air(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    original = _phantom(affine)
    array = original.array.copy()
    array[:, :3, :] = -2000  # padded border
    paths = write_series(Volume(array, affine), tmp_path / "s", rescale_intercept=-1024)

    def add_padding(ds: pydicom.Dataset) -> None:
        # Stored -2000 - (-1024) = -976, written as US like many scanners (63536 style).
        ds.add_new(0x00280120, "US", (-976) & 0xFFFF)

    _edit(paths, add_padding)
    vol = read_volume(paths)
    assert vol.metadata["pixel_padding_value"] == -976
    assert np.all(vol.array[:, :3, :] == -1024)  # CT: padding → air (−1024 HU)
    np.testing.assert_array_equal(vol.array[:, 3:, :], original.array[:, 3:, :])


def test_pixel_padding_mr_maps_to_zero(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    array = _phantom(affine).array.astype(np.int32) + 500
    array[:, :, :2] = 4095
    paths = write_series(Volume(array, affine), tmp_path / "s", modality="MR", signed=False)
    _edit(paths, lambda ds: ds.add_new(0x00280120, "US", 4095))
    vol = read_volume(paths)
    assert np.all(vol.array[:, :, :2] == 0)
    np.testing.assert_array_equal(vol.array[:, :, 2:], array[:, :, 2:])


def test_monochrome1_inverted(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    array = _phantom(affine).array.astype(np.int32) + 1000  # 0..4095
    paths = write_series(Volume(array, affine), tmp_path / "s", modality="MR", signed=False)

    def mono1(ds: pydicom.Dataset) -> None:
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.WindowCenter = 1000
        ds.WindowWidth = 500

    _edit(paths, mono1)
    vol = read_volume(paths)
    assert vol.metadata["inverted_monochrome1"] is True
    assert vol.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_array_equal(vol.array, 4095 - array)  # higher = brighter
    assert vol.metadata["window_center"] == 4095 - 1000
    assert vol.metadata["window_width"] == 500


def test_missing_slice_is_listed(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    original = _phantom(affine)
    paths = write_series(original, tmp_path / "s", file_order_seed=1)
    paths[5].unlink()  # the file of k=5
    vol = read_volume([p for p in paths if p.exists()])
    codes = [w.code for w in vol.warnings]
    assert codes == [WarningCode.MISSING_SLICES]
    message = vol.warnings[0].message
    z4 = original.index_to_lps((4, 0, 0))[2]
    z6 = original.index_to_lps((6, 0, 0))[2]
    assert f"{z4:.2f}" in message and f"{z6:.2f}" in message and "5.00 mm" in message
    assert "output slices 5–5" in message
    assert vol.shape == SHAPE
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)
    assert np.all(vol.array[5] == -1024)  # blank, not interpolated
    keep = [k for k in range(SHAPE[0]) if k != 5]
    np.testing.assert_array_equal(vol.array[keep], original.array[keep])


def test_duplicate_positions_warned(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    original = _phantom(affine)
    a = write_series(original, tmp_path / "a", file_order_seed=2)
    b = write_series(original, tmp_path / "b")
    vol = read_volume([*a, b[3]])
    assert [w.code for w in vol.warnings] == [WarningCode.DUPLICATE_POSITION]
    np.testing.assert_array_equal(vol.array, original.array)


def test_mixed_orientation_uses_majority(tmp_path: Path) -> None:
    main = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    loc = _phantom(_affine(*_ORIENTATIONS["sagittal"], reverse=False),
                   shape=(1, SHAPE[1], SHAPE[2]))
    a = write_series(main, tmp_path / "a")
    b = write_series(loc, tmp_path / "b")
    vol = read_volume([*a, *b])
    assert [w.code for w in vol.warnings] == [WarningCode.MIXED_ORIENTATION]
    np.testing.assert_array_equal(vol.array, main.array)


def test_uneven_spacing_resampled_linearly(tmp_path: Path) -> None:
    # A fine 0.5 mm stack whose values are linear along k; keep slices at
    # 0, 1, 2, 3, 4, 5.5, 7, 8.5 mm → gaps 1 and 1.5 mm (not whole multiples).
    row, col = _ORIENTATIONS["axial"]
    affine = np.eye(4)
    affine[:3, 0] = np.cross(row, col) * 0.5
    affine[:3, 1] = col * 0.8
    affine[:3, 2] = row * 0.7
    affine[:3, 3] = (3.0, -4.0, 20.0)
    k, j, i = np.indices((18, 10, 12))
    array = (100 + 20 * k + 3 * j + i).astype(np.int16)
    fine = Volume(array, affine)
    paths = write_series(fine, tmp_path / "s")
    keep_mm = [0, 1, 2, 3, 4, 5.5, 7, 8.5]
    kept = [paths[int(mm * 2)] for mm in keep_mm]
    vol = read_volume(kept)
    codes = [w.code for w in vol.warnings]
    assert WarningCode.UNEVEN_SPACING in codes and WarningCode.RESAMPLED in codes
    assert "median" in next(w.message for w in vol.warnings
                            if w.code == WarningCode.UNEVEN_SPACING)
    assert vol.shape == (9, 10, 12)  # 0..8 mm at the median gap of 1 mm
    assert vol.spacing_mm[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(vol.origin_lps, affine[:3, 3], atol=1e-4)
    # Linear data → linear interpolation is exact at every resampled position.
    for m in range(9):
        np.testing.assert_array_equal(vol.array[m], array[2 * m], err_msg=f"slice {m}")


def test_gantry_tilt_detilted(tmp_path: Path) -> None:
    tilt = np.radians(20.0)
    row = np.array([1.0, 0, 0])
    col = np.array([0, np.cos(tilt), -np.sin(tilt)])
    affine = np.eye(4)
    affine[:3, 0] = (0, 0, 3.0)  # table moves along z: slices sheared against the normal
    affine[:3, 1] = col * 1.0
    affine[:3, 2] = row * 0.9
    affine[:3, 3] = (-10.0, -20.0, 50.0)
    shape = (10, 30, 16)
    array = np.full(shape, -1000, dtype=np.int16)
    array[6, 14:17, 7:10] = 800  # 3×3 marker block
    tilted = Volume(array, affine)
    paths = write_series(tilted, tmp_path / "s", file_order_seed=5)
    ds = pydicom.dcmread(paths[0])
    assert ds.ImageOrientationPatient[4] == pytest.approx(np.cos(tilt))

    vol = read_volume(paths)
    codes = [w.code for w in vol.warnings]
    assert WarningCode.GANTRY_TILT in codes
    tilt_msg = next(w.message for w in vol.warnings if w.code == WarningCode.GANTRY_TILT)
    assert "20.0°" in tilt_msg
    # Orthogonal output grid along row, column and the slice normal.
    d = vol.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)
    normal = np.cross(row, col)
    np.testing.assert_allclose(d[:, 0], normal, atol=1e-6)
    assert vol.spacing_mm[0] == pytest.approx(3.0 * np.cos(tilt), abs=1e-4)
    # The marker centre keeps its exact LPS position.
    centre = tilted.index_to_lps((6, 15, 8))
    assert vol.value_at_lps(centre) == 800
    hot = np.argwhere(vol.array == vol.array.max())
    hot_lps = vol.index_to_lps(hot.mean(axis=0))
    assert np.linalg.norm(hot_lps - centre) < 0.5 * float(np.min(vol.spacing_mm))
    # Every source voxel centre lies inside the output grid.
    corner = tilted.index_to_lps((9, 29, 15))
    idx = vol.lps_to_index(corner)
    assert np.all(idx > -0.5) and np.all(idx < np.array(vol.shape) - 0.5)
    assert vol.array.min() == -1024 or vol.array.min() == -1000


def test_single_slice_and_no_geometry(tmp_path: Path) -> None:
    affine = _affine(*_ORIENTATIONS["axial"], reverse=False)
    one = _phantom(affine, shape=(1, SHAPE[1], SHAPE[2]))
    paths = write_series(one, tmp_path / "s")
    vol = read_volume(paths)
    assert vol.shape == (1, SHAPE[1], SHAPE[2])
    np.testing.assert_allclose(vol.affine[:3, 1:], affine[:3, 1:], atol=1e-4)
    assert vol.warnings == []

    def strip(ds: pydicom.Dataset) -> None:
        del ds.ImagePositionPatient
        del ds.ImageOrientationPatient
        ds.Modality = "DX"

    _edit(paths, strip)
    vol = read_volume(paths)
    assert vol.shape == (1, SHAPE[1], SHAPE[2])
    assert [w.code for w in vol.warnings] == [WarningCode.OTHER]
    assert "nominal geometry" in vol.warnings[0].message
    np.testing.assert_allclose(vol.spacing_mm[1:], (0.8, 0.7), atol=1e-6)
    np.testing.assert_array_equal(vol.array, one.array)


def test_unreadable_member_left_out_with_warning(tmp_path: Path) -> None:
    original = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    paths = write_series(original, tmp_path / "s")
    junk = tmp_path / "s" / "notes.txt"
    junk.write_text("not dicom")
    vol = read_volume([*paths, junk])
    assert [w.code for w in vol.warnings] == [WarningCode.OTHER]
    assert "1 of 13 files were left out" in vol.warnings[0].message
    with pytest.raises(DicomReadError, match="DICM"):
        read_volume([junk])


def test_undecodable_slice_left_blank_with_warning(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    original = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    paths = write_series(original, tmp_path / "s")
    ds = pydicom.dcmread(paths[4])
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 broken codestream" * 4])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(paths[4], enforce_file_format=True)
    vol = read_volume(paths, workers=2)
    assert [w.code for w in vol.warnings] == [WarningCode.OTHER]
    assert "could not be decoded" in vol.warnings[0].message
    assert "1.2.840.10008.1.2.4.90" in vol.warnings[0].message
    assert np.all(vol.array[4] == -1024)
    keep = [k for k in range(SHAPE[0]) if k != 4]
    np.testing.assert_array_equal(vol.array[keep], original.array[keep])


def test_streaming_while_detilting(tmp_path: Path) -> None:
    tilt = np.radians(15.0)
    affine = np.eye(4)
    affine[:3, 0] = (0, 0, 2.0)
    affine[:3, 1] = (0, np.cos(tilt), -np.sin(tilt))
    affine[:3, 2] = (0.8, 0, 0)
    k, j, i = np.indices((6, 12, 10))
    paths = write_series(Volume((k * 50 + j + i).astype(np.int16), affine), tmp_path / "s")
    seen: list[int] = []
    vol = read_volume(paths, on_slice=lambda m, v: seen.append(m))
    assert sorted(seen) == list(range(vol.shape[0]))
    assert any(w.code == WarningCode.GANTRY_TILT for w in vol.warnings)


def test_cancel_while_streaming(tmp_path: Path) -> None:
    original = _phantom(_affine(*_ORIENTATIONS["axial"], reverse=False))
    paths = write_series(original, tmp_path / "s")
    token = CancelToken()
    seen: list[int] = []

    def on_slice(k: int, partial: Volume) -> None:
        seen.append(k)
        token.cancel()

    with pytest.raises(CancelledError):
        read_volume(paths, cancel=token, on_slice=on_slice)
    assert len(seen) == 1


def test_plan_reports_geometry_without_pixels(tmp_path: Path) -> None:
    row, col = _ORIENTATIONS["sagittal"]
    original = _phantom(_affine(row, col, reverse=False))
    paths = write_series(original, tmp_path / "s", file_order_seed=11)
    plan = plan_volume(paths)
    assert plan.shape == SHAPE
    assert plan.orientation_code == original.orientation_code
    np.testing.assert_allclose(plan.spacing_mm, SPACING, atol=1e-5)
    assert not plan.resampled and plan.warnings == []
    assert [f.position for f in plan.frames] == sorted(
        (f.position for f in plan.frames), key=lambda p: -p[0] if p else 0.0)
