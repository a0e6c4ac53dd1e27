"""Two-stage models: a localizer network finds a box, the main network runs on it resized.

This is how deepbet works (its bounding-box network on the whole head at 128³, then the
brain-mask network on the box at 256³). Everything follows ``manifest.localizer``; the
arithmetic mirrors PyTorch's ``F.interpolate(mode="nearest-exact")`` and deepbet's box rule
in float32, so a pack reproduces the authors' box to the voxel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from core.errors import InferenceError
from inference.manifest import LocalizerSpec, Normalization
from inference.normalize import normalize

Array32 = npt.NDArray[np.float32]
Predictor = Callable[[Array32], Array32]
Box = tuple[slice, slice, slice]


def nearest_exact_index(size_in: int, size_out: int) -> npt.NDArray[np.intp]:
    """Source index of each output index: ``min(floor((o + 0.5) * in / out), in - 1)``, the
    scale and product in float32 as PyTorch computes them for float32 tensors."""
    scale = np.float32(size_in) / np.float32(size_out)
    pos = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale
    index: npt.NDArray[np.intp] = np.minimum(np.floor(pos).astype(np.intp), size_in - 1)
    return index


def resize_nearest_exact(a: npt.NDArray[np.generic], shape: tuple[int, ...]
                         ) -> npt.NDArray[np.generic]:
    """Resize the last three axes of ``a`` to ``shape`` (a new array)."""
    index = [nearest_exact_index(a.shape[a.ndim - 3 + k], n) for k, n in enumerate(shape)]
    if int(np.prod(shape)) < int(np.prod(a.shape[-3:])):
        # Shrinking: one gather of the output's voxels. Axis by axis, the first np.take
        # would copy most of ``a``, through its strides when it is a transposed view (the
        # model's tensor order): 0.15-0.2 s for a 256³ head, against 2 ms.
        gather: tuple[Any, ...] = (..., *np.ix_(*index))
        return np.asarray(a[gather])
    out = a
    for offset, n in enumerate(shape):
        axis = a.ndim - 3 + offset
        if out.shape[axis] != n:
            out = np.take(out, index[offset], axis=axis)
    return out if out is not a else a.copy()


def largest_component(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The largest 26-connected region of ``mask`` (deepbet uses cc3d's default, 26)."""
    comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return mask
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return np.asarray(comp == int(np.argmax(sizes)), dtype=np.bool_)


def box_from_mask(mask: npt.NDArray[np.bool_], full_shape: tuple[int, int, int],
                  profile_fraction: float, margin: float) -> Box:
    """deepbet's box: per axis the planes with more than ``profile_fraction`` of their
    voxels inside, scaled from the mask's grid to ``full_shape``, grown by ``margin`` of the
    size on each side, rounded half to even and clipped to the volume."""
    centres, sizes = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        profile = mask.mean(axis=others, dtype=np.float32)
        hits = np.flatnonzero(profile > np.float32(profile_fraction))
        if hits.size == 0:
            raise InferenceError(
                "the localizer found too little of the target to place a box; the image "
                "may not show what this model expects (e.g. no head in the field of view)")
        lo, hi = int(hits.min()), int(hits.max()) + 1
        centres.append(np.float32(hi + lo) / np.float32(2))
        sizes.append(np.float32(hi - lo))
    scale = (np.asarray(full_shape, dtype=np.float32)
             / np.asarray(mask.shape, dtype=np.float32))
    centre = np.asarray(centres, dtype=np.float32) * scale
    size = np.asarray(sizes, dtype=np.float32) * scale
    size = (np.float32(1) + np.float32(2) * np.float32(margin)) * size
    centre, size = np.round(centre), np.round(size)
    box = []
    for c, s, n in zip(centre, size, full_shape, strict=True):
        start, stop = int(c - s / np.float32(2)), int(c + s / np.float32(2))
        box.append(slice(max(0, start), min(n, stop)))
    return box[0], box[1], box[2]


@dataclass
class Located:
    """What the first stage found: the box (tensor order) and the main network's input."""

    box: Box
    tensor: Array32  # [1, c0, c1, c2], normalised
    stats: dict[str, tuple[float, float]]

    @property
    def box_shape(self) -> tuple[int, int, int]:
        b = self.box
        return (b[0].stop - b[0].start, b[1].stop - b[1].start, b[2].stop - b[2].start)


def locate(raw: Array32, spec: LocalizerSpec, predict: Predictor,
           main_normalization: Normalization) -> Located:
    """Run the localizer on ``raw`` (model-space intensities, tensor order, not normalised)
    and cut, resize and normalise the box for the main network."""
    small = np.ascontiguousarray(resize_nearest_exact(raw, spec.shape), dtype=np.float32)
    stats: dict[str, tuple[float, float]] = {}
    normalize(small, spec.normalization, stats)
    out = predict(small[None, None])
    if out.ndim != 5 or out.shape[1] <= spec.channel or tuple(out.shape[2:]) != spec.shape:
        raise InferenceError(
            f"the localizer returned shape {tuple(out.shape)} for input "
            f"{(1, 1, *spec.shape)}; expected channel {spec.channel} of a (1, C, "
            f"{', '.join(map(str, spec.shape))}) output")
    mask = out[0, spec.channel] > np.float32(spec.threshold)
    if spec.keep_largest_component:
        mask = largest_component(mask)
    shape = (raw.shape[0], raw.shape[1], raw.shape[2])
    box = box_from_mask(mask, shape, spec.profile_fraction, spec.margin)
    crop = np.ascontiguousarray(resize_nearest_exact(raw[box], spec.crop_shape),
                                dtype=np.float32)
    normalize(crop, main_normalization, stats)
    return Located(box=box, tensor=crop[None], stats=stats)


def paste(out: Array32, located: Located, full_shape: tuple[int, int, int]) -> Array32:
    """The main network's ``[C, c0, c1, c2]`` output resized into the box of a
    ``[C, *full_shape]`` array whose voxels outside the box are background."""
    channels = out.shape[0]
    full = np.zeros((channels, *full_shape), dtype=out.dtype)
    full[0] = 1
    full[(slice(None), *located.box)] = resize_nearest_exact(out, located.box_shape)
    return full
