"""Every header value that feeds a Volume's affine is checked (dicomio.plausibility).

Each test writes a real series with dicomio.write_image, puts one bad value
into the files with pydicom, and asserts the exact refusal (naming the element
and the value) or the exact warning, and that the volume is not silently
sheared or scaled.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from core import geometry
from core.errors import DicomReadError, GeometryError
from core.volume import Volume, WarningCode
from dicomio.group import group_series
from dicomio.load import plan_volume, read_volume
from dicomio.scan import scan_paths
from dicomio.write_image import write_series

SHAPE = (6, 10, 12)
ORIGIN = (-12.5, 30.25, 101.0)
IMPLAUSIBLE = WarningCode.IMPLAUSIBLE_GEOMETRY


def _volume(shape: tuple[int, int, int] = SHAPE, step: Sequence[float] = (0, 0, 2.5)) -> Volume:
    """Axial phantom: i along L at 0.7 mm, j along P at 0.8 mm, k as ``step``;
    values differ along every axis so that a flip or a drop shows."""
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = (0, 0.8, 0)
    affine[:3, 2] = (0.7, 0, 0)
    affine[:3, 3] = ORIGIN
    k, j, i = np.indices(shape)
    return Volume(((k * 37 + j * 11 + i * 3) % 700 - 350).astype(np.int16), affine)


def _write(tmp_path: Path, volume: Volume | None = None, modality: str = "CT") -> list[Path]:
    return write_series(volume or _volume(), tmp_path / "s", modality=modality)


def _set(paths: Sequence[Path], keyword: str, text: str | None, vr: str = "DS") -> None:
    """Put ``text`` verbatim into ``keyword`` of each file (None deletes it)."""
    for p in paths:
        ds = pydicom.dcmread(p)
        _set_in(ds, keyword, text, vr)
        with warnings.catch_warnings():  # pydicom warns about the invalid DS we mean to write
            warnings.simplefilter("ignore")
            ds.save_as(p, enforce_file_format=True)


def _set_in(ds: Dataset, keyword: str, text: str | int | None, vr: str = "DS") -> None:
    if text is None:
        if keyword in ds:
            delattr(ds, keyword)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.add(DataElement(tag_for_keyword(keyword), vr, text))


def _refusal(paths: Sequence[Path]) -> str:
    with pytest.raises(DicomReadError) as info:
        read_volume(list(paths))
    return str(info.value)


def _implausible(vol: Volume) -> list[str]:
    return [w.message for w in vol.warnings if w.code == IMPLAUSIBLE]


# --------------------------------------------------------------- ImageOrientationPatient


@pytest.mark.parametrize(("text", "reason"), [
    ("1\\0\\0\\0\\1", "ImageOrientationPatient 1\\0\\0\\0\\1 has 5 value(s); it needs 6 "
                      "(row then column direction cosines)"),
    ("1\\0\\nan\\0\\1\\0", "ImageOrientationPatient 1\\0\\nan\\0\\1\\0 is not finite"),
    ("1\\0\\0\\0\\inf\\0", "ImageOrientationPatient 1\\0\\0\\0\\inf\\0 is not finite"),
    ("1\\0\\0\\0\\0\\0", "ImageOrientationPatient 1\\0\\0\\0\\0\\0: the column direction is a "
                         "zero vector"),
    ("0.5\\0\\0\\0\\1\\0", "ImageOrientationPatient 0.5\\0\\0\\0\\1\\0: the row direction has "
                           "length 0.5, not 1 (direction cosines are unit vectors)"),
    ("1\\0\\0\\0.0871557\\0.9961947\\0",
     "ImageOrientationPatient 1\\0\\0\\0.0871557\\0.996195\\0: row and column are 85.00° "
     "apart, not 90° (more than 1° off); the pixel grid would be sheared"),
], ids=["count", "nan", "inf", "zero", "far_from_unit", "not_perpendicular"])
def test_orientation_refused(tmp_path: Path, text: str, reason: str) -> None:
    paths = _write(tmp_path)
    _set(paths, "ImageOrientationPatient", text)
    assert _refusal(paths[:1]) == f"{paths[0]}: {reason}"
    # The whole series: every file is refused for the same named reason.
    assert _refusal(paths) == f"none of the {SHAPE[0]} files could be loaded: {SHAPE[0]}× {reason}"


def test_non_numeric_orientation_named_by_both_header_readers(tmp_path: Path) -> None:
    """The first file of a series is read by pydicom, the others by the lean reader,
    which drops text it cannot parse; such files are read again, so that every file
    names the value instead of passing as 'no orientation'."""
    paths = _write(tmp_path)
    bad = paths[1:]
    # pydicom will not write text that is no number as DS: write it as LO, then make
    # the VR on disk DS again, as a broken writer would have produced it.
    _set(bad, "ImageOrientationPatient", "1\\0\\abc\\0\\1\\0", vr="LO")
    for p in bad:
        data = p.read_bytes()
        assert data.count(b"\x20\x00\x37\x00LO") == 1
        p.write_bytes(data.replace(b"\x20\x00\x37\x00LO", b"\x20\x00\x37\x00DS"))
    vol = read_volume(paths)
    assert vol.warnings[0].message == (
        f"{len(bad)} of {SHAPE[0]} files were left out: {len(bad)}× ImageOrientationPatient "
        "'1\\0\\abc\\0\\1\\0' is not a number")
    assert vol.shape == (1, *SHAPE[1:])


def test_orientation_nearly_unit_is_normalised_with_warning(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    _set(paths, "ImageOrientationPatient", "0.98\\0\\0\\0\\1\\0")
    vol = read_volume(paths)
    assert _implausible(vol) == [
        "ImageOrientationPatient 0.98\\0\\0\\0\\1\\0: the row direction has length 0.98, not 1; "
        f"it was normalised (and in {SHAPE[0] - 1} more image(s))"]
    # Spacing is PixelSpacing, not scaled by the wrong length.
    np.testing.assert_allclose(vol.affine, _volume().affine, atol=1e-9)


def test_orientation_slightly_oblique_pair_is_made_perpendicular(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    half = np.radians(0.25)
    # Column turned 0.5° towards the row: 89.5° between them.
    col = (np.sin(2 * half), np.cos(2 * half), 0.0)
    _set(paths, "ImageOrientationPatient", "1\\0\\0\\" + "\\".join(f"{c:.9f}" for c in col))
    vol = read_volume(paths)
    [message] = _implausible(vol)
    assert message.startswith("ImageOrientationPatient 1\\0\\0\\0.00872654\\0.999962\\0: row "
                              "and column are 0.50° off perpendicular; each was turned by 0.25°")
    assert geometry.is_orthogonal(vol.affine, tol=1e-9)  # never a sheared grid
    d = vol.direction
    # The correction is split evenly: row and column each turned by 0.25°.
    np.testing.assert_allclose(d[:, 2], (np.cos(half), -np.sin(half), 0), atol=1e-9)
    np.testing.assert_allclose(d[:, 1], (np.sin(half), np.cos(half), 0), atol=1e-9)
    np.testing.assert_allclose(vol.spacing_mm, (2.5, 0.8, 0.7), atol=1e-9)


def test_nan_orientation_series_is_one_stack_refused_once(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    _set(paths, "ImageOrientationPatient", "1\\0\\nan\\0\\1\\0")
    groups = group_series(scan_paths([tmp_path / "s"]).instances)
    assert [len(g.instances) for g in groups] == [SHAPE[0]]
    assert "6× ImageOrientationPatient 1\\0\\nan\\0\\1\\0 is not finite" in _refusal(
        [i.source.path for i in groups[0].instances])


# --------------------------------------------------------------- ImagePositionPatient


@pytest.mark.parametrize(("text", "reason"), [
    ("-12.5\\30.25", "ImagePositionPatient -12.5\\30.25 has 2 value(s); it needs 3 "
                     "(x, y, z in mm)"),
    ("-12.5\\nan\\101", "ImagePositionPatient -12.5\\nan\\101 is not finite"),
    ("-12.5\\30.25\\2e6", "ImagePositionPatient -12.5\\30.25\\2e+06 lies 2000 m from the origin "
                          "of patient space; no patient position is beyond 100 m"),
], ids=["count", "nan", "absurd"])
def test_position_refused(tmp_path: Path, text: str, reason: str) -> None:
    paths = _write(tmp_path)
    _set(paths[:1], "ImagePositionPatient", text)
    assert _refusal(paths[:1]) == f"{paths[0]}: {reason}"


def test_bad_position_without_orientation_is_only_noted(tmp_path: Path) -> None:
    """Without ImageOrientationPatient there is no patient geometry to refuse: the image
    is shown on the nominal grid, and the broken position is noted, not silently dropped."""
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "ImageOrientationPatient", None)
    _set(paths, "ImagePositionPatient", "0\\inf\\0")
    vol = read_volume(paths)
    assert _implausible(vol) == ["ImagePositionPatient 0\\inf\\0 is not finite: ignored, as the "
                                 "image has no complete patient geometry"]
    assert any("nominal geometry" in w.message for w in vol.warnings)


def test_one_bad_position_leaves_its_file_out_by_name(tmp_path: Path) -> None:
    original = _volume()
    paths = _write(tmp_path, original)
    _set(paths[2:3], "ImagePositionPatient", "-12.5\\30.25\\nan")
    vol = read_volume(paths)
    assert [w.code for w in vol.warnings] == [WarningCode.OTHER, WarningCode.MISSING_SLICES]
    assert vol.warnings[0].message == (
        f"1 of {SHAPE[0]} files were left out: 1× ImagePositionPatient -12.5\\30.25\\nan is "
        "not finite")
    assert np.all(vol.array[2] == -1024)  # shown as the hole it is
    keep = [k for k in range(SHAPE[0]) if k != 2]
    np.testing.assert_array_equal(vol.array[keep], original.array[keep])


def test_in_plane_jump_is_not_detilted(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    # Slice 3 is 50 mm off to the side (2.5 mm slices): a 87° "tilt" no gantry makes.
    _set(paths[3:4], "ImagePositionPatient", "37.5\\30.25\\108.5")
    with pytest.raises(GeometryError, match=re.escape(
            "ImagePositionPatient moves 50 mm within the image plane between the slices at "
            "106.00 and 108.50 mm along the normal: a 87° shear, more than any gantry tilt "
            "(45°); the images do not form one stack")):
        plan_volume(paths)


def test_far_apart_images_are_not_one_volume(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume((4, 10, 12)))
    _set(paths[3:4], "ImagePositionPatient", "-12.5\\30.25\\606")  # 500 mm beyond slice 2
    with pytest.raises(GeometryError, match=re.escape(
            "ImagePositionPatient: the 4 images do not form one volume — their gaps along the "
            "slice normal range from 2.5 to 500 mm, and a regular grid of 2.5 mm would need 203 "
            "slices, more than 10× the images.")):
        plan_volume(paths)


def test_nan_gantry_tilt_is_not_quoted(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume(step=(0, 0.9, 2.5)))  # slices shift along P: tilted
    _set(paths, "GantryDetectorTilt", "nan")
    tilt = next(w.message for w in read_volume(paths).warnings
                if w.code == WarningCode.GANTRY_TILT)
    assert tilt.startswith("slices are tilted by about 19.8° against the stack axis: ")


# --------------------------------------------------------------- PixelSpacing


@pytest.mark.parametrize(("text", "reason"), [
    ("0\\0.7", "PixelSpacing 0\\0.7 is not positive"),
    ("-0.8\\0.7", "PixelSpacing -0.8\\0.7 is not positive"),
    ("nan\\0.7", "PixelSpacing nan\\0.7 is not finite"),
    ("0.7", "PixelSpacing 0.7 has 1 value(s); it needs 2 (row spacing, column spacing in mm)"),
    ("250\\250", "PixelSpacing 250\\250 mm is larger than 100 mm per pixel, which no imaging "
                 "device produces"),
    ("0.00001\\0.00001", "PixelSpacing 1e-05\\1e-05 mm is smaller than 0.0001 mm (0.1 µm) per "
                         "pixel, which no imaging device produces"),
], ids=["zero", "negative", "nan", "count", "too_large", "too_small"])
def test_pixel_spacing_refused(tmp_path: Path, text: str, reason: str) -> None:
    paths = _write(tmp_path)
    _set(paths, "PixelSpacing", text)
    assert _refusal(paths[:1]) == f"{paths[0]}: {reason}"
    assert _refusal(paths) == f"none of the {SHAPE[0]} files could be loaded: {SHAPE[0]}× {reason}"


def test_pixel_spacing_without_patient_geometry_is_replaced_with_warning(tmp_path: Path) -> None:
    """A projection image's geometry is nominal: its impossible PixelSpacing does not refuse
    the image (real CR files in pydicom-data carry 0\\0), it is replaced, loudly."""
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "ImagePositionPatient", None)
    _set(paths, "ImageOrientationPatient", None)
    _set(paths, "PixelSpacing", "0\\0")
    _set(paths, "ImagerPixelSpacing", "0.15\\0.2")
    vol = read_volume(paths)
    assert _implausible(vol) == [
        "PixelSpacing 0\\0 is not positive: ImagerPixelSpacing 0.15\\0.2 used instead"]
    np.testing.assert_allclose(vol.spacing_mm[1:], (0.15, 0.2))
    _set(paths, "ImagerPixelSpacing", None)
    vol = read_volume(paths)
    assert _implausible(vol) == [
        "PixelSpacing 0\\0 is not positive: 1 mm pixels are assumed; distances are not real"]


# --------------------------------------------------------------- slice thickness and spacing


def test_zero_thickness_of_one_slice_is_replaced_with_warning(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "SliceThickness", "0")
    vol = read_volume(paths)
    assert _implausible(vol) == ["SliceThickness 0 is zero: 1 mm slices are assumed"]
    assert vol.spacing_mm[0] == pytest.approx(1.0)


def test_negative_spacing_of_one_slice_keeps_k_along_the_normal(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "SpacingBetweenSlices", "-3")
    vol = read_volume(paths)
    assert _implausible(vol) == [
        "SpacingBetweenSlices -3 is negative: SliceThickness 2.5 mm used instead"]
    np.testing.assert_allclose(vol.affine[:3, 0], (0, 0, 2.5))  # row × column = +z
    assert np.linalg.det(vol.affine[:3, :3]) < 0  # the sign every DICOM stack has


def test_thickness_is_not_checked_where_positions_give_the_step(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    _set(paths, "SliceThickness", "0")  # descriptive only: the step comes from the positions
    assert read_volume(paths).warnings == []


# --------------------------------------------------------------- Rows and Columns


def test_empty_matrix_refused_by_name(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "Rows", 0, vr="US")  # type: ignore[arg-type]
    assert _refusal(paths) == f"{paths[0]}: Rows 0, Columns 12: the image is empty"


def test_matrix_smaller_than_its_pixel_data_refused(tmp_path: Path) -> None:
    """Rows 2 on a 10-row image (e.g. a byte-swapped value): not read as a 2-row strip."""
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "Rows", 2, vr="US")  # type: ignore[arg-type]
    assert _refusal(paths) == (
        f"{paths[0]}: Rows 2, Columns 12, NumberOfFrames 1 (× 1 sample(s) of 16 bits) describe "
        "48 bytes of pixels, but PixelData holds 240: the image size in the header is wrong")


def test_absurd_matrix_refused_before_allocation(tmp_path: Path) -> None:
    paths = _write(tmp_path, _volume((1, 10, 12)))
    _set(paths, "Columns", 40000, vr="US")  # type: ignore[arg-type]
    assert _refusal(paths) == (
        f"{paths[0]}: Rows 10, Columns 40000: more than 32768 pixels along a side, which is not "
        "a real image matrix")


# --------------------------------------------------------------- real data: no false alarms

REAL_SERIES = {
    "ct/LIDC-IDRI-0001": [],
    "ct/MIDRC-RICORD-1A-419639-000082": [],
    "ct/HeadCT_GE_gantry_tilt": [WarningCode.UNEVEN_SPACING, WarningCode.GANTRY_TILT,
                                 WarningCode.RESAMPLED],
    "mr/Siemens_Trio_T1_MPRAGE": [],
    "mr/GE_T1_IR-SPGR_3D_refaced": [],
    "masks/dcmqi_ct-3slice_SEG/ct-3slice": [],
}


@pytest.mark.shared
@pytest.mark.parametrize("folder", sorted(REAL_SERIES))
def test_real_series_raise_no_new_warnings(shared_data: Path, folder: str) -> None:
    files = sorted((shared_data / folder).glob("*.dcm"))
    assert files
    plan = plan_volume(files)
    assert sorted(w.code for w in plan.warnings) == sorted(REAL_SERIES[folder]), plan.warnings
    geometry.check_affine(plan.affine, handedness=-1)


def test_zoo_raises_no_false_geometry_alarms() -> None:
    """Over every image of pydicom's test files and pydicom-data, the only values the
    checks object to are the CR files whose PixelSpacing really is 0\\0."""
    import importlib.util

    import pydicom.data

    from core.errors import LucidaError

    files = {Path(p).resolve() for p in pydicom.data.get_testdata_files() if Path(p).is_file()}
    spec = importlib.util.find_spec("data_store")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            files.update(p.resolve() for p in (Path(loc) / "data").glob("*.dcm"))
    alarms: dict[str, str] = {}
    # The wording of every refusal of dicomio.plausibility and dicomio.stack.
    refusal = re.compile(
        r"not finite|not positive|value\(s\); it needs|zero vector|not 1 \(direction|not 90°"
        r"|origin of patient space|no imaging device produces|image is empty|not a real image "
        r"matrix|image size in the header is wrong| is (zero|negative)|larger than 1000 mm"
        r"|do not form one")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(files):
            try:
                plan = plan_volume([path])
            except LucidaError as exc:
                if refusal.search(str(exc)) or isinstance(exc, GeometryError):
                    alarms[path.name] = str(exc)
                continue
            for w in plan.warnings:
                if w.code == IMPLAUSIBLE:
                    alarms[path.name] = w.message
    assert len(files) > 100
    cr = "PixelSpacing 0\\0 is not positive: 1 mm pixels are assumed; distances are not real"
    assert alarms == {name: cr for name in ("RG1_J2KI.dcm", "RG1_J2KR.dcm", "RG1_UNCI.dcm",
                                            "RG1_UNCR.dcm")}
