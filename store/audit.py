"""The audit log: append-only, each row carrying the hash of the one before.

Every event that changes the clinical story (import, model run, decision, edit,
undo / redo, sign-off, export) is one row. A row's hash covers its content and
the previous row's hash, so changing, inserting or deleting a row breaks the
chain at that row, and :func:`verify` names it. SQLite triggers refuse UPDATE
and DELETE, so only someone who drops them (a tamperer) can change history.

The chain proves the log is internally consistent; someone who rewrites every
later row can forge a new consistent chain. The head hash is therefore printed
by ``lucida audit verify`` and written into every export, where it is an anchor
outside the database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

#: Events Lucida writes; ``append`` refuses any other name so typos cannot split the story.
EVENTS = frozenset({
    "import", "model-run", "review-opened", "review-reopened", "decision", "edit",
    "add-finding", "undo", "redo", "reviewer-changed", "sign-off", "export",
})


def create_audit_tables(conn: sqlite3.Connection) -> None:
    """Migration 2: the log table and the triggers that make it append-only."""
    conn.execute("""CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        series_uid TEXT NOT NULL DEFAULT '',
        run_id INTEGER,
        payload_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL
    )""")
    conn.execute("CREATE INDEX audit_log_run ON audit_log(run_id)")
    conn.execute("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")
    conn.execute("""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")


@dataclass(frozen=True)
class AuditRow:
    id: int
    created: str
    actor: str
    event: str
    series_uid: str
    run_id: int | None
    payload_json: str
    prev_hash: str
    row_hash: str

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.payload_json)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "actor": self.actor,
                "event": self.event, "series_uid": self.series_uid, "run_id": self.run_id,
                "payload": self.payload, "prev_hash": self.prev_hash,
                "row_hash": self.row_hash}


@dataclass(frozen=True)
class AuditVerdict:
    """The result of :func:`verify`: ``ok``, or the first bad row and why."""

    ok: bool
    rows: int
    head_hash: str
    bad_row: int | None = None
    problem: str = ""


def row_hash(created: str, actor: str, event: str, series_uid: str, run_id: int | None,
             payload_json: str, prev_hash: str) -> str:
    """SHA-256 over the row's content and the previous hash (canonical JSON text)."""
    return _digest([created, actor, event, series_uid, run_id, payload_json, prev_hash])


