"""Reading what others made: DICOM SEG, SR (TID 1500) and RTSTRUCT onto a series' grid."""

from dicomio.derived.model import (
    DerivedObject,
    ImportedFinding,
    ImportedMeasurement,
    MaskCrop,
)

__all__ = ["DerivedObject", "ImportedFinding", "ImportedMeasurement", "MaskCrop"]
