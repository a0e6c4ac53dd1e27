"""Header-only scanning of files, folders, DICOMDIRs and zip archives.

``scan_paths`` walks what the user gave, reads only the header of each
candidate file, and returns one :class:`InstanceHeader` per DICOM object plus
a :class:`SkippedFile` with a specific reason for everything that could not be
indexed. Nothing is ever written next to the sources.

The element structure is read by :mod:`dicomio.fastheader` (Lucida's one
header parser): it keeps the raw bytes of the tags below, seeks past every
other value and stops at the pixel data. Text in a character set and the
SharedFunctionalGroupsSequence are then decoded by pydicom from those raw
bytes. Only what that parser declines (no 'DICM' marker, an invalid VR) goes to
``pydicom.dcmread`` (``stop_before_pixels``), through a reader that stops after
:data:`FALLBACK_READ_MAX` bytes.

One file can never end a scan: every failure of one file or zip member — any
``Exception``, ``MemoryError`` and ``RecursionError`` included — becomes that
file's skip reason, in worker threads and processes alike, and a worker
process that dies has its files scanned again in the calling thread.

Files inside a ``.zip`` are read in place through
:class:`dicomio.source.DicomSource` (path + member), never extracted: each
member is inflated once, in blocks, into a spool bounded in memory
(:func:`dicomio.decode.spool_zip_member`), and refused past
:data:`dicomio.decode.ZIP_MEMBER_MAX_BYTES` actual inflated bytes.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag, Tag

from core.errors import CancelledError
from core.progress import CancelToken, ProgressSink
from dicomio import fastheader
from dicomio.classify import MEDIA_STORAGE_DIRECTORY, ObjectKind, classify_sop_class
from dicomio.decode import (
    BoundedReader,
    ZipMemberError,
    ZipMemberHead,
    read_zip_member_head,
    spool_zip_member,
    zip_directory_problem,
)
from dicomio.source import DicomSource

log = logging.getLogger(__name__)

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]

#: Bytes the pydicom fallback may read from one file. pydicom keeps what it reads as
#: Python objects (up to ~100x the bytes for a header of nothing but empty items), so
#: this bounds its memory; real headers that reach the fallback are a few KB.
FALLBACK_READ_MAX = 1 << 20
#: Largest DICOMDIR read (pydicom reads it whole, ~10-20x its size in objects); 16 MiB
#: is a DICOMDIR of some 40,000 images.
DICOMDIR_MAX_BYTES = 16 << 20
#: Bytes at the end of a file searched for the end of encapsulated pixel data.
_TAIL_BYTES = 4096


FILE_LIKE_SUFFIXES = frozenset({".dcm", ".dicom", ".ima", ".img", ".zip"})

_HEADER_TAGS: list[BaseTag] = [
    Tag(name)
    for name in (
        "SpecificCharacterSet",
        "ImageType",
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "Modality",
        "StudyDescription",
        "SeriesDescription",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "BodyPartExamined",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SeriesNumber",
        "InstanceNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "FrameOfReferenceUID",
        "SamplesPerPixel",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "PixelSpacing",
        "SharedFunctionalGroupsSequence",
    )
]
_TAG_OF: dict[str, BaseTag] = {keyword_for_tag(tag): tag for tag in _HEADER_TAGS}
_US_KEYWORDS = frozenset({"Rows", "Columns", "SamplesPerPixel"})
_US_TAGS = frozenset(int(_TAG_OF[k]) for k in _US_KEYWORDS)
_SHARED_FG = int(Tag("SharedFunctionalGroupsSequence"))
_WANTED = frozenset(int(tag) for tag in _HEADER_TAGS) - {_SHARED_FG}
_CAPTURED = frozenset({_SHARED_FG})
_SEQ_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class ScanProblem(Exception):
    """Internal: a file that is skipped; the message is the user-facing reason."""


@dataclass(frozen=True)
class InstanceHeader:
    """The header facts of one DICOM object that the library indexes."""

    source: DicomSource
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    study_uid: str
    study_date: str
    study_description: str
    accession_number: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    body_part: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int
    image_position: Vec3 | None
    image_orientation: Orientation | None
    pixel_spacing: tuple[float, float] | None
    frame_of_reference_uid: str
    file_size: int
    mtime: float
    object_kind: ObjectKind
    image_type: tuple[str, ...] = ()
    study_time: str = ""

    @property
    def is_localizer(self) -> bool:
        """True when ImageType marks this image as a localizer / scout."""
        return any(value.upper() == "LOCALIZER" for value in self.image_type)

    def __repr__(self) -> str:  # never print patient identity in reprs or logs
        return (
            f"InstanceHeader({self.source}, kind={self.object_kind.value}, "
            f"series={self.series_uid}, sop={self.sop_instance_uid})"
        )


@dataclass(frozen=True)
class SkippedFile:
    """A file (or zip member) that was not indexed, and why."""

    source: DicomSource
    reason: str


@dataclass
class ScanResult:
    """Everything a scan found: indexed objects, skipped files, DICOMDIRs seen."""

    instances: list[InstanceHeader] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    dicomdirs: list[Path] = field(default_factory=list)
    files_seen: int = 0


# --------------------------------------------------------------------------- helpers



# --------------------------------------------------------------------------- helpers


_ASCII_SAFE = re.compile(rb"[^\x00-\x1a\x1c-\x7f]")  # anything non-ASCII or ESC
# IS is a 32-bit signed integer (PS3.5 6.2); anything outside is not a number we keep
# (and SQLite could not store every Python int).
_IS_RANGE = (-(1 << 31), (1 << 31) - 1)


def _raw_element(ds: Dataset, keyword: str) -> Any:
    """The stored element for ``keyword`` without converting it (None when absent)."""
    return ds._dict.get(_TAG_OF[keyword])


def _text(ds: Dataset, keyword: str) -> str:
    """A text attribute as str; fast path for plain ASCII, pydicom for character sets."""
    elem = _raw_element(ds, keyword)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None:
            return ""
        if isinstance(raw, bytes) and not _ASCII_SAFE.search(raw):
            return raw.decode("ascii").strip(" \x00")
    value = ds[_TAG_OF[keyword]].value
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    elem = _raw_element(ds, keyword)
    if elem is None:
        return None
    if (isinstance(elem, RawDataElement) and isinstance(elem.value, bytes)
            and keyword in _US_KEYWORDS and len(elem.value) == 2):
        return int(struct.unpack("<H" if elem.is_little_endian else ">H", elem.value)[0])
    text = _text(ds, keyword) if keyword not in _US_KEYWORDS else str(ds[_TAG_OF[keyword]].value)
    return _int_from_text(text.split("\\")[0].strip())


def _int_from_text(text: str) -> int | None:
    """An IS (or a DS written where an integer belongs, e.g. "12.0"); None if neither
    or outside the 32-bit range of IS ("1e400" must not become an overflow)."""
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        value = int(number)
    return value if _IS_RANGE[0] <= value <= _IS_RANGE[1] else None


def _numbers(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    return _floats_from_text(_text(ds, keyword), n)


def _floats_from_text(text: str, n: int) -> tuple[float, ...] | None:
    """A multi-valued DS ("a\\b\\c") with exactly ``n`` finite numbers, else None."""
    if not text:
        return None
    try:
        items = [float(v) for v in text.split("\\")]
    except ValueError:
        return None
    if len(items) != n or not all(math.isfinite(v) for v in items):
        return None
    return tuple(items)


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        return None
    if len(items) != n or not all(math.isfinite(v) for v in items):
        return None
    return tuple(items)


def _functional(ds: Dataset, seq: str, item: str) -> Dataset | None:
    """First item of ``seq`` inside SharedFunctionalGroupsSequence, if any."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not shared:
        return None
    group = shared[0].get(seq)
    if not group:
        return None
    found: Dataset = group[0]
    return found if item in found else None


