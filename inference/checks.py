"""Input checks: does this volume suit this model? Mismatches are warnings to confirm."""

from __future__ import annotations

import numpy as np

from core.volume import Volume
from inference.manifest import Manifest, demo_only_problem


def check_input(volume: Volume, manifest: Manifest) -> list[str]:
    """Plain-language warnings; an empty list means the volume matches the manifest.

    The GUI asks the user to confirm before running with warnings; the command
    line refuses unless ``--force`` is given.
    """
    warnings: list[str] = []
    # A demo-only pack (rules, not a trained model) is for Lucida's synthetic demo study.
    problem = demo_only_problem(manifest, volume.series_uid)
    if problem is not None:
        warnings.append(problem)
    modality = (volume.modality or str(volume.metadata.get("modality", ""))).upper()
    if not modality:
        warnings.append(
            f"the series has no modality; {manifest.name} expects {'/'.join(manifest.modality)}"
        )
    elif modality not in manifest.modality:
        warnings.append(
            f"the series is {modality} but {manifest.name} was made for "
            f"{'/'.join(manifest.modality)} images"
        )
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
    if min(volume.shape) < manifest.min_slices:
        warnings.append(
            f"the volume has only {min(volume.shape)} voxels along its thinnest axis; "
            f"{manifest.name} needs at least {manifest.min_slices}"
        )
    for w in volume.warnings:
        warnings.append(f"series geometry: {w.message}")
    return warnings


def _fmt(spacing: np.typing.NDArray[np.float64]) -> str:
    return " × ".join(f"{s:.2f}" for s in spacing[::-1])
