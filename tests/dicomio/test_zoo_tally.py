"""Every file of the codec/oddity zoo and the shared masks is attempted.

Each file is loaded as an image (``read_volume`` on that single file), indexed
as a non-image object (``dicomio.scan`` classification), or rejected with a
reason; no exception other than a LucidaError subclass may escape. The tally
is printed (``pytest -s``) and checked against a record: the count of each
category, and for known files the category and what the detail says (shape,
object kind or rejection reason), so a file landing in the wrong category
fails even when the totals still add up. Corrupt copies made in tmp_path each
give a DicomReadError with a specific reason.
"""

from __future__ import annotations

import importlib.util
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.errors import DicomReadError, LucidaError
from core.volume import Volume
from dicomio.load import read_volume
from dicomio.scan import scan_paths


def _zoo_files() -> list[Path]:
    import pydicom.data

    files = {Path(p).resolve() for p in pydicom.data.get_testdata_files()
             if Path(p).is_file()}
    spec = importlib.util.find_spec("data_store")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            files.update(p.resolve() for p in (Path(loc) / "data").glob("*.dcm"))
    return sorted(files)


def _attempt(files: list[Path]) -> dict[str, list[tuple[Path, str]]]:
    scan = scan_paths(files)
    kinds = {Path(h.source.path).resolve(): h.object_kind for h in scan.instances}
    tally: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for path in files:
        try:
            vol = read_volume([path])
        except LucidaError as exc:
            kind = kinds.get(path.resolve())   # ../shared may be reached through a link
            if kind is not None and not kind.is_image:
                assert isinstance(exc, DicomReadError), exc
                tally["non-image"].append((path, kind.value))
            else:
                assert str(exc).strip(), f"{path}: empty reason"
                tally["rejected"].append((path, f"{type(exc).__name__}: {exc}"))
            continue
        assert isinstance(vol, Volume)
        assert vol.array.ndim == 3 and vol.array.size > 0
        assert np.all(np.isfinite(vol.affine))
        tally["loaded"].append((path, f"{vol.shape} {vol.array.dtype}"))
    return tally


def _check_known(tally: dict[str, list[tuple[Path, str]]],
                 known: dict[str, tuple[str, str]]) -> None:
    """Each known file (by relative name) is in its category with that detail."""
    where: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for category, items in tally.items():
        for path, detail in items:
            for name in known:
                if path.as_posix().endswith("/" + name):
                    where[name].append((category, detail))
    for name, (category, fragment) in known.items():
        assert len(where[name]) == 1, (name, where[name])
        got_category, detail = where[name][0]
        assert got_category == category, (name, got_category, detail)
        assert fragment in detail, (name, detail)


#: The pinned zoo (pydicom 3.0.2 test files + pydicom-data 1.0.0), as it lands today.
ZOO_TOTALS = {"loaded": 148, "non-image": 19, "rejected": 77}
ZOO_KNOWN = {
    # one file per decoder family that must work here, with its shape and dtype
    "CT_small.dcm": ("loaded", "(1, 128, 128) int16"),
    "MR_small_RLE.dcm": ("loaded", "(1, 64, 64) int16"),
    "JPEG2000.dcm": ("loaded", "(1, 1024, 256) int16"),
    "JPEG-LL.dcm": ("loaded", "(1, 1024, 256) int16"),
    "MR_small_jpeg_ls_lossless.dcm": ("loaded", "(1, 64, 64) int16"),
    "MR_small_bigendian.dcm": ("loaded", "(1, 64, 64) int16"),
    "image_dfl.dcm": ("loaded", "(1, 512, 512) int16"),
    "SC_rgb.dcm": ("loaded", "(1, 100, 100) float32"),
    "emri_small.dcm": ("loaded", "(10, 64, 64) int16"),
    "color3d_jpeg_baseline.dcm": ("loaded", "(120, 480, 640) float32"),
    # non-image objects, by kind
    "liver.dcm": ("non-image", "seg"),
    "rtdose.dcm": ("non-image", "rtdose"),
    "rtplan.dcm": ("non-image", "rtplan"),
    "rtstruct.dcm": ("non-image", "rtstruct"),
    "test-SR.dcm": ("non-image", "sr"),
    "waveform_ecg.dcm": ("non-image", "waveform"),
    # rejected, with the reason
    "MR_truncated.dcm": ("rejected", "pixel data are truncated: 8192 bytes needed, 8130 present"),
    "no_meta.dcm": ("rejected", "no 'DICM' marker"),
    "priv_SQ.dcm": ("rejected", "no pixel data (MR Image Storage)"),
    "dicomdirtests/DICOMDIR": ("rejected", "not an image: Media Storage Directory Storage"),
    # Its codestream really declares a width of 3722445056: refused before any decoder.
    "JPEG2000-embedded-sequence-delimiter.dcm": (
        "rejected", "its codestream is 3722445056×1024"),
}
MASKS_TOTALS = {"loaded": 3, "non-image": 7, "rejected": 0}
MASKS_KNOWN = {
    "dcmqi_ct-3slice_SEG/ct-3slice/01.dcm": ("loaded", "(1, 512, 512) int16"),
    "dcmqi_ct-3slice_SEG/ct-3slice/03.dcm": ("loaded", "(1, 512, 512) int16"),
    "LIDC-IDRI-0001_SEG_fedorov/nodule.dcm": ("non-image", "seg"),
    "dcmqi_ct-3slice_SEG/liver.dcm": ("non-image", "seg"),
    "dcmqi_ct-3slice_SEG/partial_overlaps.dcm": ("non-image", "seg"),
    "dcmqi_sr-tid1500_example/seg.dcm": ("non-image", "seg"),
    "dcmqi_sr-tid1500_example/sr.dcm": ("non-image", "sr"),
    "dcmqi_sr-tid1500_example/rwvm.dcm": ("non-image", "other_nonimage"),
    "dicompyler_RTSTRUCT/rtss.dcm": ("non-image", "rtstruct"),
}