_TRUNCATED = "truncated: the file ends inside a data element"


def _tail_reader(fp: BinaryIO, size: int, start: int) -> Callable[[], bytes]:
    """The last bytes of the stream from ``start`` on (at most :data:`_TAIL_BYTES`)."""
    def tail() -> bytes:
        fp.seek(max(start, size - _TAIL_BYTES))
        return fp.read(_TAIL_BYTES)
    return tail


def _pixel_data_check(fp: BinaryIO, ds: Dataset, size: int) -> bool:
    """Whether pixel data follows the header; raise ScanProblem when it is truncated.

    ``dcmread(stop_before_pixels=True)`` leaves ``fp`` at the pixel data tag, so
    the element header tells us its length without reading the pixels.
    """
    pos = fp.tell()
    if pos > size:
        raise ScanProblem("truncated: the header ends early (an element runs past the end)")
    implicit, little = ds.original_encoding
    if pos == size:
        # No pixel data: prove that the elements tile the file, else it was cut short.
        _check_complete(fp, size, _dataset_start(fp, size), bool(implicit),
                        little is not False)
        return False
    fp.seek(pos)
    head = fastheader.read_exact(fp, 12)
    if len(head) < 8:
        raise ScanProblem("truncated: the file ends inside the pixel data element header")
    endian = "<" if little is not False else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if ((group << 16) | elem) not in fastheader.PIXEL_TAGS:
        return False
    return _pixel_element_check(head, bool(implicit), pos, size, _tail_reader(fp, size, pos),
                                endian)


def _check_complete(fp: BinaryIO, size: int, start: int, implicit: bool, little: bool) -> None:
    """Walk the top-level elements of a file without pixel data to its end.

    pydicom stops quietly at an early end of file when it can skip unwanted
    values; a file whose last element is cut short is truncated.
    """
    try:
        fastheader.walk(fp, start, end=size, implicit=implicit, little=little,
                        stop_at_pixels=False)
    except fastheader.Truncated:
        raise ScanProblem(_TRUNCATED) from None
    except fastheader.HeaderProblem as problem:
        raise ScanProblem(str(problem)) from None
    except fastheader.Declined:
        pass  # an encoding the walker does not read: pydicom's reading stands


