"""Hostile files never end a load: each becomes that file's reason, and the rest loads.

The rule (docs/ARCHITECTURE.md, "Hostile input"): every failure of one file — any
exception, MemoryError and RecursionError included — is that file's skip reason.
For the loader that means a DicomReadError (a LucidaError) naming the file and why,
never another exception type, a hang, or memory far beyond what the file holds.

Every file here is written by pydicom in tmp_path and then damaged on purpose the way
the import-path fuzzer's findings were: an unknown VR where pydicom converts a value
lazily, a wrong byte length, sequences nested thousands of levels inside a
defined-length one, a Rust panic in a decoder, lengths claiming 4 GB, an encapsulated
fragment that runs past the end of the file (GDCM then allocates gigabytes), a JP2 box
of length 0 (pydicom's box walk never ends), codestreams larger than the header,
impossible pixel descriptions and rescale values, and a deflate bomb.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from core.errors import DicomReadError, LucidaError
from core.volume import Volume
from dicomio.load import plan_volume, read_volume

REPO = Path(__file__).resolve().parents[2]
UID_ROOT = "1.2.826.0.1.3680043.10.1234.88"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
MiB = 1 << 20


# --------------------------------------------------------------------------- writing


def _slice(index: int = 1, *, syntax: str = ExplicitVRLittleEndian, rows: int = 4,
           columns: int = 4, sop_class: str = CT_IMAGE) -> Dataset:
    """A CT slice at z = 2.5 × index with every attribute the loader reads."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = f"{UID_ROOT}.1.{index}"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Manufacturer = "LUCIDA TEST"
    ds.PatientName = "HOSTILE^TEST"
    ds.PatientID = "HOSTILE"
    ds.StudyInstanceUID = f"{UID_ROOT}.2"
    ds.SeriesInstanceUID = f"{UID_ROOT}.3"
    ds.FrameOfReferenceUID = f"{UID_ROOT}.4"
    ds.InstanceNumber = index
    ds.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    return ds


def _pixels(ds: Dataset, frames: int = 1) -> np.ndarray[Any, np.dtype[np.uint16]]:
    n = ds.Rows * ds.Columns * frames
    return (np.arange(n, dtype=np.uint16) * 7 % 1000 + 1000).reshape(frames, ds.Rows,
                                                                     ds.Columns)


def _native(ds: Dataset) -> Dataset:
    ds.PixelData = _pixels(ds).tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _encapsulated(ds: Dataset, frames: list[bytes]) -> Dataset:
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


