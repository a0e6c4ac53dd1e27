"""Detector output: boxes per tile → one de-duplicated list → findings on the source grid.

A detector pack's network returns boxes, not a map (``manifest.DetectionSpec``
says which column is what). Coordinates are voxel edges of the network input:
voxel ``n`` spans ``[n, n + 1)`` along its axis, so a box ``[3, 6)`` covers
voxels 3, 4 and 5 and its centre is voxel centre 4.0. Tiles are offset into the
model-space tensor, boxes that overlap another box of the same class by more
than ``nms_iou`` (3-D IoU) keep only the best score — neighbouring tiles see the
same lesion — and each survivor becomes a finding:

* centroid: the box centre, through the model grid's affine to LPS and to the
  source grid's continuous (k, j, i);
* bbox: the source voxels whose centres lie inside the box (at least the
  voxel nearest the centre);
* volume: the ellipsoid inscribed in the box, π/6 · a · b · c in mm³, and
  longest diameter: the box's longest side in mm. Both are estimates from the
  box, not a segmentation;
* score: the box score (max and mean are the same number).

The label map shows each box as its inscribed ellipsoid (higher scores drawn
last), and the heat map its score there. Each finding keeps its whole ellipsoid as
its own mask (``own_masks``), overlaps included, and its voxel count is that mask's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from core import geometry
from core.errors import CancelledError, InferenceError
from core.progress import CancelToken
from core.volume import Finding, FloatArray
from inference.finding_mask import FindingMask
from inference.manifest import DetectionSpec
from inference.sliding_window import pad_image, plan_tiles, whole_shape
from inference.spaces import ModelGrid, from_model_grid

Predictor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
Progress = Callable[[float, str], None]
_MAX_BEFORE_NMS = 20000  # pathological outputs: keep the best boxes, bound the O(n²) NMS


@dataclass
class Boxes:
    """Boxes in model-tensor voxel-edge coordinates: ``corners`` [n, 6] (mins, then maxes)."""

    corners: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    classes: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: npt.ArrayLike) -> Boxes:
        idx = np.asarray(index, dtype=np.intp)
        return Boxes(self.corners[idx], self.scores[idx], self.classes[idx])

    @staticmethod
    def empty() -> Boxes:
        return Boxes(np.zeros((0, 6)), np.zeros(0), np.zeros(0, dtype=np.int64))

    @staticmethod
    def concat(parts: Sequence[Boxes]) -> Boxes:
        if not parts:
            return Boxes.empty()
        return Boxes(np.concatenate([p.corners for p in parts]),
                     np.concatenate([p.scores for p in parts]),
                     np.concatenate([p.classes for p in parts]))


def decode(out: npt.NDArray[Any], spec: DetectionSpec, columns: int,
           activation: Literal["softmax", "sigmoid", "none"], label: str) -> Boxes:
    """Check a network's box tensor and keep the boxes scoring at least ``min_score``."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != columns:
        raise InferenceError(
            f"{label} returned shape {tuple(np.shape(out))}; a detector returns boxes "
            f"[N, {columns}] or [1, N, {columns}] (output.channels columns)"
        )
    if not np.isfinite(arr).all():
        raise InferenceError(
            f"{label} produced NaN or infinite box values; the model or its input "
            "normalisation is broken for this image"
        )
    corners = arr[:, :6]
    if (corners[:, 3:] < corners[:, :3]).any():
        raise InferenceError(
            f"{label} returned a box whose maximum corner is below its minimum; columns 0-5 "
            "must be a0_min, a1_min, a2_min, a0_max, a1_max, a2_max"
        )
    scores = arr[:, spec.score_column]
    if activation == "sigmoid":
        scores = 1.0 / (1.0 + np.exp(-scores))
    classes = (np.rint(arr[:, spec.class_column]).astype(np.int64)
               if spec.class_column is not None else np.zeros(len(arr), dtype=np.int64))
    keep = scores >= spec.min_score
    return Boxes(corners[keep].copy(), scores[keep].copy(), classes[keep])


def detect(image: npt.NDArray[np.float32], predict: Predictor,
           read: Callable[[npt.NDArray[np.float32]], Boxes], *,
           mode: Literal["sliding", "whole"], patch: Sequence[int] | None, overlap: float,
           divisible_by: int, pad_value: float, padding: Literal["constant", "edge"],
           progress: Progress | None = None, cancel: CancelToken | None = None) -> Boxes:
    """Run a detector over ``image`` ``[C, a0, a1, a2]`` (tiles or whole) and return every
    box in the image's tensor coordinates, clipped to it (boxes only in padding dropped)."""
    spatial = tuple(int(s) for s in image.shape[1:])
    if mode == "whole" or patch is None:
        size = whole_shape(spatial, divisible_by)
        starts = [(0, 0, 0)]
        target = list(size)
    else:
        plan = plan_tiles(spatial, patch, overlap)
        starts = plan.tile_starts()
        target = list(plan.extent)
        size = plan.patch
    pads = [(0, t - s) for t, s in zip(target, spatial, strict=True)]
    work = pad_image(image, pads, padding, pad_value) if any(b for _, b in pads) else image
    found: list[Boxes] = []
    for n, (a0, a1, a2) in enumerate(starts):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("inference cancelled by the user")
        tile = np.ascontiguousarray(
            work[None, :, a0:a0 + size[0], a1:a1 + size[1], a2:a2 + size[2]])
        boxes = read(predict(tile))
        boxes.corners += np.array([a0, a1, a2, a0, a1, a2], dtype=np.float64)
        found.append(boxes)
        if progress is not None:
            progress((n + 1) / len(starts), f"tile {n + 1}/{len(starts)}")
    return clip(Boxes.concat(found), spatial)