def _dataset_start(fp: BinaryIO, size: int) -> int:
    """Offset of the data set after the preamble and any group 0002 elements."""
    fp.seek(0)
    head = fp.read(132)
    pos = 132 if head[128:132] == b"DICM" else 0
    try:
        return fastheader.skip_meta_group(fp, pos, size)
    except (fastheader.HeaderProblem, fastheader.Declined):
        return pos


class _Fields(Protocol):
    """Read access to the header attributes, from pydicom or from raw bytes."""

    transfer_syntax: str
    meta_sop_class: str
    meta_sop_instance: str

    def text(self, keyword: str) -> str: ...

    def integer(self, keyword: str) -> int | None: ...

    def numbers(self, keyword: str, n: int) -> tuple[float, ...] | None: ...

    def functional(self, sequence: str, keyword: str, n: int) -> tuple[float, ...] | None: ...


class _DatasetFields:
    """Header attributes of a pydicom Dataset (character sets, functional groups)."""

    def __init__(self, ds: Dataset, transfer_syntax: str, meta_sop_class: str,
                 meta_sop_instance: str) -> None:
        self.ds = ds
        self.transfer_syntax = transfer_syntax
        self.meta_sop_class = meta_sop_class
        self.meta_sop_instance = meta_sop_instance

    @classmethod
    def of(cls, ds: Dataset) -> _DatasetFields:
        """Fields of a data set read by ``dcmread`` (file meta from the data set)."""
        meta = getattr(ds, "file_meta", None)

        def get(keyword: str) -> str:
            return str(meta.get(keyword, "") or "") if meta else ""

        return cls(ds, get("TransferSyntaxUID"), get("MediaStorageSOPClassUID"),
                   get("MediaStorageSOPInstanceUID"))

    def text(self, keyword: str) -> str:
        return _text(self.ds, keyword)

    def integer(self, keyword: str) -> int | None:
        return _int(self.ds, keyword)

    def numbers(self, keyword: str, n: int) -> tuple[float, ...] | None:
        return _numbers(self.ds, keyword, n)

    def functional(self, sequence: str, keyword: str, n: int) -> tuple[float, ...] | None:
        item = _functional(self.ds, sequence, keyword)
        return _floats(item.get(keyword), n) if item is not None else None


class _RawFields:
    """Header attributes straight from the element bytes (plain-ASCII headers only)."""

    def __init__(self, values: dict[int, bytes], endian: str, transfer_syntax: str,
                 meta_sop_class: str, meta_sop_instance: str) -> None:
        self.values = values
        self.endian = endian
        self.transfer_syntax = transfer_syntax
        self.meta_sop_class = meta_sop_class
        self.meta_sop_instance = meta_sop_instance

    def text(self, keyword: str) -> str:
        raw = self.values.get(int(_TAG_OF[keyword]))
        return raw.decode("ascii").strip(" \x00") if raw else ""

    def integer(self, keyword: str) -> int | None:
        raw = self.values.get(int(_TAG_OF[keyword]))
        if not raw:
            return None
        if keyword in _US_KEYWORDS:
            return int(struct.unpack(self.endian + "H", raw[:2])[0]) if len(raw) >= 2 else None
        return _int_from_text(raw.decode("ascii").split("\\")[0].strip(" \x00"))

    def numbers(self, keyword: str, n: int) -> tuple[float, ...] | None:
        return _floats_from_text(self.text(keyword), n)

    def functional(self, sequence: str, keyword: str, n: int) -> tuple[float, ...] | None:
        return None  # only used without a SharedFunctionalGroupsSequence


