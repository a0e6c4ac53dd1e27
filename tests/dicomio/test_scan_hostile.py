"""Hostile inputs never end a scan or an import: each becomes its file's skip reason.

Everything here is built from real DICOM written by pydicom / dicomio.write_image,
then damaged or inflated on purpose: a zip bomb member next to a real series, a
zip that lies about a member's size, sequences nested thousands of levels deep,
an element that claims 4 GB, numbers that overflow, and seeded random mutations.
Memory is measured in a fresh interpreter (tracemalloc and ru_maxrss), so the
peak belongs to the scan alone.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.importer import import_paths
from core.volume import Volume
from dicomio import decode
from dicomio.scan import scan_paths
from dicomio.write_image import SeriesInfo, write_series
from store import Library

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _volume(n: int = 3, rows: int = 8, cols: int = 6) -> Volume:
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, 2.5)
    affine[:3, 1] = (0.0, 0.8, 0.0)
    affine[:3, 2] = (0.7, 0.0, 0.0)
    affine[:3, 3] = (-10.0, -20.0, 30.0)
    return Volume(array=np.arange(n * rows * cols, dtype=np.float64).reshape(n, rows, cols),
                  affine=affine)


def _series(folder: Path, n: int = 3, **info: object) -> list[Path]:
    return write_series(_volume(n), folder, SeriesInfo(**info))  # type: ignore[arg-type]


def _one_file(tmp_path: Path, name: str = "one") -> bytes:
    """The bytes of one small valid CT slice (explicit VR little endian)."""
    return _series(tmp_path / f"_{name}", 1)[0].read_bytes()


_PIXEL_TAG = b"\xe0\x7f\x10\x00"


def _split_at_pixels(data: bytes) -> tuple[bytes, bytes]:
    """(everything before the pixel data element, the element and what follows)."""
    at = data.rindex(_PIXEL_TAG + b"OW")
    return data[:at], data[at:]


def _with_big_pixels(data: bytes, n_bytes: int) -> tuple[bytes, bytes]:
    """(header ending in a pixel data element header claiming ``n_bytes``, a block of
    zeros to repeat): the file is the header followed by ``n_bytes`` zeros."""
    header, _ = _split_at_pixels(data)
    return header + _PIXEL_TAG + b"OW\x00\x00" + struct.pack("<I", n_bytes), bytes(MiB)


def _write_zip_member(zf: zipfile.ZipFile, name: str, head: bytes, total_zeros: int) -> None:
    """A member of ``head`` + ``total_zeros`` zero bytes, streamed (never in memory)."""
    with zf.open(name, "w", force_zip64=True) as out:
        out.write(head)
        block = bytes(MiB)
        left = total_zeros
        while left > 0:
            out.write(block[:min(left, MiB)])
            left -= MiB


def _reasons(skipped: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {s.source.member or s.source.path.name: s.reason for s in skipped}


# --------------------------------------------------------------------------- zip bombs


def test_zip_bomb_member_is_skipped_and_the_rest_imports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member inflating past the cap is refused on its real inflated bytes; a valid
    member of the same zip and a real series in another folder are imported."""
    monkeypatch.setattr(decode, "ZIP_MEMBER_MAX_BYTES", 4 * MiB)
    good = _series(tmp_path / "src" / "ct", 4, patient_id="GOOD")
    head, _ = _with_big_pixels(_one_file(tmp_path), 48 * MiB)
    archive = tmp_path / "zips" / "bomb.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        _write_zip_member(zf, "bomb.dcm", head, 48 * MiB)
        zf.writestr("ok.dcm", _one_file(tmp_path, "ok"))
    assert archive.stat().st_size < 2 * MiB  # 48 MiB of zeros deflate to almost nothing
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [archive.parent, good[0].parent])
    assert report.new == len(good) + 1  # the series and ok.dcm
    reasons = _reasons(report.skipped)
    assert set(reasons) == {"bomb.dcm"}, reasons
    assert f"more than the {4 * MiB}-byte limit for one member" in reasons["bomb.dcm"]


