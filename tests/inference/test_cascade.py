"""Two-stage packs (``localizer``): nearest-exact resizing, deepbet's box rule, the
``closest`` grid, the normalisation chain, and a whole cascade through ``pipeline.run``
with real ONNX networks on an asymmetric phantom."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import ModelPackError
from core.volume import Volume
from inference import pipeline
from inference.cascade import box_from_mask, nearest_exact_index, resize_nearest_exact
from inference.manifest import InputSpec, parse_manifest
from inference.normalize import normalize
from inference.pack import ModelPack
from inference.spaces import from_model_grid, model_grid, to_model_grid


@pytest.mark.parametrize(("size_in", "size_out"), [(256, 128), (180, 256), (256, 180),
                                                   (7, 3), (3, 7), (211, 256)])
def test_nearest_exact_index_is_the_centre_rule(size_in: int, size_out: int) -> None:
    """Each output voxel takes the input voxel under its centre: floor((o + ½)·in/out),
    computed exactly with fractions; float32 (as PyTorch does it) agrees on these sizes."""
    exact = [min(int(Fraction(2 * o + 1, 2) * Fraction(size_in, size_out)), size_in - 1)
             for o in range(size_out)]
    assert nearest_exact_index(size_in, size_out).tolist() == exact


def test_resize_keeps_axes_apart() -> None:
    a = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    out = resize_nearest_exact(a, (2, 6, 16))
    assert out.shape == (2, 6, 16)
    np.testing.assert_array_equal(out, a[[1, 3]][:, :, np.repeat(np.arange(8), 2)])
    assert resize_nearest_exact(a, (4, 6, 8)) is not a  # always a new array


@pytest.mark.parametrize("shape", [(3, 5, 4), (9, 11, 13), (2, 14, 3)])
def test_resize_gives_the_same_voxels_shrinking_or_not_and_from_a_transposed_view(
        shape: tuple[int, int, int]) -> None:
    """Shrinking gathers the output in one step (fast on the model's transposed tensor);
    every path gives what the per-axis rule gives, channels kept apart."""
    rng = np.random.default_rng(3)
    a = rng.random((2, 6, 8, 10)).astype(np.float32)
    view = np.ascontiguousarray(a.transpose(0, 3, 2, 1)).transpose(0, 3, 2, 1)  # strided
    index = [nearest_exact_index(n_in, n_out) for n_in, n_out in
             zip(a.shape[1:], shape, strict=True)]
    expected = a[:, index[0]][:, :, index[1]][:, :, :, index[2]]
    for source in (a, view):
        out = resize_nearest_exact(source, shape)
        assert out.shape == (2, *shape)
        np.testing.assert_array_equal(out, expected)


def test_box_rule_on_an_asymmetric_mask() -> None:
    """deepbet's rule: planes with > 2 % inside, centre/size scaled by full/small, size
    × 1.2, rounded, int() of centre ± size/2, clipped. Worked by hand for this mask."""
    mask = np.zeros((16, 20, 24), dtype=bool)
    mask[3:9, 5:15, 2:20] = True  # 6 × 10 × 18 planes, every one far above 2 %
    mask[12, 0, 0] = True  # one stray voxel: 1/480 < 2 % of its plane, ignored
    box = box_from_mask(mask, (32, 40, 72), 0.02, 0.1)
    # axis 0: centre 6 → 12, size 6 → 12 → 14.4 → 14: [12 - 7, 12 + 7) = [5, 19)
    # axis 1: centre 10 → 20, size 10 → 20 → 24: [8, 32)
    # axis 2: centre 11 → 33, size 18 → 54 → 64.8 → 65: int(0.5) = 0, int(65.5) = 65
    assert box == (slice(5, 19), slice(8, 32), slice(0, 65))
    # Clipped at the volume's end.
    edge = np.zeros((10, 10, 10), dtype=bool)
    edge[6:10, 0:10, 0:10] = True
    assert box_from_mask(edge, (10, 10, 10), 0.02, 0.5)[0] == slice(4, 10)


def test_closest_grid_only_reorders_voxels() -> None:
    """An oblique series (12° about S) with asymmetric spacing: the ``closest`` RAS grid
    holds exactly the source voxels, each axis along its nearest RAS direction, and the
    round trip is the identity."""
    th = np.deg2rad(12)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    affine = np.eye(4)
    # Lucida columns (k, j, i): k along +z (S), j along +y (P), i along +x (L), rotated.
    affine[:3, :3] = rot @ np.array([[0, 0, 0.8], [0, 1.1, 0], [2.5, 0, 0]])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    shape = (6, 9, 11)
    src = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    grid = model_grid(affine, shape, InputSpec(orientation="RAS", axis_order="ijk",
                                               grid="closest"))
    assert grid.exact is not None
    x = to_model_grid(src, affine, grid, interpolation="linear", fill_value=0.0, copy=True)
    tensor = grid.to_tensor(x)  # [i, j, k] of RAS
    assert tensor.shape == (11, 9, 6)
    # RAS i increases toward R = -x: the source's i (toward +x, L) runs backwards.
    np.testing.assert_array_equal(tensor[:, :, 0], src[0, ::-1, ::-1].T)
    back = from_model_grid(x, grid, affine, shape, interpolation="nearest")
    np.testing.assert_array_equal(back, src)
    with pytest.raises(ValueError, match="closest"):
        InputSpec(grid="closest", spacing_mm=(1.0, 1.0, 1.0))


def test_chain_with_localizer_statistics() -> None:
    """The second stage reuses the first stage's percentiles but its own mean and std
    (deepbet's normalize with low/high from the small image)."""
    spec = parse_manifest(_manifest(["net.onnx", "loc.onnx"])).input.normalization
    loc_spec = parse_manifest(_manifest(["net.onnx", "loc.onnx"])).localizer
    assert loc_spec is not None
    rng = np.random.default_rng(5)
    small = rng.gamma(2.0, 30.0, size=(8, 8, 8)).astype(np.float32)
    crop = rng.gamma(2.0, 60.0, size=(10, 10, 10)).astype(np.float32)
    stats: dict[str, tuple[float, float]] = {}
    normalize(small.copy(), loc_spec.normalization, stats)
    low, high = np.percentile(small, [0.5, 99.5])
    assert stats["percentiles"] == pytest.approx((low, high))
    ours = normalize(crop.copy(), spec, stats)
    expect = np.clip((crop.astype(np.float64) - low) / (high - low), 0, 1)
    expect = 0.226 * (expect - expect.mean()) / expect.std(ddof=1) + 0.449
    np.testing.assert_allclose(ours, expect, atol=1e-5)
    with pytest.raises(Exception, match="localizer"):
        normalize(crop.copy(), spec, {})


def test_manifest_rules_for_localizers() -> None:
    parse_manifest(_manifest(["net.onnx", "loc.onnx"]))
    bad = _manifest(["net.onnx", "loc.onnx"])
    bad["localizer"]["file"] = "other.onnx"
    with pytest.raises(ModelPackError, match=r"localizer\.file 'other\.onnx' is not one of"):
        parse_manifest(bad)
    bad = _manifest(["net.onnx", "loc.onnx"])
    bad["tiling"] = {"mode": "sliding", "patch_size": [8, 8, 8]}
    with pytest.raises(ModelPackError, match="whole"):
        parse_manifest(bad)
    bad = _manifest(["net.onnx"])
    del bad["localizer"]
    with pytest.raises(ModelPackError, match="localizer statistics"):
        parse_manifest(bad)
    bad = _manifest(["net.onnx", "loc.onnx"])
    bad["localizer"]["channel"] = 2
    with pytest.raises(ModelPackError, match="channel 2"):
        parse_manifest(bad)


# --- a whole cascade through the pipeline ----------------------------------------------


def _sigmoid_net(shape: tuple[int, int, int], offset: float) -> bytes:
    """[1,1,*shape] → [1,2,*shape]: channel 1 = sigmoid(8·(x - offset)), channel 0 = 1 - it."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, *shape])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2, *shape])
    inits = [numpy_helper.from_array(np.array(8.0, dtype=np.float32), "k"),
             numpy_helper.from_array(np.array(offset, dtype=np.float32), "b"),
             numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")]
    nodes = [helper.make_node("Sub", ["input", "b"], ["d"]),
             helper.make_node("Mul", ["d", "k"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p1"]),
             helper.make_node("Sub", ["one", "p1"], ["p0"]),
             helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _manifest(files: list[str], shas: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    norm = {"kind": "chain", "steps": [
        {"kind": "percentiles", "lower": 0.5, "upper": 99.5, "statistics": "all"},
        {"kind": "zscore", "ddof": 1, "statistics": "all"},
        {"kind": "affine", "scale": 0.226, "offset": 0.449}]}
    main_norm = json.loads(json.dumps(norm))
    main_norm["steps"][0]["statistics"] = "localizer"
    return {
        "schema_version": 1, "id": "cascade-test", "name": "cascade test", "version": "0.1.0",
        "authors": ["t"], "license": "MIT", "intended_use": "test", "limitations": "test",
        "research_use_notice": "test", "modality": ["MR"],
        "input": {"orientation": "RAS", "axis_order": "ijk", "grid": "closest",
                  "normalization": main_norm, "tensor_name": "input"},
        "tiling": {"mode": "whole"},
        "output": {"kind": "probabilities", "channels": 2, "tensor_name": "probabilities",
                   "labels": [{"value": 1, "name": "bright"}], "heatmap_channel": 1},
        "postprocessing": [{"step": "threshold"}, {"step": "keep_largest_component"},
                           {"step": "connected_components", "labels": [1]}],
        "files": [{"path": f, "sha256": (shas or {}).get(f, "0" * 64)} for f in files],
        "localizer": {"file": "loc.onnx", "shape": [8, 8, 8], "normalization": norm,
                      "crop_shape": [12, 12, 12], "margin": 0.1},
    }


def test_cascade_runs_on_the_box_and_pastes_back(tmp_path: Path) -> None:
    """An LPS phantom (anisotropic voxels) with one bright asymmetric block: the localizer
    finds it on the 8³ copy, the main network runs on the 12³ box, and the bright voxels
    come back on the source grid, at the block and nowhere else."""
    shape = (20, 24, 28)
    vol = np.full(shape, 10.0, dtype=np.float32)
    vol += np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    vol[5:13, 4:16, 14:26] = 200.0  # off-centre, a different size on every axis
    affine = np.eye(4)
    affine[:3, :3] = np.diag([0.7, 1.0, 2.0])  # columns k, j, i
    affine[:3, 3] = [-5.0, 3.0, 11.0]
    volume = Volume(vol, affine, modality="MR")
    folder = tmp_path / "cascade-test"
    folder.mkdir()
    blobs = {"net.onnx": _sigmoid_net((12, 12, 12), 0.45),  # the box is half bright
             "loc.onnx": _sigmoid_net((8, 8, 8), 0.9)}
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
    shas = {n: hashlib.sha256(d).hexdigest() for n, d in blobs.items()}
    (folder / "manifest.json").write_text(json.dumps(_manifest(list(blobs), shas)))
    (folder / "MODEL_CARD.md").write_text("# test\n")
    result = pipeline.run(volume, ModelPack.open(folder), threads=1)
    box = result.provenance["parameters"]["localizer_box"]
    assert len(box) == 3 and all(0 <= a < b for a, b in box)
    labels = result.label_map.array
    assert labels.shape == shape
    bright = vol > 100
    # Nearest-exact down/up sampling through the 12³ box may move the block's border by a
    # voxel; the core of the block is found and nothing far from it.
    core = np.zeros(shape, dtype=bool)
    core[6:12, 5:15, 15:25] = True
    assert labels[core].all()
    far = ~_dilate(bright)
    assert not labels[far].any()
    assert len(result.findings) == 1
    onnx.checker.check_model(onnx.load_from_string(blobs["net.onnx"]))


def _dilate(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    return np.asarray(ndimage.binary_dilation(mask, iterations=2), dtype=bool)
