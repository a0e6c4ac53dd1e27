"""Sign-off export: DICOM SEG, SR (TID 1500) and KO of a reviewed model run (highdicom).

Inputs are plain dataclasses (:mod:`dicomio.export.model`) so that this package needs
only ``core``: the app turns a review session into them (``app/signoff.py``).
"""

from dicomio.export.model import (
    AlgorithmInfo,
    ExportContext,
    ExportFinding,
    ExportRefused,
    ExportResult,
)
from dicomio.export.write import export_objects

__all__ = ["AlgorithmInfo", "ExportContext", "ExportFinding", "ExportRefused", "ExportResult",
           "export_objects"]
