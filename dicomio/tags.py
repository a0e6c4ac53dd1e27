"""The elements of one DICOM instance as rows for a tag browser (Qt-free).

:func:`read_tag_rows` reads a header through the same bounded, hostile-input-safe
path as the loader (:mod:`dicomio.load`: structure walked by
:mod:`dicomio.fastheader` first, pydicom through :class:`dicomio.decode.BoundedReader`,
at most ``HEADER_READ_MAX`` bytes, stopping before the pixel data, which is never
read). A file that cannot be read gives one error row, never an exception.

Rows are a tree: a sequence row's children are its items, an item's children its
elements. Private elements are named from pydicom's private dictionary (private
creator + element) where it knows them. Values are shortened for display: binary
VRs show their length and first bytes, long text is cut.

**Identifying elements** (:data:`IDENTIFYING_KEYWORDS`, plus every PN-valued
element — the name of anyone) are the patient-identity attributes of the PS3.15
Basic Application Level Confidentiality Profile (Table E.1-1). With identity hidden
their *values* show as :data:`HIDDEN` (the rows stay, so the reader still sees that
the file carries a name) and a search never matches a hidden value. Everything
inside an identifying sequence is identifying too. :mod:`dicomio.deidentify` reuses
this list to check that none of them survives an export.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import DicomReadError
from dicomio.source import DicomSource

HIDDEN = "hidden"
#: Longest value text shown; the rest is replaced by "…".
VALUE_MAX_CHARS = 160
#: Bytes of a binary value shown (hex).
BINARY_SHOWN = 16
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})

#: Patient-identity attributes of PS3.15 Table E.1-1 (Basic Profile) by keyword: who
#: the patient is and how to reach or look them up. PN-valued elements are added by VR.
IDENTIFYING_KEYWORDS: frozenset[str] = frozenset({
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientBirthTime",
    "PatientBirthName", "PatientMotherBirthName", "OtherPatientIDs", "OtherPatientNames",
    "OtherPatientIDsSequence", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "MedicalRecordLocator", "PatientInsurancePlanCodeSequence",
    "MilitaryRank", "BranchOfService", "PatientReligiousPreference", "EthnicGroup",
    "PatientComments", "AdditionalPatientHistory", "Occupation", "ReferencedPatientSequence",
    "ReferencedPatientPhotoSequence", "ResponsiblePerson", "ResponsibleOrganization",
    "CountryOfResidence", "RegionOfResidence", "PatientState", "AccessionNumber",
    "AdmissionID", "IssuerOfAdmissionIDSequence", "PatientTransportArrangements",
    "CurrentPatientLocation", "PatientInstitutionResidence", "SpecialNeeds",
    "LastMenstrualDate", "PregnancyStatus", "SmokingStatus", "PersonName",
    "PersonAddress", "PersonTelephoneNumbers",
})


def identifying_tags() -> frozenset[int]:
    """:data:`IDENTIFYING_KEYWORDS` as tag numbers (0xGGGGEEEE)."""
    from pydicom.datadict import tag_for_keyword

    tags = (tag_for_keyword(k) for k in IDENTIFYING_KEYWORDS)
    return frozenset(int(t) for t in tags if t is not None)


def is_identifying(keyword: str, vr: str) -> bool:
    return keyword in IDENTIFYING_KEYWORDS or vr == "PN"


@dataclass(frozen=True)
class TagRow:
    """One element (or a sequence item, ``tag`` None) with its children."""

    tag: int | None
    name: str
    keyword: str = ""
    vr: str = ""
    value: str = ""
    identifying: bool = False
    private_creator: str = ""
    children: tuple[TagRow, ...] = ()
    error: bool = False

    @property
    def tag_text(self) -> str:
        """"(GGGG,EEEE)", or "" for an item / error row."""
        if self.tag is None:
            return ""
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"

    def shown_value(self, identity_visible: bool) -> str:
        return self.value if identity_visible or not self.identifying else HIDDEN


@dataclass
class TagTree:
    """The rows of one file, or why it could not be read (``error``; one error row)."""

    source: str
    rows: list[TagRow] = field(default_factory=list)
    error: str = ""


def read_tag_rows(source: DicomSource | Path) -> TagTree:
    """The header of one file as rows; a file that cannot be read gives an error row."""
    src = source if isinstance(source, DicomSource) else DicomSource(Path(source))
    try:
        ds = read_header_dataset(src)
        return TagTree(str(src), dataset_rows(ds))
    except DicomReadError as exc:
        return _error_tree(src, str(exc))
    except Exception as exc:  # hostile input (RecursionError, MemoryError too): a row
        return _error_tree(src, f"{type(exc).__name__}: {exc}"[:300])


def _error_tree(src: DicomSource, reason: str) -> TagTree:
    text = f"Cannot read this file's header: {reason}"
    return TagTree(str(src), [TagRow(None, text, value=reason, error=True)], reason)


def read_header_dataset(src: DicomSource) -> Any:
    """pydicom's data set of a header (file meta included, no pixel data), read within the
    loader's caps. Raises DicomReadError with the reason."""
    from dicomio import fastheader
    from dicomio.load import _file_size, _read_header_pydicom

    size = _file_size(src)
    if size == 0:
        raise DicomReadError("empty file (0 bytes)")
    try:
        fp = src.open()
    except (OSError, KeyError) as exc:
        raise DicomReadError(f"cannot open the file: {exc}") from exc
    with fp:
        if size is None:  # a zip member: its spool knows its size
            size = fastheader.data_size(fp)
        ds, _raw = _read_header_pydicom(fp, size)
    return ds


