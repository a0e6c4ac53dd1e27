"""BLAST-CT's DeepMedic rebuilt as an ONNX graph from its state_dict and config.json.

Lucida's own code builds the graph (``onnx.helper``); nothing from blast-ct or torch
runs. Every architecture detail comes from the state_dict keys and shapes, checked
against ``config.json``; what the weights cannot say is taken from the authors'
``blast_ct/models/{deepmedic,base}.py`` (blast-ct 2.1.0) and listed here.

Decisions
---------
* **Pathways** are the keys ``path(S, S, S)P.path.B.*``: scale factor ``S`` (per axis)
  and order ``P`` from the module name (the authors' ``'path' + str(scale) + str(i)``);
  the pathways' outputs are concatenated in ``P`` order (channel order of
  ``fully_connected.0.conv.weight``). ``B`` = 1..n are the pre-activation blocks;
  ``path.0`` (subsample) and ``path.n+1`` (upsample) have no parameters.
* **Block** (``PreActBlock``): BatchNorm (eval: running statistics, eps = 1e-5, PyTorch's
  default; not stored) → Dropout (identity in eval) → PReLU with one shared slope
  (``prelu.weight`` shape (1,)) → Conv, stride 1, **no padding** (valid), no bias
  (no ``conv.bias`` key); kernel from ``conv.weight``'s shape. When the conv keeps the
  channel count it adds a residual: the block's *input* (before BN), centre-cropped by
  ``k // 2`` per side. BN stays a ``BatchNormalization`` node (it cannot be folded
  into the previous conv because the residual adds the unnormalised sum); PReLU with
  one slope is emitted as the identical ``LeakyRelu`` (onnxruntime's faster kernel;
  the same rewrite ``inference.rewrite`` applies to packs).
* **Head**: ``fully_connected.I`` blocks are the same PreActBlocks with 1x1x1 convs
  (fully connected layers applied per voxel), including the residual where channels
  are kept (250 → 250). Output = logits (N, num_classes, z, y, x); the authors' predict
  function is softmax over the channel axis, emitted when ``softmax=True``.
* **Sizes** (per axis, the authors' arithmetic): the output size comes from the first
  pathway: ``(i - s) // s + 1`` after subsampling, ``- (k - 1)`` per conv, ``* s`` after
  upsampling; an input size that does not map back exactly is refused (as the authors'
  ``get_output_size`` does): 110 → 30, 170 → 90, 100 → 20, 95 → 15, 85 → 5.
  Each pathway needs ``ceil(o / s)`` voxels before its upsample, ``+ (k - 1)`` per conv,
  ``* s`` before its subsample.
* **Crop / subsample / upsample**: centre crop keeps ``[c//2 - t//2, c//2 + t//2 + t%2)``
  (the authors' ``crop_center``); subsampling is strided slicing ``x[s//2::s]`` (no
  pooling); upsampling is nearest neighbour by integer ``s`` (``Resize`` nearest,
  asymmetric, floor = repeat each voxel ``s`` times, exactly ``F.interpolate(nearest)``),
  then a centre crop to the output size.
* **Larger patches** (``input_size``): the network is fully convolutional, so any size the
  arithmetic above accepts builds; for BLAST-CT these are 80 + 30 n (output 30 n; the
  authors' table lists 110 and 170). Such a patch whose output starts on the authors'
  30-voxel grid gives exactly their n³ tiles of 110³, because every crop and phase is the
  same: the pathway crops start at the same offset (16 for 3x, 32 for 1x: ``c//2 - t//2``
  with ``t = c - 32`` / ``c - 64``), so output voxel ``o`` is input voxel ``40 + o`` in
  every pathway; the 5x (3x) samples sit at input ``42 + 5t`` (``41 + 3t``), the centre of
  each 5- (3-) block of outputs counted from the patch's output origin, and 30 is a
  multiple of 3 and 5, so a patch starting on the grid samples the same voxels as the
  authors' tiles; nearest upsampling then repeats each sample over the same block, and the
  final crop is empty (30 n is a multiple of 15). Values past the volume are the same
  either way when both pad with ``np.pad(mode='edge')``. Off the grid the phase differs
  (up to ~0.02 in probability).
* **Graph I/O**: input ``image`` float32 (N, C_in, z, y, x) with fixed spatial size
  (default ``config['test']['input_patch_size']``, 110³) and a dynamic batch; output
  ``logits`` or ``probabilities``. The input is expected already HU-window normalised
  (config ``IntensityWindowNormalization`` [-15, 100] → [-1, 1]); that is the pack's
  preprocessing, not part of the graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

BN_EPS = 1e-5  # PyTorch BatchNorm3d default; blast-ct never changes it
OPSET = 17
_PATH_KEY = re.compile(r"^path\((\d+), (\d+), (\d+)\)(\d+)\.path\.(\d+)\.(bn|conv|prelu)\.(\w+)$")
_FC_KEY = re.compile(r"^fully_connected\.(\d+)\.(bn|conv|prelu)\.(\w+)$")
_BLOCK_PARAMS = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "conv.weight",
                 "prelu.weight")

Size3 = tuple[int, int, int]
Array = npt.NDArray[Any]


class DeepMedicError(ValueError):
    """The state_dict / config do not describe a DeepMedic Lucida can rebuild."""


@dataclass(frozen=True)
class Block:
    """One pre-activation block: BN → PReLU → valid conv (+ residual when in == out)."""

    prefix: str
    gamma: Array
    beta: Array
    mean: Array
    var: Array
    slope: float
    weight: Array  # (out, in, kz, ky, kx)

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> Size3:
        k = self.weight.shape[2:]
        return (int(k[0]), int(k[1]), int(k[2]))

    @property
    def residual(self) -> bool:
        return self.in_channels == self.out_channels


@dataclass(frozen=True)
class Pathway:
    scale: Size3
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class DeepMedicSpec:
    pathways: tuple[Pathway, ...]
    head: tuple[Block, ...]

    @property
    def input_channels(self) -> int:
        return self.pathways[0].blocks[0].in_channels

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_channels

    def output_size(self, input_size: Sequence[int]) -> Size3:
        """The authors' output size for ``input_size``; ValueError where they refuse it."""
        path = self.pathways[0]
        out = []
        for axis, i in enumerate(input_size):
            s = path.scale[axis]
            o = (i - s) // s + 1
            o -= sum(b.kernel[axis] - 1 for b in path.blocks)
            out.append(o * s)
        if len(out) != 3 or any(o < 1 for o in out):
            raise DeepMedicError(f"input size {tuple(input_size)} leaves no output")
        size = (out[0], out[1], out[2])
        expected = self.pathway_input_size(path, size)
        if expected != tuple(input_size):
            raise DeepMedicError(f"input size {tuple(input_size)} is not allowed (it would "
                                 f"waste memory); use {expected} for output {size}")
        return size

    @staticmethod
    def pathway_input_size(path: Pathway, output_size: Size3) -> Size3:
        sizes = []
        for axis, o in enumerate(output_size):
            s = path.scale[axis]
            i = -(-o // s) + sum(b.kernel[axis] - 1 for b in path.blocks)
            sizes.append(i * s)
        return (sizes[0], sizes[1], sizes[2])


def _block(sd: Mapping[str, Array], prefix: str) -> Block:
    missing = [p for p in _BLOCK_PARAMS if f"{prefix}.{p}" not in sd]
    if missing:
        raise DeepMedicError(f"{prefix}: missing {', '.join(missing)}")
    f32 = {p: np.asarray(sd[f"{prefix}.{p}"], dtype=np.float32) for p in _BLOCK_PARAMS}
    weight = f32["conv.weight"]
    if weight.ndim != 5:
        raise DeepMedicError(f"{prefix}.conv.weight has shape {weight.shape}, not 3-D conv")
    c_in = weight.shape[1]
    for p in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        if f32[p].shape != (c_in,):
            raise DeepMedicError(f"{prefix}.{p} has shape {f32[p].shape}, expected ({c_in},)")
    if f32["prelu.weight"].shape != (1,):
        raise DeepMedicError(f"{prefix}.prelu.weight: only one shared PReLU slope is supported")
    if f"{prefix}.conv.bias" in sd:
        raise DeepMedicError(f"{prefix}: a conv bias is not expected in blast-ct's DeepMedic")
    if any(k % 2 == 0 for k in weight.shape[2:]):
        raise DeepMedicError(f"{prefix}: even kernel {weight.shape[2:]} is not supported")
    return Block(prefix, f32["bn.weight"], f32["bn.bias"], f32["bn.running_mean"],
                 f32["bn.running_var"], float(f32["prelu.weight"][0]), weight)


def parse_deepmedic(state_dict: Mapping[str, Array], config: Mapping[str, Any]) -> DeepMedicSpec:
    """The network's structure from the state_dict keys/shapes, checked against config.json."""
    paths: dict[int, tuple[Size3, set[int]]] = {}
    heads: set[int] = set()
    for key in state_dict:
        if m := _PATH_KEY.match(key):
            scale = (int(m[1]), int(m[2]), int(m[3]))
            known = paths.setdefault(int(m[4]), (scale, set()))
            if known[0] != scale:
                raise DeepMedicError(f"pathway {m[4]} has two scale factors")
            known[1].add(int(m[5]))
        elif m := _FC_KEY.match(key):
            heads.add(int(m[1]))
        else:
            raise DeepMedicError(f"unexpected state_dict key {key!r}")
    if not paths or not heads:
        raise DeepMedicError("no pathways or no fully connected layers in the state_dict")

    pathways = []
    for index in sorted(paths):
        scale, blocks = paths[index]
        if sorted(blocks) != list(range(1, len(blocks) + 1)):
            raise DeepMedicError(f"pathway {index}: blocks {sorted(blocks)} are not 1..n")
        name = f"path({scale[0]}, {scale[1]}, {scale[2]}){index}.path"
        pathways.append(Pathway(scale, tuple(_block(state_dict, f"{name}.{b}")
                                             for b in sorted(blocks))))
    if sorted(heads) != list(range(len(heads))):
        raise DeepMedicError(f"fully connected layers {sorted(heads)} are not 0..n-1")
    head = tuple(_block(state_dict, f"fully_connected.{i}") for i in sorted(heads))
    spec = DeepMedicSpec(tuple(pathways), head)
    _check(spec, config)
    return spec


def _check(spec: DeepMedicSpec, config: Mapping[str, Any]) -> None:
    """Each shape must chain, and agree with the config the authors' inference reads."""
    model = config.get("model", {}).get("DeepMedic")
    data = config.get("data", {})
    if model is None:
        raise DeepMedicError("config.json names no DeepMedic model")
    feature_maps = list(model.get("feature_maps", []))
    for i, path in enumerate(spec.pathways):
        if [b.out_channels for b in path.blocks] != feature_maps:
            raise DeepMedicError(f"pathway {i} channels differ from config feature_maps")
        chans = [spec.input_channels, *feature_maps[:-1]]
        if [b.in_channels for b in path.blocks] != chans:
            raise DeepMedicError(f"pathway {i}: block inputs do not chain")
        if any(b.kernel != (1, 1, 1) and any(k == 1 for k in b.kernel) for b in path.blocks):
            raise DeepMedicError(f"pathway {i}: mixed 1/3 kernels are not supported")
    head_chans = [feature_maps[-1] * len(spec.pathways), *model.get("fully_connected", []),
                  int(data.get("num_classes", -1))]
    if [b.in_channels for b in spec.head] + [spec.num_classes] != head_chans:
        raise DeepMedicError(f"fully connected channels differ from config: expected {head_chans}")
    if any(b.kernel != (1, 1, 1) for b in spec.head):
        raise DeepMedicError("fully connected layers must be 1x1x1 convolutions")
    if int(data.get("input_channels", -1)) != spec.input_channels:
        raise DeepMedicError("input channels differ from config")
    scales = [p.scale for p in spec.pathways]
    if any(any(a < b for a, b in zip(scales[i], scales[i + 1], strict=True))
           for i in range(len(scales) - 1)):
        raise DeepMedicError("pathway scale factors must not increase (the authors' assert)")


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: Array) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def slice(self, x: str, starts: Sequence[int], ends: Sequence[int], hint: str,
              steps: Sequence[int] = (1, 1, 1)) -> str:
        i64 = np.int64
        return self.op("Slice", [x, self.const("starts", np.array(starts, i64)),
                                 self.const("ends", np.array(ends, i64)),
                                 self.const("axes", np.array([2, 3, 4], i64)),
                                 self.const("steps", np.array(steps, i64))], hint)

    def crop_center(self, x: str, size: Size3, target: Size3, hint: str) -> str:
        if size == target:
            return x
        starts = [c // 2 - t // 2 for c, t in zip(size, target, strict=True)]
        ends = [c // 2 + t // 2 + t % 2 for c, t in zip(size, target, strict=True)]
        return self.slice(x, starts, ends, hint)

    def block(self, x: str, size: Size3, b: Block) -> tuple[str, Size3]:
        tag = b.prefix.replace("(", "").replace(")", "").replace(", ", "x")
        y = self.op("BatchNormalization",
                    [x, self.const(f"{tag}.bn.weight", b.gamma),
                     self.const(f"{tag}.bn.bias", b.beta),
                     self.const(f"{tag}.bn.running_mean", b.mean),
                     self.const(f"{tag}.bn.running_var", b.var)],
                    f"{tag}.bn", epsilon=BN_EPS)
        y = self.op("LeakyRelu", [y], f"{tag}.prelu", alpha=b.slope)
        y = self.op("Conv", [y, self.const(f"{tag}.conv.weight", b.weight)], f"{tag}.conv",
                    kernel_shape=list(b.kernel), pads=[0] * 6, strides=[1, 1, 1])
        out = (size[0] - b.kernel[0] + 1, size[1] - b.kernel[1] + 1, size[2] - b.kernel[2] + 1)
        if b.residual:
            y = self.op("Add", [y, self.crop_center(x, size, out, f"{tag}.shortcut")],
                        f"{tag}.residual")
        return y, out


def build_deepmedic_onnx(state_dict: Mapping[str, Array], config: Mapping[str, Any], *,
                         input_size: Sequence[int] | None = None,
                         softmax: bool = False) -> bytes:
    """Serialized ONNX model of the DeepMedic described by ``state_dict`` and ``config``.

    ``input_size`` (z, y, x) defaults to ``config['test']['input_patch_size']``.
    Output ``logits`` (N, classes, *output_size), or ``probabilities`` with ``softmax``.
    """
    spec = parse_deepmedic(state_dict, config)
    if input_size is None:
        input_size = config.get("test", {}).get("input_patch_size")
        if input_size is None:
            raise DeepMedicError("no input_size given and none in config['test']")
    if len(input_size) != 3:
        raise DeepMedicError(f"input size must be 3-D, got {tuple(input_size)}")
    in_size: Size3 = (int(input_size[0]), int(input_size[1]), int(input_size[2]))
    out_size = spec.output_size(in_size)

    g = _Graph()
    branches = []
    for p, path in enumerate(spec.pathways):
        need = spec.pathway_input_size(path, out_size)
        x = g.crop_center("image", in_size, need, f"path{p}.crop")
        size = need
        if path.scale != (1, 1, 1):
            x = g.slice(x, [s // 2 for s in path.scale], list(need), f"path{p}.subsample",
                        steps=list(path.scale))
            size = (len(range(path.scale[0] // 2, need[0], path.scale[0])),
                    len(range(path.scale[1] // 2, need[1], path.scale[1])),
                    len(range(path.scale[2] // 2, need[2], path.scale[2])))
        for b in path.blocks:
            x, size = g.block(x, size, b)
        if path.scale != (1, 1, 1):
            scales = np.array([1, 1, *path.scale], dtype=np.float32)
            x = g.op("Resize", [x, "", g.const("scales", scales)], f"path{p}.upsample",
                     mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
            size = (size[0] * path.scale[0], size[1] * path.scale[1], size[2] * path.scale[2])
        branches.append(g.crop_center(x, size, out_size, f"path{p}.crop_out"))

    x = g.op("Concat", branches, "concat", axis=1)
    for b in spec.head:
        x, _ = g.block(x, out_size, b)
    out_name = "probabilities" if softmax else "logits"
    g.nodes.append(helper.make_node("Softmax" if softmax else "Identity", [x], [out_name],
                                    name=out_name, **({"axis": 1} if softmax else {})))

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                          ["N", spec.input_channels, *in_size])
    output = helper.make_tensor_value_info(out_name, TensorProto.FLOAT,
                                           ["N", spec.num_classes, *out_size])
    graph = helper.make_graph(g.nodes, "blast_ct_deepmedic", [image], [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lucida.inference.importers.deepmedic")
    model.ir_version = 8  # onnxruntime >= 1.15 reads it; newer IRs add nothing needed here
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())
