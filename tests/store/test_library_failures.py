"""A locked, damaged or too new library file, and damaged JSON rows, on real SQLite files.

Each failure is a StoreError whose message says what happened and what to do;
a damaged file is never changed; a damaged row is named and the rest reads.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from core.errors import StoreError
from store import (
    DB_NAME,
    SCHEMA_VERSION,
    DamagedRecordError,
    Library,
    LibraryBusyError,
    LibraryDamagedError,
    LibraryTooNewError,
    NewInstance,
    NewStack,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _stack(folder: Path, n: int, series_uid: str = "1.2.826.0.1.3680043.99.7") -> NewStack:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        path = folder / f"f{k:04d}.dcm"
        path.write_bytes(bytes([k % 256]) * 64)
        files.append(path)
    return NewStack(
        patient_id="P1", patient_name="DOE^JANE", birth_date="19700101",
        study_uid=f"{series_uid}.0", study_date="20240131", study_time="101500",
        study_description="CT chest", accession_number="A1", series_uid=series_uid,
        stack_key="8x6/axial", object_kind="image", modality="CT", series_number=2,
        description="Chest", body_part="CHEST", frame_of_reference_uid="1.2.3",
        rows=8, columns=6, is_localizer=False,
        instances=tuple(
            NewInstance(sop_instance_uid=f"{series_uid}.9.{k}", sop_class_uid=CT_IMAGE,
                        transfer_syntax_uid="1.2.840.10008.1.2.1", path=f, member=None,
                        file_size=64, mtime=f.stat().st_mtime, instance_number=k + 1,
                        position=(0.0, 0.0, float(k)))
            for k, f in enumerate(files)))


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A closed library with two series (400 + 3 files) and a measurement."""
    lib_dir = tmp_path / "lib"
    with Library.open(lib_dir) as lib:
        big = lib.index_stack(_stack(tmp_path / "a", 400)).series_id
        lib.index_stack(_stack(tmp_path / "b", 3, series_uid="1.2.826.0.1.3680043.99.8"))
        lib.save_measurements(big, [{"kind": "distance", "points_lps_mm": [[0, 0, 0], [1, 0, 0]]}])
    return lib_dir


def _read_everything(lib_dir: Path) -> None:
    with Library.open(lib_dir) as lib:
        lib.counts()
        for row in lib.all_series():
            lib.series_instances(row.id)
            lib.load_measurements(row.id)
        lib.check_files()


