"""``lucida infer`` records its run on a library series; ``lucida review`` decides on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main

DEMO_ID = "lucida-demo-lung-density"


@pytest.fixture
def demo_run(library_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
             ) -> tuple[int, int, list[str]]:
    """The demo study imported and the demo pack run on it: (series id, run id, keys)."""
    from app.importer import import_paths
    from dicomio.demo import DEMO_SERIES_UID, write_demo_study
    from review import ReviewSession
    from store.library import Library

    write_demo_study(tmp_path / "dicom", shape=(24, 96, 96))
    with Library.open(library_dir) as lib:
        import_paths(lib, [tmp_path / "dicom"])
        series_id = lib.get_series(DEMO_SERIES_UID).id
    rc = main(["infer", "--model", DEMO_ID, str(series_id), "--out", str(tmp_path / "out"),
               "--force", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    found = re.search(r"recorded as model run (\d+)", err)
    assert found, err
    run_id = int(found.group(1))
    with Library.open(library_dir) as lib:
        run = lib.get_model_run(run_id)
        assert run.model_id == DEMO_ID and run.provenance["model"]["files"]
        keys = [f.key for f in ReviewSession.open(lib, run_id, reviewer="t").findings]
        rows = lib.audit_rows(run_id=run_id)
        assert rows[0].event == "model-run" and rows[0].payload["pack_id"] == DEMO_ID
        assert rows[0].payload["sha256"] and rows[0].payload["provider"]
    assert len(keys) >= 2, "the demo pack should find at least two regions on the demo study"
    return series_id, run_id, keys


def test_review_accept_reject_sign_off_and_list(demo_run: tuple[int, int, list[str]],
                                                library_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from review import Reason, ReviewSession, Status
    from store.library import Library

    series_id, run_id, keys = demo_run
    first, rest = keys[0], keys[1:]
    rejects = [f"{k}:other:seen on prior CT" for k in rest]
    assert main(["review", str(series_id), "--run", str(run_id), "--accept", first,
                 "--reject", *rejects, "--reviewer", "Dr Script"]) == 0
    out = capsys.readouterr().out
    assert f"{len(keys)} of {len(keys)} reviewed" in out and "accepted" in out
    with Library.open(library_dir) as lib:
        s = ReviewSession.open(lib, run_id, reviewer="x")
        assert s.get(first).status is Status.ACCEPTED and s.get(first).reviewer == "Dr Script"
        for k in rest:
            assert s.get(k).reason is Reason.OTHER
            assert s.get(k).reason_text == "seen on prior CT"
        decisions = [r for r in lib.audit_rows(run_id=run_id) if r.event == "decision"]
        assert len(decisions) == 2 and decisions[0].actor == "Dr Script"
        assert lib.verify_audit().ok
    assert main(["review", str(series_id), "--run", str(run_id), "--sign-off"]) == 0
    assert "signed off" in capsys.readouterr().out
    assert main(["review", str(series_id), "--run", str(run_id), "--accept", rest[0]]) == 2
    assert "signed off" in capsys.readouterr().err
    assert main(["review", str(series_id), "--list"]) == 0  # latest run by default
    assert "rejected" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--accept", "m999"], "no finding 'm999'"),
    (["--reject", "m1:boring"], "unknown reject reason 'boring'"),
    (["--reject", "m1"], "expected ID:REASON"),
    (["--reject", "m1:other"], "needs text"),
])
def test_bad_id_or_reason_is_one_line_exit_2_and_changes_nothing(
        demo_run: tuple[int, int, list[str]], library_dir: Path,
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    from store.library import Library

    series_id, run_id, keys = demo_run
    with Library.open(library_dir) as lib:
        before = len(lib.audit_rows(run_id=run_id))
    rc = main(["review", str(series_id), "--run", str(run_id), "--accept", keys[0], *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with Library.open(library_dir) as lib:
        events = [r.event for r in lib.audit_rows(run_id=run_id)[before:]]
    assert "decision" not in events


def test_review_of_a_run_of_another_series_is_refused(demo_run: tuple[int, int, list[str]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    series_id, run_id, _keys = demo_run
    assert main(["review", str(series_id), "--run", str(run_id + 5), "--list"]) == 2
    assert "is not a run of series" in capsys.readouterr().err


def _review_state(library_dir: Path, run_id: int) -> list[tuple[str, str, str, str]]:
    from review import ReviewSession
    from store.library import Library

    with Library.open(library_dir) as lib:
        session = ReviewSession.open(lib, run_id, reviewer="checker")
        state = [(f.key, f.status.value, f.reason.value if f.reason else "", f.reason_text)
                 for f in session.findings]
        return [*state, ("undo", str(session.undo_text), "", "")]


def test_sigkill_of_a_real_lucida_mid_scripted_review_loses_no_committed_decision(
        demo_run: tuple[int, int, list[str]], library_dir: Path, tmp_path: Path) -> None:
    """A real ``lucida review --script -`` process, fed decisions without end, is killed
    with SIGKILL after it has confirmed some: the library holds exactly the confirmed
    steps (or one more, committed just before the kill), is consistent, and its audit
    chain verifies. The expected state comes from replaying the confirmed steps with
    another real ``lucida`` process on a copy of the library taken before."""
    import os
    import shutil
    import signal
    import sqlite3
    import subprocess
    import sys
    import threading

    from store.library import Library

    series_id, run_id, keys = demo_run
    before = tmp_path / "before"
    shutil.copytree(library_dir, before)
    lucida = Path(sys.executable).with_name("lucida")  # the installed console script

    def step(n: int) -> str:
        key = keys[(n // 3) % len(keys)]
        return (f"accept {key}", f"reject {key}:other:step {n}", "undo")[n % 3]

    def start(library: Path, script: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(lucida), "review", str(series_id), "--run", str(run_id), "--reviewer",
             "killer", "--script", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, LUCIDA_LIBRARY=str(library)))

    proc = start(library_dir, "-")
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:  # endless; the pipe breaks when the process dies
        try:
            for n in range(100_000):
                proc.stdin.write(step(n) + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    confirmed: list[str] = []
    while len(confirmed) < 40:
        line = proc.stdout.readline()
        assert line.startswith("committed "), (line, proc.stderr.read()  # type: ignore[union-attr]
                                               if proc.poll() is not None else "")
        confirmed.append(line.split(" ", 2)[2].strip())
    os.kill(proc.pid, signal.SIGKILL)  # it goes on deciding until then
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Everything it confirmed before it died (the pipe keeps what was written).
    whole_lines = proc.stdout.read().split("\n")[:-1]  # a line cut by the kill is no line
    confirmed += [line.split(" ", 2)[2].strip() for line in whole_lines
                  if line.startswith("committed ")]
    assert confirmed == [step(n) for n in range(len(confirmed))]

    conn = sqlite3.connect(library_dir / "library.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Library.open(library_dir) as lib:
        assert lib.verify_audit().ok
        decided = [r for r in lib.audit_rows(run_id=run_id) if r.actor == "killer"
                   and r.event in ("decision", "undo")]
    assert len(confirmed) <= len(decided) <= len(confirmed) + 1
    killed = _review_state(library_dir, run_id)

    # The same steps (and the one after them) replayed on the copy by another real process.
    expected = []
    for count in (len(confirmed), len(confirmed) + 1):
        replay = tmp_path / f"replay{count}"
        shutil.copytree(before, replay)
        script = tmp_path / f"steps{count}.txt"
        script.write_text("".join(step(n) + "\n" for n in range(count)), encoding="utf-8")
        done = start(replay, str(script))
        _out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        expected.append(_review_state(replay, run_id))
    assert killed in expected
