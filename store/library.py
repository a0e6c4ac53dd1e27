"""The Lucida library: one SQLite database (``library.sqlite``) in the library folder.

It indexes patients → studies → series (one row per geometry stack) →
instances, and keeps what Lucida derives per series: measurements, model
runs, import reports. Source files are referenced by path (and zip member),
never copied or modified.

Threads: a :class:`Library` wraps one ``sqlite3`` connection, which may only
be used by the thread that opened it (sqlite3's ``check_same_thread``).
Every worker thread opens its own ``Library.open(folder)``; WAL mode lets
readers run while one writer imports.

Patient names and IDs are stored because the viewer shows them; they never
appear in log lines or record ``repr``\\ s.

Failures: every public method turns a ``sqlite3`` error into a
:class:`core.errors.StoreError` that says what happened and what to do
(``store.errors``: locked by another Lucida, damaged, read-only, disk full).
A JSON column that does not decode is named by table and row; reading goes on
with the other rows, and nothing that could not be read is ever written over.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from core.errors import StoreError
from store import audit as audit_log
from store.errors import (
    DamagedRecordError,
    LibraryTooNewError,
    decode_json,
    folder_is_writable,
    read_only_error,
    translate,
)
from store.records import (
    FileCheckReport,
    ImportReportRow,
    IndexOutcome,
    InstanceRow,
    MeasurementsRead,
    ModelRunRow,
    NewStack,
    PatientRow,
    SeriesRow,
    StoredSource,
    StudyRow,
)
from store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

DB_NAME = "library.sqlite"

#: How long a write waits for another process's write lock before giving up (seconds).
BUSY_TIMEOUT_S = 10.0

_P = ParamSpec("_P")
_R = TypeVar("_R")

_SERIES_SELECT = """
SELECT se.id, se.study_row, se.series_uid, se.stack_index, se.stack_key, se.object_kind,
       se.modality, se.series_number, se.description, se.body_part,
       se.frame_of_reference_uid, se.rows, se.columns, se.is_localizer, se.num_instances,
       se.num_frames, CAST(se.geometry_json AS BLOB), CAST(se.warnings_json AS BLOB),
       st.study_uid, st.study_date, st.description, st.patient_row,
       p.patient_id, p.patient_name
FROM series se
JOIN studies st ON st.id = se.study_row
JOIN patients p ON p.id = st.patient_row
"""
_SERIES_ORDER = (" ORDER BY p.patient_id, p.id, st.study_date, st.id,"
                 " COALESCE(se.series_number, 1 << 30), se.series_uid, se.stack_index")

_INSTANCE_SELECT = """
SELECT id, series_row, sop_instance_uid, sop_class_uid, transfer_syntax_uid, path, member,
       file_size, mtime, instance_number, number_of_frames, CAST(position_json AS BLOB)
FROM instances
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _patient_key(patient_id: str, patient_name: str) -> str:
    return f"id:{patient_id}" if patient_id else f"name:{patient_name}"


def _series_row(row: sqlite3.Row | tuple[Any, ...]) -> SeriesRow:
    geometry: dict[str, Any] | None = None
    warnings: list[str] = []
    problems: list[str] = []
    try:
        if row[16]:
            geometry = decode_json(row[16], table="series", row_id=row[0],
                                   column="geometry_json", expect=dict)
        if row[17]:
            warnings = [str(w) for w in decode_json(row[17], table="series", row_id=row[0],
                                                    column="warnings_json", expect=list)]
    except DamagedRecordError as exc:
        # Both columns are a cache of what the files say: read as "not cached" (geometry
        # None), so the next import or `lucida info` rebuilds them.
        log.warning("series %s: %s", row[0], exc)
        geometry, warnings = None, []
        problems.append(f"the cached geometry and warnings of this series in the library are "
                        f"damaged (series row {row[0]}, {exc.column}); they are rebuilt by "
                        "`lucida info` or the next import")
    return SeriesRow(
        id=row[0], study_row=row[1], series_uid=row[2], stack_index=row[3], stack_key=row[4],
        object_kind=row[5], modality=row[6], series_number=row[7], series_description=row[8],
        body_part=row[9], frame_of_reference_uid=row[10], rows=row[11], columns=row[12],
        is_localizer=bool(row[13]), num_instances=row[14], num_frames=row[15],
        geometry=geometry, warnings=warnings,
        study_uid=row[18], study_date=row[19], study_description=row[20], patient_row=row[21],
        patient_id=row[22], patient_name=row[23], problems=problems,
    )