def _header_from_fields(
    fields: _Fields,
    source: DicomSource,
    *,
    size: int,
    mtime: float,
    has_pixels: bool,
) -> InstanceHeader:
    sop_class = fields.text("SOPClassUID") or fields.meta_sop_class
    sop_instance = fields.text("SOPInstanceUID") or fields.meta_sop_instance
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise ScanProblem("DICOMDIR")  # handled by the caller
    study_uid = fields.text("StudyInstanceUID")
    series_uid = fields.text("SeriesInstanceUID")
    missing = [
        name
        for name, value in (
            ("SOPClassUID", sop_class),
            ("SOPInstanceUID", sop_instance),
            ("StudyInstanceUID", study_uid),
            ("SeriesInstanceUID", series_uid),
        )
        if not value
    ]
    if missing:
        raise ScanProblem(f"missing required UID(s): {', '.join(missing)}")
    kind = classify_sop_class(sop_class, has_pixel_data=has_pixels)
    if kind.is_image and not has_pixels:
        raise ScanProblem("image object without pixel data (no (7FE0,0010) element)")
    orientation = (fields.numbers("ImageOrientationPatient", 6)
                   or fields.functional("PlaneOrientationSequence", "ImageOrientationPatient", 6))
    spacing = (fields.numbers("PixelSpacing", 2)
               or fields.functional("PixelMeasuresSequence", "PixelSpacing", 2))
    image_type_text = fields.text("ImageType")
    image_type = tuple(v.strip() for v in image_type_text.split("\\")) if image_type_text else ()
    frames = fields.integer("NumberOfFrames") or 1
    return InstanceHeader(
        source=source,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax_uid=fields.transfer_syntax,
        patient_id=fields.text("PatientID"),
        patient_name=fields.text("PatientName"),
        patient_birth_date=fields.text("PatientBirthDate"),
        study_uid=study_uid,
        study_date=fields.text("StudyDate"),
        study_description=fields.text("StudyDescription"),
        accession_number=fields.text("AccessionNumber"),
        series_uid=series_uid,
        series_number=fields.integer("SeriesNumber"),
        series_description=fields.text("SeriesDescription"),
        modality=fields.text("Modality"),
        body_part=fields.text("BodyPartExamined"),
        instance_number=fields.integer("InstanceNumber"),
        rows=fields.integer("Rows"),
        columns=fields.integer("Columns"),
        number_of_frames=max(frames, 1),
        image_position=fields.numbers("ImagePositionPatient", 3),  # type: ignore[arg-type]
        image_orientation=orientation,  # type: ignore[arg-type]
        pixel_spacing=spacing,  # type: ignore[arg-type]
        frame_of_reference_uid=fields.text("FrameOfReferenceUID"),
        file_size=size,
        mtime=mtime,
        object_kind=kind,
        image_type=image_type,
        study_time=fields.text("StudyTime"),
    )


def _fields_from_walk(found: fastheader.Walk, meta: fastheader.FileMeta, *, implicit: bool,
                      little: bool) -> _Fields:
    """Fields from the raw values the walker kept: read directly when they are plain
    ASCII, else decoded by pydicom from those bytes (no second parse of the file)."""
    plain = _SHARED_FG not in found.values and not any(
        _ASCII_SAFE.search(raw) for tag, raw in found.values.items() if tag not in _US_TAGS)
    if plain:
        return _RawFields(found.values, "<" if little else ">", meta.transfer_syntax,
                          meta.sop_class, meta.sop_instance)
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, raw in found.values.items():
        key = Tag(tag)
        elements[key] = RawDataElement(key, found.vrs.get(tag), len(raw), raw, 0, implicit,
                                       little)
    ds = Dataset(elements)
    ds.set_original_encoding(implicit, little)
    return _DatasetFields(ds, meta.transfer_syntax, meta.sop_class, meta.sop_instance)


def _pixel_element_check(head: bytes, implicit: bool, pos: int, size: int,
                         tail: Callable[[], bytes], endian: str = "<") -> bool:
    """Validate the pixel data element whose header bytes ``head`` start at ``pos``.

    True when it holds pixels; ScanProblem when the file is cut short inside it.
    """
    if len(head) < 8:
        raise ScanProblem("truncated: the file ends inside the pixel data element header")
    if implicit or not fastheader.is_vr(head[4:6]):
        length = struct.unpack_from(endian + "I", head, 4)[0]
        header_len = 8
    elif head[4:6] in fastheader.LONG_VRS:
        if len(head) < 12:
            raise ScanProblem("truncated: the file ends inside the pixel data element header")
        length = struct.unpack_from(endian + "I", head, 8)[0]
        header_len = 12
    else:
        length = struct.unpack_from(endian + "H", head, 6)[0]
        header_len = 8
    if length == 0xFFFFFFFF:
        if _SEQ_DELIMITER_LE not in tail():
            raise ScanProblem(
                "truncated: compressed pixel data has no end-of-sequence marker "
                "(file cut short?)"
            )
        return True
    if pos + header_len + length > size:
        missing = pos + header_len + length - size
        raise ScanProblem(
            f"truncated: pixel data needs {length} bytes but the file is {missing} bytes short"
        )
    return bool(length > 0)


def read_header(fp: BinaryIO, source: DicomSource, size: int, mtime: float) -> InstanceHeader:
    """Parse one object's header from a seekable stream of ``size`` bytes.

    ScanProblem (the skip reason) on bad input; the fast reader first, pydicom for
    what it declines. The import's check of every file, and of every instance a peer sends
    (net/filing.py).
    """
    if size == 0:
        raise ScanProblem("empty file (0 bytes)")
    header = read_header_fast(fp, source, size, mtime)
    if header is None:
        fp.seek(0)
        header = _read_header_pydicom(fp, source, size, mtime)
    return header