def dataset_rows(ds: Any, inherited_identifying: bool = False) -> list[TagRow]:
    """Rows of a pydicom Dataset: file meta first (when present), then the data set."""
    rows: list[TagRow] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None and not inherited_identifying:
        rows.extend(_element_rows(meta, False))
    rows.extend(_element_rows(ds, inherited_identifying))
    return rows


def _element_rows(ds: Any, inherited: bool) -> list[TagRow]:
    rows: list[TagRow] = []
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]  # converts a raw element: may fail on a corrupt value
        except Exception as exc:
            rows.append(TagRow(int(tag), "(unreadable element)", value=f"{type(exc).__name__}",
                               identifying=inherited, error=True))
            continue
        rows.append(_element_row(elem, inherited))
    return rows


def _element_row(elem: Any, inherited: bool) -> TagRow:
    tag = int(elem.tag)
    vr = str(elem.VR or "")
    keyword = str(elem.keyword or "")
    creator = ""
    if elem.tag.is_private and not elem.tag.is_private_creator:
        creator = str(elem.private_creator or "")
    name = _element_name(elem)
    if creator and name == "Private tag data":  # pydicom does not know this creator's tags
        name = f"Private tag of {creator}"
    identifying = inherited or is_identifying(keyword, vr)
    if vr == "SQ":
        items = []
        for n, item in enumerate(elem.value or [], start=1):
            children = tuple(_element_rows(item, identifying))
            items.append(TagRow(None, f"Item {n}", identifying=identifying, children=children))
        count = len(items)
        return TagRow(tag, name, keyword, vr, f"{count} item{'s' if count != 1 else ''}",
                      identifying, creator, tuple(items))
    return TagRow(tag, name, keyword, vr, format_value(elem), identifying, creator)


def _element_name(elem: Any) -> str:
    """pydicom's name; private elements are named "[…]" from its private dictionary when
    the creator is known, "Private tag data" / "Private Creator" otherwise."""
    try:
        return str(elem.name)
    except Exception:
        return "(unknown)"


def format_value(elem: Any) -> str:
    """The value as shown: binary as length + first bytes, long text cut, multi-values
    joined by "\\"."""
    vr = str(elem.VR or "")
    try:
        value = elem.value
    except Exception as exc:
        return f"(unreadable: {type(exc).__name__})"
    if value is None:
        return ""
    if vr in BINARY_VRS or isinstance(value, bytes | bytearray):
        data = bytes(value) if isinstance(value, bytes | bytearray) else b""
        head = data[:BINARY_SHOWN].hex(" ")
        more = " …" if len(data) > BINARY_SHOWN else ""
        return f"<{len(data)} bytes> {head}{more}".rstrip()
    from pydicom.multival import MultiValue

    if isinstance(value, list | tuple | MultiValue):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)  # str, numbers, PersonName
    text = text.replace("\r", " ").replace("\n", " ")
    if len(text) > VALUE_MAX_CHARS:
        text = text[:VALUE_MAX_CHARS - 1] + "…"
    return text


_TAG_QUERY = re.compile(r"^\(?\s*([0-9a-fA-F]{4})\s*,?\s*([0-9a-fA-F]{4})\s*\)?$")


def parse_tag_query(text: str) -> int | None:
    """"0010,0010", "(0010,0010)" or "00100010" as a tag number; None otherwise."""
    match = _TAG_QUERY.match(text.strip())
    if match is None:
        return None
    return int(match.group(1) + match.group(2), 16)


def row_matches(row: TagRow, query: str, identity_visible: bool = True) -> bool:
    """Whether a row itself matches: its tag, keyword, name, private creator, VR or
    shown value (a hidden value never matches)."""
    q = query.strip().lower()
    if not q:
        return True
    tag = parse_tag_query(q)
    if tag is not None and row.tag == tag:
        return True
    compact = q.replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
    if row.tag is not None and len(compact) >= 4 and compact in f"{row.tag:08x}":
        return True
    fields = (row.keyword, row.name, row.private_creator, row.shown_value(identity_visible))
    return any(q in f.lower() for f in fields if f)


def filter_rows(rows: Sequence[TagRow], query: str,
                identity_visible: bool = True) -> list[TagRow]:
    """The rows that match, with the sequences and items that lead to a match (a
    matching sequence keeps all its children)."""
    if not query.strip():
        return list(rows)
    out: list[TagRow] = []
    for row in rows:
        if row_matches(row, query, identity_visible):
            out.append(row)
            continue
        kept = filter_rows(row.children, query, identity_visible)
        if kept:
            out.append(replace(row, children=tuple(kept)))
    return out


def iter_rows(rows: Iterable[TagRow]) -> Iterable[TagRow]:
    """Every row, depth first."""
    for row in rows:
        yield row
        yield from iter_rows(row.children)
