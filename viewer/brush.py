"""Brush / eraser strokes: what the slice view emits and which voxels a stroke covers.

Pure numpy (no Qt, no VTK), so the review session can turn a stroke into
voxels without a window and tests can check it exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from viewer.planes import PLANE_AXES, PLANE_NAMES

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MIN_RADIUS_MM = 0.5
MAX_RADIUS_MM = 50.0
DEFAULT_RADIUS_MM = 5.0


def clamp_radius_mm(radius_mm: float) -> float:
    """A brush radius within what the views draw (MIN_RADIUS_MM..MAX_RADIUS_MM)."""
    return float(np.clip(radius_mm, MIN_RADIUS_MM, MAX_RADIUS_MM))


@dataclass(frozen=True)
class PaintStroke:
    """One piece of a brush (or eraser) drag on a slice view.

    ``points_lps`` (N×3, LPS mm) is the new segment since the last emission
    (one point on press and on release); ``finished`` is True once, on release.
    """

    plane: str
    points_lps: FloatArray = field(repr=False)
    radius_mm: float
    erase: bool
    finished: bool


def plane_normal(plane: str) -> FloatArray:
    if plane not in PLANE_NAMES:
        raise ValueError(f"plane must be one of {PLANE_NAMES}, got {plane!r}")
    right, up = (np.asarray(v, dtype=np.float64) for v in PLANE_AXES[plane])
    return np.asarray(np.cross(right, up), dtype=np.float64)


def _segment_distance(p: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """Distance of each row of ``p`` to segment a–b (all already in the plane)."""
    ab = b - a
    denom = float(ab @ ab)
    if denom == 0.0:
        return np.asarray(np.linalg.norm(p - a, axis=1), dtype=np.float64)
    t = np.clip((p - a) @ ab / denom, 0.0, 1.0)
    return np.asarray(np.linalg.norm(p - (a + t[:, None] * ab), axis=1), dtype=np.float64)


def stroke_voxels(volume_affine: npt.ArrayLike, shape: Sequence[int], plane: str,
                  points_lps: npt.ArrayLike,
                  radius_mm: float) -> tuple[tuple[int, int, int], BoolArray]:
    """Voxels a stroke covers: ``(offset (k, j, i), bool crop)``; an empty crop when none.

    A voxel is covered when its centre lies within ``radius_mm`` (in the view
    plane) of the stroke polyline and within half a slice spacing of the
    viewed slice (the plane through the first point), so a stroke never paints
    the neighbouring slices. The slice spacing is that of the volume axis most
    parallel to the plane normal (as the slice views step).
    """
    affine = np.asarray(volume_affine, dtype=np.float64)
    pts = np.atleast_2d(np.asarray(points_lps, dtype=np.float64))
    if pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError("points_lps must be N×3 with N ≥ 1")
    n = plane_normal(plane)
    cols = affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    aligned = int(np.argmax(np.abs((cols / spacing).T @ n)))
    half_step = float(spacing[aligned]) / 2.0
    # Index-space box around the stroke, grown by the radius (and a voxel).
    inv = np.linalg.inv(affine)
    lo_lps, hi_lps = pts.min(axis=0) - radius_mm, pts.max(axis=0) + radius_mm
    corners = np.array([[x, y, z] for x in (lo_lps[0], hi_lps[0]) for y in (lo_lps[1], hi_lps[1])
                        for z in (lo_lps[2], hi_lps[2])])
    idx = corners @ inv[:3, :3].T + inv[:3, 3]
    dims = np.asarray(shape, dtype=int)
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int) - 1, 0, dims)
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + 2, 0, dims)
    if np.any(hi <= lo):
        return (0, 0, 0), np.zeros((0, 0, 0), dtype=bool)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
    kji = np.stack([g.ravel() for g in grids], axis=1).astype(np.float64)
    centres = kji @ cols.T + affine[:3, 3]
    rel = centres - pts[0]
    along = rel @ n
    in_slice = np.abs(along) < half_step - 1e-6
    flat = centres - np.outer(along, n)                 # projected into the viewed plane
    pts_flat = pts - np.outer((pts - pts[0]) @ n, n)
    dist = np.full(len(centres), np.inf)
    if len(pts_flat) == 1:
        dist = _segment_distance(flat, pts_flat[0], pts_flat[0])
    for a, b in itertools.pairwise(pts_flat):
        dist = np.minimum(dist, _segment_distance(flat, a, b))
    mask = (in_slice & (dist <= radius_mm)).reshape(tuple(int(v) for v in hi - lo))
    if not mask.any():
        return (0, 0, 0), np.zeros((0, 0, 0), dtype=bool)
    # Tighten the crop to the covered voxels.
    ranges = []
    for axes in ((1, 2), (0, 2), (0, 1)):
        hit = np.flatnonzero(mask.any(axis=axes))
        ranges.append((int(hit[0]), int(hit[-1]) + 1))
    (k0, k1), (j0, j1), (i0, i1) = ranges
    offset = (int(lo[0]) + k0, int(lo[1]) + j0, int(lo[2]) + i0)
    return offset, np.ascontiguousarray(mask[k0:k1, j0:j1, i0:i1])