def _rle(ds: Dataset) -> Dataset:
    """Real RLE Lossless frames, encoded by pydicom."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr = _pixels(ds, frames)
    ds.compress(RLELossless, arr if frames > 1 else arr[0], encoding_plugin="pydicom")
    return ds


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _series(folder: Path, bad: bytes, n: int = 3, at: int = 1) -> list[Path]:
    """``n`` good native slices with ``bad`` in place of slice ``at`` (0-based).

    The first file of a series is read by pydicom, the others by the lean reader of
    dicomio.fastheader, which keeps raw bytes and never asks pydicom to convert them;
    ``at=0`` puts the damaged file where pydicom reads it."""
    paths = [_write(folder / f"IM{i}.dcm", _bytes(_native(_slice(i))))
             for i in range(1, n + 1)]
    _write(paths[at], bad)
    return paths


def _replace_vr(data: bytes, tag: int, old: bytes, new: bytes) -> bytes:
    """``data`` with the explicit VR of ``tag`` changed (its length field kept)."""
    key = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + old
    at = data.find(key)
    assert at >= 0 and data.find(key, at + 1) < 0, f"{tag:08X} {old!r} not found once"
    return data[:at + 4] + new + data[at + 6:]


def _insert_before_pixels(data: bytes, element: bytes) -> bytes:
    at = data.rindex(b"\xe0\x7f\x10\x00")
    return data[:at] + element + data[at:]


def _left_out_warning(volume: Volume) -> str:
    texts = [w.message for w in volume.warnings if "left out" in w.message
             or "could not be decoded" in w.message]
    assert texts, [w.message for w in volume.warnings]
    return texts[0]


def _refusal(paths: list[Path]) -> str:
    with pytest.raises(DicomReadError) as caught:
        read_volume(paths)
    return str(caught.value)


# --------------------------------------------------------------------------- 1. lazy values


def test_unknown_vr_in_a_shown_value_is_absent(tmp_path: Path) -> None:
    """Manufacturer with VR 'LL': pydicom raises NotImplementedError on first access
    (found by the fuzzer escaping from load.py _text). It is only shown: the image
    loads and the value is absent."""
    data = _replace_vr(_bytes(_native(_slice())), 0x00080070, b"LO", b"LL")
    volume = read_volume([_write(tmp_path / "a.dcm", data)])
    assert volume.shape == (1, 4, 4)
    assert volume.metadata["manufacturer"] == ""


@pytest.mark.parametrize(("tag", "vr", "keyword"), [
    (0x00280101, b"US", "BitsStored"),
    (0x00200032, b"DS", "ImagePositionPatient"),
    (0x00280030, b"DS", "PixelSpacing"),
    (0x00080060, b"CS", "Modality"),
])
def test_unknown_vr_in_an_image_value_refuses_the_file_naming_it(
        tmp_path: Path, tag: int, vr: bytes, keyword: str) -> None:
    """An element the image depends on that pydicom cannot convert refuses that file
    with the element named; the rest of the series loads with a warning."""
    bad = _replace_vr(_bytes(_native(_slice(1))), tag, vr, vr[:1] + vr[:1])
    assert keyword in _refusal([_write(tmp_path / "one" / "a.dcm", bad)])
    volume = read_volume(_series(tmp_path / "series", bad, at=0))
    assert volume.metadata["number_of_instances"] == 2
    assert keyword in _left_out_warning(volume)


def test_a_value_of_the_wrong_byte_length_refuses_the_file(tmp_path: Path) -> None:
    """Rows (US) with a 3-byte value: pydicom's BytesLengthException derives from
    Exception only, so the old ``except (AttributeError, TypeError, ValueError)``
    let it through."""
    data = _bytes(_native(_slice()))
    key = b"\x28\x00\x10\x00US\x02\x00"
    at = data.index(key)
    bad = data[:at] + b"\x28\x00\x10\x00US\x03\x00" + data[at + 8:at + 10] + b"\x00" \
        + data[at + 10:]
    reason = _refusal([_write(tmp_path / "a.dcm", bad)])
    assert "Rows" in reason and "BytesLengthException" in reason


def test_unknown_vr_in_file_meta_refuses_the_file(tmp_path: Path) -> None:
    """No SOPClassUID in the data set and MediaStorageSOPClassUID with VR 'UU' (the
    fuzzer's load.py _text escape through the file meta)."""
    ds = _native(_slice())
    del ds.SOPClassUID
    bad = _replace_vr(_bytes(ds), 0x00020002, b"UI", b"UU")
    assert "MediaStorageSOPClassUID" in _refusal([_write(tmp_path / "a.dcm", bad)])


def _enhanced(frames: int = 3) -> Dataset:
    ds = _slice(sop_class=ENHANCED_CT)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                    "SliceThickness", "RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    ds.NumberOfFrames = frames
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    measures.SliceThickness = 2.5
    rescale = Dataset()
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for f in range(frames):
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 2.5 * f]
        item = Dataset()
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = _pixels(ds, frames).tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def test_unknown_vr_inside_functional_groups_refuses_naming_it(tmp_path: Path) -> None:
    """PixelSpacing inside the shared PixelMeasuresSequence with VR 'DD': pydicom
    converts it only when multiframe.py reads it."""
    good = _write(tmp_path / "good.dcm", _bytes(_enhanced()))
    assert read_volume([good]).shape == (3, 4, 4)
    bad = _replace_vr(_bytes(_enhanced()), 0x00280030, b"DS", b"DD")
    assert "PixelSpacing" in _refusal([_write(tmp_path / "bad.dcm", bad)])


def _nested_undefined(depth: int) -> bytes:
    """(0040,A730) ContentSequence nested ``depth`` levels, all of undefined length."""
    opening = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return opening * depth + closing * depth


