"""``lucida --first-frame-exit``: how long start-up takes, to the first frame on screen.

A start-up instrument for ``bench/startup.py`` and the tests, hidden from ``--help``.
The GUI starts as usual but opens the demo study (as at first launch); when a slice
view showing that study has finished its first render, it prints::

    first-frame 0.873

(seconds since the kernel started this process) on stdout, optionally grabs the
screen to a PNG, closes the window the normal way and exits 0.

What is measured, exactly:

* start: the process' start time as the kernel records it (``/proc/self/stat``
  field 22, in clock ticks since boot, so 10 ms steps), compared with
  ``CLOCK_BOOTTIME``. It counts the interpreter's (or the frozen bootloader's)
  own start, every import, the window's construction, the demo job, the first
  slices read in the background and the render. Elsewhere ``psutil``'s
  create time is used when installed, otherwise the time since this module
  was imported (labelled, and later than the real start).
* end: VTK's ``EndEvent`` of the render window of a visible slice view holding
  the opened volume, which VTK fires after the frame was swapped to the window.
  The optional screen grab (``--first-frame-shot``) happens after the time is
  taken and shows what the display really holds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_IMPORTED_AT = time.monotonic()
# Printed before the seconds; the bench and tests parse this line.
PREFIX = "first-frame"
TIMEOUT_S = 120.0


def _linux_start_age() -> float | None:
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # The command name (field 2) may hold spaces or ')': split after its last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 (starttime); fields[0] is field 3
        ticks_per_s = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / ticks_per_s


def process_age() -> tuple[float, str]:
    """(seconds since this process started, how that was measured)."""
    if sys.platform.startswith("linux"):
        age = _linux_start_age()
        if age is not None:
            return age, "kernel start time (/proc/self/stat)"
    try:
        import psutil

        return time.time() - psutil.Process().create_time(), "psutil create_time"
    except ImportError:
        return time.monotonic() - _IMPORTED_AT, "since app.first_frame was imported"


# Where start-up time goes: process age at each step, printed after the first-frame line as
# "first-frame-phases gui=0.57 window=1.28 demo=1.42 image=1.50 frame=1.64" (gui: run_gui
# entered, i.e. interpreter and command line ready; window: main window built; demo: the
# demo series found or made; image: its first slices handed to the views).
PHASES_PREFIX = "first-frame-phases"
_phases: dict[str, float] = {}


def mark(phase: str) -> None:
    """Remember when ``phase`` was reached (the first time only)."""
    _phases.setdefault(phase, process_age()[0])


class FirstFrameProbe:
    """Watches ``window``'s slice views; on the first frame of the opened study prints the
    time, optionally grabs the screen to ``shot``, and closes the window (exit 0)."""

    def __init__(self, window: Any, *, shot: Path | None = None) -> None:
        self.window = window
        self.shot = shot
        self.seconds: float | None = None
        self.method = ""
        self.exit_code = 1  # until the frame was seen
        self._armed = False
        self._quitting = False
        self._watched: set[int] = set()
        self._watch_views()
        window.viewer.view_made.connect(lambda _view: self._watch_views())  # made lazily
        mark("window")
        window.demo_ready.connect(lambda _series_id: mark("demo"))
        # The cells a hanging rule makes appear with the volume: watch those too.
        window.first_image_shown.connect(self._arm)
        window.load_failed.connect(lambda reason: self._fail(f"the study did not load: {reason}"))
        from PySide6.QtCore import QTimer

        # Never hang a bench or a test: no frame in this time is a failure.
        QTimer.singleShot(int(TIMEOUT_S * 1000), window,
                          lambda: self._fail(f"no frame within {TIMEOUT_S:.0f} s"))

    def _slice_views(self) -> list[Any]:
        viewer = self.window.viewer
        # The views made so far: reaching the others would make them (viewer/panel.py).
        views = list(viewer.built_slice_views().values())
        views += [c for c in viewer.cells() if hasattr(c, "plane") and c not in views]
        return views

    def _watch_views(self) -> None:
        for view in self._slice_views():
            if id(view) in self._watched:
                continue
            self._watched.add(id(view))
            view.GetRenderWindow().AddObserver(
                "EndEvent", lambda _obj, _event, v=view: self._rendered(v))

    def _arm(self, _series_id: Any) -> None:
        mark("image")
        self._watch_views()
        self._armed = True

    def _rendered(self, view: Any) -> None:
        if self.seconds is not None or not self._armed:
            return
        if getattr(view, "volume", None) is None or not view.isVisible():
            return
        self.seconds, self.method = process_age()
        from PySide6.QtCore import QTimer

        # Leave VTK's render call before touching the screen or closing windows.
        QTimer.singleShot(0, self._finish)

    def _finish(self) -> None:
        seconds = self.seconds
        assert seconds is not None  # scheduled by _rendered after it set the time
        if self.shot is not None:
            self._grab_screen(self.shot)
        _phases["frame"] = seconds
        phases = " ".join(f"{name}={age:.3f}" for name, age in _phases.items())
        print(f"{PREFIX} {seconds:.3f}\n{PHASES_PREFIX} {phases}", flush=True)
        log.info("first frame after %.3f s (%s)", seconds, self.method)
        self.exit_code = 0
        job = self.window.load_job
        if job is not None and job.running:
            # Close once the series has settled, as a user would after looking at it.
            for signal in (self.window.series_loaded, self.window.load_failed,
                           self.window.load_cancelled):
                signal.connect(lambda *_args: self._quit())
            return
        self._quit()

    def _fail(self, reason: str) -> None:
        if self.seconds is not None:
            return
        print(f"{PREFIX} failed: {reason}", file=sys.stderr, flush=True)
        self.exit_code = 1
        self._quit()

    def _quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        # The normal close: jobs cancelled and joined, preferences and state saved.
        self.window.close()
        from PySide6.QtWidgets import QApplication

        QApplication.quit()

    def _grab_screen(self, path: Path) -> None:
        from core.atomic import atomic_path

        # The window as the X server holds it: the VTK views are native child windows,
        # so this is what is really displayed (QWidget.grab would re-render them).
        pixmap = self.window.screen().grabWindow(self.window.winId())
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            if pixmap.isNull() or not pixmap.save(str(tmp), "PNG"):
                raise OSError(f"could not capture the screen into {path}")
