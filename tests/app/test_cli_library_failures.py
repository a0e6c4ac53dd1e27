"""The command line on a library that is locked, damaged, too new, read-only or on a full
disk, and an export killed mid-write. Real SQLite files, real `lucida` processes.

Every failure is exit code 2 and one line on stderr that says what happened and what to
do — never a traceback, never "internal error".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series
from store import DB_NAME, SCHEMA_VERSION, Library
from tests.fs_limits import run_on_read_only_folder, run_with_full_disk

LUCIDA = [sys.executable, "-m", "app.cli"]


def _series(folder: Path, n_slices: int = 6, size: int = 8, *, noise: bool = False,
            description: str = "Small phantom") -> Path:
    shape = (n_slices, size, size)
    if noise:  # incompressible: gzip takes its time, so an export can be caught mid-write
        array = np.random.default_rng(7).integers(-1000, 2000, size=shape).astype(np.int16)
    else:
        array = np.zeros(shape, dtype=np.int16)
        array[n_slices // 2, size // 2, size // 2] = 500
    write_series(Volume(array, np.diag([1.0, 0.7, 0.7, 1.0])), folder,
                 SeriesInfo(series_description=description), rescale_intercept=-1024.0)
    return folder


def _env(library: Path) -> dict[str, str]:
    return {**os.environ, "LUCIDA_LIBRARY": str(library)}


def _one_clear_line(stderr: str, start: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


@pytest.fixture
def small_library(tmp_path: Path, library_dir: Path,
                  capsys: pytest.CaptureFixture[str]) -> Path:
    """library_dir with one small series imported (id 1)."""
    assert main(["import", str(_series(tmp_path / "src" / "small"))]) == 0
    capsys.readouterr()
    return library_dir


# --------------------------------------------------------------------------- export killed


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library with one 320 × 256 × 256 noise series (a ~40 MB .nii.gz, about a second
    of gzip) so that a kill can land in the middle of the write."""
    root = tmp_path_factory.mktemp("big")
    library = root / "lib"
    source = _series(root / "src", n_slices=320, size=256, noise=True, description="Noise")
    proc = subprocess.run([*LUCIDA, "import", str(source)], env=_env(library),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return library


def _export_and_kill_mid_write(library: Path, out: Path) -> None:
    """Start `lucida export-volume`, SIGKILL it as soon as a file in out's folder grows."""
    folder = out.parent
    untouched = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}
    proc = subprocess.Popen([*LUCIDA, "export-volume", "1", str(out)], env=_env(library),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[str, int] = {}
    growing = ""
    deadline = time.monotonic() + 240
    try:
        while not growing and proc.poll() is None and time.monotonic() < deadline:
            for path in folder.iterdir():
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if untouched.get(path.name) == (st.st_size, st.st_mtime_ns):
                    continue
                if st.st_size > seen.setdefault(path.name, st.st_size):
                    growing = path.name
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not growing:
            proc.kill()
        proc.wait(timeout=60)
    assert growing, "no file was seen growing"
    assert proc.returncode == -signal.SIGKILL, (
        "the export finished before it could be killed mid-write: make the series larger")


def test_export_killed_mid_write_leaves_no_file_at_the_output(big_library: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "exports" / "volume.nii.gz"
    out.parent.mkdir()
    _export_and_kill_mid_write(big_library, out)
    assert not out.exists(), "a truncated volume was left at the output path"


def test_export_killed_mid_write_leaves_the_previous_file_intact(big_library: Path,
                                                                 tmp_path: Path) -> None:
    import nibabel as nib

    out = tmp_path / "exports" / "volume.nii.gz"
    out.parent.mkdir()
    old = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    nib.save(old, str(out))
    before = out.read_bytes()
    _export_and_kill_mid_write(big_library, out)
    assert out.read_bytes() == before, "the previous export was overwritten by a partial one"

    # Uninterrupted, the export replaces it whole, and leaves nothing else behind.
    for leftover in out.parent.glob(".lucida-partial-*"):
        leftover.unlink()  # what the kill above could not clean up
    proc = subprocess.run([*LUCIDA, "export-volume", "1", str(out)], env=_env(big_library),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert nib.load(str(out)).shape == (256, 256, 320)
    assert [p.name for p in out.parent.iterdir()] == ["volume.nii.gz"]


# --------------------------------------------------------------------------- locked


def test_a_library_locked_by_another_process_is_in_use(small_library: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import store.library

    monkeypatch.setattr(store.library, "BUSY_TIMEOUT_S", 1.0)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n", str(small_library / DB_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        more = _series(tmp_path / "src" / "more", description="Second")
        started = time.monotonic()
        assert main(["import", str(more)]) == 2
        waited = time.monotonic() - started
        line = _one_clear_line(capsys.readouterr().err,
                               "error: the library is in use by another Lucida (")
        assert "close the other Lucida or wait" in line
        assert 0.9 < waited < 30
        assert main(["list"]) == 0  # reading still works while the other one writes
        assert "Small phantom" in capsys.readouterr().out
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(["import", str(tmp_path / "src" / "more")]) == 0  # lock gone: it works


# --------------------------------------------------------------------------- damaged


@pytest.mark.parametrize("damage", ["not sqlite", "truncated", "malformed"])
def test_a_damaged_library_says_so_and_is_left_alone(small_library: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     damage: str) -> None:
    db = small_library / DB_NAME
    if damage == "not sqlite":
        db.write_bytes(b"<html>not a database</html>\n" * 300)
    else:
        # A library big enough that damage lands inside the tables, not only the header.
        assert main(["import", str(_series(tmp_path / "src" / "many", n_slices=300))]) == 0
        capsys.readouterr()
        data = db.read_bytes()
        if damage == "truncated":
            db.write_bytes(data[: len(data) // 2])
        else:  # scribble over the series table, which every command below reads
            conn = sqlite3.connect(db)
            page_size, root = conn.execute(
                "SELECT * FROM pragma_page_size(), "
                "(SELECT rootpage FROM sqlite_master WHERE name = 'series')").fetchone()
            conn.close()
            start = (root - 1) * page_size
            db.write_bytes(data[:start] + bytes(range(256)) * (page_size // 256)
                           + data[start + page_size:])
    before = db.read_bytes()
    for argv in (["list"], ["info", "1"], ["import", str(tmp_path / "src" / "small")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        line = _one_clear_line(err, "error: library.sqlite is damaged: ")
        assert "restore it from a backup, or move it aside" in line
        assert "Lucida will then create a new, empty library" in line
    assert db.read_bytes() == before, "Lucida changed a damaged library"


def test_a_library_from_a_newer_lucida_is_refused(small_library: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(small_library / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    assert main(["list"]) == 2
    line = _one_clear_line(capsys.readouterr().err, "error: the library at ")
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this Lucida" in line
    assert "Update Lucida" in line


def test_a_damaged_cached_geometry_is_named_and_rebuilt(small_library: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["import", str(_series(tmp_path / "src" / "two", description="Other"))]) == 0
    capsys.readouterr()
    conn = sqlite3.connect(small_library / DB_NAME)
    conn.execute("UPDATE series SET geometry_json = '{\"shape\": [6, 8' WHERE id = 1")
    conn.commit()
    conn.close()
    assert main(["list"]) == 0  # the rest of the library is usable
    out = capsys.readouterr().out
    assert "Small phantom" in out and "Other" in out
    assert main(["info", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: the cached geometry and warnings of this series in the library are " \
           "damaged (series row 1, geometry_json)" in out
    assert "shape (k, j, i):   (6, 8, 8)" in out
    with Library.open(small_library) as lib:  # `info` wrote a good cache back
        row = lib.get_series(1)
        assert row.problems == [] and row.geometry is not None


# --------------------------------------------------------------------------- read-only, full


def test_a_read_only_library_folder_is_named(small_library: Path, tmp_path: Path) -> None:
    more = _series(tmp_path / "src" / "more")
    before = (small_library / DB_NAME).read_bytes()
    for argv in (["list"], ["import", str(more)]):
        proc = run_on_read_only_folder(small_library, [*LUCIDA, *argv],
                                       env=_env(small_library))
        assert proc.returncode == 2, proc.stderr
        line = _one_clear_line(proc.stderr, f"error: the library folder {small_library} is "
                                            "read-only (")
        assert "choose another library folder with --library" in line
    assert (small_library / DB_NAME).read_bytes() == before


def test_a_full_disk_is_named_and_the_library_kept(small_library: Path, tmp_path: Path) -> None:
    many = _series(tmp_path / "src" / "many", n_slices=400, size=4)
    before = (small_library / DB_NAME).read_bytes()
    mount = tmp_path / "small-disk"
    result = run_with_full_disk(small_library, mount, [*LUCIDA, "import", str(many)],
                                env=_env(mount))
    assert result["rc"] == 2, result["stderr"]
    line = _one_clear_line(str(result["stderr"]), f"error: the disk holding the library {mount} "
                                                  "is full (database or disk is full")
    assert "free some space and try again" in line
    files = result["files"]
    assert isinstance(files, dict)
    assert files["library.sqlite"] == before.hex(), "the library changed although the import failed"
