"""RTSTRUCT rasterisation on a synthetic CT written to disk: an asymmetric L, a ring (hole by
XOR), a contour between slices; exact expected voxels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.volume import Volume
from dicomio.derived.common import read_dataset
from dicomio.derived.rtstruct import RTSTRUCT_SOP_CLASS, read_rtstruct
from dicomio.load import read_volume
from dicomio.source import DicomSource
from dicomio.write_image import SeriesInfo, write_series


def _ct(tmp_path: Path) -> tuple[Volume, SeriesInfo]:
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, 2.5)
    affine[:3, 1] = (0.0, 0.8, 0.0)
    affine[:3, 2] = (0.8, 0.0, 0.0)
    affine[:3, 3] = (-10.0, -20.0, 30.0)
    info = SeriesInfo()
    array = np.arange(4 * 16 * 12, dtype=np.float64).reshape(4, 16, 12)
    write_series(Volume(array, affine), tmp_path / "ct", info)
    return read_volume(sorted((tmp_path / "ct").glob("*.dcm"))), info


def _contour(volume: Volume, k: float, ij: list[tuple[float, float]]) -> Dataset:
    item = Dataset()
    item.ContourGeometricType = "CLOSED_PLANAR"
    points = [volume.index_to_lps((k, j, i)) for i, j in ij]
    item.NumberOfContourPoints = len(points)
    item.ContourData = [f"{v:.4f}" for p in points for v in p]
    return item


def _rtstruct(path: Path, volume: Volume, info: SeriesInfo) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID = info.study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "SYNTH"
    series = Dataset()
    series.SeriesInstanceUID = info.series_uid
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = info.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    rois, contours = [], []
    shapes = {
        1: ("L", (255, 0, 0), [_contour(volume, 2, [(2, 1), (6, 1), (6, 3), (4, 3), (4, 7),
                                                    (2, 7)])]),
        2: ("Ring", (0, 255, 0), [_contour(volume, 1, [(1, 1), (9, 1), (9, 9), (1, 9)]),
                                  _contour(volume, 1, [(4, 4), (6, 4), (6, 6), (4, 6)])]),
        3: ("Between", (0, 0, 255), [_contour(volume, 1.5, [(1, 1), (3, 1), (3, 3)])]),
    }
    for number, (name, color, items) in shapes.items():
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = info.frame_of_reference_uid
        rois.append(roi)
        c = Dataset()
        c.ReferencedROINumber = number
        c.ROIDisplayColor = list(color)
        c.ContourSequence = Sequence(items)
        contours.append(c)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_rasterises_exact_voxels(tmp_path: Path) -> None:
    volume, info = _ct(tmp_path)
    path = _rtstruct(tmp_path / "rs.dcm", volume, info)
    obj = read_rtstruct(read_dataset(DicomSource(path)), volume)
    assert obj.problem == ""
    assert obj.referenced_series_uids == (info.series_uid,)
    assert obj.frame_of_reference_uid == info.frame_of_reference_uid
    assert [(f.number, f.label_name, f.color_rgb) for f in obj.findings] == [
        (1, "L", (255, 0, 0)), (2, "Ring", (0, 255, 0)), (3, "Between", (0, 0, 255))]
    shape = volume.shape
    l_shape = np.zeros(shape, dtype=bool)  # voxel centres inside or on the contour
    l_shape[2, 1:4, 2:7] = True
    l_shape[2, 3:8, 2:5] = True
    got = obj.findings[0].mask
    assert got is not None and np.array_equal(got.full(shape), l_shape)
    assert got.voxel_count == 15 + 15 - 3
    ring = np.zeros(shape, dtype=bool)
    ring[1, 1:10, 1:10] = True
    ring[1, 4:7, 4:7] = False  # the inner contour, its outline included, is the hole
    assert obj.findings[1].mask is not None
    assert np.array_equal(obj.findings[1].mask.full(shape), ring)
    assert obj.findings[2].mask is None  # not on a slice plane: not drawn, and said so
    assert obj.notes == ["1 contours are not closed planar contours on this series' slice "
                         "planes and were not drawn"]
    # Centroid of the L in LPS, from its voxel indices.
    idx = np.argwhere(l_shape).mean(axis=0)
    assert np.allclose(obj.findings[0].centroid_lps, volume.index_to_lps(idx))
    assert obj.label_map is not None
    assert set(np.unique(obj.label_map.array)) == {0, 1, 2}


def test_other_frame_of_reference_is_a_problem(tmp_path: Path) -> None:
    volume, info = _ct(tmp_path)
    path = _rtstruct(tmp_path / "rs.dcm", volume, info)
    other = Volume(volume.array, volume.affine, frame_of_reference_uid="1.2.3.4")
    obj = read_rtstruct(read_dataset(DicomSource(path)), other)
    assert obj.problem == ("This structure set cannot be shown: its contours belong to "
                           "another frame of reference than this series.")


def test_hostile_contour_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    volume, info = _ct(tmp_path)
    ds = read_dataset(DicomSource(_rtstruct(tmp_path / "rs.dcm", volume, info)))
    ds.ROIContourSequence[1].ContourSequence[0].ContourData = ["1", "2"]  # too short
    obj = read_rtstruct(ds, volume)
    assert obj.problem == "" and obj.findings[1].mask is not None  # the hole alone is left
    assert obj.notes[0].startswith("2 contours are not closed planar contours")
    del ds.ROIContourSequence[0].ReferencedROINumber
    obj = read_rtstruct(ds, volume)
    assert obj.problem.startswith("This structure set cannot be read: AttributeError")
    assert obj.label_map is None and obj.findings == []
    del ds.StructureSetROISequence
    assert read_rtstruct(ds, volume).problem == (
        "This structure set cannot be shown: it has no StructureSetROISequence.")
