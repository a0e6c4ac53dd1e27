"""inference.run end to end with small real ONNX models: geometry, findings, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import CancelledError, InferenceError, ModelPackError
from core.volume import LabelMap, Volume
from inference import run
from inference.pack import ModelPack


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _volume(shape: tuple[int, int, int], spacing_kji: tuple[float, float, float],
            columns_kji: np.ndarray, origin: tuple[float, float, float] = (-20.0, 13.0, 40.0),
            fill: float = 0.0) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = columns_kji * np.asarray(spacing_kji)
    affine[:3, 3] = origin
    return Volume(np.full(shape, fill, dtype=np.float32), affine, series_uid="1.2.3",
                  modality="CT")


FLIPPED = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=float)  # k→-z? no: columns k, j, i
OBLIQUE = _rotation(np.array([0.3, -0.5, 0.8]), 0.35) @ FLIPPED


@pytest.mark.parametrize("orientation", ["RAS", "LIA", "LPS", "PIL"])
@pytest.mark.parametrize("axis_order", ["kji", "ijk"])
def test_flipped_volume_exact_round_trip(make_pack: Any, models: dict[str, Any],
                                         orientation: str, axis_order: str) -> None:
    vol = _volume((12, 17, 9), (2.5, 0.8, 1.1), FLIPPED)
    rng = np.random.default_rng(0)
    vol.array[:] = rng.uniform(size=vol.shape)
    pack = make_pack(models["identity"](), input={"orientation": orientation,
                                                  "axis_order": axis_order})
    res = run(vol, pack, threads=1)
    assert res.provenance["parameters"]["exact_reorientation"] is True
    assert res.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, vol.array, atol=1e-6)
    np.testing.assert_array_equal(res.label_map.array, (vol.array >= 0.5).astype(np.uint8))
    np.testing.assert_array_equal(res.label_map.affine, vol.affine)


@pytest.mark.parametrize(("orientation", "spacing"), [
    ("RAS", [1.0, 1.0, 1.0]), ("LIA", [0.9, 1.2, 1.0]), ("LPS", "native")])
def test_label_at_known_lps_point_returns_to_same_voxel(
        make_pack: Any, models: dict[str, Any], orientation: str, spacing: Any) -> None:
    vol = _volume((20, 24, 22), (1.5, 0.9, 1.1), OBLIQUE)
    centre = (9, 13, 8)
    vol.array[centre[0] - 1:centre[0] + 2, centre[1] - 1:centre[1] + 2,
              centre[2] - 1:centre[2] + 2] = 1.0
    point = vol.index_to_lps(centre)
    pack = make_pack(models["identity"](), input={"orientation": orientation,
                                                  "spacing_mm": spacing},
                     tiling={"patch_size": [16, 16, 16]})
    res = run(vol, pack, threads=1)
    assert res.provenance["parameters"]["exact_reorientation"] is False
    assert res.label_map.array[centre] == 1
    assert len(res.findings) == 1
    f = res.findings[0]
    assert np.linalg.norm(np.asarray(f.centroid_lps) - point) < 0.75
    assert np.allclose(vol.lps_to_index(f.centroid_lps), f.centroid_index, atol=1e-6)
    assert tuple(np.rint(f.centroid_index).astype(int)) == centre


def test_anisotropic_spacing_resampled_to_isotropic(make_pack: Any,
                                                    models: dict[str, Any]) -> None:
    vol = _volume((10, 30, 30), (4.0, 0.7, 0.7), np.eye(3))
    vol.array[4:7, 10:20, 12:22] = 1.0
    pack = make_pack(models["identity"](), input={"spacing_mm": [1.4, 1.4, 2.0]},
                     tiling={"patch_size": [8, 8, 8], "overlap": 0.5})
    res = run(vol, pack, threads=1)
    assert res.provenance["parameters"]["model_grid_shape"] == [11, 15, 26]
    inside = res.label_map.array[5, 12:18, 14:20]
    assert inside.all()
    assert res.label_map.array[0].sum() == 0 and res.label_map.array[:, :5].sum() == 0
    (f,) = res.findings
    assert f.volume_mm3 == pytest.approx(3 * 10 * 10 * 4.0 * 0.49, rel=0.35)


def test_findings_measurements(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((20, 20, 20), (2.0, 1.0, 0.5), np.eye(3), origin=(0.0, 0.0, 0.0))
    vol.array[2:5, 3:6, 4:10] = 0.9   # 3*3*6 voxels, 1 mm3 each
    vol.array[12, 12, 12] = 0.7       # one voxel
    pack = make_pack(models["identity"]())
    res = run(vol, pack, threads=1)
    big, small = res.findings
    assert big.voxel_count == 54 and big.volume_mm3 == pytest.approx(54.0)
    assert big.bbox_index == ((2, 3, 4), (4, 5, 9))
    assert big.centroid_index == pytest.approx((3.0, 4.0, 6.5))
    # Affine columns (k, j, i) are x*2, y*1, z*0.5 here: LPS = (2k, j, 0.5 i).
    assert big.centroid_lps == pytest.approx((6.0, 4.0, 3.25))
    assert big.longest_diameter_mm == pytest.approx(np.sqrt(4.0**2 + 2.0**2 + 2.5**2))
    assert big.max_score == pytest.approx(0.9) and big.mean_score == pytest.approx(0.9)
    assert small.voxel_count == 1 and small.longest_diameter_mm == 0.0
    assert small.max_score == pytest.approx(0.7)


def test_two_class_softmax_argmax_and_heatmap(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((16, 16, 16), (1.0, 1.0, 1.0), np.eye(3))
    vol.array[:] = np.linspace(-1000, 1000, 16)[None, None, :]
    pack = make_pack(models["two_class"](0.0, 0.01), output={
        "kind": "segmentation_logits", "activation": "softmax", "channels": 2,
        "labels": [{"value": 1, "name": "dense"}], "heatmap_channel": "foreground"},
        postprocessing=[{"step": "argmax"}, {"step": "connected_components"}])
    res = run(vol, pack, threads=1)
    expected = 1.0 / (1.0 + np.exp(-2 * 0.01 * vol.array))
    assert res.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, expected, atol=1e-5)
    np.testing.assert_array_equal(res.label_map.array, (vol.array > 0).astype(np.uint8))
    assert [f.voxel_count for f in res.findings] == [16 * 16 * 8]




def test_mask_by_other_model(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3), fill=1.0)
    other = np.zeros(vol.shape, np.uint8)
    other[2:5, 2:5, 2:5] = 3
    pack = make_pack(models["identity"](), postprocessing=[
        {"step": "threshold"}, {"step": "mask_by", "model": "lungs", "labels": [3]},
        {"step": "connected_components"}])
    with pytest.raises(InferenceError, match="lungs"):
        run(vol, pack, threads=1)
    res = run(vol, pack, threads=1,
              masks={"lungs": LabelMap(other, vol.affine, labels=[])})
    np.testing.assert_array_equal(res.label_map.array, (other == 3).astype(np.uint8))
    assert [f.voxel_count for f in res.findings] == [27]


def test_keep_largest_and_fill_holes(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((12, 12, 12), (1.0, 1.0, 1.0), np.eye(3))
    vol.array[1:8, 1:8, 1:8] = 1.0
    vol.array[4, 4, 4] = 0.0   # a hole
    vol.array[10, 10, 10] = 1.0  # a speck
    pack = make_pack(models["identity"](), postprocessing=[
        {"step": "threshold"}, {"step": "keep_largest_component"}, {"step": "fill_holes"},
        {"step": "connected_components"}])
    res = run(vol, pack, threads=1)
    assert [f.voxel_count for f in res.findings] == [343]


def test_nan_output_is_a_clear_error(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3))
    with pytest.raises(InferenceError, match="NaN"):
        run(vol, make_pack(models["nan"]()), threads=1)


def test_wrong_input_rank_is_a_clear_error(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3))
    with pytest.raises(ModelPackError, match="rank 4"):
        run(vol, make_pack(models["rank4"]()), threads=1)


def test_corrupt_onnx_is_a_clear_error(make_pack: Any) -> None:
    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3))
    with pytest.raises(ModelPackError, match=r"model\.onnx.*(corrupt|could not be loaded)"):
        run(vol, make_pack(b"\x08\x07this is not an onnx file" * 10), threads=1)


def test_hash_mismatch_names_the_file(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3))
    folder = make_pack(models["identity"]())
    (folder / "model.onnx").write_bytes(models["scale"](3.0))
    with pytest.raises(ModelPackError, match=r"model\.onnx has sha256"):
        run(vol, folder, threads=1)


def test_memory_estimate_refuses_impossible_request(make_pack: Any,
                                                    models: dict[str, Any]) -> None:
    vol = _volume((64, 64, 64), (1.0, 1.0, 1.0), np.eye(3))
    pack = make_pack(models["identity"](), input={"spacing_mm": [0.01, 0.01, 0.01]})
    with pytest.raises(InferenceError, match="not enough memory"):
        run(vol, pack, threads=1)


def test_memory_plan_reduces_tile_batch(make_pack: Any,
                                                  models: dict[str, Any]) -> None:
    vol = _volume((40, 40, 40), (1.0, 1.0, 1.0), np.eye(3))
    vol.array[:] = np.random.default_rng(1).uniform(size=vol.shape)
    pack = make_pack(models["identity"](), tiling={"patch_size": [32, 32, 32],
                                                   "batch_size": 8})
    res = run(vol, pack, threads=1, memory_limit_bytes=25 << 20)
    params = res.provenance["parameters"]
    assert params["tile_batch"] == 2
    assert any("batch reduced" in n for n in res.notices)
    assert res.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, vol.array, atol=2e-3)


def test_cancel_mid_run(make_pack: Any, models: dict[str, Any], cancel_after: Any) -> None:
    vol = _volume((40, 40, 40), (1.0, 1.0, 1.0), np.eye(3))
    pack = make_pack(models["identity"](), tiling={"patch_size": [8, 8, 8], "batch_size": 1})
    token, progress, seen = cancel_after(5)
    with pytest.raises(CancelledError):
        run(vol, pack, threads=1, progress=progress, cancel=token)
    assert 5 <= len(seen) < 10


def test_provenance_records_model_runtime_and_timings(make_pack: Any,
                                                      models: dict[str, Any]) -> None:
    import onnxruntime

    vol = _volume((10, 10, 10), (1.0, 1.0, 1.0), np.eye(3))
    folder = make_pack(models["identity"]())
    res = run(vol, folder, threads=1, request_id="req-1")
    p = res.provenance
    assert p["request_id"] == "req-1"
    assert p["model"]["id"] == "test-model" and p["model"]["version"] == "1.0.0"
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    assert p["model"]["files"] == {"model.onnx": digest}
    assert p["onnxruntime_version"] == onnxruntime.__version__
    assert p["provider"] == "CPUExecutionProvider"
    assert set(p["timings_s"]) == {"preprocess", "network", "postprocess", "total"}
    json.dumps(p)  # plain data
    assert ModelPack.open(folder).manifest.id == "test-model"


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_caller_volume_is_not_modified(make_pack: Any, models: dict[str, Any],
                                       orientation: str) -> None:
    vol = _volume((10, 12, 14), (1.0, 1.0, 1.0), np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0.0]]))
    vol.array[:] = np.random.default_rng(5).uniform(-1000, 1000, size=vol.shape)
    before = vol.array.copy()
    pack = make_pack(models["identity"](), input={
        "orientation": orientation,
        "normalization": {"kind": "hu_window", "low": -500, "high": 500}})
    res = run(vol, pack, threads=1)
    np.testing.assert_array_equal(vol.array, before)
    assert res.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, np.clip((before + 500) / 1000, 0, 1),
                               atol=1e-6)


def test_ensemble_members_are_averaged_with_weights(tmp_path: Path, models: dict[str, Any],
                                                    pack_tools: dict[str, Any]) -> None:
    manifest = pack_tools["base_manifest"](ensemble={"combine": "mean", "weights": [3.0, 1.0]})
    folder = pack_tools["write_pack"](tmp_path / "ens", manifest, {
        "a.onnx": models["scale"](0.2), "b.onnx": models["scale"](1.0)})
    vol = _volume((9, 10, 11), (1.0, 1.0, 1.0), np.eye(3))
    vol.array[:] = np.random.default_rng(3).uniform(size=vol.shape)
    res = run(vol, folder, threads=1)
    assert res.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, vol.array * (3 * 0.2 + 1.0) / 4, atol=1e-6)
    assert set(res.provenance["model"]["files"]) == {"a.onnx", "b.onnx"}


def test_unavailable_gpu_provider_falls_back_to_cpu_with_notice(
        make_pack: Any, models: dict[str, Any]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA compiled in")
    vol = _volume((8, 8, 8), (1.0, 1.0, 1.0), np.eye(3))
    res = run(vol, make_pack(models["identity"]()), providers="cuda", threads=2)
    assert res.provenance["provider"] == "CPUExecutionProvider"
    assert res.provenance["providers_requested"] == ["CUDAExecutionProvider",
                                                     "CPUExecutionProvider"]
    assert res.provenance["threads"] == 2
    assert any("CUDA" in n and "CPU" in n for n in res.notices)


def test_unknown_provider_is_refused(make_pack: Any, models: dict[str, Any]) -> None:
    vol = _volume((8, 8, 8), (1.0, 1.0, 1.0), np.eye(3))
    with pytest.raises(InferenceError, match="unknown execution provider 'warp-drive'"):
        run(vol, make_pack(models["identity"]()), providers="warp-drive")


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 0.7, 0.7), (0.5, 2.0, 3.3)])
@pytest.mark.parametrize("patch", [[4, 4, 4], [8, 16, 6], [32, 32, 32]])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_identity_pipeline_is_exact_for_any_spacing_and_tiling(
        make_pack: Any, models: dict[str, Any], spacing: tuple[float, float, float],
        patch: list[int], overlap: float) -> None:
    vol = _volume((11, 19, 14), spacing, FLIPPED)
    vol.array[:] = np.random.default_rng(9).uniform(size=vol.shape)
    pack = make_pack(models["identity"](), input={"orientation": "RAS"},
                     tiling={"patch_size": patch, "overlap": overlap})
    res = run(vol, pack, threads=1)
    assert res.heatmap is not None
    assert not np.shares_memory(res.heatmap.array, vol.array)
    np.testing.assert_allclose(res.heatmap.array, vol.array, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_channel_argmax_equals_numpy_argmax_including_ties(channels: int, dtype: Any) -> None:
    from inference.pipeline import _argmax_channels

    scores = np.random.default_rng(channels).integers(0, 4, size=(channels, 7, 9, 11))
    scores = scores.astype(dtype)  # small integers: many exact ties, first channel must win
    index = _argmax_channels(scores)
    assert index.dtype == np.uint8
    np.testing.assert_array_equal(index, np.argmax(scores, axis=0))


def test_channel_argmax_beyond_255_channels_uses_a_wider_index() -> None:
    from inference.pipeline import _argmax_channels

    scores = np.random.default_rng(4).normal(size=(300, 3, 4, 5)).astype(np.float32)
    scores[299, 0, 0, 0] = 100.0  # the last channel must come out as 299, not 299 % 256
    index = _argmax_channels(scores)
    assert index.dtype == np.uint16 and index[0, 0, 0] == 299
    np.testing.assert_array_equal(index, np.argmax(scores, axis=0))


def test_whole_volume_passes_do_not_depend_on_the_thread_count() -> None:
    from inference.pipeline import _slabs, _softmax_inplace

    logits = np.random.default_rng(6).normal(size=(3, 37, 6, 5)).astype(np.float32)
    one, three = logits.copy(), logits.copy()
    _softmax_inplace(one, threads=1)
    _softmax_inplace(three, threads=3)
    np.testing.assert_array_equal(three, one)
    e = np.exp(logits - logits.max(axis=0))
    np.testing.assert_allclose(one, e / e.sum(axis=0), rtol=1e-6)

    def fail(part: slice) -> None:
        if part.start >= 16:
            raise ValueError("slab failed")

    with pytest.raises(ValueError, match="slab failed"):
        _slabs(37, fail, threads=2)


@pytest.mark.parametrize(("tiling", "shape", "lanes"), [
    ({"mode": "whole"}, (20, 18, 16), 1),  # one network call: both threads on it
    ({"patch_size": [32, 32, 32]}, (20, 18, 16), 1),  # the volume fits one tile
    ({"patch_size": [32, 32, 32], "batch_size": 8}, (40, 36, 16), 1),  # one batch of 4
    ({"patch_size": [8, 8, 8], "batch_size": 1}, (20, 18, 16), 2),  # many tiles: two lanes
])
def test_threads_go_where_the_tiles_are(make_pack: Any, models: dict[str, Any],
                                        tiling: dict[str, Any], shape: tuple[int, int, int],
                                        lanes: int) -> None:
    """A second tile lane only helps when there is a second tile batch to run; a single
    network call with one intra-op thread left the other core idle (deepbet ran at
    half speed)."""
    vol = _volume(shape, (1.0, 1.0, 1.0), np.eye(3))
    res = run(vol, make_pack(models["identity"](), tiling=tiling), threads=2)
    p = res.provenance
    assert (p["tiles_in_flight"], p["threads_per_tile"]) == (lanes, 2 // lanes)


def test_mask_by_model_is_run_first_when_its_pack_is_given(make_pack: Any,
                                                           models: dict[str, Any],
                                                           pack_tools: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """The masking model (id "lungs") runs on the same volume before the main one, and the
    result equals passing its label map by hand; its identity is in the provenance."""
    from inference.registry import mask_packs

    arr = np.zeros((12, 10, 9), np.float32)
    arr[2:6, 3:7, 1:4] = 1.0  # inside the "lungs" (an asymmetric block)
    arr[8:10, 1:3, 6:8] = 1.0  # outside them: masked away
    vol = Volume(arr, np.diag([0.9, 1.1, 1.3, 1.0]), series_uid="1.2.3", modality="CT")
    lung_manifest = pack_tools["base_manifest"](id="lungs", postprocessing=[
        {"step": "threshold"}])
    lungs_arr = np.zeros_like(arr)
    lungs_arr[1:7, 2:8, 0:5] = 1.0
    lungs = pack_tools["write_pack"](tmp_path / "lungs", lung_manifest,
                                     {"model.onnx": models["identity"]()})
    main = make_pack(models["identity"](), postprocessing=[
        {"step": "threshold"}, {"step": "mask_by", "model": "lungs", "labels": [1]},
        {"step": "connected_components"}])
    lung_vol = Volume(lungs_arr, vol.affine, series_uid="1.2.3", modality="CT")
    by_hand = run(vol, main, threads=1, masks={"lungs": run(lung_vol, lungs, threads=1)
                                               .label_map})
    # Run first on the SAME volume: only voxels that are 1 in both survive.
    seen: list[tuple[float, str]] = []
    first = run(vol, main, threads=1, mask_packs={"lungs": lungs},
                progress=lambda f, msg: seen.append((f, msg)))
    np.testing.assert_array_equal(first.label_map.array, (arr > 0.5).astype(np.uint8))
    # The bar moves while the mask model runs (its steps named), then the main model's
    # steps fill the rest; it never goes back.
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    mask_steps = [(f, msg) for f, msg in seen if msg.startswith("lungs: ")]
    assert len(mask_steps) >= 3 and all(0.0 < f <= 0.25 for f, _ in mask_steps)
    assert any(0.25 < f < 1.0 and not msg.startswith("lungs") for f, msg in seen)
    assert [f.voxel_count for f in first.findings] == [4 * 4 * 3, 2 * 2 * 2]
    assert [f.voxel_count for f in by_hand.findings] == [4 * 4 * 3]
    prov = first.provenance["masks_from"]["lungs"]
    assert prov["id"] == "lungs" and set(prov["files"]) == {"model.onnx"}

    from inference.pack import ModelPack

    main_m = ModelPack.open(main).manifest
    assert mask_packs(main_m, [ModelPack.open(lungs)]) == {"lungs": str(lungs)}
    with pytest.raises(ModelPackError, match="'lungs', which is not installed"):
        mask_packs(main_m, [])


def test_crop_to_runs_the_network_only_in_the_other_models_box(
        make_pack: Any, models: dict[str, Any], pack_tools: dict[str, Any],
        tmp_path: Path) -> None:
    """input.crop_to: the box of the "lungs" labels, carried onto a model grid that is
    flipped and permuted against the source, grown by the margin; outside it the output
    is background, inside it equals the uncropped run."""
    rng = np.random.default_rng(4)
    arr = rng.uniform(0.0, 1.0, size=(14, 12, 10)).astype(np.float32)
    affine = np.eye(4)
    affine[:3, :3] = FLIPPED * np.array([1.5, 1.0, 1.0])  # source axes ≠ LPS model axes
    affine[:3, 3] = (5.0, -7.0, 3.0)
    vol = Volume(arr, affine, series_uid="1.2.3", modality="CT")
    lungs = np.zeros(arr.shape, np.uint8)
    lungs[3:6, 2:9, 4:7] = 1  # an asymmetric block on the source grid
    tiling = {"patch_size": [8, 8, 8], "overlap": 0.5, "blending": "constant"}
    whole = run(vol, make_pack(models["identity"](), tiling=tiling), threads=1)
    cropped_pack = make_pack(models["identity"](), tiling=tiling, input={
        "crop_to": {"model": "lungs", "labels": [1], "margin_mm": 1.0}})
    res = run(vol, cropped_pack, threads=1,
              masks={"lungs": LabelMap(lungs, affine, labels=[])})
    assert res.heatmap is not None and whole.heatmap is not None
    heat, ref = res.heatmap.array, whole.heatmap.array
    # The box on the source grid: the voxels whose centres lie within 1 mm of the block's
    # faces (the 1.5 mm axis gains one voxel a side, 0.75 mm away; the 1 mm axes one, 1 mm
    # away); model axes are the source axes permuted and flipped here.
    inside = np.zeros(arr.shape, bool)
    inside[2:7, 1:10, 3:8] = True
    # (identity network: other tile overlaps only change the blend's rounding)
    np.testing.assert_allclose(heat[inside], ref[inside], rtol=0, atol=1e-6)
    assert not heat[~inside].any()
    assert res.provenance["parameters"]["crop_box"]
    with pytest.raises(InferenceError, match=r"'lungs' \(input\.crop_to\)"):
        run(vol, cropped_pack, threads=1)
    with pytest.raises(InferenceError, match="found nothing"):
        run(vol, cropped_pack, threads=1,
            masks={"lungs": LabelMap(np.zeros_like(lungs), affine, labels=[])})


def test_min_score_is_the_operating_point(make_pack: Any, models: dict[str, Any]) -> None:
    """Two regions above the threshold: the one whose peak is below min_score is no
    finding and leaves the label map; the other keeps its full extent."""
    vol = _volume((12, 11, 10), (1.0, 1.0, 1.0), np.eye(3))
    vol.array[2:5, 2:6, 1:4] = 0.7
    vol.array[3, 4, 2] = 0.97  # its peak
    vol.array[7:10, 5:9, 5:9] = 0.8  # peak 0.8 < 0.9
    pack = make_pack(models["identity"](), postprocessing=[
        {"step": "threshold", "value": 0.5},
        {"step": "connected_components", "min_score": 0.9}])
    res = run(vol, pack, threads=1)
    assert [(f.voxel_count, round(f.max_score, 2)) for f in res.findings] == [(36, 0.97)]
    expected = np.zeros(vol.shape, np.uint8)
    expected[2:5, 2:6, 1:4] = 1
    np.testing.assert_array_equal(res.label_map.array, expected)
    no_cut = make_pack(models["identity"](), postprocessing=[
        {"step": "threshold", "value": 0.5}, {"step": "connected_components"}])
    assert len(run(vol, no_cut, threads=1).findings) == 2
