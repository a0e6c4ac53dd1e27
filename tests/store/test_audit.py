"""store.audit on a real SQLite library: the chain, its verdicts on tampered logs (edited
with sqlite3 after dropping the triggers), and the stories verify tells apart."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from store import Library
from store.audit import GENESIS_HASH, row_hash
from store.library import DB_NAME

EVENTS = ("import", "model-run", "decision", "decision", "edit", "sign-off")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    with Library.open(tmp_path) as library:
        for n, event in enumerate(EVENTS):
            library.audit(event, {"n": n}, actor="reader", series_uid="1.2.3", run_id=n or None)
    return tmp_path / DB_NAME


def _tamper(db: Path, edit: Callable[[sqlite3.Connection], object]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        edit(conn)
        conn.execute("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")
        conn.execute("""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")
    finally:
        conn.close()


def _verdict(db: Path) -> tuple[bool, int | None, str]:
    with Library.open(db.parent) as library:
        v = library.verify_audit()
    return v.ok, v.bad_row, v.problem


def test_chain_links_rows_and_survives_reopen(db: Path) -> None:
    with Library.open(db.parent) as library:
        library.audit("undo", {}, actor="second reader")
        rows = library.audit_rows()
        verdict = library.verify_audit()
    assert [r.id for r in rows] == list(range(1, 8))
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(rows))
    assert verdict.ok and verdict.rows == 7 and verdict.head_hash == rows[-1].row_hash


def test_unknown_event_is_refused_and_leaves_no_row(db: Path) -> None:
    with Library.open(db.parent) as library:
        with pytest.raises(ValueError, match="unknown audit event"):
            library.audit("decison", {}, actor="reader")
        assert len(library.audit_rows()) == len(EVENTS)


def test_a_changed_value_type_is_an_alteration(db: Path) -> None:
    """run_id 3 -> 3.0000001 reads back as int 3 for display; the hash sees the stored value."""
    _tamper(db, lambda c: c.execute("UPDATE audit_log SET run_id = 3.0000001 WHERE id = 4"))
    ok, bad, problem = _verdict(db)
    assert (ok, bad) == (False, 4) and "row 4 (decision) was altered" in problem
    with Library.open(db.parent) as library:
        assert library.audit_rows()[3].run_id == 3


def test_swapped_rows_name_the_first_moved_row(db: Path) -> None:
    def swap(c: sqlite3.Connection) -> None:
        c.execute("UPDATE audit_log SET id = -1 WHERE id = 3")
        c.execute("UPDATE audit_log SET id = 3 WHERE id = 4")
        c.execute("UPDATE audit_log SET id = 4 WHERE id = -1")

    _tamper(db, swap)
    ok, bad, problem = _verdict(db)
    assert (ok, bad) == (False, 3)
    assert "row 3 (decision)" in problem and ("inserted" in problem or "out of order" in problem)


def test_several_inserted_rows_are_named_from_the_first(db: Path) -> None:
    def insert_two(c: sqlite3.Connection) -> None:
        prev = c.execute("SELECT row_hash FROM audit_log WHERE id = 2").fetchone()[0]
        c.execute("UPDATE audit_log SET id = -id WHERE id > 2")
        c.execute("UPDATE audit_log SET id = -id + 2 WHERE id < 0")
        for new_id in (3, 4):
            created = f"2026-12-01T10:00:0{new_id}.000000+00:00"
            digest = row_hash(created, "m", "decision", "1.2.3", 2, "{}", prev)
            c.execute("INSERT INTO audit_log (id, created, actor, event, series_uid, run_id, "
                      "payload_json, prev_hash, row_hash) VALUES (?, ?, 'm', 'decision', "
                      "'1.2.3', 2, '{}', ?, ?)", (new_id, created, prev, digest))
            prev = digest

    _tamper(db, insert_two)
    ok, bad, problem = _verdict(db)
    assert (ok, bad) == (False, 3) and "rows 3 to 4 were inserted" in problem


def test_deletion_hidden_by_a_reset_counter_gives_both_stories(db: Path) -> None:
    """Row 3 deleted, rows renumbered and sqlite_sequence lowered: the stored rows are then
    the same as if row 2 had been altered and re-hashed, so the message says both."""
    def delete_and_hide(c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM audit_log WHERE id = 3")
        c.execute("UPDATE audit_log SET id = -id WHERE id > 3")
        c.execute("UPDATE audit_log SET id = -id - 1 WHERE id < 0")
        c.execute("UPDATE sqlite_sequence SET seq = 5 WHERE name = 'audit_log'")

    _tamper(db, delete_and_hide)
    ok, bad, problem = _verdict(db)
    assert (ok, bad) == (False, 2)
    assert "row 2 (model-run) was altered and its hash recomputed" in problem
    assert "a row between them was deleted" in problem


def test_every_row_deleted(db: Path) -> None:
    _tamper(db, lambda c: c.execute("DELETE FROM audit_log"))
    ok, bad, problem = _verdict(db)
    assert (ok, bad) == (False, 1) and "rows 1 to 6 are missing" in problem


def test_empty_log_verifies(tmp_path: Path) -> None:
    with Library.open(tmp_path) as library:
        verdict = library.verify_audit()
    assert verdict.ok and verdict.rows == 0 and verdict.head_hash == GENESIS_HASH
