"""Small real ONNX models and model packs, built inside the tests with the onnx package."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _io(name: str, rank: int = 5, channels: int | str = 1) -> Any:
    dims: list[Any] = ["N", channels] + [f"{name}{i}" for i in range(rank - 2)]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _model(nodes: list[Any], inits: list[Any], out_channels: int | str = 1,
           in_rank: int = 5) -> bytes:
    graph = helper.make_graph(nodes, "g", [_io("x", in_rank)],
                              [_io("y", in_rank, out_channels)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def identity_model() -> bytes:
    return _model([helper.make_node("Identity", ["x"], ["y"])], [])


def scale_model(factor: float) -> bytes:
    c = numpy_helper.from_array(np.array(factor, dtype=np.float32), "c")
    return _model([helper.make_node("Mul", ["x", "c"], ["y"])], [c])


def conv_model(kernel: np.ndarray, pad: int) -> bytes:
    """One 3-D convolution (cross-correlation) with a fixed kernel; pad 0 = valid."""
    w = numpy_helper.from_array(kernel.astype(np.float32)[None, None], "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[pad] * 6)
    return _model([node], [w])


def two_class_model(threshold: float, slope: float) -> bytes:
    """Logits [-(x - t) * s, (x - t) * s]: softmax gives sigmoid(2 s (x - t))."""
    t = numpy_helper.from_array(np.array(threshold, dtype=np.float32), "t")
    s = numpy_helper.from_array(np.array(slope, dtype=np.float32), "s")
    nodes = [
        helper.make_node("Sub", ["x", "t"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["y"], axis=1),
    ]
    return _model(nodes, [t, s], out_channels=2)


def nan_model() -> bytes:
    """Returns log(-1) = NaN everywhere."""
    z = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "z")
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    nodes = [
        helper.make_node("Mul", ["x", "z"], ["a"]),
        helper.make_node("Sub", ["a", "one"], ["b"]),
        helper.make_node("Log", ["b"], ["y"]),
    ]
    return _model(nodes, [z, one])


def rank4_model() -> bytes:
    return _model([helper.make_node("Identity", ["x"], ["y"])], [], in_rank=4)


def detector_model(half: tuple[int, int, int] = (1, 1, 1), cls: int | None = None,
                   columns: int | None = None, nan_score: bool = False) -> bytes:
    """A real detector, in ONNX ops: one box around the brightest voxel of its input,
    scored by that voxel's value. The box spans ``p - half .. p + half`` voxels along each
    tensor axis, i.e. edges ``[p - half, p + half + 1)``. Output ``[1, 7]`` (``[1, 8]``
    with a constant class column ``cls``); ``columns`` pads extra zero columns;
    ``nan_score`` scores sqrt(score - 10), NaN, as a broken network would."""
    def const(name: str, value: Any, dtype: Any = np.int64) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    inits = [const("flat", [1, -1]), const("s3", [3]), const("e4", [4]), const("s4", [4]),
             const("e5", [5]), const("lo_off", [[-h for h in half]], np.float32),
             const("hi_off", [[h + 1 for h in half]], np.float32)]
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["v"]),
        helper.make_node("ArgMax", ["v"], ["idx"], axis=1, keepdims=1),
        helper.make_node("ReduceMax", ["v"], ["score"], axes=[1], keepdims=1),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "s3", "e4"], ["n1"]),
        helper.make_node("Slice", ["shape", "s4", "e5"], ["n2"]),
        helper.make_node("Mul", ["n1", "n2"], ["plane"]),
        helper.make_node("Div", ["idx", "plane"], ["p0"]),
        helper.make_node("Div", ["idx", "n2"], ["row"]),
        helper.make_node("Mod", ["row", "n1"], ["p1"]),
        helper.make_node("Mod", ["idx", "n2"], ["p2"]),
        helper.make_node("Concat", ["p0", "p1", "p2"], ["pos"], axis=1),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["posf", "lo_off"], ["lo"]),
        helper.make_node("Add", ["posf", "hi_off"], ["hi"]),
    ]
    parts = ["lo", "hi", "score"]
    if nan_score:
        inits.append(const("ten", [[10.0]], np.float32))
        nodes += [helper.make_node("Sub", ["score", "ten"], ["below"]),
                  helper.make_node("Sqrt", ["below"], ["nan"])]
        parts[2] = "nan"
    if cls is not None:
        inits.append(const("cls", [[cls]], np.float32))
        parts.append("cls")
    width = 7 + (cls is not None)
    if columns is not None and columns > width:
        inits.append(const("extra", np.zeros((1, columns - width)), np.float32))
        parts.append("extra")
    nodes.append(helper.make_node("Concat", parts, ["y"], axis=1))
    graph = helper.make_graph(nodes, "detector", [_io("x")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             ["N", columns or width])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def base_manifest(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "schema_version": 1,
        "id": "test-model",
        "name": "Test model",
        "version": "1.0.0",
        "authors": ["Lucida tests"],
        "license": "Apache-2.0",
        "intended_use": "tests",
        "limitations": "none, it is a test",
        "research_use_notice": "Research use only.",
        "modality": ["CT"],
        "input": {"orientation": "LPS", "axis_order": "kji", "spacing_mm": "native",
                  "normalization": {"kind": "none"}},
        "tiling": {"mode": "sliding", "patch_size": [8, 8, 8], "overlap": 0.25,
                   "blending": "gaussian", "batch_size": 2},
        "output": {"kind": "anomaly_map", "activation": "none", "channels": 1,
                   "labels": [{"value": 1, "name": "hot", "channel": 0}],
                   "heatmap_channel": 0},
        "postprocessing": [{"step": "threshold", "value": 0.5},
                           {"step": "connected_components"}],
        "files": [],
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(m.get(key), dict):
            m[key] = {**m[key], **value}
        else:
            m[key] = value
    return m


def write_pack(folder: Path, manifest: dict[str, Any], models: dict[str, bytes],
               card: str = "# Test model\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, data in models.items():
        (folder / name).write_bytes(data)
        files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest()})
    manifest = dict(manifest)
    if not manifest.get("files"):
        manifest["files"] = files
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "MODEL_CARD.md").write_text(card)
    return folder


@pytest.fixture
def make_pack(tmp_path: Path) -> Callable[..., Path]:
    counter = {"n": 0}

    def make(model: bytes, **over: Any) -> Path:
        counter["n"] += 1
        return write_pack(tmp_path / f"pack{counter['n']}", base_manifest(**over),
                          {"model.onnx": model})

    return make


@pytest.fixture
def models() -> dict[str, Callable[..., bytes]]:
    return {"identity": identity_model, "scale": scale_model, "conv": conv_model,
            "two_class": two_class_model, "nan": nan_model, "rank4": rank4_model,
            "detector": detector_model}


@pytest.fixture
def cancel_after() -> Callable[[int], tuple[Any, Callable[..., None], list[float]]]:
    """Factory: (token, progress callback, fractions seen); the callback cancels the
    token on its ``n``-th call, as a user pressing Cancel mid-run."""
    from core.progress import CancelToken

    def make(n: int) -> tuple[Any, Callable[..., None], list[float]]:
        token = CancelToken()
        seen: list[float] = []

        def progress(fraction: float, message: str = "") -> None:
            seen.append(fraction)
            if len(seen) == n:
                token.cancel()

        return token, progress, seen

    return make


@pytest.fixture
def pack_tools() -> dict[str, Callable[..., Any]]:
    return {"base_manifest": base_manifest, "write_pack": write_pack}


@pytest.fixture(scope="module")
def blast(shared_models: Path) -> Path:
    """The staged BLAST-CT folder (weights_v1/ and reference/), else skip (fail in CI)."""
    from tests.conftest import REQUIRE_SHARED, skip_or_fail

    root = shared_models / "blast-ct"
    if not (root / "weights_v1").is_dir() or not (root / "reference").is_dir():
        skip_or_fail(f"{root} lacks weights_v1/ or reference/", REQUIRE_SHARED)
    return root


def cpu_session(model: bytes, threads: int = 2) -> Any:
    """An onnxruntime CPU session for ``model`` (the tests' own, not the pipeline's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
