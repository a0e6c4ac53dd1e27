"""Sign-off export: a reviewed model run -> DICOM SEG + SR + KO + HTML report.

Signs the review off first when needed (refused while findings are pending), writes
the four files atomically into the folder the user picks, then appends the audit
"export" event listing every file with its SHA-256. The audit log's head hash at the
moment of export is written into the SR and the report as the chain's external anchor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LucidaError
from dicomio.export import AlgorithmInfo, ExportContext, ExportFinding, export_objects
from store import Library

REPORT_SUFFIX = "-report.html"


class SignoffError(LucidaError):
    """The export cannot start (pending findings, wrong series, audit log broken)."""


@dataclass(frozen=True)
class SignoffExport:
    seg: Path
    sr: Path
    ko: Path
    report: Path
    files: dict[str, str]  # file name -> sha256
    audit_row: int  # the "export" event
    audit_head_hash: str  # the anchor written into the SR and the report
    kept: int
    rejected: int

    @property
    def paths(self) -> list[Path]:
        return [self.seg, self.sr, self.ko, self.report]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def algorithm_info(library: Library, run_id: int) -> AlgorithmInfo:
    """The model's identity as the run recorded it (pack id, name, version, hashes)."""
    run = library.get_model_run(run_id)
    model = run.provenance.get("model")
    model = model if isinstance(model, dict) else {}
    return AlgorithmInfo(name=str(model.get("name") or run.model_id),
                         version=str(model.get("version") or run.model_version or "0"),
                         pack_id=str(model.get("id") or run.model_id),
                         sha256=_file_hashes(model),
                         provider=str(run.provenance.get("provider") or ""))


