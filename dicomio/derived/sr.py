"""DICOM SR TID 1500 (Measurement Report): measurement groups as findings.

The content tree is walked with pydicom so that every value reads back exactly as stored
(a NUM's NumericValue is kept as its DS text), and so that reports that highdicom's strict
template parser refuses still show. Concepts are matched by code value (DCM / SCT / SRT),
not by their meaning text.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from dicomio.derived.common import code_meaning, first, items, text
from dicomio.derived.model import DerivedObject, ImportedFinding, ImportedMeasurement

IMAGING_MEASUREMENTS = {"126010"}
MEASUREMENT_GROUP = {"125007"}
TRACKING_ID = {"112039"}
TRACKING_UID = {"112040"}
FINDING = {"121071"}
FINDING_SITE = {"363698007", "G-C0E3"}
REFERENCED_SEGMENT = {"121191", "121214"}  # Referenced Segment / Segmentation Frame
SOURCE_SERIES = {"121232"}
QUALITATIVE_CONTAINER = {"C0034375"}
_GROUP_COLOR = (255, 200, 0)


def _concept(item: Any) -> str:
    return text(first(item, "ConceptNameCodeSequence"), "CodeValue")


def _measurement(item: Any) -> ImportedMeasurement | None:
    measured = first(item, "MeasuredValueSequence")
    if measured is None:  # a NUM without a value (TID 1500 allows it): nothing to show
        return None
    raw = measured.get("NumericValue")
    # The DS text as written (pydicom keeps the original string of a DSfloat).
    value = getattr(raw, "original_string", None) or str(raw)
    unit = text(first(measured, "MeasurementUnitsCodeSequence"), "CodeValue")
    qualifiers = tuple(
        f"{code_meaning(mod)}: {code_meaning(mod, 'ConceptCodeSequence')}"
        for mod in items(item, "ContentSequence")
        if text(mod, "ValueType") == "CODE" and text(mod, "RelationshipType") == "HAS CONCEPT MOD")
    return ImportedMeasurement(code_meaning(item), str(value).strip(), unit, qualifiers)


def _group(item: Any, number: int, sop_uid: str) -> tuple[ImportedFinding, str]:
    """One measurement group as a finding, and the source series UID it names (or "")."""
    fields: dict[str, Any] = {"tracking_id": "", "tracking_uid": "", "finding_type": "",
                              "finding_site": ""}
    measurements: list[ImportedMeasurement] = []
    qualitative: list[tuple[str, str]] = []
    segment: tuple[str, int] | None = None
    source_series = ""
    for child in items(item, "ContentSequence"):
        concept, vtype = _concept(child), text(child, "ValueType")
        if concept in TRACKING_ID:
            fields["tracking_id"] = text(child, "TextValue")
        elif concept in TRACKING_UID:
            fields["tracking_uid"] = text(child, "UID")
        elif concept in FINDING and vtype == "CODE":
            fields["finding_type"] = code_meaning(child, "ConceptCodeSequence")
        elif concept in FINDING_SITE and vtype == "CODE":
            fields["finding_site"] = code_meaning(child, "ConceptCodeSequence")
        elif concept in SOURCE_SERIES:
            source_series = text(child, "UID")
        elif concept in REFERENCED_SEGMENT and vtype == "IMAGE":
            ref = first(child, "ReferencedSOPSequence")
            numbers: Any = getattr(ref, "ReferencedSegmentNumber", None)
            try:
                if not isinstance(numbers, int | str):
                    numbers = next(iter(numbers))  # a multi-valued US: the first segment
                seg_number = int(numbers)
                segment = (text(ref, "ReferencedSOPInstanceUID"), seg_number)
            except (TypeError, ValueError, StopIteration):
                pass
        elif vtype == "NUM":
            m = _measurement(child)
            if m is not None:
                measurements.append(m)
        elif vtype == "CODE" and text(child, "RelationshipType") == "CONTAINS":
            qualitative.append((code_meaning(child),
                                code_meaning(child, "ConceptCodeSequence")))
    name = fields["tracking_id"] or fields["finding_type"] or f"Measurement group {number}"
    return ImportedFinding(
        number=number, label_name=name, color_rgb=_GROUP_COLOR, source_kind="SR",
        source_sop_instance_uid=sop_uid, measurements=tuple(measurements),
        qualitative=tuple(qualitative), referenced_segment=segment, **fields), source_series


def read_sr(ds: Dataset) -> DerivedObject:
    """A TID 1500 report's measurement groups (no masks: a referenced SEG segment is named
    in ``referenced_segment`` for the caller to link). Never raises for bad input."""
    obj = DerivedObject(
        kind="SR", sop_instance_uid=text(ds, "SOPInstanceUID"),
        series_uid=text(ds, "SeriesInstanceUID"),
        description=code_meaning(ds) or text(ds, "SeriesDescription") or "Structured report",
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"))
    try:
        _fill(obj, ds)
    except Exception as exc:  # hostile trees: a sentence, never an exception
        obj.findings = []
        obj.problem = f"This report cannot be read: {type(exc).__name__}: {exc}."
    return obj


def _fill(obj: DerivedObject, ds: Dataset) -> None:
    template = text(first(ds, "ContentTemplateSequence"), "TemplateIdentifier")
    if text(ds, "ValueType") != "CONTAINER" or not items(ds, "ContentSequence"):
        obj.problem = "This report cannot be shown: it has no content tree."
        return
    series: list[str] = []
    number = 0
    for container in items(ds, "ContentSequence"):
        if _concept(container) not in IMAGING_MEASUREMENTS:
            continue
        for group in items(container, "ContentSequence"):
            if _concept(group) not in MEASUREMENT_GROUP:
                continue
            number += 1
            finding, source = _group(group, number, obj.sop_instance_uid)
            obj.findings.append(finding)
            if source and source not in series:
                series.append(source)
    for study in items(ds, "CurrentRequestedProcedureEvidenceSequence"):
        for item in items(study, "ReferencedSeriesSequence"):
            uid = text(item, "SeriesInstanceUID")
            if uid and uid not in series:
                series.append(uid)
    obj.referenced_series_uids = tuple(series)
    if not obj.findings:
        tid = f"TID {template}" if template else "no template named"
        obj.problem = ("This report cannot be shown: it holds no TID 1500 measurement groups "
                       f"({tid}).")


def referenced_instances(ds: Dataset) -> list[str]:
    """SOP instance UIDs of the evidence sequence (what the report was made from)."""
    out: list[str] = []
    for study in items(ds, "CurrentRequestedProcedureEvidenceSequence"):
        for series in items(study, "ReferencedSeriesSequence"):
            for sop in items(series, "ReferencedSOPSequence"):
                uid = text(sop, "ReferencedSOPInstanceUID")
                if uid:
                    out.append(uid)
    return out
