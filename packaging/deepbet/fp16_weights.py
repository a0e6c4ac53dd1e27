"""Store an ONNX model's float32 weights as float16 while it still computes in float32.

Each float32 initializer becomes a float16 initializer plus a ``Cast(to=FLOAT)`` node
that recreates the original name, so every consumer still sees float32. onnxruntime
folds those Casts once at session start; the convolutions then run in float32 on the
CPU (float16 compute on CPU is slow, which is why onnxconverter-common's converter,
which turns the compute into float16, is not used). Only the file halves; the cost is
float16's rounding of the weights (relative error <= 2**-11).

Needs only ``onnx`` and ``numpy``, so Lucida's own environment can use and test it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_MAX = float(np.finfo(np.float16).max)
SUFFIX = "__fp16"
MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class Fp16Report:
    """What the conversion did, for EXPORT.json."""

    converted: int  # initializers now stored as float16
    kept_float32: int  # large float32 initializers left alone (values beyond float16's range)
    max_abs_weight_error: float  # largest |w16 - w32| over the converted weights
    max_rel_weight_error: float  # largest |w16 - w32| / |w32| over non-zero weights


def store_weights_as_float16(
        model: onnx.ModelProto, min_elements: int = MIN_ELEMENTS,
) -> tuple[onnx.ModelProto, Fp16Report]:
    """A copy of ``model`` whose float32 initializers are stored as float16 behind Casts.

    Tensors under ``min_elements`` (biases, epsilons, norm scales) stay float32: they
    weigh nothing, and a scalar such as an epsilon of 1e-5 lies in float16's subnormal
    range, where rounding is far coarser than 2**-11.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    graph_inputs = {value.name for value in graph.input}
    casts: list[onnx.NodeProto] = []
    kept: list[onnx.TensorProto] = []
    converted = kept_float32 = 0
    max_abs = max_rel = 0.0
    for init in graph.initializer:
        # An initializer that is also a graph input may be overridden by the caller;
        # renaming it would change the model's interface.
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            kept.append(init)
            continue
        w32 = numpy_helper.to_array(init)
        if w32.size < min_elements:
            kept.append(init)
            continue
        if float(np.abs(w32).max()) > FP16_MAX:
            kept.append(init)
            kept_float32 += 1
            continue
        w16 = w32.astype(np.float16)
        err = np.abs(w16.astype(np.float32) - w32)
        if err.size:
            max_abs = max(max_abs, float(err.max()))
            nonzero = w32 != 0
            if nonzero.any():
                max_rel = max(max_rel, float((err[nonzero] / np.abs(w32[nonzero])).max()))
        stored = numpy_helper.from_array(w16, name=init.name + SUFFIX)
        kept.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"cast_{init.name}"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # The Casts go first so the node list stays topologically sorted.
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return out, Fp16Report(converted, kept_float32, max_abs, max_rel)