def canonical_payload(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def append(conn: sqlite3.Connection, event: str, payload: dict[str, Any], *, actor: str,
           series_uid: str = "", run_id: int | None = None) -> int:
    """Append one event; the caller holds the write transaction (so the read of the
    previous hash and the insert are one step). Returns the new row id."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    last = conn.execute("SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = str(last[0]) if last is not None else GENESIS_HASH
    created = datetime.now(UTC).isoformat(timespec="microseconds")
    body = canonical_payload(payload)
    digest = row_hash(created, actor, event, series_uid, run_id, body, prev)
    cur = conn.execute(
        "INSERT INTO audit_log (created, actor, event, series_uid, run_id, payload_json, "
        "prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (created, actor, event, series_uid, run_id, body, prev, digest))
    return int(cur.lastrowid or 0)


def iter_rows(conn: sqlite3.Connection, *, run_id: int | None = None,
              series_uid: str | None = None) -> Iterator[AuditRow]:
    sql = ("SELECT id, created, actor, event, series_uid, run_id, payload_json, prev_hash, "
           "row_hash FROM audit_log")
    where: list[str] = []
    args: list[Any] = []
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if series_uid is not None:
        where.append("series_uid = ?")
        args.append(series_uid)
    if where:
        sql += " WHERE " + " AND ".join(where)
    for r in conn.execute(sql + " ORDER BY id", args):
        yield AuditRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                       _as_run_id(r[5]), str(r[6]), str(r[7]), str(r[8]))


def _as_run_id(value: Any) -> int | None:
    # SQLite keeps whatever a tamperer stored; show it without failing (verify hashes
    # the stored value itself, so a changed type is still caught there).
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


#: The triggers that make the table append-only; missing ones mean someone removed them.
TRIGGERS = ("audit_log_no_update", "audit_log_no_delete")


@dataclass(frozen=True)
class _Stored:
    """One row exactly as stored (values not coerced, so a changed type breaks the hash)."""

    id: int
    event: str
    values: tuple[Any, ...]  # created, actor, event, series_uid, run_id, payload_json
    prev_hash: Any
    row_hash: Any

    @property
    def own_hash_ok(self) -> bool:
        return bool(self.row_hash == _digest([*self.values, self.prev_hash]))

    def name(self) -> str:
        return f"row {self.id} ({self.event})"


def _digest(values: list[Any]) -> str:
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored_rows(conn: sqlite3.Connection) -> list[_Stored]:
    rows = conn.execute("SELECT id, created, actor, event, series_uid, run_id, payload_json, "
                        "prev_hash, row_hash FROM audit_log ORDER BY id")
    return [_Stored(int(r[0]), str(r[3]), tuple(r[1:7]), r[7], r[8]) for r in rows]


def _missing_triggers(conn: sqlite3.Connection) -> list[str]:
    present = {str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")}
    return [name for name in TRIGGERS if name not in present]


def verify(conn: sqlite3.Connection) -> AuditVerdict:
    """Walk the chain; name the first row that was altered, inserted or deleted.

    Three facts are checked for each row in id order: its own hash matches its
    content, its ``prev_hash`` is the hash of the row before it, and its id is the
    one after the previous row's. The table's AUTOINCREMENT counter
    (``sqlite_sequence``) remembers the highest id ever given, which shows rows
    deleted from the end, or deleted in the middle with the later rows renumbered.
    Where the stored rows cannot tell two stories apart, the message gives both.
    """
    # One read snapshot: a row appended between reading the rows and the counter
    # would otherwise look like a deleted last row.
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        rows = _stored_rows(conn)
        seq_row = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        missing = _missing_triggers(conn)
    finally:
        if own:
            conn.execute("COMMIT")
    highest = int(seq_row[0]) if seq_row is not None else 0
    verdict = _walk(rows, highest)
    if missing:
        note = (f"the trigger{'s' if len(missing) > 1 else ''} {', '.join(missing)} that "
                "keep the log append-only "
                f"{'were' if len(missing) > 1 else 'was'} removed outside Lucida")
        problem = f"{verdict.problem}; also {note}" if verdict.problem else note
        return AuditVerdict(False, verdict.rows, verdict.head_hash, verdict.bad_row,
                            problem)
    return verdict


def _walk(rows: list[_Stored], highest: int) -> AuditVerdict:
    n = len(rows)
    hashes = [str(r.row_hash) for r in rows]

    def fail(good_head: str, bad_row: int, problem: str) -> AuditVerdict:
        return AuditVerdict(False, n, good_head, bad_row, problem)

    prev_hash, expected_id = GENESIS_HASH, 1
    for index, row in enumerate(rows):
        if row.id != expected_id:
            if row.id > expected_id:
                span = (f"row {expected_id} is" if row.id == expected_id + 1
                        else f"rows {expected_id} to {row.id - 1} are")
                context = (f"the log starts at row {row.id}" if index == 0 else
                           f"the log goes from row {expected_id - 1} to row {row.id}")
                return fail(prev_hash, expected_id, f"{span} missing: deleted ({context})")
            return fail(prev_hash, row.id, f"{row.name()} is out of order (expected row "
                        f"{expected_id}): it was inserted")
        if not row.own_hash_ok:
            return fail(prev_hash, row.id, f"{row.name()} was altered: its content does not "
                        "match its hash")
        if row.prev_hash != prev_hash:
            return fail(prev_hash, *_explain_break(rows, hashes, index, highest))
        prev_hash, expected_id = hashes[index], row.id + 1
    if highest > n:
        first = n + 1
        span = f"row {first} is" if highest == first else f"rows {first} to {highest} are"
        last = f"the last {highest - n} rows were" if highest - n > 1 else "the last row was"
        return fail(prev_hash, first, f"{span} missing: {last} deleted (the log numbered "
                    f"{highest} rows, {n} remain)")
    return AuditVerdict(True, n, prev_hash)


def _explain_break(rows: list[_Stored], hashes: list[str], index: int,
                   highest: int) -> tuple[int, str]:
    """Row ``index`` is intact but does not link to the row before it: say why.

    Stories, checked in this order:

    * the row after it links to the row before it: this row was inserted;
    * it links to an earlier row: the rows between that one and this were inserted;
    * it links to no row, and the counter shows more rows were numbered than
      remain: a row between the two was deleted and the later rows renumbered;
    * it links to no row, the counter agrees: the row before was altered and its
      hash recomputed (or rows were deleted and the counter reset too: both said).
    """
    row = rows[index]
    before = rows[index - 1] if index else None
    hash_before = hashes[index - 1] if index else GENESIS_HASH
    if index + 1 < len(rows) and rows[index + 1].prev_hash == hash_before:
        return row.id, (f"{row.name()} was inserted: it does not link to the row before it, "
                        "and the row after it links past it")
    target = str(row.prev_hash)
    if target == GENESIS_HASH:
        earlier = -1
    else:
        earlier = next((i for i in range(index - 1) if hashes[i] == target), -2)
    if earlier >= -1 and before is not None:
        first = rows[earlier + 1]
        last = before
        span = (f"{first.name()} was" if first is last
                else f"rows {first.id} to {last.id} were")
        return first.id, (f"{span} inserted: {row.name()} links to "
                          f"{'the start of the log' if earlier < 0 else f'row {rows[earlier].id}'}"
                          f", skipping {'it' if first is last else 'them'}")
    later = next((i for i in range(index + 1, len(rows)) if hashes[i] == target), None)
    if later is not None:
        return row.id, (f"{row.name()} is out of order: it links to row {rows[later].id}, "
                        "which comes after it (rows were moved)")
    if before is None:
        return row.id, (f"{row.name()} does not start the chain: the rows before it were "
                        "deleted and the rest renumbered (or it was altered and its hash "
                        "recomputed)")
    if highest > len(rows):
        return row.id, (f"row {row.id} was deleted and the rows after it renumbered: the row "
                        f"now numbered {row.id} ({row.event}) records a hash for the row before "
                        f"it that no row has, and the log numbered {highest} rows but "
                        f"{len(rows)} remain (or {before.name()} was altered and its hash "
                        "recomputed, and rows were deleted elsewhere)")
    return before.id, (f"{before.name()} was altered and its hash recomputed: {row.name()} "
                       "records a different hash for it (or a row between them was deleted, "
                       "the later rows renumbered and the row counter reset)")
