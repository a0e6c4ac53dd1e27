"""Read the TF.js weight manifest and .bin shards into per-layer NCDHW arrays."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.importers.brainchop_topology import ConvSpec, MeshNetImportError, Topology

Array32 = npt.NDArray[np.float32]


def read_weights(model_json: Mapping[str, Any], folder: Path) -> dict[str, Array32]:
    """name -> float32 array in the manifest's own shape (TF.js layout)."""
    manifest = model_json.get("weightsManifest")
    if not isinstance(manifest, list) or not manifest:
        raise MeshNetImportError("model.json: field 'weightsManifest' is missing or empty")
    out: dict[str, Array32] = {}
    for g, group in enumerate(manifest):
        paths = group.get("paths") or []
        blobs = []
        for rel in paths:
            path = folder / rel
            if not path.is_file():
                raise MeshNetImportError(f"weightsManifest[{g}]: weights file {rel!r} "
                                         f"is missing from {folder}")
            blobs.append(path.read_bytes())
        data = b"".join(blobs)  # shards of a group are one concatenated buffer
        offset = 0
        for spec in group.get("weights") or []:
            name = str(spec.get("name"))
            if spec.get("dtype", "float32") != "float32" or "quantization" in spec:
                raise MeshNetImportError(f"weight {name!r}: field 'dtype'/'quantization' "
                                         f"({spec.get('dtype')!r}, {spec.get('quantization')!r})"
                                         " is not supported (float32 only)")
            shape = tuple(int(s) for s in spec.get("shape", []))
            nbytes = 4 * int(np.prod(shape, dtype=np.int64))
            if offset + nbytes > len(data):
                raise MeshNetImportError(f"weight {name!r}: the shards of weightsManifest[{g}] "
                                         f"hold {len(data)} bytes, {offset + nbytes} needed")
            out[name] = np.frombuffer(data, dtype="<f4", count=nbytes // 4,
                                      offset=offset).reshape(shape).astype(np.float32)
            offset += nbytes
        if offset != len(data):
            raise MeshNetImportError(f"weightsManifest[{g}]: {len(data) - offset} bytes of "
                                     f"{paths!r} are not described by the manifest")
    return out


def conv_weights(topology: Topology, weights: Mapping[str, Array32]
                 ) -> list[tuple[Array32, Array32 | None]]:
    """Per Conv3D: kernel as ONNX (out, in, kd, kh, kw) and the bias (or None)."""
    result: list[tuple[Array32, Array32 | None]] = []
    channels = 1
    used: set[str] = set()
    for conv in topology.convs:
        kernel = _get(weights, conv, "kernel")
        want = (conv.kernel, conv.kernel, conv.kernel, channels, conv.filters)
        if kernel.shape != want:
            raise MeshNetImportError(f"layer {conv.name!r}: weight '{conv.name}/kernel' has "
                                     f"shape {list(kernel.shape)}, expected {list(want)}")
        # TF.js [kd, kh, kw, in, out] -> ONNX [out, in, kd, kh, kw]; spatial axes keep order.
        onnx_kernel = np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))
        used.add(f"{conv.name}/kernel")
        bias: Array32 | None = None
        if conv.use_bias:
            bias = _get(weights, conv, "bias")
            if bias.shape != (conv.filters,):
                raise MeshNetImportError(f"layer {conv.name!r}: weight '{conv.name}/bias' has "
                                         f"shape {list(bias.shape)}, expected [{conv.filters}]")
            used.add(f"{conv.name}/bias")
        result.append((onnx_kernel, bias))
        channels = conv.filters
    unused = sorted(set(weights) - used)
    if unused:
        raise MeshNetImportError(f"weightsManifest: weights {unused} belong to no layer "
                                 "of the topology")
    return result


def _get(weights: Mapping[str, Array32], conv: ConvSpec, what: str) -> Array32:
    key = f"{conv.name}/{what}"
    if key not in weights:
        raise MeshNetImportError(f"layer {conv.name!r}: weight {key!r} is missing from "
                                 "weightsManifest")
    return weights[key]
