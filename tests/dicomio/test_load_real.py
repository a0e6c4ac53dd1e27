"""Series → Volume on the real series in ../shared/data (skipped when absent)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.convert import from_sitk
from core.volume import Volume, WarningCode
from dicomio.load import plan_volume, read_volume

LIDC = "ct/LIDC-IDRI-0001"
RICORD = "ct/MIDRC-RICORD-1A-419639-000082"
TILT = "ct/HeadCT_GE_gantry_tilt"
SAG_MR = "mr/GE_T1_IR-SPGR_3D_refaced"


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def _sitk_reference(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return from_sitk(reader.Execute())


def _assert_matches_sitk(vol: Volume, folder: Path) -> None:
    ref, ref_affine = _sitk_reference(folder)
    np.testing.assert_allclose(vol.affine, ref_affine, atol=1e-4)
    assert vol.shape == ref.shape
    # Lucida maps PixelPaddingValue voxels to air (−1024 HU); SimpleITK keeps the
    # rescaled padding value. Apply the same documented mapping to the reference.
    pad = vol.metadata["pixel_padding_value"]
    expected = ref.copy()
    if pad is not None:
        padded = expected == pad + (-1024)
        assert pad == -2000
        expected[padded] = -1024
    np.testing.assert_array_equal(vol.array, expected)


def test_lidc_identical_to_simpleitk(shared_data: Path) -> None:
    folder = shared_data / LIDC
    vol = read_volume(_files(folder)[::-1])  # input order must not matter
    assert vol.shape == (133, 512, 512)
    assert vol.array.dtype == np.int16
    assert vol.warnings == []
    assert vol.metadata["units"] == "HU"
    assert vol.metadata["transfer_syntaxes"] == {"1.2.840.10008.1.2.1"}
    assert vol.metadata["number_of_instances"] == 133
    assert vol.metadata["study_date"] == "20000101"   # shown in the corner text
    _assert_matches_sitk(vol, folder)


def test_ricord_jpeg_lossless_identical_to_simpleitk(shared_data: Path) -> None:
    folder = shared_data / RICORD
    vol = read_volume(_files(folder))
    assert vol.shape == (255, 512, 512)
    assert vol.metadata["transfer_syntaxes"] == {"1.2.840.10008.1.2.4.70"}
    assert vol.warnings == []
    _assert_matches_sitk(vol, folder)


def _lidc_four_reader_nodule(xml_path: Path) -> tuple[float, float, float]:
    """Mean (column, row, z) of the nodule that four readers outlined."""
    ns = {"n": "http://www.nih.gov"}
    root = ET.parse(xml_path).getroot()
    centres = []
    for session in root.findall("n:readingSession", ns):
        for nodule in session.findall("n:unblindedReadNodule", ns):
            xs, ys, zs = [], [], []
            for roi in nodule.findall("n:roi", ns):
                z = float(roi.findtext("n:imageZposition", namespaces=ns) or "nan")
                for edge in roi.findall("n:edgeMap", ns):
                    xs.append(float(edge.findtext("n:xCoord", namespaces=ns) or "nan"))
                    ys.append(float(edge.findtext("n:yCoord", namespaces=ns) or "nan"))
                    zs.append(z)
            if len(xs) > 1:  # nodules ≥ 3 mm have outlines; micro-nodules a single point
                centres.append(np.array([np.mean(xs), np.mean(ys), np.mean(zs)]))
    # Group the readers' nodules by proximity; the 4-reader one has 4 members.
    for c in centres:
        group = [d for d in centres if np.linalg.norm((d - c) * (0.7, 0.7, 1.0)) < 10.0]
        if len(group) == 4:
            mean = np.mean(group, axis=0)
            return float(mean[0]), float(mean[1]), float(mean[2])
    raise AssertionError("no nodule outlined by four readers in the XML")


def test_lidc_nodule_centre_is_dense(shared_data: Path) -> None:
    folder = shared_data / LIDC
    col, row, z = _lidc_four_reader_nodule(folder / "069.xml")
    assert col == pytest.approx(316, abs=4) and row == pytest.approx(367, abs=4)
    assert z == pytest.approx(-115.9, abs=2.0)
    vol = read_volume(_files(folder))
    # Pixel (column, row) on the slice plane at z: LPS from the volume's own affine.
    in_plane = vol.index_to_lps((0.0, row, col))
    point = np.array([in_plane[0], in_plane[1], z])
    assert vol.value_at_lps(point) > -300
    # The nodule sits in lung: 15 mm around it (same slice) the median is air-like.
    ring = [vol.value_at_lps(point + 15.0 * np.array([np.cos(a), np.sin(a), 0.0]))
            for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    assert float(np.median(ring)) < -500


def test_gantry_tilt_head_ct(shared_data: Path) -> None:
    folder = shared_data / TILT
    files = _files(folder)
    vol = read_volume(files)
    codes = [w.code for w in vol.warnings]
    assert WarningCode.GANTRY_TILT in codes
    assert WarningCode.UNEVEN_SPACING in codes
    tilt_msg = next(w.message for w in vol.warnings if w.code == WarningCode.GANTRY_TILT)
    assert "18.5" in tilt_msg
    d = vol.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-5)  # de-tilted: orthogonal grid
    # A voxel of a source slice, located through that file's own IPP/IOP, reads back the
    # same value at the same LPS position (within half a voxel: nearest output voxel).
    ds = pydicom.dcmread(files[3])
    src = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    rs, cs = (float(x) for x in ds.PixelSpacing)
    # Pick a bright, locally flat spot (bone interior) so interpolation cannot hide errors.
    smooth = src[200:320, 200:320]
    j0, i0 = np.unravel_index(np.argmax(smooth), smooth.shape)
    j, i = 200 + int(j0), 200 + int(i0)
    lps = ipp + i * cs * iop[:3] + j * rs * iop[3:]
    idx = vol.lps_to_index(lps)
    assert np.all(np.abs(idx - np.rint(idx)) <= 0.5 + 1e-6)
    nearest = vol.array[tuple(np.rint(idx).astype(int))]
    local = src[j - 1:j + 2, i - 1:i + 2]
    assert local.min() - 1 <= nearest <= local.max() + 1
    # The output slice through that source slice is the source slice itself, shifted.
    k = int(np.rint(idx[0]))
    assert abs(idx[0] - k) < 0.05  # first block (4 mm) lies on the output grid


def test_sagittal_mr_orientation(shared_data: Path) -> None:
    folder = shared_data / SAG_MR
    files = _files(folder)
    plan = plan_volume(files)
    assert plan.shape == (196, 256, 256)
    vol = read_volume(files)
    assert vol.modality == "MR"
    assert vol.warnings == []
    # Rows run P (+y), columns down the head (−z → I), slices along −x?  IOP is
    # [0,1,0, 0,0,-1]: i → P, j → I, normal = row × col = (−1, 0, 0) → R.
    assert vol.orientation_code == "RIP"
    np.testing.assert_allclose(vol.spacing_mm, (1.2, 1.0547, 1.0547), atol=1e-3)
    first = pydicom.dcmread(files[0])
    xs = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[0])
                for f in (files[0], files[-1]))
    assert vol.origin_lps[0] == pytest.approx(xs[1], abs=1e-3)  # k=0 is the most left slice
    # Slice 0 is the file at that position, voxel for voxel.
    match = next(f for f in files
                 if abs(float(pydicom.dcmread(f, stop_before_pixels=True)
                              .ImagePositionPatient[0]) - xs[1]) < 1e-3)
    ds = pydicom.dcmread(match)
    np.testing.assert_array_equal(vol.array[0], ds.pixel_array.astype(np.int32)
                                  * int(first.get("RescaleSlope", 1) or 1)
                                  + int(first.get("RescaleIntercept", 0) or 0))
