"""Measures of a finding's current mask: centroid, bounding box, volume, longest diameter.

Volume and diameter come from ``core.measure``, the same functions the model's findings
were measured with.
"""

from __future__ import annotations

import numpy as np

from core.measure import mask_diameter_mm, voxel_volume_mm3
from core.volume import Finding, FloatArray
from review.model import SparseMask


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
        longest_diameter_mm=mask_diameter_mm(mask.array, mask.offset, aff),
        max_score=max_score, mean_score=mean_score, voxel_count=len(pts),
        series_uid=series_uid)
