"""Pixel decoding: a fast path for native (uncompressed) data, and codec choice.

* **Native little-endian data** (Implicit/Explicit VR Little Endian, not
  encapsulated): the header is parsed once (pydicom ``stop_before_pixels`` for
  the first file, :mod:`dicomio.fastheader` for the others); the pixel bytes
  are then read at their file offset straight into a numpy buffer — no second
  parse, no copy through pydicom.
* **Everything else** goes through pydicom's pixel decoders, trying each
  available plugin for the transfer syntax in turn (pylibjpeg with
  libjpeg/openjpeg/rle, pyjpegls, Pillow, pydicom's own): when one plugin fails
  on a file the next is tried. Before them, encapsulated greyscale frames go
  to imagecodecs (C decoders that release the GIL, so frames decode in
  parallel threads); after them, a single-frame file nobody else could read
  goes to GDCM through SimpleITK (last: on damaged data it has allocated
  gigabytes where the others fail cleanly); python-gdcm's pydicom plugin is
  excluded because it aborts the process on some corrupt data. A file that
  none can decode raises :class:`DicomReadError` naming the transfer syntax
  and each plugin's error.
* Every decoder call goes through :func:`call_decoder`: whatever a decoder raises
  — a Rust panic from pylibjpeg-rle arrives as pyo3's ``PanicException``, a
  ``BaseException`` — is that decoder's failure, and the next one is tried
  (only KeyboardInterrupt, SystemExit and GeneratorExit pass through).
* Before any decoder sees encapsulated frames, :func:`check_encoded_frame` reads
  each frame's own header: an RLE header whose segments cannot be what the image
  needs (GDCM allocates gigabytes from a bad segment offset), a JPEG / JPEG-LS /
  JPEG 2000 codestream declaring more pixels than Rows × Columns × SamplesPerPixel
  (decoders allocate what the codestream says), or a JP2 box list that pydicom's
  parameter parser would walk forever (a box of length 0 before the codestream)
  refuses the file with the reason. Nothing is decoded from a frame that fails.
* Stored values are normalised the same way whichever decoder ran: bits above
  BitsStored are masked (unsigned) or sign-extended (signed).
* Zip members (the scan and :meth:`DicomSource.open` read them) are inflated
  once, in blocks, into a spool that stays in memory up to
  :data:`ZIP_SPOOL_MEMORY` and spills to an anonymous temporary file beyond;
  the inflated bytes are counted as they come and a member stops at
  :data:`ZIP_MEMBER_MAX_BYTES` whatever the archive claims.
"""

from __future__ import annotations

import io
import logging
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from core.errors import DicomReadError
from dicomio.fastheader import LONG_VRS, is_vr, read_exact
from dicomio.plausibility import element_value

log = logging.getLogger(__name__)

NATIVE_LE = {str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)}
# Preferred plugin order; whatever pydicom reports as available is tried in this order.
# pydicom's "gdcm" plugin (python-gdcm) is NOT used: on a corrupt JPEG 2000 codestream it
# aborts the whole process ("terminate called after throwing ..."), which no try/except
# can catch. GDCM is still tried, through SimpleITK, which reports errors as exceptions.
PLUGIN_PREFERENCE = ("pylibjpeg", "pyjpegls", "pillow", "pydicom")
EXCLUDED_PLUGINS = frozenset({"gdcm"})

T = TypeVar("T")
#: What a decoder call lets through: the user or the interpreter stopping. Everything
#: else a decoder raises is its failure on this data.
_NOT_DECODER_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


class DecoderFailed(DicomReadError):
    """One decoder could not read the data (the next one may); the message says how."""


