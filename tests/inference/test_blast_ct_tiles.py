"""BLAST-CT tiling, proven with the authors' weights on a real head CT (the gantry-tilt series
resampled to the pack's 1 mm LPS grid, HU-windowed as blast-ct does):

* a 140³ patch (60³ outputs) gives exactly the 2³ authors' 110³ tiles it replaces: DeepMedic
  is fully convolutional and, on the 30-voxel grid, its 3x and 5x pathways sample the same
  voxels (the phase argument in ``inference.importers.deepmedic``);
* the pack's tiling (``last_tile "on_grid"``, edge padding) run by ``sliding_window`` equals
  a direct emulation of blast-ct's tiling on a block whose sides are not multiples of 30,
  where moving the last tile back to the edge (``at_edge``) does not.

One member (model 1) keeps this within CI time: ~8 s on 2 threads, 1.3 GB peak RSS (the 140³
session).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from core.volume import Volume
from inference.importers.blast_ct_pack import LARGE_PATCH, MARGIN, PATCH, manifest_for
from inference.importers.deepmedic import build_deepmedic_onnx
from inference.importers.torch_legacy import load_state_dict
from inference.manifest import Manifest, parse_manifest
from inference.sliding_window import sliding_window
from inference.spaces import model_grid, to_model_grid
from tests.conftest import REQUIRE_SHARED, skip_or_fail

TILT = "ct/HeadCT_GE_gantry_tilt"
LOW, HIGH = -15.0, 100.0
OUT = PATCH - 2 * MARGIN  # 30: the authors' output block


@pytest.fixture(scope="module")
def config(blast: Path) -> dict[str, Any]:
    return dict(json.loads((blast / "config.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def manifest(config: dict[str, Any]) -> Manifest:
    return parse_manifest(manifest_for(config, [("member_1.onnx", "0" * 64)]), "blast-ct")


@pytest.fixture(scope="module")
def state(blast: Path) -> dict[str, Any]:
    return dict(load_state_dict(blast / "weights_v1" / "model_1.pt"))


@pytest.fixture(scope="module")
def head(shared_data: Path, manifest: Manifest) -> np.ndarray:
    """The whole gantry-tilt head CT on the pack's 1 mm LPS grid, HU-windowed to [-1, 1]
    (blast-ct's IntensityWindowNormalization), in tensor order (z, y, x)."""
    from dicomio.load import read_volume

    files = sorted((shared_data / TILT).glob("*.dcm"))
    if not files:
        skip_or_fail(f"{shared_data / TILT} has no .dcm files", REQUIRE_SHARED)
    vol: Volume = read_volume(files)
    grid = model_grid(vol.affine, vol.shape, manifest.input)
    hu = to_model_grid(vol.array, vol.affine, grid, interpolation="linear",
                       fill_value=float(vol.array.min()))
    x = np.clip(grid.to_tensor(hu).astype(np.float64), LOW, HIGH)
    out = ((2.0 * x - LOW - HIGH) / (HIGH - LOW)).astype(np.float32)
    assert out.shape == (231, 328, 250)  # 231 x 328 x 250 mm at 1 mm
    return out


def _session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z.astype(np.float64) - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def test_large_patch_equals_the_authors_110_tiles(config: dict[str, Any],
                                                  state: dict[str, Any],
                                                  head: np.ndarray) -> None:
    n = (LARGE_PATCH - 2 * MARGIN) // OUT
    assert LARGE_PATCH == 2 * MARGIN + n * OUT and n == 2
    # A block through the middle of the brain, starting on the authors' 30-voxel grid.
    lo = (90, 120, 90)
    region = head[lo[0]:lo[0] + LARGE_PATCH, lo[1]:lo[1] + LARGE_PATCH,
                  lo[2]:lo[2] + LARGE_PATCH][None, None]
    t0 = time.perf_counter()
    large = _session(build_deepmedic_onnx(state, config, input_size=(LARGE_PATCH,) * 3))
    big = _softmax(large.run(None, {"image": np.ascontiguousarray(region)})[0][0], 0)
    t1 = time.perf_counter()
    assert big.shape == (5, n * OUT, n * OUT, n * OUT)
    del large
    small = _session(build_deepmedic_onnx(state, config))  # the authors' 110³
    tiles = np.zeros_like(big)
    for a, b, c in np.ndindex(n, n, n):
        # The 30³ block at (30a, 30b, 30c) of the large output: its 110³ input starts there.
        z, y, x = OUT * a, OUT * b, OUT * c
        tile = np.ascontiguousarray(region[:, :, z:z + PATCH, y:y + PATCH, x:x + PATCH])
        tiles[:, z:z + OUT, y:y + OUT, x:x + OUT] = _softmax(
            small.run(None, {"image": tile})[0][0], 0)
    t2 = time.perf_counter()
    diff = float(np.abs(big - tiles).max())
    print(f"\n{LARGE_PATCH}³ patch vs {n ** 3} tiles of {PATCH}³: max |dp| = {diff:.3g} "
          f"(large {t1 - t0:.1f} s, tiles {t2 - t1:.1f} s); max lesion p "
          f"{float(tiles[1:].max()):.3f}")
    assert diff <= 1e-5
    assert tiles[1:].max() > 0.05  # real lesion-class signal, not only background
    # The same network one voxel off the grid samples the 3x/5x pathways in another phase:
    # its outputs differ from the large patch's at the same voxels (the grid matters).
    off = np.ascontiguousarray(region[:, :, 1:1 + PATCH, :PATCH, :PATCH])
    p_off = _softmax(small.run(None, {"image": off})[0][0], 0)
    assert float(np.abs(p_off - big[:, 1:1 + OUT, :OUT, :OUT]).max()) > 1e-3


def _authors(x: np.ndarray, predict: Any) -> np.ndarray:
    """blast-ct's tiling of a (z, y, x) array: 30³ blocks on the grid from voxel 0, the 110³
    input around each from the array np.pad-ed with mode 'edge', softmax per block."""
    blocks = [-(-s // OUT) for s in x.shape]
    xp = np.pad(x, [(MARGIN, MARGIN + OUT * b - s) for b, s in zip(blocks, x.shape,
                                                                     strict=True)], mode="edge")
    out = np.zeros((5, *(OUT * b for b in blocks)))
    for a in np.ndindex(*blocks):
        o = [OUT * v for v in a]
        tile = np.ascontiguousarray(xp[o[0]:o[0] + PATCH, o[1]:o[1] + PATCH,
                                       o[2]:o[2] + PATCH][None, None])
        out[:, o[0]:o[0] + OUT, o[1]:o[1] + OUT, o[2]:o[2] + OUT] = _softmax(
            predict(tile)[0], 0)
    return out[:, :x.shape[0], :x.shape[1], :x.shape[2]]


def test_pack_tiling_equals_the_authors_on_a_block_off_the_grid(
        config: dict[str, Any], state: dict[str, Any], head: np.ndarray,
        manifest: Manifest) -> None:
    t = manifest.tiling
    assert t.patch_size is not None
    assert (t.mode, t.last_tile, t.padding, t.overlap) == ("valid", "on_grid", "edge", 0.0)
    session = _session(build_deepmedic_onnx(state, config, input_size=t.patch_size))

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {"image": batch})[0])

    # 37 voxels on the first axis: a second tile whose last 23 outputs lie past the block;
    # moved back to the edge it would start at 7, off the 3- and 5-voxel phase.
    x = np.ascontiguousarray(head[100:137, 150:170, 110:130])
    expected = _authors(x, predict)

    def tiled(last_tile: Any) -> np.ndarray:
        assert t.patch_size is not None
        return _softmax(sliding_window(
            x[None], predict, patch=t.patch_size, out_channels=5, overlap=t.overlap,
            blending=t.blending, margin=t.output_margin, batch_size=t.batch_size,
            padding=t.padding, last_tile=last_tile), 0)

    on_grid = tiled(t.last_tile)
    diff = float(np.abs(on_grid - expected).max())
    at_edge = float(np.abs(tiled("at_edge") - expected).max())
    print(f"\nblock {x.shape}: on_grid vs the authors' tiling max |dp| = {diff:.3g}; "
          f"at_edge {at_edge:.3g}")
    assert diff <= 1e-5
    assert at_edge > 1e-3
