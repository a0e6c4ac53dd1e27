"""Input checks: does this volume suit this model?

Two kinds of answer (:func:`availability`):

* **reasons** the pack cannot run on the series at all: another modality, a 2-D image
  (a single slice, fewer slices than the pack needs, a projection image) for a 3-D
  model, a demonstration pack on a patient's series. The GUI greys such a pack out;
  confirming does not help, because the result would be meaningless.
* **warnings** the user confirms (GUI) or overrides with ``--force`` (command line):
  body part, voxel spacing, series geometry, and an MR series whose description,
  protocol and sequence name mention none of the pack's sequence hints (free text,
  so never a hard refusal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from core.volume import Volume
from inference.manifest import Manifest, demo_only_problem

#: DICOM modalities of projection (not cross-sectional) images: a stack of their frames
#: is a cine loop or a set of views, never a 3-D volume.
PROJECTION_MODALITIES = frozenset(
    {"CR", "DX", "MG", "XA", "RF", "IO", "PX", "OP", "XC", "ES", "DG", "US", "SC"})

#: The metadata fields searched for a pack's sequence hints, with how they are named.
SEQUENCE_FIELDS = (("series_description", "description"), ("protocol_name", "protocol"),
                   ("sequence_name", "sequence name"))


@dataclass(frozen=True)
class Availability:
    """Whether a pack may run on a volume: ``reasons`` why not (hard), ``warnings`` to
    confirm before a run (soft)."""

    available: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def availability(volume: Volume, manifest: Manifest) -> Availability:
    """Pure: what the pack needs against what the volume is; nothing is read or run."""
    reasons = _reasons(volume, manifest)
    warnings = _warnings(volume, manifest)
    return Availability(available=not reasons, reasons=reasons, warnings=warnings)


def check_input(volume: Volume, manifest: Manifest) -> list[str]:
    """Every mismatch, hard reasons first; an empty list means the volume matches.

    Kept for callers that show or record all mismatches alike (the pipeline's notices);
    decide with :func:`availability`.
    """
    result = availability(volume, manifest)
    return result.reasons + result.warnings


def volume_modality(volume: Volume) -> str:
    return (volume.modality or str(volume.metadata.get("modality", "") or "")).strip().upper()


def _reasons(volume: Volume, manifest: Manifest) -> list[str]:
    reasons: list[str] = []
    # A demo-only pack (rules, not a trained model) is for Lucida's synthetic demo study.
    problem = demo_only_problem(manifest, volume.series_uid)
    if problem is not None:
        reasons.append(problem)
    expects = "/".join(manifest.modality)
    modality = volume_modality(volume)
    # A missing Modality is not evidence of another one: that is a warning (below).
    if modality and modality not in manifest.modality:
        reasons.append(f"{manifest.name} expects {expects}; this series is {modality}")
    thinnest = min(volume.shape)
    projection = modality in PROJECTION_MODALITIES
    if projection and modality not in manifest.modality:
        pass  # already refused for its modality; "2-D" would only repeat it
    elif thinnest == 1 or thinnest < manifest.min_slices:
        # Every Lucida pack is a 3-D network: one slice is never enough.
        what = "a single 2-D slice" if thinnest == 1 else f"only {thinnest} slices thick"
        reasons.append(f"{manifest.name} needs a 3-D volume of at least "
                       f"{max(2, manifest.min_slices)} slices; this series is {what}")
    elif projection and manifest.min_slices > 1:
        reasons.append(f"{manifest.name} needs a 3-D volume; this series is a {modality} "
                       "projection image, not a stack of slices")
    return reasons


def _warnings(volume: Volume, manifest: Manifest) -> list[str]:
    warnings: list[str] = []
    if not volume_modality(volume):
        warnings.append(f"the series has no modality; {manifest.name} expects "
                        f"{'/'.join(manifest.modality)}")
    body = str(volume.metadata.get("body_part", "") or volume.metadata.get("BodyPartExamined", ""))
    if manifest.body_part and body:
        if body.strip().upper() not in manifest.body_part:
            warnings.append(
                f"the series' body part is {body.upper()} but {manifest.name} expects "
                f"{'/'.join(manifest.body_part)}"
            )
    spacing = volume.spacing_mm
    if manifest.min_spacing_mm is not None and float(spacing.min()) < manifest.min_spacing_mm:
        warnings.append(
            f"voxel spacing {_fmt(spacing)} mm is finer than the {manifest.min_spacing_mm} mm "
            "the model was validated for"
        )
    if manifest.max_spacing_mm is not None and float(spacing.max()) > manifest.max_spacing_mm:
        warnings.append(
            f"voxel spacing {_fmt(spacing)} mm is coarser than the {manifest.max_spacing_mm} mm "
            "the model was validated for"
        )
    hint = _sequence_warning(volume, manifest)
    if hint is not None:
        warnings.append(hint)
    for w in volume.warnings:
        warnings.append(f"series geometry: {w.message}")
    return warnings


def _sequence_warning(volume: Volume, manifest: Manifest) -> str | None:
    if not manifest.sequence_hints or volume_modality(volume) != "MR":
        return None
    named = [(label, str(volume.metadata.get(key, "") or "").strip())
             for key, label in SEQUENCE_FIELDS]
    named = [(label, text) for label, text in named if text]
    hints = ", ".join(manifest.sequence_hints)
    if not named:
        return (f"the series has no description, protocol or sequence name to tell its MR "
                f"sequence; {manifest.name} expects one of: {hints}")
    if any(mentions(text, manifest.sequence_hints) for _label, text in named):
        return None
    said = "; ".join(f"{label} {text!r}" for label, text in named)
    return (f"the series ({said}) names none of the sequences {manifest.name} was made for "
            f"({hints}); check it is that kind of image")


_PARTS = re.compile(r"[^0-9A-Za-z]+")
_WORDS = re.compile(r"[^0-9A-Za-z-]+")


def mentions(text: str, hints: list[str]) -> bool:
    """Whether free text names one of ``hints``: a hint matches the start of a word
    (``T1`` in ``t1_MPRAGEcr``, ``T1w``, ``MPRAGE`` in ``MPRAGEcr``), case-insensitively,
    with hyphens optional (``MP-RAGE`` = ``MPRAGE``; ``SPGR`` in ``IR-SPGR``). A hint ending
    in a digit is not matched by a longer number (``T1`` is not ``T10``)."""
    words = {w for w in _PARTS.split(text.upper()) if w}
    words |= {w.replace("-", "") for w in _WORDS.split(text.upper()) if w.strip("-")}
    for hint in hints:
        h = hint.upper().replace("-", "").strip()
        if not h:
            continue
        for word in words:
            if word.startswith(h):
                rest = word[len(h):]
                if not (h[-1].isdigit() and rest[:1].isdigit()):
                    return True
    return False


def _fmt(spacing: np.typing.NDArray[np.float64]) -> str:
    return " × ".join(f"{s:.2f}" for s in spacing[::-1])
