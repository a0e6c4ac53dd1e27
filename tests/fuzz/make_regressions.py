"""Write the fuzz regression inputs in ``regressions/`` from scratch with pydicom.

Each finding of the fuzzer was minimised by hand (or with ``run.py --minimize``)
to the one property that triggers it; the functions below rebuild that
property into a tiny file written with pydicom, so no regression input is a
copy of real or third-party data. ``regressions/README.md`` lists what each
file is and where the problem escaped.

    python -m tests.fuzz.make_regressions          # (re)write every file
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
UID_ROOT = "1.2.826.0.1.3680043.10.1234.77"


def _tiny_image(syntax: str = "1.2.840.10008.1.2.1", *, rows: int = 4, columns: int = 4,
                bits: int = 16, modality: str = "CT", index: int = 1) -> Any:
    """A 4×4 CT slice with the attributes the loader reads, as a pydicom Dataset."""
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"{UID_ROOT}.1.{index}"
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Manufacturer = "LUCIDA FUZZ"
    ds.Modality = modality
    ds.PatientID = "FUZZ"
    ds.StudyInstanceUID = f"{UID_ROOT}.2"
    ds.SeriesInstanceUID = f"{UID_ROOT}.3"
    ds.FrameOfReferenceUID = f"{UID_ROOT}.4"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index
    ds.ImagePositionPatient = [0, 0, 2.5 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    return ds


def _native_pixels(ds: Any) -> Any:
    ds.PixelData = bytes((i * 7) & 0xFF for i in range(ds.Rows * ds.Columns * ds.BitsAllocated
                                                         // 8))
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    return ds


def _bytes(ds: Any) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _replace_vr(data: bytes, tag: int, old: bytes, new: bytes) -> bytes:
    """``data`` with the explicit VR of ``tag`` changed (the length field kept)."""
    key = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + old
    at = data.find(key)
    if at < 0 or data.find(key, at + 1) >= 0:
        raise ValueError(f"tag {tag:08X} with VR {old!r} not found exactly once")
    return data[:at + 4] + new + data[at + 6:]


# --------------------------------------------------------------------------- the findings


def unknown_vr(tag: int, old: bytes) -> Callable[[], bytes]:
    """An element the scan does not read but the loader does, with an unknown explicit VR
    (e.g. 'OO'): pydicom converts values lazily, on first access, so the error comes
    from wherever the loader first touches it, outside the try around dcmread."""
    return lambda: _replace_vr(_bytes(_native_pixels(_tiny_image())), tag, old,
                               old[:1] + old[:1])


def meta_wrong_length() -> bytes:
    """File meta group length (0002,0000) UL with a 2-byte value, in a file without the
    128-byte preamble (so the scan's own parser declines it and pydicom reads the meta):
    pydicom raises BytesLengthException (an Exception, not a ValueError)."""
    data = _bytes(_native_pixels(_tiny_image()))[132:]  # no preamble, no 'DICM'
    key = b"\x02\x00\x00\x00UL\x04\x00"
    assert data.startswith(key)
    return b"\x02\x00\x00\x00UL\x02\x00" + data[len(key):len(key) + 2] + data[len(key) + 4:]


def zip_corrupt_deflate() -> bytes:
    """A zip whose one member's deflate stream is corrupt: zipfile raises zlib.error."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("study/IM0001.dcm", _bytes(_native_pixels(_tiny_image())))
    data = bytearray(out.getvalue())
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    start = 30 + name_len + extra_len
    data[start] = 0xFF  # BTYPE 11: "invalid block type"
    return bytes(data)


def rle_overlong_segments() -> bytes:
    """RLE Lossless 64×64 16-bit frame whose two segments each decode to more than the
    4096 bytes of a byte plane (33 replicate runs of 128), the second ending in a run
    header without its value byte.

    RescaleSlope 2 keeps SimpleITK out (it is used only for slope-1 MONOCHROME2 plain
    files; a zip member never gets it) and imagecodecs does not take RLE, so pydicom's
    plugins decode it: pylibjpeg-rle 2.2 panics (Rust index out of bounds) instead of
    raising. The panic arrives as pyo3's PanicException, a BaseException, which the
    ``except Exception`` around each plugin in dicomio/decode.py:decode_dataset does
    not catch. (Found as pydicom's MR_small_RLE.dcm with 1352 bytes cut from its first
    segment.)"""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = _tiny_image(RLELossless, rows=64, columns=64)
    ds.RescaleSlope = 2
    runs = b"\x81\x00" * 33  # each: repeat the next byte 128 times
    header = struct.pack("<16I", 2, 64, 64 + len(runs), *([0] * 13))
    ds.PixelData = encapsulate([header + runs + runs + b"\x81"])
    ds["PixelData"].VR = "OB"
    return _bytes(ds)


def rle_item_past_end() -> bytes:
    """pydicom's MR_small_RLE.dcm (64×64 RLE, 7790 bytes) with 3482 bytes cut out of its
    pixel data fragment, the item length left as it was, so the fragment claims to run
    past the end of the file. The scan indexes it (the sequence delimiter is still at
    the end); SimpleITK/GDCM then allocates about 3 GB before it gives up
    (dicomio/load.py:_decode_file -> decode.decode_file_sitk), 2.5 s. Minimised from a
    fuzz input with ``run.py --minimize --base``; not reproduced with an RLE stream
    written by pydicom, so this one is derived from the pydicom test file."""
    from pydicom.data import get_testdata_file

    base = Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes()
    if len(base) != 7790:
        raise RuntimeError("pydicom's MR_small_RLE.dcm changed: re-minimise this case")
    return base[:3663] + base[7145:]


def jp2_zero_length_box() -> bytes:
    """JPEG 2000 frame that starts with a JP2 signature box followed by a box of length 0.

    pydicom 3.0's get_j2k_parameters walks JP2 boxes with ``offset += length``
    and never ends on a zero length (pydicom/pixels/utils.py): the loader hangs."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds = _tiny_image(JPEG2000Lossless)
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    ds.PixelData = encapsulate([signature + b"\x00\x00\x00\x00ftyp" + b"\x00" * 8])
    ds["PixelData"].VR = "OB"
    return _bytes(ds)


def _lenient() -> Any:
    from tests.fuzz.synth import _lenient_pydicom

    return _lenient_pydicom()


def two_samples_per_pixel_values() -> bytes:
    """SamplesPerPixel (US) holding two values: pydicom gives a list and the loader's
    ``int(ds.get("SamplesPerPixel", 1) or 1)`` raises TypeError (load.py:_read_header).
    Found in a zip member; any multi-valued US/IS the loader reads with int() does it."""
    with _lenient():
        ds = _native_pixels(_tiny_image())
        ds.SamplesPerPixel = [1, 1]
        return _bytes(ds)


def _series(n: int, *, cut: int = 0, syntax: str = "1.2.840.10008.1.2.1",
            **attributes: Any) -> list[bytes]:
    """``n`` 8×8 slices 2.5 mm apart with ``attributes`` set (invalid values allowed);
    ``cut`` bytes are left out of each slice's pixel data."""
    files = []
    with _lenient():
        for index in range(1, n + 1):
            ds = _tiny_image(syntax, rows=8, columns=8, index=index)
            for keyword, value in attributes.items():
                setattr(ds, keyword, value)
            bits = max(int(ds.BitsAllocated), 8)
            ds.PixelData = bytes((i * 7) & 0xFF for i in range(8 * 8 * bits // 8 - cut))
            ds["PixelData"].VR = "OW" if bits > 8 else "OB"
            files.append(_bytes(ds))
    return files


#: Small series (found by the structure-aware "synth" target, then rebuilt by hand).
SERIES: dict[str, Callable[[], list[bytes]]] = {
    # MONOCHROME1 inversion of 32-bit unsigned data: int(lo + hi) = 2**32 - 1 minus an
    # int32 array -> OverflowError in dicomio/load.py:_to_values.
    "folder/monochrome1-32-bit": lambda: _series(
        2, BitsAllocated=32, BitsStored=32, HighBit=31, PixelRepresentation=0,
        PhotometricInterpretation="MONOCHROME1", Modality="OT"),
    # RescaleIntercept -1e308 with MONOCHROME1: the rescaled range is infinite and
    # dicomio/load.py:_fast_int16 calls int(-inf) -> OverflowError.
    "folder/intercept-minus-1e308-monochrome1": lambda: _series(
        2, RescaleIntercept="-1e308", PixelRepresentation=1,
        PhotometricInterpretation="MONOCHROME1", Modality="PT"),
    # BitsAllocated 0 and BitsStored 0, signed: dicomio/decode.py:stored_range
    # computes 1 << -1 -> ValueError while planning.
    "folder/bits-allocated-zero": lambda: _series(
        2, BitsAllocated=0, BitsStored=0, HighBit=0, PixelRepresentation=1),
    # RescaleIntercept 2**31 and pixel data 2 bytes short in every file, deflated (so
    # the scan cannot see the short pixel data and indexes both): the background value
    # 2**31 is written into the int16 volume for the slices that failed,
    # dicomio/load.py:_read_pixels.failed -> OverflowError.
    "folder/intercept-2-pow-31-truncated": lambda: _series(
        2, cut=2, syntax="1.2.840.10008.1.2.1.99", RescaleIntercept="2147483648",
        Modality="OT"),
}


#: file name (under regressions/) -> how it is made
FILES: dict[str, Callable[[], bytes]] = {
    "file/unknown-vr-manufacturer.dcm": unknown_vr(0x00080070, b"LO"),
    "file/unknown-vr-bits-stored.dcm": unknown_vr(0x00280101, b"US"),
    "file/unknown-vr-image-position.dcm": unknown_vr(0x00200032, b"DS"),
    "file/meta-group-length-2-bytes.dcm": meta_wrong_length,
    "file/zip-corrupt-deflate.zip": zip_corrupt_deflate,
    "file/rle-overlong-segments.dcm": rle_overlong_segments,
    "file/jp2-zero-length-box.dcm": jp2_zero_length_box,
    "file/rle-item-past-end.dcm": rle_item_past_end,
    "file/samples-per-pixel-two-values.dcm": two_samples_per_pixel_values,
}


def main() -> int:
    for name, make in FILES.items():
        path = REGRESSIONS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = make()
        path.write_bytes(data)
        print(f"{name}: {len(data)} bytes")
    for name, make_series in SERIES.items():
        folder = REGRESSIONS / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        files = make_series()
        for index, data in enumerate(files, start=1):
            (folder / f"IM{index:04d}.dcm").write_bytes(data)
        print(f"{name}/: {len(files)} files, {sum(map(len, files))} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
