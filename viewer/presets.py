"""Window/level and 3-D transfer-function presets (pure data, no Qt or VTK).

CT presets are in Hounsfield units; the number-key order is ``CT_PRESET_ORDER``
(key 1 = brain … key 8 = bone). MR and anything else without an absolute
scale never gets HU windows: its default window comes from the 1st and 99th
percentiles of the voxels (:func:`auto_window`) and its number keys choose
windows computed from the volume (``RELATIVE_PRESETS``, see :func:`preset_order`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowPreset:
    """A named display window: width and level (centre) in the volume's units."""

    name: str
    width: float
    level: float
    label: str = ""


# Common PACS values (W, L) in HU.
PRESETS: dict[str, WindowPreset] = {
    p.name: p
    for p in (
        WindowPreset("brain", 80.0, 40.0, "Brain"),
        WindowPreset("subdural", 215.0, 75.0, "Subdural"),
        WindowPreset("stroke", 40.0, 40.0, "Stroke"),
        WindowPreset("lung", 1500.0, -600.0, "Lung"),
        WindowPreset("mediastinum", 350.0, 50.0, "Mediastinum"),
        WindowPreset("abdomen", 400.0, 50.0, "Abdomen"),
        WindowPreset("liver", 150.0, 30.0, "Liver"),
        WindowPreset("bone", 1800.0, 400.0, "Bone"),
    )
}
CT_PRESET_ORDER: tuple[str, ...] = (
    "brain", "subdural", "stroke", "lung", "mediastinum", "abdomen", "liver", "bone",
)
AUTO = "auto"


