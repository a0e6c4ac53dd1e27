"""Each finding's own mask travels from the pipeline to the review, never re-derived.

Two cases re-labelling the label map gets wrong, each run through a real pack in
onnxruntime and recorded in a real SQLite library, the stored masks read back:

* a segmentation pack whose components are 6-connected, on two regions that touch
  only at a corner (26-connectivity would merge them into one);
* a detector pack whose two boxes' inscribed ellipsoids overlap (the label map holds
  one label per voxel, the better box's).

The oracles never use Lucida's grids: regions are set on the source grid, and each
ellipsoid is found from LPS offsets projected on the model axes the manifest names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from core import geometry
from core.errors import StoreError
from core.volume import Volume
from inference import run
from inference.finding_mask import FindingMask, Findings, from_arrays, to_arrays
from inference.pipeline import InferenceResult
from inference.worker import InferenceJob, JobOptions
from store import Library, NewInstance, NewStack

# Source grid: columns k, j, i in LPS — permuted and flipped, anisotropic, odd origin.
COLUMNS = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
SPACING = (2.5, 0.8, 1.1)
SHAPE = (20, 24, 28)
SERIES_UID = "1.2.826.0.1.3680043.99.16"
LETTERS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
           "S": (0, 0, 1), "I": (0, 0, -1)}


def _affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = COLUMNS * np.asarray(SPACING)
    affine[:3, 3] = (-31.0, 12.5, 40.25)
    return affine


def _volume(array: np.ndarray, affine: np.ndarray | None = None) -> Volume:
    return Volume(array.astype(np.float32), _affine() if affine is None else affine,
                  series_uid=SERIES_UID, modality="CT")


def _tilted() -> np.ndarray:
    """The test grid with a 12° gantry tilt: slices shear along j (not orthogonal)."""
    affine = _affine()
    affine[:3, 0] += math.tan(math.radians(12.0)) * SPACING[0] * affine[:3, 1] / SPACING[1]
    return affine


def _library(tmp_path: Path) -> tuple[Library, int]:
    """A real library holding one indexed series with this test's UID and grid."""
    library = Library.open(tmp_path / "library")
    folder = tmp_path / "dicom"
    folder.mkdir()
    instances = []
    for n in range(SHAPE[0]):
        path = folder / f"f{n}.dcm"
        path.write_bytes(bytes([n]) * 64)
        instances.append(NewInstance(
            sop_instance_uid=f"{SERIES_UID}.{n + 1}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            transfer_syntax_uid="1.2.840.10008.1.2.1", path=path.absolute(), member=None,
            file_size=64, mtime=path.stat().st_mtime, instance_number=n + 1,
            position=(0.0, 0.0, 2.5 * n)))
    library.index_stack(NewStack(
        patient_id="P16", patient_name="DOE^JOHN", birth_date="19600101",
        study_uid=f"{SERIES_UID}.0", study_date="20250101", study_time="090000",
        study_description="CT head", accession_number="A16", series_uid=SERIES_UID,
        stack_key="24x28/axial", object_kind="image", modality="CT", series_number=3,
        description="Head", body_part="HEAD", frame_of_reference_uid="1.2.3.16",
        rows=SHAPE[1], columns=SHAPE[2], is_localizer=False, instances=tuple(instances)))
    return library, library.get_series(SERIES_UID).id


def _stored_masks(library: Library, run_id: int) -> dict[int, np.ndarray]:
    """Finding id → its mask as the review reads it back from the library."""
    from review import ReviewSession

    session = ReviewSession.open(library, run_id)
    out = {}
    for f in session.findings:
        assert f.original_mask is not None and f.mask.same_voxels(f.original_mask)
        out[int(f.key.removeprefix("m"))] = f.mask.to_full(SHAPE)
    return out


def _own_masks(result: Any) -> dict[int, np.ndarray]:
    assert result.finding_masks is not None
    return {i: m.full(SHAPE) for i, m in result.finding_masks.items()}


# -- (a) 6-connected components that touch at a corner ---------------------------------

def _corner_regions() -> tuple[np.ndarray, np.ndarray]:
    """Two asymmetric blocks that share only the corner between voxels (6, 9, 11) and
    (7, 10, 12): 26-connected they are one region, 6-connected two."""
    a = np.zeros(SHAPE, dtype=bool)
    a[3:7, 5:10, 6:12] = True  # 4 × 5 × 6 = 120 voxels
    a[3, 5, 6] = False  # and not box-symmetric
    b = np.zeros(SHAPE, dtype=bool)
    b[7:9, 10:13, 12:16] = True  # 2 × 3 × 4 = 24 voxels
    return a, b


