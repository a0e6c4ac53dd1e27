"""A 2-D image without patient geometry: radiographs, ultrasound, angiography, captures.

A CT or MR slice stack becomes a :class:`core.volume.Volume` (LPS affine, MPR).
A projection image (CR, DX, MG, XA, RF), an ultrasound loop or a secondary
capture has no patient space to reslice: it is shown as it was acquired, one
frame at a time, with the display rules of its own header (PS3.3 C.11 VOI,
Presentation LUT, shutters, pixel spacing calibration). This module holds that
description as plain data; ``dicomio.projection`` fills it, ``core.voi`` turns
a frame into display values and ``viewer.projection_view`` draws it.

Conventions:

* ``frames`` is ``(n, rows, cols)`` modality values (after Rescale Slope /
  Intercept or the Modality LUT, before VOI; MONOCHROME1 NOT inverted here — ``invert`` says so),
  or ``(n, rows, cols, 3)`` ``uint8`` RGB for colour (YBR and palette colour
  already converted to RGB). Frame 0 is the first frame in the file's order.
* Pixel ``(row, col)`` is the DICOM convention: row down, column right, the
  centre of the top-left pixel at (0, 0).
* Lengths: ``pixel_spacing_mm`` is (row spacing, column spacing) in mm, the
  spacing measurements must use, or ``None`` when nothing is known (measure
  in pixels then); ``spacing_kind`` says where that spacing holds, and is shown
  beside every length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import GeometryError
from core.volume import VolumeWarning


class SpacingKind(StrEnum):
    """Where a projection image's lengths hold (the label beside a measurement)."""

    #: Pixel Spacing of an image in patient space or calibrated to it
    #: (Pixel Spacing Calibration Type GEOMETRY or FIDUCIAL, or a modality whose
    #: Pixel Spacing is defined in the patient, e.g. ultrasound regions, SC).
    CALIBRATED = "calibrated"
    #: Imager Pixel Spacing only (or Pixel Spacing equal to it): lengths at the
    #: detector plane, magnified relative to the patient.
    AT_DETECTOR = "at detector"
    #: Imager Pixel Spacing corrected by Estimated Radiographic Magnification Factor.
    MAGNIFICATION_CORRECTED = "magnification corrected"
    #: Nothing usable: lengths in pixels.
    UNCALIBRATED = "uncalibrated px"


class VoiFunction(StrEnum):
    """VOI LUT Function (0028,1056); LINEAR when absent."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class VoiWindow:
    """One Window Center / Width pair from the file (there may be several)."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR
    explanation: str = ""


@dataclass(frozen=True, eq=False)
class VoiLut:
    """One item of the VOI LUT Sequence: ``data[v - first_mapped]`` for input v.

    Inputs below ``first_mapped`` take ``data[0]``, above the table its last
    entry. Output values run over ``0 .. 2**bits - 1``.
    """

    first_mapped: int
    bits: int
    data: npt.NDArray[np.integer[Any]]
    explanation: str = ""


@dataclass(frozen=True)
class Shutter:
    """One display shutter (PS3.3 C.7.6.11): pixels outside it are not shown.

    ``kind``: ``"rectangular"`` (``params`` = left, right, upper, lower, in
    1-based column / row numbers as stored), ``"circular"`` (centre row, centre
    column, radius), ``"polygonal"`` (row, column pairs flattened). The shown
    value outside is ``presentation_value`` (0..65535 P-value, 0 black) or
    ``rgb`` when the file gives a colour.
    """

    kind: str
    params: tuple[float, ...]
    presentation_value: int = 0
    rgb: tuple[int, int, int] | None = None


@dataclass(eq=False)
class ProjectionImage:
    """Frames of one 2-D image series with everything needed to display them."""

    frames: npt.NDArray[Any]
    series_uid: str = ""
    modality: str = ""
    #: Photometric Interpretation as stored (MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, ...).
    photometric: str = "MONOCHROME2"
    #: Display inverted: MONOCHROME1, or Presentation LUT Shape INVERSE.
    invert: bool = False
    #: Stored range of modality values (min, max) for BitsStored after rescale;
    #: the "full range" window and MONOCHROME1 inversion use it.
    value_range: tuple[float, float] = (0.0, 255.0)
    voi_windows: list[VoiWindow] = field(default_factory=list)
    voi_luts: list[VoiLut] = field(default_factory=list)
    pixel_spacing_mm: tuple[float, float] | None = None
    spacing_kind: SpacingKind = SpacingKind.UNCALIBRATED
    #: Patient Orientation (0020,0020): (direction of a row left→right, direction
    #: of a column top→bottom), e.g. ("L", "F"); None when absent.
    patient_orientation: tuple[str, str] | None = None
    #: Milliseconds between frames (Frame Time, else Frame Time Vector's mean,
    #: else 1000 / Recommended Display Frame Rate, else Cine Rate); None if unknown.
    frame_time_ms: float | None = None
    shutters: list[Shutter] = field(default_factory=list)
    #: Plain, non-identifying descriptive values (study_date, series_description,
    #: body_part, laterality, view_position, units, ...), as for a Volume.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: patient_name, patient_id, patient_birth_date: hidden by the identity toggle.
    identity: dict[str, str] = field(default_factory=dict)
    warnings: list[VolumeWarning] = field(default_factory=list)
    #: SOP Instance UID of each frame's instance (len == n frames).
    frame_instance_uids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim == 3:
            if f.shape[0] < 1 or f.shape[1] < 1 or f.shape[2] < 1:
                raise GeometryError(f"a projection image needs frames, got shape {f.shape}")
        elif f.ndim == 4:
            if f.shape[-1] != 3 or f.dtype != np.uint8:
                raise GeometryError(
                    f"colour frames must be (n, rows, cols, 3) uint8, got {f.shape} {f.dtype}")
        else:
            raise GeometryError(f"frames must be (n, rows, cols[, 3]), got shape {f.shape}")
        if self.pixel_spacing_mm is not None:
            r, c = self.pixel_spacing_mm
            if not (np.isfinite(r) and np.isfinite(c) and r > 0 and c > 0):
                raise GeometryError(f"pixel spacing must be positive, got {self.pixel_spacing_mm}")
        elif self.spacing_kind is not SpacingKind.UNCALIBRATED:
            raise GeometryError(f"spacing kind {self.spacing_kind} needs a pixel spacing")

    @property
    def is_colour(self) -> bool:
        return self.frames.ndim == 4

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def rows(self) -> int:
        return int(self.frames.shape[1])

    @property
    def cols(self) -> int:
        return int(self.frames.shape[2])
