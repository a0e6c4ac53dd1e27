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
