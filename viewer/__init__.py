"""Lucida viewer: VTK slice and 3-D views in Qt widgets (imports only ``core``).

``ViewerPanel``, ``SliceView`` and ``VolumeView3D`` load Qt and VTK on first
access, so ``import viewer`` (or ``viewer.presets``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from viewer.presets import CT_PRESET_ORDER, PRESETS, VOLUME_PRESETS

if TYPE_CHECKING:
    from viewer.panel import ViewerPanel
    from viewer.projection_view import ProjectionView
    from viewer.slice_view import SliceView
    from viewer.volume_view import VolumeView3D

__all__ = ["CT_PRESET_ORDER", "PRESETS", "VOLUME_PRESETS", "ProjectionView", "SliceView",
           "ViewerPanel", "VolumeView3D"]

_LAZY = {
    "ViewerPanel": "viewer.panel",
    "ProjectionView": "viewer.projection_view",
    "SliceView": "viewer.slice_view",
    "VolumeView3D": "viewer.volume_view",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'viewer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
