"""The window tests' guard against jobs left running: it fails the test that leaves them.

Run in a fresh pytest process on a scratch folder holding this folder's conftest.py (with a
2 s grace instead of 20 s) and two tests: one whose job ends soon after it, one that leaves
a job polling its cancel token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

TESTS = '''
import time

from app import workers


def _poll(ctx, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not ctx.cancel.cancelled:
        time.sleep(0.02)


def test_a_job_that_ends_within_the_grace(qtbot):
    workers.make(lambda ctx: _poll(ctx, 0.5), "short-job").start()


def test_a_job_left_running(qtbot):
    workers.make(lambda ctx: _poll(ctx, 120.0), "stuck-job").start()
'''


def test_the_test_that_leaves_a_job_running_fails_and_names_it(tmp_path: Path) -> None:
    conftest = (HERE / "conftest.py").read_text()
    assert "LEFTOVER_JOBS_WAIT_S = 20.0" in conftest
    (tmp_path / "conftest.py").write_text(
        conftest.replace("LEFTOVER_JOBS_WAIT_S = 20.0", "LEFTOVER_JOBS_WAIT_S = 2.0"))
    (tmp_path / "test_jobs.py").write_text(TESTS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "test_jobs.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "PASSED test_jobs.py::test_a_job_that_ends_within_the_grace" in out, out
    assert "ERROR test_jobs.py::test_a_job_left_running" in out, out
    assert ("1 job(s) still running 2 s after the test: ['stuck-job']; cancelled: all stopped"
            in out), out
