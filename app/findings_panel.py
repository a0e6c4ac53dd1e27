"""The Findings panel: review a model run finding by finding, from the keyboard.

A table (id, label, slice, side / position, longest diameter, volume, score,
status) sorted by score, a progress line, the reviewer's name, the run
choice, overlay style controls, imported SEG / SR / RTSTRUCT findings
(read-only) and the objects that cannot be shown with their reason. The
decisions go straight to the open series' review (``app.series_session``),
which commits each one; the panel redraws from the review's listener. The
keyboard actions (A, R, E, N, P, Ctrl+Z …) are QActions the main window adds
to itself, enabled only while a review is open, so they win over the tool
letters then and leave them alone otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.series_session import REVIEWED, FindingRow, run_row

COLUMNS = ("ID", "Label", "Slice", "Side, LPS mm", "Ø mm", "mm³", "Score", "Status")
COLUMN_TIPS = ("Finding id (m: model, r: reader-drawn, i: imported)", "Label (full text in "
               "the tooltip)", "Acquired slice of the centroid / number of slices",
               "Patient side (R / L) and centroid position, LPS mm", "Longest diameter, mm",
               "Volume, mm³", "Model score (highest voxel)", "Review status (and reason)")
STATUS_COLORS = {"pending": "#c8ccd2", "accepted": "#58c472", "edited": "#58b0e0",
                 "added-by-reader": "#b48ce6", "rejected": "#e0705c", "imported": "#d0b060"}
STATUS_TEXT = {"pending": "Pending", "accepted": "Accepted", "rejected": "Rejected",
               "edited": "Edited", "added-by-reader": "Added", "imported": "Imported"}


class ReasonDialog(QDialog):
    """Why a finding is rejected: keys 1–5 pick a reason (or arrows + Enter); "Other"
    asks for text in the same dialog (Enter confirms)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from review.model import Reason

        self.setObjectName("reasonDialog")
        self.setWindowTitle("Reject: reason")
        self._reasons = list(Reason)
        self.list = QListWidget(self)
        for n, reason in enumerate(self._reasons, start=1):
            self.list.addItem(f"{n}  {reason.label}")
        self.list.setCurrentRow(0)
        self.list.itemActivated.connect(lambda _item: self._choose(self.list.currentRow()))
        self.list.installEventFilter(self)
        self.text = QLineEdit(self)
        self.text.setPlaceholderText("Why? (needed for Other)")
        self.text.hide()
        self.text.returnPressed.connect(self._confirm_text)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(lambda: self._choose(self.list.currentRow()))
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Reject because (1–5, or ↑ ↓ and Enter):", self))
        layout.addWidget(self.list)
        layout.addWidget(self.text)
        layout.addWidget(self.buttons)
        self.list.setFocus()
        self.reason: Any = None
        self.reason_text = ""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The list would take a digit for its keyboard search: a digit picks the reason.
        if watched is self.list and event.type() == QEvent.Type.KeyPress \
                and isinstance(event, QKeyEvent) and self._digit(event):
            return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.text.hasFocus() and self._digit(event):
            return
        super().keyPressEvent(event)

    def _digit(self, event: QKeyEvent) -> bool:
        row = event.key() - Qt.Key.Key_1
        if not 0 <= row < len(self._reasons):
            return False
        self.list.setCurrentRow(row)
        self._choose(row)
        return True

    def _choose(self, row: int) -> None:
        if not 0 <= row < len(self._reasons):
            return
        reason = self._reasons[row]
        if reason.value == "other" and not self.text.text().strip():
            self.text.show()
            self.text.setFocus()
            return
        self.reason = reason
        self.reason_text = self.text.text().strip() if reason.value == "other" else ""
        self.accept()

    def _confirm_text(self) -> None:
        if self.text.text().strip():
            self._choose(self._reasons.index(next(r for r in self._reasons
                                                  if r.value == "other")))


