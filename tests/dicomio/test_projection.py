"""2-D images (radiographs, ultrasound, captures) → ProjectionImage, and the 2-D/Volume choice.

pydicom's own test files are read and compared with pydicom's decoding; the spacing,
VOI, shutter and cine rules are checked on small files written here (asymmetric
pixel content, so that a flip or transpose fails).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.pixels.processing import apply_color_lut, apply_voi, convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.errors import DicomReadError
from core.projection import ProjectionImage, SpacingKind, VoiFunction
from dicomio.decode import plugin_order
from dicomio.projection import is_projection, read_projection

CR_SOP = "1.2.840.10008.5.1.4.1.1.1"
DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
SC_SOP = "1.2.840.10008.5.1.4.1.1.7"
XA_SOP = "1.2.840.10008.5.1.4.1.1.12.1"
US_SOP = "1.2.840.10008.5.1.4.1.1.6.1"


def _test_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(path)


def _read(name: str) -> ProjectionImage:
    return read_projection([_test_file(name)])


def _messages(image: ProjectionImage) -> str:
    return " | ".join(w.message for w in image.warnings)


# --------------------------------------------------------------------------- writing


def _pixels(rows: int = 6, cols: int = 8, frames: int = 1) -> np.ndarray:
    """Asymmetric values: every pixel of every frame differs."""
    return (np.arange(frames * rows * cols, dtype=np.uint16) * 7 + 100).reshape(
        frames, rows, cols)


def _write(path: Path, *, modality: str = "DX", sop: str = DX_SOP,
           pixels: np.ndarray | None = None, photometric: str = "MONOCHROME2",
           series_uid: str | None = None, **elements: Any) -> Path:
    arr = _pixels() if pixels is None else pixels
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = modality
    ds.PatientName = "Test^Projection"
    ds.PatientID = "P1"
    ds.StudyDate = "20240102"
    ds.SeriesDescription = "written"
    ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if arr.shape[0] > 1:
        ds.NumberOfFrames = arr.shape[0]
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = arr.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- radiographs


def test_rg1_chest_radiograph_keeps_its_own_facts() -> None:
    image = _read("RG1_J2KR.dcm")
    assert image.modality == "CR"
    assert image.patient_orientation == ("L", "F")
    assert image.voi_windows[0].center == 15000 and image.voi_windows[0].width == 30000
    assert image.voi_windows[0].function is VoiFunction.LINEAR
    # PixelSpacing 0\0 and no Imager Pixel Spacing: pixels, said so, never 1 mm.
    assert image.pixel_spacing_mm is None
    assert image.spacing_kind is SpacingKind.UNCALIBRATED
    assert "PixelSpacing 0\\0 is not positive" in _messages(image)
    assert image.invert is True  # MONOCHROME1
    assert image.photometric == "MONOCHROME1"
    assert image.value_range == (0.0, 32767.0)  # BitsStored 15, no rescale
    assert image.frames.shape == (1, 1955, 1841)
    assert image.is_colour is False
    assert set(image.identity) == {"patient_name", "patient_id", "patient_birth_date"}
    assert image.frame_instance_uids == [pydicom.dcmread(
        _test_file("RG1_J2KR.dcm"), stop_before_pixels=True).SOPInstanceUID]


def test_rg1_pixels_equal_pydicom_and_the_uncompressed_copy() -> None:
    """Values not inverted (invert says so), in the file's row/column order."""
    image = _read("RG1_J2KR.dcm")
    reference = pydicom.dcmread(_test_file("RG1_UNCR.dcm")).pixel_array
    np.testing.assert_array_equal(image.frames[0], reference)
    np.testing.assert_array_equal(_read("RG1_UNCR.dcm").frames[0], reference)


def test_rg3_facts() -> None:
    rg3 = _read("RG3_J2KR.dcm")
    assert rg3.patient_orientation == ("R", "F")
    assert (rg3.voi_windows[0].center, rg3.voi_windows[0].width) == (550, 1024)
    assert rg3.value_range == (0.0, 1023.0)
    assert rg3.invert is True
    assert rg3.spacing_kind is SpacingKind.UNCALIBRATED and rg3.pixel_spacing_mm is None
    np.testing.assert_array_equal(rg3.frames[0],
                                  pydicom.dcmread(_test_file("RG3_UNCR.dcm")).pixel_array)
    # RG2 is not among pydicom-data 1.0.0's files; RG1/RG3's lossy J2KI copies read alike.
    lossy = _read("RG3_J2KI.dcm")
    assert lossy.patient_orientation == ("R", "F") and lossy.invert is True


