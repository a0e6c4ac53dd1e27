"""Import files into the library: scan → group → index, with a report.

``import_paths`` is what the CLI (``lucida import``), the GUI import button
and drag-and-drop all call. It is idempotent: importing the same tree again
adds nothing. Source files are only read, never modified, and nothing is
written next to them (the library lives in its own folder).

One bad file never ends an import: the scan turns every failure of a file or
zip member into its skip reason, and here a stack that cannot be grouped or
indexed has its files reported as skipped with the error while the other
stacks are imported. Only a failing library (``StoreError``: busy, full,
damaged, read-only) or a cancel stops the import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.actor import os_user
from core.errors import LucidaError, StoreError
from core.progress import CancelToken, ProgressSink
from dicomio.group import SeriesGroup, group_series
from dicomio.scan import InstanceHeader, SkippedFile, scan_paths
from dicomio.source import DicomSource
from store import Library, NewInstance, NewStack, StoredSource

log = logging.getLogger(__name__)

#: Stacks with at most this many single-frame files get their geometry planned at import.
PLAN_AT_IMPORT_MAX_FILES = 2000


@dataclass(frozen=True)
class ImportedSeries:
    """One stack the import touched."""

    series_id: int
    series_uid: str
    stack_index: int
    object_kind: str
    description: str
    instances: int
    new_instances: int
    warnings: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """What an import did: counts, series found, and every skipped file with its reason."""

    paths: list[Path] = field(default_factory=list)
    files_seen: int = 0
    new: int = 0
    existing: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    series: list[ImportedSeries] = field(default_factory=list)
    dicomdirs: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0
    report_id: int | None = None

    @property
    def indexed(self) -> int:
        """Objects now in the library from this import (new or already there)."""
        return self.new + self.existing

    @property
    def non_image_objects(self) -> int:
        return sum(s.instances for s in self.series if s.object_kind not in ("image", "rtimage"))

    @property
    def ok(self) -> bool:
        """True when something was imported or everything was already in the library."""
        return self.indexed > 0

    def summary(self) -> str:
        parts = [f"{self.new} new, {self.existing} already in library"]
        if self.moved:
            parts.append(f"{len(self.moved)} moved")
        if self.modified:
            parts.append(f"{len(self.modified)} modified")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate copies ignored")
        parts.append(f"{len(self.skipped)} skipped")
        image_series = sum(1 for s in self.series if s.object_kind in ("image", "rtimage"))
        parts.append(f"{image_series} image stacks, {self.non_image_objects} non-image objects")
        return f"{', '.join(parts)} ({self.files_seen} files in {self.elapsed_s:.1f} s)"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the library's import_reports table)."""
        return {
            "paths": [str(p) for p in self.paths],
            "files_seen": self.files_seen,
            "new": self.new,
            "existing": self.existing,
            "moved": [list(m) for m in self.moved],
            "duplicates": [list(d) for d in self.duplicates],
            "modified": list(self.modified),
            "skipped": [{"source": str(s.source), "reason": s.reason} for s in self.skipped],
            "series": [s.__dict__ | {"warnings": list(s.warnings)} for s in self.series],
            "dicomdirs": [str(d) for d in self.dicomdirs],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def to_dicom_source(source: StoredSource | DicomSource) -> DicomSource:
    """The dicomio view of a stored location (the store may not import dicomio)."""
    if isinstance(source, DicomSource):
        return source
    return DicomSource(Path(source.path), source.member)


def series_sources(library: Library, series_id: int) -> list[DicomSource]:
    """The files of a library series as ``DicomSource`` objects for ``dicomio.load``."""
    return [to_dicom_source(s) for s in library.series_sources(series_id)]


def _new_stack(group: SeriesGroup) -> NewStack:
    first = group.first
    return NewStack(
        patient_id=first.patient_id,
        patient_name=first.patient_name,
        birth_date=first.patient_birth_date,
        study_uid=first.study_uid,
        study_date=first.study_date,
        study_time=first.study_time,
        study_description=first.study_description,
        accession_number=first.accession_number,
        series_uid=group.series_uid,
        stack_key=group.stack_key,
        object_kind=group.object_kind.value,
        modality=first.modality,
        series_number=first.series_number,
        description=first.series_description,
        body_part=first.body_part,
        frame_of_reference_uid=first.frame_of_reference_uid,
        rows=first.rows,
        columns=first.columns,
        is_localizer=group.is_localizer,
        instances=tuple(
            NewInstance(
                sop_instance_uid=inst.sop_instance_uid,
                sop_class_uid=inst.sop_class_uid,
                transfer_syntax_uid=inst.transfer_syntax_uid,
                path=Path(inst.source.path).absolute(),
                member=inst.source.member,
                file_size=inst.file_size,
                mtime=inst.mtime,
                instance_number=inst.instance_number,
                number_of_frames=inst.number_of_frames,
                position=inst.image_position,
            )
            for inst in group.instances
        ),
    )


def plan_summary(sources: Sequence[DicomSource]) -> tuple[dict[str, Any] | None, list[str]]:
    """Header-only geometry summary and warnings of a stack (None when it cannot be planned)."""
    try:
        from dicomio.load import plan_volume
    except ImportError:  # the loader is optional at import time
        return None, []
    try:
        from dicomio.projection import is_projection

        if is_projection(sources):
            # A radiograph, ultrasound or capture is shown as a 2-D image with its own
            # display rules (dicomio.projection); the volume loader's nominal-geometry
            # warnings (invented 1 mm pixels, colour as luminance) do not apply to it.
            return None, []
        plan = plan_volume(sources)
    except LucidaError as exc:
        return None, [f"cannot be loaded as a volume: {exc}"]
    except Exception as exc:  # the cached geometry is optional: an import never fails on it
        log.warning("geometry planning failed (%s: %s)", type(exc).__name__, exc)
        return None, [f"geometry could not be read: {type(exc).__name__}: {exc}"]
    from core.geometry import orientation_code, spacing_from_affine

    affine = plan.affine
    geometry = {
        "shape": [int(n) for n in plan.shape],
        "spacing_mm": [round(float(s), 6) for s in spacing_from_affine(affine)],
        "orientation": orientation_code(affine),
        "origin_lps": [round(float(v), 4) for v in affine[:3, 3]],
        "affine": [[round(float(v), 6) for v in row] for row in affine],
    }
    return geometry, [str(w) for w in plan.warnings]


def plan_series_geometry(library: Library, series_id: int) -> tuple[str, ...] | None:
    """Cache a series' geometry summary and warnings from all its headers (which it reads);
    the warnings, or None when the series is too large to plan at import."""
    if library.get_series(series_id).num_instances > PLAN_AT_IMPORT_MAX_FILES:
        return None
    geometry, plan_warnings = plan_summary(series_sources(library, series_id))
    library.set_series_geometry(series_id, geometry, plan_warnings)
    return tuple(plan_warnings)


class ArrivalIndexer:
    """Indexes instances arriving from the network in the batches ``net.filing.Filer``
    hands it: ``index`` per batch, ``finish`` when the Filer is flushed (a transfer ended,
    a push went quiet), both on the Filer's indexing thread.

    A series' geometry is planned once, at ``finish``: planning reads every header of the
    series, so planning at each batch (as ``import_paths`` does) would read a series of
    n instances about n/64 times, and the indexing would fall ever further behind a large
    series as it arrives.
    """

    def __init__(self) -> None:
        self._unplanned: set[int] = set()

    def index(self, library: Library, paths: Sequence[Path]) -> ImportReport:
        report = import_paths(library, paths, plan_geometry=False)
        self._unplanned.update(s.series_id for s in report.series
                               if s.new_instances and s.object_kind in ("image", "rtimage"))
        return report

    def finish(self, library: Library) -> None:
        unplanned, self._unplanned = self._unplanned, set()
        for series_id in sorted(unplanned):
            try:
                plan_series_geometry(library, series_id)
            except LucidaError as exc:  # the cached summary is optional
                log.warning("geometry of a received series not planned: %s", exc)


def _failure(what: str, exc: BaseException) -> str:
    return f"not indexed: {what} failed ({type(exc).__name__}: {exc})"[:300]


def _group(instances: list[InstanceHeader], report: ImportReport) -> list[SeriesGroup]:
    """Stacks of the scanned instances; when grouping them all at once fails, each
    series is grouped on its own and only the series that fails is skipped."""
    try:
        return group_series(instances)
    except Exception as exc:  # a header value grouping did not expect: find its series
        log.warning("grouping failed (%s); grouping series one by one", type(exc).__name__)
    by_series: dict[str, list[InstanceHeader]] = {}
    for inst in instances:
        by_series.setdefault(inst.series_uid, []).append(inst)
    groups: list[SeriesGroup] = []
    for members in by_series.values():
        try:
            groups.extend(group_series(members))
        except Exception as exc:
            reason = _failure("grouping its series", exc)
            report.skipped.extend(SkippedFile(inst.source, reason) for inst in members)
    return groups


def _import_group(library: Library, group: SeriesGroup, report: ImportReport, *,
                  plan_geometry: bool) -> ImportedSeries | None:
    """Index one stack (one transaction) and cache its geometry; None when the stack
    could not be indexed, its files then being in ``report.skipped`` with the reason."""
    try:
        outcome = library.index_stack(_new_stack(group))
        row = library.get_series(outcome.series_id)
    except StoreError:
        raise  # the library itself failed: every later stack would too
    except Exception as exc:  # a value this stack's headers carry: skip this stack only
        log.warning("import: a stack of %d files not indexed (%s)", len(group.instances),
                    type(exc).__name__)
        reason = _failure("indexing its stack", exc)
        report.skipped.extend(SkippedFile(inst.source, reason) for inst in group.instances)
        return None
    report.new += outcome.new
    report.existing += outcome.existing
    report.moved.extend(outcome.moved)
    report.duplicates.extend(outcome.duplicates)
    report.modified.extend(outcome.modified)
    warnings = tuple(row.warnings)
    needs_plan = (outcome.new or outcome.moved or row.geometry is None)
    if plan_geometry and needs_plan and group.object_kind.is_image:
        planned = plan_series_geometry(library, outcome.series_id)
        warnings = planned if planned is not None else warnings
    return ImportedSeries(
        series_id=outcome.series_id,
        series_uid=group.series_uid,
        stack_index=row.stack_index,
        object_kind=group.object_kind.value,
        description=group.description,
        instances=row.num_instances,
        new_instances=outcome.new,
        warnings=warnings,
    )


def audit_payload(report: ImportReport) -> dict[str, Any]:
    """The import's audit summary: counts and UIDs only. No paths (a folder is often
    named after the patient) and no names."""
    added = sorted({s.series_uid for s in report.series if s.new_instances})
    return {
        "report_id": report.report_id,
        "files_seen": report.files_seen,
        "new": report.new,
        "existing": report.existing,
        "skipped": len(report.skipped),
        "moved": len(report.moved),
        "modified": len(report.modified),
        "duplicates": len(report.duplicates),
        "stacks": len(report.series),
        "series_added": len(added),
        "series_uids_added": added,
    }


def import_paths(
    library: Library,
    paths: Sequence[Path | str],
    progress: ProgressSink | None = None,
    cancel: CancelToken | None = None,
    *,
    plan_geometry: bool = True,
    actor: str | None = None,
) -> ImportReport:
    """Scan ``paths`` and index every DICOM object found into ``library``.

    Progress: 0–0.7 scanning, 0.7–1.0 indexing. Each stack is indexed in its
    own transaction, so a cancel or crash keeps what was done. The report is
    also stored in the library, and the import is one "import" audit event
    (``actor``: the OS user by default) committed together with the report.
    """
    started = time.perf_counter()
    path_list = [Path(p) for p in paths]
    report = ImportReport(paths=path_list)

    def scan_progress(fraction: float, message: str = "") -> None:
        if progress is not None:
            progress(0.7 * fraction, message)

    result = scan_paths(path_list, progress=scan_progress, cancel=cancel)
    report.files_seen = result.files_seen
    report.skipped = list(result.skipped)
    report.dicomdirs = list(result.dicomdirs)
    first_seen: dict[str, DicomSource] = {}
    for inst in result.instances:
        kept = first_seen.setdefault(inst.sop_instance_uid, inst.source)
        if kept is not inst.source:  # the same object in several files: grouped once
            report.duplicates.append((str(kept), str(inst.source)))
    groups = _group(result.instances, report)
    for n, group in enumerate(groups):
        if cancel is not None and cancel.cancelled and report.series:
            # What was indexed before the cancel stays in the library: audit it.
            library.audit("import", audit_payload(report) | {"cancelled": True},
                          actor=actor or os_user())
        if cancel is not None:
            cancel.raise_if_cancelled()
        imported = _import_group(library, group, report, plan_geometry=plan_geometry)
        if imported is not None:
            report.series.append(imported)
        if progress is not None:
            progress(0.7 + 0.3 * (n + 1) / len(groups), f"indexed {n + 1} of {len(groups)} stacks")
    report.elapsed_s = time.perf_counter() - started
    with library.transaction():
        report.report_id = library.save_import_report(report.summary(), report.as_dict())
        library.audit("import", audit_payload(report), actor=actor or os_user())
    log.info("import: %s", report.summary())
    if progress is not None:
        progress(1.0, "import finished")
    return report