def _print_tally(title: str, tally: dict[str, list[tuple[Path, str]]]) -> None:
    print(f"\n=== {title}: loaded {len(tally['loaded'])}, non-image "
          f"{len(tally['non-image'])}, rejected {len(tally['rejected'])}")
    kinds = Counter(reason for _, reason in tally["non-image"])
    if kinds:
        print("  non-image: " + ", ".join(f"{k} ×{n}" for k, n in kinds.most_common()))
    groups: dict[str, list[str]] = defaultdict(list)
    for path, reason in tally["rejected"]:
        # Group by the reason without the file-specific path prefix.
        key = reason.split(": ", 2)[-1] if str(path) in reason else reason
        groups[key[:160]].append(path.name)
    for reason, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
        print(f"  rejected ×{len(names)}: {reason}\n      [{shown}]")


@pytest.mark.timeout(900)
def test_pydicom_zoo_tally() -> None:
    files = _zoo_files()
    assert len(files) > 100
    tally = _attempt(files)
    _print_tally("pydicom + pydicom-data zoo", tally)
    assert {k: len(tally[k]) for k in ZOO_TOTALS} == ZOO_TOTALS
    _check_known(tally, ZOO_KNOWN)
    # Every rejection says why, and no rejected file is one the scan indexed as an image.
    assert all(reason.strip() for _, reason in tally["rejected"])


def test_shared_masks_tally(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "masks").rglob("*") if p.is_file()
                   and p.name != "SOURCE.md")
    tally = _attempt(files)
    _print_tally("shared/data/masks", tally)
    assert {k: len(tally[k]) for k in MASKS_TOTALS} == MASKS_TOTALS
    _check_known(tally, MASKS_KNOWN)


# --------------------------------------------------------------------------- corrupt inputs


@pytest.fixture
def good_file() -> Path:
    import pydicom.data

    return Path(pydicom.data.get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]


def test_truncated_file(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    cut = tmp_path / "truncated.dcm"
    cut.write_bytes(data[: len(data) - 5000])
    with pytest.raises(DicomReadError, match="truncated"):
        read_volume([cut])
    header_cut = tmp_path / "header_cut.dcm"
    header_cut.write_bytes(data[:400])
    with pytest.raises(DicomReadError, match=r"truncated|corrupt|no pixel data"):
        read_volume([header_cut])


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DicomReadError, match="empty file"):
        read_volume([empty])


def test_wrong_preamble(tmp_path: Path, good_file: Path) -> None:
    data = bytearray(good_file.read_bytes())
    data[128:132] = b"DICX"
    bad = tmp_path / "bad_preamble.dcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(DicomReadError, match="DICM"):
        read_volume([bad])


def test_missing_pixel_data(tmp_path: Path, good_file: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(good_file)
    del ds.PixelData
    out = tmp_path / "no_pixels.dcm"
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="no pixel data"):
        read_volume([out])


def test_text_file(tmp_path: Path) -> None:
    text = tmp_path / "readme.dcm"
    text.write_text("This is not a DICOM file.\n" * 20)
    with pytest.raises(DicomReadError, match="not a DICOM Part 10 file"):
        read_volume([text])


def test_undecodable_codec_names_transfer_syntax(tmp_path: Path, good_file: Path) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(good_file)
    # Claim JPEG 2000 but store garbage fragments: every decoder must fail.
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\x00\x01garbage" * 10])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    out = tmp_path / "bad_j2k.dcm"
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(DicomReadError, match=r"1\.2\.840\.10008\.1\.2\.4\.90"):
        read_volume([out])
