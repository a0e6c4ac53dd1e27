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

KINDS = ("distance", "angle", "ellipse", "rectangle")
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
    opposite corners of the bounding box.
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
        need = {"distance": 2, "angle": 3, "ellipse": 2, "rectangle": 2}[self.kind]
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
        unit = s.get("unit", "")
        if s.get("mean") is None:
            return f"area {s.get('area_mm2', 0.0):.1f} mm²"
        return (f"mean {s['mean']:.1f} SD {s['sd']:.1f} {unit}\n"
                f"min {s['min']:.0f} max {s['max']:.0f}  area {s['area_mm2']:.1f} mm²")

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
