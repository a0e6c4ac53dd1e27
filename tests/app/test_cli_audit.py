"""``lucida audit verify|export|list`` end to end through app.cli.main, on a real SQLite
library that a tamperer edits with sqlite3 (dropping the append-only triggers first)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series
from store import Library
from store.audit import GENESIS_HASH, row_hash
from store.library import DB_NAME

SERIES_UID = "1.2.826.0.1.3680043.10.777.15"
#: The events the log holds before tampering (ids 1..6).
EVENTS = ("import", "model-run", "decision", "decision", "edit", "sign-off")
TRIGGERS = ("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
            """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")


@pytest.fixture
def logged(library_dir: Path) -> Path:
    """A library whose audit log has six rows; returns the database file."""
    with Library.open(library_dir) as library:
        for n, event in enumerate(EVENTS):
            library.audit(event, {"finding": n, "note": "ø"}, actor="reader",
                          series_uid=SERIES_UID, run_id=1 if n else None)
    return library_dir / DB_NAME


def _tamper(db: Path, edit: Callable[[sqlite3.Connection], None], *,
            restore_triggers: bool = True) -> None:
    """What someone with sqlite3 does: drop the triggers, edit, put the triggers back."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        edit(conn)
        if restore_triggers:
            for sql in TRIGGERS:
                conn.execute(sql)
    finally:
        conn.close()


def _row(conn: sqlite3.Connection, row_id: int) -> tuple[str, str, str, str, int | None, str,
                                                         str, str]:
    r = conn.execute("SELECT created, actor, event, series_uid, run_id, payload_json, prev_hash,"
                     " row_hash FROM audit_log WHERE id = ?", (row_id,)).fetchone()
    return tuple(r)


def _forge(conn: sqlite3.Connection, row_id: int, prev: str, payload: str) -> None:
    """A row with a valid own hash (the hash function is public)."""
    created = "2026-12-01T10:00:00.000000+00:00"
    digest = row_hash(created, "mallory", "decision", SERIES_UID, 1, payload, prev)
    conn.execute("INSERT INTO audit_log (id, created, actor, event, series_uid, run_id, "
                 "payload_json, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row_id, created, "mallory", "decision", SERIES_UID, 1, payload, prev, digest))


def _shift_after(conn: sqlite3.Connection, after: int, by: int) -> None:
    # Through negative ids, so no two rows ever share an id mid-update.
    conn.execute("UPDATE audit_log SET id = -id WHERE id > ?", (after,))
    conn.execute("UPDATE audit_log SET id = -id + ? WHERE id < 0", (by,))


def alter_payload(conn: sqlite3.Connection) -> None:
    conn.execute("""UPDATE audit_log SET payload_json = '{"finding":2,"note":"rejected"}'
                    WHERE id = 3""")


def alter_and_rehash(conn: sqlite3.Connection) -> None:
    created, actor, event, series, run, _payload, prev, _ = _row(conn, 3)
    payload = '{"finding":2,"note":"rejected"}'
    conn.execute("UPDATE audit_log SET payload_json = ?, row_hash = ? WHERE id = 3",
                 (payload, row_hash(created, actor, event, series, run, payload, prev)))


def insert_linked(conn: sqlite3.Connection) -> None:
    """A forged row 4 that links to row 3; the old rows 4..6 become 5..7."""
    prev = _row(conn, 3)[7]
    _shift_after(conn, 3, 1)
    _forge(conn, 4, prev, '{"forged":true}')


def insert_unlinked(conn: sqlite3.Connection) -> None:
    """A forged row 4 whose prev_hash is made up (its own hash still valid)."""
    _shift_after(conn, 3, 1)
    _forge(conn, 4, "f" * 64, '{"forged":true}')


def delete_middle(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE id = 3")


def delete_middle_renumber(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE id = 3")
    _shift_after(conn, 3, -1)


def delete_last(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE id = 6")


def delete_first(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE id = 1")


def delete_first_renumber(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE id = 1")
    _shift_after(conn, 1, -1)


def insert_first(conn: sqlite3.Connection) -> None:
    _shift_after(conn, 0, 1)
    _forge(conn, 1, GENESIS_HASH, '{"forged":true}')


@pytest.mark.parametrize(("edit", "bad_row", "words"), [
    pytest.param(alter_payload, 3, "row 3 (decision) was altered: its content does not match",
                 id="a-altered"),
    pytest.param(alter_and_rehash, 3, "row 3 (decision) was altered and its hash recomputed",
                 id="b-altered-rehashed"),
    pytest.param(insert_linked, 4, "row 4 (decision) was inserted", id="c-inserted"),
    pytest.param(insert_unlinked, 4, "row 4 (decision) was inserted",
                 id="c-inserted-unlinked"),
    pytest.param(delete_middle, 3, "row 3 is missing: deleted", id="d-deleted"),
    pytest.param(delete_middle_renumber, 3, "row 3 was deleted and the rows after it renumbered",
                 id="d-deleted-renumbered"),
    pytest.param(delete_last, 6, "row 6 is missing: the last row was deleted",
                 id="e-tail-deleted"),
    pytest.param(delete_first, 1, "row 1 is missing: deleted", id="f-first-deleted"),
    pytest.param(delete_first_renumber, 1, "row 1 (model-run) does not start the chain",
                 id="f-first-deleted-renumbered"),
    pytest.param(insert_first, 1, "row 1 (decision) was inserted", id="inserted-first"),
])
def test_verify_names_the_tampered_row(logged: Path, edit: Callable[[sqlite3.Connection], None],
                                       bad_row: int, words: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 0
    assert f"OK: the audit log is intact: {len(EVENTS)} rows" in capsys.readouterr().out

    _tamper(logged, edit)
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    found = re.search(r"FAILED at row (\d+): ", out)
    assert found is not None, out
    assert int(found.group(1)) == bad_row, out
    assert words in out, out


def test_verify_in_a_real_process_and_with_library_option(logged: Path, tmp_path: Path) -> None:
    """The installed entry point, ``--library`` before the subcommand, exit codes 1 and 2."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "LUCIDA_LIBRARY"}
    cmd = [sys.executable, "-m", "app.cli", "--library", str(logged.parent), "audit", "verify"]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 rows" in done.stdout
    _tamper(logged, alter_and_rehash)
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "FAILED at row 3:" in done.stdout, done.stdout
    # A library that cannot be opened is exit 2 with one line, like every command.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / DB_NAME).write_bytes(b"this is not a database" * 100)
    cmd[cmd.index("--library") + 1] = str(broken)
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def test_plain_update_and_delete_are_refused(logged: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(logged, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET payload_json = '{}' WHERE id = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE id = 6")
    finally:
        conn.close()
    assert main(["audit", "verify"]) == 0
    assert "6 rows" in capsys.readouterr().out


def test_removed_triggers_fail_verification(logged: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _tamper(logged, lambda conn: None, restore_triggers=False)
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "audit_log_no_update, audit_log_no_delete" in out and "removed" in out


def test_rewritten_last_row_shows_only_in_the_head_hash(
        logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No later row links to the last one: the head hash printed earlier is the anchor."""
    assert main(["audit", "verify"]) == 0
    before = capsys.readouterr().out

    def rewrite_last(conn: sqlite3.Connection) -> None:
        created, actor, event, series, run, _payload, prev, _ = _row(conn, 6)
        conn.execute("UPDATE audit_log SET payload_json = '{}', row_hash = ? WHERE id = 6",
                     (row_hash(created, actor, event, series, run, "{}", prev),))

    _tamper(logged, rewrite_last)
    assert main(["audit", "verify"]) == 0
    after = capsys.readouterr().out
    head = re.compile(r"head hash ([0-9a-f]{64})")
    first, second = head.search(before), head.search(after)
    assert first is not None and second is not None
    assert first.group(1) != second.group(1)


def _export_events(library_dir: Path) -> list[dict[str, object]]:
    with Library.open(library_dir) as library:
        return [row.payload for row in library.audit_rows() if row.event == "export"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_round_trip(logged: Path, fmt: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    with Library.open(logged.parent) as library:
        stored = library.audit_rows()
    out = tmp_path / f"audit.{fmt}"
    assert main(["audit", "export", "--format", fmt, "--out", str(out)]) == 0
    assert "Wrote 6 audit rows" in capsys.readouterr().out
    data = out.read_bytes()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        assert [int(r["id"]) for r in rows] == [r.id for r in stored]
        for got, want in zip(rows, stored, strict=True):
            assert got["payload_json"] == want.payload_json
            assert (got["prev_hash"], got["row_hash"]) == (want.prev_hash, want.row_hash)
            assert got["run_id"] == ("" if want.run_id is None else str(want.run_id))
            # The file alone re-checks each row's hash.
            run = int(got["run_id"]) if got["run_id"] else None
            assert row_hash(got["created"], got["actor"], got["event"], got["series_uid"], run,
                            got["payload_json"], got["prev_hash"]) == got["row_hash"]
    else:
        document = json.loads(data)
        assert document["verified"] is True
        assert document["head_hash"] == stored[-1].row_hash
        assert [r["id"] for r in document["rows"]] == [r.id for r in stored]
        assert [r["row_hash"] for r in document["rows"]] == [r.row_hash for r in stored]
        assert [r["payload"] for r in document["rows"]] == [r.payload for r in stored]
        assert document["rows"][0]["payload"]["note"] == "ø"
    # The export is audited after the write, with the sha256 of the file it wrote.
    events = _export_events(logged.parent)
    assert len(events) == 1
    assert events[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert events[0]["rows"] == 6 and events[0]["format"] == fmt
    assert not list(tmp_path.glob(".lucida-partial-*"))
    # ... and the chain, export row included, still verifies.
    assert main(["audit", "verify"]) == 0
    assert "7 rows" in capsys.readouterr().out


def test_export_to_stdout_with_filters(logged: Path,
                                       capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["audit", "export", "--format", "json", "--run", "1"]) == 0
    data = capsysbinary.readouterr().out
    document = json.loads(data)
    assert [r["id"] for r in document["rows"]] == [2, 3, 4, 5, 6]
    assert document["filters"] == {"series_uid": None, "run_id": 1}
    events = _export_events(logged.parent)
    assert events[-1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert events[-1]["destination"] == "stdout"


def test_list_shows_rows(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "list", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "edit" in out and "sign-off" in out and "model-run" not in out
    assert main(["audit", "list", "--series", SERIES_UID, "--run", "1"]) == 0
    assert "model-run" in capsys.readouterr().out
    assert main(["audit", "list", "--series", "9.9.9"]) == 2  # no such series: one line
    assert capsys.readouterr().err.startswith("error: ")


def test_import_appends_an_import_event_without_names(library_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    array = np.zeros((3, 4, 5))
    array[1, 2, 3] = 100.0
    folder = tmp_path / "DOE^JANE" / "ct"
    write_series(Volume(array=array, affine=np.diag([2.0, 0.7, 0.6, 1.0])), folder,
                 SeriesInfo(series_uid=SERIES_UID, patient_name="DOE^JANE",
                            patient_id="PID-77", series_description="Audit phantom"))
    (tmp_path / "DOE^JANE" / "junk.txt").write_text("not dicom")
    assert main(["import", str(folder.parent)]) == 0
    assert main(["import", str(folder.parent)]) == 0  # again: audited, nothing added
    capsys.readouterr()
    with Library.open(library_dir) as library:
        rows = library.audit_rows()
    assert [r.event for r in rows] == ["import", "import"]
    first, second = rows[0].payload, rows[1].payload
    assert first["new"] == 3 and first["skipped"] == 1 and first["files_seen"] == 4
    assert first["series_added"] == 1 and first["series_uids_added"] == [SERIES_UID]
    assert second["new"] == 0 and second["existing"] == 3 and second["series_added"] == 0
    assert first["report_id"] is not None
    for row in rows:
        assert "DOE" not in row.payload_json and "JANE" not in row.payload_json
        assert "PID-77" not in row.payload_json
    assert main(["audit", "verify"]) == 0
    assert "2 rows" in capsys.readouterr().out


def test_a_cancelled_import_is_audited_with_what_it_indexed(library_dir: Path,
                                                            tmp_path: Path) -> None:
    from app.importer import import_paths
    from core.errors import CancelledError
    from core.progress import CancelToken

    for n in (1, 2):
        array = np.zeros((2, 3, 4))
        array[0, n, 1] = 50.0
        write_series(Volume(array=array, affine=np.eye(4)), tmp_path / "src" / f"s{n}",
                     SeriesInfo(series_uid=f"{SERIES_UID}.{n}", patient_name="DOE^JANE"))
    cancel = CancelToken()

    def progress(fraction: float, message: str = "") -> None:
        if message.startswith("indexed 1 of 2"):
            cancel.cancel()

    with Library.open(library_dir) as library:
        with pytest.raises(CancelledError):
            import_paths(library, [tmp_path / "src"], progress=progress, cancel=cancel,
                         actor="tester")
        rows = library.audit_rows()
        indexed = library.all_series()
    assert len(indexed) == 1 and [r.event for r in rows] == ["import"]
    payload = rows[0].payload
    assert payload["cancelled"] is True and payload["new"] == 2
    assert payload["series_uids_added"] == [indexed[0].series_uid]
    assert rows[0].actor == "tester" and "DOE" not in rows[0].payload_json
