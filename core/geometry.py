"""Index ↔ LPS geometry helpers.

Convention (ARCHITECTURE.md): arrays are indexed ``[k, j, i]`` (slice, row,
column) and a 4×4 affine maps ``(k, j, i, 1)`` to LPS millimetres. The columns
of the affine's 3×3 block are the world steps of one voxel along k, j and i.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.errors import GeometryError

FloatArray = npt.NDArray[np.float64]

# Letters for the positive direction of each LPS axis, and their opposites.
_POSITIVE = ("L", "P", "S")
_NEGATIVE = ("R", "A", "I")


def affine_from_dicom(
    image_orientation: Sequence[float],
    first_position: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step: Sequence[float],
) -> FloatArray:
    """Affine of a slice stack from DICOM attributes.

    ``image_orientation`` is ImageOrientationPatient (row cosines then column
    cosines), ``first_position`` the ImagePositionPatient of slice k=0,
    ``pixel_spacing`` DICOM PixelSpacing (row spacing, column spacing) and
    ``slice_step`` the LPS vector from slice k to slice k+1 in mm.
    """
    iop = np.asarray(image_orientation, dtype=np.float64)
    if iop.shape != (6,):
        raise GeometryError(f"ImageOrientationPatient needs 6 values, got {iop.shape}")
    row_cos, col_cos = iop[:3], iop[3:]
    # No correction here: callers pass checked cosines (dicomio.plausibility
    # normalises and orthogonalises them); anything else would shear or scale.
    if not (np.allclose(np.linalg.norm(iop.reshape(2, 3), axis=1), 1.0, atol=1e-4)
            and abs(float(row_cos @ col_cos)) <= 1e-4):
        raise GeometryError(
            f"ImageOrientationPatient {iop.tolist()} is not a pair of perpendicular unit vectors")
    row_spacing, col_spacing = float(pixel_spacing[0]), float(pixel_spacing[1])
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(slice_step, dtype=np.float64)
    # Moving one row down (j+1) goes along the column cosines by the row spacing.
    affine[:3, 1] = col_cos * row_spacing
    affine[:3, 2] = row_cos * col_spacing
    affine[:3, 3] = np.asarray(first_position, dtype=np.float64)
    check_affine(affine, orthogonal=False)
    return affine


def spacing_from_affine(affine: FloatArray) -> FloatArray:
    """Voxel size in mm along (k, j, i)."""
    return np.asarray(np.linalg.norm(affine[:3, :3], axis=0), dtype=np.float64)


def direction_from_affine(affine: FloatArray) -> FloatArray:
    """3×3 matrix whose columns are unit vectors of k, j and i in LPS."""
    spacing = spacing_from_affine(affine)
    if np.any(spacing <= 0):
        raise GeometryError(f"affine has a zero-length axis: spacing {spacing}")
    return np.asarray(affine[:3, :3] / spacing, dtype=np.float64)


def index_to_lps(affine: FloatArray, index_kji: npt.ArrayLike) -> FloatArray:
    """LPS mm of (k, j, i) indices; accepts shape (3,) or (N, 3), fractional allowed."""
    idx = np.asarray(index_kji, dtype=np.float64)
    out = idx @ affine[:3, :3].T + affine[:3, 3]
    return np.asarray(out, dtype=np.float64)


def lps_to_index(affine: FloatArray, lps_point: npt.ArrayLike) -> FloatArray:
    """Continuous (k, j, i) index of LPS points; round it yourself for a voxel."""
    pts = np.asarray(lps_point, dtype=np.float64)
    inv = np.linalg.inv(affine)
    out = pts @ inv[:3, :3].T + inv[:3, 3]
    return np.asarray(out, dtype=np.float64)


def axis_letter(vector: npt.ArrayLike) -> str:
    """Orientation letter(s) of an LPS direction, strongest first (e.g. 'L', 'PS').

    Components under 0.1 of the largest are ignored, as viewers do for
    nearly-orthogonal obliques.
    """
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.max(np.abs(v)))
    if norm == 0:
        return "?"
    letters = []
    for axis in np.argsort(-np.abs(v)):
        if abs(v[axis]) < 0.1 * norm:
            continue
        letters.append(_POSITIVE[axis] if v[axis] > 0 else _NEGATIVE[axis])
    return "".join(letters)


def orientation_code(affine: FloatArray) -> str:
    """Three letters naming where +k, +j and +i point, e.g. 'SPL' (dominant axis only)."""
    direction = direction_from_affine(affine)
    return "".join(axis_letter(direction[:, c])[0] for c in range(3))


def is_singular(affine: FloatArray, tol: float = 1e-6) -> bool:
    """True when an axis has zero length or the axes are (nearly) coplanar.

    Scale-free (the determinant of the unit directions), so 0.25 µm microscopy
    pixels are not "singular" while a stack of slices in one plane is."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(spacing > 0):
        return True
    return bool(abs(np.linalg.det(affine[:3, :3] / spacing)) < tol)


def check_affine(affine: FloatArray, *, orthogonal: bool = True,
                 handedness: int | None = None, tol: float = 1e-4) -> None:
    """Raise GeometryError unless ``affine`` is a usable grid: finite, with a
    (0, 0, 0, 1) bottom row, non-singular, orthogonal when asked, and with the
    sign of det(3×3) equal to ``handedness`` when given (a DICOM stack whose +k
    runs along row × column has det < 0: columns k, j, i = normal, column, row).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError(f"affine must be 4×4, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError(f"affine is not finite: {a.tolist()}")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise GeometryError("affine bottom row must be (0, 0, 0, 1)")
    if is_singular(a):
        raise GeometryError(f"affine is singular (spacing {spacing_from_affine(a).tolist()})")
    if orthogonal and not is_orthogonal(a, tol):
        d = direction_from_affine(a)
        worst = float(np.max(np.abs(d.T @ d - np.eye(3))))
        raise GeometryError(
            f"affine is sheared: its axes are up to {np.degrees(np.arcsin(min(worst, 1.0))):.3f}° "
            "off perpendicular")
    if handedness is not None and np.sign(np.linalg.det(a[:3, :3])) != np.sign(handedness):
        raise GeometryError(
            f"affine has det {np.linalg.det(a[:3, :3]):.4g}, expected the sign of {handedness}: "
            "+k does not run along the slice normal")


def is_orthogonal(affine: FloatArray, tol: float = 1e-4) -> bool:
    """True when the three voxel axes are mutually perpendicular (no shear)."""
    d = direction_from_affine(affine)
    return bool(np.allclose(d.T @ d, np.eye(3), atol=tol))


def bounds_lps(affine: FloatArray, shape: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """Axis-aligned LPS box (min, max) of the voxel centres of a grid."""
    k, j, i = (int(n) - 1 for n in shape)
    corners = np.array(
        [[a, b, c] for a in (0, k) for b in (0, j) for c in (0, i)], dtype=np.float64
    )
    pts = index_to_lps(affine, corners)
    return pts.min(axis=0), pts.max(axis=0)
