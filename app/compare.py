"""Comparison with a prior: a second series beside the open one, linked to it.

The main window's viewing area becomes a horizontal splitter: the open
(primary) series' :class:`viewer.ViewerPanel` on the left and, while a
comparison is open, a second panel for reading on the right. The review,
findings, measurements and models stay with the primary series; the second
pane only shows.

Linking (:class:`viewer.link.PaneLink`): when both series share a Frame of
Reference the link is the identity in LPS and is made as soon as both are
loaded; otherwise the user asks for a rigid registration
(:func:`core.registration.register_rigid`, a background :mod:`app.workers`
job with progress and cancel) and the link goes through its transform. The
pane's header says which: "Linked: same frame of reference", "Linked:
registered (…)", "Not linked — …".
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import workers
from app.load_worker import load_series_job
from core.projection import ProjectionImage

if TYPE_CHECKING:
    from core.registration import RigidResult

log = logging.getLogger(__name__)

SAME_FOR = "Linked: same frame of reference"
NOT_LINKED_FOR = "Not linked — different frame of reference: Register"
UNLINKED = "Not linked (unlinked): Link or Register"
WAITING = "Not linked — waiting for both series to load"
NOT_LINKED_2D = "Not linked — 2-D images have no patient geometry to link"


def describe_series(volume: Any) -> str:
    meta = getattr(volume, "metadata", {}) or {}
    bits = [str(getattr(volume, "modality", "") or ""),
            str(meta.get("study_date") or ""),
            str(meta.get("series_description") or "")]
    return " · ".join(b for b in bits if b) or "series"


class ComparisonController(QObject):
    """The second pane, its loading, registration and link. One per main window."""

    first_image_shown = Signal(object)   # series id of the compared series
    loaded = Signal(object)              # series id, whole volume in the pane
    load_failed = Signal(str)
    link_changed = Signal(str)           # the link label's text
    registered = Signal(object)          # core.registration.RigidResult
    registration_cancelled = Signal()
    registration_failed = Signal(str)
    closed = Signal()

    def __init__(self, window: Any, primary: Any) -> None:
        super().__init__(window)
        self.window = window
        self.primary = primary
        self.series_id: Any = None
        self.volume: Any = None
        self.result: RigidResult | None = None
        self._load_job: workers.Job | None = None
        self._register_job: workers.Job | None = None
        self._shown_array: Any = None
        self._even_pending = False
        self.timings: dict[str, float] = {}

        self.splitter = QSplitter(Qt.Orientation.Horizontal, window)
        self.splitter.setObjectName("compareSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(primary)

        self.pane = QWidget(window)
        self.pane.setObjectName("comparePane")
        column = QVBoxLayout(self.pane)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        header = QWidget(self.pane)
        header.setObjectName("compareHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(6, 2, 6, 2)
        self.title = QLabel("", header)
        self.title.setObjectName("compareTitle")
        self.link_label = QLabel(WAITING, header)
        self.link_label.setObjectName("compareLinkLabel")
        self.progress = QProgressBar(header)
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(160)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel", header)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        self.register_button = QPushButton("Register", header)
        self.register_button.setToolTip("Rigid registration (mutual information) of the "
                                        "compared series to the open one, then link them")
        self.register_button.clicked.connect(self.register)
        self.link_button = QPushButton("Unlink", header)
        self.link_button.clicked.connect(self.toggle_link)
        self.close_button = QPushButton("Close", header)
        self.close_button.setToolTip("Close the comparison")
        self.close_button.clicked.connect(self.close)
        # Title and link state may shrink (full text in the tooltip), so the pane can
        # take half of a narrow viewing area.
        for label in (self.title, self.link_label):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # The link state is what the reader must not miss: it wraps rather than being cut.
        self.link_label.setWordWrap(True)
        self.link_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        row.addWidget(self.title, 1)
        for w in (self.register_button, self.link_button, self.close_button):
            row.addWidget(w)
        column.addWidget(header)
        # Second row: the link state, and progress while loading or registering.
        status = QHBoxLayout()
        status.setContentsMargins(6, 0, 6, 0)
        status.addWidget(self.link_label, 1)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        column.addLayout(status)
        self._column = column
        # The second ViewerPanel and its link are made when a comparison first opens
        # (``panel``, ``link``): three more VTK views cost ~0.25 s of every start-up.
        self._panel: Any = None
        self._link: Any = None
        self._identity_visible = True
        self.splitter.addWidget(self.pane)
        for index in (0, 1):  # a resized window keeps the halves even
            self.splitter.setStretchFactor(index, 1)
        self.pane.hide()

        self._set_link_text(WAITING)
        self.act_compare = QAction("Compare with selected series", window)
        self.act_compare.setToolTip("Show the series selected in the library beside the "
                                    "open one, linked")
        self.act_compare.triggered.connect(lambda _c=False: self.compare_selected())
        self.act_register = QAction("Register compared series", window)
        self.act_register.triggered.connect(lambda _c=False: self.register())
        self.act_unlink = QAction("Unlink / link panes", window)
        self.act_unlink.triggered.connect(lambda _c=False: self.toggle_link())
        self.act_close = QAction("Close comparison", window)
        self.act_close.triggered.connect(lambda _c=False: self.close())
        window.series_loading.connect(self._on_primary_loading)
        window.series_loaded.connect(self._on_primary_loaded)
        primary.layout_changed.connect(self._follow_layout)
        self._update_actions()

    # ------------------------------------------------------------------ second pane
    @property
    def panel(self) -> Any:
        """The second pane's :class:`viewer.ViewerPanel`, made on first use."""
        if self._panel is None:
            from viewer import ViewerPanel

            panel = ViewerPanel(self.pane)
            panel.setObjectName("compareViewer")
            self._column.addWidget(panel, 1)
            crosshair = getattr(self.window, "act_crosshair", None)
            if crosshair is not None:
                panel.set_crosshair_visible(crosshair.isChecked())
            panel.set_identity_visible(self._identity_visible)
            self._panel = panel
        return self._panel

    @property
    def link(self) -> Any:
        """The :class:`viewer.link.PaneLink` of the two panes, made on first use."""
        if self._link is None:
            from viewer.link import PaneLink

            self._link = PaneLink(self.primary, self.panel, self)
        return self._link

    def set_identity_visible(self, visible: bool) -> None:
        self._identity_visible = bool(visible)
        if self._panel is not None:
            self._panel.set_identity_visible(self._identity_visible)

    def _set_crosshair_visible(self, visible: bool) -> None:
        if self._panel is not None:
            self._panel.set_crosshair_visible(visible)

    # ------------------------------------------------------------------ menu
    def menu(self, parent: QWidget) -> QMenu:
        """View ▸ Compare (built with the window's menus, after its actions)."""
        crosshair = getattr(self.window, "act_crosshair", None)
        if crosshair is not None:  # the crosshair toggle applies to both panes
            crosshair.toggled.connect(self._set_crosshair_visible)
        menu = QMenu("Compare", parent)
        menu.addActions([self.act_compare, self.act_register, self.act_unlink, self.act_close])
        return menu

    def _update_actions(self) -> None:
        is_open = self.pane.isVisible() or self.series_id is not None
        self.act_register.setEnabled(is_open)
        self.act_unlink.setEnabled(is_open)
        self.act_close.setEnabled(is_open)

    # ------------------------------------------------------------------ opening
    @property
    def is_open(self) -> bool:
        return self.series_id is not None

    def compare_selected(self) -> workers.Job | None:
        series_id = self.window.browser.selected_series_id()
        if series_id is None:
            self.window.set_status("Select a series in the library to compare with.")
            return None
        return self.open_series(series_id)

    def open_series(self, series_id: Any) -> workers.Job | None:
        """Load ``series_id`` into the second pane (in the background) and link when possible."""
        if series_id is None:
            return None
        if series_id == self.window.current_series_id:
            self.window.set_status("That series is the open one: choose another to compare.")
            return None
        self._cancel_jobs()
        self.link.unlink()
        self.result = None
        self.series_id = series_id
        self.volume = None
        self._shown_array = None
        self.panel.clear()
        self.panel.set_identity_visible(bool(self.window.prefs.identity_visible))
        self._follow_layout(self.primary.layout_name())
        if not self.pane.isVisible():
            self.pane.show()
            self.split_evenly()
            self._even_pending = True
        self.title.setText("Loading…")
        self._set_link_text(WAITING)
        self.timings = {"start": time.perf_counter()}
        job = load_series_job(self.window.library_dir, series_id)
        job.progress.connect(self._on_progress)
        job.partial.connect(lambda v, j=job: self._on_partial(j, v))
        job.finished.connect(lambda v, j=job: self._on_loaded(j, v))
        job.failed.connect(lambda exc, j=job: self._on_failed(j, exc))
        job.cancelled.connect(lambda j=job: self._on_load_cancelled(j))
        job.done.connect(self._on_job_done)
        self._load_job = job
        self._show_busy()
        self._update_actions()
        return job.start()

    def _split_if_pending(self) -> None:
        # Once, at the first image: by then the docks and banners have their sizes.
        if self._even_pending:
            self._even_pending = False
            self.split_evenly()
            QTimer.singleShot(0, self.split_evenly)

    def split_evenly(self) -> None:
        """Half the viewing area each (sizes in pixels: proportions are not kept on show)."""
        total = max(self.splitter.width(), 2)
        self.splitter.setSizes([total // 2, total - total // 2])

    @property
    def load_job(self) -> workers.Job | None:
        return self._load_job

    @property
    def register_job(self) -> workers.Job | None:
        return self._register_job

    def _on_partial(self, job: workers.Job, value: Any) -> None:
        if job is not self._load_job or job.cancel_token.cancelled:
            return
        _k, volume = value
        if self._shown_array is None:
            self._show(volume)
            self.timings["first_image"] = time.perf_counter()
            self.first_image_shown.emit(self.series_id)
        elif volume.array is self._shown_array and self.panel.volume is volume:
            self.panel.refresh_slices()
        else:
            self._show(volume)

    def _show(self, volume: Any) -> None:
        self._split_if_pending()
        self._shown_array = volume.array
        self.panel.set_volume(volume)
        self.title.setText(describe_series(volume))
        self.title.setToolTip(self.title.text())

    def _on_loaded(self, job: workers.Job, volume: Any) -> None:
        if job is not self._load_job:
            return
        if isinstance(volume, ProjectionImage):
            # A radiograph or other 2-D image: shown for reading, nothing to link in LPS.
            self._split_if_pending()
            self.panel.set_projection(volume)
            self.title.setText(describe_series(volume))
            self.volume = volume
            self.timings["first_image"] = self.timings["loaded"] = time.perf_counter()
            self.first_image_shown.emit(self.series_id)
            self.link.unlink()
            self._set_link_text(NOT_LINKED_2D)
            self.loaded.emit(self.series_id)
            return
        if self._shown_array is None or volume.array is not self._shown_array \
                or self.panel.volume is not volume:
            first = self._shown_array is None
            self._show(volume)
            if first:
                self.timings["first_image"] = time.perf_counter()
                self.first_image_shown.emit(self.series_id)
        self.panel.loading_finished()
        self.volume = volume
        self.timings["loaded"] = time.perf_counter()
        self.auto_link()
        self.loaded.emit(self.series_id)

    def _on_failed(self, job: workers.Job, exc: Exception) -> None:
        if job is not self._load_job:
            return
        self.title.setText("Could not open the series")
        self.window.show_problem("Opening the compared series failed", str(exc))
        self.load_failed.emit(str(exc))

    def _on_load_cancelled(self, job: workers.Job) -> None:
        if job is self._load_job and self.volume is None:
            self.close()

    # ------------------------------------------------------------------ linking
    def _both_volumes(self) -> bool:
        from core.volume import Volume

        return isinstance(self.volume, Volume) and isinstance(self.window.current_volume, Volume)

    def same_units(self) -> bool:
        """Window values mean the same in both (same modality): then the window is linked."""
        a = str(getattr(self.window.current_volume, "modality", "") or "").upper()
        b = str(getattr(self.volume, "modality", "") or "").upper()
        return a == b

    def _window_note(self) -> str:
        return "" if self.link.window_linked else " (window not linked: other modality)"

    def same_frame_of_reference(self) -> bool:
        a = str(getattr(self.window.current_volume, "frame_of_reference_uid", "") or "")
        b = str(getattr(self.volume, "frame_of_reference_uid", "") or "")
        return bool(a) and a == b

    def auto_link(self) -> None:
        """Link by identity when the two share a Frame of Reference, else say what to do."""
        if not self._both_volumes():
            self.link.unlink()
            flat = (isinstance(self.volume, ProjectionImage)
                    or (isinstance(getattr(self.window, "current_projection", None),
                                  ProjectionImage) and self.window.current_volume is None))
            self._set_link_text(NOT_LINKED_2D if flat else WAITING)
            return
        if self.same_frame_of_reference():
            self.link.link(None, window=self.same_units())
            self._set_link_text(SAME_FOR + self._window_note())
        elif self.result is not None:
            self.link.link(self.result.matrix, window=self.same_units())
            self._set_link_text(registered_text(self.result) + self._window_note())
        else:
            self.link.unlink()
            self._set_link_text(NOT_LINKED_FOR)

    def toggle_link(self) -> None:
        if self.link.linked:
            self.link.unlink()
            self._set_link_text(UNLINKED)
        else:
            self.auto_link()
            if not self.link.linked and self.volume is not None:
                self.window.set_status("Different frames of reference: Register first.")

    def _set_link_text(self, text: str) -> None:
        self.link_label.setText(text)
        self.link_label.setToolTip(text)
        colour = "#7fd08a" if text.startswith("Linked") else "#e0b060"
        self.link_label.setStyleSheet(f"color: {colour}; font-weight: bold;")
        linked = self._link is not None and self._link.linked
        self.link_button.setText("Unlink" if linked else "Link")
        three_d = not isinstance(self.volume, ProjectionImage)
        self.link_button.setEnabled(three_d)
        self.register_button.setEnabled(three_d)
        self.link_changed.emit(text)

    def _on_primary_loading(self, _series_id: Any) -> None:
        if self.is_open:
            self.link.unlink()
            self.result = None  # a registration belongs to the pair it was made for
            self._set_link_text(WAITING)

    def _on_primary_loaded(self, series_id: Any) -> None:
        self.window.browser.set_open_series(series_id)  # its priors get their tag
        if series_id == self.series_id:
            self.close()  # the compared series became the open one
        elif self.is_open:
            self.auto_link()

    def _follow_layout(self, layout: str) -> None:
        """Ctrl+1/2/3 on the open series lays out the compared one the same way; beside a
        hanging protocol's cells the compared series shows one axial view."""
        if not self.is_open or isinstance(self.volume, ProjectionImage):
            return
        try:
            self.panel.set_layout(layout, single=getattr(self.primary, "_single", "axial"))
        except ValueError:  # "cells": each pane would get postage stamps
            self.panel.set_layout("1x1", single="axial")
        if self.link.linked:
            self.link.sync_from(self.primary)

    # ------------------------------------------------------------------ registration
    def register(self) -> workers.Job | None:
        """Rigid registration of the compared series to the open one, in the background."""
        fixed, moving = self.window.current_volume, self.volume
        if not self._both_volumes():
            self.window.set_status("Registration needs two 3-D series, both loaded.")
            return None
        running = self._register_job
        if running is not None and running.running and not running.cancel_token.cancelled:
            return running  # one at a time; a cancelled one winding down is ignored

        def work(ctx: workers.JobContext) -> Any:
            from core.registration import register_rigid

            return register_rigid(fixed, moving, progress=ctx.progress, cancel=ctx.cancel)

        job = workers.make(work, name="register")
        job.progress.connect(self._on_progress)
        job.finished.connect(lambda r, j=job: self._on_registered(j, r))
        job.failed.connect(lambda exc, j=job: self._on_register_failed(j, exc))
        job.cancelled.connect(lambda j=job: self._on_register_cancelled(j))
        job.done.connect(self._on_job_done)
        self._register_job = job
        self.link.unlink()
        self._set_link_text("Registering…")
        self._show_busy()
        self.timings["register_start"] = time.perf_counter()
        return job.start()

    def _on_registered(self, job: workers.Job, result: RigidResult) -> None:
        if job is not self._register_job:
            return
        self.result = result
        self.link.link(result.matrix, window=self.same_units())
        self._set_link_text(registered_text(result) + self._window_note())
        self.timings["registered"] = time.perf_counter()
        self.window.set_status(f"Registered in {result.seconds:.1f} s: the panes are linked.")
        self.registered.emit(result)

    def _on_register_failed(self, job: workers.Job, exc: Exception) -> None:
        if job is not self._register_job:
            return
        self.auto_link()
        self.window.show_problem("Registration failed", str(exc))
        self.registration_failed.emit(str(exc))

    def _on_register_cancelled(self, job: workers.Job) -> None:
        if job is not self._register_job:
            return
        self.auto_link()
        self.window.set_status("Registration cancelled.")
        self.registration_cancelled.emit()

    # ------------------------------------------------------------------ progress, close
    def _show_busy(self) -> None:
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.progress.setFormat(f"{message} %p%" if message else "%p%")

    def _on_job_done(self) -> None:
        if not any(j is not None and j.running for j in (self._load_job, self._register_job)):
            self.progress.hide()
            self.cancel_button.hide()

    def _cancel_jobs(self) -> None:
        for job in (self._load_job, self._register_job):
            if job is not None and job.running:
                job.cancel()

    def cancel(self) -> None:
        """Cancel the compared series' loading or registration."""
        self._cancel_jobs()

    def close(self) -> None:
        """Close the comparison: cancel its jobs, empty and hide the pane."""
        self._cancel_jobs()
        if self._link is not None:
            self._link.unlink()
        self.series_id = None
        self.volume = None
        self.result = None
        self._shown_array = None
        if self._panel is not None:
            self._panel.clear()
        self.pane.hide()
        self._update_actions()
        self.closed.emit()

    def shutdown(self) -> None:
        self._cancel_jobs()
        if self._link is not None:
            self._link.unlink(notify=False)
        if self._panel is not None:
            self._panel.shutdown()


def registered_text(result: RigidResult) -> str:
    from core.registration import describe

    return f"Linked: registered (rigid, MI), {describe(result)}"