def test_zip_member_sizes_are_counted_not_believed(tmp_path: Path) -> None:
    """Members whose directory entry claims another size than they inflate to are
    refused with that reason; the honest member is indexed."""
    data = _one_file(tmp_path)
    archive = tmp_path / "lies.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("bigger.dcm", "huge.dcm", "honest.dcm"):
            zf.writestr(name, data)
    raw = bytearray(archive.read_bytes())
    claims = {b"bigger.dcm": len(data) + 1000, b"huge.dcm": 5_000_000_000}
    for name, claim in claims.items():
        # Local header (size at +22) and central directory entry (size at +24).
        for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
            at = raw.find(signature)
            while raw[at + name_at:at + name_at + len(name)] != name:
                at = raw.find(signature, at + 4)
            struct.pack_into("<I", raw, at + size_at, min(claim, 0xFFFFFFFF))
    archive.write_bytes(bytes(raw))
    result = scan_paths([archive])
    assert [i.source.member for i in result.instances] == ["honest.dcm"]
    reasons = _reasons(result.skipped)
    assert f"inflates to {len(data)} bytes, the archive says {len(data) + 1000}" \
        in reasons["bigger.dcm"]
    assert f"more than the {decode.ZIP_MEMBER_MAX_BYTES}-byte limit" in reasons["huge.dcm"]


def test_zip_members_larger_than_the_kept_head(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With only 4 KiB of each member's head kept: pixel data ends are checked through
    the kept tail, and a header whose middle lies between head and tail is read from a
    full spool instead (both files below put 20 KB before their last elements)."""
    import pydicom.data

    monkeypatch.setattr(decode, "ZIP_SPOOL_MEMORY", 4096)

    def testdata(name: str) -> bytes:
        return Path(pydicom.data.get_testdata_file(name)).read_bytes()  # type: ignore[arg-type]

    header, _ = _split_at_pixels(_one_file(tmp_path))
    private = b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 20000) + bytes(20000)
    at = header.index(b"\x10\x00\x10\x00PN")  # before (0010,0010): tags stay ascending
    ds = pydicom.dcmread(io.BytesIO(_one_file(tmp_path, "np")))
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5.6.7.8.9"
    ds.add_new(0x00091010, "OB", bytes(20000))
    ds.add_new(0x00291010, "OB", bytes(20000))
    no_pixels = io.BytesIO()
    ds.save_as(no_pixels)
    members = {
        "long_header.dcm": (header[:at] + private + header[at:] + _PIXEL_TAG
                            + b"OW\x00\x00" + struct.pack("<I", 30000) + bytes(30000)),
        "no_pixels_long.dcm": no_pixels.getvalue(),
        "jpeg2000.dcm": testdata("emri_small_jpeg_2k_lossless.dcm"),
        "j2k_too_short.dcm": testdata("emri_small_jpeg_2k_lossless_too_short.dcm"),
        "mr_truncated.dcm": testdata("MR_truncated.dcm"),
    }
    assert all(len(data) > 8192 for data in members.values())
    archive = tmp_path / "big_members.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    result = scan_paths([archive])
    indexed = {i.source.member: i.object_kind.value for i in result.instances}
    assert indexed == {"long_header.dcm": "image", "no_pixels_long.dcm": "other_nonimage",
                       "jpeg2000.dcm": "image"}
    reasons = _reasons(result.skipped)
    assert "no end-of-sequence marker" in reasons["j2k_too_short.dcm"]
    assert "pixel data needs 8192 bytes but the file is 62 bytes short" \
        in reasons["mr_truncated.dcm"]


_MEASURE = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    from pathlib import Path
    from app.importer import import_paths
    from store import Library
    paths = [Path(p) for p in sys.argv[3:]]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    with Library.open(Path(sys.argv[1])) as lib:
        report = import_paths(lib, paths, plan_geometry=sys.argv[2] == "plan")
    _, peak = tracemalloc.get_traced_memory()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"new": report.new, "peak": peak, "rss_grown_kb": grown,
                      "skipped": {s.source.member or s.source.path.name: s.reason
                                  for s in report.skipped}}))
""")