def clip(boxes: Boxes, shape: Sequence[int]) -> Boxes:
    """Clip boxes to ``[0, shape)``; drop those left with no extent (they were in padding)."""
    hi = np.array([*shape, *shape], dtype=np.float64)
    corners = np.clip(boxes.corners, 0.0, hi)
    keep = (corners[:, 3:] > corners[:, :3]).all(axis=1)
    return Boxes(corners[keep], boxes.scores[keep], boxes.classes[keep])


def non_max_suppression(boxes: Boxes, iou: float, max_keep: int) -> Boxes:
    """Greedy NMS per class by 3-D IoU, best score first (ties: the earlier box)."""
    order = np.argsort(-boxes.scores, kind="stable")[:_MAX_BEFORE_NMS]
    lo, hi = boxes.corners[:, :3], boxes.corners[:, 3:]
    vol = np.prod(hi - lo, axis=1)
    suppressed = np.zeros(len(boxes), dtype=np.bool_)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        if len(keep) == max_keep:
            break
        inter = np.prod(np.clip(np.minimum(hi[i], hi) - np.maximum(lo[i], lo), 0.0, None),
                        axis=1)
        union = vol[i] + vol - inter
        overlap = inter / np.maximum(union, 1e-12)
        suppressed |= (overlap > iou) & (boxes.classes == boxes.classes[i])
    return boxes.take(keep)


@dataclass(frozen=True)
class Placed:
    """One kept box on the source grid: its row in the Boxes, and its finding (numbered
    and with its voxels counted once its own mask is made)."""

    box: int
    finding: Finding


def place(boxes: Boxes, grid: ModelGrid, source_affine: FloatArray,
          source_shape: tuple[int, int, int], labels: dict[int, tuple[int, str]], *,
          min_mm3: float, inside: npt.NDArray[np.bool_] | None = None,
          series_uid: str = "") -> list[Placed]:
    """Boxes (best first) → source-grid geometry; drop those under ``min_mm3`` or whose
    centre is outside ``inside`` (a ``mask_by`` mask on the source grid)."""
    spacing = geometry.spacing_from_affine(grid.affine)  # model (k, j, i)
    shape = np.array(source_shape)
    out: list[Placed] = []
    for row in np.argsort(-boxes.scores, kind="stable"):
        cls = int(boxes.classes[row])
        if cls not in labels:
            known = ", ".join(str(c) for c in sorted(labels))
            raise InferenceError(f"the detector returned class {cls}, which has no label in "
                                 f"output.labels (classes: {known})")
        lo, hi = boxes.corners[row, :3], boxes.corners[row, 3:]
        if grid.axis_order == "ijk":  # tensor (i, j, k) → grid (k, j, i)
            lo, hi = lo[::-1], hi[::-1]
        extent_mm = (hi - lo) * spacing
        volume = math.pi / 6.0 * float(np.prod(extent_mm))
        if volume < min_mm3:
            continue
        centre_lps = geometry.index_to_lps(grid.affine, (lo + hi) / 2.0 - 0.5)
        centre_src = geometry.lps_to_index(source_affine, centre_lps)
        nearest = np.clip(np.rint(centre_src).astype(int), 0, shape - 1)
        if inside is not None and not inside[tuple(nearest)]:
            continue
        corners = np.array(list(itertools.product(*zip(lo - 0.5, hi - 0.5, strict=True))))
        src = geometry.lps_to_index(source_affine, geometry.index_to_lps(grid.affine, corners))
        bmin = np.clip(np.ceil(src.min(axis=0) - 1e-6).astype(int), 0, shape - 1)
        bmax = np.clip(np.floor(src.max(axis=0) + 1e-6).astype(int), 0, shape - 1)
        if (bmin > bmax).any():  # thinner than a voxel: the voxel nearest its centre
            bmin = bmax = nearest
        value, name = labels[cls]
        score = float(boxes.scores[row])
        out.append(Placed(int(row), Finding(
            id=0, label_value=value, label_name=name,
            centroid_lps=(float(centre_lps[0]), float(centre_lps[1]), float(centre_lps[2])),
            centroid_index=(float(centre_src[0]), float(centre_src[1]), float(centre_src[2])),
            bbox_index=((int(bmin[0]), int(bmin[1]), int(bmin[2])),
                        (int(bmax[0]), int(bmax[1]), int(bmax[2]))),
            volume_mm3=volume, longest_diameter_mm=float(extent_mm.max()), max_score=score,
            mean_score=score, voxel_count=0, series_uid=series_uid)))
    return out


