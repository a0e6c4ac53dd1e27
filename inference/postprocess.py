"""Post-processing steps (fixed vocabulary) and findings extraction on the source grid."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from core.measure import mask_diameter_mm, voxel_volume_mm3
from core.volume import Finding, FloatArray
from inference.finding_mask import FindingMask, Findings

LabelArray = npt.NDArray[np.integer[Any]]


def structure(connectivity: int) -> npt.NDArray[np.bool_]:
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    return np.asarray(ndimage.generate_binary_structure(3, rank), dtype=np.bool_)


def _labels_present(labels: LabelArray, wanted: Iterable[int] | None) -> list[int]:
    present = [int(v) for v in np.unique(labels) if v != 0]
    if wanted is None:
        return present
    keep = set(wanted)
    return [v for v in present if v in keep]


def _bounds(mask: npt.NDArray[np.bool_], pad: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``pad`` voxels (clipped to the array). The
    steps below work inside it: everything outside is not this label, and whole-volume
    labelling of a 256³ grid for a brain-sized region costs seconds."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(0, int(hits[0]) - pad), int(hits[-1]) + 1 + pad))
    return tuple(box)


def keep_largest_component(labels: LabelArray, which: list[int] | None,
                           connectivity: int = 26, *, joint: bool = False) -> LabelArray:
    if joint:
        return _keep_largest_joint(labels, which, connectivity)
    for value in _labels_present(labels, which):
        box = _bounds(labels == value, 0)
        part = labels[box]
        mask = part == value
        comp, n = ndimage.label(mask, structure=structure(connectivity))
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        part[mask & (comp != int(np.argmax(sizes)))] = 0
    return labels


def _keep_largest_joint(labels: LabelArray, which: list[int] | None,
                        connectivity: int) -> LabelArray:
    """The listed labels (default: all) as one foreground: voxels outside its largest
    connected region become background, whatever their label."""
    present = _labels_present(labels, which)
    if not present:
        return labels
    fg = labels > 0 if which is None else np.isin(labels, present)
    box = _bounds(fg, 0)
    part, mask = labels[box], fg[box]
    comp, n = ndimage.label(mask, structure=structure(connectivity))
    if n > 1:
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        part[mask & (comp != int(np.argmax(sizes)))] = 0
    return labels


def fill_holes(labels: LabelArray, which: list[int] | None) -> LabelArray:
    """Fill background enclosed by each label. A one-voxel margin around the label's box
    keeps every opening to the outside open, so the result equals the whole-volume fill
    (where the box meets the volume's edge, that edge is the outside in both)."""
    for value in _labels_present(labels, which):
        box = _bounds(labels == value, 1)
        part = labels[box]
        filled = ndimage.binary_fill_holes(part == value)
        part[filled & (part == 0)] = value
    return labels


def size_filter(labels: LabelArray, which: list[int] | None, min_mm3: float,
                max_mm3: float | None, affine: FloatArray, connectivity: int = 26) -> LabelArray:
    """Zero components whose volume is below ``min_mm3`` or above ``max_mm3``."""
    min_voxels = min_mm3 / voxel_volume_mm3(affine)
    max_voxels = np.inf if max_mm3 is None else max_mm3 / voxel_volume_mm3(affine)
    for value in _labels_present(labels, which):
        mask = labels == value
        comp, n = ndimage.label(mask, structure=structure(connectivity))
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        drop = (sizes < min_voxels) | (sizes > max_voxels)
        drop[0] = False
        labels[drop[comp]] = 0
    return labels


def mask_inside(other: LabelArray, other_labels: list[int] | None, dilate_mm: float,
                affine: FloatArray) -> npt.NDArray[np.bool_]:
    """Where the other model's mask is (its labels, or any label), dilated by ``dilate_mm``."""
    inside = other > 0 if other_labels is None else np.isin(other, other_labels)
    if dilate_mm > 0:
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        radius = np.ceil(dilate_mm / spacing).astype(int)
        grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
        ball = sum((g * s) ** 2 for g, s in zip(grid, spacing, strict=True)) <= dilate_mm ** 2
        inside = ndimage.binary_dilation(inside, structure=ball)
    return np.asarray(inside, dtype=np.bool_)


def mask_by(labels: LabelArray, other: LabelArray, other_labels: list[int] | None,
            dilate_mm: float, affine: FloatArray) -> LabelArray:
    """Zero every label outside the other model's mask (optionally dilated by ``dilate_mm``)."""
    labels[~mask_inside(other, other_labels, dilate_mm, affine)] = 0
    return labels


def extract_findings(
    labels: LabelArray,
    affine: FloatArray,
    label_names: dict[int, str],
    scores: npt.NDArray[np.floating[Any]] | None,
    *,
    which: list[int] | None = None,
    min_mm3: float = 0.0,
    connectivity: int = 26,
    max_findings: int = 500,
    series_uid: str = "",
) -> Findings:
    """Connected components of each label → findings, largest first (capped), each with
    its own component as ``masks[id]`` (the crop of its bounding box)."""
    vox_mm3 = voxel_volume_mm3(affine)
    findings = Findings()
    candidates: list[tuple[int, int, tuple[slice, ...], npt.NDArray[np.bool_]]] = []
    for value in _labels_present(labels, which):
        box = _bounds(labels == value, 0)
        comp, n = ndimage.label(labels[box] == value, structure=structure(connectivity))
        if n == 0:
            continue
        for index, local in enumerate(ndimage.find_objects(comp), start=1):
            if local is None:
                continue
            mask = comp[local] == index
            sl = tuple(slice(a.start + b.start, a.stop + b.start)
                       for a, b in zip(local, box, strict=True))
            count = int(mask.sum())
            if count * vox_mm3 < min_mm3:
                continue
            candidates.append((count, value, sl, mask))
    candidates.sort(key=lambda c: -c[0])
    for fid, (count, value, sl, mask) in enumerate(candidates[:max_findings], start=1):
        local = np.argwhere(mask)
        offset = np.array([s.start for s in sl], dtype=np.int64)
        pts = local + offset
        centroid = pts.mean(axis=0)
        centroid_lps = affine[:3, :3] @ centroid + affine[:3, 3]
        if scores is not None:
            vals = scores[sl][mask].astype(np.float64)
            max_score, mean_score = float(vals.max()), float(vals.mean())
        else:
            max_score = mean_score = 1.0
        lo = pts.min(axis=0)
        hi = pts.max(axis=0)
        findings.masks[fid] = FindingMask((int(offset[0]), int(offset[1]), int(offset[2])),
                                          mask)
        findings.append(Finding(
            id=fid,
            label_value=value,
            label_name=label_names.get(value, f"label {value}"),
            centroid_lps=(float(centroid_lps[0]), float(centroid_lps[1]),
                          float(centroid_lps[2])),
            centroid_index=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
            bbox_index=((int(lo[0]), int(lo[1]), int(lo[2])),
                        (int(hi[0]), int(hi[1]), int(hi[2]))),
            volume_mm3=float(count * vox_mm3),
            longest_diameter_mm=mask_diameter_mm(mask, offset, affine),
            max_score=max_score,
            mean_score=mean_score,
            voxel_count=count,
            series_uid=series_uid,
        ))
    return findings
