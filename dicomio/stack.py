"""Geometry of a stack of 2-D frames: sort order, checks, and the output grid.

Decisions (issue 2 §5), all reported as ``Volume.warnings``:

* **Order.** Frames are sorted along the slice normal ``n = row × col`` (from
  ImageOrientationPatient) by the projection of ImagePositionPatient on ``n``,
  ascending — never by file name or InstanceNumber. So ``+k`` always points
  along ``n``, as in ITK/GDCM: a feet-first or reversed acquisition gives the
  same array and affine as a head-first one of the same anatomy.
* **Duplicate positions** (projections closer than 0.01 mm, e.g. several
  phases or echoes mixed into one stack): the first frame at each position (by
  InstanceNumber, then input order) is kept, the others are left out, warned.
* **Gantry tilt** (or any in-plane drift of ImagePositionPatient between
  frames, i.e. a sheared stack): resampled onto a regular orthogonal grid (“de-
  tilt”, like dcm2niix) whose axes are the image rows, columns and the slice
  normal. Every source frame keeps its exact LPS position: frame ``k`` is
  shifted in-plane by its own offset (bilinear), then values are interpolated
  linearly along the normal between the two nearest real frames. The in-plane
  grid grows so that every source voxel centre is covered.
* **Uneven spacing** (any gap differs from the mean gap by more than
  max(2 % of it, 0.05 mm) and the gaps are not whole multiples of one step):
  resampled to a uniform step equal to the **median** gap (keeps the
  resolution of most of the series without multiplying the slice count for one
  close pair), linear interpolation along the normal between the real slice
  positions; the first slice stays exactly where it was.
* **Missing slices** (every gap is a whole multiple of one step, at least one
  is ≥ 2): the regular grid of that step is kept and the missing positions are
  left at the background value — **not** interpolated, so that the user sees
  the hole; the warning lists each gap in mm and as slice positions.
* **Mixed orientations** are handled by the caller (load.py): the majority
  orientation is used and the others are left out with a warning.
* **Refused** (GeometryError naming ImagePositionPatient), because the images
  are not one stack: in-plane drift between neighbouring slices steeper than
  45° (gantries tilt by at most 30°), or a regular grid that would need more
  than 10× as many slices as there are images (one huge gap, or a handful of
  images spread over a long distance).
* Every affine returned is checked (:func:`core.geometry.check_affine`):
  finite, non-singular, orthogonal, and det < 0 (+k along row × column).
  The values it is built from were checked one by one before
  (:mod:`dicomio.plausibility`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.errors import GeometryError
from core.geometry import check_affine
from core.volume import VolumeWarning, WarningCode

FloatArray = npt.NDArray[np.float64]

DUPLICATE_TOL_MM = 0.01
#: Gantries tilt by at most ±30°; steeper in-plane drift between neighbouring
#: slices is not a tilt (see _check_shear).
MAX_SHEAR_DEG = 45.0
#: A regular grid with more than this many slices per source image is mostly
#: invented (blank or interpolated): the images are not one volume.
MAX_GRID_FACTOR = 10


@dataclass(frozen=True)
class TargetSlice:
    """How output slice ``m`` is made: ``(1 - weight) * lo + weight * hi`` of the
    (shifted) sorted source frames ``lo`` and ``hi``; ``lo is None`` means the
    slice is missing (background)."""

    lo: int | None
    hi: int | None
    weight: float


@dataclass
class StackGeometry:
    """Result of :func:`build_stack`.

    ``order`` are indices into the caller's frame list (kept frames, sorted
    along the normal). When ``exact`` is true the output slice ``m`` is the
    sorted source frame ``m`` unchanged; otherwise ``targets`` and ``shifts``
    (per sorted source frame, in output pixels ``(dj, di)``) describe the
    resampling.
    """

    order: list[int]
    affine: FloatArray
    shape: tuple[int, int, int]
    exact: bool
    targets: list[TargetSlice]
    shifts: FloatArray
    positions_mm: FloatArray  # projection of each sorted source frame on the normal
    warnings: list[VolumeWarning] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # duplicate frames left out


def normal_of(orientation: Sequence[float] | FloatArray) -> FloatArray:
    iop = np.asarray(orientation, dtype=np.float64)
    row, col = _unit(iop[:3]), _unit(iop[3:])
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise GeometryError(f"ImageOrientationPatient {list(iop)} has parallel row and column")
    return np.asarray(n / norm, dtype=np.float64)


def _unit(v: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(v))
    if norm < 1e-6:
        raise GeometryError("ImageOrientationPatient has a zero-length direction")
    return np.asarray(v / norm, dtype=np.float64)


def build_stack(
    positions: Sequence[Sequence[float]] | FloatArray,
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    rows: int,
    columns: int,
    *,
    tie_break: Sequence[int] | None = None,
    single_slice_step_mm: float = 1.0,
    gantry_tilt_deg: float | None = None,
) -> StackGeometry:
    """Sort frames of one orientation and plan the output grid (see module doc)."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    iop = np.asarray(orientation, dtype=np.float64)
    row, col = _unit(iop[:3]), _unit(iop[3:])
    n = normal_of(iop)
    row_spacing, col_spacing = float(pixel_spacing[0]), float(pixel_spacing[1])
    # The caller's values passed dicomio.plausibility; these guards keep the
    # function honest for any other caller.
    if not (row_spacing > 0 and col_spacing > 0 and np.isfinite([row_spacing, col_spacing]).all()):
        raise GeometryError(f"PixelSpacing {list(pixel_spacing)} is not positive")
    if not (single_slice_step_mm > 0 and np.isfinite(single_slice_step_mm)):
        raise GeometryError(f"slice thickness {single_slice_step_mm} mm is not positive")
    if not np.all(np.isfinite(pos)):
        raise GeometryError("ImagePositionPatient is not finite")
    warnings: list[VolumeWarning] = []

    dist = pos @ n
    ties = np.asarray(tie_break if tie_break is not None else np.zeros(len(pos)), dtype=np.int64)
    order = sorted(range(len(pos)), key=lambda i: (float(dist[i]), int(ties[i]), i))
    # Duplicates: keep the first of each position.
    kept: list[int] = []
    dropped: list[int] = []
    for idx in order:
        if kept and abs(dist[idx] - dist[kept[-1]]) < DUPLICATE_TOL_MM:
            # Among equal positions prefer the lowest tie-break, then input order.
            prev = kept[-1]
            if (int(ties[idx]), idx) < (int(ties[prev]), prev):
                kept[-1] = idx
                dropped.append(prev)
            else:
                dropped.append(idx)
            continue
        kept.append(idx)
    if dropped:
        dup_pos = sorted({round(float(dist[i]), 2) for i in dropped})
        shown = ", ".join(f"{p:g}" for p in dup_pos[:10]) + (" …" if len(dup_pos) > 10 else "")
        warnings.append(VolumeWarning(
            WarningCode.DUPLICATE_POSITION,
            f"{len(dropped)} image(s) share a slice position with another image (at {shown} mm "
            "along the slice normal); only the first image at each position is shown. The "
            "series may hold several phases, echoes or repeats: select them separately.",
        ))
    pos_k = pos[kept]
    d = dist[kept]
    count = len(kept)

    # In-plane offsets of every frame relative to the first, in output pixels.
    rel = pos_k - pos_k[0]
    a = rel @ row / col_spacing  # along the row direction (i)
    b = rel @ col / row_spacing  # along the column direction (j)
    shear_tol_px = 0.05
    sheared = bool(np.max(np.abs(a)) > shear_tol_px or np.max(np.abs(b)) > shear_tol_px)

    if count == 1:
        step_vec = n * single_slice_step_mm
        affine = _checked(_affine(step_vec, col * row_spacing, row * col_spacing, pos_k[0]))
        return StackGeometry(kept, affine, (1, rows, columns), True,
                             [TargetSlice(0, 0, 0.0)], np.zeros((1, 2)), d, warnings, dropped)

    gaps = np.diff(d)
    if sheared:
        _check_shear(a * col_spacing, b * row_spacing, d)
    mean_gap = float((d[-1] - d[0]) / (count - 1))
    tol = max(0.02 * mean_gap, 0.05)
    uniform = bool(np.max(np.abs(gaps - mean_gap)) <= min(tol, 0.2 * mean_gap))

    if sheared:
        span = float(np.hypot((a[-1] - a[0]) * col_spacing, (b[-1] - b[0]) * row_spacing))
        angle = float(np.degrees(np.arctan2(span, d[-1] - d[0])))
        stated = f" (GantryDetectorTilt {gantry_tilt_deg:g}°)" if gantry_tilt_deg else ""
        warnings.append(VolumeWarning(
            WarningCode.GANTRY_TILT,
            f"slices are tilted by about {angle:.1f}° against the stack axis{stated}: the "
            "volume was resampled (de-tilted) onto a regular orthogonal grid; every voxel keeps "
            "its true patient position.",
        ))

    missing_multiples: npt.NDArray[np.int64] | None = None
    if not uniform:
        base = float(np.median(gaps))
        mult = np.rint(gaps / base).astype(np.int64)
        if np.all(mult >= 1) and np.any(mult >= 2):
            step_est = float((d[-1] - d[0]) / mult.sum())
            if np.max(np.abs(gaps - mult * step_est)) <= min(max(0.02 * step_est, 0.05),
                                                             0.2 * step_est):
                missing_multiples = mult
                base = step_est
        if missing_multiples is not None:
            slots = np.concatenate([[0], np.cumsum(missing_multiples)])
            parts = []
            for idx in (int(x) for x in np.nonzero(missing_multiples >= 2)[0]):
                lost = int(missing_multiples[idx]) - 1
                parts.append(
                    f"{lost} slice(s) between {d[idx]:.2f} and {d[idx + 1]:.2f} mm "
                    f"(gap {gaps[idx]:.2f} mm; output slices "
                    f"{int(slots[idx]) + 1}–{int(slots[idx + 1]) - 1})")
            warnings.append(VolumeWarning(
                WarningCode.MISSING_SLICES,
                f"slices are missing (regular step {base:.3f} mm): " + "; ".join(parts)
                + ". Missing slices are shown blank, not interpolated.",
            ))
            step = base
            total = int(slots[-1]) + 1
            slot_of = {int(s): k for k, s in enumerate(slots)}
            targets = [TargetSlice(slot_of[m], slot_of[m], 0.0) if m in slot_of
                       else TargetSlice(None, None, 0.0) for m in range(total)]
        else:
            step = base
            total = int(np.floor((d[-1] - d[0]) / step + 1e-6)) + 1
            shown = ", ".join(f"{g:.2f}" for g in sorted(set(np.round(gaps, 2).tolist())))
            warnings.append(VolumeWarning(
                WarningCode.UNEVEN_SPACING,
                f"slice spacing is uneven (gaps {shown} mm): the volume was resampled to a "
                f"uniform {step:.3f} mm (median gap) by linear interpolation between the real "
                "slice positions.",
            ))
            targets = _linear_targets(d, step, total)
    else:
        step = mean_gap
        total = count
        targets = [TargetSlice(k, k, 0.0) for k in range(count)]

    if total > MAX_GRID_FACTOR * count:
        raise GeometryError(
            f"ImagePositionPatient: the {count} images do not form one volume — their gaps "
            f"along the slice normal range from {gaps.min():.3g} to {gaps.max():.3g} mm, and a "
            f"regular grid of {step:.3g} mm would need {total} slices, more than "
            f"{MAX_GRID_FACTOR}× the images. Select the images that belong together.")
    if uniform and not sheared:
        step_vec = (pos_k[-1] - pos_k[0]) / (count - 1)
        affine = _checked(_affine(step_vec, col * row_spacing, row * col_spacing, pos_k[0]))
        return StackGeometry(kept, affine, (count, rows, columns), True, targets,
                             np.zeros((count, 2)), d, warnings, dropped)

    a_min, b_min = float(a.min()), float(b.min())
    out_cols = int(np.floor(columns - 1 + (a.max() - a_min) + 1e-3)) + 1
    out_rows = int(np.floor(rows - 1 + (b.max() - b_min) + 1e-3)) + 1
    origin = pos_k[0] + a_min * col_spacing * row + b_min * row_spacing * col
    affine = _checked(_affine(n * step, col * row_spacing, row * col_spacing, origin))
    shifts = np.stack([b - b_min, a - a_min], axis=1)
    # Zero-out sub-tolerance shifts so unsheared stacks copy slices exactly.
    shifts[np.abs(shifts) < 1e-3] = 0.0
    return StackGeometry(kept, affine, (total, out_rows, out_cols), False, targets, shifts, d,
                         warnings, dropped)