def test_radiographs_and_captures_are_projections() -> None:
    for name in ("RG1_J2KR.dcm", "RG3_UNCR.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm",
                 "SC_rgb.dcm", "color3d_jpeg_baseline.dcm"):
        assert is_projection([_test_file(name)]), name
    # An MR slice with patient geometry stays a Volume.
    assert not is_projection([_test_file("MR_small.dcm")])
    assert not is_projection([_test_file("CT_small.dcm")])


# --------------------------------------------------------------------------- colour


def test_us_rgb_and_ybr_rct_equal_pydicom_rgb() -> None:
    reference = pydicom.dcmread(_test_file("US1_UNCR.dcm")).pixel_array
    for name in ("US1_UNCR.dcm", "US1_J2KR.dcm"):
        image = _read(name)
        assert image.is_colour and image.frames.dtype == np.uint8
        assert image.frames.shape == (1, 480, 640, 3)
        np.testing.assert_array_equal(image.frames[0], reference)
        assert image.voi_windows == [] and image.invert is False
    # A known landmark: a coloured (not grey) pixel stays coloured.
    r, g, b = (int(v) for v in reference[240, 320])
    image = _read("US1_J2KR.dcm")
    assert tuple(int(v) for v in image.frames[0, 240, 320]) == (r, g, b)
    assert _read("US1_J2KR.dcm").photometric == "YBR_RCT"
    coloured = np.ptp(reference.astype(int), axis=-1) > 20
    assert coloured.sum() > 100  # the file has real colour, so the test can fail


def test_ybr_full_equals_pydicom_convert_color_space() -> None:
    path = _test_file("SC_ybr_full_uncompressed.dcm")
    ds = pydicom.dcmread(path)
    raw = pixel_array(ds, raw=True)
    expected = convert_color_space(raw, "YBR_FULL", "RGB")
    image = read_projection([path])
    assert image.photometric == "YBR_FULL"
    np.testing.assert_array_equal(image.frames[0], expected)
    assert not np.array_equal(raw, expected)  # the conversion is not a no-op here


def test_palette_colour_equals_pydicom_apply_color_lut() -> None:
    path = _test_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    lut = apply_color_lut(ds.pixel_array, ds)
    assert lut.dtype == np.uint16  # 16-bit palette entries: the top 8 bits are shown
    image = read_projection([path])
    np.testing.assert_array_equal(image.frames[0], (lut >> 8).astype(np.uint8))
    assert image.photometric == "PALETTE COLOR"
    # The ultrasound region's Physical Delta (cm) is the calibrated spacing.
    delta_mm = float(ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX) * 10
    assert image.spacing_kind is SpacingKind.CALIBRATED
    assert image.pixel_spacing_mm == pytest.approx((delta_mm, delta_mm), rel=1e-5)


def test_multiframe_ybr_ultrasound_cine() -> None:
    path = _test_file("color3d_jpeg_baseline.dcm")
    image = read_projection([path])
    assert image.frame_count == 120 and image.is_colour
    assert image.frame_time_ms == pytest.approx(33.333)
    # pydicom converts YBR_FULL_422 to RGB; lossy JPEG decoders differ by a few levels,
    # so the reference uses the plugin Lucida tries first, and any plugin is close.
    plugin = plugin_order(pydicom.dcmread(path, stop_before_pixels=True)
                          .file_meta.TransferSyntaxUID)[0]
    for k in (0, 61, 119):
        np.testing.assert_array_equal(
            image.frames[k], pixel_array(path, index=k, decoding_plugin=plugin))
    other = pixel_array(path, index=61)
    assert np.abs(image.frames[61].astype(int) - other).max() <= 8
    assert not np.array_equal(image.frames[0], image.frames[61])


def test_multiframe_greyscale_keeps_frame_order() -> None:
    path = _test_file("emri_small.dcm")
    image = read_projection([path])
    expected = pydicom.dcmread(path).pixel_array
    assert image.frame_count == 10
    np.testing.assert_array_equal(image.frames, expected)


# --------------------------------------------------------------------------- VOI


def test_voi_lut_sequence_table_equals_pydicom() -> None:
    path = _test_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    image = read_projection([path])
    assert len(image.voi_luts) == len(ds.VOILUTSequence)
    lut = image.voi_luts[0]
    assert lut.bits == ds.VOILUTSequence[0].LUTDescriptor[2]
    frame = image.frames[0].astype(np.int64)
    index = np.clip(frame - lut.first_mapped, 0, len(lut.data) - 1)
    np.testing.assert_array_equal(lut.data[index], apply_voi(ds.pixel_array, ds))


