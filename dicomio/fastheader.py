"""A lean reader for the few header attributes that sorting and decoding need.

pydicom's full parse costs about a millisecond per file, which dominates
loading an uncompressed series. For the second and later files of a series
this module walks the little-endian element stream once, keeps only the tags
listed in :data:`WANTED`, skips everything else (sequences of any length
included) and stops at the pixel data. Anything unusual — no 'DICM' marker,
big endian or deflated data, a multi-frame or enhanced object, a malformed
element — returns ``None`` and the caller uses pydicom instead, so this is
purely an optimisation and never the only reader of a file.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT",
             b"SV", b"UV"}
_IMPLICIT = "1.2.840.10008.1.2"
_NOT_LE = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_UNDEFINED = 0xFFFFFFFF

# keyword -> (tag, kind); kind: "us" unsigned short, "num" IS/DS numbers, "str" text.
WANTED: dict[str, tuple[int, str]] = {
    "SOPClassUID": (0x00080016, "str"),
    "Modality": (0x00080060, "str"),
    "SliceThickness": (0x00180050, "num"),
    "SpacingBetweenSlices": (0x00180088, "num"),
    "GantryDetectorTilt": (0x00181120, "num"),
    "ImagerPixelSpacing": (0x00181164, "num"),
    "InstanceNumber": (0x00200013, "num"),
    "ImagePositionPatient": (0x00200032, "num"),
    "ImageOrientationPatient": (0x00200037, "num"),
    "SamplesPerPixel": (0x00280002, "us"),
    "PhotometricInterpretation": (0x00280004, "str"),
    "NumberOfFrames": (0x00280008, "num"),
    "Rows": (0x00280010, "us"),
    "Columns": (0x00280011, "us"),
    "PixelSpacing": (0x00280030, "num"),
    "BitsAllocated": (0x00280100, "us"),
    "BitsStored": (0x00280101, "us"),
    "PixelRepresentation": (0x00280103, "us"),
    "PixelPaddingValue": (0x00280120, "us"),
    "PixelPaddingRangeLimit": (0x00280121, "us"),
    "RescaleIntercept": (0x00281052, "num"),
    "RescaleSlope": (0x00281053, "num"),
    "RescaleType": (0x00281054, "str"),
}
_BY_TAG = {tag: (kw, kind) for kw, (tag, kind) in WANTED.items()}
_PER_FRAME = 0x52009230
_SHARED = 0x52009229


class _Malformed(Exception):
    pass


class LeanMeta:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        return keyword in self._values


class LeanDataset:
    """Just enough of ``pydicom.Dataset``'s reading interface for dicomio.load."""

    def __init__(self, values: dict[str, Any], meta: LeanMeta) -> None:
        self._values = values
        self.file_meta = meta

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        return keyword in self._values

    def __getattr__(self, keyword: str) -> Any:
        try:
            return self._values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None


def _convert(kind: str, vr: bytes, raw: bytes) -> Any:
    if kind == "us":
        if len(raw) < 2:
            return None
        fmt = "<h" if vr == b"SS" else "<H"
        return struct.unpack_from(fmt, raw)[0]
    text = raw.decode("ascii", errors="replace").strip("\x00 ")
    if kind == "str":
        return text
    if not text:
        return None
    parts = [p.strip() for p in text.split("\\")]
    try:
        numbers = [float(p) for p in parts if p]
    except ValueError:
        return None
    if not numbers:
        return None
    return numbers[0] if len(numbers) == 1 else numbers


def _skip_undefined(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after the delimiter of an undefined-length sequence starting at ``pos``."""
    end = len(buf)
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHI", buf, pos)
        pos += 8
        if group == 0xFFFE and elem == 0xE0DD:  # sequence delimiter
            return pos
        if group != 0xFFFE or elem != 0xE000:
            raise _Malformed("item expected")
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _walk(buf, pos, explicit, None, stop_at_item_end=True)
    raise _Malformed("sequence runs past the buffer")


def _walk(buf: bytes, pos: int, explicit: bool, out: dict[str, Any] | None,
          stop_at_item_end: bool = False) -> int:
    end = len(buf)
    while pos + 8 <= end:
        group, elem = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | elem
        if stop_at_item_end and group == 0xFFFE and elem == 0xE00D:
            return pos + 8
        if not stop_at_item_end and group >= 0x7FE0:
            return pos
        if explicit:
            vr = buf[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    break
                (length,) = struct.unpack_from("<I", buf, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from("<H", buf, pos + 6)
                pos += 8
        else:
            vr = b""
            (length,) = struct.unpack_from("<I", buf, pos + 4)
            pos += 8
        if length == _UNDEFINED:
            if vr == b"UN":
                raise _Malformed("fallback")  # implicit-VR content: let pydicom read it
            if out is not None and tag in (_PER_FRAME, _SHARED):
                raise _Malformed("fallback")
            pos = _skip_undefined(buf, pos, explicit)
            continue
        if pos + length > end:
            raise _Malformed("element runs past the buffer")
        if out is not None:
            if tag in (_PER_FRAME, _SHARED):
                raise _Malformed("fallback")
            hit = _BY_TAG.get(tag)
            if hit is not None:
                out[hit[0]] = _convert(hit[1], vr, buf[pos:pos + length])
        pos += length
    raise _Malformed("header runs past the buffer")


def read_lean_header(fp: BinaryIO, size: int | None) -> tuple[LeanDataset, int] | None:
    """(dataset view, file offset of the pixel data tag or end of file), or None when
    pydicom should read this file. Leaves ``fp`` at that offset on success."""
    chunk = 16384
    while True:
        fp.seek(0)
        buf = fp.read(chunk)
        if len(buf) < 132 or buf[128:132] != b"DICM":
            return None
        try:
            meta, pos = _read_meta(buf)
            ts = meta.get("TransferSyntaxUID", "")
            if not ts or ts in _NOT_LE:
                return None
            values: dict[str, Any] = {}
            try:
                pixel_pos = _walk(buf, pos, ts != _IMPLICIT, values)
            except _Malformed as exc:
                whole = len(buf) < chunk or (size is not None and len(buf) >= size)
                if str(exc) == "fallback" or whole:
                    return None
                chunk *= 4
                continue
        except (struct.error, _Malformed):
            return None
        nframes = values.get("NumberOfFrames")
        if nframes is not None and nframes != 1:
            return None
        fp.seek(pixel_pos)
        return LeanDataset(values, LeanMeta(meta)), pixel_pos


def _read_meta(buf: bytes) -> tuple[dict[str, str], int]:
    pos = 132
    meta: dict[str, str] = {}
    while pos + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            return meta, pos
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", buf, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            pos += 8
        if length == _UNDEFINED or pos + length > len(buf):
            raise _Malformed("file meta")
        value = buf[pos:pos + length].decode("ascii", errors="replace").strip("\x00 ")
        if elem == 0x0010:
            meta["TransferSyntaxUID"] = value
        elif elem == 0x0002:
            meta["MediaStorageSOPClassUID"] = value
        pos += length
    raise _Malformed("file meta runs past the buffer")