class FindingsPanel(QWidget):
    """Table and controls of the open series' review. Set a session with set_session()."""

    focus_requested = Signal(object)  # FindingRow: centre and zoom every view on it
    edit_requested = Signal(str, bool)  # key, erase: brush (or eraser) on that finding
    draw_requested = Signal()  # draw a new reader finding
    export_requested = Signal()  # sign off and export (the window asks for a folder)
    style_changed = Signal()  # overlay style controls moved
    run_chosen = Signal(int)  # another run of this series picked in the combo
    reviewer_changed = Signal(str)
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, reviewer: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("findingsPanel")
        self.session: Any = None
        self._rows: list[FindingRow] = []
        self._updating = False
        self.pending_reject: ReasonDialog | None = None
        self._pending_review: Any = None  # the review the open reject dialog is for

        self.run_combo = QComboBox(self)
        self.run_combo.setObjectName("runCombo")
        self.run_combo.activated.connect(self._on_run_combo)
        self.reviewer_edit = QLineEdit(reviewer, self)
        self.reviewer_edit.setObjectName("reviewerEdit")
        self.reviewer_edit.setPlaceholderText("reviewer name")
        self.reviewer_edit.editingFinished.connect(
            lambda: self.reviewer_changed.emit(self.reviewer_edit.text().strip()))
        self.progress_label = QLabel("No review open.", self)
        self.progress_label.setObjectName("reviewProgress")
        self.prefix_label = QLabel("", self)
        self.prefix_label.setObjectName("labelPrefix")
        self.prefix_label.setWordWrap(True)
        self.prefix_label.setStyleSheet("color: #e0a030;")

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("findingsTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for c, tip in enumerate(COLUMN_TIPS):
            header_item = self.table.horizontalHeaderItem(c)
            if header_item is not None:
                header_item.setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        header = self.table.horizontalHeader()
        for c in range(len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.accept_button = QPushButton("Accept (A)", self)
        self.reject_button = QPushButton("Reject (R)", self)
        self.edit_button = QPushButton("Edit (E)", self)
        self.draw_button = QPushButton("Draw new", self)
        self.interpolate_button = QPushButton("Interpolate (I)", self)
        self.interpolate_button.setToolTip("Fill the slices between the slices you edited")
        self.undo_button = QPushButton("Undo", self)
        self.redo_button = QPushButton("Redo", self)
        self.export_button = QPushButton("Sign off && export…", self)
        self.export_button.setObjectName("exportButton")
        for button in (self.accept_button, self.reject_button, self.edit_button,
                       self.draw_button, self.interpolate_button, self.undo_button,
                       self.redo_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the table

        # Overlay style (the viewer's findings layer).
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(40)
        self.opacity.setToolTip("Fill opacity of the findings overlay")
        self.fill_box = QCheckBox("Fill", self)
        self.fill_box.setChecked(True)
        self.outline_box = QCheckBox("Outline", self)
        self.outline_box.setChecked(True)
        self.visible_box = QCheckBox("Show", self)
        self.visible_box.setChecked(True)
        self.rejected_box = QCheckBox("Show rejected", self)
        self.rejected_box.setToolTip("Also show rejected findings (struck through)")
        for widget in (self.fill_box, self.outline_box, self.visible_box, self.rejected_box):
            widget.toggled.connect(lambda _v: self.style_changed.emit())
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.opacity.valueChanged.connect(lambda _v: self.style_changed.emit())

        self.problems_label = QLabel("", self)
        self.problems_label.setObjectName("importProblems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #e0a030;")
        self.problems_label.hide()

        form = QFormLayout()
        form.addRow("Run", self.run_combo)
        form.addRow("Reviewer", self.reviewer_edit)
        decide = QHBoxLayout()
        for button in (self.accept_button, self.reject_button, self.edit_button,
                       self.draw_button):
            decide.addWidget(button)
        history = QHBoxLayout()
        history.addWidget(self.interpolate_button)
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        history.addStretch(1)
        history.addWidget(self.export_button)
        style = QHBoxLayout()
        style.addWidget(QLabel("Overlay opacity", self))
        style.addWidget(self.opacity, 1)
        boxes = QHBoxLayout()
        for widget in (self.visible_box, self.fill_box, self.outline_box, self.rejected_box):
            boxes.addWidget(widget)
        boxes.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.prefix_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(decide)
        layout.addLayout(history)
        layout.addLayout(style)
        layout.addLayout(boxes)
        layout.addWidget(self.problems_label)

        self._build_actions()
        self.accept_button.clicked.connect(self.act_accept.trigger)
        self.reject_button.clicked.connect(self.act_reject.trigger)
        self.edit_button.clicked.connect(self.act_edit.trigger)
        self.draw_button.clicked.connect(self.act_draw.trigger)
        self.interpolate_button.clicked.connect(self.act_interpolate.trigger)
        self.undo_button.clicked.connect(self.act_undo.trigger)
        self.redo_button.clicked.connect(self.act_redo.trigger)
        self.export_button.clicked.connect(self.act_export.trigger)
        self._update_enabled()

    # ------------------------------------------------------------------ actions
    def _make(self, text: str, keys: str, slot: Any) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        self.act_accept = self._make("Accept finding(s)", "A", self.accept_selected)
        self.act_reject = self._make("Reject finding(s)…", "R", self.reject_selected)
        self.act_edit = self._make("Edit finding (brush)", "E", lambda: self.edit_selected(False))
        self.act_erase = self._make("Edit finding (eraser)", "Shift+E",
                                    lambda: self.edit_selected(True))
        self.act_draw = self._make("Draw new finding", "Ctrl+Shift+D", self.draw_new)
        self.act_interpolate = self._make("Interpolate between edited slices", "I",
                                          self.interpolate_selected)
        self.act_next = self._make("Next pending finding", "N", self.next_pending)
        self.act_previous = self._make("Previous pending finding", "P", self.previous_pending)
        self.act_undo = self._make("Undo review step", "Ctrl+Z", self.undo)
        self.act_redo = self._make("Redo review step", "Ctrl+Shift+Z", self.redo)
        self.act_export = self._make("Sign off and export…", "Ctrl+Shift+E",
                                     self.export_requested.emit)

    def review_actions(self) -> list[QAction]:
        return [self.act_accept, self.act_reject, self.act_edit, self.act_erase, self.act_draw,
                self.act_interpolate, self.act_next, self.act_previous, self.act_undo,
                self.act_redo, self.act_export]

    # ------------------------------------------------------------------ session
    def _close_stale_reject(self) -> None:
        """A reject dialog left open when the series or run changes is closed unanswered."""
        if self.pending_reject is not None and self._pending_review is not self.review:
            self.pending_reject.reject()

    def set_session(self, session: Any) -> None:
        """Show ``session``'s review (None: nothing; another series clears everything)."""
        self.session = session
        if session is not None:
            session.add_listener(self._on_review_changed)
        self.refresh_runs()
        self.refresh()

    def _on_review_changed(self, _keys: Sequence[str]) -> None:
        self.refresh()

    @property
    def review(self) -> Any:
        return None if self.session is None else self.session.review

    def refresh_runs(self) -> None:
        self.run_combo.clear()
        runs = self.session.runs() if self.session is not None else []
        for summary in runs:
            run = run_row(summary)
            model = run.provenance.get("model") if isinstance(run.provenance, dict) else None
            name = str((model or {}).get("name", "") if isinstance(model, dict) else "")
            text = f"#{run.id} {name or run.model_id} — {run.created[:16].replace('T', ' ')}"
            if getattr(summary, "total", 0):
                text += f" ({summary.reviewed}/{summary.total})"
            problem = str(getattr(summary, "problem", "") or "")
            self.run_combo.addItem(f"⚠ {text}" if problem else text, int(run.id))
            self.run_combo.setItemData(self.run_combo.count() - 1, problem or text,
                                       Qt.ItemDataRole.ToolTipRole)
        current = self.session.run_id if self.session is not None else None
        index = self.run_combo.findData(current) if current is not None else -1
        self.run_combo.setCurrentIndex(index)
        self.run_combo.setEnabled(len(runs) > 1)
        self.run_combo.setPlaceholderText("No model run on this series"
                                          if self.session is not None else "")
        self.run_combo.setToolTip(f"{len(runs)} run(s) of this series")

    def _update_run_count(self, done: int, total: int) -> None:
        """The open run's "(reviewed/total)" in the run selector follows each decision."""
        index = self.run_combo.currentIndex()
        text = self.run_combo.itemText(index) if index >= 0 else ""
        if text.endswith(")") and " (" in text:
            self.run_combo.setItemText(index, f"{text.rsplit(' (', 1)[0]} ({done}/{total})")

    def refresh(self) -> None:
        """Rebuild the table from the session, keeping the selection."""
        self._close_stale_reject()
        keep = self.selected_keys()
        rows = self.session.rows() if self.session is not None else []
        before = self._rows
        self._rows = rows
        self._updating = True
        try:
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                # A decision changes one or two rows: only those are rewritten (filling the
                # whole table took half of the time from A to the next finding on screen).
                if r >= len(before) or before[r] != row:
                    self._fill_row(r, row)
            selection = self.table.selectionModel()
            self.table.clearSelection()
            for r, row in enumerate(rows):
                if row.key in keep:
                    index = self.table.model().index(r, 0)
                    selection.select(index, selection.SelectionFlag.Select
                                     | selection.SelectionFlag.Rows)
                    self.table.setCurrentCell(r, 0, selection.SelectionFlag.NoUpdate)
        finally:
            self._updating = False
        self._refresh_labels()
        self._update_enabled()

    def _fill_row(self, r: int, row: FindingRow) -> None:
        slice_text = f"{row.slice_number}/{row.n_slices}" if row.slice_number is not None else ""
        values = (row.key, row.label, slice_text, row.position_text,
                  "" if row.diameter_mm is None else f"{row.diameter_mm:.1f}",
                  "" if row.volume_mm3 is None else f"{row.volume_mm3:.0f}",
                  "" if row.score is None else f"{row.score:.2f}",
                  STATUS_TEXT.get(row.status, row.status) + (f" ({row.reason})"
                                                             if row.reason else ""))
        for c, text in enumerate(values):
            item = self.table.item(r, c)
            if item is None:
                item = QTableWidgetItem(text)
                self.table.setItem(r, c, item)
            else:
                item.setText(text)
            item.setData(Qt.ItemDataRole.UserRole, row.key)
            if c in (2, 4, 5, 6):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
            item.setToolTip(row.full_label if c == 1 else text)
            if c == len(values) - 1:
                item.setForeground(QColor(STATUS_COLORS.get(row.status, "#c8ccd2")))

    def _refresh_labels(self) -> None:
        session = self.session
        review = self.review
        if review is None:
            self.progress_label.setText("No review open: run a model on this series."
                                        if session is not None else "No series open.")
            self.prefix_label.hide()
        else:
            done, total = session.progress()
            signed = " — signed off" if getattr(review, "signed_off", False) else ""
            self.progress_label.setText(f"{done} of {total} reviewed{signed}")
            self._update_run_count(done, total)
            from app.series_session import common_label_prefix

            prefix = common_label_prefix([str(f.label_name) for f in review.findings])
            self.prefix_label.setText(prefix)
            self.prefix_label.setVisible(bool(prefix))
        problems = list(session.imported.problems) if session is not None else []
        self.problems_label.setText("\n".join(f"⚠ {p}" for p in problems))
        self.problems_label.setVisible(bool(problems))

    def _update_enabled(self) -> None:
        review = self.review
        has = review is not None and not getattr(review, "signed_off", False)
        own = [k for k in self.selected_keys() if not k.startswith("i")]
        for action in (self.act_accept, self.act_reject):
            action.setEnabled(has and bool(own))
        for action in (self.act_edit, self.act_erase, self.act_interpolate):
            action.setEnabled(has and len(own) == 1)
        for action in (self.act_next, self.act_previous, self.act_draw):
            action.setEnabled(has)
        self.act_undo.setEnabled(has and bool(review.can_undo))
        self.act_redo.setEnabled(has and bool(review.can_redo))
        self.act_export.setEnabled(review is not None)
        for button, action in ((self.accept_button, self.act_accept),
                               (self.reject_button, self.act_reject),
                               (self.edit_button, self.act_edit),
                               (self.draw_button, self.act_draw),
                               (self.interpolate_button, self.act_interpolate),
                               (self.undo_button, self.act_undo),
                               (self.redo_button, self.act_redo),
                               (self.export_button, self.act_export)):
            button.setEnabled(action.isEnabled())
        if review is not None:
            self.undo_button.setToolTip(f"Undo: {review.undo_text}" if review.can_undo else "")
            self.redo_button.setToolTip(f"Redo: {review.redo_text}" if review.can_redo else "")

    # ------------------------------------------------------------------ selection
    def rows(self) -> list[FindingRow]:
        return list(self._rows)

    def row_count(self) -> int:
        return self.table.rowCount()

    def selected_keys(self) -> list[str]:
        model = self.table.selectionModel()
        if model is None:
            return []
        rows = sorted(index.row() for index in model.selectedRows())
        return [self._rows[r].key for r in rows if r < len(self._rows)]

    def select_key(self, key: str | None, *, focus: bool = True) -> None:
        """Select one finding's row; it emits focus_requested like a click unless ``focus``
        is False (a finding just drawn: the views must not move under the pen)."""
        if not focus:
            self._updating = True
            try:
                self.select_key(key)
            finally:
                self._updating = False
            self._update_enabled()
            return
        for r, row in enumerate(self._rows):
            if row.key == key:
                # Not selectRow(): in extended-selection mode it follows the keyboard
                # modifiers held at that moment (Shift would select a range, Ctrl toggle).
                index = self.table.model().index(r, 0)
                model = self.table.selectionModel()
                flags = model.SelectionFlag
                model.setCurrentIndex(index, flags.NoUpdate)
                model.select(index, flags.ClearAndSelect | flags.Rows)
                self.table.scrollTo(index)
                return
        self.table.clearSelection()

    def _on_selection(self) -> None:
        self._update_enabled()
        if self._updating:
            return
        keys = self.selected_keys()
        if len(keys) == 1:
            row = next(r for r in self._rows if r.key == keys[0])
            if row.centroid_lps is not None:
                self.focus_requested.emit(row)

    # ------------------------------------------------------------------ decisions
    def _own_selected(self) -> list[str]:
        return [k for k in self.selected_keys() if not k.startswith("i")]

    def _run(self, what: str, call: Any) -> bool:
        try:
            call()
        except Exception as exc:  # a refused step (signed off, bad key) is a message
            self.status_message.emit(f"{what}: {exc}")
            return False
        return True

    def accept_selected(self) -> None:
        keys = self._own_selected()
        if not keys or self.review is None:
            return
        if self._run("Accept", lambda: self.review.accept(keys)):
            self.status_message.emit(f"Accepted {', '.join(keys)}.")
            if len(keys) == 1:
                self.next_pending(after=keys[0])

    def reject_selected(self) -> ReasonDialog | None:
        """Ask for the reason (non-modal, keyboard-driven); reject when it is given."""
        keys = self._own_selected()
        review = self.review
        if not keys or review is None:
            return None
        dialog = ReasonDialog(self.window())
        self.pending_reject = dialog
        # The dialog belongs to this run's review: keys such as "m1" exist in every run, so
        # a reason given after the series or run changed must not reject the new one's.
        self._pending_review = review

        def done(result: int) -> None:
            self.pending_reject = None
            self._pending_review = None
            if result != QDialog.DialogCode.Accepted or dialog.reason is None:
                return
            if self.review is not review:
                self.status_message.emit("Not rejected: another series or run is open now.")
                return
            if self._run("Reject", lambda: review.reject(keys, dialog.reason,
                                                         dialog.reason_text)):
                self.status_message.emit(f"Rejected {', '.join(keys)}: {dialog.reason.label}.")
                if len(keys) == 1:
                    self.next_pending(after=keys[0])
            self.table.setFocus()

        dialog.finished.connect(done)
        dialog.open()
        dialog.activateWindow()
        dialog.list.setFocus()
        return dialog

    def reject_with(self, keys: Sequence[str], reason: Any, text: str = "") -> None:
        """Reject without the dialog (scripts)."""
        if self.review is not None:
            self._run("Reject", lambda: self.review.reject(list(keys), reason, text))

    def edit_selected(self, erase: bool = False) -> None:
        keys = self._own_selected()
        if len(keys) == 1:
            self.edit_requested.emit(keys[0], erase)

    def interpolate_selected(self) -> None:
        keys = self._own_selected()
        if len(keys) == 1 and self.review is not None:
            if self._run("Interpolate", lambda: self.review.interpolate(keys[0])):
                self.status_message.emit(f"Interpolated {keys[0]} between its edited slices.")

    def draw_new(self) -> None:
        if self.review is not None:
            self.draw_requested.emit()

    def next_pending(self, after: str | None = None) -> None:
        if self.review is None:
            return
        current = self.selected_keys()
        start = after if after is not None else (current[-1] if current else None)
        key = self.review.next_pending(start if start and not start.startswith("i") else None)
        if key is None:
            done, total = self.session.progress()
            self.status_message.emit(f"No pending finding left ({done} of {total} reviewed).")
            return
        self.select_key(key)

    def previous_pending(self) -> None:
        if self.review is None:
            return
        current = self.selected_keys()
        start = current[0] if current and not current[0].startswith("i") else None
        key = self.review.previous_pending(start)
        if key is not None:
            self.select_key(key)

    def undo(self) -> None:
        if self.review is not None and self.review.can_undo:
            text = self.review.undo()
            self.status_message.emit(f"Undone: {text}" if text else "Undone.")

    def redo(self) -> None:
        if self.review is not None and self.review.can_redo:
            text = self.review.redo()
            self.status_message.emit(f"Redone: {text}" if text else "Redone.")

    def _on_run_combo(self, index: int) -> None:
        run_id = self.run_combo.itemData(index)
        if run_id is not None and self.session is not None and run_id != self.session.run_id:
            self.run_chosen.emit(int(run_id))

    # ------------------------------------------------------------------ style
    def overlay_style(self) -> dict[str, Any]:
        return {"opacity": self.opacity.value() / 100.0, "fill": self.fill_box.isChecked(),
                "outline": self.outline_box.isChecked(),
                "visible": self.visible_box.isChecked(),
                "show_rejected": self.rejected_box.isChecked()}

    def reviewed_count(self) -> int:
        return sum(1 for row in self._rows if row.status in REVIEWED)
