"""Measures of a finding's current mask: centroid, bounding box, volume, longest diameter.

``review`` may not import ``inference`` (import contract), so the two small geometric
helpers of ``inference.postprocess`` (``voxel_volume_mm3``, ``longest_diameter_mm``) are
mirrored here with the same definitions; they belong in ``core`` so both can share them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError

from core.volume import Finding, FloatArray
from review.model import SparseMask


def voxel_volume_mm3(affine: FloatArray) -> float:
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))


def longest_diameter_mm(points_kji: npt.NDArray[np.int64], affine: FloatArray) -> float:
    """Largest distance (mm) between two voxel centres (as inference.postprocess)."""
    if len(points_kji) < 2:
        return 0.0
    pts = points_kji.astype(np.float64) @ np.asarray(affine, dtype=np.float64)[:3, :3].T
    if len(pts) > 4:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:
            pass  # flat or degenerate: the direct search below
    if len(pts) > 4000:
        pts = pts[:: int(np.ceil(len(pts) / 4000))]
    best = 0.0
    for idx in range(len(pts) - 1):
        d = pts[idx + 1:] - pts[idx]
        best = max(best, float(np.sqrt((d * d).sum(axis=1).max())))
    return best


def measure(mask: SparseMask, affine: FloatArray, *, finding_id: int, label_value: int,
            label_name: str, max_score: float, mean_score: float, series_uid: str,
            fallback: Finding | None = None) -> Finding:
    """A ``core.Finding`` describing ``mask`` now; an empty mask keeps the fallback's
    position (so the finding can still be navigated to) with zero size."""
    aff = np.asarray(affine, dtype=np.float64)
    pts = mask.points()
    if len(pts) == 0:
        centroid_index = fallback.centroid_index if fallback else (0.0, 0.0, 0.0)
        centroid_lps = fallback.centroid_lps if fallback else tuple(
            float(v) for v in aff[:3, 3])
        bbox = fallback.bbox_index if fallback else ((0, 0, 0), (0, 0, 0))
        return Finding(id=finding_id, label_value=label_value, label_name=label_name,
                       centroid_lps=(centroid_lps[0], centroid_lps[1], centroid_lps[2]),
                       centroid_index=centroid_index, bbox_index=bbox, volume_mm3=0.0,
                       longest_diameter_mm=0.0, max_score=max_score, mean_score=mean_score,
                       voxel_count=0, series_uid=series_uid)
    centroid = pts.mean(axis=0)
    lps = aff[:3, :3] @ centroid + aff[:3, 3]
    lo = pts.min(axis=0)
    hi = pts.max(axis=0)
    return Finding(
        id=finding_id, label_value=label_value, label_name=label_name,
        centroid_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
        centroid_index=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
        bbox_index=((int(lo[0]), int(lo[1]), int(lo[2])), (int(hi[0]), int(hi[1]), int(hi[2]))),
        volume_mm3=float(len(pts) * voxel_volume_mm3(aff)),
        longest_diameter_mm=longest_diameter_mm(pts, aff),
        max_score=max_score, mean_score=mean_score, voxel_count=len(pts),
        series_uid=series_uid)