def read_header_fast(fp: BinaryIO, source: DicomSource, size: int,
                     mtime: float) -> InstanceHeader | None:
    """The header through :mod:`dicomio.fastheader` alone; None when it declines the file
    (the caller then uses pydicom). Exposed so that a test can count the files it reads."""
    try:
        meta = fastheader.read_file_meta(fp, size)
        if meta is None or not meta.transfer_syntax:
            return None
        ts = meta.transfer_syntax
        if ts in fastheader.DEFLATED:
            return _read_deflated_fast(fp, meta, source, size, mtime)
        implicit = ts == fastheader.IMPLICIT_LE
        little = ts != fastheader.EXPLICIT_BE
        found = fastheader.walk(fp, meta.dataset_start, end=size, implicit=implicit,
                                little=little, wanted=_WANTED, capture=_CAPTURED,
                                head=meta.head)
    except fastheader.Declined:
        return None
    except fastheader.HeaderProblem as problem:
        raise ScanProblem(str(problem)) from None
    def has_pixels() -> bool:
        if found.pixel_pos is None:
            return False
        return _pixel_element_check(found.pixel_head, implicit, found.pixel_pos, size,
                                    _tail_reader(fp, size, found.pixel_pos),
                                    "<" if little else ">")

    return _header_or_problem(
        source, size, mtime,
        lambda: _fields_from_walk(found, meta, implicit=implicit, little=little), has_pixels)


def _read_deflated_fast(fp: BinaryIO, meta: fastheader.FileMeta, source: DicomSource,
                        size: int, mtime: float) -> InstanceHeader | None:
    """A deflated data set: its first :data:`fastheader.MAX_INFLATED` bytes inflated
    and walked (the header must end there; the pixel data need not)."""
    data, complete = fastheader.inflate(fp, meta.dataset_start)
    inflated = io.BytesIO(data)
    found = fastheader.walk(inflated, 0, end=len(data) if complete else None,
                            limit=len(data), implicit=False, wanted=_WANTED,
                            capture=_CAPTURED)
    def has_pixels() -> bool:
        if found.pixel_pos is None or not complete:
            return found.pixel_pos is not None
        # The whole data set was inflated: its pixel element can be checked as in a file.
        return _pixel_element_check(found.pixel_head, False, found.pixel_pos, len(data),
                                    _tail_reader(inflated, len(data), found.pixel_pos))

    return _header_or_problem(
        source, size, mtime, lambda: _fields_from_walk(found, meta, implicit=False, little=True),
        has_pixels)


def _too_large() -> ScanProblem:
    return ScanProblem(f"header too large: the general reader stops after "
                       f"{FALLBACK_READ_MAX} bytes of header")


def _read_header_pydicom(fp: BinaryIO, source: DicomSource, size: int,
                         mtime: float) -> InstanceHeader:
    """The general path: pydicom reads the header (no preamble, odd encodings),
    through a reader that hands it at most :data:`FALLBACK_READ_MAX` bytes."""
    preamble = fp.read(132)
    has_marker = len(preamble) == 132 and preamble[128:132] == b"DICM"
    if not has_marker and not _looks_like_raw_dicom(preamble):
        raise ScanProblem("not a DICOM file (no 'DICM' marker and no DICOM header)")
    if has_marker:
        try:
            meta = fastheader.read_file_meta(fp, size)
        except (fastheader.HeaderProblem, fastheader.Declined):
            meta = None
        if meta is not None and meta.transfer_syntax in fastheader.DEFLATED:
            return _read_deflated_pydicom(fp, meta, source, size, mtime)
    fp.seek(0)
    reader = BoundedReader(fp, FALLBACK_READ_MAX, size)
    try:
        ds = pydicom.dcmread(
            reader, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=not has_marker
        )
    except _NotKept:
        raise
    except InvalidDicomError as exc:
        raise (_too_large() if reader.exhausted else
               ScanProblem(f"not a DICOM file ({exc})")) from exc
    except (EOFError, struct.error) as exc:
        raise (_too_large() if reader.exhausted else
               ScanProblem(f"truncated: the header ends early ({exc})")) from exc
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise (_too_large() if reader.exhausted else ScanProblem(
            f"unreadable DICOM header: {type(exc).__name__}: {exc}"[:300])) from exc
    if reader.exhausted:
        raise _too_large()
    return _header_or_problem(source, size, mtime, lambda: _DatasetFields.of(ds),
                              lambda: _pixel_data_check(fp, ds, size))


def _read_deflated_pydicom(fp: BinaryIO, meta: fastheader.FileMeta, source: DicomSource,
                           size: int, mtime: float) -> InstanceHeader:
    """pydicom reads a deflated data set from our bounded inflation (its own
    ``dcmread`` would inflate the whole file at once, however large it becomes)."""
    from pydicom.filereader import read_dataset

    try:
        data, _ = fastheader.inflate(fp, meta.dataset_start)
    except fastheader.HeaderProblem as problem:
        raise ScanProblem(str(problem)) from None

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        return int(tag) in fastheader.PIXEL_TAGS

    try:
        ds = read_dataset(io.BytesIO(data), False, True, stop_when=at_pixels,
                          specific_tags=list(_HEADER_TAGS))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise ScanProblem(f"unreadable DICOM header: {type(exc).__name__}: {exc}"[:300]) from exc
    return _header_or_problem(
        source, size, mtime,
        lambda: _DatasetFields(ds, meta.transfer_syntax, meta.sop_class, meta.sop_instance),
        lambda: "Rows" in ds)


