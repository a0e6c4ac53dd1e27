"""The built-in demo chest CT: anatomy where it should be, nodules of known size, determinism.

The phantom is written as a real DICOM series and read back through Lucida's
reader (``dicomio.load.read_volume``) and, independently, SimpleITK.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from core.convert import from_sitk
from core.errors import GeometryError
from core.volume import Volume
from dicomio import demo

LUNG_HU = (-1000, -600)
NODULE_HU = (-100, 150)


@pytest.fixture(scope="module")
def built() -> Volume:
    return demo.build_demo_volume()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return demo.write_demo_study(tmp_path_factory.mktemp("demo") / "series")


@pytest.fixture(scope="module")
def loaded(written: list[Path]) -> Volume:
    from dicomio.load import read_volume

    # Shuffled order: the reader must sort by position, not by the list it gets.
    order = np.random.default_rng(7).permutation(len(written))
    return read_volume([written[i] for i in order])


def _hu(volume: Volume, lps: np.ndarray | tuple[float, float, float]) -> float:
    return float(volume.value_at_lps(np.asarray(lps, dtype=np.float64)))


# --- geometry ---------------------------------------------------------------
def test_default_grid_geometry(built: Volume) -> None:
    assert built.shape == demo.DEFAULT_SHAPE
    assert built.array.dtype == np.int16
    assert built.modality == "CT"
    np.testing.assert_allclose(built.spacing_mm, [2.5, 1.3671875, 1.3671875])
    # k toward the head (+z), j toward posterior (+y), i toward the patient's left (+x).
    assert built.orientation_code == "SPL"
    np.testing.assert_allclose(built.direction, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    frac = np.abs(built.origin_lps - np.rint(built.origin_lps))
    assert np.all(frac > 0.01), f"origin {built.origin_lps} should not be at round numbers"


def test_shape_changes_voxel_size_not_anatomy() -> None:
    small = demo.build_demo_volume((40, 96, 96))
    assert small.shape == (40, 96, 96)
    np.testing.assert_allclose(small.spacing_mm, [7.5, 350 / 96, 350 / 96])
    # Same field of view: the outer corners of the grids coincide.
    big = demo.demo_affine()
    corner_small = small.index_to_lps([-0.5, -0.5, -0.5])
    corner_big = big[:3, :3] @ np.array([-0.5, -0.5, -0.5]) + big[:3, 3]
    np.testing.assert_allclose(corner_small, corner_big, atol=1e-9)
    assert _hu(small, (0.6, -10.0, -40.0)) < -800  # the trachea is still there
    with pytest.raises(GeometryError):
        demo.build_demo_volume((4, 96, 96))


# --- nodules ----------------------------------------------------------------
def test_nodule_catalogue_is_consistent() -> None:
    diameters = sorted(n.diameter_mm for n in demo.DEMO_NODULES)
    assert diameters == [4.0, 6.0, 9.0, 14.0]
    assert {n.side for n in demo.DEMO_NODULES} == {"left", "right"}
    assert len({n.name for n in demo.DEMO_NODULES}) == len(demo.DEMO_NODULES)
    assert {n.contact for n in demo.DEMO_NODULES} == {"", "pleura", "vessel"}
    for n in demo.DEMO_NODULES:
        # LPS: +x is the patient's left.
        assert (n.centre_lps[0] > 0) == (n.side == "left"), n
        assert (n.contact == "") == (n.contact_direction is None), n


@pytest.mark.parametrize("nodule", demo.DEMO_NODULES, ids=lambda n: n.name)
def test_nodule_centre_and_surroundings_after_read_back(loaded: Volume,
                                                        nodule: demo.DemoNodule) -> None:
    centre = np.asarray(nodule.centre_lps)
    assert NODULE_HU[0] <= _hu(loaded, centre) <= NODULE_HU[1]
    contact = (np.asarray(nodule.contact_direction) if nodule.contact_direction is not None
               else np.zeros(3))
    for direction in ((1.0, 0, 0), (-1.0, 0, 0), (0, 1.0, 0), (0, -1.0, 0)):
        u = np.asarray(direction)
        value = _hu(loaded, centre + u * (nodule.radius_mm + 1.0))
        if float(u @ contact) > 0.5:
            # Towards what it touches: chest wall or vessel, not lung.
            assert value > -450, (nodule.name, direction, value)
        else:
            assert LUNG_HU[0] <= value <= LUNG_HU[1], (nodule.name, direction, value)


@pytest.mark.parametrize("name", ["N1", "N2"])
def test_isolated_nodule_volume_matches_its_diameter(built: Volume, name: str) -> None:
    nodule = next(n for n in demo.DEMO_NODULES if n.name == name)
    centre_index = np.rint(built.lps_to_index(nodule.centre_lps)).astype(int)
    reach = np.ceil((nodule.radius_mm + 3.0) / built.spacing_mm).astype(int)
    lo, hi = centre_index - reach, centre_index + reach + 1
    block = built.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    kji = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)),
                               indexing="ij"), axis=-1).reshape(-1, 3)
    dist = np.linalg.norm(built.index_to_lps(kji) - np.asarray(nodule.centre_lps), axis=1)
    near = dist.reshape(block.shape) < nodule.radius_mm + 2.5  # the demo keeps 4 mm clear
    # The half-way level between lung (-875) and nodule (30) gives an unbiased size.
    voxels = int(np.count_nonzero((block > -420) & near))
    measured_mm3 = voxels * float(np.prod(built.spacing_mm))
    assert measured_mm3 == pytest.approx(nodule.volume_mm3, rel=0.25)


# --- anatomy and sidedness ---------------------------------------------------
def test_left_and_right_are_where_lps_says(loaded: Volume) -> None:
    """Asymmetric anatomy: a flipped x axis anywhere in write/read would fail here."""
    # The right hemidiaphragm is higher: liver on the right, lung on the left.
    assert 20 < _hu(loaded, (-55.0, 0.0, -231.0)) < 100
    assert LUNG_HU[0] <= _hu(loaded, (55.0, 0.0, -231.0)) <= LUNG_HU[1]
    # The gastric air bubble is on the left, liver at the mirrored point.
    assert _hu(loaded, (42.0, -50.0, -262.0)) < -900
    assert _hu(loaded, (-42.0, -50.0, -262.0)) > 20
    # The heart displaces the left lung: the right lung is the larger one.
    lung = (loaded.array > -950) & (loaded.array < -600)
    x = loaded.index_to_lps(np.stack([np.zeros(loaded.shape[2]), np.zeros(loaded.shape[2]),
                                      np.arange(loaded.shape[2])], axis=1))[:, 0]
    right, left = int(lung[:, :, x < 0].sum()), int(lung[:, :, x > 0].sum())
    assert right > 1.04 * left, (right, left)


def test_airways_and_bones(loaded: Volume) -> None:
    for z in (-30.0, -60.0, -95.0):  # along the trachea centre line down to the carina
        y = -12.0 + (-10.0 - z) * 10.0 / 102.0
        assert _hu(loaded, (0.6, y, z)) < -900
    assert _hu(loaded, (-15.0, -1.0, -122.0)) < -900  # right main bronchus
    assert _hu(loaded, (25.0, 3.0, -132.0)) < -900  # left main bronchus
    # The vertebral column: marrow or disc at its centre on every slice, cortex at its rim.
    for z in np.arange(-300.0, -20.0, 10.0):
        assert 60 < _hu(loaded, (-0.8, 50.0, z)) < 400, z
    rim = [_hu(loaded, (-0.8, 50.0 - 15.0, z)) for z in np.arange(-300.0, -20.0, 2.5)]
    assert max(rim) > 600


# --- DICOM ----------------------------------------------------------------------
def test_read_back_is_voxel_identical(built: Volume, loaded: Volume,
                                      written: list[Path]) -> None:
    np.testing.assert_array_equal(loaded.array, built.array)
    np.testing.assert_allclose(loaded.affine, built.affine, atol=1e-6)
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in written])
    array, affine = from_sitk(reader.Execute())
    np.testing.assert_array_equal(array, built.array)
    np.testing.assert_allclose(affine, built.affine, atol=1e-6)


def test_every_file_is_labelled_synthetic(written: list[Path]) -> None:
    assert len(written) == demo.DEFAULT_SHAPE[0]
    sop_uids = set()
    for k, path in enumerate(written):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == "LUCIDA^DEMO"
        assert ds.PatientID == "LUCIDA-DEMO-0001"
        assert ds.StudyDescription == "Lucida demo chest CT (SYNTHETIC)"
        assert ds.SeriesDescription == "SYNTHETIC demo — not patient data"
        assert "SYNTHETIC" in ds.ImageComments
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.BurnedInAnnotation == "NO"
        assert ds.BodyPartExamined == "CHEST"
        assert ds.Modality == "CT"
        assert ds.PatientPosition == "HFS"
        assert [float(v) for v in ds.WindowCenter] == [40.0, -600.0, 400.0]
        assert list(ds.WindowCenterWidthExplanation) == ["MEDIASTINUM", "LUNG", "BONE"]
        assert ds.StudyInstanceUID == demo.DEMO_STUDY_UID
        assert ds.SeriesInstanceUID == demo.DEMO_SERIES_UID
        assert ds.FrameOfReferenceUID == demo.DEMO_FRAME_OF_REFERENCE_UID
        assert ds.SOPInstanceUID == demo.demo_sop_instance_uid(k)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.InstanceNumber == k + 1
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert UID(uid).is_valid, uid
        sop_uids.add(ds.SOPInstanceUID)
    assert len(sop_uids) == len(written)


def test_volume_carries_labels_and_identity(built: Volume) -> None:
    assert built.series_uid == demo.DEMO_SERIES_UID
    assert built.frame_of_reference_uid == demo.DEMO_FRAME_OF_REFERENCE_UID
    assert built.metadata["synthetic"] is True
    assert "SYNTHETIC" in built.metadata["series_description"]
    assert built.identity == {"patient_name": "LUCIDA^DEMO", "patient_id": "LUCIDA-DEMO-0001"}


# --- determinism --------------------------------------------------------------
def test_two_builds_are_identical(built: Volume) -> None:
    demo._build_array.cache_clear()  # really build again, not from the cache
    again = demo.build_demo_volume()
    assert again.array is not built.array
    np.testing.assert_array_equal(again.array, built.array)
    np.testing.assert_array_equal(again.affine, built.affine)
    other_seed = demo.build_demo_volume(seed=demo.DEFAULT_SEED + 1)
    assert not np.array_equal(other_seed.array, built.array)
    # Callers get their own writable copy: scribbling on one leaves the next intact.
    again.array[:] = 0
    np.testing.assert_array_equal(demo.build_demo_volume().array, built.array)


def test_two_writes_are_byte_identical(written: list[Path], tmp_path: Path) -> None:
    again = demo.write_demo_study(tmp_path / "again")
    assert [p.name for p in again] == [p.name for p in written]
    for a, b in zip(written, again, strict=True):
        da, db = pydicom.dcmread(a), pydicom.dcmread(b)
        assert da.SOPInstanceUID == db.SOPInstanceUID
        assert da.PixelData == db.PixelData
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_identical_in_a_fresh_process(built: Volume) -> None:
    """UIDs and voxels do not depend on the process (no uuid4 or clock anywhere)."""
    import subprocess
    import sys

    code = ("import hashlib; from dicomio import demo; v = demo.build_demo_volume(); "
            "print(hashlib.sha256(v.array.tobytes()).hexdigest()); print(demo.DEMO_STUDY_UID); "
            "print(demo.DEMO_SERIES_UID); print(demo.demo_sop_instance_uid(7))")
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    assert out == [hashlib.sha256(built.array.tobytes()).hexdigest(), demo.DEMO_STUDY_UID,
                   demo.DEMO_SERIES_UID, demo.demo_sop_instance_uid(7)]


def test_uids_are_pinned() -> None:
    """Changing these would put a second demo series into every existing library."""
    assert demo.DEMO_STUDY_UID == "2.25.210370367779300274113650717877314040050"
    assert demo.DEMO_SERIES_UID == "2.25.71717754956612133667887322918880858546"
    assert demo.DEMO_FRAME_OF_REFERENCE_UID == "2.25.283102629239676570521610754492897244176"
