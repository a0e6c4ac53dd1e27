"""Plain inputs and outputs of the sign-off export (no review or store types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import LucidaError
from dicomio.export.codes import Coded, finding_category, finding_type

#: Review decisions that keep a finding; anything else is never exported as a positive.
KEPT_DECISIONS = ("accepted", "edited", "added-by-reader")


class ExportRefused(LucidaError):
    """The export cannot be written faithfully (one line says why and what to do)."""


@dataclass(frozen=True)
class AlgorithmInfo:
    """The model pack that produced the findings."""

    name: str
    version: str
    pack_id: str = ""
    sha256: str = ""
    provider: str = ""
    #: (value, scheme, meaning) of CID 7162; Artificial Intelligence by default.
    family: Coded = ("123110", "DCM", "Artificial Intelligence")
    manufacturer: str = "Lucida"


@dataclass(frozen=True)
class ExportFinding:
    """One kept finding: a segment of the SEG, a measurement group of the SR.

    ``mask`` is a boolean crop of the volume grid placed at ``offset`` (k, j, i); a
    full-grid mask has offset (0, 0, 0).
    """

    number: int  # 1-based segment number, also the SR group order
    tracking_id: str  # human-readable, e.g. "m3" or "r1"
    tracking_uid: str
    label_name: str
    origin: str  # "model" or "reader"
    edited: bool
    decision: str  # one of KEPT_DECISIONS
    reviewer: str
    decided_at: str  # ISO 8601
    mask: npt.NDArray[np.bool_]
    offset: tuple[int, int, int] = (0, 0, 0)
    volume_mm3: float = 0.0
    longest_diameter_mm: float = 0.0
    centroid_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    score: float | None = None
    reason: str = ""
    color_rgb: tuple[int, int, int] = (255, 200, 0)
    category: Coded = field(default_factory=finding_category)
    property_type: Coded = field(default_factory=finding_type)

    @property
    def algorithm_type(self) -> str:
        """SEG SegmentAlgorithmType: the reader's hand shows as SEMIAUTOMATIC / MANUAL."""
        if self.origin == "reader":
            return "MANUAL"
        return "SEMIAUTOMATIC" if self.edited else "AUTOMATIC"


@dataclass(frozen=True)
class ExportContext:
    """Who signed off, when, and the audit anchor written into the objects."""

    reviewer: str
    signed_off_at: str  # ISO 8601
    audit_head_hash: str = ""
    series_number_base: int = 9000  # SEG = base+1, SR = base+2, KO = base+3
    software_version: str = ""
    file_stem: str = "lucida"


@dataclass(frozen=True)
class ExportResult:
    seg: Path
    sr: Path
    ko: Path
    key_images: dict[int, str]  # finding number -> SOPInstanceUID of its key image
    key_slices: dict[int, int]  # finding number -> volume slice k through its centroid
    seg_uid: str
    sr_uid: str
    ko_uid: str

    @property
    def paths(self) -> list[Path]:
        return [self.seg, self.sr, self.ko]