def _header_or_problem(source: DicomSource, size: int, mtime: float,
                       fields: Callable[[], _Fields],
                       has_pixels: Callable[[], bool]) -> InstanceHeader:
    """The header from the fields and the pixel check, with any failure of theirs (pydicom
    converts values lazily, and fails in many ways) as a specific skip reason."""
    try:
        return _header_from_fields(fields(), source, size=size, mtime=mtime,
                                   has_pixels=has_pixels())
    except (ScanProblem, _NotKept, MemoryError, RecursionError):
        raise
    except Exception as exc:  # pydicom converts values lazily, and fails in many ways
        raise ScanProblem(f"unreadable DICOM header: {type(exc).__name__}: {exc}"[:300]) from exc


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A preamble-less DICOM stream starts with a group 0002 or 0008 element."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    return group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


def _looks_like_dicom(head: bytes) -> bool:
    return (len(head) >= 132 and head[128:132] == b"DICM") or _looks_like_raw_dicom(head)


def failure_reason(exc: BaseException) -> str:
    """The skip reason for an unexpected failure while reading one file."""
    if isinstance(exc, MemoryError):
        return "not indexed: reading this file ran out of memory (MemoryError)"
    if isinstance(exc, RecursionError):
        return "not indexed: its header is nested too deeply to read (RecursionError)"
    return f"not indexed: unexpected {type(exc).__name__} while reading it: {exc}"[:300]


