"""Finds the SEG / SR / RTSTRUCT objects in the library that belong to an open series.

Only headers are read to decide what belongs (pixel data of unrelated objects is never
read); the objects that belong are then read onto the open series' grid. Thread-safe as
long as each thread passes its own :class:`store.Library` (nothing here is shared).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from app.importer import series_sources
from core.volume import Volume
from dicomio.derived.common import read_dataset
from dicomio.derived.headers import DerivedHeader, read_header
from dicomio.derived.model import DerivedObject, ImportedFinding
from dicomio.derived.rtstruct import read_rtstruct
from dicomio.derived.seg import read_seg
from dicomio.derived.sr import read_sr
from dicomio.source import DicomSource
from store import Library
from store.records import SeriesRow

log = logging.getLogger(__name__)

DERIVED_KINDS = ("seg", "sr", "rtstruct")


@dataclass(frozen=True)
class UnresolvedReference:
    """A derived object whose referenced series is not in the library."""

    series_id: int  # the derived object's own series row
    kind: str
    sop_instance_uid: str
    missing_series_uids: tuple[str, ...]
    text: str


def _derived_headers(library: Library
                     ) -> list[tuple[SeriesRow, DicomSource, DerivedHeader | str]]:
    """Every derived object in the library with its header, or why it cannot be read."""
    out: list[tuple[SeriesRow, DicomSource, DerivedHeader | str]] = []
    for row in library.all_series():
        if row.object_kind not in DERIVED_KINDS:
            continue
        for source in series_sources(library, row.id):
            try:
                header = read_header(source)
            except Exception as exc:  # a damaged file is that object's problem only
                out.append((row, source, f"its file {source} cannot be read ({exc})"))
                continue
            if header is not None:
                out.append((row, source, header))
    return out


def _instance_slices(library: Library, series_row: SeriesRow, volume: Volume) -> dict[str, int]:
    """SOP instance UID -> slice index k on ``volume`` for the open series' images."""
    out: dict[str, int] = {}
    for inst in library.series_instances(series_row.id):
        if inst.position is None:
            continue
        k = float(volume.lps_to_index(np.asarray(inst.position))[0])
        if abs(k - round(k)) <= 0.1 and 0 <= round(k) < volume.shape[0]:
            out[inst.sop_instance_uid] = round(k)
    return out


def _belongs(header: DerivedHeader, series_row: SeriesRow, own: set[str],
             volume: Volume) -> bool:
    if series_row.series_uid in header.referenced_series_uids:
        return True
    if header.referenced_instance_uids & own:
        return True
    if header.has_references:
        return False
    # No references at all (legacy or broken objects): try it where it could belong.
    same_frame = bool(header.frame_of_reference_uid) and (
        header.frame_of_reference_uid == (volume.frame_of_reference_uid
                                          or series_row.frame_of_reference_uid))
    return same_frame or (bool(header.study_uid) and header.study_uid == series_row.study_uid)


def _read(source: DicomSource, header: DerivedHeader, volume: Volume,
          slices: dict[str, int]) -> DerivedObject:
    try:
        ds = read_dataset(source)
    except Exception as exc:
        return DerivedObject(header.kind, header.sop_instance_uid, header.series_uid,
                             header.description, header.referenced_series_uids,
                             header.frame_of_reference_uid,
                             problem=f"Its file {source} cannot be read: {exc}.")
    if header.kind == "SEG":
        return read_seg(ds, volume, slices)
    if header.kind == "RTSTRUCT":
        return read_rtstruct(ds, volume)
    return read_sr(ds)


def _link(report: DerivedObject, segs: dict[str, DerivedObject],
          other_segs: set[str]) -> None:
    """Give each SR group the mask of the SEG segment it measures, where it is shown."""
    linked: list[ImportedFinding] = []
    for f in report.findings:
        if f.referenced_segment is not None:
            uid, number = f.referenced_segment
            seg = segs.get(uid)
            match = next((s for s in seg.findings if s.number == number), None) if seg else None
            if match is not None and match.mask is not None:
                f = replace(f, mask=match.mask, centroid_lps=match.centroid_lps,
                            color_rgb=match.color_rgb)
            elif uid in other_segs:
                report.notes.append(f"group {f.number} measures segment {number} of a "
                                    "segmentation that lies on another series")
            elif seg is None:
                report.notes.append(f"group {f.number} measures segment {number} of a "
                                    "segmentation that is not in the library")
        linked.append(f)
    report.findings = linked


def derived_for_series(library: Library, series_row: SeriesRow,
                       volume: Volume) -> list[DerivedObject]:
    """Every SEG / SR / RTSTRUCT in ``library`` that belongs to ``series_row``, read onto
    ``volume`` (that series loaded). Objects that cannot be shown carry a ``problem``."""
    own = {inst.sop_instance_uid for inst in library.series_instances(series_row.id)}
    slices = _instance_slices(library, series_row, volume)
    headers = _derived_headers(library)
    out: list[DerivedObject] = []
    segs: dict[str, DerivedObject] = {}
    all_segs: set[str] = set()
    reports: list[tuple[DicomSource, DerivedHeader]] = []
    for row, source, header in headers:
        if isinstance(header, str):
            if row.study_uid == series_row.study_uid:
                out.append(DerivedObject(
                    "SEG" if row.object_kind == "seg" else "SR" if row.object_kind == "sr"
                    else "RTSTRUCT", "", row.series_uid, row.series_description,
                    problem=f"This object cannot be shown: {header}."))
            continue
        if header.kind == "SEG":
            all_segs.add(header.sop_instance_uid)
        if header.kind == "SR":
            reports.append((source, header))
            continue
        if _belongs(header, series_row, own, volume):
            obj = _read(source, header, volume, slices)
            out.append(obj)
            if obj.kind == "SEG":
                segs[obj.sop_instance_uid] = obj
    for source, header in reports:  # after the SEGs, so reports can point at them
        if _belongs(header, series_row, own, volume) or (
                header.referenced_instance_uids & set(segs)):
            report = _read(source, header, volume, slices)
            if report.ok:
                _link(report, segs, all_segs - set(segs))
            out.append(report)
    return out


def unresolved_references(library: Library) -> list[UnresolvedReference]:
    """Derived objects that name series the library does not hold: one sentence each."""
    present = {row.series_uid for row in library.all_series()}
    out: list[UnresolvedReference] = []
    for row, _source, header in _derived_headers(library):
        if isinstance(header, str):
            continue
        missing = tuple(uid for uid in header.referenced_series_uids if uid not in present)
        if not missing:
            continue
        which = " and ".join(missing)
        verb = "which is" if len(missing) == 1 else "which are"
        text = (f"{header.kind} '{header.description}' references series {which}, {verb} not "
                "in the library")
        out.append(UnresolvedReference(row.id, header.kind, header.sop_instance_uid, missing,
                                       text))
    return out