def _import_in_fresh_interpreter(library: Path, *paths: Path,
                                 plan: bool = True) -> dict:  # type: ignore[type-arg]
    """import_paths in a new interpreter, with its peak memory (Python and RSS)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(library),
                           "plan" if plan else "no-plan", *map(str, paths)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return result


@pytest.mark.timeout(600)
def test_a_real_zip_bomb_costs_bounded_memory(tmp_path: Path) -> None:
    """2.1 GB of zeros behind a valid DICOM header, deflated to ~9 MB, is refused; a
    900 MiB member within the cap is indexed. Neither is ever held in memory: the
    scan keeps a member's first 8 MiB and counts the rest, and geometry planning opens
    members through DicomSource.open, which spools them (8 MiB in memory, then a
    temporary file)."""
    good = _series(tmp_path / "src" / "ct", 4)
    archive = tmp_path / "zips" / "bomb.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, total in (("bomb.dcm", 2100 * MiB), ("big.dcm", 900 * MiB)):
            head, _ = _with_big_pixels(_one_file(tmp_path, name), total)
            _write_zip_member(zf, name, head, total)
    assert archive.stat().st_size < 24 * MiB
    result = _import_in_fresh_interpreter(tmp_path / "lib", archive.parent, good[0].parent)
    print(result)
    assert result["new"] == len(good) + 1  # the series and big.dcm
    assert list(result["skipped"]) == ["bomb.dcm"]
    assert (f"more than the {decode.ZIP_MEMBER_MAX_BYTES}-byte limit for one member"
            in result["skipped"]["bomb.dcm"])
    # One member in memory at most: the kept head (8 MiB) plus a read block or two.
    assert result["peak"] < decode.ZIP_SPOOL_MEMORY + 16 * MiB, result
    assert result["rss_grown_kb"] * 1024 < 200 * MiB, result


# --------------------------------------------------------------------------- crafted headers


def _nested_sequences(depth: int) -> bytes:
    """(0040,A730) ContentSequence nested ``depth`` levels, all of undefined length."""
    opening = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return opening * depth + closing * depth


def test_deeply_nested_sequences_are_a_skip_reason(tmp_path: Path) -> None:
    """5,000 levels (a RecursionError for a recursive parser) are refused with the cap
    named; 60 levels, within the cap, are indexed; the real series imports."""
    good = _series(tmp_path / "src" / "ct", 3)
    header, pixels = _split_at_pixels(_one_file(tmp_path))
    bad = tmp_path / "src" / "bad"
    bad.mkdir()
    (bad / "deep.dcm").write_bytes(header + _nested_sequences(5000) + pixels)
    header, pixels = _split_at_pixels(_one_file(tmp_path, "other"))
    (bad / "shallow.dcm").write_bytes(header + _nested_sequences(60) + pixels)
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [tmp_path / "src"])
    assert report.new == len(good) + 1
    reasons = _reasons(report.skipped)
    assert list(reasons) == ["deep.dcm"]
    assert "nested more than 64 levels" in reasons["deep.dcm"]


def _scan_peak(path: Path) -> dict:  # type: ignore[type-arg]
    code = textwrap.dedent("""
        import json, sys, tracemalloc
        from pathlib import Path
        from dicomio.scan import scan_paths
        tracemalloc.start()
        result = scan_paths([Path(sys.argv[1])])
        print(json.dumps({"peak": tracemalloc.get_traced_memory()[1],
                          "indexed": len(result.instances),
                          "reasons": [s.reason for s in result.skipped]}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return result


def test_an_element_claiming_4_gb_is_truncated_and_never_read(tmp_path: Path) -> None:
    """A private OB element claims 0xFFFFFFF0 bytes near the start of a 64 MiB file:
    the skip reason is 'truncated' and the scan reads only a block or two."""
    header, pixels = _split_at_pixels(_one_file(tmp_path))
    claim = b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0)
    at = header.index(b"\x10\x00\x10\x00PN")  # before (0010,0010): tags stay ascending
    path = tmp_path / "claims_4gb.dcm"
    with open(path, "wb") as out:
        out.write(header[:at] + claim + header[at:] + pixels)
        for _ in range(64):
            out.write(bytes(MiB))
    result = _scan_peak(path)
    assert result["indexed"] == 0
    assert result["reasons"] and result["reasons"][0].startswith("truncated"), result
    assert result["peak"] < 4 * MiB, result


def test_a_large_file_with_non_ascii_names_is_not_read_whole(tmp_path: Path) -> None:
    """Text in a character set is decoded from the kept bytes: the 64 MiB of pixel
    data behind the header are never read into memory."""
    ds = pydicom.dcmread(_series(tmp_path / "s", 1)[0])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jörg"
    ds.Rows, ds.Columns = 4096, 8192
    ds.PixelData = bytes(4096 * 8192 * 2)
    path = tmp_path / "big_latin1.dcm"
    ds.save_as(path)
    del ds
    result = _scan_peak(path)
    assert result["indexed"] == 1, result
    assert result["peak"] < 4 * MiB, result


def test_no_preamble_file_claiming_4_gb_under_a_memory_limit(tmp_path: Path) -> None:
    """A preamble-less file (read by pydicom) whose PatientName claims 4 GB, scanned
    with the address space capped: the general reader is handed at most its budget,
    so this is a skip reason, not a MemoryError that ends the scan."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(_series(tmp_path / "s", 1)[0])
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)  # no preamble, no file meta: pydicom reads it with force
    raw = bytearray(buffer.getvalue())
    at = raw.index(b"\x10\x00\x10\x00")  # (0010,0010) PatientName, implicit VR
    struct.pack_into("<I", raw, at + 4, 0xFFFFFFF0)
    bad = tmp_path / "in" / "no_preamble.dcm"
    bad.parent.mkdir()
    bad.write_bytes(bytes(raw))
    good = _series(tmp_path / "in" / "good", 2)
    code = textwrap.dedent("""
        import json, resource, sys
        from pathlib import Path
        from dicomio.scan import scan_paths
        import pydicom, numpy  # loaded before the cap
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, hard))
        result = scan_paths([Path(sys.argv[1])])
        print(json.dumps({"indexed": len(result.instances),
                          "reasons": {s.source.path.name: s.reason for s in result.skipped}}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(bad.parent)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["indexed"] == len(good)
    assert list(result["reasons"]) == ["no_preamble.dcm"]
    assert result["reasons"]["no_preamble.dcm"].startswith("truncated")


def test_the_general_reader_stops_at_its_budget(tmp_path: Path) -> None:
    """A preamble-less file whose header really is larger than the fallback's budget
    (a 2 MiB PatientName) is refused as too large instead of being read whole."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from dicomio.scan import FALLBACK_READ_MAX

    ds = pydicom.dcmread(_series(tmp_path / "s", 1)[0])
    ds.PatientName = "X" * (2 * MiB)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    path = tmp_path / "huge_name.dcm"
    path.write_bytes(buffer.getvalue())
    result = scan_paths([path])
    assert not result.instances
    assert [s.reason for s in result.skipped] == [
        f"header too large: the general reader stops after {FALLBACK_READ_MAX} bytes of header"]


def _replace_value(data: bytes, tag: bytes, value: bytes) -> bytes:
    """``data`` with the value of the explicit-VR short element ``tag`` (4 bytes, little
    endian) replaced by ``value`` (even length), its length field adjusted."""
    at = data.index(tag, 132)
    length = struct.unpack_from("<H", data, at + 6)[0]
    return data[:at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length:]


@pytest.mark.parametrize("value", [b"1e400 ", b"-1e999", b"99999999999 "])
def test_numbers_out_of_range_do_not_escape(tmp_path: Path, value: bytes) -> None:
    """IS text that overflows (or is not finite, or is beyond the 32-bit range of IS)
    reads as absent: the file is indexed and the import completes."""
    data = _one_file(tmp_path)
    for tag in (b"\x20\x00\x13\x00IS", b"\x20\x00\x11\x00IS"):  # Instance/SeriesNumber
        data = _replace_value(data, tag, value)
    path = tmp_path / "odd.dcm"
    path.write_bytes(data)
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [path])
        assert report.new == 1 and not report.skipped, report.skipped
        [series] = report.series
        [source] = lib.series_sources(series.series_id)
    assert source.path == path
    [header] = scan_paths([path]).instances
    assert header.instance_number is None and header.series_number is None


@pytest.mark.parametrize("value", [b"nan\\0\\0 ", b"0\\inf\\0 ", b"1e999\\0\\0"])
def test_positions_that_are_not_finite_read_as_absent(tmp_path: Path, value: bytes) -> None:
    data = _replace_value(_one_file(tmp_path), b"\x20\x00\x32\x00DS", value)
    path = tmp_path / "odd.dcm"
    path.write_bytes(data)
    [header] = scan_paths([path]).instances
    assert header.image_position is None


# --------------------------------------------------------------------------- fuzzing

_WEIRD_NUMBERS = [b"1e400", b"-1e999", b"nan", b"inf", b"99999999999999999999", b"--1",
                  b"1\\2\\3\\4\\5\\6\\7"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded, structure-aware mutation of a DICOM file."""
    buf = bytearray(data)
    kind = rng.randrange(8) if len(buf) > 256 else 0
    if kind == 0 and buf:  # flip bytes
        for _ in range(rng.randint(1, 16)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:  # a length field becomes huge or undefined
        at = rng.randrange(132, len(buf) - 8)
        struct.pack_into("<I", buf, at, rng.choice([0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF]))
    elif kind == 2:  # cut short
        del buf[rng.randrange(1, len(buf)):]
    elif kind == 3:  # a VR becomes a long VR (or a short one) without moving anything
        at = buf.find(rng.choice([b"UI", b"DS", b"IS", b"CS", b"LO", b"PN"]), 132)
        if at > 0:
            buf[at:at + 2] = rng.choice([b"UC", b"UR", b"SV", b"UV", b"SQ", b"UN", b"OB"])
    elif kind == 4:  # a number that overflows
        for tag in (b"\x20\x00\x13\x00IS", b"\x20\x00\x11\x00IS", b"\x28\x00\x08\x00IS",
                    b"\x20\x00\x32\x00DS"):
            at = buf.find(tag)
            if at > 0:
                length = struct.unpack_from("<H", buf, at + 6)[0]
                value = rng.choice(_WEIRD_NUMBERS)[:length].ljust(length, b" ")
                buf[at + 8:at + 8 + length] = value
    elif kind == 5:  # nested sequences inserted before the pixel data
        at = buf.rfind(_PIXEL_TAG)
        if at > 0:
            buf[at:at] = _nested_sequences(rng.choice([10, 100, 3000]))
    elif kind == 6:  # garbage inserted
        at = rng.randrange(132, len(buf))
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:  # an item or delimiter tag at the top level
        at = buf.rfind(_PIXEL_TAG)
        if at > 0:
            buf[at:at] = rng.choice([b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"]) + bytes(4)
    return bytes(buf)


@pytest.mark.timeout(600)
def test_random_mutations_never_escape_scan_or_import(tmp_path: Path) -> None:
    """400 seeded mutations of two real files, loose and inside a zip, next to a valid
    series: scan_paths and import_paths return, the series is imported, and every
    mutant is indexed or skipped with a reason."""
    import pydicom.data

    rng = random.Random(20260512)
    seeds = [_one_file(tmp_path),
             Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()]  # type: ignore[arg-type]
    good = _series(tmp_path / "src" / "good", 3, patient_id="GOOD")
    loose = tmp_path / "src" / "mutants"
    loose.mkdir()
    members: list[tuple[str, bytes]] = []
    for n in range(400):
        mutant = _mutate(rng.choice(seeds), rng)
        (loose / f"m{n:03d}.dcm").write_bytes(mutant)
        members.append((f"z{n:03d}.dcm", mutant))
    archive = tmp_path / "src" / "mutants.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, mutant in members:
            zf.writestr(name, mutant)
    result = scan_paths([tmp_path / "src"], workers=2)
    assert result.files_seen == 3 + 400 + 400
    assert len(result.instances) + len(result.skipped) + len(result.dicomdirs) == 803
    assert all(s.reason.strip() for s in result.skipped)
    assert sum(i.patient_id == "GOOD" for i in result.instances) == len(good)
    with Library.open(tmp_path / "lib") as lib:
        report = import_paths(lib, [tmp_path / "src"])
    assert report.files_seen == 803
    assert report.indexed + len(report.duplicates) + len(report.skipped) == 803
    good_series = [s for s in report.series if s.instances == len(good)
                   and s.new_instances == len(good)]
    assert good_series, report.summary()


# --------------------------------------------------------------------------- workers, DICOMDIR


@pytest.mark.parametrize("use_processes", [False, True])
def test_hostile_files_in_worker_threads_and_processes(tmp_path: Path,
                                                      use_processes: bool) -> None:
    """Failures inside pool workers are skip reasons too: a recursion-deep header and
    an overflowing number, in several chunks, next to a real series."""
    good = _series(tmp_path / "src" / "ct", 40)
    header, pixels = _split_at_pixels(_one_file(tmp_path))
    bad = tmp_path / "src" / "bad"
    bad.mkdir()
    for n in range(20):
        (bad / f"deep{n:02d}.dcm").write_bytes(header + _nested_sequences(5000) + pixels)
        overflow = _replace_value(_one_file(tmp_path, f"o{n}"), b"\x20\x00\x13\x00IS",
                                  b"1e400 ")
        (bad / f"overflow{n:02d}.dcm").write_bytes(overflow)
    result = scan_paths([tmp_path / "src"], workers=2, use_processes=use_processes)
    assert len(result.instances) == len(good) + 20  # the overflowing numbers read as absent
    reasons = _reasons(result.skipped)
    assert sorted(reasons) == [f"deep{n:02d}.dcm" for n in range(20)]
    assert all("nested more than 64 levels" in r for r in reasons.values())


def test_a_hostile_dicomdir_is_a_skip_reason(tmp_path: Path) -> None:
    """A DICOMDIR that pydicom cannot read (5,000 nested sequences: RecursionError)
    is reported; the files beside it are still scanned."""
    good = _series(tmp_path / "media" / "ct", 3)
    header, pixels = _split_at_pixels(_one_file(tmp_path))
    (tmp_path / "media" / "DICOMDIR").write_bytes(header + _nested_sequences(5000) + pixels)
    result = scan_paths([tmp_path / "media"])
    assert len(result.instances) == len(good)
    reasons = _reasons(result.skipped)
    assert list(reasons) == ["DICOMDIR"]
    assert reasons["DICOMDIR"].startswith("unreadable DICOMDIR: RecursionError")
