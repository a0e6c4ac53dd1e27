"""Network inputs for the export checks, prepared the way deepbet 1.0.2 prepares them.

Only the steps that shape the two networks' inputs (see
../shared/models-src/deepbet/README.md, pipeline steps 1-6), written here from that
description: RAS-canonical voxels, nearest-exact resize, the small image's 0.5/99.5 %
quantiles, min-max clamp, z-score and deepbet's 0.226/0.449 affine, and the bounding
box of the bbox network's mask. The largest-connected-component step before the box is
left out (it would need cc3d or scipy): the box only picks a realistic crop to feed the
main network, so a slightly different box does not weaken the check.

Runs in the side environment (torch, nibabel).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

SMALL_SHAPE = (128, 128, 128)
MAIN_SHAPE = (256, 256, 256)


def load_ras(path: Path) -> torch.Tensor:
    """The image's first volume as float32 in RAS-canonical voxel order, NaNs zeroed."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if data.ndim == 4:
        data = data[..., 0]
    return torch.nan_to_num(torch.from_numpy(np.ascontiguousarray(data)))


def resize_nearest_exact(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    return F.interpolate(x[None, None], shape, mode="nearest-exact")[0, 0]


def normalize(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """deepbet's normalisation: clamp to [low, high] scaled to [0, 1], z-score, 0.226/0.449."""
    x = ((x - low) / (high - low)).clamp(0.0, 1.0)
    x = (x - x.mean()) / x.std()  # torch's std is the unbiased one, as deepbet uses
    return 0.226 * x + 0.449


def bbox_input(volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1,1,128,128,128) input of the bbox network, and the (low, high) it was scaled with."""
    small = resize_nearest_exact(volume, SMALL_SHAPE)
    low, high = small.quantile(0.005), small.quantile(0.995)
    return normalize(small, low, high)[None, None].contiguous(), low, high


def bounding_box(mask_small: torch.Tensor, full_shape: tuple[int, ...],
                 margin: float = 0.1) -> tuple[slice, slice, slice]:
    """deepbet's box: axes where the mask's mean over the other two axes > 0.02, scaled up."""
    box: list[slice] = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        idx = torch.where(mask_small.float().mean(others) > 0.02)[0]
        if idx.numel() == 0:
            raise ValueError("the bbox network found no brain in the realistic input")
        scale = full_shape[axis] / mask_small.shape[axis]
        centre = float(idx.max() + 1 + idx.min()) / 2 * scale
        size = float(idx.max() + 1 - idx.min()) * scale * (1 + 2 * margin)
        centre, size = round(centre), round(size)
        box.append(slice(max(0, int(centre - size / 2)),
                         min(full_shape[axis], int(centre + size / 2))))
    return box[0], box[1], box[2]


def main_input(volume: torch.Tensor, bbox_probabilities: torch.Tensor, low: torch.Tensor,
               high: torch.Tensor) -> torch.Tensor:
    """(1,1,256,256,256) input of the main network: the box crop resized and normalised."""
    box = bounding_box(bbox_probabilities[0, 1] > 0.5, tuple(volume.shape))
    crop = resize_nearest_exact(volume[box].contiguous(), MAIN_SHAPE)
    return normalize(crop, low, high)[None, None].contiguous()
