"""Slice-plane geometry in LPS mm (pure numpy, no Qt or VTK).

Each view shows the volume in patient orientation, radiological convention:

- axial: viewed from the feet; patient left on screen right, anterior up;
- coronal: viewed from the front; patient left on screen right, superior up;
- sagittal: viewed from the patient's left; anterior on screen left, superior up.

A view's plane has LPS unit vectors ``right`` (screen right), ``up`` (screen
up) and ``normal = right × up`` (towards the viewer). In-plane coordinates
``(x, y, z)`` in mm are measured from an anchor point: ``lps = anchor + x·right
+ y·up + z·normal``. The anchor is the voxel centre nearest the volume centre,
so in-plane coordinates do not change when the slice changes, and output
samples of an axis-aligned acquisition land exactly on voxel centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core import geometry
from core.volume import Volume

FloatArray = npt.NDArray[np.float64]

# (right, up) in LPS for each plane; normal = right × up points towards the viewer.
PLANE_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
PLANE_NAMES: tuple[str, ...] = ("axial", "coronal", "sagittal")
# Index of the LPS coordinate that names a plane's position (z for axial, …).
PLANE_POSITION_AXIS: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}
_ALIGNED_TOL = 1e-3

# Swaps (k, j, i) ↔ (i, j, k) in homogeneous 4-vectors.
_SWAP = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def orientation_letters(right: Sequence[float], up: Sequence[float]) -> dict[str, str]:
    """Letters for the four screen edges given the LPS directions of screen right and up."""
    r = np.asarray(right, dtype=np.float64)
    u = np.asarray(up, dtype=np.float64)
    return {
        "right": geometry.axis_letter(r),
        "left": geometry.axis_letter(-r),
        "top": geometry.axis_letter(u),
        "bottom": geometry.axis_letter(-u),
    }


def reslice_matrix(affine_kji: FloatArray, plane_to_lps: FloatArray) -> FloatArray:
    """4×4 from in-plane (x, y, z) mm to VTK index space (x=i, y=j, z=k) of a grid.

    ``plane_to_lps`` maps (x, y, z, 1) to LPS; the grid is the vtkImageData of
    ``affine_kji`` stored with origin 0, spacing 1 and no direction.
    """
    return np.asarray(_SWAP @ np.linalg.inv(affine_kji) @ plane_to_lps, dtype=np.float64)


@dataclass
class PlaneGeometry:
    """Where one view's planes lie for one volume, and its output sampling grid."""

    name: str
    right: FloatArray
    up: FloatArray
    normal: FloatArray
    anchor: FloatArray          # LPS mm, a voxel centre near the volume centre
    aligned_axis: int           # volume axis (0=k, 1=j, 2=i) most parallel to normal
    step_mm: float              # one slice spacing along the normal
    spacing_xy: tuple[float, float]
    origin_xy: tuple[float, float]
    size_xy: tuple[int, int]    # output samples along x and y
    oblique: bool
    index_from_lps: FloatArray = field(default_factory=lambda: np.eye(4))  # inverse affine

    @classmethod
    def for_volume(cls, volume: Volume, name: str) -> PlaneGeometry:
        """The plane geometry of view ``name`` ("axial", "coronal", "sagittal")."""
        right = np.asarray(PLANE_AXES[name][0], dtype=np.float64)
        up = np.asarray(PLANE_AXES[name][1], dtype=np.float64)
        normal = np.cross(right, up)
        direction = volume.direction          # columns: k, j, i
        spacing = volume.spacing_mm
        shape = np.array(volume.shape)
        centre_idx = np.floor((shape - 1) / 2.0)
        anchor = volume.index_to_lps(centre_idx)

        def best(vec: FloatArray) -> tuple[int, float]:
            dots = np.abs(direction.T @ vec)
            axis = int(np.argmax(dots))
            return axis, float(dots[axis])

        n_axis, n_dot = best(normal)
        r_axis, r_dot = best(right)
        u_axis, u_dot = best(up)
        oblique = min(n_dot, r_dot, u_dot) < 1.0 - _ALIGNED_TOL
        step = float(spacing[n_axis])
        if oblique:
            fine = float(np.min(spacing))
            sx = sy = fine
        else:
            sx, sy = float(spacing[r_axis]), float(spacing[u_axis])
        # Project the volume's corner voxel boundaries onto the plane axes.
        corners = np.array([[a, b, c] for a in (-0.5, shape[0] - 0.5)
                            for b in (-0.5, shape[1] - 0.5)
                            for c in (-0.5, shape[2] - 0.5)])
        pts = volume.index_to_lps(corners) - anchor
        xs, ys = pts @ right, pts @ up
        # Sample positions are integer multiples of the spacing from the anchor.
        x0 = np.ceil(xs.min() / sx - 1e-6) * sx
        y0 = np.ceil(ys.min() / sy - 1e-6) * sy
        nx = int(np.floor((xs.max() - x0) / sx + 1e-6)) + 1
        ny = int(np.floor((ys.max() - y0) / sy + 1e-6)) + 1
        return cls(name, right, up, normal, anchor, n_axis, step, (sx, sy),
                   (float(x0), float(y0)), (nx, ny), oblique, np.linalg.inv(volume.affine))

    # -- slice position -------------------------------------------------
    def _index(self, lps: Sequence[float]) -> FloatArray:
        inv = self.index_from_lps
        return np.asarray(inv[:3, :3] @ np.asarray(lps, dtype=np.float64) + inv[:3, 3])

    def slice_offset(self, volume: Volume, cursor_lps: Sequence[float]) -> float:
        """Offset along the normal (mm from the anchor) of the slice through ``cursor_lps``.

        Snaps to the nearest voxel plane of the aligned axis so that an
        axis-aligned acquisition always shows real slices, never blends.
        """
        idx = self._index(cursor_lps)
        n = volume.shape[self.aligned_axis]
        idx[self.aligned_axis] = float(np.clip(_round_half_up(idx[self.aligned_axis]), 0, n - 1))
        snapped = volume.affine[:3, :3] @ idx + volume.affine[:3, 3]
        return float((snapped - self.anchor) @ self.normal)

    def slice_index(self, volume: Volume, cursor_lps: Sequence[float]) -> int:
        """0-based index along the aligned volume axis of the shown slice."""
        idx = self._index(cursor_lps)
        n = volume.shape[self.aligned_axis]
        return int(np.clip(_round_half_up(idx[self.aligned_axis]), 0, n - 1))

    def slice_count(self, volume: Volume) -> int:
        return int(volume.shape[self.aligned_axis])

    def plane_to_lps_matrix(self, offset_mm: float) -> FloatArray:
        """4×4 from in-plane (x, y, z, 1) to LPS for the slice at ``offset_mm``."""
        m = np.eye(4)
        m[:3, 0] = self.right
        m[:3, 1] = self.up
        m[:3, 2] = self.normal
        m[:3, 3] = self.anchor + offset_mm * self.normal
        return m

    def to_lps(self, xy: Sequence[float], offset_mm: float) -> FloatArray:
        """LPS mm of in-plane point (x, y) on the slice at ``offset_mm``."""
        return np.asarray(self.anchor + xy[0] * self.right + xy[1] * self.up
                          + offset_mm * self.normal, dtype=np.float64)

    def to_plane(self, lps: Sequence[float]) -> FloatArray:
        """(x, y, z) in-plane coordinates of an LPS point (z = offset from the anchor)."""
        d = np.asarray(lps, dtype=np.float64) - self.anchor
        return np.array([d @ self.right, d @ self.up, d @ self.normal])

    def extent_xy(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the output sample centres in mm."""
        (x0, y0), (sx, sy), (nx, ny) = self.origin_xy, self.spacing_xy, self.size_xy
        return x0, x0 + (nx - 1) * sx, y0, y0 + (ny - 1) * sy


def _round_half_up(x: float) -> float:
    """Nearest integer, ties upwards (np.rint's ties-to-even would make scrolling uneven)."""
    return float(np.floor(x + 0.5 + 1e-9))


def central_voxel_lps(volume: Volume) -> FloatArray:
    """LPS of the voxel centre nearest the volume centre (the default cursor)."""
    return volume.index_to_lps(np.floor((np.array(volume.shape) - 1) / 2.0))


def to_plain(value: Any) -> Any:
    """numpy scalars/arrays → JSON-able Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
