"""Write the SEG, SR and KO of a sign-off atomically into one folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom

from core.atomic import atomic_path
from dicomio.export.grid import source_grid
from dicomio.export.ko import build_ko
from dicomio.export.model import (
    KEPT_DECISIONS,
    AlgorithmInfo,
    ExportContext,
    ExportFinding,
    ExportRefused,
    ExportResult,
)
from dicomio.export.seg import build_seg
from dicomio.export.sr import build_sr
from dicomio.source import DicomSource


def _numbered(findings: Sequence[ExportFinding]) -> list[ExportFinding]:
    """Kept findings only (anything else is refused), numbered 1..n in the given order."""
    if not findings:
        raise ExportRefused("no kept findings: nothing to export (accept, edit or add one)")
    for f in findings:
        if f.decision not in KEPT_DECISIONS:
            # Rejected and pending findings are never exported as positives.
            raise ExportRefused(f"finding {f.tracking_id} is {f.decision!r}, not kept; "
                                "only accepted, edited and reader-added findings are exported")
    return [dataclasses.replace(f, number=n) for n, f in enumerate(findings, start=1)]


def write_dataset(ds: pydicom.Dataset, target: Path) -> None:
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def export_objects(sources: Sequence[DicomSource], shape: tuple[int, int, int],
                   affine: npt.NDArray[np.float64], findings: Sequence[ExportFinding],
                   algorithm: AlgorithmInfo, context: ExportContext,
                   out_dir: Path) -> ExportResult:
    """Build SEG, SR and KO of ``findings`` on the series ``sources`` (loaded as a
    volume of ``shape`` / ``affine``) and write them into ``out_dir``.

    Raises :class:`ExportRefused` (nothing written) when the objects cannot be faithful:
    no kept finding, a resampled volume, a mask on a slice without a source image.
    """
    kept = _numbered(findings)
    grid = source_grid(sources, shape, affine)
    seg = build_seg(kept, algorithm, context, grid)
    sr = build_sr(kept, algorithm, context, seg)
    ko, slices = build_ko(kept, algorithm, context, grid)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = context.file_stem
    paths = (out_dir / f"{stem}-seg.dcm", out_dir / f"{stem}-sr.dcm", out_dir / f"{stem}-ko.dcm")
    for ds, path in zip((seg, sr, ko), paths, strict=True):
        write_dataset(ds, path)
    key_images = {n: str(grid.dataset_of(k).SOPInstanceUID) for n, k in slices.items()}
    return ExportResult(seg=paths[0], sr=paths[1], ko=paths[2], key_images=key_images,
                        key_slices=slices, seg_uid=str(seg.SOPInstanceUID),
                        sr_uid=str(sr.SOPInstanceUID), ko_uid=str(ko.SOPInstanceUID))
