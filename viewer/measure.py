"""Measurements in LPS millimetres, computed from voxels, not screen pixels.

Pure numpy (no Qt or VTK), so the maths is testable on its own. A
measurement remembers the plane it was drawn on (``right`` and ``up`` LPS
unit vectors), which is all an ROI needs to be rebuilt on any grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.volume import Volume

KINDS = ("distance", "angle", "ellipse", "rectangle", "bidimensional")
POINTS_NEEDED = {"distance": 2, "angle": 3, "ellipse": 2, "rectangle": 2, "bidimensional": 4}
FloatArray = npt.NDArray[np.float64]


def distance_mm(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance between two LPS points in mm."""
    return float(np.linalg.norm(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)))


def angle_deg(a: Sequence[float], vertex: Sequence[float], c: Sequence[float]) -> float:
    """Angle a–vertex–c in degrees (0–180)."""
    v = np.asarray(vertex, dtype=np.float64)
    u1 = np.asarray(a, dtype=np.float64) - v
    u2 = np.asarray(c, dtype=np.float64) - v
    n1, n2 = np.linalg.norm(u1), np.linalg.norm(u2)
    if n1 == 0 or n2 == 0:
        return 0.0
    cos = float(np.clip(u1 @ u2 / (n1 * n2), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def value_unit(volume: Volume) -> str:
    """Unit of the voxel values: HU for CT, else whatever the metadata says."""
    if volume.modality.upper() == "CT":
        return "HU"
    unit = volume.metadata.get("units") or volume.metadata.get("rescale_type") or ""
    return str(unit)


def roi_stats(volume: Volume, kind: str, corner_a: Sequence[float], corner_b: Sequence[float],
              right: Sequence[float], up: Sequence[float]) -> dict[str, Any]:
    """Mean, SD, min, max of voxels inside an in-plane ellipse or rectangle, and its area.

    The shape is the box with opposite corners ``corner_a`` and ``corner_b``
    (LPS mm) on the plane spanned by ``right`` and ``up``; the ellipse is the
    one inscribed in that box. Voxels count when their centre lies inside the
    shape and within half a slice spacing of the plane. Area is exact (mm²).
    """
    if kind not in ("ellipse", "rectangle"):
        raise ValueError(f"ROI kind must be 'ellipse' or 'rectangle', got {kind!r}")
    r = np.asarray(right, dtype=np.float64)
    u = np.asarray(up, dtype=np.float64)
    n = np.cross(r, u)
    ca = np.asarray(corner_a, dtype=np.float64)
    cb = np.asarray(corner_b, dtype=np.float64)
    centre = (ca + cb) / 2.0
    a = abs(float((cb - ca) @ r)) / 2.0
    b = abs(float((cb - ca) @ u)) / 2.0
    area = math.pi * a * b if kind == "ellipse" else 4.0 * a * b
    direction = volume.direction
    axis = int(np.argmax(np.abs(direction.T @ n)))
    half = float(volume.spacing_mm[axis]) / 2.0
    corners = np.array([centre + sx * a * r + sy * b * u + sz * half * n
                        for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    idx = volume.lps_to_index(corners)
    shape = np.array(volume.shape)
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, shape - 1)
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int), 0, shape - 1)
    values = np.empty(0)
    if np.all(hi >= lo) and a > 0 and b > 0:
        grids = np.meshgrid(*[np.arange(lo[d], hi[d] + 1) for d in range(3)], indexing="ij")
        kji = np.stack([g.ravel() for g in grids], axis=1)
        d = volume.index_to_lps(kji) - centre
        x, y, z = d @ r, d @ u, d @ n
        if kind == "ellipse":
            inside = (x / a) ** 2 + (y / b) ** 2 <= 1.0 + 1e-9
        else:
            inside = (np.abs(x) <= a + 1e-9) & (np.abs(y) <= b + 1e-9)
        for tol in (0.999, 1.001):
            keep = inside & (np.abs(z) <= half * tol)
            if keep.any():
                sel = kji[keep]
                values = np.asarray(volume.array[sel[:, 0], sel[:, 1], sel[:, 2]],
                                    dtype=np.float64)
                break
    stats: dict[str, Any] = {"area_mm2": area, "count": int(values.size),
                             "unit": value_unit(volume)}
    if values.size:
        stats.update(mean=float(values.mean()), sd=float(values.std()),
                     min=float(values.min()), max=float(values.max()))
    else:
        stats.update(mean=None, sd=None, min=None, max=None)
    return stats


@dataclass
class Measurement:
    """One measurement: kind, LPS points, the plane it lies on, and its results.

    Points: distance [a, b]; angle [a, vertex, c]; ellipse/rectangle two
    opposite corners of the bounding box; bidimensional the long axis [a, b]
    then the short axis [c, d], perpendicular to it in the plane (RECIST/WHO).
    """

    kind: str
    points_lps: list[FloatArray]
    right: FloatArray
    up: FloatArray
    view: str = ""
    series_uid: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"measurement kind must be one of {KINDS}, got {self.kind!r}")
        need = POINTS_NEEDED[self.kind]
        self.points_lps = [np.asarray(p, dtype=np.float64).reshape(3) for p in self.points_lps]
        if len(self.points_lps) != need:
            raise ValueError(f"a {self.kind} needs {need} points, got {len(self.points_lps)}")
        self.right = np.asarray(self.right, dtype=np.float64).reshape(3)
        self.up = np.asarray(self.up, dtype=np.float64).reshape(3)

    @property
    def normal(self) -> FloatArray:
        return np.asarray(np.cross(self.right, self.up), dtype=np.float64)

    @property
    def centre_lps(self) -> FloatArray:
        return np.asarray(np.mean(self.points_lps, axis=0), dtype=np.float64)

    def compute(self, volume: Volume | None) -> dict[str, Any]:
        """Recompute ``stats`` (geometry always; voxel statistics when a volume is given)."""
        p = self.points_lps
        if self.kind == "distance":
            self.stats = {"length_mm": distance_mm(p[0], p[1])}
        elif self.kind == "angle":
            self.stats = {"angle_deg": angle_deg(p[0], p[1], p[2])}
        elif self.kind == "bidimensional":
            self.stats = {"long_mm": distance_mm(p[0], p[1]), "short_mm": distance_mm(p[2], p[3])}
        elif volume is not None:
            self.stats = roi_stats(volume, self.kind, p[0], p[1], self.right, self.up)
        return self.stats

    def label(self) -> str:
        """Short text shown next to the drawing and in lists."""
        s = self.stats
        if self.kind == "distance":
            return f"{s.get('length_mm', 0.0):.1f} mm"
        if self.kind == "angle":
            return f"{s.get('angle_deg', 0.0):.1f}°"
        if self.kind == "bidimensional":
            return f"{s.get('long_mm', 0.0):.1f} × {s.get('short_mm', 0.0):.1f} mm"
        unit = s.get("unit", "")
        if s.get("mean") is None:
            return f"area {s.get('area_mm2', 0.0):.1f} mm²"
        return (f"mean {s['mean']:.1f} SD {s['sd']:.1f} {unit}\n"
                f"min {s['min']:.0f} max {s['max']:.0f}  area {s['area_mm2']:.1f} mm²")

    # -- editing: handles (points a reader can grab) and moves, all in LPS mm on the plane
    def handles(self) -> list[FloatArray]:
        """Grabbable points: the drawn points, or an ROI's four box corners."""
        if self.kind in ("ellipse", "rectangle"):
            return box_corners(self.points_lps[0], self.points_lps[1], self.right, self.up)
        return [p.copy() for p in self.points_lps]

    def move_handle(self, index: int, lps: Sequence[float]) -> None:
        """Move handle ``index`` to ``lps`` (projected on the measurement's plane).

        An ROI corner moves with the opposite corner fixed; a bidimensional's
        short-axis end slides along the short axis (kept perpendicular), and a
        long-axis end carries the short axis along, at the same place on it.
        Call ``compute`` afterwards.
        """
        p = self._on_plane(lps)
        if self.kind in ("ellipse", "rectangle"):
            corners = self.handles()
            self.points_lps = [corners[(index + 2) % 4], p]
        elif self.kind == "bidimensional":
            self.points_lps = bidimensional_move(self.points_lps, index, p, self.normal)
        else:
            self.points_lps[index] = p

    def translate(self, delta: Sequence[float]) -> None:
        """Move the whole measurement by ``delta`` (its in-plane part), LPS mm."""
        d = np.asarray(delta, dtype=np.float64)
        d = d - (d @ self.normal) * self.normal
        self.points_lps = [pt + d for pt in self.points_lps]

    def _on_plane(self, lps: Sequence[float]) -> FloatArray:
        p = np.asarray(lps, dtype=np.float64).reshape(3)
        n = self.normal
        return np.asarray(p - ((p - self.points_lps[0]) @ n) * n, dtype=np.float64)

    def to_record(self) -> dict[str, Any]:
        """JSON-able dict (LPS mm geometry, kind, stats)."""
        return {
            "kind": self.kind,
            "view": self.view,
            "series_uid": self.series_uid,
            "points_lps_mm": [[float(c) for c in pt] for pt in self.points_lps],
            "plane_right_lps": [float(c) for c in self.right],
            "plane_up_lps": [float(c) for c in self.up],
            "stats": {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v)
                      for k, v in self.stats.items()},
            "label": self.label(),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Measurement:
        try:
            return cls(
                kind=str(record["kind"]),
                points_lps=[np.asarray(p, dtype=np.float64) for p in record["points_lps_mm"]],
                right=np.asarray(record["plane_right_lps"], dtype=np.float64),
                up=np.asarray(record["plane_up_lps"], dtype=np.float64),
                view=str(record.get("view", "")),
                series_uid=str(record.get("series_uid", "")),
                stats=dict(record.get("stats", {})),
            )
        except KeyError as exc:
            raise ValueError(f"measurement record lacks {exc.args[0]!r}: {record!r}") from exc


