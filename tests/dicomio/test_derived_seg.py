"""DICOM SEG onto a target grid: the dcmqi examples voxel for voxel, the broken LIDC SEG as
a clear sentence, other grids by nearest neighbour, hostile input as a problem."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.volume import Volume
from dicomio.derived.common import read_dataset
from dicomio.derived.seg import read_seg
from dicomio.load import read_volume
from dicomio.source import DicomSource


@pytest.fixture(scope="module")
def ct3(shared_data: Path) -> tuple[Path, Volume]:
    folder = shared_data / "masks" / "dcmqi_ct-3slice_SEG"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder, read_volume(sorted((folder / "ct-3slice").glob("*.dcm")))


def _slice_of_uid(folder: Path, volume: Volume) -> dict[str, int]:
    """CT SOP instance UID -> k on the loaded volume, from each file's own position."""
    out = {}
    for path in (folder / "ct-3slice").glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        k = volume.lps_to_index([float(v) for v in ds.ImagePositionPatient])
        assert np.allclose(k[1:], 0, atol=1e-3)
        out[ds.SOPInstanceUID] = int(np.rint(k[0]))
    return out


def _frames_by_segment(ds: pydicom.Dataset) -> list[tuple[int, str, np.ndarray]]:
    """(segment, referenced CT UID, frame pixels) straight from pydicom, per frame."""
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    out = []
    for n, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = (group.DerivationImageSequence[0].SourceImageSequence[0]
               .ReferencedSOPInstanceUID)
        out.append((segment, uid, pixels[n].astype(bool)))
    return out


def test_liver_lands_on_the_slices_its_frames_reference(ct3: tuple[Path, Volume]) -> None:
    folder, volume = ct3
    ds = pydicom.dcmread(folder / "liver.dcm")
    slices = _slice_of_uid(folder, volume)
    obj = read_seg(read_dataset(DicomSource(folder / "liver.dcm")), volume, slices)
    assert obj.problem == "" and obj.notes == []
    assert [f.label_name for f in obj.findings] == ["Liver"]
    liver = obj.findings[0]
    assert (liver.creator, liver.algorithm, liver.source_kind) == (
        "SEMIAUTOMATIC", "SlicerEditor", "SEG")
    assert liver.mask is not None
    full = liver.mask.full(volume.shape)
    frames = _frames_by_segment(ds)
    assert len(frames) == 3
    for _segment, uid, pixels in frames:
        assert np.array_equal(full[slices[uid]], pixels)  # every voxel of every frame
    assert liver.mask.voxel_count == sum(int(p.sum()) for _s, _u, p in frames) == 107098
    assert obj.label_map is not None
    assert np.array_equal(obj.label_map.array > 0, full)
    assert obj.referenced_series_uids == (
        "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1",)


def test_partial_overlaps_keeps_all_five_segments(ct3: tuple[Path, Volume]) -> None:
    folder, volume = ct3
    ds = pydicom.dcmread(folder / "partial_overlaps.dcm")
    slices = _slice_of_uid(folder, volume)
    obj = read_seg(read_dataset(DicomSource(folder / "partial_overlaps.dcm")), volume, slices)
    assert obj.problem == ""
    names = [(f.number, f.label_name) for f in obj.findings]
    assert names == [(1, "GREEN"), (2, "ORANGE"), (3, "PURPLE"), (4, "LIGHT_BLUE"),
                     (5, "DARK_BLUE")]
    expected = {n: np.zeros(volume.shape, dtype=bool) for n in range(1, 6)}
    for segment, uid, pixels in _frames_by_segment(ds):
        expected[segment][slices[uid]] |= pixels
    counts = {f.number: f.mask.voxel_count for f in obj.findings if f.mask is not None}
    assert counts == {1: 9602, 2: 11888, 3: 10743, 4: 6693, 5: 4713}
    for f in obj.findings:
        assert f.mask is not None
        assert np.array_equal(f.mask.full(volume.shape), expected[f.number])
    # They really overlap, and the display union is first-wins (lowest number on top).
    overlap = expected[1] & expected[2]
    assert overlap.any()
    assert obj.label_map is not None
    assert np.all(obj.label_map.array[overlap] == 1)
    assert np.array_equal(obj.label_map.array > 0, np.any(list(expected.values()), axis=0))


