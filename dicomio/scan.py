"""Header-only scanning of files, folders, DICOMDIRs and zip archives.

``scan_paths`` walks what the user gave, reads only the header of each
candidate file (``stop_before_pixels``, a fixed tag list), and returns one
:class:`InstanceHeader` per DICOM object plus a :class:`SkippedFile` with a
specific reason for everything that could not be indexed. No exception from a
single bad file escapes; nothing is ever written next to the sources.

Files inside a ``.zip`` are read in place through
:class:`dicomio.source.DicomSource` (path + member), never extracted.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag, Tag

from core.errors import CancelledError
from core.progress import CancelToken, ProgressSink
from dicomio.classify import MEDIA_STORAGE_DIRECTORY, ObjectKind, classify_sop_class
from dicomio.source import DicomSource

log = logging.getLogger(__name__)

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]

#: Suffixes that make a directory "look like a file" (reported when it holds nothing).
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
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_SEQ_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_EXPLICIT_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"SQ"})
_DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}


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


_VALID_VR = re.compile(rb"[A-Z]{2}")
_ASCII_SAFE = re.compile(rb"[^\x00-\x1a\x1c-\x7f]")  # anything non-ASCII or ESC


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
    """An IS (or a DS written where an integer belongs, e.g. "12.0"); None if neither."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return None