def _instance_row(row: sqlite3.Row | tuple[Any, ...]) -> InstanceRow:
    position: tuple[float, float, float] | None = None
    if row[11]:
        try:
            value = decode_json(row[11], table="instances", row_id=row[0],
                                column="position_json")
            if isinstance(value, list) and len(value) == 3:
                position = (float(value[0]), float(value[1]), float(value[2]))
            else:
                raise ValueError("not three numbers")
        except (StoreError, TypeError, ValueError) as exc:
            # A cached header value: the loader reads positions from the files anyway.
            log.warning("instance row %s: cached position unusable (%s)", row[0], exc)
    return InstanceRow(
        id=row[0], series_row=row[1], sop_instance_uid=row[2], sop_class_uid=row[3],
        transfer_syntax_uid=row[4], path=Path(row[5]), member=row[6], file_size=row[7],
        mtime=row[8], instance_number=row[9], number_of_frames=row[10],
        position=position,
    )


def _guarded(doing: str) -> Callable[[Callable[Concatenate[Library, _P], _R]],
                                     Callable[Concatenate[Library, _P], _R]]:
    """Turn sqlite3 errors raised by a Library method into StoreErrors that explain them."""

    def wrap(method: Callable[Concatenate[Library, _P], _R]
             ) -> Callable[Concatenate[Library, _P], _R]:
        @functools.wraps(method)
        def guarded(self: Library, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
                raise  # Lucida's own mistakes, not the library's condition
            except sqlite3.Error as exc:
                raise translate(exc, self.path, doing, self.busy_timeout_s) from exc

        return guarded

    return wrap


class _ZipIndex:
    """Member names and sizes of zip archives, read once per operation."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, int] | None] = {}

    def members(self, path: str) -> dict[str, int] | None:
        if path not in self._cache:
            try:
                with zipfile.ZipFile(path) as archive:
                    self._cache[path] = {i.filename: i.file_size for i in archive.infolist()}
            except (OSError, zipfile.BadZipFile, ValueError):
                self._cache[path] = None
        return self._cache[path]

    def exists(self, path: str, member: str | None) -> bool:
        if member is None:
            return os.path.isfile(path)
        names = self.members(path)
        return names is not None and member in names


class Library:
    """An open library. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, folder: Path, connection: sqlite3.Connection,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.folder = folder
        self._conn = connection
        self._depth = 0
        self.busy_timeout_s = busy_timeout_s

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, folder: Path | str, *, busy_timeout_s: float | None = None) -> Library:
        """Open (creating if needed) the library in ``folder`` and migrate its schema.

        Raises a StoreError (see ``store.errors``) when the folder or database is
        read-only, the database is damaged, locked by another process for longer
        than ``busy_timeout_s`` (default :data:`BUSY_TIMEOUT_S`, looked up at each
        call), or was written by a newer Lucida. A damaged
        database is never changed or deleted.
        """
        if busy_timeout_s is None:
            busy_timeout_s = BUSY_TIMEOUT_S
        folder = Path(folder).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not folder.parent.exists() or folder_is_writable(folder.parent):
                raise StoreError(f"cannot create the library folder {folder}: {exc}") from exc
            raise read_only_error(folder.parent, exc.strerror or str(exc)) from exc
        db_path = folder / DB_NAME
        # SQLite would only say "unable to open database file" (or fail at the first write):
        # say plainly what is wrong before trying.
        if not folder_is_writable(folder):
            raise read_only_error(folder, "no permission to write, or a read-only disk")
        if db_path.exists() and not os.access(db_path, os.R_OK | os.W_OK):
            raise read_only_error(folder, f"{DB_NAME} may not be read and written")
        try:
            conn = sqlite3.connect(db_path, isolation_level=None, timeout=busy_timeout_s)
        except sqlite3.Error as exc:
            raise translate(exc, db_path, "opening the library", busy_timeout_s) from exc
        # Text that is not UTF-8 (a damaged name) reads with replacement characters
        # instead of failing the whole query; JSON columns are read as bytes and checked.
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("library database is not in WAL mode (%s)", mode)
            # WAL + NORMAL: no corruption on power loss, at most the last commit is lost.
            conn.execute("PRAGMA synchronous = NORMAL")
            library = cls(folder, conn, busy_timeout_s)
            library._migrate()
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, db_path, "opening the library", busy_timeout_s) from exc
        return library

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self.folder / DB_NAME

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise LibraryTooNewError(
                f"the library at {self.folder} has schema version {version}, newer than this "
                f"Lucida understands ({SCHEMA_VERSION}): it was written by a newer Lucida. "
                "Update Lucida, or choose another library with --library; Lucida leaves this "
                "one unchanged")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                # Another thread or process opening the same new library may have applied
                # it between our read and this write lock: the version is read again here.
                if self.schema_version >= number:
                    continue
                MIGRATIONS[number - 1](self._conn)
                self._conn.execute(f"PRAGMA user_version = {number}")
            log.info("library schema migrated to version %d", number)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (nested uses join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (disk full, I/O error); a failing
            # ROLLBACK must not hide the error that matters.
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.warning("rollback failed: %s", exc)
            raise
        finally:
            self._depth = 0

    # ------------------------------------------------------------------ reading

    @_guarded("reading the patients")
    def patients(self) -> list[PatientRow]:
        rows = self._conn.execute(
            "SELECT id, patient_id, patient_name, birth_date FROM patients "
            "ORDER BY patient_id, patient_name, id").fetchall()
        return [PatientRow(*row) for row in rows]

    @_guarded("reading the studies")
    def studies(self, patient: PatientRow | int | None = None) -> list[StudyRow]:
        sql = ("SELECT id, patient_row, study_uid, study_date, study_time, description, "
               "accession_number FROM studies")
        args: tuple[Any, ...] = ()
        if patient is not None:
            sql += " WHERE patient_row = ?"
            args = (patient.id if isinstance(patient, PatientRow) else int(patient),)
        rows = self._conn.execute(sql + " ORDER BY study_date, study_time, id", args).fetchall()
        return [StudyRow(*row) for row in rows]

    @_guarded("reading the series of a study")
    def series(self, study: StudyRow | int) -> list[SeriesRow]:
        study_id = study.id if isinstance(study, StudyRow) else int(study)
        rows = self._conn.execute(_SERIES_SELECT + " WHERE se.study_row = ?" + _SERIES_ORDER,
                                  (study_id,)).fetchall()
        return [_series_row(row) for row in rows]

    @_guarded("reading the series")
    def all_series(self) -> list[SeriesRow]:
        return [_series_row(row) for row in
                self._conn.execute(_SERIES_SELECT + _SERIES_ORDER).fetchall()]

    @_guarded("looking up a series")
    def get_series(self, ref: str | int) -> SeriesRow:
        """A series stack by row id, or by a unique prefix of its SeriesInstanceUID.

        ``UID:N`` selects stack N of a series; a UID (prefix) that names a single
        series with several stacks gives its main stack 0. Raises StoreError when
        nothing or more than one series matches, listing the candidates.
        """
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            row_id = int(ref)
            row = self._conn.execute(_SERIES_SELECT + " WHERE se.id = ?", (row_id,)).fetchone()
            if row is not None:
                return _series_row(row)
            if isinstance(ref, int):
                raise StoreError(f"no series with id {row_id} in the library (see `lucida list`)")
        text = str(ref).strip()
        stack: int | None = None
        if ":" in text:
            text, _, stack_text = text.rpartition(":")
            if not stack_text.isdigit():
                raise StoreError(f"bad series reference {ref!r}: expected UID[:STACK] or an id")
            stack = int(stack_text)
        if not text:
            raise StoreError("empty series reference: give a series id or UID (prefix)")
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = [_series_row(r) for r in self._conn.execute(
            _SERIES_SELECT + " WHERE se.series_uid LIKE ? ESCAPE '\\'" + _SERIES_ORDER,
            (escaped + "%",)).fetchall()]
        exact = [r for r in rows if r.series_uid == text]
        if exact:
            rows = exact
        if stack is not None:
            rows = [r for r in rows if r.stack_index == stack]
        uids = {r.series_uid for r in rows}
        if len(uids) == 1 and len(rows) > 1:
            rows = [r for r in rows if r.stack_index == 0] or rows[:1]
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise StoreError(f"no series matches {ref!r} (see `lucida list` for ids and UIDs)")
        listing = "; ".join(f"id {r.id}: {r.series_uid}:{r.stack_index}" for r in rows[:10])
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        raise StoreError(f"{ref!r} matches {len(rows)} series: {listing}{more}; "
                         "give more of the UID or the id")

    @_guarded("reading the files of a series")
    def series_instances(self, series_id: int) -> list[InstanceRow]:
        rows = self._conn.execute(
            _INSTANCE_SELECT + " WHERE series_row = ? ORDER BY COALESCE(instance_number, 1<<30),"
            " path, member", (int(series_id),)).fetchall()
        return [_instance_row(row) for row in rows]

    @_guarded("reading the files of a series")
    def series_sources(self, series_id: int) -> list[StoredSource]:
        """Where the files of a series stack are (instance-number order; the loader sorts)."""
        self.get_series(int(series_id))
        return [inst.source for inst in self.series_instances(series_id)]

    @_guarded("looking up an instance")
    def find_instance(self, sop_instance_uid: str) -> InstanceRow | None:
        row = self._conn.execute(_INSTANCE_SELECT + " WHERE sop_instance_uid = ?",
                                 (sop_instance_uid,)).fetchone()
        return _instance_row(row) if row else None

    @_guarded("searching the library")
    def search(self, text: str) -> list[SeriesRow]:
        """Series whose patient name/ID, study date, modality or descriptions contain ``text``.

        Every whitespace-separated word must match somewhere (case-insensitive);
        dates may be written 2001-02-03 or 20010203.
        """
        words = [w for w in text.split() if w]
        if not words:
            return self.all_series()
        clauses: list[str] = []
        args: list[str] = []
        fields = ("p.patient_name", "p.patient_id", "st.study_date", "se.modality",
                  "se.description", "st.description", "st.accession_number", "se.body_part",
                  "se.series_uid")
        for word in words:
            variants = {word}
            digits = word.replace("-", "").replace(".", "").replace("/", "")
            if digits.isdigit():
                variants.add(digits)
            ors = []
            for variant in variants:
                escaped = variant.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                for f in fields:
                    ors.append(f"{f} LIKE ? ESCAPE '\\'")
                    args.append(f"%{escaped}%")
            clauses.append("(" + " OR ".join(ors) + ")")
        sql = _SERIES_SELECT + " WHERE " + " AND ".join(clauses) + _SERIES_ORDER
        return [_series_row(row) for row in self._conn.execute(sql, args).fetchall()]

    @_guarded("counting the library's rows")
    def counts(self) -> dict[str, int]:
        """Number of rows per main table."""
        return {table: int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("patients", "studies", "series", "instances", "measurements",
                              "model_runs")}

    # ------------------------------------------------------------------ indexing

    def _upsert_patient(self, stack: NewStack) -> int:
        key = _patient_key(stack.patient_id, stack.patient_name)
        row = self._conn.execute("SELECT id FROM patients WHERE patient_key = ?",
                                 (key,)).fetchone()
        if row:
            return int(row[0])
        cur = self._conn.execute(
            "INSERT INTO patients (patient_key, patient_id, patient_name, birth_date) "
            "VALUES (?, ?, ?, ?)", (key, stack.patient_id, stack.patient_name, stack.birth_date))
        return int(cur.lastrowid or 0)

    def _upsert_study(self, stack: NewStack, patient_row: int) -> int:
        row = self._conn.execute("SELECT id FROM studies WHERE study_uid = ?",
                                 (stack.study_uid,)).fetchone()
        if row:
            return int(row[0])
        cur = self._conn.execute(
            "INSERT INTO studies (patient_row, study_uid, study_date, study_time, description, "
            "accession_number) VALUES (?, ?, ?, ?, ?, ?)",
            (patient_row, stack.study_uid, stack.study_date, stack.study_time,
             stack.study_description, stack.accession_number))
        return int(cur.lastrowid or 0)

    def _upsert_series(self, stack: NewStack, study_row: int) -> tuple[int, bool]:
        row = self._conn.execute("SELECT id FROM series WHERE series_uid = ? AND stack_key = ?",
                                 (stack.series_uid, stack.stack_key)).fetchone()
        if row:
            return int(row[0]), False
        index = self._conn.execute(
            "SELECT COALESCE(MAX(stack_index) + 1, 0) FROM series WHERE series_uid = ?",
            (stack.series_uid,)).fetchone()[0]
        cur = self._conn.execute(
            "INSERT INTO series (study_row, series_uid, stack_index, stack_key, object_kind, "
            "modality, series_number, description, body_part, frame_of_reference_uid, rows, "
            "columns, is_localizer, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (study_row, stack.series_uid, int(index), stack.stack_key, stack.object_kind,
             stack.modality, stack.series_number, stack.description, stack.body_part,
             stack.frame_of_reference_uid, stack.rows, stack.columns, int(stack.is_localizer),
             _now()))
        return int(cur.lastrowid or 0), True

    @_guarded("adding files to the library")
    def index_stack(self, stack: NewStack, *, zips: _ZipIndex | None = None) -> IndexOutcome:
        """Add one stack's instances (idempotent). Runs inside one transaction.

        An instance already indexed at the same place counts as existing (and
        as modified when its size or mtime changed). One whose old file is gone
        is *moved*: its location is updated. One whose old file still exists is
        a duplicate copy: the first location is kept.
        """
        zips = zips or _ZipIndex()
        with self.transaction():
            patient_row = self._upsert_patient(stack)
            study_row = self._upsert_study(stack, patient_row)
            series_id, created = self._upsert_series(stack, study_row)
            outcome = IndexOutcome(series_id=series_id, created=created)
            uids = [inst.sop_instance_uid for inst in stack.instances]
            known: dict[str, InstanceRow] = {}
            for start in range(0, len(uids), 500):
                part = uids[start:start + 500]
                marks = ",".join("?" * len(part))
                for row in self._conn.execute(
                        _INSTANCE_SELECT + f" WHERE sop_instance_uid IN ({marks})", part):
                    inst_row = _instance_row(row)
                    known[inst_row.sop_instance_uid] = inst_row
            inserts: list[tuple[Any, ...]] = []
            for inst in stack.instances:
                new_loc = str(StoredSource(inst.path, inst.member))
                old = known.get(inst.sop_instance_uid)
                if old is None:
                    inserts.append((
                        series_id, inst.sop_instance_uid, inst.sop_class_uid,
                        inst.transfer_syntax_uid, str(inst.path), inst.member, inst.file_size,
                        inst.mtime, inst.instance_number, inst.number_of_frames,
                        json.dumps(list(inst.position)) if inst.position else None))
                    continue
                if old.path == Path(inst.path) and old.member == inst.member:
                    outcome.existing += 1
                    if old.file_size != inst.file_size or abs(old.mtime - inst.mtime) > 1e-3:
                        outcome.modified.append(new_loc)
                        self._conn.execute(
                            "UPDATE instances SET file_size = ?, mtime = ?, "
                            "transfer_syntax_uid = ? WHERE id = ?",
                            (inst.file_size, inst.mtime, inst.transfer_syntax_uid, old.id))
                    continue
                outcome.existing += 1
                if zips.exists(str(old.path), old.member):
                    outcome.duplicates.append((str(old.source), new_loc))
                    continue
                outcome.moved.append((str(old.source), new_loc))
                self._conn.execute(
                    "UPDATE instances SET path = ?, member = ?, file_size = ?, mtime = ?, "
                    "transfer_syntax_uid = ? WHERE id = ?",
                    (str(inst.path), inst.member, inst.file_size, inst.mtime,
                     inst.transfer_syntax_uid, old.id))
            if inserts:
                self._conn.executemany(
                    "INSERT INTO instances (series_row, sop_instance_uid, sop_class_uid, "
                    "transfer_syntax_uid, path, member, file_size, mtime, instance_number, "
                    "number_of_frames, position_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    inserts)
            outcome.new = len(inserts)
            self._refresh_counts(series_id)
        return outcome

    def _refresh_counts(self, series_id: int) -> None:
        self._conn.execute(
            "UPDATE series SET num_instances = (SELECT COUNT(*) FROM instances WHERE "
            "series_row = ?), num_frames = (SELECT COALESCE(SUM(number_of_frames), 0) FROM "
            "instances WHERE series_row = ?) WHERE id = ?", (series_id, series_id, series_id))

    @_guarded("saving the geometry of a series")
    def set_series_geometry(self, series_id: int, geometry: dict[str, Any] | None,
                            warnings: Sequence[str]) -> None:
        """Cache a header-only geometry summary and the user-facing warnings of a stack."""
        with self.transaction():
            self._conn.execute(
                "UPDATE series SET geometry_json = ?, warnings_json = ? WHERE id = ?",
                (json.dumps(geometry) if geometry is not None else None,
                 json.dumps(list(warnings)), int(series_id)))

    @_guarded("checking the library's files")
    def check_files(self) -> FileCheckReport:
        """Compare every indexed instance with the file system: missing and modified files."""
        report = FileCheckReport()
        zips = _ZipIndex()
        for row in self._conn.execute(_INSTANCE_SELECT + " ORDER BY path, member").fetchall():
            inst = _instance_row(row)
            report.checked += 1
            path = str(inst.path)
            try:
                st = os.stat(path)
            except OSError:
                report.missing.append(inst)
                continue
            if inst.member is None:
                if st.st_size != inst.file_size or abs(st.st_mtime - inst.mtime) > 1e-3:
                    report.modified.append(inst)
                continue
            members = zips.members(path)
            if members is None or inst.member not in members:
                report.missing.append(inst)
            elif members[inst.member] != inst.file_size or abs(st.st_mtime - inst.mtime) > 1e-3:
                report.modified.append(inst)
        return report

    @_guarded("removing files from the library")
    def remove_instances(self, instance_ids: Iterable[int]) -> int:
        """Forget instances (e.g. missing files); empty series, studies, patients go too."""
        ids = [int(i) for i in instance_ids]
        with self.transaction():
            series_ids: set[int] = set()
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                marks = ",".join("?" * len(part))
                series_ids.update(r[0] for r in self._conn.execute(
                    f"SELECT DISTINCT series_row FROM instances WHERE id IN ({marks})", part))
                self._conn.execute(f"DELETE FROM instances WHERE id IN ({marks})", part)
            for series_id in series_ids:
                self._refresh_counts(series_id)
            self._conn.execute("DELETE FROM series WHERE num_instances = 0 AND id NOT IN "
                               "(SELECT series_row FROM measurements UNION "
                               "SELECT series_row FROM model_runs)")
            self._conn.execute("DELETE FROM studies WHERE id NOT IN "
                               "(SELECT study_row FROM series)")
            self._conn.execute("DELETE FROM patients WHERE id NOT IN "
                               "(SELECT patient_row FROM studies)")
        return len(ids)

    # ------------------------------------------------------------------ measurements

    def _measurement_rows(self, series_id: int) -> list[tuple[int, dict[str, Any] | None, str,
                                                              DamagedRecordError | None]]:
        """(row id, record or None, created, why it is damaged) per saved row, in order."""
        out: list[tuple[int, dict[str, Any] | None, str, DamagedRecordError | None]] = []
        for row_id, payload, created in self._conn.execute(
                "SELECT id, CAST(payload_json AS BLOB), created FROM measurements "
                "WHERE series_row = ? ORDER BY position, id", (int(series_id),)).fetchall():
            try:
                value = decode_json(payload, table="measurements", row_id=row_id,
                                    column="payload_json", expect=dict)
            except DamagedRecordError as exc:
                out.append((row_id, None, created, exc))
                continue
            out.append((row_id, value, created, None))
        return out

    @_guarded("saving measurements")
    def save_measurements(self, series_id: int, records: Sequence[dict[str, Any]]) -> None:
        """Replace the measurements of a series by ``records`` (JSON-serialisable dicts).

        A record keeps its creation time across saves when it carries the same
        ``"id"`` value as before. Refused (DamagedRecordError) while a saved row
        of the series cannot be decoded: replacing would delete it unread.
        """
        series_id = int(series_id)
        self.get_series(series_id)
        try:
            payloads = [json.dumps(dict(record), sort_keys=True, allow_nan=False)
                        for record in records]
        except (TypeError, ValueError) as exc:
            raise StoreError(f"a measurement cannot be saved as JSON: {exc}") from exc
        now = _now()
        with self.transaction():
            created_by_key: dict[str, str] = {}
            for _row_id, old, created, damage in self._measurement_rows(series_id):
                if damage is not None:
                    raise DamagedRecordError(
                        f"{damage}; the measurements of series {series_id} are not saved, "
                        "because saving would delete it", table=damage.table,
                        row_id=damage.row_id, column=damage.column) from damage
                key = old.get("id") if old is not None else None
                if key is not None:
                    created_by_key[json.dumps(key)] = created
            self._conn.execute("DELETE FROM measurements WHERE series_row = ?", (series_id,))
            rows = []
            for position, (record, payload) in enumerate(zip(records, payloads, strict=True)):
                key = record.get("id")
                created = created_by_key.get(json.dumps(key), now) if key is not None else now
                rows.append((series_id, position, str(record.get("kind", "")), payload,
                             created, now))
            self._conn.executemany(
                "INSERT INTO measurements (series_row, position, kind, payload_json, created, "
                "modified) VALUES (?, ?, ?, ?, ?, ?)", rows)

    @_guarded("reading measurements")
    def load_measurements(self, series_id: int) -> list[dict[str, Any]]:
        """The saved measurement records of a series, in saved order.

        Raises DamagedRecordError (naming the row) when any of them cannot be
        decoded; :meth:`read_measurements` returns the others as well.
        """
        records = []
        for _row_id, record, _created, damage in self._measurement_rows(series_id):
            if damage is not None:
                raise damage
            if record is not None:
                records.append(record)
        return records

    @_guarded("reading measurements")
    def read_measurements(self, series_id: int) -> MeasurementsRead:
        """Every saved record of a series that decodes, and a sentence per one that does not.

        A caller that gets any ``damaged`` must not save this series'
        measurements (and :meth:`save_measurements` refuses to).
        """
        read = MeasurementsRead()
        for _row_id, record, _created, damage in self._measurement_rows(series_id):
            if damage is not None:
                read.damaged.append(str(damage))
            elif record is not None:
                read.records.append(dict(record))
        return read

    # ------------------------------------------------------------------ model runs

    @_guarded("recording a model run")
    def add_model_run(self, series_id: int, model_id: str, model_version: str = "", *,
                      provenance: dict[str, Any] | None = None,
                      output_folder: Path | None = None, status: str = "created") -> int:
        """Record an inference run on a series; returns its id."""
        self.get_series(int(series_id))
        try:
            prov = json.dumps(provenance or {}, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"model run provenance is not JSON-serialisable: {exc}") from exc
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO model_runs (series_row, model_id, model_version, created, status, "
                "provenance_json, output_folder) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (int(series_id), model_id, model_version, _now(), status, prov,
                 str(output_folder) if output_folder is not None else None))
        return int(cur.lastrowid or 0)

    @_guarded("updating a model run")
    def update_model_run(self, run_id: int, *, status: str | None = None,
                         provenance: dict[str, Any] | None = None,
                         output_folder: Path | None = None) -> None:
        """Change a run's status, provenance (replaced whole) or output folder."""
        with self.transaction():
            if status is not None:
                self._conn.execute("UPDATE model_runs SET status = ? WHERE id = ?",
                                   (status, int(run_id)))
            if provenance is not None:
                self._conn.execute("UPDATE model_runs SET provenance_json = ? WHERE id = ?",
                                   (json.dumps(provenance, sort_keys=True), int(run_id)))
            if output_folder is not None:
                self._conn.execute("UPDATE model_runs SET output_folder = ? WHERE id = ?",
                                   (str(output_folder), int(run_id)))

    @_guarded("reading the model runs")
    def model_runs(self, series_id: int | None = None) -> list[ModelRunRow]:
        """Recorded runs (of one series); a run whose provenance is damaged says so in
        ``problem`` and has an empty provenance — the other runs read normally."""
        sql = ("SELECT id, series_row, model_id, model_version, created, status, "
               "CAST(provenance_json AS BLOB), output_folder FROM model_runs")
        args: tuple[Any, ...] = ()
        if series_id is not None:
            sql += " WHERE series_row = ?"
            args = (int(series_id),)
        runs = []
        for r in self._conn.execute(sql + " ORDER BY id", args).fetchall():
            provenance: dict[str, Any] = {}
            problem = ""
            try:
                provenance = decode_json(r[6], table="model_runs", row_id=r[0],
                                         column="provenance_json", expect=dict)
            except DamagedRecordError as exc:
                problem = str(exc)
            runs.append(ModelRunRow(id=r[0], series_row=r[1], model_id=r[2], model_version=r[3],
                                    created=r[4], status=r[5], provenance=provenance,
                                    output_folder=Path(r[7]) if r[7] else None, problem=problem))
        return runs

    @_guarded("reading a model run")
    def get_model_run(self, run_id: int) -> ModelRunRow:
        for run in self.model_runs():
            if run.id == int(run_id):
                return run
        raise StoreError(f"no model run with id {run_id} in the library")

    # ------------------------------------------------------------------ audit log

    @_guarded("writing the audit log")
    def audit(self, event: str, payload: dict[str, Any], *, actor: str, series_uid: str = "",
              run_id: int | None = None) -> int:
        """Append one audit event (joins the caller's transaction, so the event and the
        change it records commit together). Returns the row id."""
        with self.transaction():
            return audit_log.append(self._conn, event, payload, actor=actor,
                                    series_uid=series_uid, run_id=run_id)

    @_guarded("reading the audit log")
    def audit_rows(self, *, run_id: int | None = None,
                   series_uid: str | None = None) -> list[audit_log.AuditRow]:
        return list(audit_log.iter_rows(self._conn, run_id=run_id, series_uid=series_uid))

    @_guarded("verifying the audit log")
    def verify_audit(self) -> audit_log.AuditVerdict:
        return audit_log.verify(self._conn)

    # ------------------------------------------------------------------ network nodes

    @_guarded("reading the network nodes")
    def network_nodes(self) -> list[tuple[str, dict[str, Any]]]:
        """Every saved remote node as (name, config), by name; a damaged config is skipped
        with a warning (the others stay usable)."""
        out: list[tuple[str, dict[str, Any]]] = []
        for row_id, name, config in self._conn.execute(
                "SELECT rowid, name, CAST(config_json AS BLOB) FROM network_nodes ORDER BY name"
        ).fetchall():
            try:
                value = decode_json(config, table="network_nodes", row_id=row_id,
                                    column="config_json", expect=dict)
            except DamagedRecordError as exc:
                log.warning("%s", exc)
                continue
            out.append((str(name), dict(value)))
        return out

    @_guarded("saving a network node")
    def save_network_node(self, name: str, config: dict[str, Any]) -> None:
        """Insert or replace the node ``name`` (its first creation time is kept)."""
        try:
            payload = json.dumps(dict(config), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"network node {name!r} cannot be saved as JSON: {exc}") from exc
        with self.transaction():
            self._conn.execute(
                "INSERT INTO network_nodes (name, config_json, created) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json",
                (name, payload, _now()))

    @_guarded("removing a network node")
    def remove_network_node(self, name: str) -> bool:
        """Forget the node ``name``; False when there was none."""
        with self.transaction():
            cur = self._conn.execute("DELETE FROM network_nodes WHERE name = ?", (name,))
        return cur.rowcount > 0

    # ------------------------------------------------------------------ import reports

    @_guarded("saving the import report")
    def save_import_report(self, summary: str, report: dict[str, Any]) -> int:
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO import_reports (created, summary, report_json) VALUES (?, ?, ?)",
                (_now(), summary, json.dumps(report, default=str)))
        return int(cur.lastrowid or 0)

    @_guarded("reading the import reports")
    def import_reports(self, limit: int = 20) -> list[ImportReportRow]:
        """The latest reports, newest first; a damaged one has an empty report and a problem."""
        rows = self._conn.execute(
            "SELECT id, created, summary, CAST(report_json AS BLOB) FROM import_reports "
            "ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()
        out = []
        for r in rows:
            try:
                report = decode_json(r[3], table="import_reports", row_id=r[0],
                                     column="report_json", expect=dict)
                problem = ""
            except DamagedRecordError as exc:
                report, problem = {}, str(exc)
            out.append(ImportReportRow(r[0], r[1], r[2], report, problem))
        return out