def box_corners(a: Sequence[float], b: Sequence[float], right: Sequence[float],
                up: Sequence[float]) -> list[FloatArray]:
    """The four corners (counter-clockwise from lower left) of the in-plane box a–b."""
    pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    r, u = np.asarray(right, dtype=np.float64), np.asarray(up, dtype=np.float64)
    centre = (pa + pb) / 2.0
    ha = abs(float((pb - pa) @ r)) / 2.0
    hb = abs(float((pb - pa) @ u)) / 2.0
    return [centre + sx * ha * r + sy * hb * u for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


def short_axis(a: Sequence[float], b: Sequence[float], normal: Sequence[float],
               t: float, s0: float, s1: float) -> list[FloatArray]:
    """Ends of the short axis perpendicular to the long axis a–b.

    It crosses the long axis' line at fraction ``t`` (0 at a, 1 at b) and
    reaches ``s0`` and ``s1`` mm to either side along ``normal × (b − a)``.
    """
    pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    u = pb - pa
    length = float(np.linalg.norm(u))
    if length == 0:
        return [pa.copy(), pa.copy()]
    u /= length
    v = np.cross(np.asarray(normal, dtype=np.float64), u)
    foot = pa + t * (pb - pa)
    return [foot + s0 * v, foot + s1 * v]


def short_axis_params(points: Sequence[FloatArray],
                      normal: Sequence[float]) -> tuple[float, float, float]:
    """(t, s0, s1) of a bidimensional's short axis relative to its long axis."""
    pa, pb, pc, pd = (np.asarray(p, dtype=np.float64) for p in points)
    u = pb - pa
    length2 = float(u @ u)
    if length2 == 0:
        return 0.5, 0.0, 0.0
    v = np.cross(np.asarray(normal, dtype=np.float64), u / math.sqrt(length2))
    t = float(((pc + pd) / 2.0 - pa) @ u) / length2
    return t, float((pc - pa) @ v), float((pd - pa) @ v)


def bidimensional_from_drag(long_a: Sequence[float], long_b: Sequence[float],
                            start: Sequence[float], end: Sequence[float],
                            normal: Sequence[float]) -> list[FloatArray]:
    """A bidimensional whose short axis is a drag from ``start`` to ``end``, made
    perpendicular: it crosses the long axis where the drag's midpoint projects
    (kept within the long axis) and spans the drag's perpendicular extent."""
    pa, pb = np.asarray(long_a, dtype=np.float64), np.asarray(long_b, dtype=np.float64)
    t, s0, s1 = short_axis_params([pa, pb, np.asarray(start, dtype=np.float64),
                                   np.asarray(end, dtype=np.float64)], normal)
    t = min(max(t, 0.0), 1.0)
    return [pa, pb, *short_axis(pa, pb, normal, t, s0, s1)]


def bidimensional_move(points: Sequence[FloatArray], index: int, p: FloatArray,
                       normal: Sequence[float]) -> list[FloatArray]:
    """The bidimensional ``points`` after handle ``index`` moved to ``p``."""
    pts = [np.asarray(q, dtype=np.float64).copy() for q in points]
    t, s0, s1 = short_axis_params(pts, normal)
    if index in (0, 1):
        pts[index] = p
    else:
        # A short-axis end slides along the short axis: only its perpendicular reach changes.
        s_new = short_axis_params([pts[0], pts[1], p, p], normal)[1]
        s0, s1 = (s_new, s1) if index == 2 else (s0, s_new)
    return [pts[0], pts[1], *short_axis(pts[0], pts[1], normal, t, s0, s1)]