def test_deep_nesting_inside_a_defined_length_sequence_is_a_refusal(tmp_path: Path) -> None:
    """A defined-length PerFrameFunctionalGroupsSequence whose item holds 5,000 levels of
    undefined-length nesting: the header walk skips the defined-length value, pydicom
    keeps it raw, and parses it — recursively — only when the loader reads it. That
    RecursionError is this file's refusal, naming the element; the series loads."""
    inner = _nested_undefined(5000)
    item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
    element = b"\x00\x52\x30\x92SQ\x00\x00" + struct.pack("<I", len(item)) + item
    bad = _insert_before_pixels(_bytes(_native(_slice(1))), element)
    assert "PerFrameFunctionalGroupsSequence" in _refusal([_write(tmp_path / "a.dcm", bad)])
    volume = read_volume(_series(tmp_path / "series", bad, at=0))
    assert "nested too deeply" in _left_out_warning(volume)


def test_deep_undefined_nesting_is_refused_at_the_header_cap(tmp_path: Path) -> None:
    """5,000 levels of undefined-length nesting before the pixel data: refused by the
    header walk's cap with the scan's reason, before pydicom recurses."""
    bad = _insert_before_pixels(_bytes(_native(_slice())), _nested_undefined(5000))
    assert "nested more than 64 levels" in _refusal([_write(tmp_path / "a.dcm", bad)])


# --------------------------------------------------------------------------- 2. decoder panic


def _rle_panic(index: int = 1) -> bytes:
    """A 64 × 64 16-bit RLE frame whose two segments each decode past the 4,096 bytes of
    a plane (33 replicate runs of 128), the second ending in a run header without its
    value byte: pylibjpeg-rle panics (Rust index out of bounds), which reaches Python as
    pyo3's PanicException, a BaseException. RescaleSlope 2 keeps SimpleITK out, so
    pydicom's plugins are what decode it."""
    ds = _slice(index, syntax=RLELossless, rows=64, columns=64)
    ds.RescaleSlope = 2
    runs = b"\x81\x00" * 33
    header = struct.pack("<16I", 2, 64, 64 + len(runs), *([0] * 13))
    return _bytes(_encapsulated(ds, [header + runs + runs + b"\x81"]))


