"""Lucida's one reader of DICOM element structure: the header scan and the loader use it.

:func:`walk` goes through a data set's elements in a bounded buffer, keeps the
raw bytes of the tags asked for, seeks past every other value (pixel data and
other large elements are never read), walks sequences of undefined length
item by item without recursion, and stops at the pixel data. It reads
explicit and implicit VR, little and big endian; the caller inflates deflated
data sets first (:func:`inflate`). Crafted headers cannot make it use more
memory or time than the caps below: a walk raises :class:`HeaderProblem` with
a user-facing reason (:class:`Truncated`, :class:`TooLarge`) for a file that is
certainly unusable, and :class:`Declined` for an encoding it does not read
(no 'DICM' marker, an invalid VR), which the caller hands to pydicom.

:func:`read_lean_header` is the loader's view: the few attributes sorting and
decoding need, as a tiny stand-in for ``pydicom.Dataset``, or None when
pydicom should read the file (anything unusual), so for the loader it stays
purely an optimisation.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

#: The VRs whose explicit-VR element header has 2 reserved bytes and a 4-byte length
#: (PS3.5 7.1.2). The one table in Lucida: a VR missing here mis-frames every element
#: after it.
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                      b"UT", b"SV", b"UV"})
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"})
UNDEFINED = 0xFFFFFFFF

# --- caps: what one header may cost, whatever it claims ---------------------------------
#: Bytes read per refill of the walker's buffer; the buffer never holds more than this
#: plus one kept value, so walking a file costs this much memory whatever its size.
#: Most headers fit in one block.
READ_BLOCK = 16 * 1024
#: Element headers (items and delimiters included) one walk visits before it gives up.
#: Real headers have hundreds to some tens of thousands (a large RT structure set);
#: this bounds the time a header of millions of tiny crafted elements costs (~1 s).
MAX_ELEMENTS = 1_000_000
#: Sequences nested deeper than this are refused. Real objects nest fewer than 20
#: levels; pydicom recurses once per level and would hit Python's recursion limit.
MAX_DEPTH = 64
#: Largest value kept for a wanted attribute. UIDs, names, codes and numbers are
#: short; a bigger value is not what it claims to be (the caller may ask pydicom).
MAX_VALUE = 64 * 1024
#: Largest sequence value captured whole (SharedFunctionalGroupsSequence, a few KB in
#: real files) for pydicom to decode.
MAX_CAPTURE = 1024 * 1024
#: Largest inflated prefix of a deflated data set that the scan reads (its header
#: must end within it); a deflated "bomb" costs at most this much memory.
MAX_INFLATED = 16 * 1024 * 1024

_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VR_SHAPES = frozenset(bytes((a, b)) for a in _UPPER for b in _UPPER)
_ITEM = (0xFFFE, 0xE000)
_ITEM_END = (0xFFFE, 0xE00D)
_SEQ_END = (0xFFFE, 0xE0DD)


class HeaderProblem(Exception):
    """The header is certainly unusable; the message is the reason shown to the user."""


class Truncated(HeaderProblem):
    """An element or sequence runs past the end of the data."""


class TooLarge(HeaderProblem):
    """A cap was hit: the header is too long, too deep or too big to read safely."""


class Declined(Exception):
    """The walker does not read this encoding; pydicom may (within its own bounds)."""


def is_vr(vr: bytes) -> bool:
    """Two upper-case letters: what an explicit VR looks like."""
    return vr in _VR_SHAPES


def _read_at_least(fp: BinaryIO, want: int, need: int) -> bytes:
    """Up to ``want`` bytes, at least ``need`` unless the stream ends: a stream may
    return less than asked (a zip member's kept head ends), so read on."""
    data = fp.read(want)
    while len(data) < need:
        more = fp.read(want - len(data))
        if not more:
            break
        data += more
    return data


def read_exact(fp: BinaryIO, n: int) -> bytes:
    """``n`` bytes, or fewer only at the end of the stream (a read may return less)."""
    return _read_at_least(fp, n, n)


class _Cursor:
    """A forward position in a seekable stream, read through a bounded buffer.

    ``end`` is where the data really end (None: unknown); ``limit`` is how far the
    stream may be read (a kept prefix can be shorter than the data).
    """

    def __init__(self, fp: BinaryIO, pos: int, end: int | None, limit: int | None,
                 block: int = READ_BLOCK, head: bytes = b"") -> None:
        self.fp = fp
        self.block = block
        self.pos = pos
        self.end = end
        self.limit = limit if limit is not None else end
        self._buf = head  # bytes already read from offset 0, if any
        self._base = 0

    def _span(self, n: int) -> int:
        """Offset in the buffer of ``n`` bytes at ``pos``, refilling when needed."""
        rel = self.pos - self._base
        if 0 <= rel and rel + n <= len(self._buf):
            return rel
        if self.end is not None and self.pos + n > self.end:
            raise Truncated("truncated: the file ends inside a data element")
        if self.limit is not None and self.pos + n > self.limit:
            raise TooLarge(f"header too large: it runs past the first {self.limit} bytes "
                           "that are read for a header")
        want = max(n, self.block)
        if self.limit is not None:
            want = max(n, min(want, self.limit - self.pos))
        self.fp.seek(self.pos)
        self._buf = _read_at_least(self.fp, want, n)
        self._base = self.pos
        if len(self._buf) < n:
            raise Truncated("truncated: the file ends inside a data element")
        return 0

    def window(self, n: int) -> tuple[bytes, int]:
        """The buffer and the offset of ``pos`` in it, holding ``n`` bytes at ``pos``
        (fewer only where the data or the readable part end)."""
        rel = self.pos - self._base
        if 0 <= rel and rel + n <= len(self._buf):
            return self._buf, rel
        stop = self.pos + n
        if self.end is not None:
            stop = min(stop, self.end)
        if self.limit is not None:
            stop = min(stop, self.limit)
        if stop <= self.pos:
            return b"", 0
        rel = self._span(stop - self.pos)
        return self._buf, rel

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        rel = self._span(fmt.size)
        self.pos += fmt.size
        return fmt.unpack_from(self._buf, rel)

    def peek(self, n: int) -> bytes:
        rel = self._span(n)
        return self._buf[rel:rel + n]

    def take(self, n: int) -> bytes:
        if n <= READ_BLOCK:
            rel = self._span(n)
            self.pos += n
            return self._buf[rel:rel + n]
        data = self.read_at(self.pos, n)
        self.pos += n
        return data

    def read_at(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` read directly (for kept values bigger than a block)."""
        if self.end is not None and pos + n > self.end:
            raise Truncated("truncated: the file ends inside a data element")
        if self.limit is not None and pos + n > self.limit:
            raise TooLarge("header too large: a value runs past the bytes read for a header")
        self.fp.seek(pos)
        data = read_exact(self.fp, n)
        if len(data) < n:
            raise Truncated("truncated: the file ends inside a data element")
        return data

    def skip(self, n: int) -> None:
        self.pos += n
        if self.end is not None and self.pos > self.end:
            raise Truncated("truncated: the file ends inside a data element")

    def at_end(self) -> bool:
        if self.end is not None:
            return self.pos >= self.end
        try:
            self._span(1)
        except Truncated:
            return True
        return False


@dataclass
class FileMeta:
    """The Part 10 file meta information that the readers need."""

    transfer_syntax: str
    sop_class: str
    sop_instance: str
    dataset_start: int
    head: bytes = b""  # the first bytes of the stream, read once for the walk to reuse


@dataclass
class Walk:
    """What one walk found: wanted values (raw bytes and VR), and where it stopped."""

    values: dict[int, bytes] = field(default_factory=dict)
    vrs: dict[int, str | None] = field(default_factory=dict)
    pixel_pos: int | None = None  # offset of the pixel data tag; None: none before the end
    pixel_head: bytes = b""  # up to 12 bytes from pixel_pos: the pixel element's header


_S_META = struct.Struct("<HH2s")
_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
_TAG = {True: struct.Struct("<HH"), False: struct.Struct(">HH")}
_TAG_LEN = {True: struct.Struct("<HHI"), False: struct.Struct(">HHI")}


def skip_meta_group(fp: BinaryIO, pos: int, end: int | None, limit: int | None = None,
                    keep: dict[int, str] | None = None, head: bytes = b"") -> int:
    """Offset after the group 0002 elements (explicit VR little endian) starting at ``pos``.

    Element values of (0002,eeee) are put into ``keep`` by element number when given;
    ``head`` holds bytes already read from offset 0.
    """
    cur = _Cursor(fp, pos, end, limit, head=head)
    count = 0
    while not cur.at_end():
        group, elem, vr = _S_META.unpack(cur.peek(6))
        if group != 0x0002:
            break
        count += 1
        if count > 1000:
            raise TooLarge("corrupt file meta information: too many elements")
        if not is_vr(vr):
            raise Declined("file meta information without explicit VRs")
        if vr in LONG_VRS:
            cur.skip(8)
            (length,) = cur.unpack(_U32[True])
        else:
            cur.skip(6)
            (length,) = cur.unpack(_U16[True])
        if length == UNDEFINED:
            raise HeaderProblem("corrupt file meta information: an element of undefined length")
        if keep is not None and elem in (0x0002, 0x0003, 0x0010) and length <= 256:
            keep[elem] = cur.take(length).decode("ascii", "replace").strip("\x00 ")
        else:
            cur.skip(length)
    return cur.pos


def read_file_meta(fp: BinaryIO, end: int | None, limit: int | None = None) -> FileMeta | None:
    """The file meta information of a Part 10 file; None without the 'DICM' marker."""
    fp.seek(0)
    want = READ_BLOCK if limit is None else min(READ_BLOCK, limit)
    head = fp.read(want if end is None else min(want, end))
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    keep: dict[int, str] = {}
    start = skip_meta_group(fp, 132, end, limit, keep, head)
    return FileMeta(keep.get(0x0010, ""), keep.get(0x0002, ""), keep.get(0x0003, ""), start,
                    head)


def walk(fp: BinaryIO, start: int, *, end: int | None, implicit: bool, little: bool = True,
         limit: int | None = None, wanted: frozenset[int] = frozenset(),
         capture: frozenset[int] = frozenset(), decline: frozenset[int] = frozenset(),
         stop_at_pixels: bool = True, head: bytes = b"") -> Walk:
    """Walk a data set from ``start`` without recursion, within the caps above.

    Top-level elements whose tag is in ``wanted`` (values up to :data:`MAX_VALUE`)
    or ``capture`` (sequences up to :data:`MAX_CAPTURE`; items without the final
    delimiter) are kept; everything else is skipped. A top-level tag in ``decline``
    raises :class:`Declined`. Stops at the top-level pixel data tag when
    ``stop_at_pixels``, else at ``end``. ``head``: bytes already read from offset 0.
    """
    cur = _Cursor(fp, start, end, limit, head=head)
    out = Walk()
    # Open sequences / items of undefined length: (is_item, implicit, little, capture_tag,
    # capture_start). Nested data of a UN of undefined length is implicit VR little endian.
    stack: list[tuple[bool, bool, bool, int, int]] = []
    count = 0
    imp, le = implicit, little
    while True:
        count += 1
        if count > MAX_ELEMENTS:
            raise TooLarge(f"header too large: more than {MAX_ELEMENTS} elements")
        if not stack:
            if cur.at_end() if end is None else cur.pos >= end:
                break
            imp, le = implicit, little
        else:
            is_item, imp, le, cap_tag, cap_start = stack[-1]
            if cur.at_end():
                raise Truncated("truncated: the file ends inside a sequence")
            if not is_item:
                group, elem, length = cur.unpack(_TAG_LEN[le])
                if (group, elem) == _SEQ_END:
                    stack.pop()
                    if cap_tag:
                        size = cur.pos - 8 - cap_start
                        if size > MAX_CAPTURE:
                            raise Declined("sequence too large to capture")
                        out.values[cap_tag] = cur.read_at(cap_start, size)
                    continue
                if (group, elem) != _ITEM:
                    raise HeaderProblem("corrupt sequence: an item tag was expected")
                if length == UNDEFINED:
                    stack.append((True, imp, le, 0, 0))
                else:
                    cur.skip(length)
                continue
        # One element header, parsed straight from the buffer (the hot path).
        buf = cur._buf
        rel = cur.pos - cur._base
        if rel < 0 or rel + 12 > len(buf):
            buf, rel = cur.window(12)
        have = len(buf) - rel
        if have < 8:
            cur.peek(8)  # raises Truncated or TooLarge, whichever applies
        group, elem = _TAG[le].unpack_from(buf, rel)
        tag = (group << 16) | elem
        if group == 0xFFFE:
            if stack and elem == 0xE00D:
                cur.pos += 8
                stack.pop()
                continue
            raise HeaderProblem("corrupt header: an item or delimiter outside a sequence")
        if not stack:
            if stop_at_pixels and tag in PIXEL_TAGS:
                out.pixel_pos = cur.pos
                out.pixel_head = buf[rel:rel + 12]
                break
            if tag in decline:
                raise Declined(f"element ({group:04X},{elem:04X})")
        vr: bytes = b""
        if imp:
            (length,) = _U32[le].unpack_from(buf, rel + 4)
            cur.pos += 8
        else:
            vr = buf[rel + 4:rel + 6]
            if vr in LONG_VRS:
                if have < 12:
                    cur.peek(12)
                (length,) = _U32[le].unpack_from(buf, rel + 8)
                cur.pos += 12
            elif vr in _VR_SHAPES:
                (length,) = _U16[le].unpack_from(buf, rel + 6)
                cur.pos += 8
            else:
                raise Declined("not an explicit VR where the transfer syntax says so")
        if length == UNDEFINED:
            if len(stack) >= 2 * MAX_DEPTH:
                raise TooLarge(f"header too deep: sequences nested more than {MAX_DEPTH} levels")
            nested_imp = imp or vr == b"UN"
            nested_le = le or vr == b"UN"
            if not stack and tag in capture:
                stack.append((False, nested_imp, nested_le, tag, cur.pos))
            else:
                stack.append((False, nested_imp, nested_le, 0, 0))
            continue
        if not stack and (tag in wanted or tag in capture):
            if length > (MAX_VALUE if tag in wanted else MAX_CAPTURE):
                raise Declined("a kept value is too long")
            out.values[tag] = cur.take(length)
            out.vrs[tag] = vr.decode("ascii") if vr else None
        else:
            cur.pos += length
            if end is not None and cur.pos > end:
                raise Truncated("truncated: the file ends inside a data element")
    if stack:
        raise Truncated("truncated: the file ends inside a sequence")
    return out


def inflate(fp: BinaryIO, start: int, cap: int = MAX_INFLATED) -> tuple[bytes, bool]:
    """The deflated data set from ``start``, inflated up to ``cap`` bytes.

    Returns the bytes and whether the stream ended within the cap; the output is
    counted as it inflates, so a small file cannot expand beyond ``cap`` in memory.
    """
    fp.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = io.BytesIO()
    pending = b""
    while out.tell() < cap:
        if not pending:
            pending = fp.read(READ_BLOCK)
            if not pending:
                return out.getvalue(), True
        try:
            data = inflater.decompress(pending, cap - out.tell())
        except zlib.error as exc:
            raise HeaderProblem(f"corrupt deflated data set: {exc}") from exc
        out.write(data)
        pending = inflater.unconsumed_tail
        if inflater.eof:
            return out.getvalue(), True
    return out.getvalue(), False


def data_size(fp: BinaryIO) -> int:
    """Length of a seekable stream (its position is left at the end)."""
    return fp.seek(0, io.SEEK_END)


# --------------------------------------------------------------------------- loader view

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
_WANTED_TAGS = frozenset(_BY_TAG)
_PER_FRAME = 0x52009230
_SHARED = 0x52009229


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


def _convert(kind: str, vr: str | None, raw: bytes) -> Any:
    if kind == "us":
        if len(raw) < 2:
            return None
        fmt = "<h" if vr == "SS" else "<H"
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


def read_lean_header(fp: BinaryIO, size: int | None) -> tuple[LeanDataset, int] | None:
    """(dataset view, file offset of the pixel data tag or end of file), or None when
    pydicom should read this file. Leaves ``fp`` at that offset on success."""
    try:
        if size is None:
            size = data_size(fp)
        meta = read_file_meta(fp, size)
        if meta is None:
            return None
        ts = meta.transfer_syntax
        if not ts or ts in DEFLATED or ts == EXPLICIT_BE:
            return None
        # An enhanced object's functional groups need pydicom.
        found = walk(fp, meta.dataset_start, end=size, implicit=ts == IMPLICIT_LE,
                     wanted=_WANTED_TAGS, decline=frozenset({_PER_FRAME, _SHARED}),
                     head=meta.head)
    except (HeaderProblem, Declined, OSError, ValueError, struct.error):
        return None  # pydicom reads it and gives its own reason
    values = {_BY_TAG[tag][0]: _convert(_BY_TAG[tag][1], found.vrs.get(tag), raw)
              for tag, raw in found.values.items()}
    nframes = values.get("NumberOfFrames")
    if nframes is not None and nframes != 1:
        return None
    pixel_pos = found.pixel_pos if found.pixel_pos is not None else size
    fp.seek(pixel_pos)
    meta_values = {"TransferSyntaxUID": ts}
    if meta.sop_class:
        meta_values["MediaStorageSOPClassUID"] = meta.sop_class
    return LeanDataset(values, LeanMeta(meta_values)), pixel_pos