def _numbers(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    return _floats_from_text(_text(ds, keyword), n)


def _floats_from_text(text: str, n: int) -> tuple[float, ...] | None:
    """A multi-valued DS ("a\\b\\c") with exactly ``n`` numbers, else None."""
    if not text:
        return None
    try:
        items = [float(v) for v in text.split("\\")]
    except ValueError:
        return None
    return tuple(items) if len(items) == n else None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return tuple(items) if len(items) == n else None


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


def _pixel_data_check(fp: BinaryIO, ds: Dataset, size: int, transfer_syntax: str) -> bool:
    """Whether pixel data follows the header; raise ScanProblem when it is truncated.

    ``dcmread(stop_before_pixels=True)`` leaves ``fp`` at the pixel data tag, so
    the element header tells us its length without reading the pixels.
    """
    pos = fp.tell()
    if pos > size:
        raise ScanProblem("truncated: the header ends early (an element runs past the end)")
    if pos == size:
        # No pixel data: prove that the elements tile the file, else it was cut short.
        fp.seek(0)
        _check_complete(fp.read(), ds)
        return False
    head = fp.read(12)
    if len(head) < 8:
        raise ScanProblem("truncated: the file ends inside the pixel data element header")
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if ((group << 16) | elem) not in _PIXEL_TAGS:
        return False

    def tail() -> bytes:
        fp.seek(max(pos, size - 4096))
        return fp.read()

    return _pixel_element_check(head, bool(implicit), pos, size, tail, endian)


_TRUNCATED = "truncated: the file ends inside a data element"


def _check_complete(buf: bytes, ds: Dataset) -> None:
    """Walk the top-level elements of a file without pixel data to its end.

    pydicom stops quietly at an early end of file when it can skip unwanted
    values; a file whose last element is cut short is truncated.
    """
    pos = 132 if buf[128:132] == b"DICM" else 0
    while pos + 8 <= len(buf):  # file meta: group 0002, explicit VR little endian
        group = struct.unpack_from("<H", buf, pos)[0]
        if group != 0x0002:
            break
        pos = _skip_element(buf, pos, implicit=False, endian="<")
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    end = _elements_end(buf, pos, bool(implicit), endian, in_item=False)
    if end != len(buf):
        raise ScanProblem(_TRUNCATED)


def _skip_element(buf: bytes, pos: int, *, implicit: bool, endian: str) -> int:
    """Position after the element at ``pos`` (sequences of undefined length walked)."""
    size = len(buf)
    if pos + 8 > size:
        raise ScanProblem(_TRUNCATED)
    vr = b""
    if implicit or not _VALID_VR.fullmatch(buf[pos + 4:pos + 6]):
        length = struct.unpack_from(endian + "I", buf, pos + 4)[0]
        pos += 8
    else:
        vr = buf[pos + 4:pos + 6]
        if vr in _EXPLICIT_LONG_VRS:
            if pos + 12 > size:
                raise ScanProblem(_TRUNCATED)
            length = struct.unpack_from(endian + "I", buf, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from(endian + "H", buf, pos + 6)[0]
            pos += 8
    if length == 0xFFFFFFFF:
        nested_implicit = implicit or vr == b"UN"
        return _sequence_end(buf, pos, nested_implicit, "<" if vr == b"UN" else endian)
    pos += length
    if pos > size:
        raise ScanProblem(_TRUNCATED)
    return pos


def _elements_end(buf: bytes, pos: int, implicit: bool, endian: str, *, in_item: bool) -> int:
    size = len(buf)
    while pos < size:
        if pos + 8 > size:
            raise ScanProblem(_TRUNCATED)
        group, elem = struct.unpack_from(endian + "HH", buf, pos)
        if in_item and group == 0xFFFE and elem == 0xE00D:
            return pos + 8
        pos = _skip_element(buf, pos, implicit=implicit, endian=endian)
    if in_item:
        raise ScanProblem(_TRUNCATED)
    return pos


def _sequence_end(buf: bytes, pos: int, implicit: bool, endian: str) -> int:
    size = len(buf)
    while True:
        if pos + 8 > size:
            raise ScanProblem(_TRUNCATED)
        group, elem, length = struct.unpack_from(endian + "HHI", buf, pos)
        pos += 8
        if group == 0xFFFE and elem == 0xE0DD:
            return pos
        if group != 0xFFFE or elem != 0xE000:
            raise ScanProblem("corrupt sequence: an item tag was expected")
        if length == 0xFFFFFFFF:
            pos = _elements_end(buf, pos, implicit, endian, in_item=True)
        else:
            pos += length
            if pos > size:
                raise ScanProblem(_TRUNCATED)


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
    """Header attributes of a pydicom Dataset (the general, slower path)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        meta = getattr(ds, "file_meta", None)
        self.transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "") if meta else ""
        self.meta_sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "") if meta else ""
        self.meta_sop_instance = (str(meta.get("MediaStorageSOPInstanceUID", "") or "")
                                  if meta else "")

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
        return None  # files with functional groups take the pydicom path


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


class _NeedFullPath(Exception):
    """Internal: the fast parser declines this file; use pydicom."""


_FAST_CHUNK = 16384
_WANTED = frozenset(int(tag) for tag in _HEADER_TAGS)
_SHARED_FG = int(Tag("SharedFunctionalGroupsSequence"))
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"


def _fast_fields(buf: bytes, size: int) -> tuple[_RawFields, int | None]:
    """Parse a Part 10 header from bytes without pydicom.

    Returns the fields and the offset of the pixel data element (None when the
    file has none). Raises _NeedFullPath for anything unusual (no preamble,
    big endian, deflate, non-ASCII text, functional groups, a header longer
    than ``buf``) and ScanProblem for a file that is certainly truncated.
    """
    if buf[128:132] != b"DICM":
        raise _NeedFullPath
    pos = 132
    n = len(buf)
    meta: dict[int, bytes] = {}
    while pos + 8 <= n:
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4:pos + 6]
        if vr in _EXPLICIT_LONG_VRS:
            length = struct.unpack_from("<I", buf, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from("<H", buf, pos + 6)[0]
            pos += 8
        if length == 0xFFFFFFFF or pos + length > n:
            raise _NeedFullPath
        meta[elem] = buf[pos:pos + length]
        pos += length
    transfer_syntax = meta.get(0x0010, b"").decode("ascii", "replace").strip(" \x00")
    if not transfer_syntax or transfer_syntax == _EXPLICIT_BE or transfer_syntax in _DEFLATED:
        raise _NeedFullPath
    implicit = transfer_syntax == _IMPLICIT_LE
    values: dict[int, bytes] = {}
    pixel_pos: int | None = None
    try:
        while pos < n:
            if pos + 8 > n:
                raise ScanProblem(_TRUNCATED)
            group, elem = struct.unpack_from("<HH", buf, pos)
            tag = (group << 16) | elem
            if tag in _PIXEL_TAGS:
                pixel_pos = pos
                break
            if tag == _SHARED_FG:
                raise _NeedFullPath
            start = pos
            if implicit:
                length = struct.unpack_from("<I", buf, pos + 4)[0]
                pos += 8
            else:
                vr = buf[pos + 4:pos + 6]
                if not _VALID_VR.fullmatch(vr):
                    raise _NeedFullPath  # e.g. implicit VR data under an explicit syntax
                if vr in _EXPLICIT_LONG_VRS:
                    if pos + 12 > n:
                        raise ScanProblem(_TRUNCATED)
                    length = struct.unpack_from("<I", buf, pos + 8)[0]
                    pos += 12
                else:
                    length = struct.unpack_from("<H", buf, pos + 6)[0]
                    pos += 8
            if length == 0xFFFFFFFF:
                pos = _skip_element(buf, start, implicit=implicit, endian="<")
                continue
            if pos + length > n:
                raise ScanProblem(_TRUNCATED)
            if tag in _WANTED:
                value = buf[pos:pos + length]
                if _ASCII_SAFE.search(value) and tag not in _US_TAGS:
                    raise _NeedFullPath  # a character set is needed to decode it
                values[tag] = value
            pos += length
    except ScanProblem:
        if n < size:
            raise _NeedFullPath from None  # only this chunk ended, not the file
        raise
    if pixel_pos is None and n < size:
        raise _NeedFullPath
    fields = _RawFields(values, "<", transfer_syntax,
                        meta.get(0x0002, b"").decode("ascii", "replace").strip(" \x00"),
                        meta.get(0x0003, b"").decode("ascii", "replace").strip(" \x00"))
    return fields, pixel_pos


def _pixel_element_check(head: bytes, implicit: bool, pos: int, size: int,
                         tail: Callable[[], bytes], endian: str = "<") -> bool:
    """Validate the pixel data element whose header bytes ``head`` start at ``pos``.

    True when it holds pixels; ScanProblem when the file is cut short inside it.
    """
    if len(head) < 8:
        raise ScanProblem("truncated: the file ends inside the pixel data element header")
    if implicit or not _VALID_VR.fullmatch(head[4:6]):
        length = struct.unpack_from(endian + "I", head, 4)[0]
        header_len = 8
    elif head[4:6] in _EXPLICIT_LONG_VRS:
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


def _read_header(fp: BinaryIO, source: DicomSource, size: int, mtime: float) -> InstanceHeader:
    """Parse one object's header from an open stream; ScanProblem on bad input."""
    if size == 0:
        raise ScanProblem("empty file (0 bytes)")
    chunk = fp.read(_FAST_CHUNK)
    try:
        try:
            fields, pixel_pos = _fast_fields(chunk, size)
        except _NeedFullPath:
            if len(chunk) >= size:
                raise
            fp.seek(0)
            chunk = fp.read()
            fields, pixel_pos = _fast_fields(chunk, size)
    except _NeedFullPath:
        pass
    else:
        has_pixels = False
        if pixel_pos is not None:
            implicit = fields.transfer_syntax == _IMPLICIT_LE

            def tail() -> bytes:
                fp.seek(max(pixel_pos, size - 4096))
                return fp.read()

            head = chunk[pixel_pos:pixel_pos + 12]
            if len(head) < 12 and len(chunk) < size:
                fp.seek(pixel_pos)
                head = fp.read(12)
            has_pixels = _pixel_element_check(head, implicit, pixel_pos, size, tail)
        return _header_from_fields(fields, source, size=size, mtime=mtime,
                                   has_pixels=has_pixels)
    fp.seek(0)
    return _read_header_pydicom(fp, source, size, mtime)


def _read_header_pydicom(fp: BinaryIO, source: DicomSource, size: int,
                         mtime: float) -> InstanceHeader:
    """The general path: pydicom reads the header (character sets, odd encodings)."""
    preamble = fp.read(132)
    has_marker = len(preamble) == 132 and preamble[128:132] == b"DICM"
    if not has_marker and not _looks_like_raw_dicom(preamble):
        raise ScanProblem("not a DICOM file (no 'DICM' marker and no DICOM header)")
    fp.seek(0)
    try:
        ds = pydicom.dcmread(
            fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=not has_marker
        )
    except InvalidDicomError as exc:
        raise ScanProblem(f"not a DICOM file ({exc})") from exc
    except (EOFError, struct.error) as exc:
        raise ScanProblem(f"truncated: the header ends early ({exc})") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            NotImplementedError, LookupError, OSError) as exc:
        raise ScanProblem(f"unreadable DICOM header: {type(exc).__name__}: {exc}") from exc
    fields = _DatasetFields(ds)
    if fields.transfer_syntax in _DEFLATED:
        has_pixels = "Rows" in ds
    else:
        has_pixels = _pixel_data_check(fp, ds, size, fields.transfer_syntax)
    try:
        return _header_from_fields(fields, source, size=size, mtime=mtime,
                                   has_pixels=has_pixels)
    except ScanProblem:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            LookupError) as exc:
        raise ScanProblem(f"unreadable DICOM header: {type(exc).__name__}: {exc}") from exc


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A preamble-less DICOM stream starts with a group 0002 or 0008 element."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    return group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


