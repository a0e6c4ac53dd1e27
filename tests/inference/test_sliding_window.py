"""Sliding window: stitched outputs of known networks are known exactly."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from inference import runtime
from inference.sliding_window import (
    axis_starts,
    importance_map,
    plan_tiles,
    sliding_window,
    weight_sums,
)


def _predictor(model: bytes) -> Any:
    session, _ = runtime.create_session(model, "cpu", 1)
    name_in, name_out = runtime.check_io(session, "test", 1, None, None)
    return lambda batch: runtime.run_session(session, name_in, name_out, batch)


SHAPES = [(20, 20, 20), (5, 30, 17), (3, 3, 3), (40, 9, 25), (8, 8, 8)]
PATCHES = [(8, 8, 8), (16, 8, 4)]
OVERLAPS = [0.0, 0.25, 0.5]
BLENDS = ["gaussian", "constant"]




def _rng_image(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, *shape)).astype(np.float32)


@pytest.mark.parametrize(("shape", "patch", "overlap", "blending"),
                         list(itertools.product(SHAPES, PATCHES, OVERLAPS, BLENDS)))
def test_identity_and_scale_stitch_exactly(models: dict[str, Any], shape: tuple[int, int, int],
                                           patch: tuple[int, int, int], overlap: float,
                                           blending: str) -> None:
    image = _rng_image(shape)
    for factor in (1.0, 2.5):
        model = models["identity"]() if factor == 1.0 else models["scale"](factor)
        out = sliding_window(image, _predictor(model), patch=patch, out_channels=1,
                             overlap=overlap, blending=blending,  # type: ignore[arg-type]
                             batch_size=3, pad_value=-7.0)
        assert out.shape == image.shape
        np.testing.assert_allclose(out, image * factor, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("shape", "patch", "overlap"), [
    ((20, 20, 20), (8, 8, 8), 0.25),
    ((5, 30, 17), (8, 8, 8), 0.5),
    ((3, 3, 3), (8, 8, 8), 0.25),   # volume smaller than the output patch
    ((23, 11, 6), (10, 6, 12), 0.0),
    ((1, 12, 12), (4, 4, 4), 0.25),
])
@pytest.mark.parametrize("blending", BLENDS)
def test_valid_convolution_matches_full_convolution(models: dict[str, Any],
                                                    shape: tuple[int, int, int],
                                                    patch: tuple[int, int, int],
                                                    overlap: float, blending: str) -> None:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3)).astype(np.float32)
    image = _rng_image(shape, 2)
    pad = -0.5
    out = sliding_window(image, _predictor(models["conv"](kernel, 0)), patch=patch,
                         out_channels=1, overlap=overlap, blending=blending,  # type: ignore[arg-type]
                         margin=(1, 1, 1), batch_size=2, pad_value=pad)
    expected = ndimage.correlate(image[0].astype(np.float64), kernel.astype(np.float64),
                                 mode="constant", cval=pad)
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)


def test_same_padding_convolution_whole_tile_is_exact(models: dict[str, Any]) -> None:
    # A 'same' convolution zero-pads at the patch edge: exact when one tile holds the volume.
    kernel = np.zeros((3, 3, 3), dtype=np.float32)
    kernel[1, 1, 1], kernel[0, 1, 1], kernel[2, 1, 2] = 1.0, 0.5, -2.0
    image = _rng_image((6, 7, 5), 3)
    out = sliding_window(image, _predictor(models["conv"](kernel, 1)), patch=(6, 7, 5),
                         out_channels=1, overlap=0.25, pad_value=0.0)
    expected = ndimage.correlate(image[0], kernel, mode="constant", cval=0.0)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-5)


def test_float16_accumulator_is_close(models: dict[str, Any]) -> None:
    image = np.random.default_rng(4).uniform(size=(1, 19, 21, 17)).astype(np.float32)
    out = sliding_window(image, _predictor(models["identity"]()), patch=(8, 8, 8),
                         out_channels=1, overlap=0.5, accumulator_dtype=np.float16)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), image, atol=2e-3)


def test_tile_plan_covers_every_voxel() -> None:
    for length, size, overlap in [(256, 96, 0.25), (160, 96, 0.25), (10, 3, 0.9), (5, 8, 0.25)]:
        starts = axis_starts(length, size, overlap)
        covered = np.zeros(max(length, size), bool)
        for s in starts:
            covered[s:s + size] = True
        assert covered[:length].all()
        assert starts[-1] + size == max(length, size)
    plan = plan_tiles((256, 256, 160), (96, 96, 96), 0.25)
    assert plan.n_tiles == 4 * 4 * 2  # MONAI's count for the benchmark case


def test_separable_weights_equal_summed_importance_maps() -> None:
    plan = plan_tiles((21, 13, 30), (8, 6, 10), 0.4)
    imp = importance_map(plan.out_patch, "gaussian", 0.125)
    total = np.zeros(plan.extent)
    for a, b, c in plan.tile_starts():
        total[a:a + 8, b:b + 6, c:c + 10] += imp
    w0, w1, w2 = weight_sums(plan, "gaussian", 0.125)
    np.testing.assert_allclose(total, w0[:, None, None] * w1[None, :, None] * w2[None, None, :],
                               rtol=1e-5)


# --- valid tiling with the last tile on the output grid (DeepMedic / BLAST-CT) ---------------

ON_GRID_SHAPES = [(13, 20, 7), (6, 6, 6), (4, 17, 12), (25, 5, 19)]


def _phase_net(q: int, m: int, s: int) -> Any:
    """A numpy 'valid' network (input q + 2m, output q) with a subsampled pathway, like
    DeepMedic's: channel 0 is a 3x3x3 box sum around each output voxel; channel 1 is the
    input at the centre of the s-block (counted from the tile's own output origin) that
    holds the voxel, so it depends on where tiles start modulo s, as DeepMedic's 3x and 5x
    pathways do."""
    centres = m + (np.arange(q) // s) * s + s // 2

    def predict(batch: np.ndarray) -> np.ndarray:
        x = batch[:, 0].astype(np.float64)
        box = sum(x[:, m - 1 + a:m - 1 + a + q, m - 1 + b:m - 1 + b + q,
                    m - 1 + c:m - 1 + c + q]
                  for a in range(3) for b in range(3) for c in range(3))
        low = x[:, centres][:, :, centres][:, :, :, centres]
        return np.stack([box, low], axis=1).astype(np.float32)

    return predict


def _authors_tiling(image: np.ndarray, predict: Any, q: int, m: int) -> np.ndarray:
    """blast-ct's rule: output blocks of q on the grid from voxel 0, each fed the q + 2m input
    around it from the volume edge-padded (np.pad 'edge'), the surplus cropped."""
    shape = image.shape[1:]
    blocks = [-(-s // q) for s in shape]
    xp = np.pad(image[0], [(m, m + q * b - s) for b, s in zip(blocks, shape, strict=True)],
                mode="edge")
    out = np.zeros((2, *(q * b for b in blocks)), dtype=np.float32)
    for a in np.ndindex(*blocks):
        o = [q * v for v in a]
        tile = xp[o[0]:o[0] + q + 2 * m, o[1]:o[1] + q + 2 * m, o[2]:o[2] + q + 2 * m]
        out[:, o[0]:o[0] + q, o[1]:o[1] + q, o[2]:o[2] + q] = predict(tile[None, None])[0]
    return out[:, :shape[0], :shape[1], :shape[2]]


@pytest.mark.parametrize("shape", ON_GRID_SHAPES)
def test_on_grid_valid_tiling_equals_the_authors_tiling(shape: tuple[int, int, int]) -> None:
    q, m, s = 6, 3, 3
    image = _rng_image(shape, 5)
    predict = _phase_net(q, m, s)
    expected = _authors_tiling(image, predict, q, m)
    kwargs: dict[str, Any] = dict(patch=(q + 2 * m,) * 3, out_channels=2, overlap=0.0,
                                  blending="constant", margin=(m,) * 3, batch_size=3,
                                  padding="edge", pad_value=-9.0)
    out = sliding_window(image, predict, last_tile="on_grid", **kwargs)
    assert out.shape == (2, *shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    # Moving the last tile back to the volume's edge changes the subsampled channel
    # wherever an axis is longer than one tile and not a multiple of the output size.
    at_edge = sliding_window(image, predict, **kwargs)
    np.testing.assert_allclose(at_edge[0], expected[0], rtol=0, atol=1e-4)  # box: no phase
    shifted = any(n > q and (n - q) % s for n in shape)  # the last tile off the s-phase
    assert (float(np.abs(at_edge[1] - expected[1]).max()) > 1e-3) == shifted


def test_on_grid_plan_keeps_every_tile_on_the_stride_grid() -> None:
    assert axis_starts(231, 30, 0.0, "on_grid") == tuple(range(0, 240, 30))
    assert axis_starts(231, 30, 0.0) == (*range(0, 210, 30), 201)
    assert axis_starts(20, 30, 0.0, "on_grid") == (0,)
    assert axis_starts(100, 40, 0.5, "on_grid") == (0, 20, 40, 60)
    plan = plan_tiles((231, 328, 250), (200, 200, 200), 0.0, (40, 40, 40), "on_grid")
    assert plan.out_patch == (120, 120, 120)
    assert plan.starts == ((0, 120), (0, 120, 240), (0, 120, 240))
    assert plan.extent == (240, 360, 360)  # past the image; the surplus is cropped
    edge = plan_tiles((231, 328, 250), (200, 200, 200), 0.0, (40, 40, 40))
    assert edge.starts == ((0, 111), (0, 120, 208), (0, 120, 130))
    assert edge.extent == (231, 328, 250)


def test_on_grid_with_overlap_blends_like_at_edge_inside(models: dict[str, Any]) -> None:
    # A valid convolution has no phase: with overlapping tiles both placements give the
    # full convolution of the edge-padded volume.
    rng = np.random.default_rng(6)
    kernel = rng.normal(size=(3, 3, 3)).astype(np.float32)
    image = _rng_image((23, 11, 9), 7)
    out = sliding_window(image, _predictor(models["conv"](kernel, 0)), patch=(8, 8, 8),
                         out_channels=1, overlap=0.5, blending="gaussian", margin=(1, 1, 1),
                         padding="edge", last_tile="on_grid")
    expected = ndimage.correlate(image[0].astype(np.float64), kernel.astype(np.float64),
                                 mode="nearest")
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
