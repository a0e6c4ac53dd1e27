"""The transfer list of the Network panel: one row per retrieve or send, with its progress.

A :class:`Transfer` is plain data (node, direction, instances done / total, bytes, state,
error) updated from its job's signals in the GUI thread; :class:`TransferModel` shows the
rows in a table. MB/s is measured here from the bytes written or sent and the wall time,
and replaced by the ``net`` TransferReport's own figure when the transfer ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from app.workers import Job

# State early: the dock is narrow and the state is what the reader looks for first.
COLUMNS = ("Node", "Direction", "State", "Instances", "MB/s", "Error")
WAITING = "waiting…"
STATE_COLOURS = {"done": "#7fb27f", "failed": "#e08a80", "cancelled": "#c89a4a",
                 WAITING: "#9aa3ad", "running": "#7aa2d6", "partial": "#c89a4a"}

_Index = QModelIndex | QPersistentModelIndex


@dataclass
class Transfer:
    """One retrieve or send as the reader sees it."""

    node: str
    direction: str  # "retrieve" | "send" | "receive"
    total: int = 0
    done: int = 0
    bytes: int = 0
    state: str = WAITING
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    mb_per_s: float | None = None  # from the report once finished
    report: Any = None
    job: Job | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled", "partial")

    def rate(self) -> float:
        """MB/s: the report's when finished, else measured from bytes and wall time."""
        if self.mb_per_s is not None:
            return self.mb_per_s
        elapsed = time.monotonic() - self.started
        return self.bytes / 1e6 / elapsed if elapsed > 0 and self.bytes else 0.0

    def instances_text(self) -> str:
        return f"{self.done} / {self.total}" if self.total else str(self.done)

    def finish(self, report: Any) -> None:
        """Take the outcome from a ``net`` TransferReport (every instance has one)."""
        self.report = report
        instances = list(getattr(report, "instances", []) or [])
        failed = list(getattr(report, "failed", []) or [])
        self.done = sum(1 for i in instances if getattr(i, "ok", False))
        self.total = max(self.total, len(instances))
        self.bytes = int(getattr(report, "bytes", self.bytes) or self.bytes)
        self.mb_per_s = float(getattr(report, "mb_per_s", 0.0) or 0.0)
        error = getattr(report, "error", None)
        if getattr(report, "cancelled", False):
            self.state = "cancelled"
        elif error:
            self.state = "failed"
        elif failed:
            self.state = "partial"
        else:
            self.state = "done"
        problems = [str(error)] if error else []
        problems += [f"{i.sop_instance_uid}: status 0x{int(i.status):04X} {i.message}".strip()
                     for i in failed[:3]]
        if len(failed) > 3:
            problems.append(f"and {len(failed) - 3} more failed")
        self.error = "; ".join(problems)

    def fail(self, message: str) -> None:
        self.state = "failed"
        self.error = message


class TransferModel(QAbstractTableModel):
    """Rows of :class:`Transfer`, newest last."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[Transfer] = []

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = COLUMNS[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            values = {"Node": row.node, "Direction": row.direction,
                      "Instances": row.instances_text(), "MB/s": f"{row.rate():.1f}",
                      "State": row.state, "Error": row.error}
            return values[column]
        if role == Qt.ItemDataRole.ForegroundRole and column in ("State", "Error"):
            colour = STATE_COLOURS.get(row.state if column == "State" else "failed")
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("Instances", "MB/s"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def add(self, transfer: Transfer) -> int:
        row = len(self.rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self.rows.append(transfer)
        self.endInsertRows()
        return row

    def changed(self, transfer: Transfer) -> None:
        row = self.rows.index(transfer)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
