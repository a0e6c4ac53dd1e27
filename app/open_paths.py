"""Opening files handed to Lucida from outside: the command line and file associations.

``lucida PATH ...`` (Linux ``%F``, Windows ``"%1"``) gives the paths at start; macOS
sends them to the running application as ``QEvent.FileOpen``, one event per file. Both
go through :class:`PathOpener`: the paths are imported into the library by the same
background job (and report dialog) as the Import button, and the first imported image
series opens when the import ends, instead of the demo or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QFileOpenEvent

log = logging.getLogger(__name__)

#: Paths that arrive within this time are one import (macOS sends one event per file).
GATHER_MS = 150
#: While another import runs (the user's), try again this often.
RETRY_MS = 500
IMAGE_KINDS = ("image", "rtimage")


def first_image_series(report: Any) -> int | None:
    """The series to open after an import: its first image stack, if any."""
    for series in getattr(report, "series", []) or []:
        if series.object_kind in IMAGE_KINDS:
            return int(series.series_id)
    return None


class PathOpener(QObject):
    """Imports the paths given to :meth:`open` and opens the first imported series."""

    opened = Signal(object)  # the series id opened, or None when the import had no image

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.pending: list[Path] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start)

    def open(self, paths: Sequence[Path]) -> None:
        """Import ``paths`` soon (arrivals close together are one import)."""
        self.pending += [Path(p) for p in paths if Path(p) not in self.pending]
        self._timer.start(GATHER_MS)

    def _start(self) -> None:
        if not self.pending:
            return
        job = self.window.import_paths(list(self.pending))
        if job is None:  # another import is running: these wait their turn
            self._timer.start(RETRY_MS)
            return
        log.info("opening %d path(s) given at launch or by the system", len(self.pending))
        self.pending = []
        job.finished.connect(self._on_imported)

    def _on_imported(self, report: Any) -> None:
        series_id = first_image_series(report)
        if series_id is None:
            self.window.set_status("Nothing to view in what was opened: no image series "
                                   "was found (see the import report).")
        else:
            self.window.open_series(series_id)
        self.opened.emit(series_id)


class FileOpenFilter(QObject):
    """Turns the application's ``QEvent.FileOpen`` (macOS: a document opened from Finder or
    dropped on the Dock icon) into :meth:`PathOpener.open`. Paths that arrive before a
    window exists wait for :meth:`set_opener`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.opener: PathOpener | None = None
        self.waiting: list[Path] = []

    def set_opener(self, opener: PathOpener) -> None:
        self.opener = opener
        if self.waiting:
            opener.open(self.waiting)
            self.waiting = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.FileOpen or not isinstance(event, QFileOpenEvent):
            return False
        name = event.file() or event.url().toLocalFile()
        if not name:
            return False  # a non-file URL: not ours to open
        if self.opener is None:
            self.waiting.append(Path(name))
        else:
            self.opener.open([Path(name)])
        return True


def install_file_open_filter(app: QObject) -> FileOpenFilter:
    """Install (once) the FileOpen filter on the application and return it."""
    existing = app.findChild(FileOpenFilter)
    if isinstance(existing, FileOpenFilter):
        return existing
    file_filter = FileOpenFilter(app)
    app.installEventFilter(file_filter)
    return file_filter
