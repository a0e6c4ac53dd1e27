"""Detector packs: boxes from a real ONNX detector → de-duplicated findings in LPS.

The detector (``conftest.detector_model``) puts one box around the brightest
voxel of each input it sees, so the expected findings follow from the phantom
alone. The oracle below never uses Lucida's grids: it projects each source
voxel's LPS offset from the lesion onto the model axes the manifest names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.errors import InferenceError, ModelPackError
from core.volume import Label, LabelMap, Volume
from inference import run
from inference.detections import Boxes, non_max_suppression
from inference.manifest import parse_manifest

# Source grid: columns k, j, i in LPS — permuted and flipped, anisotropic, odd origin.
COLUMNS = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
SPACING = (2.5, 0.8, 1.1)
SHAPE = (20, 24, 28)
LETTERS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
           "S": (0, 0, 1), "I": (0, 0, -1)}


def _volume(blobs: dict[tuple[int, int, int], float]) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = COLUMNS * np.asarray(SPACING)
    affine[:3, 3] = (-31.0, 12.5, 40.25)
    arr = np.zeros(SHAPE, dtype=np.float32)
    for at, value in blobs.items():
        arr[at] = value
    return Volume(arr, affine, series_uid="1.2.3.4", modality="CT")


def _manifest(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input": {"orientation": "RAS", "axis_order": "ijk", "spacing_mm": "native",
                  "normalization": {"kind": "none"}},
        "tiling": {"mode": "sliding", "patch_size": [12, 12, 12], "overlap": 0.5,
                   "batch_size": 1},
        "output": {"kind": "detections", "channels": 7,
                   "labels": [{"value": 3, "name": "nodule", "color": [255, 160, 0]}],
                   "min_finding_mm3": 0.0},
        "postprocessing": [],
    }
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


def _oracle(vol: Volume, at: tuple[int, int, int], half_t: tuple[int, int, int],
            orientation: str) -> tuple[np.ndarray, float, float]:
    """(voxels inside the inscribed ellipsoid, box volume as ellipsoid mm³, longest side)
    for a box of ``half_t`` voxels around ``at``, along tensor axes = orientation letters
    (axis_order ijk). Model spacing along an axis = the source spacing of the source axis
    parallel to it."""
    idx = np.indices(SHAPE).reshape(3, -1).T
    lps = idx @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    d = lps - (np.asarray(at) @ vol.affine[:3, :3].T + vol.affine[:3, 3])
    q = np.zeros(len(idx))
    sides = []
    for t, letter in enumerate(orientation):
        u = np.asarray(LETTERS[letter], dtype=float)
        src_axis = int(np.argmax(np.abs(COLUMNS.T @ u)))
        side_mm = (2 * half_t[t] + 1) * SPACING[src_axis]
        sides.append(side_mm)
        q += ((d @ u) / (side_mm / 2.0)) ** 2
    inside = (q <= 1.0 + 1e-9).reshape(SHAPE)
    return inside, math.pi / 6.0 * float(np.prod(sides)), max(sides)


@pytest.mark.parametrize("orientation,axis_order", [("RAS", "ijk"), ("LPS", "kji"),
                                                     ("PIL", "ijk")])
def test_one_lesion_seen_by_many_tiles_is_one_finding_at_its_lps_point(
        make_pack: Any, models: dict[str, Any], orientation: str, axis_order: str) -> None:
    at = (13, 5, 21)
    half = (1, 2, 3)
    vol = _volume({at: 0.9})
    pack = make_pack(models["detector"](half), **_manifest(
        input={"orientation": orientation, "axis_order": axis_order}))
    res = run(vol, pack, threads=1)
    # 12³ tiles at 50 % overlap: the lesion lies in several tiles, NMS keeps one box.
    assert len(res.findings) == 1
    f = res.findings[0]
    assert (f.label_value, f.label_name, f.id, f.series_uid) == (3, "nodule", 1, "1.2.3.4")
    want_lps = np.asarray(at) @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    np.testing.assert_allclose(f.centroid_lps, want_lps, atol=1e-6)
    np.testing.assert_allclose(f.centroid_index, at, atol=1e-6)
    assert f.max_score == pytest.approx(0.9) and f.mean_score == pytest.approx(0.9)
    # The box's half sizes are along tensor axes; order them as the oracle needs (ijk).
    half_ijk = half if axis_order == "ijk" else half[::-1]
    inside, volume_mm3, longest = _oracle(vol, at, half_ijk, orientation)
    assert f.volume_mm3 == pytest.approx(volume_mm3)
    assert f.longest_diameter_mm == pytest.approx(longest)
    np.testing.assert_array_equal(res.label_map.array == 3, inside)
    assert f.voxel_count == int(inside.sum())
    nz = np.argwhere(inside)
    lo, hi = nz.min(axis=0), nz.max(axis=0)
    assert f.bbox_index == (tuple(lo), tuple(hi))
    assert res.heatmap is not None
    assert res.heatmap.array[at] == pytest.approx(0.9)
    assert res.heatmap.array[res.label_map.array == 0].max() == 0.0


def test_findings_come_best_first_and_min_score_drops_the_weak(
        make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume({(3, 4, 5): 0.7, (16, 19, 22): 0.95})
    pack = make_pack(models["detector"](), **_manifest())
    res = run(vol, pack, threads=1)
    assert [round(f.max_score, 3) for f in res.findings] == [0.95, 0.7]
    assert [f.id for f in res.findings] == [1, 2]
    np.testing.assert_allclose(res.findings[1].centroid_index, (3, 4, 5), atol=1e-6)
    strict = make_pack(models["detector"](), **_manifest(
        output={**_manifest()["output"], "detections": {"min_score": 0.8}}))
    assert [round(f.max_score, 3) for f in run(vol, strict, threads=1).findings] == [0.95]


def test_whole_image_mode_finds_the_same_lesion(make_pack: Any,
                                                models: dict[str, Any]) -> None:
    at = (2, 22, 1)  # near corners: boxes are clipped to the volume
    vol = _volume({at: 0.8})
    tiled = run(vol, make_pack(models["detector"]((2, 2, 2)), **_manifest()), threads=1)
    whole = run(vol, make_pack(models["detector"]((2, 2, 2)), **_manifest(
        tiling={"mode": "whole", "divisible_by": 8, "patch_size": None})), threads=1)
    assert len(tiled.findings) == len(whole.findings) == 1
    assert tiled.findings[0] == whole.findings[0]
    (k0, j0, i0), (k1, j1, i1) = whole.findings[0].bbox_index
    assert 0 <= k0 <= at[0] <= k1 < SHAPE[0] and 0 <= j0 <= at[1] <= j1 < SHAPE[1]
    assert 0 <= i0 <= at[2] <= i1 < SHAPE[2]


def test_class_column_picks_the_label_and_mask_by_keeps_boxes_inside(
        make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume({(4, 4, 4): 0.9, (15, 18, 22): 0.85})
    labels = [{"value": 1, "name": "benign", "channel": 0},
              {"value": 2, "name": "suspicious", "channel": 1}]
    out = {"kind": "detections", "channels": 8, "labels": labels,
           "detections": {"class_column": 7}}
    res = run(vol, make_pack(models["detector"](cls=1), **_manifest(output=out)), threads=1)
    assert {(f.label_value, f.label_name) for f in res.findings} == {(2, "suspicious")}
    assert set(np.unique(res.label_map.array)) == {0, 2}

    lung = np.zeros(SHAPE, dtype=np.uint8)
    lung[12:, 14:, 18:] = 1  # holds the second lesion only
    masks = {"lung": LabelMap(lung, vol.affine.copy(), [Label(1, "lung")])}
    masked = make_pack(models["detector"](cls=1), **_manifest(
        output=out, postprocessing=[{"step": "mask_by", "model": "lung"}]))
    kept = run(vol, masked, threads=1, masks=masks).findings
    assert len(kept) == 1
    np.testing.assert_allclose(kept[0].centroid_index, (15, 18, 22), atol=1e-6)


def test_nms_suppresses_overlaps_of_one_class_only() -> None:
    corners = np.array([[0, 0, 0, 4, 4, 4], [0, 0, 1, 4, 4, 5], [0, 0, 1, 4, 4, 5],
                        [10, 10, 10, 12, 12, 12]], dtype=float)
    boxes = Boxes(corners, np.array([0.6, 0.9, 0.8, 0.7]), np.array([0, 0, 1, 0]))
    kept = non_max_suppression(boxes, iou=0.5, max_keep=10)
    # IoU(box0, box1) = 48 / 80 = 0.6 > 0.5: box0 goes; box2 is another class; box3 is apart.
    assert kept.scores.tolist() == [0.9, 0.8, 0.7]
    assert non_max_suppression(boxes, iou=0.65, max_keep=10).scores.tolist() == [
        0.9, 0.8, 0.7, 0.6]
    assert non_max_suppression(boxes, iou=0.5, max_keep=2).scores.tolist() == [0.9, 0.8]


def test_bad_detector_outputs_are_clear_errors(make_pack: Any,
                                               models: dict[str, Any]) -> None:
    vol = _volume({(5, 5, 5): 0.9})
    eight = make_pack(models["detector"](columns=8), **_manifest())
    with pytest.raises((ModelPackError, InferenceError), match=r"\[N, 7\]"):
        run(vol, eight, threads=1)
    unlabelled = make_pack(models["detector"](cls=4), **_manifest(
        output={**_manifest()["output"], "channels": 8, "detections": {"class_column": 7},
                "labels": [{"value": 1, "name": "a", "channel": 0}]}))
    with pytest.raises(InferenceError, match="class 4, which has no label"):
        run(vol, unlabelled, threads=1)
    with pytest.raises(InferenceError, match="NaN or infinite box"):
        run(vol, make_pack(models["detector"](nan_score=True), **_manifest()), threads=1)
    inverted = make_pack(models["detector"]((-2, 0, 0)), **_manifest())
    with pytest.raises(InferenceError, match="maximum corner is below its minimum"):
        run(vol, inverted, threads=1)


@pytest.mark.parametrize("change,field", [
    ({"output": {"channels": 6}}, "at least 7 columns"),
    ({"output": {"detections": {"score_column": 9}}}, "score_column 9 is beyond"),
    ({"output": {"activation": "softmax"}}, "activation 'none' or 'sigmoid'"),
    ({"postprocessing": [{"step": "argmax"}]}, "only 'mask_by'"),
    ({"tiling": {"mode": "valid", "output_margin": [1, 1, 1]}}, "not 'valid'"),
])
def test_detector_manifest_mistakes_are_named(pack_tools: dict[str, Any],
                                              change: dict[str, Any], field: str) -> None:
    m = pack_tools["base_manifest"](**_manifest())
    for key, value in change.items():
        m[key] = {**m[key], **value} if isinstance(value, dict) else value
    m["files"] = [{"path": "model.onnx", "sha256": "0" * 64}]
    with pytest.raises(ModelPackError, match=field):
        parse_manifest(m)


def test_detections_block_on_a_segmentation_output_is_refused(
        pack_tools: dict[str, Any]) -> None:
    m = pack_tools["base_manifest"]()
    m["output"] = {**m["output"], "detections": {"min_score": 0.3}}
    m["files"] = [{"path": "model.onnx", "sha256": "0" * 64}]
    with pytest.raises(ModelPackError, match="only for output kind 'detections'"):
        parse_manifest(m)
