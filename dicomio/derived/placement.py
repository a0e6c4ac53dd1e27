"""Where a 2-D frame (a SEG frame, an RT contour plane) lands on a target grid.

Exact placement is preferred: a frame whose pixel steps equal the target's (i, j) steps
and whose first pixel sits on a target voxel centre (to within a small fraction of a
voxel) is copied voxel for voxel. Anything else in the same frame of reference is
resampled by nearest neighbour, and the caller says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.volume import FloatArray

#: A frame's first pixel may sit this far (in target voxels) from a voxel centre and
#: still be placed exactly: DS values keep about 8 significant digits.
INDEX_TOLERANCE = 0.1


@dataclass(frozen=True)
class FramePlane:
    """The geometry of one 2-D frame: DICOM plane position, orientation and spacing."""

    position: FloatArray  # ImagePositionPatient: centre of pixel (row 0, column 0)
    row_cosine: FloatArray  # first IOP triplet: direction of increasing column
    column_cosine: FloatArray  # second IOP triplet: direction of increasing row
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns)
    rows: int
    columns: int

    @property
    def normal(self) -> FloatArray:
        n = np.cross(self.row_cosine, self.column_cosine)
        return np.asarray(n / np.linalg.norm(n), dtype=np.float64)

    def affine(self, normal_step_mm: float) -> FloatArray:
        """(k, j, i, 1) -> LPS for a stack starting at this frame, k along the normal."""
        out = np.eye(4)
        out[:3, 0] = self.normal * normal_step_mm
        out[:3, 1] = self.column_cosine * self.spacing[0]
        out[:3, 2] = self.row_cosine * self.spacing[1]
        out[:3, 3] = self.position
        return out


def exact_index(plane: FramePlane, target_affine: FloatArray) -> tuple[int, int, int] | None:
    """Target (k, j, i) of the frame's pixel (0, 0) when the frame lies exactly on the
    target grid with the same pixel steps; None otherwise."""
    inv = np.linalg.inv(target_affine)
    first = inv @ np.append(plane.position, 1.0)
    step_i = inv[:3, :3] @ (plane.row_cosine * plane.spacing[1])
    step_j = inv[:3, :3] @ (plane.column_cosine * plane.spacing[0])
    # Drift over the whole frame must stay well under a voxel.
    tol = INDEX_TOLERANCE / max(plane.rows, plane.columns, 1)
    if not (np.allclose(step_i, (0, 0, 1), atol=tol) and np.allclose(step_j, (0, 1, 0), atol=tol)):
        return None
    rounded = np.rint(first[:3])
    if np.any(np.abs(first[:3] - rounded) > INDEX_TOLERANCE):
        return None
    return int(rounded[0]), int(rounded[1]), int(rounded[2])


def normal_range_text(planes: list[FramePlane], target_affine: FloatArray,
                      target_shape: tuple[int, int, int]) -> str | None:
    """A sentence part saying the frames lie outside the target along its slice axis, or
    None when at least one frame's plane crosses the target's slab."""
    k_dir = target_affine[:3, 0]
    step = float(np.linalg.norm(k_dir))
    normal = k_dir / step
    ends = [target_affine @ np.array([k, 0.0, 0.0, 1.0]) for k in (0, target_shape[0] - 1)]
    along_z = abs(normal[2]) > 0.99

    def coord(p: FloatArray) -> float:
        return float(p[2]) if along_z else float(np.dot(p[:3], normal))

    lo_t, hi_t = sorted(coord(e) for e in ends)
    values = [coord(p.position) for p in planes]
    margin = step / 2
    if any(lo_t - margin <= v <= hi_t + margin for v in values):
        return None
    axis = "z" if along_z else "position along the slice normal"
    return (f"its frames lie at {axis} {min(values):g}..{max(values):g} mm, outside this "
            f"series' {axis} range {lo_t:g}..{hi_t:g} mm")
