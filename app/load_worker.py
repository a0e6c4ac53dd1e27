"""Background jobs of the main window: load a series, import files, make the demo.

Each function builds a :class:`app.workers.Job` (not started). Workers open
their own ``store.Library`` (SQLite connections are per thread) and never
touch widgets; partial results travel by queued signals.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.workers import Job, JobContext, make

log = logging.getLogger(__name__)

# At most this often (seconds) a partly loaded volume is handed to the GUI.
PARTIAL_INTERVAL_S = 0.15


# What reading a series imports (pydicom with its codec plugins, the reader): ~0.3 s.
LOADER_MODULES = ("app.importer", "dicomio.load", "dicomio.projection")


def warm_loader() -> threading.Thread:
    """Import the series reader's modules in a background thread, so that the first
    series opened does not wait for them: at start-up they load while the window is
    built. Harmless when they are loaded already; a failure shows when a job imports."""

    def work() -> None:
        for name in LOADER_MODULES:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the load job reports it with its context
                log.debug("warming %s failed: %s", name, exc)
                return

    thread = threading.Thread(target=work, name="warm-loader", daemon=True)
    thread.start()
    return thread


def load_series_job(library_dir: Path, series_id: Any) -> Job:
    """Read a series into a Volume (or a 2-D image into a core.projection.ProjectionImage,
    which ``finished`` carries alone); ``partial`` carries ``(k, growing Volume)``.

    ``k`` is the slice that just arrived. The first slice is always sent at
    once (first image fast), later ones at most every
    :data:`PARTIAL_INTERVAL_S`; the final Volume comes with ``finished``.
    """

    def work(ctx: JobContext) -> Any:
        from app.importer import series_sources
        from dicomio.load import read_volume
        from store import Library

        library = Library.open(library_dir)
        try:
            sources = series_sources(library, series_id)
        finally:
            library.close()
        from dicomio.projection import is_projection, read_projection

        if is_projection(sources):
            # A radiograph, ultrasound or capture: 2-D frames, no partial volumes.
            return read_projection(sources, progress=ctx.progress, cancel=ctx.cancel)
        last = [0.0]
        sent = [0]

        def on_slice(k: int, partial_volume: Any) -> None:
            now = time.monotonic()
            if sent[0] == 0 or now - last[0] >= PARTIAL_INTERVAL_S:
                last[0] = now
                sent[0] += 1
                ctx.partial((k, partial_volume))

        return read_volume(sources, progress=ctx.progress, cancel=ctx.cancel, on_slice=on_slice)

    return make(work, name=f"load-series-{series_id}")


def import_job(library_dir: Path, paths: Sequence[Path]) -> Job:
    """Import files/folders into the library; ``finished`` carries the ImportReport."""
    paths = [Path(p) for p in paths]

    def work(ctx: JobContext) -> Any:
        from app.importer import import_paths
        from store import Library

        library = Library.open(library_dir)
        try:
            return import_paths(library, paths, progress=ctx.progress, cancel=ctx.cancel)
        finally:
            library.close()

    return make(work, name="import")


def demo_job(library_dir: Path) -> Job:
    """Make (or find) the built-in demo study; ``finished`` carries its series id."""

    def work(ctx: JobContext) -> Any:
        from app.demo import ensure_demo_study
        from store import Library

        ctx.progress(0.0, "Preparing the demo study")
        library = Library.open(library_dir)
        try:
            return ensure_demo_study(library, library_dir, progress=ctx.progress,
                                     cancel=ctx.cancel)
        finally:
            library.close()

    return make(work, name="demo")
