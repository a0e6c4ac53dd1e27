"""Review state survives closing and a real SIGKILL: decisions, masks, undo history."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from review import Reason, ReviewSession, SparseMask, Status
from store import Library

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_close_reopen_everything_back(recorded_run: Any) -> None:
    lib, run_id = recorded_run.library, recorded_run.run_id
    s = ReviewSession.open(lib, run_id, reviewer="dr-a")
    s.accept(["m1"])
    s.reject(["m2"], Reason.OTHER, "old scar")
    s.paint("m3", SparseMask((10, 2, 14), np.ones((1, 2, 2), dtype=bool)), erase=False)
    key = s.add_finding("mass", SparseMask((0, 0, 0), np.ones((1, 2, 2), dtype=bool)), 2)
    s.undo()  # the addition is now on the redo stack
    before = {f.key: (f.status, f.reason, f.reason_text, f.tracking_uid, f.mask.to_bytes(),
                      f.measures, f.edited) for f in s.findings}
    lib.close()

    lib2 = Library.open(recorded_run.folder)
    recorded_run.library = lib2  # the fixture closes this one
    again = ReviewSession.open(lib2, run_id, reviewer="dr-b")
    after = {f.key: (f.status, f.reason, f.reason_text, f.tracking_uid, f.mask.to_bytes(),
                     f.measures, f.edited) for f in again.findings}
    assert after == before
    assert again.get("m3").status is Status.EDITED and again.get("m3").measures.voxel_count == 12
    assert again.get("m3").original is not None
    assert again.get("m3").original.voxel_count == 8
    assert again.redo_text == f"Add {key}" and again.undo_text == "Paint on m3"
    assert again.redo() == f"Add {key}" and again.get(key).measures.voxel_count == 4
    assert again.undo() == f"Add {key}"
    assert again.undo() == "Paint on m3"
    assert again.get("m3").measures.voxel_count == 8 and not again.get("m3").edited
    assert again.undo() == "Reject m2" and again.undo() == "Accept m1"
    assert again.progress() == (0, 3) and not again.can_undo
    assert lib2.verify_audit().ok


def test_damaged_history_names_the_row(recorded_run: Any) -> None:
    lib = recorded_run.library
    ReviewSession.open(lib, recorded_run.run_id).accept("m1")
    lib._conn.execute("UPDATE review_commands SET payload_json = '{broken'")
    from store.errors import DamagedRecordError

    with pytest.raises(DamagedRecordError, match="review_commands row"):
        ReviewSession.open(lib, recorded_run.run_id)


def test_sigkill_mid_review_loses_no_committed_decision(recorded_run: Any) -> None:
    folder, run_id = recorded_run.folder, recorded_run.run_id
    recorded_run.library.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("kill_worker.py")),
                             str(folder), str(run_id)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while len(lines) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)  # mid-way: it keeps deciding until killed
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(lines) >= 40, "the worker did not report 40 commits"

    raw = sqlite3.connect(folder / "library.sqlite")
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    lib = Library.open(folder)
    recorded_run.library = lib
    assert lib.verify_audit().ok
    s = ReviewSession.open(lib, run_id)
    last: dict[str, list[str]] = {}
    for parts in lines:
        last[parts[2]] = parts
    # Every reported commit is there; at most one more (committed, then killed before print).
    done = [r for r in lib.audit_rows(run_id=run_id) if r.actor == "killer"
            and r.event in ("decision", "edit", "undo")]
    assert len(done) in (len(lines), len(lines) + 1)
    if len(done) == len(lines):
        for key, parts in last.items():
            f = s.get(key)
            assert f.status.value == parts[3]
            assert f.measures.voxel_count == int(parts[4])
            assert f.reason_text == " ".join(parts[5:])
    # The undo history is back and works.
    assert s.can_undo
    s.undo()
    assert lib.verify_audit().ok
