"""The review half of the main window's wiring: Findings panel, runs, imported objects.

A mixin of :class:`app.main_window.MainWindow`, kept apart so the window stays
menus + loading. The logic lives in the Qt-free ``app.series_session.SeriesSession``
(runs, the open review, imported SEG / SR / RTSTRUCT) and ``review.ReviewSession``;
this only connects them to the panel, the viewer's findings layer and dialogs.
It uses the window's ``viewer``, ``library``, ``prefs``, ``series``,
``show_problem``, ``set_status`` and ``set_tool``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app import workers
from app.actor import os_user
from app.review_canvas import ReviewCanvas
from app.series_session import SeriesSession, error_text

log = logging.getLogger(__name__)


class ReviewWiring:
    """Review wiring of the main window (see the module docstring)."""

    def _mount_findings_panel(self) -> None:
        from app.findings_panel import FindingsPanel

        panel = FindingsPanel(self, reviewer=self.prefs.reviewer or os_user())
        self.findings_panel = panel
        self.findings_dock = self._dock("Findings", "findingsDock", panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.models_dock or self.measurements_dock, self.findings_dock)
        self.measurements_dock.raise_()
        for action in panel.review_actions():
            self.addAction(action)  # window-wide: the panel or a view may have focus
        self.canvas = ReviewCanvas(self.viewer,
                                   select=lambda key: panel.select_key(key, focus=False),
                                   problem=self.show_problem)
        panel.focus_requested.connect(self.canvas.focus)
        panel.edit_requested.connect(self._edit_finding)
        panel.draw_requested.connect(self._draw_new_finding)
        panel.export_requested.connect(self._export_requested)
        panel.style_changed.connect(self._apply_findings_style)
        panel.run_chosen.connect(self._open_run)
        panel.reviewer_changed.connect(self._set_reviewer)
        panel.status_message.connect(self.set_status)
        if hasattr(self.viewer, "finding_clicked"):
            self.viewer.finding_clicked.connect(panel.select_key)
        if hasattr(self.viewer, "paint_stroke"):
            self.viewer.paint_stroke.connect(self.canvas.on_paint_stroke)

    def _on_inference_result(self, result: Any) -> None:
        """Record a model's result as a run of the series it was run on, open its review."""
        label_map = getattr(result, "label_map", None)
        volume = self.current_volume
        if label_map is None or volume is None or self.series is None:
            self.set_status("Model result ignored: no series is open.")
            return
        result_uid = str(getattr(label_map, "series_uid", "") or "")
        if result_uid and volume.series_uid and result_uid != volume.series_uid:
            self.set_status("Model result ignored: it belongs to another series than the one "
                            "now open.")
            return
        if tuple(label_map.array.shape) != tuple(volume.shape) or not np.allclose(
                label_map.affine, volume.affine, atol=1e-3):
            self.set_status("Model result ignored: its grid differs from the open series.")
            return
        name = str(getattr(result, "model_name", "") or "AI result")
        try:
            run_id = self.series.record_result(result, actor=self._reviewer())
        except Exception as exc:  # not recorded: show it, say it is not kept
            log.warning("recording the run failed: %s", type(exc).__name__)
            self.viewer.add_label_overlay(name, label_map)
            self.show_problem("The model run was not recorded",
                              f"{error_text(exc)}. Its overlay is shown but will be gone when "
                              "the series closes, and it cannot be reviewed.")
            return
        self._show_review()
        n = len(getattr(result, "findings", []) or [])
        self.set_status(f"{name}: run #{run_id} recorded, {n} finding(s) to review. "
                        "Research use only.")

    def _close_series_session(self) -> None:
        if self.series is not None:
            self.series.close()
        self.series = None
        self.findings_panel.set_session(None)
        self.canvas.set_series(None)

    def _open_series_review(self) -> None:
        """The series' imported objects and its last run's review (decisions, edits, undo)."""
        series = self.series
        if series is None:
            return
        self._start_derived_job(series)
        try:
            series.open_last_run()
        except Exception as exc:  # a damaged run must not stop the series from opening
            log.warning("opening the last review failed: %s", type(exc).__name__)
            self.show_problem("The saved review could not be opened", error_text(exc))
        self._show_review()

    def _start_derived_job(self, series: SeriesSession) -> workers.Job:
        """Read the SEG / SR / RTSTRUCT objects of the series in the background."""
        library_dir, series_id, volume = self.library_dir, series.series_id, series.volume

        def work(_ctx: workers.JobContext) -> Any:
            from app.series_session import read_imported
            from store import Library

            with Library.open(library_dir) as library:
                return read_imported(library, series_id, volume)

        job = workers.make(work, name="derived")
        job.finished.connect(lambda group, s=series: self._on_derived(s, group))
        job.failed.connect(lambda exc: self._on_job_failed("Reading imported objects", exc))
        self._derived_job = job
        return job.start()

    def _on_derived(self, series: SeriesSession, group: Any) -> None:
        if series is not self.series:
            return  # another series is open now
        series.set_imported(group)
        self.canvas.redraw()
        if group.rows or group.problems:
            self._raise_findings_dock()
        self.imported_ready.emit(len(group.rows))

    def _open_run(self, run_id: int) -> None:
        if self.series is None:
            return
        try:
            self.series.open_run(run_id)
        except Exception as exc:
            self.show_problem("The run could not be opened", error_text(exc))
            return
        self._show_review()

    def _show_review(self) -> None:
        """Panel and overlay from the series session (after a run, a reopen, a run switch)."""
        series = self.series
        self.findings_panel.set_session(series)
        self.canvas.set_series(series)
        self._apply_findings_style()
        if series is not None and (series.review is not None or series.imported.rows
                                   or series.imported.problems):
            self._raise_findings_dock()
        if series is not None and series.review is not None:
            # Ready to read at once: the first pending finding (by score) is selected and
            # every view centred on it, so A / R act on it without a click.
            if not series.review.signed_off and not self.findings_panel.selected_keys():
                self.findings_panel.next_pending()
            self.review_opened.emit(series.run_id)

    def _raise_findings_dock(self) -> None:
        self.findings_dock.show()
        self.findings_dock.raise_()
        if not self._findings_sized:  # the table needs room for its columns, once
            self._findings_sized = True
            self.resizeDocks([self.findings_dock], [620], Qt.Orientation.Horizontal)

    def _apply_findings_style(self) -> None:
        self.canvas.apply_style(self.findings_panel.overlay_style())

    def _edit_finding(self, key: str, erase: bool) -> None:
        self.set_tool("eraser" if erase else "brush")
        self.canvas.start_edit(key)
        self.set_status(f"{'Erasing from' if erase else 'Painting'} finding {key}: drag on a "
                        "slice view ([ ] size). V returns to navigation.")

    def _draw_new_finding(self) -> None:
        self.set_tool("brush")
        self.canvas.start_new()
        self.set_status("Draw the new finding on a slice view ([ ] size). V returns to "
                        "navigation.")

    def _reviewer(self) -> str:
        return self.prefs.reviewer or os_user()

    def _set_reviewer(self, name: str) -> None:
        if name == (self.prefs.reviewer or ""):
            return
        self.prefs.reviewer = name
        self._save_prefs()
        if self.series is not None:
            try:
                self.series.set_reviewer(name or os_user())
            except Exception as exc:
                self.show_problem("The reviewer was not changed", error_text(exc))

    def _export_requested(self) -> None:
        folder: Path | None = self.export_dir
        if self.interactive:
            chosen = QFileDialog.getExistingDirectory(self, "Sign off and export to a folder")
            folder = Path(chosen) if chosen else None
        if folder is not None:
            self.sign_off_and_export(folder)

    def sign_off_and_export(self, folder: Path) -> Any:
        """Sign the open run off and write SEG, SR, KO and the report into ``folder``."""
        if self.series is None or self.series.review is None:
            self.set_status("Nothing to sign off: no review is open.")
            return None
        try:
            result = self.series.sign_off_and_export(Path(folder))
        except Exception as exc:  # pending findings, a full disk: say so
            self.show_problem("Sign-off and export failed", error_text(exc))
            return None
        self.last_export = result
        self._show_review()
        self.set_status(f"Signed off and exported to {folder}.")
        return result