def _segmentation_pack(make_pack: Any, models: dict[str, Any]) -> Path:
    return Path(make_pack(
        models["identity"](),
        input={"orientation": "RAS", "axis_order": "ijk", "spacing_mm": "native",
               "normalization": {"kind": "none"}},
        postprocessing=[{"step": "threshold", "value": 0.5},
                        {"step": "connected_components", "connectivity": 6}]))


def test_six_connected_regions_touching_at_a_corner_are_recorded_as_two_findings(
        tmp_path: Path, make_pack: Any, models: dict[str, Any]) -> None:
    from app.runs import record_run

    a, b = _corner_regions()
    _merged, n26 = ndimage.label(a | b, structure=np.ones((3, 3, 3), dtype=bool))
    assert n26 == 1  # the case re-labelling with 26-connectivity cannot tell apart
    image = np.where(a, 0.9, 0.0) + np.where(b, 0.8, 0.0)
    result = run(_volume(image), _segmentation_pack(make_pack, models), threads=1)

    assert [(f.id, f.voxel_count) for f in result.findings] == [(1, 119), (2, 24)]
    own = _own_masks(result)
    np.testing.assert_array_equal(own[1], a)
    np.testing.assert_array_equal(own[2], b)

    library, series_id = _library(tmp_path)
    try:
        run_id = record_run(library, series_id, result, actor="tester")
        stored = _stored_masks(library, run_id)
        assert sorted(stored) == [1, 2]
        np.testing.assert_array_equal(stored[1], a)
        np.testing.assert_array_equal(stored[2], b)
    finally:
        library.close()


# -- (b) a detector whose two ellipsoids overlap ----------------------------------------

DETECTOR_AT = {(9, 8, 11): 0.9, (9, 8, 14): 0.8}  # 3 voxels apart along source i
HALF = (2, 2, 2)


def _detector_manifest(**input_over: Any) -> dict[str, Any]:
    return {
        "input": {"orientation": "RAS", "axis_order": "ijk", "spacing_mm": "native",
                  "normalization": {"kind": "none"}, **input_over},
        "tiling": {"mode": "sliding", "patch_size": [12, 12, 12], "overlap": 0.5,
                   "batch_size": 1},
        "output": {"kind": "detections", "channels": 7,
                   "labels": [{"value": 3, "name": "nodule", "color": [255, 160, 0]}],
                   "min_finding_mm3": 0.0, "detections": {"nms_iou": 0.5}},
        "postprocessing": [],
    }


def _ellipsoid_oracle(at: tuple[int, int, int], half_t: tuple[int, int, int],
                      orientation: str = "RAS") -> np.ndarray:
    """The source voxels inside the ellipsoid inscribed in a box of ``2·half + 1`` model
    voxels around ``at`` (tensor axes = orientation letters, axis order ijk; model spacing
    along an axis = the spacing of the source axis parallel to it)."""
    affine = _affine()
    idx = np.indices(SHAPE).reshape(3, -1).T
    d = (idx - np.asarray(at)) @ affine[:3, :3].T
    q = np.zeros(len(idx))
    for t, letter in enumerate(orientation):
        u = np.asarray(LETTERS[letter], dtype=float)
        side_mm = (2 * half_t[t] + 1) * SPACING[int(np.argmax(np.abs(COLUMNS.T @ u)))]
        q += ((d @ u) / (side_mm / 2.0)) ** 2
    return (q <= 1.0 + 1e-9).reshape(SHAPE)


def _detector_image() -> np.ndarray:
    image = np.zeros(SHAPE)
    for at, value in DETECTOR_AT.items():
        image[at] = value
    return image


def test_overlapping_detector_ellipsoids_each_keep_their_whole_mask(
        tmp_path: Path, make_pack: Any, models: dict[str, Any]) -> None:
    from app.runs import record_run

    pack = make_pack(models["detector"](HALF), **_detector_manifest())
    result = run(_volume(_detector_image()), pack, threads=1)
    (at1, at2) = DETECTOR_AT
    want = {1: _ellipsoid_oracle(at1, HALF), 2: _ellipsoid_oracle(at2, HALF)}
    assert (want[1] & want[2]).sum() > 0  # they overlap: one label map cannot hold both
    assert [round(f.max_score, 3) for f in result.findings] == [0.9, 0.8]
    np.testing.assert_allclose(result.findings[1].centroid_index, at2, atol=1e-6)
    # The label map shows the union; the better box wins the shared voxels.
    np.testing.assert_array_equal(result.label_map.array == 3, want[1] | want[2])
    own = _own_masks(result)
    for n in (1, 2):
        np.testing.assert_array_equal(own[n], want[n])
        assert result.findings[n - 1].voxel_count == int(want[n].sum())

    library, series_id = _library(tmp_path)
    try:
        stored = _stored_masks(library, record_run(library, series_id, result, actor="t"))
        for n in (1, 2):
            np.testing.assert_array_equal(stored[n], want[n])
    finally:
        library.close()


