"""Exact graph rewrites, and tiles in flight: faster, never different."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import CancelledError, InferenceError
from core.volume import Volume
from inference import rewrite, run, runtime
from inference.manifest import parse_manifest
from inference.memory import plan_memory
from inference.sliding_window import sliding_window


def _io(name: str, channels: int) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, "a", "b", "c"])


def prelu_model(slope: np.ndarray, via: str = "initializer", channels: int = 1,
                slope_is_input: bool = False) -> bytes:
    """Conv (so the graph is not trivial) then PRelu, the slope given ``via`` one route."""
    w = numpy_helper.from_array(
        np.linspace(-1.0, 1.0, channels * 27, dtype=np.float32).reshape(channels, 1, 3, 3, 3),
        "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 6)]
    inits = [w]
    value = np.asarray(slope, dtype=np.float32)
    if via == "initializer":
        inits.append(numpy_helper.from_array(value, "slope"))
    elif via == "identity":
        inits.append(numpy_helper.from_array(value, "raw"))
        nodes += [helper.make_node("Identity", ["raw"], ["mid"]),
                  helper.make_node("Identity", ["mid"], ["slope"])]
    elif via == "constant":
        nodes.append(helper.make_node("Constant", [], ["slope"],
                                      value=numpy_helper.from_array(value, "v")))
    nodes.append(helper.make_node("PRelu", ["c", "slope"], ["y"]))
    inputs = [_io("x", 1)]
    if slope_is_input:  # an initializer that callers may override at run time
        inputs.append(helper.make_tensor_value_info("slope", TensorProto.FLOAT, value.shape))
    graph = helper.make_graph(nodes, "g", inputs, [_io("y", channels)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    session, _ = runtime.create_session(model, "cpu", 1)
    return np.asarray(session.run(None, {"x": x})[0])


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


@pytest.mark.parametrize("via", ["initializer", "identity", "constant"])
@pytest.mark.parametrize("shape", [(), (1,), (1, 1, 1, 1)])
def test_single_slope_prelu_becomes_leaky_relu_bit_for_bit(via: str,
                                                           shape: tuple[int, ...]) -> None:
    model = prelu_model(np.full(shape, 0.173, np.float32), via)
    out = rewrite.optimize(model)
    assert out.changes == ["1 PRelu with a single slope run as LeakyRelu"]
    assert "PRelu" not in _ops(out.data) and "LeakyRelu" in _ops(out.data)
    x = np.random.default_rng(3).normal(size=(2, 1, 7, 6, 5)).astype(np.float32)
    before, after = _run(model, x), _run(out.data, x)
    assert (before < 0).any() and (before > 0).any()  # both branches exercised
    np.testing.assert_array_equal(after, before)


def test_per_channel_and_overridable_slopes_are_left_alone() -> None:
    per_channel = prelu_model(np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1, 1, 1),
                              channels=3)
    overridable = prelu_model(np.array(0.25, np.float32), slope_is_input=True)
    for model in (per_channel, overridable):
        out = rewrite.optimize(model)
        assert out.changes == [] and out.data is model


def test_unreadable_model_is_passed_through_for_onnxruntime_to_report() -> None:
    junk = b"\x08\x07garbage that is not a model"
    assert rewrite.optimize(junk).data is junk


def test_pipeline_records_rewrites_and_keeps_original_hash(make_pack: Any) -> None:
    model = prelu_model(np.array(0.5, np.float32))
    pack = make_pack(model, tiling={"patch_size": [8, 8, 8], "batch_size": 1})
    arr = np.random.default_rng(0).normal(size=(12, 10, 9)).astype(np.float32)
    vol = Volume(arr, np.diag([0.8, 0.9, 1.1, 1.0]), modality="CT")
    res = run(vol, pack, threads=2)
    prov = res.provenance
    assert prov["graph_rewrites"] == ["1 PRelu with a single slope run as LeakyRelu"]
    assert prov["model"]["files"] == {"model.onnx": hashlib.sha256(model).hexdigest()}
    assert prov["tiles_in_flight"] == 2 and prov["threads_per_tile"] == 1
    assert (pack / "model.onnx").read_bytes() == model  # the pack on disk is untouched


def sibling_model(opset: int = 17, *, bias: bool = True, b_strides: int = 2,
                  weights_are_inputs: bool = False, group: int = 1) -> bytes:
    """x → three Convs: a and b share x and (unless told otherwise) their geometry, c is a
    1x1x1 Conv that must stay on its own. All three outputs are graph outputs."""
    rng = np.random.default_rng(5)
    cin = 2
    inits, nodes, inputs = [], [], [_io("x", cin)]
    for name, cout, k, stride in (("a", 3, 3, 2), ("b", 4, 3, b_strides), ("c", 2, 1, 1)):
        w = rng.normal(size=(cout, cin // group if name != "c" else cin, k, k, k))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{name}"))
        ins = ["x", f"w{name}"]
        if bias:
            inits.append(numpy_helper.from_array(rng.normal(size=cout).astype(np.float32),
                                                 f"b{name}"))
            ins.append(f"b{name}")
        attrs: dict[str, Any] = {"strides": [stride] * 3, "pads": [k // 2] * 6,
                                 "kernel_shape": [k] * 3}
        if name != "c" and group != 1:
            attrs["group"] = group
        nodes.append(helper.make_node("Conv", ins, [name], **attrs))
    if weights_are_inputs:  # initializers a caller may override at run time
        inputs.append(helper.make_tensor_value_info("wa", TensorProto.FLOAT, [3, cin, 3, 3, 3]))
    outputs = [_io(n, c) for n, c in (("a", 3), ("b", 4), ("c", 2))]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _run_all(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    session, _ = runtime.create_session(model, "cpu", 1)
    return [np.asarray(a) for a in session.run(None, {"x": x})]


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_sibling_convs_run_as_one_bit_for_bit(opset: int, bias: bool) -> None:
    model = sibling_model(opset, bias=bias)
    out = rewrite.optimize(model)
    assert out.changes == ["2 Conv sharing an input run as 1"]
    rewritten = onnx.load_from_string(out.data)
    onnx.checker.check_model(rewritten)
    assert _ops(out.data).count("Conv") == 2 and "Split" in _ops(out.data)
    # The separate filters are gone from the model, not kept beside the stacked ones.
    assert not {"wa", "wb", "ba", "bb"} & {t.name for t in rewritten.graph.initializer}
    x = np.random.default_rng(8).normal(size=(2, 2, 9, 8, 7)).astype(np.float32)
    before, after = _run_all(model, x), _run_all(out.data, x)
    assert [a.shape for a in after] == [(2, 3, 5, 4, 4), (2, 4, 5, 4, 4), (2, 2, 9, 8, 7)]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", [{"b_strides": 1}, {"weights_are_inputs": True},
                                  {"group": 2}])
def test_convs_that_differ_or_can_be_overridden_stay_apart(case: dict[str, Any]) -> None:
    model = sibling_model(**case)
    out = rewrite.optimize(model)
    assert out.changes == [] and out.data is model


def test_bench_style_unet_is_rewritten_and_unchanged(tmp_path: Any) -> None:
    """A MONAI-style residual down unit (PRelu activations, shortcut Conv beside the main
    Conv) gets both rewrites and still computes the same numbers."""
    rng = np.random.default_rng(11)

    def w(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 0.3).astype(np.float32)

    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("w_main", w(4, 1, 3, 3, 3)), ("b_main", w(4)), ("w_res", w(4, 1, 3, 3, 3)),
        ("b_res", w(4)), ("slope", np.array([0.25], np.float32)),
        ("w_out", w(2, 4, 1, 1, 1)))]
    geo = {"strides": [2, 2, 2], "pads": [1] * 6, "kernel_shape": [3, 3, 3]}
    nodes = [helper.make_node("Conv", ["x", "w_main", "b_main"], ["m"], **geo),
             helper.make_node("InstanceNormalization", ["m", "ones", "zeros"], ["n"]),
             helper.make_node("PRelu", ["n", "slope"], ["p"]),
             helper.make_node("Conv", ["x", "w_res", "b_res"], ["r"], **geo),
             helper.make_node("Add", ["p", "r"], ["s"]),
             helper.make_node("Conv", ["s", "w_out"], ["y"])]
    inits += [numpy_helper.from_array(np.ones(4, np.float32), "ones"),
              numpy_helper.from_array(np.zeros(4, np.float32), "zeros")]
    graph = helper.make_graph(nodes, "g", [_io("x", 1)], [_io("y", 2)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = bytes(model.SerializeToString())
    out = rewrite.optimize(data)
    assert out.changes == ["1 PRelu with a single slope run as LeakyRelu",
                           "2 Conv sharing an input run as 1"]
    x = rng.normal(size=(1, 1, 12, 10, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(out.data, x), _run(data, x))


# --- tiles in flight ----------------------------------------------------------------------

def _conv_predictor(delay_s: float = 0.0) -> Any:
    kernel = np.random.default_rng(5).normal(size=(3, 3, 3)).astype(np.float32)
    w = numpy_helper.from_array(kernel[None, None], "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 6)],
                              "g", [_io("x", 1)], [_io("y", 1)], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session, _ = runtime.create_session(model.SerializeToString(), "cpu", 1)

    def predict(batch: np.ndarray) -> np.ndarray:
        if delay_s:
            import time

            time.sleep(delay_s)
        return np.asarray(session.run(None, {"x": batch})[0])

    return predict


@pytest.mark.parametrize(("shape", "patch", "batch", "lanes"), [
    ((30, 17, 23), (8, 8, 8), 1, 2),
    ((30, 17, 23), (8, 8, 8), 3, 2),
    ((9, 40, 12), (16, 8, 4), 2, 3),
    ((5, 5, 5), (8, 8, 8), 1, 2),  # smaller than a patch: one tile, nothing to overlap
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lanes_give_the_same_sum_as_one_lane(shape: tuple[int, int, int],
                                             patch: tuple[int, int, int], batch: int,
                                             lanes: int, dtype: Any) -> None:
    image = np.random.default_rng(1).normal(size=(1, *shape)).astype(np.float32)
    predict = _conv_predictor()
    common: dict[str, Any] = dict(patch=patch, out_channels=1, overlap=0.4,
                                  batch_size=batch, accumulator_dtype=dtype)
    one = sliding_window(image, predict, lanes=1, **common)
    many = sliding_window(image, predict, lanes=lanes, **common)
    np.testing.assert_array_equal(many, one)  # added in tile order: not merely close


def test_lanes_cancel_and_errors_surface(cancel_after: Any) -> None:
    image = np.zeros((1, 40, 40, 40), np.float32)
    token, progress, calls = cancel_after(3)
    with pytest.raises(CancelledError):
        sliding_window(image, _conv_predictor(0.01), patch=(8, 8, 8), out_channels=1,
                       lanes=2, progress=progress, cancel=token)
    assert 3 <= len(calls) <= 5  # at most the batches already in flight finish

    def broken(batch: np.ndarray) -> np.ndarray:
        return np.full((batch.shape[0], 1, 8, 8, 8), np.nan, np.float32)

    with pytest.raises(InferenceError, match="NaN"):
        sliding_window(image, broken, patch=(8, 8, 8), out_channels=1, lanes=2)


@pytest.mark.parametrize(("threads", "requested", "expected"), [
    (1, ["CPUExecutionProvider"], (1, 1)),
    (2, ["CPUExecutionProvider"], (2, 1)),
    (8, ["CPUExecutionProvider"], (2, 4)),
    (5, ["CPUExecutionProvider"], (2, 2)),
    (8, ["CUDAExecutionProvider", "CPUExecutionProvider"], (1, 8)),
    (None, ["CUDAExecutionProvider", "CPUExecutionProvider"], (1, None)),
])
def test_tile_lanes_split_threads_on_cpu_only(threads: int | None, requested: list[str],
                                              expected: tuple[int, int | None]) -> None:
    assert runtime.tile_lanes(threads, requested) == expected


def test_default_threads_use_every_cpu_of_this_process() -> None:
    lanes, per_tile = runtime.tile_lanes(None, ["CPUExecutionProvider"])
    n = runtime.cpu_count()
    assert (lanes, per_tile) == ((2, n // 2) if n >= 2 else (1, None))


def test_memory_plan_drops_the_second_lane_before_shrinking_the_batch(
        pack_tools: dict[str, Any]) -> None:
    manifest = parse_manifest(pack_tools["base_manifest"](
        tiling={"patch_size": [64, 64, 64], "batch_size": 2},
        files=[{"path": "model.onnx", "sha256": "0" * 64}]))
    shape = (64, 64, 64)
    roomy = plan_memory(manifest, shape, shape, lanes=2, limit_bytes=4 << 30)
    assert (roomy.lanes, roomy.batch_size) == (2, 2)
    two_lanes = roomy.total_bytes
    one_lane = plan_memory(manifest, shape, shape, lanes=1, limit_bytes=4 << 30).total_bytes
    tight = plan_memory(manifest, shape, shape, lanes=2, limit_bytes=(two_lanes + one_lane) // 2)
    assert (tight.lanes, tight.batch_size) == (1, 2)
    assert any("one tile at a time" in n for n in tight.notes)