def test_several_windows_with_explanations_and_function(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.dcm", WindowCenter=[40, 500], WindowWidth=[400, 2000],
                  WindowCenterWidthExplanation=["SOFT", "BONE"], VOILUTFunction="SIGMOID")
    image = read_projection([path])
    assert [(w.center, w.width, w.explanation) for w in image.voi_windows] == [
        (40, 400, "SOFT"), (500, 2000, "BONE")]
    assert all(w.function is VoiFunction.SIGMOID for w in image.voi_windows)
    bad = _write(tmp_path / "bad.dcm", WindowCenter=[40, 50], WindowWidth=[0.5, 100])
    image = read_projection([bad])
    assert [(w.center, w.width) for w in image.voi_windows] == [(50, 100)]
    assert "Window Width 0.5" in _messages(image)


def test_rescale_gives_modality_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.dcm", RescaleSlope="0.5", RescaleIntercept="-10")
    image = read_projection([path])
    assert image.frames.dtype == np.float32
    np.testing.assert_allclose(image.frames[0], _pixels()[0] * 0.5 - 10)
    assert image.value_range == (-10.0, 4095 * 0.5 - 10)
    assert image.metadata["pixel_padding"] is None
    padded = read_projection([_write(tmp_path / "p.dcm", RescaleSlope="2", RescaleIntercept="1",
                                     PixelPaddingValue=0, PixelPaddingRangeLimit=3)])
    assert padded.metadata["pixel_padding"] == (1.0, 7.0)


# --------------------------------------------------------------------------- inversion


@pytest.mark.parametrize(("photometric", "shape", "invert", "warned"), [
    ("MONOCHROME1", None, True, False),
    ("MONOCHROME1", "INVERSE", True, False),  # one inversion, not two (PS3.3 C.11.6)
    ("MONOCHROME1", "IDENTITY", True, True),  # contradiction: the photometric wins
    ("MONOCHROME2", "INVERSE", True, False),
    ("MONOCHROME2", "IDENTITY", False, False),
    ("MONOCHROME2", None, False, False),
])
def test_monochrome1_and_presentation_lut_shape(tmp_path: Path, photometric: str,
                                                shape: str | None, invert: bool,
                                                warned: bool) -> None:
    extra = {} if shape is None else {"PresentationLUTShape": shape}
    image = read_projection([_write(tmp_path / "m.dcm", photometric=photometric, **extra)])
    assert image.invert is invert
    assert ("contradicts" in _messages(image)) is warned
    np.testing.assert_array_equal(image.frames[0], _pixels()[0])  # values never flipped


# --------------------------------------------------------------------------- spacing


@pytest.mark.parametrize(("modality", "elements", "spacing", "kind", "warning"), [
    ("DX", {"PixelSpacing": [0.2, 0.3], "PixelSpacingCalibrationType": "GEOMETRY"},
     (0.2, 0.3), SpacingKind.CALIBRATED, None),
    ("CR", {"PixelSpacing": [0.2, 0.3], "ImagerPixelSpacing": [0.15, 0.15],
            "PixelSpacingCalibrationType": "FIDUCIAL"}, (0.2, 0.3), SpacingKind.CALIBRATED, None),
    ("DX", {"ImagerPixelSpacing": [0.15, 0.16]}, (0.15, 0.16), SpacingKind.AT_DETECTOR, None),
    ("DX", {"ImagerPixelSpacing": [0.15, 0.15], "PixelSpacing": [0.15, 0.15]},
     (0.15, 0.15), SpacingKind.AT_DETECTOR, None),
    ("MG", {"ImagerPixelSpacing": [0.1, 0.1],
            "EstimatedRadiographicMagnificationFactor": "1.25"},
     (0.08, 0.08), SpacingKind.MAGNIFICATION_CORRECTED, None),
    ("DX", {"ImagerPixelSpacing": [0.15, 0.15], "PixelSpacing": [0.12, 0.12]},
     (0.12, 0.12), SpacingKind.CALIBRATED, None),
    ("CR", {"PixelSpacing": [0.17, 0.17]}, (0.17, 0.17), SpacingKind.AT_DETECTOR,
     "taken as the spacing at the detector"),
    ("DX", {"PixelSpacing": [0, 0], "ImagerPixelSpacing": [0.2, 0.2]},
     (0.2, 0.2), SpacingKind.AT_DETECTOR, "PixelSpacing 0\\0 is not positive"),
    ("DX", {"ImagerPixelSpacing": [-0.2, 0.2]}, None, SpacingKind.UNCALIBRATED,
     "ImagerPixelSpacing -0.2\\0.2 is not positive"),
    ("DX", {"ImagerPixelSpacing": ["NaN", "NaN"]}, None, SpacingKind.UNCALIBRATED,
     "ImagerPixelSpacing"),
    ("US", {"PixelSpacing": [0.3, 0.3]}, (0.3, 0.3), SpacingKind.CALIBRATED, None),
    ("OT", {"PixelSpacing": [0.5, 0.25]}, (0.5, 0.25), SpacingKind.CALIBRATED, None),
    ("XC", {}, None, SpacingKind.UNCALIBRATED, None),
])
@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_pixel_spacing_rules(tmp_path: Path, modality: str, elements: dict[str, Any],
                             spacing: tuple[float, float] | None, kind: SpacingKind,
                             warning: str | None) -> None:
    image = read_projection([_write(tmp_path / "s.dcm", modality=modality, **elements)])
    assert image.spacing_kind is kind
    if spacing is None:
        assert image.pixel_spacing_mm is None
    else:
        assert image.pixel_spacing_mm == pytest.approx(spacing)
    if warning is not None:
        assert warning in _messages(image)


