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
    "import", "model-run", "review-opened", "decision", "edit", "add-finding", "undo", "redo",
    "reviewer-changed", "sign-off", "export",
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
    text = json.dumps([created, actor, event, series_uid, run_id, payload_json, prev_hash],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
                       None if r[5] is None else int(r[5]), str(r[6]), str(r[7]), str(r[8]))


def _own_hash_ok(row: AuditRow) -> bool:
    return row.row_hash == row_hash(row.created, row.actor, row.event, row.series_uid,
                                    row.run_id, row.payload_json, row.prev_hash)


def verify(conn: sqlite3.Connection) -> AuditVerdict:
    """Walk the chain; name the first row that was altered, inserted or deleted."""
    rows = list(iter_rows(conn))
    seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
    highest = int(seq_row[0]) if seq_row is not None else 0
    prev_hash, expected_id = GENESIS_HASH, 1
    for index, row in enumerate(rows):
        if row.id != expected_id:
            what = (f"row {expected_id} is missing: it was deleted" if row.id > expected_id
                    else f"row {row.id} is out of order: it was inserted")
            return AuditVerdict(False, len(rows), prev_hash, min(row.id, expected_id), what)
        if not _own_hash_ok(row):
            return AuditVerdict(False, len(rows), prev_hash, row.id,
                                f"row {row.id} ({row.event}) was altered: its content does not "
                                "match its hash")
        if row.prev_hash != prev_hash:
            # This row is intact (its own hash holds) but names a different predecessor:
            # the row before it was altered or inserted (and re-hashed), or rows between
            # them were deleted.
            before = rows[index - 1].id if index else None
            if before is None:
                what = f"row {row.id} ({row.event}) does not start the chain: rows before it " \
                       "were deleted or it was inserted"
                return AuditVerdict(False, len(rows), prev_hash, row.id, what)
            what = (f"row {before} ({rows[index - 1].event}) was altered or inserted: row "
                    f"{row.id} records a different hash for the row before it")
            return AuditVerdict(False, len(rows), prev_hash, before, what)
        prev_hash, expected_id = row.row_hash, row.id + 1
    if highest > len(rows) and (not rows or rows[-1].id < highest):
        missing = (rows[-1].id + 1) if rows else 1
        return AuditVerdict(False, len(rows), prev_hash, missing,
                            f"row {missing} is missing: it was deleted (the log had "
                            f"{highest} rows)")
    return AuditVerdict(True, len(rows), prev_hash)