def test_a_decoder_panic_is_that_decoders_failure(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The panic is pylibjpeg's failure on this frame: pydicom's own RLE decoder, tried
    next, reads it (it ignores the excess), in the calling thread and in the pool."""
    caplog.set_level(logging.DEBUG, logger="dicomio.decode")
    volume = read_volume([_write(tmp_path / "one" / "a.dcm", _rle_panic())])
    assert volume.shape == (1, 64, 64)
    assert any("PanicException" in r.getMessage() for r in caplog.records)
    paths = []
    for i in range(1, 4):
        ds = _slice(i, syntax=RLELossless, rows=64, columns=64)
        ds.RescaleSlope = 2
        paths.append(_write(tmp_path / "series" / f"IM{i}.dcm", _bytes(_rle(ds))))
    _write(paths[1], _rle_panic(2))
    for workers in (1, 2):  # in the calling thread and in the decode pool
        caplog.clear()
        assert read_volume(paths, workers=workers).shape == (3, 64, 64)
        assert any("PanicException" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- 3. memory


def _traced_peak(paths: list[Path]) -> tuple[Volume | str, int]:
    """read_volume's result (or refusal) and the peak of Python allocations meanwhile:
    ``read(n)`` allocates n bytes before it reads, touched or not."""
    tracemalloc.start()
    try:
        result: Volume | str = read_volume(paths)
    except LucidaError as exc:
        result = str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


def test_a_4_gb_length_in_the_header_is_truncation_not_an_allocation(tmp_path: Path) -> None:
    """A private OB element before the pixel data claiming 0xFFFFFFF0 bytes in a file of
    a few hundred: refused as truncated (the scan's reason), nothing allocated."""
    element = b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16
    bad = _insert_before_pixels(_bytes(_native(_slice())), element)
    result, peak = _traced_peak([_write(tmp_path / "a.dcm", bad)])
    assert isinstance(result, str) and "truncated" in result
    assert peak < 64 * MiB


def test_a_4_gb_length_after_the_pixel_data_is_not_allocated(tmp_path: Path) -> None:
    """An element after encapsulated pixel data claiming 0xFFFFFFF0 bytes: the header
    read stops at the pixel data, but pydicom reads the whole file for its decoders.
    Through the bounded reader it is a short value, and the image decodes."""
    ds = _rle(_slice())
    ds.RescaleSlope = 2  # pydicom's plugins decode it (SimpleITK needs slope 1)
    trailing = b"\xfc\xff\xfc\xffOB\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16
    path = _write(tmp_path / "a.dcm", _bytes(ds) + trailing)
    result, peak = _traced_peak([path])
    assert isinstance(result, Volume), result
    assert peak < 64 * MiB


def _fragment_past_end() -> bytes:
    """A 64 × 64 RLE file whose one fragment item claims 6,108 bytes where 2,755 are
    left before the sequence delimiter (as the fuzzer found it, from a damaged
    MR_small_RLE): GDCM trusts the item length and allocates some 3 GB."""
    ds = _slice(syntax=RLELossless, rows=64, columns=64)
    body = bytes((i * 37 + 11) % 251 for i in range(2755 - 64))
    frame = struct.pack("<16I", 2, 64, 1948, *([0] * 13)) + body
    data = _bytes(_encapsulated(ds, [frame]))
    at = data.rindex(b"\xfe\xff\x00\xe0")
    return data[:at + 4] + struct.pack("<I", 6108) + data[at + 8:]


def _load_peak(path: Path) -> dict[str, Any]:
    """read_volume in a fresh interpreter: its refusal and its peak RSS in MiB."""
    code = textwrap.dedent("""
        import json, resource, sys
        from pathlib import Path
        from core.errors import LucidaError
        from dicomio.load import read_volume
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_volume([Path(sys.argv[1])])
            reason = ""
        except LucidaError as exc:
            reason = str(exc)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"reason": reason, "grew_mib": (peak - before) / 1024}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_a_fragment_past_the_end_is_refused_before_any_decoder(tmp_path: Path) -> None:
    result = _load_peak(_write(tmp_path / "a.dcm", _fragment_past_end()))
    assert "runs past the end" in result["reason"]
    assert result["grew_mib"] < 256, result


def test_deflate_bomb_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    """A deflated 4 × 4 image followed by 200 MiB of zeros (a few hundred KB deflated):
    pydicom inflates a deflated data set whole, so the loader reads the header from a
    bounded prefix and refuses to hand pydicom more than the image describes."""
    ds = _native(_slice(syntax=DeflatedExplicitVRLittleEndian))
    ds.add_new(0xFFFCFFFC, "OB", bytes(200 * MiB))  # DataSetTrailingPadding
    path = _write(tmp_path / "a.dcm", _bytes(ds))
    del ds
    assert path.stat().st_size < 4 * MiB
    result, peak = _traced_peak([path])
    assert isinstance(result, str) and "inflates to more than" in result
    assert peak < 100 * MiB
    small = _write(tmp_path / "small.dcm",
                   _bytes(_native(_slice(syntax=DeflatedExplicitVRLittleEndian))))
    assert read_volume([small]).shape == (1, 4, 4)


# --------------------------------------------------------------------------- 4. codestreams


@pytest.mark.timeout(60)
def test_jp2_box_of_length_zero_does_not_hang(tmp_path: Path) -> None:
    """A JPEG 2000 frame with the JP2 signature box and then a box of length 0: pydicom's
    get_j2k_parameters adds each box length to its offset and never moves on. The
    frame is refused before any decoder; the series loads without it."""
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    frame = signature + b"\x00\x00\x00\x00ftyp" + b"\x00" * 8
    bad = _bytes(_encapsulated(_slice(2, syntax=JPEG2000Lossless), [frame]))
    assert "length 0" in _refusal([_write(tmp_path / "one" / "a.dcm", bad)])
    volume = read_volume(_series(tmp_path / "series", bad))
    assert "length 0" in _left_out_warning(volume)


def _siz_codestream(width: int, height: int, components: int = 1) -> bytes:
    """A JPEG 2000 codestream header: SOC, SIZ (no tiles of data follow)."""
    siz = struct.pack(">HHIIIIIIIIH", 38 + 3 * components, 0, width, height, 0, 0,
                      width, height, 0, 0, components) + b"\x0f\x01\x01" * components
    return b"\xff\x4f\xff\x51" + siz + b"\xff\xd9"


def test_a_codestream_larger_than_the_header_is_refused(tmp_path: Path) -> None:
    """A 4 × 4 image whose J2K codestream declares 30000 × 30000 (decoders allocate what
    the codestream says) is refused before any decoder, naming both sizes."""
    bad = _bytes(_encapsulated(_slice(syntax=JPEG2000Lossless), [_siz_codestream(30000,
                                                                                 30000)]))
    reason = _refusal([_write(tmp_path / "a.dcm", bad)])
    assert "30000×30000" in reason and "4×4" in reason


def test_rle_header_that_cannot_match_the_image_is_refused(tmp_path: Path) -> None:
    """RLE segment offsets out of order, or a segment too short to decode to one plane
    (a replicate run makes at most 128 bytes of 2), are refused before any decoder."""
    ds = _slice(syntax=RLELossless, rows=64, columns=64)
    runs = b"\x81\x00" * 32
    backwards = struct.pack("<16I", 2, 64, 40, *([0] * 13)) + runs + runs
    reason = _refusal([_write(tmp_path / "a.dcm", _bytes(_encapsulated(ds, [backwards])))])
    assert "RLE segment offsets" in reason
    ds = _slice(syntax=RLELossless, rows=64, columns=64)
    short = struct.pack("<16I", 2, 64, 64 + 8, *([0] * 13)) + runs[:8] + runs
    reason = _refusal([_write(tmp_path / "b.dcm", _bytes(_encapsulated(ds, [short])))])
    assert "cannot decode to the 4096 bytes" in reason


# --------------------------------------------------------------------------- 5. descriptions


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"BitsAllocated": 0}, "BitsAllocated 0 is not supported"),
    ({"PixelRepresentation": 2}, "PixelRepresentation 2"),
    ({"SamplesPerPixel": 7}, "SamplesPerPixel 7"),
])
def test_impossible_pixel_descriptions_are_refused(tmp_path: Path, attrs: dict[str, int],
                                                   expected: str) -> None:
    """BitsAllocated 0 made ``1 << (bits - 1)`` a negative shift (ValueError escaping
    from planning, found by the fuzzer); the others were silently misread."""
    ds = _native(_slice())
    for key, value in attrs.items():
        setattr(ds, key, value)
    with pytest.raises(DicomReadError, match=expected):
        plan_volume([_write(tmp_path / "a.dcm", _bytes(ds))])


def test_declared_pixels_beyond_the_caps_are_refused_before_planning(tmp_path: Path) -> None:
    """NumberOfFrames 200,000, or 32768 × 32768 × 3 frames (6 GiB), in files of a few
    hundred bytes: refused from the header, before a frame object or a buffer exists."""
    ds = _slice(syntax=RLELossless)
    ds.NumberOfFrames = 200_000
    path = _write(tmp_path / "frames.dcm", _bytes(_encapsulated(ds, [b"\x00" * 64])))
    with pytest.raises(DicomReadError, match="NumberOfFrames 200000"):
        plan_volume([path])
    ds = _slice(syntax=RLELossless, rows=32768, columns=32768)
    ds.NumberOfFrames = 3
    path = _write(tmp_path / "huge.dcm", _bytes(_encapsulated(ds, [b"\x00" * 64] * 3)))
    with pytest.raises(DicomReadError, match="4 GiB"):
        plan_volume([path])


def test_a_volume_beyond_the_cap_is_refused_when_planned(tmp_path: Path) -> None:
    """Ten small J2K files each declaring 16384 × 16384 with a fractional slope (a
    float32 volume of 10 GiB): planning refuses it before anything is allocated."""
    paths = []
    for i in range(1, 11):
        ds = _slice(i, syntax=JPEG2000Lossless, rows=16384, columns=16384)
        ds.RescaleSlope = 0.5
        paths.append(_write(tmp_path / f"IM{i}.dcm", _bytes(_encapsulated(
            ds, [_siz_codestream(16384, 16384)]))))
    with pytest.raises(DicomReadError, match="more than the 4 GiB Lucida loads"):
        plan_volume(paths)


def test_rescale_values_overflowing_integers_use_floats(tmp_path: Path) -> None:
    """RescaleSlope 1e30 is a whole number, but ``values *= int(slope)`` on int32 raised
    OverflowError (found by the fuzzer); such a rescale is done in floating point."""
    ds = _native(_slice())
    ds.RescaleSlope = "1e30"
    volume = read_volume([_write(tmp_path / "a.dcm", _bytes(ds))])
    assert volume.array.dtype == np.float32
    assert np.isclose(float(volume.array.max()), float(_pixels(ds).max()) * 1e30, rtol=1e-6)


@pytest.mark.parametrize(("slope", "expected"), [
    ("inf", "RescaleSlope inf is not finite"),
    ("1e36", "beyond what a voxel can hold"),
])
def test_rescale_values_no_voxel_can_hold_are_refused(tmp_path: Path, slope: str,
                                                      expected: str) -> None:
    ds = _native(_slice())
    data = _bytes(ds)
    # pydicom will not write 'inf' as a DS; the value is patched into the bytes.
    key = b"\x28\x00\x53\x10DS\x04\x001.0 "
    assert key in data
    text = slope.encode().ljust(len(slope) + len(slope) % 2)
    bad = data.replace(key, b"\x28\x00\x53\x10DS" + struct.pack("<H", len(text)) + text)
    with pytest.raises(DicomReadError, match=expected):
        read_volume([_write(tmp_path / "a.dcm", bad)])


# --------------------------------------------------------------------------- 6. one VR table


def test_pixel_data_element_header_is_read_with_the_one_long_vr_table(tmp_path: Path) -> None:
    """The pixel data element written with VR 'UV' (a long VR: 2 reserved bytes, a 4-byte
    length) is located like any other; with 'OF' (also long) and twice the data the
    header describes, the size check sees the real length. load.py's own (OB, OW, UN)
    and decode.py's table without SV/UV read both as short VRs."""
    data = _bytes(_native(_slice()))
    path = _write(tmp_path / "uv.dcm", _replace_vr(data, 0x7FE00010, b"OW", b"UV"))
    volume = read_volume([path])
    assert volume.shape == (1, 4, 4)
    assert int(volume.array.max()) == int(_pixels(_slice()).max()) - 1024
    ds = _slice(rows=2)
    ds.PixelData = _pixels(_slice()).tobytes()  # 4 rows of data, the header says 2
    ds["PixelData"].VR = "OW"
    bad = _replace_vr(_bytes(ds), 0x7FE00010, b"OW", b"OF")
    with pytest.raises(DicomReadError, match="the image size in the header is wrong"):
        read_volume([_write(tmp_path / "of.dcm", bad)])


def test_a_background_int16_cannot_hold_makes_a_float_volume(tmp_path: Path) -> None:
    """MR with RescaleIntercept 40000, slope 2: the background (the lowest value the
    stored range gives, 40000) does not fit int16. The array used to be int16 until a
    slice widened it, so the blank slice of a file that fails to decode — here the
    first one — raised OverflowError (np.full had wrapped it to -25536 already)."""
    paths = []
    for i in range(1, 4):
        ds = _slice(i, syntax=RLELossless)
        ds.Modality = "MR"
        ds.RescaleIntercept, ds.RescaleSlope = 40000, 2
        paths.append(_write(tmp_path / f"IM{i}.dcm", _bytes(_rle(ds))))
    ds = _slice(1, syntax=RLELossless)
    ds.Modality = "MR"
    ds.RescaleIntercept, ds.RescaleSlope = 40000, 2
    header = struct.pack("<16I", 2, 64, 66, *([0] * 13))
    _write(paths[0], _bytes(_encapsulated(ds, [header + b"\x00\x05" + b"\x00\x05"])))
    volume = read_volume(paths)
    assert "could not be decoded" in _left_out_warning(volume)
    assert volume.metadata["background_value"] == 40000
    assert np.all(volume.array[0] == 40000)
    assert volume.array.dtype == np.float32


def test_a_volume_that_does_not_fit_in_memory_is_a_read_error(tmp_path: Path) -> None:
    """Four files planned as a 2 GiB volume, loaded in a process limited to 1.5 GB of
    address space: allocating the array raises MemoryError, which is this series'
    error (what the CLI prints as 'error:'), not an internal error."""
    for i in range(1, 5):
        ds = _slice(i, syntax=JPEG2000Lossless, rows=16384, columns=16384)
        _write(tmp_path / f"IM{i}.dcm", _bytes(_encapsulated(
            ds, [_siz_codestream(16384, 16384)])))
    code = textwrap.dedent("""
        import resource, sys
        from pathlib import Path
        from core.errors import DicomReadError
        from dicomio.load import read_volume
        paths = sorted(Path(sys.argv[1]).glob("*.dcm"))
        limit = 1536 << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(
            resource.RLIMIT_AS)[1]))
        try:
            read_volume(paths, workers=1)
        except DicomReadError as exc:
            print("refused:", exc)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "refused: not enough memory for this volume (4×16384×16384" in proc.stdout


def test_a_sequence_delimiter_with_a_length_never_reaches_gdcm(tmp_path: Path) -> None:
    """pydicom's MR_small_jpeg_ls_lossless.dcm with two bytes changed (as the fuzzer
    found it): one in the JPEG-LS scan, so imagecodecs (CharLS) refuses the stream, and
    the length of the pixel data's sequence delimiter set to 1. SimpleITK, tried next,
    had GDCM allocate some 2 GB. The delimiter is refused before any decoder (as the
    scan refuses it), and GDCM now comes after pydicom's plugins in any case."""
    from pydicom.data import get_testdata_file

    data = bytearray(Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).read_bytes())
    delimiter = data.rindex(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    data[delimiter + 4] = 1
    data[4552:4554] = b"\xff\xff"  # inside the JPEG-LS scan data
    result = _load_peak(_write(tmp_path / "a.dcm", bytes(data)))
    assert "sequence delimiter has length 1" in result["reason"]
    assert result["grew_mib"] < 256, result


def test_a_frame_header_gdcm_cannot_take_never_reaches_it(tmp_path: Path) -> None:
    """pydicom's MR_small_jpeg_ls_lossless.dcm with the width in its JPEG-LS frame header
    (SOF55) set to 0, which is legal only with an LSE segment giving the width: every
    decoder refuses it, and GDCM (SimpleITK), tried when all others failed, crashed the
    process with a segmentation fault (found by fuzzing). GDCM is handed only frames
    whose own header matches the file's; this one is refused with the others' reasons."""
    from pydicom.data import get_testdata_file

    data = bytearray(Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).read_bytes())
    sof = data.index(b"\xff\xf7\x00\x0b")  # SOF55: length 11, P, Y (2), X (2), Nf
    assert data[sof + 5:sof + 9] == b"\x00\x40\x00\x40"
    data[sof + 7:sof + 9] = b"\x00\x00"
    result = _load_peak(_write(tmp_path / "a.dcm", bytes(data)))
    assert "no available decoder could read" in result["reason"]


def test_pixel_data_without_a_vr_in_an_explicit_vr_file_is_located(tmp_path: Path) -> None:
    """Some writers put the pixel data element in implicit VR (tag, 4-byte length) inside
    an explicit VR file, as pydicom's SC_rgb_jpeg.dcm has it; pydicom reads it. Its value
    is located after an 8-byte header, as the scan reads it, not at a 2-byte length
    read from the middle of the 4-byte one."""
    data = _bytes(_native(_slice()))
    at = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    bad = data[:at + 4] + data[at + 8:]  # tag, then the 4-byte length and the pixels
    volume = read_volume([_write(tmp_path / "a.dcm", bad)])
    assert volume.shape == (1, 4, 4)
    assert int(volume.array.max()) == int(_pixels(_slice()).max()) - 1024
