"""Lucida inference: model packs, onnxruntime sessions, sliding window, findings, worker.

No Qt, VTK or pydicom here. onnxruntime is imported only by
``inference.runtime``, which switches telemetry off before importing it.

Public API (imported lazily so ``import inference`` stays cheap)::

    inference.run(volume, pack, *, progress=None, cancel=None, providers=None,
                  threads=None) -> InferenceResult
    inference.ModelPack.open(path)       # folder or .zip
    inference.Registry.for_library(dir)  # list / get / install / remove
    inference.check_input(volume, manifest) -> list[str]
    inference.worker.InferenceJob.start(volume, pack_ref, options) -> job
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any

# onnxruntime's telemetry opt-out. The 1.29-1.32 wheels read ORT_DISABLE_TELEMETRY (checked:
# it alone leaves no device id); upstream's newer code reads ORT_TELEMETRY_DISABLED. Set both.
TELEMETRY_OPT_OUT = {"ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}


def disable_onnxruntime_telemetry() -> None:
    """Must run before onnxruntime is first imported in a process."""
    _os.environ.update(TELEMETRY_OPT_OUT)


# Any process that imports inference gets telemetry off before onnxruntime loads.
disable_onnxruntime_telemetry()

if TYPE_CHECKING:
    from inference.checks import check_input
    from inference.manifest import Manifest, parse_manifest
    from inference.pack import ModelPack
    from inference.pipeline import InferenceResult, run
    from inference.registry import Registry

_LAZY = {
    "run": "inference.pipeline",
    "InferenceResult": "inference.pipeline",
    "ModelPack": "inference.pack",
    "Registry": "inference.registry",
    "Manifest": "inference.manifest",
    "parse_manifest": "inference.manifest",
    "check_input": "inference.checks",
}

__all__ = ["InferenceResult", "Manifest", "ModelPack", "Registry", "check_input",
           "parse_manifest", "run"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