def test_disagreeing_references_are_a_problem(ct3: tuple[Path, Volume]) -> None:
    folder, volume = ct3
    slices = _slice_of_uid(folder, volume)
    rotated = {uid: (k + 1) % 3 for uid, k in slices.items()}
    obj = read_seg(read_dataset(DicomSource(folder / "liver.dcm")), volume, rotated)
    assert obj.problem.startswith("This segmentation cannot be shown: frame 1 names the image at")
    assert obj.label_map is None and all(f.mask is None for f in obj.findings)


def test_other_grid_is_resampled_by_nearest_neighbour(ct3: tuple[Path, Volume]) -> None:
    folder, volume = ct3
    exact = read_seg(read_dataset(DicomSource(folder / "liver.dcm")), volume)
    assert exact.findings[0].mask is not None
    full = exact.findings[0].mask.full(volume.shape)
    coarse_affine = volume.affine.copy()
    coarse_affine[:3, 1:3] *= 2  # every other row and column, same origin
    coarse = Volume(np.zeros((3, 256, 256), dtype=np.int16), coarse_affine,
                    frame_of_reference_uid=volume.frame_of_reference_uid)
    obj = read_seg(read_dataset(DicomSource(folder / "liver.dcm")), coarse)
    assert obj.problem == ""
    assert obj.notes == ["3 of 3 frames lie on another grid and were resampled onto this "
                         "series by nearest neighbour"]
    assert obj.findings[0].mask is not None
    assert np.array_equal(obj.findings[0].mask.full(coarse.shape), full[:, ::2, ::2])


def test_broken_lidc_seg_says_why(shared_data: Path) -> None:
    seg = shared_data / "masks" / "LIDC-IDRI-0001_SEG_fedorov" / "nodule.dcm"
    ct = shared_data / "ct" / "LIDC-IDRI-0001"
    if not seg.is_file() or not ct.is_dir():
        pytest.skip("the LIDC-IDRI-0001 SEG or CT is absent")
    volume = read_volume(sorted(ct.glob("*.dcm")))
    obj = read_seg(read_dataset(DicomSource(seg)), volume)
    assert obj.problem == (
        "This segmentation cannot be shown: its frames lie at z 97.5..115 mm, outside this "
        "series' z range -340..-10 mm, and it references no images.")
    assert obj.label_map is None


@pytest.mark.parametrize("damage, expected", [
    (lambda ds: delattr(ds.PerFrameFunctionalGroupsSequence[1], "PlanePositionSequence"),
     "This segmentation cannot be shown: frame 2 has no PlanePositionSequence"),
    (lambda ds: setattr(ds, "NumberOfFrames", 5),
     "This segmentation cannot be shown: it has 3 per-frame groups for 5 frames."),
    (lambda ds: delattr(ds, "SegmentSequence"),
     "This segmentation cannot be"),
    (lambda ds: setattr(ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0],
                        "ImagePositionPatient", ["1e999", 0, 0]),
     "This segmentation cannot be shown: frame 1: ImagePositionPatient"),
    (lambda ds: setattr(ds, "PixelData", ds.PixelData[:100]),
     "This segmentation cannot be read"),
    (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"),
     "This segmentation cannot be shown: SOP class 1.2.840.10008.5.1.4.1.1.2 is not"),
])
def test_hostile_seg_is_a_problem_not_an_exception(ct3: tuple[Path, Volume], damage: object,
                                                   expected: str) -> None:
    folder, volume = ct3
    ds = copy.deepcopy(pydicom.dcmread(folder / "liver.dcm"))
    damage(ds)  # type: ignore[operator]
    obj = read_seg(ds, volume)
    assert obj.problem.startswith(expected), obj.problem
    assert obj.label_map is None
