"""Resampling one grid onto another, both described by Lucida affines.

``scipy.ndimage.affine_transform`` handles any affine (including the sheared
ones of gantry-tilted stacks); the SimpleITK path is used by callers that
already hold SimpleITK images. Labels use nearest neighbour, intensities
linear: linear interpolation of labels invents classes.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.volume import FloatArray

Interpolation = Literal["nearest", "linear"]


def resample_array(
    array_kji: npt.NDArray[Any],
    source_affine: FloatArray,
    target_affine: FloatArray,
    target_shape: tuple[int, int, int],
    interpolation: Interpolation = "linear",
    fill_value: float = 0.0,
    output_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Values of ``array_kji`` (on ``source_affine``) sampled at every voxel centre
    of the target grid. Points outside the source get ``fill_value``."""
    # target index -> LPS -> source index, one affine.
    matrix = np.linalg.inv(source_affine) @ target_affine
    order = 0 if interpolation == "nearest" else 1
    work = array_kji if order == 0 else array_kji.astype(np.float32, copy=False)
    from scipy import ndimage  # here, not at import: start-up does not resample

    out = ndimage.affine_transform(
        work,
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=target_shape,
        order=order,
        # grid-constant: a point within half a voxel of the edge still samples the
        # edge voxel (nearest) instead of falling off the grid by round-off.
        mode="grid-constant",
        cval=fill_value,
        prefilter=False,
    )
    dtype = array_kji.dtype if output_dtype is None else np.dtype(output_dtype)
    if np.issubdtype(dtype, np.integer) and order > 0:
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return np.asarray(out, dtype=dtype)


def grid_covering(
    source_affine: FloatArray,
    source_shape: tuple[int, int, int],
    direction: FloatArray,
    spacing_mm: npt.ArrayLike,
) -> tuple[FloatArray, tuple[int, int, int]]:
    """Affine and shape of a grid with the given direction (columns k, j, i) and
    spacing that covers every voxel centre of the source grid."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    k, j, i = (n - 1 for n in source_shape)
    corners = np.array([[a, b, c, 1.0] for a in (0, k) for b in (0, j) for c in (0, i)])
    world = (source_affine @ corners.T)[:3]
    axes = direction * spacing  # world step per target index
    # Coordinates of the corners in the target's (unnormalised) axis frame.
    coords = np.linalg.solve(axes, world)
    lo = coords.min(axis=1)
    hi = coords.max(axis=1)
    shape = tuple(int(np.floor(h - low + 1e-6)) + 1 for low, h in zip(lo, hi, strict=True))
    affine = np.eye(4)
    affine[:3, :3] = axes
    affine[:3, 3] = axes @ lo
    return affine, (shape[0], shape[1], shape[2])