def _file_hashes(model: dict[str, Any]) -> str:
    """One SHA-256 naming the pack's files: of the sorted ``name=hash`` lines."""
    files = model.get("files")
    if not isinstance(files, dict) or not files:
        return str(model.get("sha256") or "")
    if len(files) == 1:
        return str(next(iter(files.values())))
    text = "\n".join(f"{k}={v}" for k, v in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _model_card(library: Library, pack_id: str) -> str:
    from app.report import card_summary
    from inference.registry import Registry

    try:
        pack = Registry.for_library(library.folder).get(pack_id)
        return card_summary(pack.model_card())
    except (LucidaError, OSError, ValueError) as exc:
        return f"(model card unavailable: {exc})"


def _signed_off_at(library: Library, run_id: int) -> str:
    rows = [r for r in library.audit_rows(run_id=run_id) if r.event == "sign-off"
            and isinstance(r.payload, dict) and r.payload.get("action") == "sign-off"]
    return rows[-1].created if rows else datetime.now(UTC).isoformat(timespec="seconds")


def export_signoff(library: Library, series_id: int, run_id: int, out_dir: Path, *,
                   reviewer: str | None = None, volume: Any = None) -> SignoffExport:
    """Sign off (if not yet) and export SEG, SR, KO and the HTML report into ``out_dir``.

    ``volume``: the series as already loaded (the open series in the window); the key
    images of the report are drawn from it. Without it the series is read once here.
    """
    from app.importer import series_sources
    from review.session import ReviewSession

    series = library.get_series(int(series_id))
    session = ReviewSession.open(library, int(run_id), reviewer=reviewer)
    if session.series_uid != series.series_uid:
        raise SignoffError(f"model run {run_id} belongs to series {session.series_uid}, "
                           f"not {series.series_uid}: pick that run's series")
    if not session.signed_off:
        pending = session.pending()
        if pending:
            raise SignoffError(
                f"cannot export: {len(pending)} finding(s) still pending "
                f"({', '.join(f.key for f in pending[:10])}); accept or reject each first")
        session.sign_off()
    verdict = library.verify_audit()
    if not verdict.ok:
        raise SignoffError(f"the audit log fails verification ({verdict.problem}); "
                           "run `lucida audit verify` — nothing was exported")
    kept = session.kept()
    rejected = sum(1 for f in session.findings if f.status.value == "rejected")
    algorithm = algorithm_info(library, run_id)
    context = ExportContext(reviewer=session.reviewer,
                            signed_off_at=_signed_off_at(library, run_id),
                            audit_head_hash=verdict.head_hash,
                            software_version=_version(), file_stem=f"lucida-run{run_id}")
    findings = [_export_finding(f, session.reviewer) for f in kept]
    sources = series_sources(library, series.id)
    out_dir = Path(out_dir)
    result = export_objects(sources, session.shape, session.affine, findings, algorithm,
                            context, out_dir)
    report = out_dir / f"{context.file_stem}{REPORT_SUFFIX}"
    files = {p.name: _sha256(p) for p in result.paths}
    if volume is None or tuple(volume.shape) != tuple(session.shape) or not np.allclose(
            volume.affine, session.affine, atol=1e-3):
        from dicomio.load import read_volume

        volume = read_volume(sources)
    _write_report(report, library, series, volume, findings, result, algorithm, context,
                  files, rejected)
    files[report.name] = _sha256(report)
    row = library.audit("export", {"out_dir": str(out_dir.resolve()), "files": files,
                                   "kept": [f.key for f in kept], "rejected": rejected,
                                   "seg_uid": result.seg_uid, "sr_uid": result.sr_uid,
                                   "ko_uid": result.ko_uid,
                                   "audit_head_hash": verdict.head_hash},
                        actor=session.reviewer, series_uid=series.series_uid, run_id=int(run_id))
    return SignoffExport(seg=result.seg, sr=result.sr, ko=result.ko, report=report,
                         files=files, audit_row=row, audit_head_hash=verdict.head_hash,
                         kept=len(kept), rejected=rejected)


def _version() -> str:
    from app import __version__

    return f"Lucida {__version__}"


def _export_finding(f: Any, default_reviewer: str) -> ExportFinding:
    m = f.measures
    return ExportFinding(
        number=0, tracking_id=f.key, tracking_uid=f.tracking_uid, label_name=f.label_name,
        origin="model" if f.origin == "model" else "reader", edited=bool(f.edited),
        decision=f.status.value, reviewer=f.reviewer or default_reviewer,
        decided_at=f.decided_at, mask=f.mask.array, offset=tuple(f.mask.offset),
        volume_mm3=float(m.volume_mm3), longest_diameter_mm=float(m.longest_diameter_mm),
        centroid_lps=(float(m.centroid_lps[0]), float(m.centroid_lps[1]),
                      float(m.centroid_lps[2])),
        score=None if f.score is None else float(f.score),
        reason=f.describe_reason(), color_rgb=tuple(f.color_rgb))


def _write_report(path: Path, library: Library, series: Any, volume: Any,
                  findings: list[ExportFinding], result: Any, algorithm: AlgorithmInfo,
                  context: ExportContext, files: dict[str, str], rejected: int) -> None:
    from app.report import ReportData, ReportFinding, key_image_png, write_report
    from app.series_session import axial_slice_number

    patient = _patient(library, series)
    rows = []
    for n, f in enumerate(findings, start=1):
        k = result.key_slices[n]
        full = _mask_slice(f, k, volume.array.shape)
        number, count = axial_slice_number(volume.affine, volume.shape, f.centroid_lps)
        rows.append(ReportFinding(
            tracking_id=f.tracking_id, label_name=f.label_name, decision=f.decision,
            algorithm_type=f.algorithm_type, slice_k=k, centroid_lps=f.centroid_lps,
            longest_diameter_mm=f.longest_diameter_mm, volume_mm3=f.volume_mm3,
            score=f.score, reviewer=f.reviewer, decided_at=f.decided_at, reason=f.reason,
            key_image_png=key_image_png(volume.array[k], full, f.color_rgb),
            slice_label=f"{number}/{count}"))
    data = ReportData(
        patient=patient,
        study={"Study date": series.study_date, "Study UID": series.study_uid,
               "Series": f"{series.series_number or ''} {series.series_description}".strip(),
               "Series UID": series.series_uid, "Modality": series.modality},
        model={"Name": algorithm.name, "Version": algorithm.version,
               "Pack": algorithm.pack_id, "SHA-256": algorithm.sha256,
               "Provider": algorithm.provider},
        model_card=_model_card(library, algorithm.pack_id), findings=rows,
        reviewer=context.reviewer, signed_off_at=context.signed_off_at,
        audit_head_hash=context.audit_head_hash, files=files, rejected=rejected)
    write_report(path, data)


def _mask_slice(f: ExportFinding, k: int, shape: tuple[int, ...]) -> Any:
    out = np.zeros(shape[1:], dtype=bool)
    dk = k - f.offset[0]
    if 0 <= dk < f.mask.shape[0]:
        j0, i0 = f.offset[1], f.offset[2]
        crop = f.mask[dk]
        rows = slice(max(j0, 0), min(j0 + crop.shape[0], shape[1]))
        cols = slice(max(i0, 0), min(i0 + crop.shape[1], shape[2]))
        out[rows, cols] = crop[rows.start - j0:rows.stop - j0, cols.start - i0:cols.stop - i0]
    return out


def _patient(library: Library, series: Any) -> dict[str, str]:
    import pydicom

    from app.importer import series_sources

    first = series_sources(library, series.id)[0]
    with first.open() as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
    return {"Patient name": str(ds.get("PatientName", "")),
            "Patient ID": str(ds.get("PatientID", "")),
            "Birth date": str(ds.get("PatientBirthDate", "")),
            "Sex": str(ds.get("PatientSex", "")),
            "Accession": str(ds.get("AccessionNumber", "")),
            "Study description": str(ds.get("StudyDescription", ""))}
