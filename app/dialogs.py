"""Small dialogs: import report, About, keyboard shortcut sheet, volume warnings."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.build_info import BuildInfo, build_info, shipped_documents

NOT_DIAGNOSTIC = "Research use only — not for diagnostic use."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], parent: QWidget) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers), parent)
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            table.setItem(r, c, item)
    header = table.horizontalHeader()
    for c in range(len(headers) - 1):
        header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


class ImportReportDialog(QDialog):
    """What an import found, and every file it skipped with the reason."""

    def __init__(self, summary: str, skipped: Sequence[tuple[str, str]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("importReport")
        self.setWindowTitle("Import report")
        self.resize(820, 420)
        layout = QVBoxLayout(self)
        self.summary_label = QLabel(summary, self)
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        if skipped:
            layout.addWidget(QLabel(f"{len(skipped)} file(s) skipped:", self))
        else:
            layout.addWidget(QLabel("No file was skipped.", self))
        self.table = _table(("File", "Reason"), [(p, r) for p, r in skipped], self)
        self.table.setVisible(bool(skipped))
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def skipped_rows(self) -> list[tuple[str, str]]:
        rows = []
        for r in range(self.table.rowCount()):
            path_item, reason_item = self.table.item(r, 0), self.table.item(r, 1)
            rows.append((path_item.text() if path_item else "",
                         reason_item.text() if reason_item else ""))
        return rows


class WarningsDialog(QDialog):
    """The geometry/content warnings of the open series, in plain language.

    Every warning is shown whole: rows wrap to the column width and grow to fit their
    text (a long warning is never cut off), the dialog is resizable, and Copy puts all
    of them on the clipboard (to paste into a ticket or a report).
    """

    def __init__(self, title: str, warnings: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("warningsDialog")
        self.setWindowTitle(title)
        self.setSizeGripEnabled(True)
        self.resize(720, 380)
        self.warnings = [str(w) for w in warnings]
        layout = QVBoxLayout(self)
        intro = QLabel("Lucida found these problems while loading the series. Distances and "
                       "positions may be affected; check them before relying on the images.",
                       self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = _table(("Warning",), [(w,) for w in self.warnings], self)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollMode(QTableWidget.ScrollMode.ScrollPerPixel)
        self.table.setStyleSheet("QTableWidget::item { padding: 3px 2px; }")
        # Rows follow their wrapped text whenever the column width changes.
        self.table.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.setToolTip("Copy every warning to the clipboard")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def text(self) -> str:
        """All warnings, one per line, as Copy puts them on the clipboard."""
        return "\n".join(self.warnings)

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text())


class AboutDialog(QDialog):
    """Help → About: version, build id, commit, build date, the notice, and where this
    installation's SBOM and third-party notices are (``info`` defaults to this process's)."""

    def __init__(self, version: str, runtime: str = "", parent: QWidget | None = None,
                 info: BuildInfo | None = None) -> None:
        super().__init__(parent)
        info = info if info is not None else build_info()
        self.info = info
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Lucida")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        title = QLabel(f"<h2>Lucida {html.escape(info.version or version)}</h2>", self)
        layout.addWidget(title)
        text = QLabel(
            "Offline desktop viewer for CT and MR with local AI assist.<br>"
            "Everything runs on this computer; no image leaves it.", self)
        text.setWordWrap(True)
        layout.addWidget(text)
        self.notice = QLabel(f"<b>{NOT_DIAGNOSTIC}</b>", self)
        self.notice.setObjectName("notDiagnostic")
        self.notice.setWordWrap(True)
        layout.addWidget(self.notice)
        # Rows by name, so a support request can quote them (and tests read them).
        self.rows: dict[str, str] = {
            "Version": info.version or version,
            "Build": info.build_id,
            "Commit": info.commit or "unknown",
            "Built": _built_at(info.built_at) or ("not packaged (source checkout)"
                                                  if not info.frozen else "unknown"),
        }
        documents = shipped_documents() if info.frozen else {}
        links: dict[str, str] = {}  # row -> file URL, for the documents that are there
        for name, path in documents.items():
            self.rows[name] = str(path) if path.is_file() else f"{path} (missing)"
            if path.is_file():
                links[name] = QUrl.fromLocalFile(str(path)).toString()
        if not documents:
            self.rows["SBOM"] = "shipped with installed copies (make package)"
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, value in self.rows.items():
            label = QLabel(self)
            label.setObjectName(f"about{name.split()[0]}")
            label.setWordWrap(True)
            if name in links:  # opens in the system's viewer for .txt / .json
                label.setTextFormat(Qt.TextFormat.RichText)
                label.setText(f'<a href="{html.escape(links[name])}">{html.escape(value)}</a>')
                label.setOpenExternalLinks(True)
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
            else:
                label.setTextFormat(Qt.TextFormat.PlainText)
                label.setText(value)
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{name}:", label)
        layout.addLayout(form)
        if runtime:
            rt = QLabel(runtime, self)
            rt.setWordWrap(True)
            rt.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            rt.setStyleSheet("color: #8a929b;")
            layout.addWidget(rt)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def text(self) -> str:
        """The build rows as plain lines ("Build: dev-abc1234")."""
        return "\n".join(f"{name}: {value}" for name, value in self.rows.items())


def _built_at(stamp: str) -> str:
    """``2026-12-05T23:30:00Z`` -> ``2026-12-05 23:30 UTC`` (anything else as it is)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: every shortcut the window and the viewer answer to."""

    def __init__(self, shortcuts: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(520, 560)
        layout = QVBoxLayout(self)
        self.table = _table(("Keys", "Action"), list(shortcuts), self)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
