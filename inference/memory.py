"""Peak-memory estimate of one inference run, computed before anything large is allocated."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from core.errors import InferenceError
from inference.manifest import Manifest
from inference.sliding_window import queue_depth, whole_shape

# Network activations per patch voxel when the pack gives no measured figure:
# a 3-D U-Net with 16-32 base channels keeps a few float32 feature maps alive.
DEFAULT_BYTES_PER_PATCH_VOXEL = 320.0
MB = 1 << 20


def available_memory_bytes() -> int:
    """Memory the OS can give us now (psutil when present, else /proc or sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


@dataclass
class MemoryPlan:
    """The estimate (bytes, by part) and the settings chosen to fit."""

    batch_size: int
    accumulator_dtype: str
    parts: dict[str, int] = field(default_factory=dict)
    limit_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    lanes: int = 1  # tile batches in flight at once

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / MB:.0f} MB" for k, v in self.parts.items())
        return f"about {self.total_bytes / MB:.0f} MB ({parts})"


def _parts(manifest: Manifest, source_voxels: int, model_shape: tuple[int, int, int],
           batch: int, acc_bytes: int, lanes: int = 1) -> dict[str, int]:
    out_ch = manifest.output.channels
    in_ch = manifest.input.channels
    model_voxels = math.prod(model_shape)
    tiling = manifest.tiling
    if manifest.localizer is not None:  # the networks see resized boxes, not the grid
        patch_voxels = max(math.prod(manifest.localizer.crop_shape),
                           math.prod(manifest.localizer.shape))
        batch = 1
        lanes = 1
        padded = model_voxels
        out_patch_voxels = patch_voxels
    elif tiling.mode == "whole" or tiling.patch_size is None:
        patch_voxels = math.prod(whole_shape(model_shape, tiling.divisible_by))
        batch = 1
        lanes = 1
        padded = patch_voxels
        out_patch_voxels = patch_voxels
    else:
        patch_voxels = math.prod(tiling.patch_size)
        out_patch = [p - 2 * m for p, m in zip(tiling.patch_size, tiling.output_margin,
                                                strict=True)]
        out_patch_voxels = math.prod(out_patch)
        if tiling.last_tile == "on_grid":  # the last block reaches past the volume
            padded = math.prod(-(-s // q) * q + 2 * m for s, q, m in zip(
                model_shape, out_patch, tiling.output_margin, strict=True))
        else:
            padded = math.prod(max(s, q) + 2 * m for s, q, m in zip(
                model_shape, out_patch, tiling.output_margin, strict=True))
    per_voxel = (manifest.memory.bytes_per_patch_voxel if manifest.memory is not None
                 else DEFAULT_BYTES_PER_PATCH_VOXEL)
    members = len(manifest.member_files)
    inputs = {
        "model-space input": in_ch * model_voxels * 4,
        "padding copy": in_ch * padded * 4 if padded > model_voxels else 0,
    }
    if manifest.output.kind == "detections":
        # Boxes, not maps: no accumulator; the painted label and score maps instead.
        return {
            **inputs,
            "tile buffer": in_ch * patch_voxels * 4,
            "network activations": int(patch_voxels * per_voxel),
            "painted maps": model_voxels * (4 + 2),
            "results on source grid": source_voxels * (4 + 2 + 1),
        }
    parts = {
        **inputs,
        "accumulator": out_ch * max(padded, model_voxels) * acc_bytes
        * (2 if members > 1 else 1),
        "tile buffers": queue_depth(lanes) * batch
        * (in_ch * patch_voxels + 2 * out_ch * out_patch_voxels) * 4,
        "network activations": int(lanes * batch * patch_voxels * per_voxel),
        "results on source grid": source_voxels * (4 + 2 + 1) + model_voxels * 2,
    }
    return parts


def plan_memory(manifest: Manifest, source_shape: tuple[int, int, int],
                model_shape: tuple[int, int, int], *, batch_size: int | None = None,
                limit_bytes: int | None = None, lanes: int = 1) -> MemoryPlan:
    """Choose tiles in flight, tile batch and accumulator precision to fit; refuse if
    nothing fits. Parallel tiles go first, then batch size, then float32."""
    limit = int(limit_bytes if limit_bytes is not None else available_memory_bytes() * 0.8)
    source_voxels = math.prod(source_shape)
    batch = batch_size or manifest.tiling.batch_size
    want = manifest.output.accumulator_dtype
    dtypes = ["float32"] if want == "float32" else ["float16"] if want == "float16" else [
        "float32", "float16"]
    notes: list[str] = []
    last: dict[str, int] = {}
    for dtype in dtypes:
        acc_bytes = np.dtype(dtype).itemsize
        b, ln = batch, max(1, lanes)
        while b >= 1:
            parts = _parts(manifest, source_voxels, model_shape, b, acc_bytes, ln)
            last = parts
            if sum(parts.values()) <= limit:
                if ln < lanes:
                    notes.append("one tile at a time (not two in parallel) to fit in memory")
                if b < batch:
                    notes.append(f"tile batch reduced from {batch} to {b} to fit in memory")
                if dtype != dtypes[0]:
                    notes.append("probabilities accumulated in float16 to fit in memory")
                return MemoryPlan(b, dtype, parts, limit, notes, ln)
            if ln > 1:
                ln = 1
            else:
                b //= 2
    plan = MemoryPlan(1, dtypes[-1], last, limit, notes)
    raise InferenceError(
        f"not enough memory: this run needs {plan.describe()} but only about "
        f"{limit / MB:.0f} MB can be used; model grid {model_shape} from a "
        f"{source_shape} volume. Close other programs, crop the volume, or use a "
        "machine with more memory"
    )