@dataclass(frozen=True)
class _Outcome:
    """Result of examining one candidate file: any of these may be empty."""

    instances: tuple[InstanceHeader, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    dicomdir: Path | None = None
    seen: int = 1


def _scan_file(path: Path) -> _Outcome:
    """Examine one plain file (a DICOM object or a zip archive). Never raises an Exception."""
    try:
        return _scan_file_unguarded(path)
    except Exception as exc:  # MemoryError, RecursionError, anything: this file only
        log.warning("scan: %s skipped after %s", path, type(exc).__name__)
        return _Outcome(skipped=(SkippedFile(DicomSource(path), failure_reason(exc)),))


def _scan_file_unguarded(path: Path) -> _Outcome:
    source = DicomSource(path)
    try:
        st = path.stat()
    except PermissionError:
        return _Outcome(skipped=(SkippedFile(source, "unreadable: permission denied"),))
    except OSError as exc:
        return _Outcome(skipped=(SkippedFile(source, f"unreadable: {exc.strerror or exc}"),))
    if stat.S_ISDIR(st.st_mode):
        return _Outcome(skipped=(SkippedFile(source, "is a directory, not a file"),))
    if not stat.S_ISREG(st.st_mode):
        return _Outcome(skipped=(SkippedFile(source, "not a regular file"),))
    try:
        with open(path, "rb") as fp:
            if path.suffix.lower() == ".zip" or fp.read(4) == b"PK\x03\x04":
                fp.close()
                return _scan_zip(path, st.st_mtime)
            fp.seek(0)
            try:
                header = read_header(fp, source, st.st_size, st.st_mtime)
            except ScanProblem as problem:
                if str(problem) == "DICOMDIR":
                    return _Outcome(dicomdir=path)
                return _Outcome(skipped=(SkippedFile(source, str(problem)),))
    except PermissionError:
        return _Outcome(skipped=(SkippedFile(source, "unreadable: permission denied"),))
    except OSError as exc:
        return _Outcome(skipped=(SkippedFile(source, f"unreadable: {exc.strerror or exc}"),))
    return _Outcome(instances=(header,))


_NESTED_DICOMDIR = "DICOMDIR inside a zip: its files are indexed directly"


def _check_member_start(block: bytes) -> None:
    """Stop inflating a member at its first block when it cannot be DICOM."""
    if block[:4] == b"PK\x03\x04":
        raise ScanProblem("zip inside a zip: extract the outer archive first")
    if not _looks_like_dicom(block):
        raise ScanProblem("not a DICOM file (no 'DICM' marker and no DICOM header)")


class _NotKept(Exception):
    """Internal: a read of bytes of a zip member that were counted but not kept."""


class _HeadAndTail(io.RawIOBase):
    """A member as a seekable stream of its real size, of which only the kept head and
    tail can be read; reading between raises :class:`_NotKept`."""

    def __init__(self, kept: ZipMemberHead) -> None:
        super().__init__()
        self._kept = kept
        self._pos = 0
        self._tail_start = kept.size - len(kept.tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._kept.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        stop = self._kept.size if size is None or size < 0 else min(start + size,
                                                                     self._kept.size)
        if stop <= start:
            return b""
        head, tail = self._kept.head, self._kept.tail
        if stop <= len(head):
            data = bytes(head[start:stop])
        elif start >= self._tail_start:
            data = tail[start - self._tail_start:stop - self._tail_start]
        elif start < len(head) and len(head) + len(tail) >= self._kept.size:
            data = bytes(head[start:]) + tail[len(head) - self._tail_start:stop - self._tail_start]
        elif start < len(head):
            data = bytes(head[start:])  # a short read: the next one, in the gap, raises
        else:
            raise _NotKept
        self._pos += len(data)
        return data


def _scan_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: DicomSource,
                 mtime: float) -> InstanceHeader:
    """One member, inflated once; ScanProblem on bad input.

    The header is read from the member's kept head (and tail). A header that runs
    past the head (a large structure set, say) has the member inflated again into a
    spool that moves to a temporary file beyond :data:`ZIP_SPOOL_MEMORY`.
    """
    try:
        kept = read_zip_member_head(archive, info, _check_member_start)
    except ZipMemberError as exc:
        raise ScanProblem(str(exc)) from None
    try:
        return read_header(cast(BinaryIO, _HeadAndTail(kept)), source, kept.size, mtime)
    except _NotKept:
        pass
    try:
        spool = spool_zip_member(archive, info)
    except ZipMemberError as exc:
        raise ScanProblem(str(exc)) from None
    with spool:
        return read_header(spool, source, kept.size, mtime)


def _scan_zip(path: Path, mtime: float) -> _Outcome:
    """Index every member of a zip archive in place (nothing is extracted)."""
    instances: list[InstanceHeader] = []
    skipped: list[SkippedFile] = []
    seen = 0
    try:
        problem = zip_directory_problem(path)
        if problem is not None:
            return _Outcome(skipped=(SkippedFile(DicomSource(path), problem),))
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises many types on crafted archives
        return _Outcome(skipped=(SkippedFile(DicomSource(path),
                                             f"unreadable zip archive: {exc}"),))
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            seen += 1
            source = DicomSource(path, info.filename)
            name = info.filename.rsplit("/", 1)[-1]
            if name.upper() == "DICOMDIR":
                skipped.append(SkippedFile(source, _NESTED_DICOMDIR))
                continue
            try:
                instances.append(_scan_member(archive, info, source, mtime))
            except ScanProblem as problem:
                reason = str(problem)
                skipped.append(SkippedFile(source, _NESTED_DICOMDIR if reason == "DICOMDIR"
                                           else reason))
            except Exception as exc:  # this member only: the others are still read
                log.warning("scan: %s skipped after %s", source, type(exc).__name__)
                skipped.append(SkippedFile(source, failure_reason(exc)))
    return _Outcome(instances=tuple(instances), skipped=tuple(skipped), seen=max(seen, 1))


def _scan_chunk(paths: Sequence[Path]) -> list[_Outcome]:
    return [_scan_file(p) for p in paths]


# --------------------------------------------------------------------------- walking


def _dicomdir_references(path: Path) -> tuple[list[Path], list[SkippedFile]]:
    """The files a DICOMDIR references (resolved), and a skip entry if it is unreadable."""
    try:
        from pydicom.fileset import FileSet

        size = path.stat().st_size
        if size > DICOMDIR_MAX_BYTES:
            return [], [SkippedFile(DicomSource(path), f"DICOMDIR of {size} bytes: more than "
                                    f"{DICOMDIR_MAX_BYTES} are not read (its files are "
                                    "found by scanning the folder)")]
        fileset = FileSet(pydicom.dcmread(path))
        files = [Path(instance.path) for instance in fileset]
    except Exception as exc:  # pydicom raises many types, RecursionError included
        return [], [SkippedFile(DicomSource(path),
                                f"unreadable DICOMDIR: {type(exc).__name__}: {exc}"[:300])]
    return files, []


def _walk(root: Path, out: list[Path], skipped: list[SkippedFile]) -> None:
    """Collect regular files under ``root`` (no symlinked directory loops)."""
    stack = [root]
    visited: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue
            visited.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            skipped.append(SkippedFile(DicomSource(folder), "folder unreadable: permission denied"))
            continue
        except OSError as exc:
            skipped.append(SkippedFile(DicomSource(folder),
                                       f"folder unreadable: {exc.strerror or exc}"))
            continue
        before = len(out)
        subdirs: list[Path] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(Path(entry.path))
            else:
                out.append(Path(entry.path))
        if (not subdirs and len(out) == before and folder != root
                and folder.suffix.lower() in FILE_LIKE_SUFFIXES):
            skipped.append(SkippedFile(DicomSource(folder),
                                       "a directory named like a file; it holds no files"))
        stack.extend(reversed(subdirs))


def _collect(paths: Sequence[Path], result: ScanResult) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                _walk(path, files, result.skipped)
            elif path.exists() or path.is_symlink():
                files.append(path)
            else:
                result.skipped.append(SkippedFile(DicomSource(path), "does not exist"))
        except (OSError, ValueError, RuntimeError) as exc:  # e.g. a NUL in the name
            result.skipped.append(SkippedFile(DicomSource(path), f"unreadable path: {exc}"))
    # DICOMDIR given or found: add what it references (files the walk may have missed).
    expanded: list[Path] = []
    seen: set[Path] = set()
    for path in files:
        try:
            if path.name.upper() == "DICOMDIR":
                _expand_dicomdir(path, result, seen, expanded)
                continue
            key = path.resolve() if not path.is_symlink() else path.absolute()
        except (OSError, ValueError, RuntimeError):  # a symlink loop: the scan reports it
            key = path.absolute()
        if key not in seen:
            seen.add(key)
            expanded.append(path)
    return expanded


def _expand_dicomdir(path: Path, result: ScanResult, seen: set[Path],
                     expanded: list[Path]) -> None:
    """Record a DICOMDIR and add the files it references (each once)."""
    key = path.resolve()
    if key in seen:
        return
    seen.add(key)
    result.dicomdirs.append(path)
    result.files_seen += 1
    refs, problems = _dicomdir_references(path)
    result.skipped.extend(problems)
    for ref in refs:
        try:
            if not ref.exists():
                result.skipped.append(SkippedFile(
                    DicomSource(ref), "referenced by a DICOMDIR but missing"))
                continue
            key = ref.resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # a crafted record's path
            result.skipped.append(SkippedFile(
                DicomSource(ref), f"referenced by a DICOMDIR but unreadable: {exc}"))
            continue
        if key not in seen:
            seen.add(key)
            expanded.append(ref)


def default_workers() -> int:
    """Thread count for scanning: one per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


#: Below this many files a scan runs in the calling thread (pool start-up costs more).
SERIAL_BELOW = 200


def scan_paths(
    paths: Sequence[Path],
    *,
    progress: ProgressSink | None = None,
    cancel: CancelToken | None = None,
    workers: int | None = None,
    use_processes: bool = False,
) -> ScanResult:
    """Scan files, folders (recursively), DICOMDIRs and zip archives, headers only.

    Headers are read by :mod:`dicomio.fastheader` (seeking past values, never
    reading pixel data), falling back to pydicom only for what it declines (no
    'DICM' marker, invalid VRs). A file that fails in any way is a
    :class:`SkippedFile` with the reason; only a cancel raises. ``workers`` sets the pool size
    (1 scans in this thread; default: serial below :data:`SERIAL_BELOW`
    files, else :func:`default_workers` threads, which overlap file I/O on a
    cold cache). Measured on the 2-core development machine, a process pool
    (``use_processes=True``) is slower than one thread for scans of up to
    ~1,000 files because of its start-up cost, so it is opt-in; it needs the
    usual ``if __name__ == "__main__"`` guard in the calling script.
    Raises CancelledError when ``cancel`` is set.
    """
    result = ScanResult()
    files = _collect(paths, result)
    total = len(files)
    if workers is None:
        n_workers = 1 if total < SERIAL_BELOW else default_workers()
    else:
        n_workers = max(1, workers)
    chunk = max(16, min(256, total // (n_workers * 4) or 16))
    chunks = [files[i:i + chunk] for i in range(0, total, chunk)]
    done = 0

    def absorb(outcomes: list[_Outcome]) -> None:
        nonlocal done
        for outcome in outcomes:
            result.instances.extend(outcome.instances)
            result.skipped.extend(outcome.skipped)
            result.files_seen += outcome.seen
            if outcome.dicomdir is not None:
                result.dicomdirs.append(outcome.dicomdir)
        done += len(outcomes)
        if progress is not None:
            progress(done / total if total else 1.0, f"scanned {done} of {total} files")

    def check_cancel() -> None:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("scan cancelled by the user")

    if n_workers == 1 or len(chunks) <= 1:
        for part in chunks:
            check_cancel()
            absorb(_scan_chunk(part))
    else:
        executor: Executor
        if use_processes:
            import multiprocessing

            executor = ProcessPoolExecutor(
                max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")
                if os.name != "posix" else multiprocessing.get_context("forkserver"),
            )
        else:
            executor = ThreadPoolExecutor(max_workers=n_workers)
        with executor:
            futures = [executor.submit(_scan_chunk, part) for part in chunks]
            try:
                for part, future in zip(chunks, futures, strict=True):
                    check_cancel()
                    try:
                        outcomes = future.result()
                    except Exception as exc:  # a worker that died (process pool) or failed
                        # Its files are scanned again here, one by one, each guarded.
                        log.warning("scan worker failed (%s); rescanning %d files serially",
                                    type(exc).__name__, len(part))
                        outcomes = _scan_chunk(part)
                    absorb(outcomes)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    if progress is not None and total == 0:
        progress(1.0, "nothing to scan")
    log.info("scan: %d objects, %d skipped, %d files", len(result.instances),
             len(result.skipped), result.files_seen)
    return result