# --------------------------------------------------------------------------- shutters, cine


def test_display_shutters(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "sh.dcm", ShutterShape=["RECTANGULAR", "CIRCULAR", "POLYGONAL"],
        ShutterLeftVerticalEdge=2, ShutterRightVerticalEdge=7, ShutterUpperHorizontalEdge=1,
        ShutterLowerHorizontalEdge=5, CenterOfCircularShutter=[3, 4],
        RadiusOfCircularShutter=3, VerticesOfThePolygonalShutter=[1, 1, 1, 8, 6, 4],
        ShutterPresentationValue=1000)
    image = read_projection([path])
    assert [(s.kind, s.params) for s in image.shutters] == [
        ("rectangular", (2, 7, 1, 5)), ("circular", (3, 4, 3)),
        ("polygonal", (1, 1, 1, 8, 6, 4))]
    assert all(s.presentation_value == 1000 and s.rgb is None for s in image.shutters)


def test_shutter_colour_and_broken_shutter(tmp_path: Path) -> None:
    # CIELab of sRGB red (L* 53.2, a* 80.1, b* 67.2) in DICOM's 0..65535 scales.
    lab = [round(53.24 / 100 * 65535), round((80.09 + 128) / 255 * 65535),
           round((67.20 + 128) / 255 * 65535)]
    path = _write(tmp_path / "c.dcm", ShutterShape="RECTANGULAR\\CIRCULAR",
                  ShutterLeftVerticalEdge=1, ShutterRightVerticalEdge=8,
                  ShutterUpperHorizontalEdge=1, ShutterLowerHorizontalEdge=6,
                  ShutterPresentationColorCIELabValue=lab)
    image = read_projection([path])
    assert [s.kind for s in image.shutters] == ["rectangular"]  # circular has no elements
    assert "circular display shutter" in _messages(image)
    rgb = image.shutters[0].rgb
    assert rgb is not None
    assert rgb[0] > 240 and rgb[1] < 30 and rgb[2] < 30


@pytest.mark.parametrize(("elements", "expected"), [
    ({"FrameTime": "50", "RecommendedDisplayFrameRate": 10}, 50.0),
    ({"FrameTimeVector": ["0", "40", "40", "40"]}, 40.0),
    ({"RecommendedDisplayFrameRate": 25}, 40.0),
    ({"CineRate": 10}, 100.0),
    ({"FrameTime": "0", "CineRate": 20}, 50.0),
    ({}, None),
])
def test_frame_time(tmp_path: Path, elements: dict[str, Any], expected: float | None) -> None:
    path = _write(tmp_path / "xa.dcm", modality="XA", sop=XA_SOP,
                  pixels=_pixels(frames=4), **elements)
    image = read_projection([path])
    assert image.frame_count == 4
    np.testing.assert_array_equal(image.frames, _pixels(frames=4))
    assert image.frame_time_ms == (pytest.approx(expected) if expected else None)


# --------------------------------------------------------------------------- series


