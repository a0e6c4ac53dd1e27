"""``tiling.last_tile`` through ``inference.pipeline.run`` (what ``lucida infer`` runs), with a
small real ONNX network that subsamples like DeepMedic: a pack that asks for ``on_grid`` gets
the authors' tiling (blocks on the grid from voxel 0, edge padding past the end), one that
asks for ``at_edge`` gets the last tile moved back to the volume's edge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.volume import Volume
from inference import pipeline

Q, M, S = 6, 3, 3  # output block, margin, subsampling
P = Q + 2 * M
SHAPE = (13, 20, 7)  # k, j, i: no axis a multiple of Q, the last tiles off the 3-phase


def _subsample_model() -> bytes:
    """Valid network P³ → Q³: output voxel o = input voxel M + S (o // S) + S // 2, i.e. every
    S-block of outputs takes the input at its centre, counted from the tile's output origin
    (strided Slice, then nearest Resize: DeepMedic's 3x pathway without the convolutions)."""
    def i64(name: str, v: list[int]) -> Any:
        return numpy_helper.from_array(np.array(v, dtype=np.int64), name)

    inits = [i64("st", [M + S // 2] * 3), i64("en", [M + Q] * 3), i64("ax", [2, 3, 4]),
             i64("sp", [S] * 3),
             numpy_helper.from_array(np.array([1, 1, S, S, S], dtype=np.float32), "sc")]
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["low"]),
             helper.make_node("Resize", ["low", "", "sc"], ["y"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    graph = helper.make_graph(
        nodes, "subsample",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, P, P, P])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, Q, Q, Q])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _authors(x: np.ndarray) -> np.ndarray:
    """The same network tiled as blast-ct does: blocks of Q from voxel 0, np.pad 'edge'."""
    blocks = [-(-s // Q) for s in x.shape]
    xp = np.pad(x, [(M, M + Q * b - s) for b, s in zip(blocks, x.shape, strict=True)],
                mode="edge")
    centres = M + (np.arange(Q) // S) * S + S // 2
    out = np.zeros([Q * b for b in blocks], dtype=np.float32)
    for a in np.ndindex(*blocks):
        o = [Q * v for v in a]
        tile = xp[o[0]:o[0] + P, o[1]:o[1] + P, o[2]:o[2] + P]
        out[o[0]:o[0] + Q, o[1]:o[1] + Q, o[2]:o[2] + Q] = (
            tile[centres][:, centres][:, :, centres])
    return out[:x.shape[0], :x.shape[1], :x.shape[2]]


def test_pipeline_honours_last_tile_on_grid(make_pack: Callable[..., Path]) -> None:
    x = np.random.default_rng(16).uniform(0.0, 1.0, SHAPE).astype(np.float32)
    vol = Volume(x, np.eye(4), series_uid="2.25.16005", modality="CT")
    expected = _authors(x)
    heat = {}
    for last_tile in ("on_grid", "at_edge"):
        pack = make_pack(_subsample_model(), tiling={
            "mode": "valid", "patch_size": [P] * 3, "output_margin": [M] * 3,
            "overlap": 0.0, "blending": "constant", "padding": "edge", "batch_size": 2,
            "last_tile": last_tile})
        result = pipeline.run(vol, pack, threads=1, providers="cpu")
        assert result.provenance["parameters"]["exact_reorientation"] is True
        assert result.heatmap is not None
        heat[last_tile] = result.heatmap.array
    assert heat["on_grid"].shape == SHAPE
    np.testing.assert_allclose(heat["on_grid"], expected, rtol=0, atol=1e-6)
    # Moved back to the edge, the last tiles sample other voxels: the test can tell.
    assert float(np.abs(heat["at_edge"] - expected).max()) > 0.1
