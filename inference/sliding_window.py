"""Sliding-window inference: tile, run in batches, blend, stitch.

Design choices that make it fast and lean:

* The importance map (Gaussian or constant) is separable and the tiles form a
  Cartesian grid, so the sum of weights at every voxel is the outer product
  of three 1-D sums: no weight accumulator volume, and normalisation is three
  broadcast multiplies.
* Input tiles are gathered into one preallocated ``[B, C, *patch]`` buffer;
  each network output is weighted in place and added into the accumulator
  (float32, or float16 to halve the largest array).
* With ``lanes`` > 1, that many tile batches run at once, each on fewer
  threads: much of a 3-D U-Net (normalisation, activations, ConvTranspose's
  col2im) is single-threaded in onnxruntime, so a second tile keeps the other
  cores busy. Results are still added in tile order.
* "valid" tiling handles networks whose output is smaller than their input:
  the volume is padded by the margin and output tiles cover it exactly.
* ``last_tile="on_grid"`` keeps every tile on the stride grid from the volume's start
  (the last one reaching past the end, its input padded, its surplus output cropped)
  instead of moving the last tile back to end at the volume: networks that subsample
  (DeepMedic's 3x and 5x pathways) then see every voxel in the same phase as the
  authors' tiling does.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.errors import CancelledError, InferenceError
from core.progress import CancelToken

Array32 = npt.NDArray[np.float32]
Predictor = Callable[[Array32], Array32]
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TilePlan:
    """Where tiles go, for an image of ``image_shape`` (spatial, tensor order)."""

    image_shape: tuple[int, int, int]
    patch: tuple[int, int, int]  # network input size
    out_patch: tuple[int, int, int]  # network output size (patch - 2 * margin)
    margin: tuple[int, int, int]
    extent: tuple[int, int, int]  # output region covered (>= image, padded if smaller)
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # output-tile starts

    @property
    def n_tiles(self) -> int:
        return len(self.starts[0]) * len(self.starts[1]) * len(self.starts[2])

    def tile_starts(self) -> list[tuple[int, int, int]]:
        return [(a, b, c) for a, b, c in itertools.product(*self.starts)]


LastTile = Literal["at_edge", "on_grid"]


def axis_starts(length: int, size: int, overlap: float,
                last_tile: LastTile = "at_edge") -> tuple[int, ...]:
    """Start offsets covering ``[0, length)`` with windows of ``size`` (MONAI's rule).

    ``at_edge``: the last window is moved back to end at ``length``; ``on_grid``: every
    window starts on a multiple of the stride, the last one may end past ``length``.
    """
    if length <= size:
        return (0,)
    stride = max(1, int(size * (1.0 - overlap)))
    n = math.ceil((length - size) / stride) + 1
    if last_tile == "on_grid":
        return tuple(i * stride for i in range(n))
    return tuple(sorted({min(i * stride, length - size) for i in range(n)}))


def queue_depth(lanes: int) -> int:
    """Tile batches queued at once: with lanes > 1 one more than there are lanes, so a
    lane that finishes early starts the next batch while the main thread waits for the
    oldest. The memory estimate counts one input/output buffer per queued batch."""
    return lanes + 1 if lanes > 1 else 1


def plan_tiles(image_shape: Sequence[int], patch: Sequence[int], overlap: float,
               margin: Sequence[int] = (0, 0, 0), last_tile: LastTile = "at_edge") -> TilePlan:
    shape = tuple(int(s) for s in image_shape)
    p = tuple(int(x) for x in patch)
    m = tuple(int(x) for x in margin)
    q = tuple(pp - 2 * mm for pp, mm in zip(p, m, strict=True))
    if any(x < 1 for x in q):
        raise InferenceError(f"patch {p} with margin {m} leaves no output")
    covered = tuple(max(s, qq) for s, qq in zip(shape, q, strict=True))
    starts = tuple(axis_starts(e, qq, overlap, last_tile)
                   for e, qq in zip(covered, q, strict=True))
    # on_grid: the output region runs to the end of the last tile, past the image.
    extent = tuple(st[-1] + qq for st, qq in zip(starts, q, strict=True))
    return TilePlan(
        image_shape=(shape[0], shape[1], shape[2]),
        patch=(p[0], p[1], p[2]),
        out_patch=(q[0], q[1], q[2]),
        margin=(m[0], m[1], m[2]),
        extent=(extent[0], extent[1], extent[2]),
        starts=(starts[0], starts[1], starts[2]),
    )


def importance_1d(size: int, blending: Literal["gaussian", "constant"],
                  sigma_scale: float) -> npt.NDArray[np.float64]:
    if blending == "constant":
        return np.ones(size, dtype=np.float64)
    sigma = max(sigma_scale * size, 1e-6)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.max()
    # Never zero: edge voxels covered by one tile only must still be defined. The
    # floor is far below the usual profile (exp(-8) = 3.4e-4 at the edge for
    # sigma_scale 0.125), so overlaps blend like MONAI's and nnU-Net's Gaussian.
    return np.maximum(g, 1e-6)


def importance_map(out_patch: Sequence[int], blending: Literal["gaussian", "constant"],
                   sigma_scale: float) -> Array32:
    """The 3-D blending weights (outer product of the 1-D profiles), computed once."""
    g = [importance_1d(int(s), blending, sigma_scale) for s in out_patch]
    return np.asarray(g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :],
                      dtype=np.float32)


def weight_sums(plan: TilePlan, blending: Literal["gaussian", "constant"],
                sigma_scale: float) -> list[npt.NDArray[np.float64]]:
    """Per-axis sums of the 1-D weights over all tiles (their outer product is the total)."""
    sums = []
    for axis in range(3):
        g = importance_1d(plan.out_patch[axis], blending, sigma_scale)
        w = np.zeros(plan.extent[axis], dtype=np.float64)
        for s in plan.starts[axis]:
            w[s:s + plan.out_patch[axis]] += g
        sums.append(w)
    return sums


def sliding_window(
    image: Array32,
    predict: Predictor,
    *,
    patch: Sequence[int],
    out_channels: int,
    overlap: float = 0.25,
    blending: Literal["gaussian", "constant"] = "gaussian",
    sigma_scale: float = 0.125,
    margin: Sequence[int] = (0, 0, 0),
    batch_size: int = 1,
    pad_value: float = 0.0,
    padding: Literal["constant", "edge"] = "constant",
    accumulator_dtype: npt.DTypeLike = np.float32,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    lanes: int = 1,
    last_tile: LastTile = "at_edge",
) -> npt.NDArray[Any]:
    """Run ``predict`` over overlapping tiles of ``image`` ``[C, a0, a1, a2]``.

    ``predict`` maps ``[B, C, *patch]`` float32 to ``[B, out_channels, *out_patch]``.
    ``lanes`` > 1 keeps that many batches in flight on worker threads; ``predict``
    must then be thread-safe (an onnxruntime session is). ``last_tile``: see
    :func:`axis_starts` (``on_grid`` pads the input past the end with ``padding``).
    Returns the blended output ``[out_channels, a0, a1, a2]`` in ``accumulator_dtype``.
    """
    if image.ndim != 4:
        raise InferenceError(f"sliding window needs [C, a0, a1, a2], got {image.shape}")
    spatial = image.shape[1:]
    plan = plan_tiles(spatial, patch, overlap, margin, last_tile)
    m, p, q = plan.margin, plan.patch, plan.out_patch

    # Input is needed on [-m, extent + m) per axis; pad only if that leaves the image.
    pads = [(mm, e + mm - s) for mm, e, s in zip(m, plan.extent, spatial, strict=True)]
    if any(a or b for a, b in pads):
        work = pad_image(image, pads, padding, pad_value)
    else:
        work = image

    acc_dtype = np.dtype(accumulator_dtype)
    acc = np.zeros((out_channels, *plan.extent), dtype=acc_dtype)
    imp = importance_map(q, blending, sigma_scale)
    sums = weight_sums(plan, blending, sigma_scale)
    # float16 cannot hold the tiny corner weights (down to 1e-9): there each tile is
    # weighted by its share of the total weight, so nothing is divided afterwards.
    prenormalise = acc_dtype.itemsize < 4
    g1d = [importance_1d(qq, blending, sigma_scale) for qq in q]
    lanes = max(1, int(lanes))
    depth = queue_depth(lanes)
    # One input buffer per batch in flight; batch i fills buffer i % depth, which the
    # batch i - depth has released (results are taken in order, before the next submit).
    bufs = [np.empty((batch_size, image.shape[0], *p), dtype=np.float32) for _ in range(depth)]
    tiles = plan.tile_starts()
    batches = [tiles[i:i + batch_size] for i in range(0, len(tiles), batch_size)]
    n = len(tiles)
    done = 0
    t0 = time.perf_counter()

    def fill(index: int, chunk: list[tuple[int, int, int]]) -> Array32:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("inference cancelled by the user")
        buf = bufs[index % depth]
        for b, (a0, a1, a2) in enumerate(chunk):
            # Output tile at a; its input, in padded coordinates, starts at a too.
            buf[b] = work[:, a0:a0 + p[0], a1:a1 + p[1], a2:a2 + p[2]]
        return buf[:len(chunk)]

    def weighted(chunk: list[tuple[int, int, int]], batch: Array32) -> Array32:
        """Run the network on one batch and weight its tiles (on a lane when lanes > 1)."""
        out = predict(batch)
        expected = (len(chunk), out_channels, *q)
        if out.shape != expected:
            raise InferenceError(
                f"the network returned shape {tuple(out.shape)} for input "
                f"{(len(chunk), image.shape[0], *p)}; expected {expected} (check "
                "tiling.patch_size, output_margin and output.channels in the manifest)"
            )
        if not (np.isfinite(out.max()) and np.isfinite(out.min())):
            raise InferenceError(
                "the network produced NaN or infinite values; the model or its input "
                "normalisation is broken for this image"
            )
        if not out.flags.writeable:
            out = out.copy()
        for b, (a0, a1, a2) in enumerate(chunk):
            tile = out[b]
            if prenormalise:
                f0, f1, f2 = (g1d[ax] / sums[ax][st:st + q[ax]]
                              for ax, st in enumerate((a0, a1, a2)))
                w = (f0[:, None, None] * f1[None, :, None] * f2[None, None, :])
                np.multiply(tile, w.astype(np.float32), out=tile)
            else:
                np.multiply(tile, imp, out=tile)
        return out

    def add(chunk: list[tuple[int, int, int]], out: Array32) -> None:
        nonlocal done
        for b, (a0, a1, a2) in enumerate(chunk):
            acc[:, a0:a0 + q[0], a1:a1 + q[1], a2:a2 + q[2]] += out[b]
        done += len(chunk)
        if progress is not None:
            elapsed = time.perf_counter() - t0
            eta = elapsed / done * (n - done)
            progress(done / n, f"tile {done}/{n}, about {eta:.0f} s left")

    if lanes == 1:
        for i, chunk in enumerate(batches):
            add(chunk, weighted(chunk, fill(i, chunk)))
    else:
        # Tiles in flight on worker threads (onnxruntime and numpy release the GIL);
        # results are added in tile order, so the sum is the same as with one lane.
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="lucida-tile") as pool:
            pending: deque[tuple[list[tuple[int, int, int]], Future[Array32]]] = deque()
            try:
                for i, chunk in enumerate(batches):
                    if len(pending) == depth:
                        c, fut = pending.popleft()
                        add(c, fut.result())
                    pending.append((chunk, pool.submit(weighted, chunk, fill(i, chunk))))
                while pending:
                    c, fut = pending.popleft()
                    add(c, fut.result())
            finally:
                for _, fut in pending:
                    fut.cancel()

    result = acc[:, :spatial[0], :spatial[1], :spatial[2]]
    if not prenormalise:
        inv = [(1.0 / w[:s]).astype(acc_dtype) for w, s in zip(sums, spatial, strict=True)]
        result *= inv[0][None, :, None, None]
        result *= inv[1][None, None, :, None]
        result *= inv[2][None, None, None, :]
    if result.shape != acc.shape:
        result = np.ascontiguousarray(result)
    return result


def pad_image(image: Array32, pads: Sequence[tuple[int, int]], padding: str,
              pad_value: float) -> Array32:
    if padding == "edge":
        return np.pad(image, [(0, 0), *pads], mode="edge")
    return np.pad(image, [(0, 0), *pads], mode="constant", constant_values=pad_value)


def whole_shape(spatial: Sequence[int], divisible_by: int) -> tuple[int, ...]:
    """The grid a "whole" run feeds the network: each axis padded up to ``divisible_by``."""
    return tuple(int(math.ceil(s / divisible_by) * divisible_by) for s in spatial)


def whole_image(image: Array32, predict: Predictor, *, out_channels: int, divisible_by: int,
                pad_value: float = 0.0, padding: Literal["constant", "edge"] = "constant"
                ) -> Array32:
    """Run the network once on the whole image, padded up to ``divisible_by``."""
    spatial = image.shape[1:]
    target = whole_shape(spatial, divisible_by)
    pads = [(0, t - s) for t, s in zip(target, spatial, strict=True)]
    work = image
    if any(b for _, b in pads):
        work = pad_image(image, pads, padding, pad_value)
    out = predict(np.ascontiguousarray(work[None]))
    if out.ndim != 5 or out.shape[1] != out_channels or tuple(out.shape[2:]) != tuple(target):
        raise InferenceError(
            f"the network returned shape {tuple(out.shape)} for input {(1, *work.shape)}; "
            f"expected (1, {out_channels}, {', '.join(map(str, target))})"
        )
    if not (np.isfinite(out.max()) and np.isfinite(out.min())):
        raise InferenceError(
            "the network produced NaN or infinite values; the model or its input "
            "normalisation is broken for this image"
        )
    return np.ascontiguousarray(out[0, :, :spatial[0], :spatial[1], :spatial[2]])