def auto_window(array: npt.NDArray[Any], low_pct: float = 1.0,
                high_pct: float = 99.0, max_samples: int = 400_000) -> tuple[float, float]:
    """(width, level) spanning the ``low_pct``–``high_pct`` percentiles of ``array``.

    Uses a strided subsample so it stays fast on large volumes. Returns a
    width of at least 1 so the mapping never divides by zero.
    """
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        return 1.0, 0.0
    stride = max(1, flat.size // max_samples)
    sample = flat[::stride].astype(np.float64)
    lo, hi = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    if hi - lo < 1.0:
        # Constant (e.g. nothing loaded yet): show that value black, not mid-grey.
        return 1.0, lo + 0.5
    return hi - lo, (lo + hi) / 2.0


@dataclass(frozen=True)
class RelativePreset:
    """A window from percentiles of the volume itself, for data without an absolute scale
    (MR, PET, ...): ``low_pct``–``high_pct`` of the voxels, or of the foreground only
    (voxels brighter than a tenth of the 99th percentile: MR's background air would
    otherwise be most of the histogram), widened by ``widen`` × the span on each side."""

    name: str
    label: str
    low_pct: float
    high_pct: float
    foreground: bool = True
    widen: float = 0.0


RELATIVE_PRESETS: dict[str, RelativePreset] = {
    p.name: p
    for p in (
        RelativePreset("full-range", "Full range", 0.0, 99.9, foreground=False),
        # Most of the foreground in mid-greys; the brightest tenth (fluid, fat, contrast)
        # may saturate, as on a brain window.
        RelativePreset("tissue", "Tissue", 5.0, 90.0, widen=0.25),
        RelativePreset("bright", "Bright", 40.0, 99.8),
    )
}
RELATIVE_PRESET_ORDER: tuple[str, ...] = ("full-range", "tissue", "bright")


def uses_hounsfield(modality: str) -> bool:
    """True for CT, the one modality whose values are an absolute scale (HU)."""
    return modality.strip().upper() == "CT"


def preset_order(modality: str) -> tuple[str, ...]:
    """The presets of number keys 1, 2, ... for a modality (0 is always "auto")."""
    return CT_PRESET_ORDER if uses_hounsfield(modality) else RELATIVE_PRESET_ORDER


def preset_label(name: str) -> str:
    if name in PRESETS:
        return PRESETS[name].label or name
    if name in RELATIVE_PRESETS:
        return RELATIVE_PRESETS[name].label
    return "Auto (percentiles)" if name == AUTO else name


def preset_fits(name: str, modality: str) -> bool:
    """Whether preset ``name`` means anything on this modality (HU windows only on CT)."""
    return name == AUTO or name in preset_order(modality)


def relative_window(name: str, array: npt.NDArray[Any],
                    max_samples: int = 400_000) -> tuple[float, float]:
    """(width, level) of relative preset ``name`` computed from ``array``."""
    preset = RELATIVE_PRESETS[name]
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        return 1.0, 0.0
    sample = flat[:: max(1, flat.size // max_samples)].astype(np.float64)
    if preset.foreground:
        lo, hi = np.percentile(sample, [0.0, 99.0])
        kept = sample[sample > lo + 0.1 * (hi - lo)]
        sample = kept if kept.size >= 100 else sample
    width, level = auto_window(sample, preset.low_pct, preset.high_pct, max_samples)
    return width * (1.0 + 2.0 * preset.widen), level


def default_window(volume_modality: str, array: npt.NDArray[Any],
                   metadata: dict[str, Any] | None = None) -> tuple[float, float]:
    """The window a series opens with: DICOM's own window if any, CT mediastinum, else auto."""
    md = metadata or {}
    width = _first_number(md, ("window_width", "WindowWidth"))
    level = _first_number(md, ("window_center", "WindowCenter", "window_level"))
    if width is not None and level is not None and width > 0:
        return width, level
    if volume_modality.upper() == "CT":
        p = PRESETS["mediastinum"]
        return p.width, p.level
    return auto_window(array)


def _first_number(md: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = md.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = value[0]
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class VolumePreset:
    """A 3-D transfer function: (value, r, g, b) colour points, (value, opacity) points."""

    name: str
    label: str
    color_points: tuple[tuple[float, float, float, float], ...]
    opacity_points: tuple[tuple[float, float], ...]
    shade: bool = True
    mip: bool = False
    ambient: float = 0.2
    diffuse: float = 0.9
    specular: float = 0.2


VOLUME_PRESETS: dict[str, VolumePreset] = {
    p.name: p
    for p in (
        VolumePreset(
            "ct-bone", "CT bone",
            color_points=((-1000, 0, 0, 0), (150, 0.55, 0.25, 0.15), (300, 0.95, 0.85, 0.7),
                          (1200, 1.0, 1.0, 0.95), (3000, 1, 1, 1)),
            opacity_points=((-1000, 0.0), (150, 0.0), (300, 0.35), (1200, 0.85), (3000, 0.9)),
        ),
        VolumePreset(
            "ct-soft", "CT soft tissue",
            color_points=((-1000, 0, 0, 0), (-500, 0.55, 0.25, 0.15), (40, 0.85, 0.45, 0.35),
                          (200, 0.95, 0.8, 0.7), (1500, 1, 1, 0.95)),
            opacity_points=((-1000, 0.0), (-300, 0.0), (-100, 0.08), (60, 0.25), (200, 0.4),
                            (1500, 0.8)),
        ),
        VolumePreset(
            "ct-lung", "CT lung",
            color_points=((-1000, 0.45, 0.55, 0.75), (-900, 0.55, 0.65, 0.85),
                          (-750, 0.8, 0.6, 0.6), (-550, 0.95, 0.75, 0.65),
                          (-400, 1.0, 0.85, 0.7), (200, 0.9, 0.6, 0.5), (1500, 1, 1, 1)),
            # Aerated lung (about −950…−400 HU) semi-transparent: parenchyma faint, so ~10 cm
            # of it stays see-through, denser borders (vessel and airway walls, fissures,
            # pleura) stronger. Air outside the body (−1000), soft tissue and chest wall
            # clear; bone a faint ghost for orientation, never the dominant structure.
            opacity_points=((-1024, 0.0), (-965, 0.0), (-900, 0.004), (-800, 0.008),
                            (-650, 0.03), (-500, 0.07), (-420, 0.08), (-330, 0.0),
                            (250, 0.0), (450, 0.003), (1500, 0.006)),
            shade=False, ambient=1.0, diffuse=0.0, specular=0.0,
        ),
        VolumePreset(
            "mip", "MIP",
            color_points=((-1000, 0, 0, 0), (1500, 1, 1, 1)),
            opacity_points=((-1000, 0.0), (1500, 1.0)),
            shade=False, mip=True,
        ),
    )
}