def _ellipsoid(boxes: Boxes, box: int, shape: npt.NDArray[np.int64]
               ) -> tuple[tuple[slice, ...], npt.NDArray[np.bool_]]:
    """The tensor region of a box and the voxels of it inside the box's inscribed ellipsoid
    (at least the voxel holding the centre)."""
    lo, hi = boxes.corners[box, :3], boxes.corners[box, 3:]
    start = np.clip(np.floor(lo).astype(int), 0, shape - 1)
    stop = np.clip(np.ceil(hi).astype(int), start + 1, shape)
    centre, radius = (lo + hi) / 2.0, np.maximum((hi - lo) / 2.0, 1e-6)
    axes = np.ogrid[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))]
    inside = np.asarray(sum(((ax + 0.5 - c) / r) ** 2
                            for ax, c, r in zip(axes, centre, radius, strict=True)) <= 1.0,
                        dtype=np.bool_)
    if not inside.any():  # smaller than a voxel: mark the voxel holding the centre
        inside = np.zeros(inside.shape, dtype=np.bool_)
        at = np.clip(np.floor(centre).astype(int), start, stop - 1) - start
        inside[tuple(at)] = True
    return tuple(slice(a, b) for a, b in zip(start, stop, strict=True)), inside


def paint(boxes: Boxes, placed: Sequence[Placed], tensor_shape: Sequence[int],
          dtype: type[np.integer[Any]]) -> tuple[npt.NDArray[np.integer[Any]],
                                                 npt.NDArray[np.float32]]:
    """Label map and score map in tensor order: each placed box as its inscribed
    ellipsoid (lowest score first, so the best box wins where two overlap)."""
    labels = np.zeros(tuple(tensor_shape), dtype=dtype)
    heat = np.zeros(tuple(tensor_shape), dtype=np.float32)
    shape = np.array(tensor_shape)
    for p in sorted(placed, key=lambda q: q.finding.max_score):
        region, inside = _ellipsoid(boxes, p.box, shape)
        labels[region][inside] = p.finding.label_value
        heat[region][inside] = p.finding.max_score
    return labels, heat


def _layers(regions: Sequence[tuple[slice, ...]]) -> list[list[int]]:
    """Greedy split of regions into layers whose regions do not intersect, so one index
    map per layer holds every finding of it whole."""
    layers: list[list[int]] = []
    for n, region in enumerate(regions):
        for layer in layers:
            if not any(all(a.start < b.stop and b.start < a.stop
                           for a, b in zip(region, regions[m], strict=True))
                       for m in layer):
                layer.append(n)
                break
        else:
            layers.append([n])
    return layers


def own_masks(boxes: Boxes, placed: Sequence[Placed], grid: ModelGrid,
              source_affine: FloatArray, source_shape: tuple[int, int, int]
              ) -> dict[int, FindingMask]:
    """Each placed box's own ellipsoid on the source grid, keyed by its finding number
    (its place in ``placed`` + 1): exactly the voxels the label map would show for it
    alone, brought back as the label map is (nearest). Ellipsoids may overlap, so they are
    painted in as few non-intersecting layers as possible, one resampling per layer."""
    shape = np.array(grid.tensor_shape)
    painted = [_ellipsoid(boxes, p.box, shape) for p in placed]
    dtype = np.uint16 if len(placed) < np.iinfo(np.uint16).max else np.uint32
    out: dict[int, FindingMask] = {}
    for layer in _layers([region for region, _inside in painted]):
        index_t = np.zeros(grid.tensor_shape, dtype=dtype)
        for n in layer:
            region, inside = painted[n]
            index_t[region][inside] = n + 1
        index = from_model_grid(np.ascontiguousarray(grid.from_tensor(index_t)), grid,
                                source_affine, source_shape, interpolation="nearest")
        slices = ndimage.find_objects(index, max_label=len(placed))
        for n in layer:
            sl = slices[n]
            if sl is None:  # finer than the source grid: no source voxel is nearest to it
                lo = placed[n].finding.bbox_index[0]
                out[n + 1] = FindingMask(lo, np.zeros((0, 0, 0), dtype=np.bool_))
            else:
                out[n + 1] = FindingMask((sl[0].start, sl[1].start, sl[2].start),
                                         index[sl] == n + 1)
    return out


def numbered(placed: Sequence[Placed], masks: Mapping[int, FindingMask]) -> list[Finding]:
    """The findings, numbered from 1 (best first), each with the source-grid voxels of its
    own ellipsoid (``own_masks``) counted."""
    return [dataclasses.replace(p.finding, id=n + 1, voxel_count=masks[n + 1].voxel_count)
            for n, p in enumerate(placed)]
