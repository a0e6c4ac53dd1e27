"""The measurements list: what the viewer measured on the open series.

It shows the viewer's ``measurement_records()`` (plain dicts: ``kind``,
``label``, ``view``, ``points_lps_mm``, ``stats``); selecting a row asks the
viewer to jump there, Delete removes one. Persistence is the main window's
job (it saves on every change through the store); when it cannot save a
series' measurements it says why in the notice above the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

KIND_NAMES = {"distance": "Distance", "angle": "Angle", "ellipse": "Ellipse ROI",
              "rectangle": "Rectangle ROI", "bidimensional": "Bidimensional"}


def record_summary(record: dict[str, Any]) -> str:
    """One-line result text of a measurement record."""
    label = str(record.get("label") or "")
    if label:
        return " · ".join(part.strip() for part in label.splitlines() if part.strip())
    stats = record.get("stats") or {}
    if "length_mm" in stats:
        return f"{float(stats['length_mm']):.1f} mm"
    if "angle_deg" in stats:
        return f"{float(stats['angle_deg']):.1f}°"
    return ""


class MeasurementsPanel(QWidget):
    """Table of measurements; emits the row the user selects or deletes."""

    select_requested = Signal(int)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("measurementsPanel")
        self._records: list[dict[str, Any]] = []
        self._updating = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        # Stays visible while the series is open: a status-bar line is soon replaced.
        self.notice = QLabel("", self)
        self.notice.setObjectName("measurementsNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #f0b060; font-weight: bold;")
        self.notice.hide()
        layout.addWidget(self.notice)
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["#", "Kind", "Result"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.empty_label = QLabel("No measurements. Pick a tool (D, A, E, B) and draw on a view.",
                                  self)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color: #7d858e;")
        row.addWidget(self.empty_label, 1)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self._on_delete)
        row.addWidget(self.delete_button)
        layout.addLayout(row)
        shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        shortcut.activated.connect(self._on_delete)

    def set_records(self, records: Sequence[dict[str, Any]]) -> None:
        self._updating = True
        try:
            self._records = [dict(r) for r in records]
            self.table.setRowCount(len(self._records))
            for r, rec in enumerate(self._records):
                kind = str(rec.get("kind", ""))
                values = (str(r + 1), KIND_NAMES.get(kind, kind), record_summary(rec))
                for c, text in enumerate(values):
                    item = QTableWidgetItem(text)
                    item.setToolTip(str(rec.get("label") or text))
                    self.table.setItem(r, c, item)
            self.table.clearSelection()
            self.empty_label.setVisible(not self._records)
            self.delete_button.setEnabled(False)
        finally:
            self._updating = False

    def set_notice(self, text: str | None) -> None:
        """Show (or, with None, hide) a warning above the table."""
        self.notice.setText(text or "")
        self.notice.setToolTip(text or "")
        self.notice.setVisible(bool(text))

    def notice_text(self) -> str:
        return self.notice.text() if not self.notice.isHidden() else ""

    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def row_count(self) -> int:
        return self.table.rowCount()

    def selected_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def _on_selection(self) -> None:
        row = self.selected_row()
        self.delete_button.setEnabled(row >= 0)
        if row >= 0 and not self._updating:
            self.select_requested.emit(row)

    def _on_delete(self) -> None:
        row = self.selected_row()
        if row >= 0:
            self.delete_requested.emit(row)
