"""packaging/deepbet: the ONNX export of deepbet 1.0.2's networks and its graph rewrites.

The graph rewrites (fp16-stored weights, InstanceNormalization decomposition) need only
onnx and onnxruntime and are tested here in Lucida's environment. The export itself
needs the side environment with torch 2.13.0 (.venv-torch) and deepbet's wheel; it runs
the script as a subprocess and checks what it wrote with Lucida's onnxruntime.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
SCRIPT_DIR = REPO / "packaging" / "deepbet"
SIDE_PYTHON = REPO / ".venv-torch" / "bin" / "python"
SIDE_VENV_REASON = "needs the side venv with torch 2.13.0; see packaging/deepbet/README.md"
WHEEL_NAME = "deepbet-1.0.2-py3-none-any.whl"

# The export runs TorchScript and onnxruntime on 256³ volumes (~70 s on 2 cores); under
# load it needs more than the suite's 300 s default.
pytestmark = pytest.mark.timeout(600)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deepbet_packaging_{name}",
                                                  SCRIPT_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


fp16_weights = _load("fp16_weights")
instance_norm = _load("instance_norm")


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _model(nodes: list[Any], inits: list[Any], shape: list[int],
           out_channels: int | None = None) -> onnx.ModelProto:
    out_shape = [shape[0], out_channels or shape[1], *shape[2:]]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# ---- InstanceNormalization decomposition -------------------------------------------------

def _instance_norm_model(shape: list[int], scale: np.ndarray, bias: np.ndarray,
                         as_constants: bool) -> onnx.ModelProto:
    s = numpy_helper.from_array(scale.astype(np.float32), "s")
    b = numpy_helper.from_array(bias.astype(np.float32), "b")
    norm = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["n"], epsilon=1e-5)
    relu = helper.make_node("Relu", ["n"], ["y"])
    if as_constants:  # as torch exports a norm without affine parameters
        consts = [helper.make_node("Constant", [], ["s"], value=s),
                  helper.make_node("Constant", [], ["b"], value=b)]
        return _model([*consts, norm, relu], [], shape)
    return _model([norm, relu], [s, b], shape)


def _instance_norm_float64(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    axes = tuple(range(2, x.ndim))
    mean = x64.mean(axes, keepdims=True)
    var = x64.var(axes, keepdims=True)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x64 - mean) / np.sqrt(var + 1e-5) * scale.reshape(bshape) + bias.reshape(bshape)
    relu: np.ndarray = np.maximum(y, 0.0)
    return relu


@pytest.mark.parametrize("as_constants", [False, True])
def test_decomposed_instance_norm_matches_float64(as_constants: bool) -> None:
    rng = np.random.default_rng(7)
    shape = [1, 3, 5, 6, 7]  # asymmetric: a wrong reduction axis changes the result
    scale, bias = np.array([0.5, 2.0, -1.0]), np.array([0.1, -0.3, 0.7])
    model = _instance_norm_model(shape, scale, bias, as_constants)
    x = (rng.standard_normal(shape) * np.array([1, 10, 0.1]).reshape(1, 3, 1, 1, 1)
         + np.array([0, 5, -3]).reshape(1, 3, 1, 1, 1)).astype(np.float32)
    out, count = instance_norm.decompose_instance_norm(model)
    onnx.checker.check_model(out, full_check=True)
    assert count == 1
    assert not any(n.op_type == "InstanceNormalization" for n in out.graph.node)
    assert not any(n.op_type == "Constant" for n in out.graph.node)  # unused ones dropped
    y = _session(out).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, _instance_norm_float64(x, scale, bias), atol=2e-6)


def test_decomposed_instance_norm_is_accurate_over_a_large_volume() -> None:
    """The reason for the rewrite: float32 sums over 2 M voxels per channel.

    A single-pass (or single flat ReduceMean) float32 reduction errs by ~1.6e-4 here; the
    per-axis two-pass decomposition stays within a few 1e-7 of float64.
    """
    shape = [1, 2, 128, 128, 128]
    rng = np.random.default_rng(11)
    x = (3.0 + rng.standard_normal(shape)).astype(np.float32)
    scale, bias = np.ones(2), np.zeros(2)
    out, _ = instance_norm.decompose_instance_norm(
        _instance_norm_model(shape, scale, bias, as_constants=False))
    y = _session(out).run(None, {"x": x})[0]
    assert float(np.abs(y - _instance_norm_float64(x, scale, bias)).max()) < 1e-5


# ---- float16-stored weights -----------------------------------------------------------------

def _conv_model(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    w = numpy_helper.from_array(weight.astype(np.float32), "w")
    b = numpy_helper.from_array(bias.astype(np.float32), "b")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * 6)
    return _model([conv], [w, b], [1, 2, 9, 8, 7], out_channels=weight.shape[0])


def test_fp16_weights_store_half_and_compute_like_rounded_weights() -> None:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((16, 2, 3, 3, 3)).astype(np.float32)  # 864 values
    bias = rng.standard_normal(16).astype(np.float32)
    model = _conv_model(weight, bias)
    half, report = fp16_weights.store_weights_as_float16(model, min_elements=100)
    onnx.checker.check_model(half, full_check=True)
    types = {i.name: i.data_type for i in half.graph.initializer}
    assert types == {"w" + fp16_weights.SUFFIX: TensorProto.FLOAT16, "b": TensorProto.FLOAT}
    assert [n.op_type for n in half.graph.node] == ["Cast", "Conv"]
    assert report.converted == 1 and report.kept_float32 == 0
    assert 0 < report.max_abs_weight_error <= 2.0**-11 * float(np.abs(weight).max())
    assert len(half.SerializeToString()) < 0.6 * len(model.SerializeToString())
    # Same result as the float32 model given the float16-rounded weights: compute is float32.
    rounded = _conv_model(weight.astype(np.float16).astype(np.float32), bias)
    x = rng.standard_normal((1, 2, 9, 8, 7)).astype(np.float32)
    got = _session(half).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, _session(rounded).run(None, {"x": x})[0], rtol=0, atol=1e-5)
    assert float(np.abs(got - _session(model).run(None, {"x": x})[0]).max()) > 0


def test_fp16_weights_keep_small_and_out_of_range_tensors_float32() -> None:
    weight = np.full((16, 2, 3, 3, 3), 1e5, dtype=np.float32)  # beyond float16's 65504
    half, report = fp16_weights.store_weights_as_float16(
        _conv_model(weight, np.zeros(16)), min_elements=100)
    assert report.converted == 0 and report.kept_float32 == 1
    assert all(i.data_type == TensorProto.FLOAT for i in half.graph.initializer)
    assert [n.op_type for n in half.graph.node] == ["Conv"]


# ---- the export, in the side environment ---------------------------------------------------

def _side_python_with_torch() -> Path | None:
    if not SIDE_PYTHON.exists():
        return None
    probe = subprocess.run(
        [str(SIDE_PYTHON), "-c", "import torch; assert torch.__version__.startswith('2.13.0')"],
        capture_output=True, timeout=120, check=False)
    return SIDE_PYTHON if probe.returncode == 0 else None


def _wheel() -> Path | None:
    for candidate in (os.environ.get("LUCIDA_DEEPBET_WHEEL"), f"/tmp/wheels/{WHEEL_NAME}"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def export_dir(shared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the export once (with --float16, on noise and the conformed T1) for these tests."""
    python = _side_python_with_torch()
    if python is None:
        pytest.skip(SIDE_VENV_REASON)
    wheel = _wheel()
    if wheel is None:
        pytest.skip(f"needs {WHEEL_NAME}: set LUCIDA_DEEPBET_WHEEL "
                    "(see packaging/deepbet/README.md)")
    t1 = shared_models / "data-mr" / "brain-t1-conformed-256.nii.gz"
    out = tmp_path_factory.mktemp("deepbet-onnx")
    done = subprocess.run(
        [str(python), "-W", "ignore", str(SCRIPT_DIR / "export_onnx.py"), "--wheel", str(wheel),
         "--out", str(out), "--float16", "--t1", str(t1)],
        capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _record(export_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((export_dir / "EXPORT.json").read_text())
    return data


@pytest.mark.shared
def test_export_agrees_with_torchscript(export_dir: Path) -> None:
    record = _record(export_dir)
    assert record["passed"] is True
    assert record["versions"]["torch"].startswith("2.13.0")
    t1 = record["checks"]["conformed_t1"]
    for stem, brain_voxels in (("deepbet_bbox", 100_000), ("deepbet_brain", 3_000_000)):
        for variant in ("fp32", "fp16w"):
            check = t1[stem][variant]
            assert check["max_abs_diff"] <= 1e-4, (stem, variant, check)
            # a realistic brain, and at most a handful of p ≈ 0.5 voxels decided otherwise
            assert check["brain_voxels_reference"] > brain_voxels
            assert check["decision_diff_voxels"] <= 1e-5 * check["brain_voxels_reference"] + 5
        noise = record["checks"]["random"][stem]
        assert noise["fp32"]["max_abs_diff_vs_float64"] <= max(
            1e-4, 2 * noise["torchscript_fp32_vs_float64"])


@pytest.mark.shared
def test_exported_files_load_in_lucidas_onnxruntime(export_dir: Path) -> None:
    record = _record(export_dir)
    shapes = {"deepbet_bbox": 128, "deepbet_brain": 256}
    names = {f"{stem}{suffix}.onnx" for stem in shapes for suffix in ("", "_fp16w")}
    assert set(record["files"]) == names
    for name, entry in record["files"].items():
        data = (export_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        model = onnx.load_from_string(data)
        assert not any(n.op_type == "InstanceNormalization" for n in model.graph.node)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        side = shapes[name.removesuffix(".onnx").removesuffix("_fp16w")]
        assert (inp.name, inp.shape, inp.type) == ("input", [1, 1, side, side, side],
                                                   "tensor(float)")
        assert (out.name, out.shape, out.type) == ("probabilities", [1, 2, side, side, side],
                                                   "tensor(float)")
        if name.endswith("_fp16w.onnx"):
            assert entry["bytes"] < 0.55 * record["files"][name.replace("_fp16w", "")]["bytes"]
            # deepbet's weights happen to be exactly representable in float16
            assert entry["fp16_weights"]["max_abs_weight_error"] == 0.0


@pytest.mark.shared
def test_fp16w_bbox_network_gives_the_fp32_probabilities(export_dir: Path) -> None:
    """In Lucida's onnxruntime: softmax probabilities, and fp16w changes nothing that matters."""
    rng = np.random.default_rng(5)
    # a bright asymmetric block on a dark background, in deepbet's normalised range
    x = np.full((1, 1, 128, 128, 128), 0.2, dtype=np.float32)
    x[0, 0, 30:100, 40:110, 20:90] = 0.9
    x += 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    outs = [ort.InferenceSession(str(export_dir / name), providers=["CPUExecutionProvider"])
            .run(None, {"input": x})[0] for name in ("deepbet_bbox.onnx",
                                                      "deepbet_bbox_fp16w.onnx")]
    for probs in outs:
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert probs.min() >= 0.0
    assert float(np.abs(outs[0] - outs[1]).max()) < 1e-5
