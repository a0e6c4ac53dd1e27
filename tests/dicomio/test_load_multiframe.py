"""Enhanced multi-frame objects, colour images and zip members → Volume."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid
from scipy.spatial.transform import Rotation

from core.errors import DicomReadError
from core.volume import Volume, WarningCode
from dicomio.load import read_volume
from dicomio.source import DicomSource

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _item(**attrs: object) -> Dataset:
    ds = Dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def _enhanced_ct(path: Path, volume: Volume, *, intercepts: list[float], seed: int,
                 compress: bool = False) -> list[int]:
    """Write ``volume`` (values in HU) as one Enhanced CT file, frames in shuffled order,
    each frame with its own intercept. Returns the frame order (k of each frame)."""
    spacing = volume.spacing_mm
    affine = volume.affine
    row = affine[:3, 2] / spacing[2]
    col = affine[:3, 1] / spacing[1]
    order = list(np.random.default_rng(seed).permutation(volume.shape[0]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_CT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientName = "SYNTHETIC^ENHANCED"
    ds.PatientID = "ENH-1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesDescription = "enhanced phantom"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.NumberOfFrames = volume.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = Sequence([_item(
        PixelMeasuresSequence=Sequence([_item(
            PixelSpacing=[float(spacing[1]), float(spacing[2])],
            SliceThickness=float(spacing[0]))]),
        PlaneOrientationSequence=Sequence([_item(
            ImageOrientationPatient=[round(float(x), 8) for x in (*row, *col)])]),
    )])
    per_frame = []
    frames = []
    for k in order:
        position = affine[:3, :3] @ np.array([k, 0.0, 0.0]) + affine[:3, 3]
        per_frame.append(_item(
            PlanePositionSequence=Sequence([_item(
                ImagePositionPatient=[round(float(x), 6) for x in position])]),
            PixelValueTransformationSequence=Sequence([_item(
                RescaleIntercept=intercepts[k], RescaleSlope=1, RescaleType="HU")]),
        ))
        frames.append(np.rint(volume.array[k] - intercepts[k]).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(frames).tobytes()
    if compress:
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return [int(k) for k in order]


def _oblique_affine(shape: tuple[int, int, int]) -> np.ndarray:
    rot = Rotation.from_euler("zyx", [23.1, 11.7, -7.9], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, 0] = rot[:, 2] * 1.5
    affine[:3, 1] = rot[:, 1] * 0.9
    affine[:3, 2] = rot[:, 0] * 0.8
    affine[:3, 3] = (10.0, -35.5, 62.25)
    assert np.allclose(np.cross(rot[:, 0], rot[:, 1]), rot[:, 2])  # +k along row × col
    return affine


@pytest.mark.parametrize("compress", [False, True], ids=["native", "rle"])
def test_enhanced_ct_per_frame_groups(tmp_path: Path, compress: bool) -> None:
    shape = (9, 14, 16)
    k, j, i = np.indices(shape)
    array = ((k * 53 + j * 7 + i * 2) % 900 - 450).astype(np.int16)
    original = Volume(array, _oblique_affine(shape))
    intercepts = [-1024.0 + 10 * n for n in range(shape[0])]  # per-frame rescale
    path = tmp_path / "enhanced.dcm"
    order = _enhanced_ct(path, original, intercepts=intercepts, seed=4, compress=compress)
    assert order != sorted(order)
    vol = read_volume([path])
    assert vol.warnings == []
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, original.array)
    assert vol.metadata["number_of_instances"] == 1
    assert vol.metadata["number_of_frames"] == shape[0]
    assert vol.metadata["units"] == "HU"
    expected_ts = RLELossless if compress else ExplicitVRLittleEndian
    assert vol.metadata["transfer_syntaxes"] == {str(expected_ts)}
    assert vol.identity["patient_id"] == "ENH-1"


def test_colour_becomes_luminance_with_warning() -> None:
    import pydicom.data

    path = pydicom.data.get_testdata_file("SC_rgb.dcm")
    assert path is not None
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    vol = read_volume([Path(path)])
    assert vol.shape == (1, rgb.shape[0], rgb.shape[1])
    assert vol.array.dtype == np.float32
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(vol.array[0], expected, atol=1e-3)
    messages = [w.message for w in vol.warnings if w.code == WarningCode.OTHER]
    assert any("luminance" in m for m in messages)
    assert vol.metadata["converted_from_colour"] is True


def test_zip_member_sources(tmp_path: Path) -> None:
    from dicomio.write_image import write_series

    k, j, i = np.indices((5, 8, 10))
    affine = np.array([[0, 0, 0.5, -3.0], [0, 0.5, 0, 4.0], [2.0, 0, 0, 7.5], [0, 0, 0, 1]])
    original = Volume((k * 100 + j * 10 + i).astype(np.int16), affine)
    paths = write_series(original, tmp_path / "s", file_order_seed=9)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in paths:
            zf.write(p, f"dicom/{p.name}")
    sources = [DicomSource(archive, f"dicom/{p.name}") for p in paths]
    vol = read_volume(sources[::-1])
    np.testing.assert_array_equal(vol.array, original.array)
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)
    assert pydicom.dcmread(paths[0]).Modality == "CT"


def _write_nm(tmp_path: Path, array: np.ndarray, spacing_between_slices: float) -> Path:
    """A legacy NM multi-frame file: one ImagePositionPatient, frames along the normal."""
    frames, rows, cols = array.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"  # NM Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "NM"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagePositionPatient = [-20.0, -30.0, 15.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [3.0, 3.0]
    ds.SpacingBetweenSlices = spacing_between_slices
    ds.PixelData = np.ascontiguousarray(array, dtype=np.uint16).tobytes()
    path = tmp_path / "nm.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_legacy_multiframe_with_one_position(tmp_path: Path) -> None:
    """NM-style multi-frame: one ImagePositionPatient, frames along the normal at
    SpacingBetweenSlices."""
    frames, rows, cols = 5, 6, 8
    k, j, i = np.indices((frames, rows, cols))
    array = (k * 40 + j * 5 + i).astype(np.uint16)
    path = _write_nm(tmp_path, array, spacing_between_slices=2.5)
    vol = read_volume([path])
    assert vol.warnings == []
    np.testing.assert_array_equal(vol.array, array)
    expected = np.array([[0, 0, 3.0, -20.0], [0, 3.0, 0, -30.0], [2.5, 0, 0, 15.0],
                         [0, 0, 0, 1.0]])
    np.testing.assert_allclose(vol.affine, expected, atol=1e-6)


# --------------------------------------------------------------- functional-group geometry checks


def _enhanced_file(tmp_path: Path) -> tuple[Path, Volume, list[int]]:
    shape = (9, 14, 16)
    k, j, i = np.indices(shape)
    original = Volume(((k * 53 + j * 7 + i * 2) % 900 - 450).astype(np.int16),
                      _oblique_affine(shape))
    path = tmp_path / "enhanced.dcm"
    order = _enhanced_ct(path, original, intercepts=[0.0] * shape[0], seed=4)
    return path, original, order


def _edit_groups(path: Path, edit: object) -> None:
    import warnings

    ds = pydicom.dcmread(path)
    edit(ds)  # type: ignore[operator]
    with warnings.catch_warnings():  # the invalid DS values are the point
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


def _raw(keyword: str, text: str) -> pydicom.DataElement:
    import warnings

    from pydicom.datadict import tag_for_keyword

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.DataElement(tag_for_keyword(keyword), "DS", text)


def test_enhanced_frame_with_nan_position_is_left_out_by_name(tmp_path: Path) -> None:
    path, original, order = _enhanced_file(tmp_path)
    bad = order.index(4)  # the frame holding slice k=4, inside the stack

    def edit(ds: Dataset) -> None:
        ds.PerFrameFunctionalGroupsSequence[bad].PlanePositionSequence[0].add(
            _raw("ImagePositionPatient", "10\\nan\\62.25"))

    _edit_groups(path, edit)
    vol = read_volume([path])
    assert [w.code for w in vol.warnings] == [WarningCode.IMPLAUSIBLE_GEOMETRY,
                                              WarningCode.MISSING_SLICES]
    assert vol.warnings[0].message == (
        f"1 of 9 frames were left out: ImagePositionPatient (frame {bad + 1}) 10\\nan\\62.25 is "
        "not finite")
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)
    keep = [k for k in range(9) if k != 4]
    np.testing.assert_array_equal(vol.array[keep], original.array[keep])


def test_enhanced_frame_with_five_cosines_is_left_out_by_name(tmp_path: Path) -> None:
    """A per-frame PlaneOrientationSequence with 5 values: named, not silently replaced
    by the shared orientation or treated as 'no geometry'."""
    path, original, order = _enhanced_file(tmp_path)
    bad = order.index(2)

    def edit(ds: Dataset) -> None:
        item = Dataset()
        item.add(_raw("ImageOrientationPatient", "1\\0\\0\\0\\1"))
        ds.PerFrameFunctionalGroupsSequence[bad].PlaneOrientationSequence = Sequence([item])

    _edit_groups(path, edit)
    vol = read_volume([path])
    assert vol.warnings[0].message == (
        f"1 of 9 frames were left out: ImageOrientationPatient (frame {bad + 1}) 1\\0\\0\\0\\1 "
        "has 5 value(s); it needs 6 (row then column direction cosines)")
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)


def test_enhanced_shared_zero_pixel_spacing_is_refused_by_name(tmp_path: Path) -> None:
    path, _, _ = _enhanced_file(tmp_path)

    def edit(ds: Dataset) -> None:
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].add(
            _raw("PixelSpacing", "0\\0.8"))

    _edit_groups(path, edit)
    with pytest.raises(DicomReadError) as info:
        read_volume([path])
    assert str(info.value) == f"{path}: PixelSpacing (frame 1) 0\\0.8 is not positive"


def test_enhanced_shared_orientation_not_unit_is_normalised_once(tmp_path: Path) -> None:
    path, original, _ = _enhanced_file(tmp_path)
    row = original.affine[:3, 2] / 0.8
    col = original.affine[:3, 1] / 0.9
    text = "\\".join(f"{v:.6f}" for v in (*(0.97 * row), *col))

    def edit(ds: Dataset) -> None:
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].add(
            _raw("ImageOrientationPatient", text))

    _edit_groups(path, edit)
    vol = read_volume([path])
    assert [w.code for w in vol.warnings] == [WarningCode.IMPLAUSIBLE_GEOMETRY]
    assert re.fullmatch(r"ImageOrientationPatient \(frame 1\) \S+: the row direction has length "
                        r"0\.97, not 1; it was normalised \(and in 8 more image\(s\)\)",
                        vol.warnings[0].message), vol.warnings[0].message
    np.testing.assert_allclose(vol.affine, original.affine, atol=1e-4)


def test_legacy_multiframe_zero_spacing_is_named(tmp_path: Path) -> None:
    """NM frames placed at SpacingBetweenSlices 0 would all sit on one plane (and be
    dropped as duplicates): the value is named and 1 mm used, loudly."""
    frames, rows, cols = 4, 6, 8
    array = np.indices((frames, rows, cols))[0].astype(np.uint16) * 40
    path = _write_nm(tmp_path, array, spacing_between_slices=0)
    vol = read_volume([path])
    assert [w.message for w in vol.warnings] == [
        "SpacingBetweenSlices 0 is zero: 1 mm slices are assumed"]
    assert vol.shape == (frames, rows, cols)
    np.testing.assert_array_equal(vol.array, array)
    np.testing.assert_allclose(vol.affine[:3, 0], (0, 0, 1.0))