def call_decoder(name: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)``, with any failure of it as :class:`DecoderFailed`.

    Decoders are C, C++ and Rust code behind thin bindings: pylibjpeg-rle turns a
    Rust panic into pyo3's ``PanicException``, which derives from BaseException so
    that ``except Exception`` misses it; others raise RuntimeError, MemoryError or
    their own types. All of them mean "this decoder cannot read this data".
    """
    try:
        return func(*args, **kwargs)
    except _NOT_DECODER_FAILURES:
        raise
    except BaseException as exc:  # a panic is a BaseException; it is still a failure
        raise DecoderFailed(f"{name}: {type(exc).__name__}: {exc}"[:300]) from exc


@dataclass(frozen=True)
class PixelFormat:
    """How one file's pixel data are stored."""

    transfer_syntax: str
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    number_of_frames: int
    padding_value: int | None = None
    padding_limit: int | None = None
    pixel_offset: int | None = None  # file offset of native pixel bytes (fast path)
    encapsulated_offset: int | None = None  # file offset of the first item of encapsulated data

    @property
    def is_colour(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric.startswith(("PALETTE", "RGB", "YBR"))

    @property
    def stored_dtype(self) -> np.dtype[Any]:
        if self.bits_allocated not in (1, 8, 16, 32):
            raise DicomReadError(f"BitsAllocated {self.bits_allocated} is not supported")
        size = max(self.bits_allocated, 8) // 8
        kind = "i" if self.pixel_representation == 1 else "u"
        return np.dtype(f"<{kind}{size}")

    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest stored value BitsStored allows."""
        bits = min(self.bits_stored, self.bits_allocated) if self.bits_stored else \
            self.bits_allocated
        if self.pixel_representation == 1:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1

    def signed_value(self, value: int) -> int:
        """A US/SS-ambiguous attribute (e.g. PixelPaddingValue) as the stored type."""
        bits = self.bits_allocated if self.bits_allocated >= 8 else 16
        value = int(value) & ((1 << bits) - 1)
        if self.pixel_representation == 1 and value >= 1 << (bits - 1):
            value -= 1 << bits
        return value

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8


class BoundedReader(io.RawIOBase):
    """A read-only view of a seekable stream that hands pydicom at most ``budget`` bytes
    (None: no budget), and never more than the stream holds from where it is.

    pydicom reads an element's value with ``read(length)`` as the file declares it,
    and Python allocates the whole ``length`` before reading: a 4 GB length in a
    small file is a 4 GB allocation (a MemoryError under an address-space limit).
    Reads are clamped first — to the bytes left in the stream, then to the budget —
    so pydicom sees a short read (an early end of the file) instead. Seeking is free
    (pydicom seeks past values it does not keep). ``exhausted`` is set when the
    budget, not the stream, cut a read short: the data were larger than allowed.
    """

    def __init__(self, fp: BinaryIO, budget: int | None, size: int | None = None) -> None:
        super().__init__()
        self._fp = fp
        # No budget: only the clamp to the stream's end (pydicom re-reads a little
        # where it searches for delimiters, so a budget of the file's size is too tight).
        self._left = budget if budget is not None else 1 << 62
        self._size = size if size is not None else _stream_size(fp)
        self.exhausted = False
        self.name = getattr(fp, "name", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(self._size - self._fp.tell(), 0)
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want > self._left:
            self.exhausted = True
            want = self._left
        data = read_exact(self._fp, want) if want > 0 else b""
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)


def _stream_size(fp: BinaryIO) -> int:
    at = fp.tell()
    size = fp.seek(0, io.SEEK_END)
    fp.seek(at)
    return size


def inflated_size_exceeds(fp: BinaryIO, start: int, cap: int) -> bool:
    """Whether the deflated data from ``start`` inflate to more than ``cap`` bytes.

    pydicom inflates a Deflated Explicit VR data set whole, in one call, whatever it
    grows to; this counts the output in blocks first (and keeps none of it), so a
    deflate "bomb" is refused before pydicom is handed the file. A stream that is
    not valid deflate data is not refused here: pydicom reports it.
    """
    fp.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pending = b""
    while True:
        if not pending:
            pending = fp.read(ZIP_READ_BLOCK)
            if not pending:
                return False
        try:
            total += len(inflater.decompress(pending, ZIP_READ_BLOCK))
        except zlib.error:
            return False
        if total > cap:
            return True
        pending = inflater.unconsumed_tail
        if inflater.eof:
            return False


def locate_native_pixels(fp: BinaryIO, transfer_syntax: str, fmt_bytes_needed: int,
                         file_size: int | None) -> int | None:
    """After ``dcmread(fp, stop_before_pixels=True)``: the file offset of native
    pixel bytes, or None when the data are encapsulated / not next / not native."""
    if transfer_syntax not in NATIVE_LE:
        return None
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    group, element = struct.unpack("<HH", head[:4])
    if (group, element) != (0x7FE0, 0x0010):
        return None
    vr = head[4:6]
    if transfer_syntax == str(ImplicitVRLittleEndian) or not is_vr(vr):
        # No VR where one belongs (some writers put the pixel data in implicit VR):
        # a 4-byte length, as the scan and dicomio.load read it.
        (length,) = struct.unpack("<I", head[4:8])
        offset = start + 8
    else:
        if vr in LONG_VRS:
            if len(head) < 12:
                return None
            (length,) = struct.unpack("<I", head[8:12])
            offset = start + 12
        else:
            (length,) = struct.unpack("<H", head[6:8])
            offset = start + 8
    if length == 0xFFFFFFFF:
        return None
    if length < fmt_bytes_needed or (file_size is not None
                                     and offset + fmt_bytes_needed > file_size):
        available = length if file_size is None else min(length, file_size - offset)
        raise DicomReadError(
            f"pixel data are truncated: {fmt_bytes_needed} bytes needed, {available} present "
            "(the file is incomplete or corrupt; copy it again from the source)")
    return offset


def read_native_frame(fp: BinaryIO, fmt: PixelFormat, frame: int) -> npt.NDArray[Any]:
    """One frame of native single-sample data as a (rows, columns) array."""
    if fmt.pixel_offset is None:
        raise DicomReadError("internal: no pixel offset for the native fast path")
    fp.seek(fmt.pixel_offset + frame * fmt.frame_bytes)
    out = np.empty((fmt.rows, fmt.columns), dtype=fmt.stored_dtype)
    got = fp.readinto(out.data.cast("B"))  # type: ignore[attr-defined]
    if got != fmt.frame_bytes:
        raise DicomReadError(
            f"pixel data are truncated in frame {frame + 1}: {fmt.frame_bytes} bytes needed, "
            f"{got} read")
    return normalise_stored(out, fmt)


def can_use_fast_path(fmt: PixelFormat) -> bool:
    return (fmt.pixel_offset is not None and fmt.samples_per_pixel == 1
            and fmt.bits_allocated in (8, 16, 32) and not fmt.is_colour)


def normalise_stored(arr: npt.NDArray[Any], fmt: PixelFormat) -> npt.NDArray[Any]:
    """Mask (unsigned) or sign-extend (signed) bits above BitsStored, in place if possible."""
    if not np.issubdtype(arr.dtype, np.integer):
        return arr
    width = arr.dtype.itemsize * 8
    bits = fmt.bits_stored
    if not bits or bits >= width:
        return arr
    if fmt.pixel_representation == 1:
        signed = arr.astype(np.dtype(f"i{arr.dtype.itemsize}"), copy=False)
        shift = width - bits
        return np.asarray((signed << shift) >> shift)
    mask = (1 << bits) - 1
    if arr.dtype.kind == "i":
        arr = arr.astype(np.dtype(f"u{arr.dtype.itemsize}"))
    np.bitwise_and(arr, mask, out=arr)
    return arr


# imagecodecs decoders (C, GIL released) per transfer syntax, tried in order.
IMAGECODECS_SYNTAXES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.57": ("jpeg8_decode", "ljpeg_decode", "jpegsof3_decode"),
    "1.2.840.10008.1.2.4.70": ("jpeg8_decode", "ljpeg_decode", "jpegsof3_decode"),
    "1.2.840.10008.1.2.4.50": ("jpeg8_decode",),
    "1.2.840.10008.1.2.4.51": ("jpeg8_decode",),
    "1.2.840.10008.1.2.4.80": ("jpegls_decode",),
    "1.2.840.10008.1.2.4.81": ("jpegls_decode",),
    "1.2.840.10008.1.2.4.90": ("jpeg2k_decode",),
    "1.2.840.10008.1.2.4.91": ("jpeg2k_decode",),
}


def can_use_imagecodecs(fmt: PixelFormat) -> bool:
    return (fmt.encapsulated_offset is not None and fmt.transfer_syntax in IMAGECODECS_SYNTAXES
            and fmt.samples_per_pixel == 1 and not fmt.is_colour
            and fmt.bits_allocated in (8, 16))


# --------------------------------------------------------------------------- encoded frames

RLE_SYNTAX = "1.2.840.10008.1.2.5"
JPEG_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                           "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                           "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                          "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
                          "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                          "1.2.840.10008.1.2.4.203"})
#: A PackBits replicate run turns 2 bytes into at most 128: no RLE segment can decode
#: to more than this many times its length (PS3.5 G.3.1).
RLE_MAX_RATIO = 64
_CHECKED_SYNTAXES = JPEG_SYNTAXES | J2K_SYNTAXES | {RLE_SYNTAX}
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "
# JPEG start-of-frame markers (ITU T.81 B.1.1.3; SOF55 is JPEG-LS, ITU T.87): C4 (DHT),
# C8 (JPG) and CC (DAC) share the range but are not frame headers.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
# Markers without a length field: TEM, RSTn, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def read_encoded_frames(fp: BinaryIO, fmt: PixelFormat) -> list[bytes]:
    """Every frame of an encapsulated file, read at ``fmt.encapsulated_offset`` and
    checked by :func:`check_encoded_frame` (DicomReadError on the first that fails)."""
    from pydicom.encaps import generate_frames

    if fmt.encapsulated_offset is None:
        raise DicomReadError("internal: no encapsulated offset")
    fp.seek(fmt.encapsulated_offset)
    data = fp.read()
    problem = fragments_problem(data)
    if problem is not None:
        raise DicomReadError(f"encapsulated pixel data cannot be decoded: {problem}")
    frames: list[bytes] = []
    for index, frame in enumerate(generate_frames(data, number_of_frames=fmt.number_of_frames)):
        if index >= fmt.number_of_frames:
            break  # fragments beyond the frames the header declares are not decoded
        check_encoded_frame(frame, index, fmt)
        frames.append(frame)
    return frames


def fragments_problem(data: bytes) -> str | None:
    """What is wrong with the item structure of encapsulated pixel data (the basic
    offset table item, fragment items, the sequence delimiter; PS3.5 A.4), or None.

    pydicom's fragment reader takes a short read at the end of the data as the
    fragment, and GDCM (through SimpleITK) trusts the declared length — it allocated
    gigabytes for a 64 × 64 RLE frame whose item claimed 6 KB at the end of a 3 KB
    file — so a fragment running past the end is refused, and so is a sequence
    delimiter whose length is not 0 (GDCM allocated 2 GB for a JPEG-LS file whose
    delimiter said 1; the scan does not index such a file either). Data that end right
    after a whole fragment, without the final delimiter, are read as pydicom reads
    them."""
    pos = 0
    end = len(data)
    while True:
        if pos == end and pos > 0:
            return None
        if pos + 8 > end:
            return "it ends inside an item header (the file is truncated)"
        group, element, length = struct.unpack_from("<HHI", data, pos)
        if (group, element) == (0xFFFE, 0xE0DD):
            return None if length == 0 else (f"its sequence delimiter has length {length}, "
                                             "not 0")
        if (group, element) != (0xFFFE, 0xE000):
            return f"an item was expected at byte {pos}, found ({group:04X},{element:04X})"
        if length == 0xFFFFFFFF or pos + 8 + length > end:
            return (f"a fragment of {length} bytes at byte {pos} runs past the end of the "
                    "data (the file is truncated)")
        pos += 8 + length


def check_dataset_frames(ds: Dataset, fmt: PixelFormat) -> None:
    """:func:`check_encoded_frame` on every frame of a data set's encapsulated pixel
    data, framed as pydicom's decoders will frame it (extended offsets included)."""
    from pydicom.encaps import generate_frames

    if fmt.transfer_syntax not in _CHECKED_SYNTAXES:
        return
    data = element_value(ds, "PixelData")
    if not isinstance(data, bytes):
        return  # pydicom's decoders report it
    offsets = element_value(ds, "ExtendedOffsetTable")
    lengths = element_value(ds, "ExtendedOffsetTableLengths")
    extended = (offsets, lengths) if isinstance(offsets, bytes) and isinstance(
        lengths, bytes) else None
    try:
        frames = generate_frames(data, number_of_frames=fmt.number_of_frames,
                                 extended_offsets=extended)
        for index, frame in enumerate(frames):
            if index >= fmt.number_of_frames:
                break
            check_encoded_frame(frame, index, fmt)
    except DicomReadError:
        raise
    except Exception as exc:  # framing pydicom cannot read: its decoders will say so
        log.debug("encapsulated frames not checked: %s", exc)


def check_encoded_frame(frame: bytes, index: int, fmt: PixelFormat) -> None:
    """Refuse a frame no decoder may be handed (see the module doc); DicomReadError."""
    ts = fmt.transfer_syntax
    problem: str | None = None
    pixels: tuple[int, int, int] | None = None  # width, height, components
    if ts == RLE_SYNTAX:
        problem = _rle_problem(frame, fmt)
    elif ts in JPEG_SYNTAXES:
        pixels = _jpeg_frame_size(frame)
    elif ts in J2K_SYNTAXES:
        problem = _jp2_box_problem(frame)
        if problem is None:
            pixels = _j2k_frame_size(frame)
    if problem is None and pixels is not None:
        width, height, components = pixels
        declared = fmt.rows * fmt.columns * fmt.samples_per_pixel
        if width * height * components > declared:
            problem = (f"its codestream is {width}×{height} with {components} component(s), "
                       f"but the header says {fmt.columns}×{fmt.rows} with "
                       f"{fmt.samples_per_pixel}")
    if problem is not None:
        raise DicomReadError(f"{UID(ts).name} frame {index + 1} cannot be decoded: {problem}")


def frame_header_matches(frame: bytes, fmt: PixelFormat) -> bool:
    """Whether a checked frame's own header says exactly what the DICOM header says
    (columns, rows, samples), as GDCM needs: it dereferenced a JPEG-LS frame header of
    width 0 (legal only with an LSE segment giving the width) and crashed the process,
    where every other decoder raised. RLE frames passed :func:`check_encoded_frame`."""
    ts = fmt.transfer_syntax
    declared = (fmt.columns, fmt.rows, fmt.samples_per_pixel)
    if ts == RLE_SYNTAX:
        return True
    if ts in JPEG_SYNTAXES:
        return _jpeg_frame_size(frame) == declared
    if ts in J2K_SYNTAXES:
        return _jp2_box_problem(frame) is None and _j2k_frame_size(frame) == declared
    return False


def _rle_problem(frame: bytes, fmt: PixelFormat) -> str | None:
    """What is wrong with an RLE frame's header (PS3.5 G.5), or None."""
    if len(frame) < 64:
        return f"the RLE header needs 64 bytes, the frame has {len(frame)}"
    count, *offsets = struct.unpack_from("<16I", frame)
    expected = fmt.samples_per_pixel * (max(fmt.bits_allocated, 8) // 8)
    if count != expected:
        return f"{count} RLE segments, the image needs {expected}"
    used = [*offsets[:count], len(frame)]
    if used[0] != 64 or any(b <= a for a, b in pairwise(used)):
        return (f"RLE segment offsets {offsets[:count]} do not lie in order within the "
                f"{len(frame)}-byte frame")
    plane = fmt.rows * fmt.columns
    shortest = min(b - a for a, b in pairwise(used))
    if shortest * RLE_MAX_RATIO < plane:
        return (f"an RLE segment of {shortest} bytes cannot decode to the {plane} bytes of "
                "one plane")
    return None


def _jpeg_frame_size(frame: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) of a JPEG or JPEG-LS frame header, or None when there
    is none to read (no SOI: every decoder refuses it before allocating anything).

    Walks the marker segments from SOI to the first SOFn, skipping garbage between
    segments the way libjpeg does; a height of 0 (defined later by DNL) or a width of
    0 (JPEG-LS: defined by an LSE segment) is not checked."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    pos = 2
    end = len(frame)
    while pos + 4 <= end:
        if frame[pos] != 0xFF:
            pos = frame.find(b"\xff", pos)  # extraneous bytes before a marker
            if pos < 0:
                return None
            continue
        marker = frame[pos + 1]
        if marker == 0xFF or marker == 0x00:  # fill byte / stuffed zero
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        if marker in _JPEG_SOF:
            if pos + 10 > end:
                return None
            height, width = struct.unpack_from(">HH", frame, pos + 5)
            components = frame[pos + 9]
            if height == 0 or width == 0:
                return None
            return width, height, components
        pos += 2 + max(length, 2)
    return None


def _jp2_box_problem(frame: bytes) -> str | None:
    """Why pydicom's JP2 box walk (``pixels.utils.get_j2k_parameters``, which every
    pydicom J2K decoder runs first) would never end on this frame, or None.

    It adds each box length to its offset and stops at the 'jp2c' box or the end, so
    a box of length 0 — or bytes that read as one — that is not 'jp2c' holds it in
    place for ever. The walk is replayed exactly, with that one case refused (by the
    standard a length of 0 means "to the end of the file", so no codestream follows)."""
    if not frame.startswith(_JP2_SIGNATURE):
        return None
    offset = 12
    while offset < len(frame):
        length = int.from_bytes(frame[offset:offset + 4], byteorder="big")
        if frame[offset + 4:offset + 8] == b"jp2c":
            return None
        if length == 0:
            return f"a JP2 box of length 0 at byte {offset}, before the codestream box"
        offset += length
    return None


def _j2k_frame_size(frame: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from the SIZ segment of a JPEG 2000 codestream,
    bare or in a JP2 'jp2c' box, or None when there is none (decoders refuse it)."""
    start = 0
    if frame.startswith(_JP2_SIGNATURE):
        start = -1
        offset = 12
        while offset + 8 <= len(frame):
            length = int.from_bytes(frame[offset:offset + 4], byteorder="big")
            header = 8
            if length == 1 and offset + 16 <= len(frame):  # XLBox: a 64-bit length
                length = int.from_bytes(frame[offset + 8:offset + 16], byteorder="big")
                header = 16
            if frame[offset + 4:offset + 8] == b"jp2c":
                start = offset + header
                break
            if length < header:
                return None
            offset += length
        if start < 0:
            return None
    # SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
    if frame[start:start + 4] != b"\xff\x4f\xff\x51" or start + 42 > len(frame):
        return None
    x, y, x0, y0 = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    return max(x - x0, 0), max(y - y0, 0), components


def decode_frames_imagecodecs(encoded: Sequence[bytes], fmt: PixelFormat,
                              indices: list[int]) -> list[npt.NDArray[Any]]:
    """Stored values of the given frames of an encapsulated greyscale file, decoded by
    imagecodecs straight from the checked frames of :func:`read_encoded_frames`."""
    import imagecodecs

    out: list[npt.NDArray[Any]] = []
    for index in indices:
        if not 0 <= index < len(encoded):
            raise DicomReadError(f"frame {index + 1} is missing from the encapsulated data")
        errors = []
        arr: npt.NDArray[Any] | None = None
        for name in IMAGECODECS_SYNTAXES[fmt.transfer_syntax]:
            func = getattr(imagecodecs, name, None)
            if func is None:
                continue
            try:
                arr = np.asarray(call_decoder(name, func, encoded[index]))
                break
            except DecoderFailed as exc:  # codec errors have codec-specific types
                errors.append(str(exc))
        if arr is None:
            raise DicomReadError("imagecodecs could not decode: " + "; ".join(errors))
        if arr.shape != (fmt.rows, fmt.columns):
            raise DicomReadError(f"imagecodecs returned shape {arr.shape}")
        want = fmt.stored_dtype
        arr = arr.view(want) if arr.dtype.itemsize == want.itemsize else arr.astype(want)
        out.append(normalise_stored(np.array(arr, copy=True), fmt))
    return out


# Compressed syntaxes SimpleITK's GDCM decodes while releasing the GIL (parallel threads).
SITK_SYNTAXES = {
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.5",  # RLE Lossless
}


def can_use_sitk(fmt: PixelFormat, slope: float, intercept: float, is_file: bool) -> bool:
    """SimpleITK (GDCM) returns rescaled values; it is used only where they map back to
    stored values exactly: one greyscale frame, MONOCHROME2, slope 1, integer intercept."""
    return (is_file and fmt.transfer_syntax in SITK_SYNTAXES and fmt.number_of_frames == 1
            and fmt.samples_per_pixel == 1 and fmt.photometric == "MONOCHROME2"
            and fmt.bits_allocated in (8, 16) and slope == 1.0
            and float(intercept).is_integer())


def decode_file_sitk(path: str, fmt: PixelFormat, intercept: float) -> npt.NDArray[Any]:
    """Stored values of a single-frame compressed file via SimpleITK's GDCM (GIL released)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(path)
    image = call_decoder("SimpleITK", reader.Execute)
    arr = sitk.GetArrayViewFromImage(image)
    if arr.shape[-2:] != (fmt.rows, fmt.columns) or arr.size != fmt.rows * fmt.columns:
        raise DicomReadError(f"SimpleITK returned shape {arr.shape}")
    flat = np.asarray(arr).reshape(fmt.rows, fmt.columns)
    stored: npt.NDArray[Any] = flat.astype(np.int64) - int(intercept)
    lo, hi = fmt.stored_range()
    if stored.size and (stored.min() < lo or stored.max() > hi):
        raise DicomReadError("SimpleITK values do not map back to stored values")
    return np.asarray(stored.astype(fmt.stored_dtype))


def plugin_order(transfer_syntax: str) -> list[str]:
    """Available decoding plugins for a transfer syntax, in preference order
    (empty when the syntax needs none or pydicom knows no decoder)."""
    from pydicom.pixels.decoders.base import get_decoder

    try:
        decoder = get_decoder(UID(transfer_syntax))
    except Exception:  # pydicom raises NotImplementedError/ValueError for unknown syntaxes
        return []
    available = [p for p in decoder.available_plugins if p not in EXCLUDED_PLUGINS]
    ordered = [p for p in PLUGIN_PREFERENCE if p in available]
    return ordered + [p for p in available if p not in ordered]


def decode_dataset(ds: Dataset, fmt: PixelFormat, where: str) -> npt.NDArray[Any]:
    """All frames of a full dataset as stored values: (frames, rows, cols) for
    greyscale, (frames, rows, cols, 3) RGB for colour. Tries each plugin, after
    :func:`check_dataset_frames` (DicomReadError when a frame must not be decoded)."""
    from pydicom.pixels.utils import pixel_array

    ts = fmt.transfer_syntax
    check_dataset_frames(ds, fmt)
    plugins = plugin_order(ts)
    errors: list[str] = []
    arr: npt.NDArray[Any] | None = None
    for plugin in plugins or [""]:
        try:
            if plugin:
                arr = call_decoder(plugin, pixel_array, ds, decoding_plugin=plugin)
            else:
                arr = call_decoder("default", pixel_array, ds)
            break
        except DecoderFailed as exc:  # each plugin fails in its own way; try the next
            errors.append(str(exc))
            log.debug("decoder %s failed on %s: %s", plugin, where, exc)
    if arr is None:
        name = UID(ts).name if ts else "unknown"
        tried = "; ".join(errors) if errors else "no decoder is installed for it"
        raise DicomReadError(
            f"no available decoder could read transfer syntax {name} ({ts}): {tried}")
    if fmt.photometric.startswith("PALETTE"):
        from pydicom.pixels.processing import apply_color_lut

        arr = call_decoder("palette", apply_color_lut, arr, ds)
    frames = fmt.number_of_frames
    colour = arr.ndim >= 3 and arr.shape[-1] in (3, 4) and fmt.is_colour
    if colour:
        if arr.ndim == 3:
            arr = arr[np.newaxis]
    elif arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape[0] != frames and frames > 0:
        raise DicomReadError(f"decoder returned {arr.shape[0]} frames, header says {frames}")
    if not colour:
        arr = normalise_stored(np.asarray(arr), fmt)
    return np.asarray(arr)


def luminance(rgb: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """ITU-R BT.601 luma of RGB samples (the last axis)."""
    rgb = rgb[..., :3].astype(np.float32)
    return np.asarray(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2],
                      dtype=np.float32)


# --------------------------------------------------------------------------- zip members

#: The most bytes one zip member may inflate to. Counted on the bytes as they inflate,
#: never taken from the archive's size fields (a crafted zip can lie there), so a "zip
#: bomb" member costs at most this much inflating (about a second) and is refused. Real
#: objects are far smaller: a 1,000-frame 512 x 512 16-bit enhanced CT is 512 MiB.
ZIP_MEMBER_MAX_BYTES = 1 << 30
#: Inflated bytes of one member kept in memory: the head the scan parses (the rest is
#: only counted), and the part of a loaded member held in memory before the spool moves
#: to an anonymous temporary file (deleted on close, never next to the sources).
ZIP_SPOOL_MEMORY = 8 << 20
#: Bytes kept from the end of a member for the scan (the end of encapsulated pixel data).
ZIP_TAIL_BYTES = 4096
#: Bytes inflated per read: zlib's output per call is bounded by it.
ZIP_READ_BLOCK = 256 * 1024
#: The most members, and the largest central directory, an archive may have: zipfile
#: reads the whole directory into memory (~0.5 KB of objects per member) on opening.
ZIP_MAX_MEMBERS = 100_000
ZIP_MAX_DIRECTORY_BYTES = 32 << 20
# Only stored and deflated members are read: zipfile inflates bzip2 and LZMA data a
# whole compressed chunk at a time, with no bound on the output of one call.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ZIP_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
               NotImplementedError, RuntimeError, zlib.error, struct.error)


class ZipMemberError(DicomReadError):
    """A zip member that is not read; the message is the reason shown to the user."""


def zip_directory_problem(path: Path | str) -> str | None:
    """Why the archive's central directory is not read (too many members, a directory
    larger than the file or than :data:`ZIP_MAX_DIRECTORY_BYTES`), or None."""
    with open(path, "rb") as fp:
        size = fp.seek(0, 2)
        back = min(size, 22 + 65535)
        fp.seek(size - back)
        tail = fp.read(back)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None  # zipfile reports it
        entries, directory = struct.unpack_from("<HI", tail, at + 10)
        if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 \
                and tail[at - 20:at - 16] == b"PK\x06\x07":
            (offset,) = struct.unpack_from("<Q", tail, at - 20 + 8)
            if offset + 56 <= size:
                fp.seek(offset)
                record = fp.read(56)
                if record[:4] == b"PK\x06\x06":
                    entries, directory = struct.unpack_from("<QQ", record, 32)
    if entries > ZIP_MAX_MEMBERS:
        return (f"zip archive with {entries} members: more than {ZIP_MAX_MEMBERS} are not "
                "read (split the archive)")
    if directory > min(size, ZIP_MAX_DIRECTORY_BYTES):
        return (f"corrupt zip archive: its directory claims {directory} bytes "
                f"(file {size} bytes, limit {ZIP_MAX_DIRECTORY_BYTES})")
    return None


def zip_member_blocks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The inflated bytes of one member, in blocks of at most :data:`ZIP_READ_BLOCK`.

    Raises :class:`ZipMemberError` when the member is encrypted, uses a method whose
    output cannot be bounded, inflates past :data:`ZIP_MEMBER_MAX_BYTES`, fails its
    CRC, or inflates to another size than the archive says.
    """
    cap = ZIP_MEMBER_MAX_BYTES
    if info.flag_bits & 0x1:
        raise ZipMemberError("encrypted zip member: not read (no password)")
    if info.compress_type not in _ZIP_METHODS:
        name = _ZIP_METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise ZipMemberError(f"zip member compressed with {name}: not read (Lucida reads "
                             "stored or deflated members)")
    if info.file_size > cap:  # refused before inflating anything; a smaller claim is
        # checked against the bytes that really come out (below)
        raise ZipMemberError(f"zip member of {info.file_size} bytes: more than the "
                             f"{cap}-byte limit for one member")
    total = 0
    try:
        with archive.open(info) as stream:
            while True:
                block = stream.read(ZIP_READ_BLOCK)
                if not block:
                    break
                total += len(block)
                if total > cap:  # zipfile stops at the declared size; this is a backstop
                    raise ZipMemberError(f"zip member inflates to more than the {cap}-byte "
                                         "limit for one member")
                yield block
    except ZipMemberError:
        raise
    except _ZIP_ERRORS as exc:
        raise ZipMemberError(f"unreadable zip member: {type(exc).__name__}: {exc}") from exc
    if total != info.file_size:
        raise ZipMemberError(f"corrupt zip member: it inflates to {total} bytes, the archive "
                             f"says {info.file_size}")


@dataclass(frozen=True)
class ZipMemberHead:
    """What the scan keeps of one member: its first and last bytes and its real size."""

    head: bytearray  # kept as built: a bytes() copy would double the peak
    tail: bytes
    size: int


def read_zip_member_head(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                         check_start: Callable[[bytes], None] | None = None) -> ZipMemberHead:
    """Inflate a member once, keeping its first :data:`ZIP_SPOOL_MEMORY` bytes and its
    last :data:`ZIP_TAIL_BYTES`; the bytes between are counted, not kept, so neither
    memory nor disk grow with the member. Errors as :func:`zip_member_blocks`;
    ``check_start`` as in :func:`spool_zip_member`."""
    head = bytearray()
    tail = b""
    size = 0
    for block in zip_member_blocks(archive, info):
        if not size and check_start is not None:
            check_start(block)
        size += len(block)
        room = ZIP_SPOOL_MEMORY - len(head)
        if room > 0:
            head += block[:room]
        tail = (tail + block)[-ZIP_TAIL_BYTES:]
    return ZipMemberHead(head, tail, size)


def spool_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                     check_start: Callable[[bytes], None] | None = None) -> BinaryIO:
    """One member inflated once into a seekable spool (see :data:`ZIP_SPOOL_MEMORY`).

    ``check_start`` sees the first block before the rest is inflated and may raise to
    stop early (e.g. a member that is not DICOM is not inflated to its end).
    """
    spool = tempfile.SpooledTemporaryFile(max_size=ZIP_SPOOL_MEMORY)
    try:
        first = True
        for block in zip_member_blocks(archive, info):
            if first and check_start is not None:
                check_start(block)
            first = False
            spool.write(block)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return cast(BinaryIO, spool)


def open_zip_member(path: Path | str, member: str) -> BinaryIO:
    """A zip member's bytes as a seekable stream, within the caps above (for
    :meth:`dicomio.source.DicomSource.open`). Raises KeyError for a missing member,
    :class:`ZipMemberError` for one that is not read."""
    try:
        problem = zip_directory_problem(path)
        if problem is not None:
            raise ZipMemberError(problem)
        with zipfile.ZipFile(path) as archive:
            return spool_zip_member(archive, archive.getinfo(member))
    except (ZipMemberError, KeyError):
        raise
    except _ZIP_ERRORS as exc:
        raise ZipMemberError(f"unreadable zip archive: {type(exc).__name__}: {exc}") from exc
