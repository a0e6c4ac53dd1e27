"""Pixel spacing of a 2-D image, and where lengths measured with it hold.

PS3.3 10.7.1.3 (Pixel Spacing Calibration Macro) with C.8.11.4 / C.8.11.7 (DX and
MG) and C.8.5.5 (ultrasound regions). Sources are tried in order; an invalid value
(0\\0, negative, NaN, the wrong count) is ignored with a warning naming it and the
next source is tried; with none left, lengths are in pixels. 1 mm is never invented.

1. Pixel Spacing with Pixel Spacing Calibration Type (GEOMETRY or FIDUCIAL): the
   image was calibrated to the patient → CALIBRATED.
2. Projection radiographs (CR DX MG IO XA RF PX): Imager Pixel Spacing is the
   spacing at the detector's front plane, larger than in the patient by the
   geometric magnification. Pixel Spacing equal to it, or Imager Pixel Spacing
   alone → AT_DETECTOR; with Estimated Radiographic Magnification Factor, the
   spacing divided by it → MAGNIFICATION_CORRECTED (the standard's estimate for
   the plane of interest). Pixel Spacing that differs from Imager Pixel Spacing
   without a calibration type "has been corrected in some manner" (10.7.1.3) →
   CALIBRATED. Pixel Spacing alone on a radiograph (old CR writers put the
   detector's spacing there) → AT_DETECTOR, the cautious reading, with a warning.
3. Ultrasound: Sequence of Ultrasound Regions' Physical Delta X / Y in cm (units
   code 3) when all 2-D tissue regions agree; they are measured in the patient by
   the scanner → CALIBRATED.
4. Any other modality (US without regions, SC, OT, endoscopy, ...): Pixel Spacing
   is by definition the physical distance in the patient (C.7.6.2.1.1), not a
   detector quantity → CALIBRATED.
"""

from __future__ import annotations

import math
from typing import Any

from core.projection import SpacingKind
from core.volume import VolumeWarning, WarningCode
from dicomio.plausibility import ImplausibleValue, check_pixel_spacing, numbers, optional_value

__all__ = ["RADIOGRAPHIC_MODALITIES", "pixel_spacing"]

#: Modalities whose images are X-ray projections with a detector plane.
RADIOGRAPHIC_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "XA", "RF", "PX"})
_CM = 3  # Physical Units X/Y Direction: cm (PS3.3 C.8.5.5.1.15)
_TISSUE_2D = 1  # Region Spatial Format: 2D (tissue or flow)

Spacing = tuple[tuple[float, float] | None, SpacingKind]


def _warn(warnings: list[VolumeWarning], message: str) -> None:
    warnings.append(VolumeWarning(WarningCode.IMPLAUSIBLE_GEOMETRY, message))


def _checked(ds: Any, keyword: str, warnings: list[VolumeWarning]) -> tuple[float, float] | None:
    """A spacing element's (row, column) mm, or None when absent; an invalid one is
    warned about, naming it, and is None too."""
    raw = optional_value(ds, keyword)
    try:
        values = numbers(raw, keyword)
        return None if values is None else check_pixel_spacing(values, keyword)
    except ImplausibleValue as exc:
        _warn(warnings, f"{exc}: ignored")
        return None


def _magnification(ds: Any, warnings: list[VolumeWarning]) -> float | None:
    raw = optional_value(ds, "EstimatedRadiographicMagnificationFactor")
    try:
        values = numbers(raw, "EstimatedRadiographicMagnificationFactor")
    except ImplausibleValue as exc:
        _warn(warnings, f"{exc}: ignored")
        return None
    if not values:
        return None
    factor = values[0]
    # A magnification below 1 or above 10 is no projection geometry.
    if not (math.isfinite(factor) and 1.0 <= factor <= 10.0):
        _warn(warnings, f"EstimatedRadiographicMagnificationFactor {factor:g} is not between "
              "1 and 10: ignored")
        return None
    return factor


def _us_regions(ds: Any, warnings: list[VolumeWarning]) -> tuple[float, float] | None:
    regions = optional_value(ds, "SequenceOfUltrasoundRegions")
    if not regions or isinstance(regions, (str, bytes)):
        return None
    found: set[tuple[float, float]] = set()
    try:
        for item in regions:
            fmt = optional_value(item, "RegionSpatialFormat")
            ux = optional_value(item, "PhysicalUnitsXDirection")
            uy = optional_value(item, "PhysicalUnitsYDirection")
            if fmt != _TISSUE_2D or ux != _CM or uy != _CM:
                continue
            dx = float(optional_value(item, "PhysicalDeltaX"))
            dy = float(optional_value(item, "PhysicalDeltaY"))
            found.add((round(abs(dy) * 10.0, 6), round(abs(dx) * 10.0, 6)))  # cm → mm
    except (TypeError, ValueError):
        _warn(warnings, "an ultrasound region's Physical Delta X / Y is not a number: the "
              "regions are ignored")
        return None
    if len(found) > 1:
        _warn(warnings, "the ultrasound regions have different pixel sizes: lengths are in "
              "pixels")
        return None
    if not found:
        return None
    try:
        return check_pixel_spacing(found.pop(), "PhysicalDeltaX/Y of the ultrasound region")
    except ImplausibleValue as exc:
        _warn(warnings, f"{exc}: ignored")
        return None


def pixel_spacing(ds: Any, modality: str, warnings: list[VolumeWarning]) -> Spacing:
    """(row, column) spacing in mm and its kind; (None, UNCALIBRATED) when unknown."""
    pixel = _checked(ds, "PixelSpacing", warnings)
    imager = _checked(ds, "ImagerPixelSpacing", warnings)
    calibration = str(optional_value(ds, "PixelSpacingCalibrationType") or "").strip().upper()
    if pixel is not None and calibration in ("GEOMETRY", "FIDUCIAL"):
        return pixel, SpacingKind.CALIBRATED
    if modality in RADIOGRAPHIC_MODALITIES:
        if pixel is not None and imager is not None and not _same(pixel, imager):
            return pixel, SpacingKind.CALIBRATED  # corrected in an unspecified manner
        detector = imager if imager is not None else pixel
        if detector is None:
            return None, SpacingKind.UNCALIBRATED
        if imager is None:
            _warn(warnings, "PixelSpacing without ImagerPixelSpacing or a calibration type on "
                  "a radiograph: taken as the spacing at the detector")
        factor = _magnification(ds, warnings)
        if factor is not None:
            return (detector[0] / factor, detector[1] / factor), \
                SpacingKind.MAGNIFICATION_CORRECTED
        return detector, SpacingKind.AT_DETECTOR
    if modality == "US":
        regions = _us_regions(ds, warnings)
        if regions is not None:
            return regions, SpacingKind.CALIBRATED
    if pixel is not None:
        return pixel, SpacingKind.CALIBRATED
    if imager is not None:
        # Outside radiography Imager Pixel Spacing still holds at a detector.
        return imager, SpacingKind.AT_DETECTOR
    return None, SpacingKind.UNCALIBRATED


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(a, b, strict=True))
