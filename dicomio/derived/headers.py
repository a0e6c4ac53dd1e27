"""What a SEG / SR / RTSTRUCT refers to, from its header only (pixel data is never read).

Cheap enough to run for every derived object in the library when a series opens.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicomio.derived import rtstruct, sr
from dicomio.derived.common import code_meaning, items, read_dataset, text, walk_items
from dicomio.derived.common import referenced_series as seg_referenced_series
from dicomio.derived.model import SourceKind
from dicomio.source import DicomSource

_KINDS: dict[str, SourceKind] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
}


@dataclass(frozen=True)
class DerivedHeader:
    kind: SourceKind
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    description: str
    referenced_series_uids: tuple[str, ...]
    referenced_instance_uids: frozenset[str]

    @property
    def has_references(self) -> bool:
        return bool(self.referenced_series_uids or self.referenced_instance_uids)


def kind_of(ds: Dataset) -> SourceKind | None:
    sop_class = text(ds, "SOPClassUID")
    if sop_class in _KINDS:
        return _KINDS[sop_class]
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "SR"
    return None


def _instances(ds: Dataset, keyword: str) -> frozenset[str]:
    """Every ReferencedSOPInstanceUID found in ``keyword``'s sequence tree."""
    return frozenset(uid for item in walk_items(items(ds, keyword))
                     if (uid := text(item, "ReferencedSOPInstanceUID")))


def header_of(ds: Dataset) -> DerivedHeader | None:
    """References of a data set (read with or without pixel data); None if not derived."""
    kind = kind_of(ds)
    if kind is None:
        return None
    if kind == "SEG":
        series = tuple(seg_referenced_series(ds))
        instances = _instances(ds, "ReferencedSeriesSequence") | _instances(
            ds, "PerFrameFunctionalGroupsSequence")
        description = text(ds, "SeriesDescription") or "Segmentation"
        frame = text(ds, "FrameOfReferenceUID")
    elif kind == "RTSTRUCT":
        series = tuple(rtstruct.referenced_series(ds))
        instances = _instances(ds, "ReferencedFrameOfReferenceSequence")
        description = text(ds, "StructureSetLabel") or "Structure set"
        frames = {text(r, "ReferencedFrameOfReferenceUID")
                  for r in items(ds, "StructureSetROISequence")} - {""}
        frame = next(iter(frames)) if len(frames) == 1 else ""
    else:
        report = sr.read_sr(ds)  # the content tree is in the header: no pixel data in SR
        series = report.referenced_series_uids
        instances = frozenset(sr.referenced_instances(ds))
        description = code_meaning(ds) or "Structured report"
        frame = text(ds, "FrameOfReferenceUID")
    return DerivedHeader(kind, text(ds, "SOPInstanceUID"), text(ds, "SeriesInstanceUID"),
                         text(ds, "StudyInstanceUID"), frame, description, series, instances)


def read_header(source: DicomSource) -> DerivedHeader | None:
    """The header of one source file (stops before its pixel data)."""
    return header_of(read_dataset(source, headers_only=True))