def test_instances_in_instance_number_order(tmp_path: Path) -> None:
    series = generate_uid()
    paths = []
    for n in (3, 1, 2):
        pixels = np.full((1, 6, 8), n * 100, dtype=np.uint16)
        pixels[0, 0, 7] = 1  # top right marker: a flip would move it
        paths.append(_write(tmp_path / f"i{n}.dcm", modality="SC", sop=SC_SOP, pixels=pixels,
                            series_uid=series, InstanceNumber=n))
    image = read_projection(paths)
    assert [int(image.frames[k, 3, 3]) for k in range(3)] == [100, 200, 300]
    assert all(image.frames[k, 0, 7] == 1 for k in range(3))
    uids = {p.name: pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert image.frame_instance_uids == [uids["i1.dcm"], uids["i2.dcm"], uids["i3.dcm"]]
    assert image.metadata["number_of_instances"] == 3
    assert image.metadata["series_description"] == "written"
    assert image.identity["patient_name"] == "Test^Projection"


def test_orientation_absent_or_malformed(tmp_path: Path) -> None:
    assert read_projection([_write(tmp_path / "a.dcm")]).patient_orientation is None
    good = read_projection([_write(tmp_path / "b.dcm", PatientOrientation=["A", "FR"])])
    assert good.patient_orientation == ("A", "FR")
    bad = read_projection([_write(tmp_path / "c.dcm", PatientOrientation=["X"])])
    assert bad.patient_orientation is None
    assert "Patient Orientation" in _messages(bad)


def test_metadata_and_laterality(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.dcm", modality="MG", ViewPosition="CC", ImageLaterality="L",
                  BodyPartExamined="BREAST")
    meta = read_projection([path]).metadata
    assert (meta["view_position"], meta["image_laterality"], meta["body_part"]) == (
        "CC", "L", "BREAST")
    assert meta["study_date"] == "20240102" and meta["modality"] == "MG"


# --------------------------------------------------------------------------- errors


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    source = _test_file("RG1_UNCR.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(source.read_bytes()[:source.stat().st_size // 2])
    with pytest.raises(DicomReadError, match="truncated"):
        read_projection([cut])
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file at all, just text" * 10)
    with pytest.raises(DicomReadError, match="not a DICOM"):
        read_projection([text])
    assert is_projection([text]) is False  # the Volume loader gives the reason
    with pytest.raises(DicomReadError):
        read_projection([])


def test_one_bad_file_in_a_series_is_left_out(tmp_path: Path) -> None:
    series = generate_uid()
    good = _write(tmp_path / "a.dcm", modality="SC", sop=SC_SOP, series_uid=series,
                  InstanceNumber=1)
    bad = tmp_path / "b.dcm"
    shutil.copy(good, bad)
    bad.write_bytes(bad.read_bytes()[:-40])
    image = read_projection([good, bad])
    assert image.frame_count == 1
    assert "1 of 2 files were left out" in _messages(image)


# --------------------------------------------------------------------------- 2-D or Volume


def _ct(path: Path, z: float | None, series: str) -> Path:
    geometry = {} if z is None else {"ImagePositionPatient": [0, 0, z],
                                     "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
                                     "PixelSpacing": [0.7, 0.7]}
    return _write(path, modality="CT", sop=CT_SOP, series_uid=series,
                  InstanceNumber=int(z or 0), **geometry)


def test_is_projection_on_written_series(tmp_path: Path) -> None:
    series = generate_uid()
    stack = [_ct(tmp_path / f"ct{n}.dcm", float(n), series) for n in range(1, 4)]
    assert is_projection(stack) is False
    assert is_projection([_ct(tmp_path / "flat.dcm", None, series)]) is True
    # A first file without position, the rest a stack: the Volume loader keeps the stack.
    assert is_projection([_ct(tmp_path / "first.dcm", None, series), *stack]) is False
    # A secondary capture with patient geometry (a derived stack) stays a Volume.
    sc = _write(tmp_path / "sc.dcm", modality="SC", sop=SC_SOP,
                ImagePositionPatient=[0, 0, 0], ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    assert is_projection([sc]) is False
    assert is_projection([_write(tmp_path / "sc2.dcm", modality="SC", sop=SC_SOP)]) is True
    assert is_projection([_write(tmp_path / "dx.dcm", modality="DX")]) is True
    assert is_projection([]) is False


def test_is_projection_false_for_every_ct_and_mr_series(shared_data: Path) -> None:
    from dicomio.group import group_series
    from dicomio.scan import scan_paths

    checked = 0
    for folder in sorted((shared_data / "ct").iterdir()) + sorted((shared_data / "mr").iterdir()):
        if not folder.is_dir():
            continue
        result = scan_paths([folder], workers=1)
        for group in group_series(result.instances):
            if not group.object_kind.is_image:
                continue
            sources = [inst.source for inst in group.instances]
            assert is_projection(sources) is False, (folder.name, group.series_uid)
            checked += 1
    assert checked >= 5


def test_enhanced_multiframe_with_plane_positions_stays_a_volume() -> None:
    assert is_projection([_test_file("eCT_Supplemental.dcm")]) is False


def test_enhanced_frame_voi_lut_functional_group(tmp_path: Path) -> None:
    """An enhanced object keeps its window in the Frame VOI LUT functional group."""
    voi = Dataset()
    voi.WindowCenter = 300
    voi.WindowWidth = 600
    voi.WindowCenterWidthExplanation = "FG"
    shared = Dataset()
    shared.FrameVOILUTSequence = [voi]
    path = _write(tmp_path / "e.dcm", modality="XA", sop=XA_SOP, pixels=_pixels(frames=2),
                  SharedFunctionalGroupsSequence=[shared])
    image = read_projection([path])
    assert [(w.center, w.width, w.explanation) for w in image.voi_windows] == [
        (300, 600, "FG")]


@pytest.mark.filterwarnings("ignore")
def test_every_zoo_file_is_decided_and_read_or_refused(zoo_files: list[Path]) -> None:
    """No file of the zoo crashes either function; CT/MR/PT/NM with geometry stay Volumes."""
    seen: set[str] = set()
    read = refused = volumes = 0
    for path in zoo_files:
        if path.name in seen or path.name.startswith("color3d"):  # that one is read above
            continue
        seen.add(path.name)
        decided = is_projection([path])
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            placed = "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds
            modality = str(ds.get("Modality", ""))
        except Exception:
            placed, modality = False, ""
        if placed and modality in ("CT", "MR", "PT", "NM"):
            assert decided is False, path.name
            volumes += 1
        if not decided:
            continue
        try:
            image = read_projection([path])
        except DicomReadError:
            refused += 1
        else:
            assert image.frame_count >= 1
            read += 1
    assert read > 40 and volumes > 10


def test_modality_lut_sequence_equals_pydicom() -> None:
    from pydicom.pixels.processing import apply_modality_lut

    path = _test_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    image = read_projection([path])
    expected = apply_modality_lut(ds.pixel_array, ds)
    assert not np.array_equal(expected, ds.pixel_array)  # the table does something
    np.testing.assert_array_equal(image.frames[0], expected)
    assert image.value_range == (0.0, 65535.0)  # 16-bit table output


@pytest.mark.filterwarnings("ignore")
def test_damaged_display_elements_cost_only_themselves(tmp_path: Path) -> None:
    """Elements that only change how the image is shown are ignored, each warned."""
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 3]  # 3 bits per entry: no such table
    lut.add_new(0x00283006, "US", list(range(256)))  # LUT Data
    path = _write(
        tmp_path / "h.dcm", WindowCenter="12345", WindowWidth="400", VOILUTSequence=[lut],
        PatientOrientation=["Q", "Z"], ShutterShape="HEXAGONAL",
        ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor="0.5",
        PresentationLUTShape="SIDEWAYS")
    data = path.read_bytes()
    assert data.count(b"12345 ") == 1
    path.write_bytes(data.replace(b"12345 ", b"abc   "))  # not a number: pydicom fails on it
    image = read_projection([path])
    np.testing.assert_array_equal(image.frames[0], _pixels()[0])
    text = _messages(image)
    assert image.voi_windows == [] and "window is ignored" in text
    assert image.voi_luts == [] and "VOI LUT 1 cannot be read" in text
    assert image.patient_orientation is None and "Patient Orientation" in text
    assert image.shutters == [] and "hexagonal display shutter" in text
    assert image.spacing_kind is SpacingKind.AT_DETECTOR
    assert image.pixel_spacing_mm == pytest.approx((0.2, 0.2))
    assert "EstimatedRadiographicMagnificationFactor 0.5" in text
    assert image.invert is False and "SIDEWAYS" in text


def test_progress_and_cancel(tmp_path: Path) -> None:
    from core.errors import CancelledError
    from core.progress import CancelToken

    series = generate_uid()
    paths = [_write(tmp_path / f"p{n}.dcm", modality="SC", sop=SC_SOP, series_uid=series,
                    InstanceNumber=n) for n in range(3)]
    seen: list[float] = []
    read_projection(paths, progress=lambda f, text="": seen.append(f))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        read_projection(paths, cancel=token)
