"""When a push to the storage SCP goes quiet, the series on screen loads again if the
library now holds instances of it that it was opened without, whatever order the
indexing signals came in (app.network_wiring.NetworkWiring._on_push_quiet).

The real window on a real library; the demo study's files play the pushed instances,
indexed as the SCP's indexing thread indexes them (app.importer.ArrivalIndexer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def _index(library_dir: Path, paths: list[Path]) -> None:
    from app.importer import ArrivalIndexer
    from store import Library

    indexer, library = ArrivalIndexer(), Library.open(library_dir)
    try:
        indexer.index(library, paths)
        indexer.finish(library)
    finally:
        library.close()


def _loaded(window: Any) -> bool:
    return window.current_volume is not None and not window.load_job.running


def _open_first_ten(make_window: Any, qt: Any, library_dir: Path, tmp_path: Path
                    ) -> tuple[Any, list[Path], Any]:
    """The demo's first 10 of 24 slices indexed, a window on them, the series opened and
    loaded: (window, all 24 files, series id)."""
    from dicomio.demo import write_demo_study

    files = write_demo_study(tmp_path / "demo", shape=(24, 64, 64))
    _index(library_dir, files[:10])
    window = make_window(library_dir)
    window.refresh_library()
    (series_id,) = window.browser.visible_series_ids()
    window.open_series(series_id)
    qt.waitUntil(lambda: _loaded(window), timeout=WAIT_MS)
    assert window.current_volume.shape[0] == 10
    return window, files, series_id


def test_the_series_on_screen_loads_again_when_a_quiet_push_left_it_incomplete(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    window, files, series_id = _open_first_ten(make_window, qt, library_dir, tmp_path)
    wiring = window.network

    # A quiet push that brought nothing new: the series on screen stays as it is.
    opened_job = window.load_job
    wiring._on_push_quiet()
    assert window.load_job is opened_job

    # The rest arrives and is indexed, but the SCP's indexed signals never reached the
    # window (wiring._pushing is empty): the library's count still says it grew.
    _index(library_dir, files[10:])
    assert not wiring._pushing
    wiring._on_push_quiet()
    assert window.load_job is not opened_job
    qt.waitUntil(lambda: _loaded(window), timeout=WAIT_MS)
    assert window.current_series_id == series_id
    assert window.current_volume.shape[0] == 24

    # Loaded whole: the next quiet push has nothing to add.
    reloaded_job = window.load_job
    wiring._on_push_quiet()
    assert window.load_job is reloaded_job


def test_a_busy_job_pool_does_not_hold_back_the_end_of_a_push(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    """Four long user jobs fill app.workers' pool; a push going quiet still flushes the
    SCP's last batch and loads the series on screen again (the flush has its own thread)."""
    import threading

    from app import workers
    from app.settings import PREFERENCES_FILE, load_preferences, save_preferences
    from tests.net.conftest import free_port

    prefs = load_preferences(library_dir / PREFERENCES_FILE)
    prefs.scp_enabled, prefs.local_port = True, free_port()
    prefs.scp_allowed_aes = ["A_PACS"]
    save_preferences(prefs, library_dir / PREFERENCES_FILE)
    window, files, _ = _open_first_ten(make_window, qt, library_dir, tmp_path)
    assert window.network.scp is not None, window.network.scp_problem
    opened_job = window.load_job

    release = threading.Event()
    blockers = [workers.make(lambda _ctx: release.wait(60), name=f"long job {n}").start()
                for n in range(workers.pool().maxThreadCount())]
    try:
        qt.waitUntil(lambda: workers.pool().activeThreadCount()
                     == workers.pool().maxThreadCount(), timeout=WAIT_MS)
        _index(library_dir, files[10:])
        window.network._flush_scp()  # what the SCP's idle timer calls
        qt.waitUntil(lambda: window.load_job is not opened_job, timeout=10_000)
    finally:
        release.set()
    qt.waitUntil(lambda: not any(job.running for job in blockers), timeout=WAIT_MS)
    qt.waitUntil(lambda: _loaded(window), timeout=WAIT_MS)
    assert window.current_volume.shape[0] == 24