@dataclass(frozen=True)
class _Outcome:
    """Result of examining one candidate file: any of these may be empty."""

    instances: tuple[InstanceHeader, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    dicomdir: Path | None = None
    seen: int = 1


def _scan_file(path: Path) -> _Outcome:
    """Examine one plain file (a DICOM object or a zip archive). Never raises."""
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
                header = _read_header(fp, source, st.st_size, st.st_mtime)
            except ScanProblem as problem:
                if str(problem) == "DICOMDIR":
                    return _Outcome(dicomdir=path)
                return _Outcome(skipped=(SkippedFile(source, str(problem)),))
    except PermissionError:
        return _Outcome(skipped=(SkippedFile(source, "unreadable: permission denied"),))
    except OSError as exc:
        return _Outcome(skipped=(SkippedFile(source, f"unreadable: {exc.strerror or exc}"),))
    return _Outcome(instances=(header,))


def _scan_zip(path: Path, mtime: float) -> _Outcome:
    """Index every member of a zip archive in place (nothing is extracted)."""
    instances: list[InstanceHeader] = []
    skipped: list[SkippedFile] = []
    seen = 0
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return _Outcome(skipped=(SkippedFile(DicomSource(path), f"unreadable zip archive: {exc}"),))
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            seen += 1
            source = DicomSource(path, info.filename)
            name = info.filename.rsplit("/", 1)[-1]
            if name.upper() == "DICOMDIR":
                skipped.append(SkippedFile(source, "DICOMDIR inside a zip: its files are "
                                                   "indexed directly"))
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError,
                    RuntimeError) as exc:
                skipped.append(SkippedFile(source, f"unreadable zip member: {exc}"))
                continue
            if data[:4] == b"PK\x03\x04":
                skipped.append(SkippedFile(source, "zip inside a zip: extract the outer "
                                                   "archive first"))
                continue
            try:
                instances.append(_read_header(io.BytesIO(data), source, len(data), mtime))
            except ScanProblem as problem:
                reason = str(problem)
                if reason == "DICOMDIR":
                    reason = "DICOMDIR inside a zip: its files are indexed directly"
                skipped.append(SkippedFile(source, reason))
    return _Outcome(instances=tuple(instances), skipped=tuple(skipped), seen=max(seen, 1))


