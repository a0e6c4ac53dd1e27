"""Intensity normalisation from the manifest's fixed vocabulary (in place, float32)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.errors import InferenceError
from inference.manifest import (
    Affine,
    Chain,
    Conform,
    HUWindow,
    MinMax,
    NoNormalization,
    Normalization,
    Percentiles,
    ZScore,
)

Array32 = npt.NDArray[np.float32]


def _affine_map(x: Array32, lo: float, hi: float, out_min: float, out_max: float,
                clip: bool) -> Array32:
    span = hi - lo
    if span <= 0:
        x.fill(out_min)
        return x
    if clip:
        np.clip(x, lo, hi, out=x)
    scale = np.float32((out_max - out_min) / span)
    x -= np.float32(lo)
    x *= scale
    x += np.float32(out_min)
    return x


def _epsilon_map(x: Array32, lo: float, hi: float, spec: Percentiles) -> Array32:
    """``(x - lo) / (hi - lo + epsilon)`` onto [out_min, out_max], the result clipped."""
    scale = np.float32((spec.out_max - spec.out_min) / (hi - lo + spec.epsilon))
    x -= np.float32(lo)
    x *= scale
    x += np.float32(spec.out_min)
    if spec.clip:
        np.clip(x, spec.out_min, spec.out_max, out=x)
    return x


def _sample(x: Array32, limit: int = 2_000_000) -> Array32:
    """A strided sample for percentiles (exact enough, much cheaper than a full sort)."""
    flat = x.reshape(-1)
    step = max(1, flat.size // limit)
    return flat[::step]


def normalize(x: Array32, spec: Normalization,
              stats: dict[str, tuple[float, float]] | None = None) -> Array32:
    """Normalise ``x`` in place according to ``spec``; returns ``x``.

    ``stats`` carries percentile values between a cascade's two stages: the localizer's
    normalisation records its ``(lo, hi)`` under ``"percentiles"``, and a ``percentiles``
    step with ``statistics: "localizer"`` reuses them.
    """
    if isinstance(spec, NoNormalization):
        return x
    if isinstance(spec, Chain):
        for step in spec.steps:
            normalize(x, step, stats)
        return x
    if isinstance(spec, Affine):
        if spec.scale != 1.0:
            x *= np.float32(spec.scale)
        if spec.offset != 0.0:
            x += np.float32(spec.offset)
        return x
    if isinstance(spec, HUWindow):
        return _affine_map(x, spec.low, spec.high, spec.out_min, spec.out_max, spec.clip)
    if isinstance(spec, MinMax):
        return _affine_map(x, float(x.min()), float(x.max()), spec.out_min, spec.out_max, False)
    if isinstance(spec, Percentiles):
        if spec.statistics == "localizer":
            if stats is None or "percentiles" not in stats:
                raise InferenceError("percentiles from the localizer were asked for, but the "
                                     "localizer recorded none")
            lo, hi = stats["percentiles"]
        else:
            sample = x.reshape(-1) if spec.statistics == "all" else _sample(x)
            lo, hi = np.percentile(sample, [spec.lower, spec.upper])
            if stats is not None:
                stats["percentiles"] = (float(lo), float(hi))
        if spec.epsilon > 0:
            return _epsilon_map(x, float(lo), float(hi), spec)
        return _affine_map(x, float(lo), float(hi), spec.out_min, spec.out_max, spec.clip)
    if isinstance(spec, ZScore):
        if spec.mean is not None and spec.std is not None:
            mean, std = spec.mean, spec.std
        else:
            src = x.reshape(-1) if spec.statistics == "all" else _sample(x)
            if spec.nonzero_only:
                src = src[src != 0]
            if src.size <= spec.ddof:
                raise InferenceError("z-score normalisation: the image has no nonzero voxels")
            mean = float(src.mean()) if spec.mean is None else spec.mean
            std = float(src.std(ddof=spec.ddof)) if spec.std is None else spec.std
        std = std if std > 1e-8 else 1.0
        if spec.nonzero_only:
            mask = x != 0
            x[mask] = (x[mask] - np.float32(mean)) / np.float32(std)
        else:
            x -= np.float32(mean)
            x /= np.float32(std)
        return x
    if isinstance(spec, Conform):
        np.maximum(x, 0, out=x)
        nonzero = _sample(x)
        nonzero = nonzero[nonzero > 0]
        hi = float(np.percentile(nonzero, spec.upper_percentile)) if nonzero.size else 1.0
        _affine_map(x, 0.0, hi if hi > 0 else 1.0, 0.0, 255.0, True)
        np.rint(x, out=x)  # uint8 levels like mri_convert --conform
        lo, top = spec.scale_to
        if (lo, top) != (0.0, 255.0):
            _affine_map(x, 0.0, 255.0, lo, top, False)
        return x
    raise InferenceError(f"unknown normalisation {spec!r}")
