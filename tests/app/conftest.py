"""Fixtures of the window tests: a themed qtbot and real main windows on a library."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# How long a test's leftover background jobs may take to finish after it ends.
LEFTOVER_JOBS_WAIT_S = 20.0


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window tests never touch the real user folders (settings, window state)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))


@pytest.fixture(autouse=True)
def _no_jobs_left_running() -> Iterator[None]:
    """Fail the test that leaves jobs running in ``app.workers``' pool.

    The pool has 4 threads shared by the whole test process: jobs one test leaves behind
    starve the next tests' loads and reads, which then time out far from the cause (the
    suspected cause of two CI failures). Jobs that finish within
    :data:`LEFTOVER_JOBS_WAIT_S` are let be; the rest are cancelled and named, and the test
    that left them fails."""
    yield
    workers = sys.modules.get("app.workers")
    if workers is None or workers._POOL is None:
        return
    from PySide6.QtCore import QCoreApplication

    def busy() -> int:
        return int(workers.pool().activeThreadCount())

    deadline = time.monotonic() + LEFTOVER_JOBS_WAIT_S
    while busy() and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    if not busy():
        return
    count, left = busy(), workers.running_job_names()
    stopped = workers.cancel_all_and_wait(10_000)
    pytest.fail(f"{count} job(s) still running {LEFTOVER_JOBS_WAIT_S:g} s after the test: "
                f"{left}; cancelled: {'all stopped' if stopped else f'{busy()} still running'}",
                pytrace=False)


@pytest.fixture
def qt(request: pytest.FixtureRequest) -> Any:
    """pytest-qt's qtbot, after checking for a display (before any QApplication exists)."""
    request.getfixturevalue("display")
    qtbot = request.getfixturevalue("qtbot")
    from PySide6.QtWidgets import QApplication

    from app.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())  # type: ignore[arg-type]
    return qtbot


@pytest.fixture
def make_window(qt: Any) -> Iterator[Callable[..., Any]]:
    """``make(library_dir, open_demo=False, size=(1400, 900))``: a shown MainWindow on
    that library (no modal dialogs); closed and deleted after the test."""
    from app.main_window import MainWindow
    from app.settings import PREFERENCES_FILE, WINDOW_STATE_FILE, load_preferences

    windows: list[Any] = []

    def make(library_dir: Path, *, open_demo: bool | None = False,
             size: tuple[int, int] = (1400, 900)) -> Any:
        prefs_path = library_dir / PREFERENCES_FILE
        window = MainWindow(library_dir, load_preferences(prefs_path), prefs_path,
                            library_dir / WINDOW_STATE_FILE, open_demo=open_demo,
                            interactive=False)
        window.resize(*size)
        window.show()
        qt.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.isVisible():
            window.close()
        window.deleteLater()
