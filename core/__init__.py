"""Lucida's data model: volumes with LPS geometry, label and heat maps, findings.

No Qt, VTK, pydicom, onnxruntime or sqlite3 here (an import-linter contract).
"""

from core.errors import (
    CancelledError,
    DicomReadError,
    GeometryError,
    InferenceError,
    LucidaError,
    ModelPackError,
    StoreError,
    UnsupportedError,
)
from core.volume import Finding, HeatMap, Label, LabelMap, Volume, VolumeWarning, WarningCode

__all__ = [
    "CancelledError",
    "DicomReadError",
    "Finding",
    "GeometryError",
    "HeatMap",
    "InferenceError",
    "Label",
    "LabelMap",
    "LucidaError",
    "ModelPackError",
    "StoreError",
    "UnsupportedError",
    "Volume",
    "VolumeWarning",
    "WarningCode",
]
