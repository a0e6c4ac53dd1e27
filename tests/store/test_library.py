"""The SQLite library: schema migrations, indexing, lookups, measurements, model runs."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from core.errors import StoreError
from store import SCHEMA_VERSION, Library, NewInstance, NewStack, StoredSource
from store.schema import MIGRATIONS

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _stack(files: list[Path], *, series_uid: str = "1.2.826.0.1.3680043.99.1",
           stack_key: str = "8x6/axial", uid_base: str = "1.2.3.4", kind: str = "image",
           patient_id: str = "P1", description: str = "Chest") -> NewStack:
    return NewStack(
        patient_id=patient_id, patient_name="DOE^JANE", birth_date="19700101",
        study_uid=f"{series_uid}.0", study_date="20240131", study_time="101500",
        study_description="CT chest", accession_number="A1", series_uid=series_uid,
        stack_key=stack_key, object_kind=kind, modality="CT", series_number=2,
        description=description, body_part="CHEST", frame_of_reference_uid="1.2.3",
        rows=8, columns=6, is_localizer=False,
        instances=tuple(
            NewInstance(sop_instance_uid=f"{uid_base}.{n}", sop_class_uid=CT_IMAGE,
                        transfer_syntax_uid="1.2.840.10008.1.2.1", path=f.absolute(), member=None,
                        file_size=f.stat().st_size, mtime=f.stat().st_mtime, instance_number=n + 1,
                        position=(0.0, 0.0, float(n)))
            for n, f in enumerate(files)),
    )


def _files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = folder / f"f{k}.dcm"
        path.write_bytes(bytes([k]) * (100 + k))
        out.append(path)
    return out


def test_new_library_is_migrated_wal_with_foreign_keys(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        assert lib.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        assert lib.path == tmp_path / "lib" / "library.sqlite"
    conn = sqlite3.connect(tmp_path / "lib" / "library.sqlite")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"patients", "studies", "series", "instances", "import_reports", "measurements",
            "model_runs"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with Library.open(tmp_path / "lib") as lib:  # reopening is a no-op
        assert lib._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert lib.counts()["series"] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Library.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "library.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this Lucida"):
        Library.open(tmp_path)


def test_corrupt_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "library.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"library\.sqlite is damaged"):
        Library.open(tmp_path)


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import store.library as library_module

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise sqlite3.OperationalError("simulated failure")

    monkeypatch.setattr(library_module, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(library_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError):
        Library.open(tmp_path)
    conn = sqlite3.connect(tmp_path / "library.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name='half_done'").fetchall()
    conn.close()


def test_index_is_idempotent_and_hierarchy_reads_back(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", 3)
    with Library.open(tmp_path / "lib") as lib:
        first = lib.index_stack(_stack(files))
        assert (first.created, first.new, first.existing) == (True, 3, 0)
        again = lib.index_stack(_stack(files))
        assert (again.created, again.new, again.existing, again.series_id) == (
            False, 0, 3, first.series_id)
        assert lib.counts() | {} == {"patients": 1, "studies": 1, "series": 1, "instances": 3,
                                     "measurements": 0, "model_runs": 0}
        [patient] = lib.patients()
        assert patient.patient_name == "DOE^JANE" and "DOE" not in repr(patient)
        [study] = lib.studies(patient)
        [series] = lib.series(study)
        assert series.num_instances == 3 and series.stack_index == 0
        assert "DOE" not in repr(series)
        assert [s.path for s in lib.series_sources(series.id)] == [f.absolute() for f in files]


def test_second_stack_of_a_series_gets_next_index(tmp_path: Path) -> None:
    a = _files(tmp_path / "a", 2)
    b = _files(tmp_path / "b", 1)
    with Library.open(tmp_path / "lib") as lib:
        s0 = lib.index_stack(_stack(a))
        s1 = lib.index_stack(_stack(b, stack_key="10x12/localizer", uid_base="9.9"))
        rows = {r.id: r for r in lib.all_series()}
        assert rows[s0.series_id].stack_index == 0 and rows[s1.series_id].stack_index == 1
        # a UID names its main stack; UID:N names the others
        assert lib.get_series("1.2.826.0.1.3680043.99.1").id == s0.series_id
        assert lib.get_series("1.2.826.0.1.3680043.99.1:1").id == s1.series_id


def test_get_series_by_id_prefix_ambiguous_missing(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        one = lib.index_stack(_stack(_files(tmp_path / "a", 1), series_uid="1.2.840.555.1",
                                     uid_base="7.1"))
        two = lib.index_stack(_stack(_files(tmp_path / "b", 1), series_uid="1.2.840.555.2",
                                     uid_base="7.2"))
        assert lib.get_series(one.series_id).series_uid == "1.2.840.555.1"
        assert lib.get_series(str(two.series_id)).series_uid == "1.2.840.555.2"
        assert lib.get_series("1.2.840.555.2").id == two.series_id
        with pytest.raises(StoreError, match=r"matches 2 series.*1\.2\.840\.555\.1.*555\.2"):
            lib.get_series("1.2.840.555")
        with pytest.raises(StoreError, match="no series matches"):
            lib.get_series("9.9.9")
        with pytest.raises(StoreError, match="no series with id 999"):
            lib.get_series(999)
        with pytest.raises(StoreError, match="no series matches"):
            lib.get_series("1.2.840.555_")  # LIKE wildcards are escaped


def test_moved_duplicate_and_modified_files(tmp_path: Path) -> None:
    files = _files(tmp_path / "old", 3)
    with Library.open(tmp_path / "lib") as lib:
        lib.index_stack(_stack(files))
        # a copy elsewhere while the originals exist: duplicates, originals kept
        copies = _files(tmp_path / "copy", 3)
        dup = lib.index_stack(_stack(copies))
        assert (dup.new, len(dup.duplicates), len(dup.moved)) == (0, 3, 0)
        # originals gone: the copies are the moved files, paths updated
        for f in files:
            f.unlink()
        moved = lib.index_stack(_stack(copies))
        assert len(moved.moved) == 3 and moved.moved[0][0].endswith("old/f0.dcm")
        series_id = moved.series_id
        assert all(s.path.parent.name == "copy" for s in lib.series_sources(series_id))
        assert lib.check_files().ok
        # modified and deleted files are reported by check_files
        copies[0].write_bytes(b"changed content that is longer")
        copies[1].unlink()
        report = lib.check_files()
        assert report.checked == 3
        assert [i.path.name for i in report.missing] == ["f1.dcm"]
        assert [i.path.name for i in report.modified] == ["f0.dcm"]
        # re-import of a modified file updates size/mtime and reports it
        again = lib.index_stack(_stack([copies[0]]))
        assert len(again.modified) == 1
        assert lib.remove_instances(i.id for i in report.missing) == 1
        assert lib.get_series(series_id).num_instances == 2


def test_zip_member_sources_and_check(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/one.dcm", b"1" * 50)
    stack = _stack([archive])
    inst = stack.instances[0]
    stack = NewStack(**{**stack.__dict__, "instances": (NewInstance(
        **{**inst.__dict__, "member": "x/one.dcm", "file_size": 50}),)})
    with Library.open(tmp_path / "lib") as lib:
        outcome = lib.index_stack(stack)
        [source] = lib.series_sources(outcome.series_id)
        assert source == StoredSource(archive.absolute(), "x/one.dcm")
        with source.open() as fp:
            assert fp.read() == b"1" * 50
        with pytest.raises(TypeError):
            Path(source)  # a zip member is not a file path
        assert lib.check_files().ok
        archive.unlink()
        assert len(lib.check_files().missing) == 1


def test_search(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        lib.index_stack(_stack(_files(tmp_path / "a", 1), series_uid="1.5.1", uid_base="5.1",
                               description="Lung 1mm", patient_id="P1"))
        lib.index_stack(_stack(_files(tmp_path / "b", 1), series_uid="1.5.2", uid_base="5.2",
                               description="Brain", patient_id="P2"))
        assert [s.series_description for s in lib.search("lung")] == ["Lung 1mm"]
        assert len(lib.search("doe")) == 2  # patient name
        assert len(lib.search("2024-01-31")) == 2  # date typed with dashes
        assert [s.patient_id for s in lib.search("p2 ct")] == ["P2"]
        assert lib.search("nothing-like-this") == []
        assert len(lib.search("")) == 2


def test_measurements_round_trip_and_replace(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        sid = lib.index_stack(_stack(_files(tmp_path / "a", 1))).series_id
        records = [
            {"id": "m1", "kind": "distance", "points_lps": [[0.0, 1.5, -2.0], [3.0, 4.0, 5.0]],
             "value_mm": 9.5},
            {"id": "m2", "kind": "ellipse", "stats": {"mean": -850.25, "sd": 12.0}},
        ]
        lib.save_measurements(sid, records)
        assert lib.load_measurements(sid) == records
        created = dict(lib._conn.execute("SELECT kind, created FROM measurements").fetchall())
        lib.save_measurements(sid, records[1:])
        assert lib.load_measurements(sid) == records[1:]
        assert lib._conn.execute("SELECT created FROM measurements").fetchone()[0] == \
            created["ellipse"]
        with pytest.raises(StoreError, match="JSON"):
            lib.save_measurements(sid, [{"bad": object()}])
        assert lib.load_measurements(sid) == records[1:]  # failed save changed nothing
        with pytest.raises(StoreError):
            lib.save_measurements(12345, records)
    with Library.open(tmp_path / "lib") as lib:  # survives closing and reopening
        assert lib.load_measurements(sid) == records[1:]


def test_model_runs_and_import_reports(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        sid = lib.index_stack(_stack(_files(tmp_path / "a", 1))).series_id
        run = lib.add_model_run(sid, "lung-nodule", "1.0", provenance={"sha256": "ab"},
                                output_folder=tmp_path / "out")
        lib.update_model_run(run, status="finished")
        [row] = lib.model_runs(sid)
        assert (row.model_id, row.status, row.provenance, row.output_folder) == (
            "lung-nodule", "finished", {"sha256": "ab"}, tmp_path / "out")
        assert lib.get_model_run(run) == row
        rid = lib.save_import_report("1 new", {"new": 1})
        assert lib.import_reports()[0].id == rid and lib.import_reports()[0].report == {"new": 1}


def test_connection_belongs_to_its_thread(tmp_path: Path) -> None:
    lib = Library.open(tmp_path)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            lib.patients()
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)
        with Library.open(tmp_path) as own:  # the documented way: one Library per thread
            own.patients()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    lib.close()
    assert len(errors) == 1


def test_new_library_opened_by_many_threads_at_once_migrates_once(tmp_path: Path) -> None:
    # A retrieve's indexing thread and the GUI can open a library that does not exist yet at
    # the same moment; each must see a fully migrated schema and none may fail.
    folder = tmp_path / "fresh"
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    versions: list[int] = []

    def open_it() -> None:
        try:
            barrier.wait()
            with Library.open(folder) as lib:
                versions.append(lib.schema_version)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert versions == [SCHEMA_VERSION] * 6
