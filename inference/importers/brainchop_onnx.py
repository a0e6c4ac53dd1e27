"""Build the MeshNet ONNX graph (NCDHW, dynamic spatial dims) with onnx.helper."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference.importers.brainchop_topology import ActivationSpec, ConvSpec, Topology
from inference.importers.brainchop_weights import Array32

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# brainchop's LayerNormInPlace (tensor-utils.js) epsilon.
NORM_EPSILON = 1e-5


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: Array32) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str, output: str | None = None,
           **attrs: object) -> str:
        out = output or self.name(stem)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type),
                                           **attrs))
        return out


def _activation(g: _Graph, x: str, kind: str, stem: str) -> str:
    if kind == "linear":
        return x
    if kind == "relu":
        return g.op("Relu", [x], stem)
    if kind == "elu":  # Keras 'elu' alpha = 1
        return g.op("Elu", [x], stem, alpha=1.0)
    # gelu: TF.js/Keras default is the exact erf form x * 0.5 * (1 + erf(x / sqrt 2)).
    scaled = g.op("Mul", [x, g.const("inv_sqrt2", np.array(1 / math.sqrt(2)))], stem)
    erf = g.op("Erf", [scaled], stem)
    one_plus = g.op("Add", [erf, g.const("one", np.array(1.0))], stem)
    half_x = g.op("Mul", [x, g.const("half", np.array(0.5))], stem)
    return g.op("Mul", [half_x, one_plus], stem)


def build_onnx(topology: Topology, weights: list[tuple[Array32, Array32 | None]]) -> bytes:
    """Serialized ONNX: input [1, 1, D, H, W] float32 -> logits [1, n_classes, D, H, W]."""
    g = _Graph()
    x = INPUT_NAME
    conv_index = 0
    last = len(topology.layers) - 1
    for i, layer in enumerate(topology.layers):
        stem = f"{layer.name}".replace("/", "_")
        if isinstance(layer, ActivationSpec):
            x = _activation(g, x, layer.activation, stem)
            continue
        assert isinstance(layer, ConvSpec)
        kernel, bias = weights[conv_index]
        conv_index += 1
        inputs = [x, g.const(f"{stem}_W", kernel)]
        if bias is not None:
            inputs.append(g.const(f"{stem}_B", bias))
        # 'same' with odd kernel k and dilation d = zero pad d*(k-1)/2 on each side.
        pad = layer.dilation * (layer.kernel - 1) // 2 if layer.padding == "same" else 0
        is_output = i == last
        x = g.op("Conv", inputs, stem, output=OUTPUT_NAME if is_output else None,
                 kernel_shape=[layer.kernel] * 3, dilations=[layer.dilation] * 3,
                 strides=[1, 1, 1], pads=[pad] * 6, group=1)
        if layer.instance_norm:
            zeros = np.zeros(layer.filters, np.float32)
            x = g.op("InstanceNormalization",
                     [x, g.const(f"{stem}_gn_scale", zeros + 1), g.const(f"{stem}_gn_b", zeros)],
                     stem, epsilon=NORM_EPSILON)
        if layer.activation != "linear":
            x = _activation(g, x, layer.activation, stem)
    if x != OUTPUT_NAME:  # a trailing norm/activation after the last conv
        x = g.op("Identity", [x], "out", output=OUTPUT_NAME)
    n_classes = topology.n_classes
    graph = helper.make_graph(
        g.nodes, f"meshnet_{topology.model_name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 1, "D", "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT,
                                       [1, n_classes, "D", "H", "W"])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lucida.inference.importers.brainchop")
    model.ir_version = 8  # opset 17; readable by onnxruntime >= 1.13
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString()
    return data