def _scan_chunk(paths: Sequence[Path]) -> list[_Outcome]:
    return [_scan_file(p) for p in paths]


# --------------------------------------------------------------------------- walking


def _dicomdir_references(path: Path) -> tuple[list[Path], list[SkippedFile]]:
    """The files a DICOMDIR references (resolved), and a skip entry if it is unreadable."""
    try:
        from pydicom.fileset import FileSet

        fileset = FileSet(pydicom.dcmread(path))
        files = [Path(instance.path) for instance in fileset]
    except (InvalidDicomError, ValueError, KeyError, AttributeError, TypeError,
            OSError, NotImplementedError, IndexError) as exc:
        return [], [SkippedFile(DicomSource(path), f"unreadable DICOMDIR: {exc}")]
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
        if path.is_dir():
            _walk(path, files, result.skipped)
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            result.skipped.append(SkippedFile(DicomSource(path), "does not exist"))
    # DICOMDIR given or found: add what it references (files the walk may have missed).
    expanded: list[Path] = []
    seen: set[Path] = set()
    for path in files:
        if path.name.upper() == "DICOMDIR":
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            result.dicomdirs.append(path)
            result.files_seen += 1
            refs, problems = _dicomdir_references(path)
            result.skipped.extend(problems)
            for ref in refs:
                if not ref.exists():
                    result.skipped.append(SkippedFile(
                        DicomSource(ref), "referenced by a DICOMDIR but missing"))
                    continue
                key = ref.resolve()
                if key not in seen:
                    seen.add(key)
                    expanded.append(ref)
            continue
        key = path.resolve() if not path.is_symlink() else path.absolute()
        if key not in seen:
            seen.add(key)
            expanded.append(path)
    return expanded


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

    Headers are parsed from the first bytes of each file by a small reader of
    our own, falling back to pydicom for anything unusual (character sets,
    big endian, deflate, functional groups). ``workers`` sets the pool size
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
                for future in futures:
                    check_cancel()
                    absorb(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    if progress is not None and total == 0:
        progress(1.0, "nothing to scan")
    log.info("scan: %d objects, %d skipped, %d files", len(result.instances),
             len(result.skipped), result.files_seen)
    return result