def _check_shear(along_row_mm: FloatArray, along_col_mm: FloatArray, d: FloatArray) -> None:
    """Refuse in-plane drift between neighbouring slices steeper than any gantry
    tilt: such images are not one tilted stack (an outlier position, or two
    fields of view mixed), and de-tilting them would build a vast, mostly empty grid."""
    drift = np.hypot(np.diff(along_row_mm), np.diff(along_col_mm))
    angles = np.degrees(np.arctan2(drift, np.diff(d)))
    worst = int(np.argmax(angles))
    if angles[worst] > MAX_SHEAR_DEG:
        raise GeometryError(
            f"ImagePositionPatient moves {drift[worst]:.3g} mm within the image plane between "
            f"the slices at {d[worst]:.2f} and {d[worst + 1]:.2f} mm along the normal: a "
            f"{angles[worst]:.0f}° shear, more than any gantry tilt ({MAX_SHEAR_DEG:g}°); the "
            "images do not form one stack")


def _checked(affine: FloatArray) -> FloatArray:
    # +k runs along row × column, so det(3×3) = normal · (column × row) < 0 always.
    check_affine(affine, orthogonal=True, handedness=-1)
    return affine


def _linear_targets(d: FloatArray, step: float, total: int) -> list[TargetSlice]:
    targets: list[TargetSlice] = []
    last = len(d) - 1
    for m in range(total):
        t = d[0] + m * step
        hi = int(np.searchsorted(d, t - 1e-6, side="left"))
        hi = int(min(max(hi, 0), last))
        if abs(d[hi] - t) < 1e-4 * max(step, 1.0):
            targets.append(TargetSlice(hi, hi, 0.0))
            continue
        lo = int(max(hi - 1, 0))
        if hi == lo:
            targets.append(TargetSlice(lo, lo, 0.0))
            continue
        w = float((t - d[lo]) / (d[hi] - d[lo]))
        targets.append(TargetSlice(lo, hi, min(max(w, 0.0), 1.0)))
    return targets


def _affine(k_step: FloatArray, j_step: FloatArray, i_step: FloatArray,
            origin: FloatArray) -> FloatArray:
    affine = np.eye(4)
    affine[:3, 0] = k_step
    affine[:3, 1] = j_step
    affine[:3, 2] = i_step
    affine[:3, 3] = origin
    return affine


def same_orientation(a: Sequence[float], b: Sequence[float], tol: float = 1e-3) -> bool:
    return bool(np.max(np.abs(np.asarray(a, dtype=np.float64)
                              - np.asarray(b, dtype=np.float64))) <= tol)
