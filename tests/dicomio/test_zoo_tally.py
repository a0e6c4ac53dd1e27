"""Every file of the codec/oddity zoo and the shared masks is attempted.

Each file is loaded as an image (``read_volume`` on that single file), indexed
as a non-image object (``dicomio.scan`` classification), or rejected with a
reason; no exception other than a LucidaError subclass may escape. The tally
is printed (``pytest -s``). Corrupt copies made in tmp_path each give a
DicomReadError with a specific reason.
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
    assert sum(len(v) for v in tally.values()) == len(files)
    # The zoo is mostly images in every codec: most must load.
    assert len(tally["loaded"]) > len(files) // 2
    loaded_names = {p.name for p, _ in tally["loaded"]}
    # One file per decoder family that must work here.
    for name in ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "JPEG-LL.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "SC_rgb.dcm", "emri_small.dcm"):
        assert name in loaded_names, name


def test_shared_masks_tally(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "masks").rglob("*") if p.is_file()
                   and p.name != "SOURCE.md")
    tally = _attempt(files)
    _print_tally("shared/data/masks", tally)
    assert sum(len(v) for v in tally.values()) == len(files)
    non_image = {p.name for p, _ in tally["non-image"]}
    assert {"nodule.dcm", "liver.dcm", "seg.dcm", "sr.dcm", "rtss.dcm"} <= non_image
    assert tally["loaded"], "the CT slices next to the dcmqi SEG must load"


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