def _raw(lib_dir: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(lib_dir / DB_NAME, isolation_level=None)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- locked


def test_a_write_lock_held_elsewhere_is_busy_after_a_bounded_wait(filled: Path) -> None:
    holder = sqlite3.connect(filled / DB_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        lib = Library.open(filled, busy_timeout_s=0.5)
        try:
            assert len(lib.all_series()) == 2  # WAL: reading goes on while another writes
            started = time.monotonic()
            with pytest.raises(LibraryBusyError) as caught:
                lib.set_series_geometry(lib.all_series()[0].id, {"shape": [1, 1, 1]}, [])
            waited = time.monotonic() - started
        finally:
            lib.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 0.4 < waited < 5.0
    message = str(caught.value)
    assert message.startswith("the library is in use by another Lucida (")
    assert "close the other Lucida or wait" in message and "0.5 s" in message
    # Once the other writer is gone, the same write works.
    with Library.open(filled, busy_timeout_s=0.5) as lib:
        lib.set_series_geometry(lib.all_series()[0].id, {"shape": [1, 1, 1]}, [])


# --------------------------------------------------------------------------- damaged


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _scribble_on_instances_table(db: Path) -> None:
    page_size, root = _raw(db.parent, "SELECT * FROM pragma_page_size(), "
                           "(SELECT rootpage FROM sqlite_master WHERE name = 'instances')")[0]
    assert isinstance(page_size, int) and isinstance(root, int)
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes(range(7, 250)) * 4)


@pytest.mark.parametrize("damage", ["not sqlite", "truncated", "malformed"])
def test_a_damaged_file_is_named_and_left_alone(filled: Path, damage: str) -> None:
    db = filled / DB_NAME
    if damage == "not sqlite":
        db.write_bytes(b"PK\x03\x04 this is a zip archive, not a database" * 200)
    elif damage == "truncated":
        _truncate(db)
    else:
        _scribble_on_instances_table(db)
    before = db.read_bytes()
    with pytest.raises(LibraryDamagedError) as caught:
        _read_everything(filled)
    message = str(caught.value)
    assert message.startswith("library.sqlite is damaged: ")
    assert "restore it from a backup, or move it aside" in message
    assert "Lucida will then create a new, empty library" in message
    assert "\n" not in message
    assert db.read_bytes() == before, "a damaged library is never changed"


def test_a_newer_schema_is_refused_and_left_alone(filled: Path) -> None:
    db = filled / DB_NAME
    _raw(filled, f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    before = db.read_bytes()
    with pytest.raises(LibraryTooNewError, match=f"schema version {SCHEMA_VERSION + 3}, newer"):
        Library.open(filled)
    assert db.read_bytes() == before


# --------------------------------------------------------------------------- damaged rows


def test_damaged_json_rows_are_named_and_the_rest_reads(filled: Path) -> None:
    with Library.open(filled) as lib:
        big, small = (row.id for row in lib.all_series())
        lib.set_series_geometry(small, {"shape": [3, 8, 6]}, ["fine"])
        run_ok = lib.add_model_run(big, "m", provenance={"ok": True})
        run_bad = lib.add_model_run(big, "m", provenance={"ok": False})
        lib.save_import_report("first", {"a": 1})
        bad_report = lib.save_import_report("second", {"b": 2})
    _raw(filled, "UPDATE series SET geometry_json = '{\"shape\": [3, 8' WHERE id = ?", (small,))
    _raw(filled, "UPDATE model_runs SET provenance_json = 'nope' WHERE id = ?", (run_bad,))
    _raw(filled, "UPDATE import_reports SET report_json = x'ff00' WHERE id = ?", (bad_report,))
    _raw(filled, "UPDATE instances SET position_json = '[1, 2' WHERE id = 1")

    with Library.open(filled) as lib:
        rows = {row.id: row for row in lib.all_series()}
        assert rows[big].problems == []
        assert rows[small].geometry is None  # read as "not cached": the next import rebuilds it
        assert len(rows[small].problems) == 1
        assert f"series row {small}, geometry_json" in rows[small].problems[0]
        assert lib.get_series(small).problems == rows[small].problems

        runs = {run.id: run for run in lib.model_runs()}
        assert runs[run_ok].provenance == {"ok": True} and runs[run_ok].problem == ""
        assert runs[run_bad].provenance == {}
        assert f"model_runs row {run_bad} has a damaged provenance_json" in runs[run_bad].problem

        reports = {r.id: r for r in lib.import_reports()}
        assert reports[bad_report].report == {}
        assert f"import_reports row {bad_report}" in reports[bad_report].problem
        assert "not UTF-8" in reports[bad_report].problem
        assert [r.report for r in reports.values() if r.id != bad_report] == [{"a": 1}]

        instances = lib.series_instances(big)
        assert len(instances) == 400
        assert {i.id: i.position for i in instances}[1] is None


@pytest.mark.parametrize("payload", ["{\"kind\": \"distance\", \"points_lps_mm\": [[1, 2",
                                     "[1, 2, 3]", "null"])
def test_a_damaged_measurement_blocks_saving_that_series(filled: Path, payload: str) -> None:
    with Library.open(filled) as lib:
        series = lib.all_series()[0].id
        good = {"kind": "angle", "points_lps_mm": [[0, 0, 0], [1, 0, 0], [1, 1, 0]]}
        lib.save_measurements(series, [good, *lib.load_measurements(series)])
    bad_id = _raw(filled, "SELECT MAX(id) FROM measurements")[0][0]
    _raw(filled, "UPDATE measurements SET payload_json = ? WHERE id = ?", (payload, bad_id))
    stored = _raw(filled, "SELECT id, payload_json FROM measurements ORDER BY id")

    with Library.open(filled) as lib:
        read = lib.read_measurements(series)
        assert read.records == [good]  # the rest still reads
        assert len(read.damaged) == 1 and f"measurements row {bad_id}" in read.damaged[0]
        with pytest.raises(DamagedRecordError, match=f"measurements row {bad_id}"):
            lib.load_measurements(series)
        with pytest.raises(DamagedRecordError, match="not saved, because saving would delete"):
            lib.save_measurements(series, [good])
    assert _raw(filled, "SELECT id, payload_json FROM measurements ORDER BY id") == stored


def test_every_store_failure_is_a_store_error(filled: Path) -> None:
    """The CLI and the GUI catch StoreError; no sqlite3 exception may get past the store."""
    (filled / DB_NAME).write_bytes(b"\0" * 100 + b"garbage" * 100)
    with pytest.raises(StoreError):
        _read_everything(filled)