@pytest.mark.parametrize("tilted", [False, True])
def test_on_a_resampled_model_grid_a_box_mask_is_what_the_label_map_shows(
        make_pack: Any, models: dict[str, Any], tilted: bool) -> None:
    """Model grid 1.7 mm isotropic (resampled, not a permutation; from a tilted source
    too): the finding's mask is exactly the label map's voxels of it, brought back the
    same way (nearest)."""
    image = np.zeros(SHAPE)
    image[9:12, 10:15, 12:17] = 0.9  # a blob: one voxel would blur below min_score
    manifest = _detector_manifest(spacing_mm=[1.7, 1.7, 1.7])
    manifest["output"]["detections"] = {"nms_iou": 0.05}  # tiles' boxes on the blob: one
    pack = make_pack(models["detector"]((2, 1, 3)), **manifest)
    vol = _volume(image, _tilted() if tilted else None)
    assert geometry.is_orthogonal(vol.affine) is not tilted
    result = run(vol, pack, threads=1)
    assert len(result.findings) == 1
    own = _own_masks(result)[1]
    assert own.sum() > 10
    np.testing.assert_array_equal(own, result.label_map.array == 3)
    assert result.findings[0].voxel_count == int(own.sum())


# -- (c) through the worker process ----------------------------------------------------

def test_the_worker_hands_back_the_same_masks_and_they_record(
        tmp_path: Path, make_pack: Any, models: dict[str, Any]) -> None:
    from app.runs import record_run

    pack = make_pack(models["detector"](HALF), **_detector_manifest())
    vol = _volume(_detector_image())
    job = InferenceJob.start(vol, pack, JobOptions(threads=1), work_dir=tmp_path / "cache")
    res = job.result(timeout=120)
    direct = run(vol, pack, threads=1)
    assert res.finding_masks is not None and direct.finding_masks is not None
    assert sorted(res.finding_masks) == sorted(direct.finding_masks) == [1, 2]
    for n, mask in direct.finding_masks.items():
        assert res.finding_masks[n].offset == mask.offset
        np.testing.assert_array_equal(res.finding_masks[n].array, mask.array)
    library, series_id = _library(tmp_path)
    try:
        stored = _stored_masks(library, record_run(library, series_id, res, actor="t"))
        (at1, at2) = DETECTOR_AT
        np.testing.assert_array_equal(stored[1], _ellipsoid_oracle(at1, HALF))
        np.testing.assert_array_equal(stored[2], _ellipsoid_oracle(at2, HALF))
    finally:
        library.close()


# -- results without masks, and the transport format ------------------------------------

def test_a_result_without_masks_is_refused_with_the_reason_and_records_nothing(
        tmp_path: Path, make_pack: Any, models: dict[str, Any]) -> None:
    from app.runs import record_run

    a, b = _corner_regions()
    full = run(_volume(np.where(a | b, 0.9, 0.0)), _segmentation_pack(make_pack, models),
               threads=1)
    bare = InferenceResult(full.label_map, full.heatmap, list(full.findings), full.provenance)
    library, series_id = _library(tmp_path)
    try:
        with pytest.raises(StoreError, match="carries no finding masks"):
            record_run(library, series_id, bare, actor="t")
        assert full.finding_masks is not None
        wrong = InferenceResult(full.label_map, full.heatmap, list(full.findings),
                                full.provenance, finding_masks={1: full.finding_masks[2]})
        with pytest.raises(StoreError, match="does not fit it"):
            record_run(library, series_id, wrong, actor="t")
        assert library.model_runs() == []
    finally:
        library.close()


def test_masks_survive_the_transport_arrays_exactly() -> None:
    rng = np.random.default_rng(16)
    masks = {3: FindingMask((1, 2, 3), rng.random((4, 5, 6)) > 0.5),
             7: FindingMask((0, 0, 0), np.ones((1, 1, 2), dtype=bool)),
             9: FindingMask((5, 6, 7), np.zeros((0, 0, 0), dtype=bool))}
    back = from_arrays(to_arrays(masks))
    assert sorted(back) == [3, 7, 9]
    for key, mask in masks.items():
        assert back[key].offset == mask.offset
        assert back[key].array.dtype == np.bool_
        np.testing.assert_array_equal(back[key].array, mask.array)
    carried = Findings([], masks)
    assert carried == [] and carried.masks == masks
    assert masks[7].voxel_count == 2 and masks[9].voxel_count == 0
