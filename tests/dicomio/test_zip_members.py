"""Reading one zip member for the loader: once, bounded in memory, sizes counted.

``dicomio.decode.open_zip_member`` is what ``DicomSource.open`` is meant to use for
a member (today it reads the member whole with ``ZipFile.read``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pydicom
import pytest

from dicomio import decode

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _ct_bytes() -> bytes:
    import pydicom.data

    return Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()  # type: ignore[arg-type]


def test_a_member_reads_back_as_the_same_bytes(tmp_path: Path) -> None:
    data = _ct_bytes()
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dir/ct.dcm", data)
    with decode.open_zip_member(archive, "dir/ct.dcm") as fp:
        assert fp.read() == data
        fp.seek(128)
        assert fp.read(4) == b"DICM"
        fp.seek(0)
        assert pydicom.dcmread(fp).Rows == 128
    with pytest.raises(KeyError):
        decode.open_zip_member(archive, "missing.dcm")


def test_members_past_the_cap_or_lying_are_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "ZIP_MEMBER_MAX_BYTES", 2 * MiB)
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.dcm", bytes(3 * MiB))
        zf.writestr("stored.dcm", b"x" * 1000, compress_type=zipfile.ZIP_STORED)
        zf.writestr("bz.dcm", b"x" * 1000, compress_type=zipfile.ZIP_BZIP2)
    with pytest.raises(decode.ZipMemberError, match=f"more than the {2 * MiB}-byte limit"):
        decode.open_zip_member(archive, "big.dcm")
    with pytest.raises(decode.ZipMemberError, match="compressed with bzip2"):
        decode.open_zip_member(archive, "bz.dcm")
    with decode.open_zip_member(archive, "stored.dcm") as fp:
        assert fp.read() == b"x" * 1000
    raw = bytearray(archive.read_bytes())
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(signature)  # the first entry: big.dcm
        raw[at + size_at:at + size_at + 4] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(decode.ZipMemberError, match="unreadable zip member: BadZipFile"):
        decode.open_zip_member(archive, "big.dcm")  # says 1,000 bytes: CRC fails


def test_too_many_members_are_refused_before_the_directory_is_read(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setattr(decode, "ZIP_MAX_MEMBERS", 50)
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(51):
            zf.writestr(f"{n}.dcm", b"")
    problem = decode.zip_directory_problem(archive)
    assert problem is not None and "51 members" in problem
    with pytest.raises(decode.ZipMemberError, match="51 members"):
        decode.open_zip_member(archive, "0.dcm")
    from dicomio.scan import scan_paths

    result = scan_paths([archive])
    assert [s.reason for s in result.skipped] == [problem] and not result.instances


def test_a_large_member_is_spooled_not_held(tmp_path: Path) -> None:
    """A 600 MiB member opens as a seekable stream while Python holds only the
    in-memory part of the spool (the rest is an anonymous temporary file)."""
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("big.dcm", "w", force_zip64=True) as out:
            out.write(_ct_bytes())
            for _ in range(600):
                out.write(bytes(MiB))
    code = textwrap.dedent("""
        import json, sys, tracemalloc
        from dicomio.decode import open_zip_member
        tracemalloc.start()
        with open_zip_member(sys.argv[1], "big.dcm") as fp:
            head = fp.read(132)[128:]
            size = fp.seek(0, 2)
        print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "size": size,
                          "dicm": head.decode()}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(archive)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dicm"] == "DICM" and result["size"] == len(_ct_bytes()) + 600 * MiB
    print(result)
    assert result["peak"] < decode.ZIP_SPOOL_MEMORY + 4 * MiB, result
