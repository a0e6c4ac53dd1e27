"""View ▸ Hanging protocols…: the shipped rules (read-only) and the user's own (editable).

Each rule is edited as its JSON (the same form the preferences and
``resources/hanging_protocols.json`` hold), checked as it is typed: the message
names the failing field (``cells.0.preset: Input should be …``). Saving is
refused while a user rule does not validate, so only good rules reach the
preferences, which the window writes atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.hanging import Protocols, rule_to_raw, validate_rules

NEW_RULE: dict[str, Any] = {
    "name": "New rule",
    "priority": 0,
    "match": {"modality": ["CT"], "body_part": ["CHEST"]},
    "grid": [1, 2],
    "cells": [{"view": "axial", "preset": "lung"}, {"view": "axial", "preset": "mediastinum"}],
}

HELP = ("Rules match when every field given matches: case-insensitive globs (* any text, "
        "? one character) on modality, body_part, series_description, study_description, "
        "image_type; min_series / max_series count the study's series. Your rules are tried "
        "before the shipped ones; then higher priority, then the more specific rule, then list "
        "order. A rule gives a layout (\"1x1\", \"1x3\", \"2x2\", optional preset) or a grid of "
        "cells (view: axial coronal sagittal 3d; preset: a CT preset, auto or default; series: "
        "current or prior).")


def pretty(raw: Any) -> str:
    """A rule's JSON with one line per key and per cell (indent=2 puts every list item on
    a line of its own, which makes a short rule a page long)."""
    if not isinstance(raw, dict):
        return json.dumps(raw, indent=2)
    lines = []
    for key, value in raw.items():
        if key == "cells" and isinstance(value, list) and value:
            inner = ",\n".join(f"    {json.dumps(c)}" for c in value)
            lines.append(f'  "cells": [\n{inner}\n  ]')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def problem_of(text: str) -> str | None:
    """Why a rule's JSON text is not a valid rule (naming the field), or None."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return f"JSON: {exc}"
    _good, problems = validate_rules([raw], "user")
    if problems:
        p = problems[0]
        return f"{p.field or 'rule'}: {p.message}"
    return None


class HangingDialog(QDialog):
    """Lists shipped and user rules; add, copy, edit, delete and reorder the user's."""

    def __init__(self, user_raw: list[Any], save: Callable[[list[dict[str, Any]]], bool],
                 parent: QWidget | None = None, protocols: Protocols | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hangingDialog")
        self.setWindowTitle("Hanging protocols")
        self.resize(980, 620)
        self._save = save
        loaded = protocols if protocols is not None else Protocols.load(user_raw)
        self._shipped = [rule_to_raw(r.rule) for r in loaded.shipped]
        self._texts: list[str] = [pretty(r) for r in user_raw]
        self._editing: tuple[str, int] | None = None   # ("user" | "shipped", row)

        help_label = QLabel(HELP, self)
        help_label.setWordWrap(True)
        help_label.setObjectName("hangingHelp")

        self.shipped_list = QListWidget(self)
        self.shipped_list.setObjectName("shippedRules")
        self.shipped_list.addItems([f"{r['name']}" for r in self._shipped])
        self.copy_button = QPushButton("Copy to edit", self)
        self.user_list = QListWidget(self)
        self.user_list.setObjectName("userRules")
        self.add_button = QPushButton("Add", self)
        self.delete_button = QPushButton("Delete", self)
        self.up_button = QPushButton("Up", self)
        self.down_button = QPushButton("Down", self)

        left = QWidget(self)
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(QLabel("Shipped rules (read-only)", self))
        col.addWidget(self.shipped_list, 2)
        col.addWidget(self.copy_button)
        col.addWidget(QLabel("My rules (tried first, top to bottom)", self))
        col.addWidget(self.user_list, 3)
        row = QHBoxLayout()
        for b in (self.add_button, self.delete_button, self.up_button, self.down_button):
            row.addWidget(b)
        col.addLayout(row)

        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("ruleEditor")
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.editor.setFont(mono)
        self.message = QLabel(self)
        self.message.setObjectName("ruleMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right = QWidget(self)
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(0, 0, 0, 0)
        rcol.addWidget(self.editor, 1)
        rcol.addWidget(self.message)

        split = QSplitter(self)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([340, 640])
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close, self)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        outer = QVBoxLayout(self)
        outer.addWidget(help_label)
        outer.addWidget(split, 1)
        outer.addWidget(self.buttons)

        self.shipped_list.currentRowChanged.connect(self._show_shipped)
        self.user_list.currentRowChanged.connect(self._show_user)
        self.editor.textChanged.connect(self._edited)
        self.copy_button.clicked.connect(self.copy_selected_shipped)
        self.add_button.clicked.connect(self.add_rule)
        self.delete_button.clicked.connect(self.delete_rule)
        self.up_button.clicked.connect(lambda: self.move_rule(-1))
        self.down_button.clicked.connect(lambda: self.move_rule(1))
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self._refill_user(0 if self._texts else -1)
        if not self._texts and self._shipped:
            self.shipped_list.setCurrentRow(0)
        self._update_state()

    # ------------------------------------------------------------------ state
    def user_texts(self) -> list[str]:
        return list(self._texts)

    def problems(self) -> list[tuple[int, str]]:
        """(row, message) of every user rule that does not validate."""
        out = []
        for n, text in enumerate(self._texts):
            problem = problem_of(text)
            if problem is not None:
                out.append((n, problem))
        return out

    def _label(self, n: int) -> str:
        try:
            name = str(json.loads(self._texts[n]).get("name", "")) or "(no name)"
        except (ValueError, AttributeError):
            name = "(not JSON)"
        return f"{n + 1}. {name}" + ("   ⚠ invalid" if problem_of(self._texts[n]) else "")

    def _refill_user(self, select: int) -> None:
        self.user_list.blockSignals(True)
        self.user_list.clear()
        self.user_list.addItems([self._label(n) for n in range(len(self._texts))])
        self.user_list.blockSignals(False)
        if 0 <= select < len(self._texts):
            self.user_list.setCurrentRow(select)
            self._show_user(select)
        elif not self._texts:
            self._editing = None
            self.editor.blockSignals(True)
            self.editor.setPlainText("")
            self.editor.blockSignals(False)

    def _update_state(self) -> None:
        problems = self.problems()
        editing_user = self._editing is not None and self._editing[0] == "user"
        row = self._editing[1] if self._editing is not None else -1
        self.save_button.setEnabled(not problems)
        self.delete_button.setEnabled(editing_user)
        self.up_button.setEnabled(editing_user and row > 0)
        self.down_button.setEnabled(editing_user and row < len(self._texts) - 1)
        self.copy_button.setEnabled(self.shipped_list.currentRow() >= 0)
        if self._editing is not None and self._editing[0] == "shipped":
            self._say("Shipped rule: read-only. “Copy to edit” makes it one of your rules.", "")
        elif editing_user:
            problem = problem_of(self._texts[row])
            if problem is None:
                self._say("Valid rule.", "ok")
            else:
                self._say(f"Rule {row + 1} is not valid — {problem}", "bad")
        else:
            self._say("No rule of yours yet: “Add” or “Copy to edit”.", "")
        if problems and not (editing_user and problems[0][0] == row):
            n, problem = problems[0]
            self._say(self.message.text() + f"\nRule {n + 1} is not valid — {problem}", "bad")

    def _say(self, text: str, kind: str) -> None:
        colour = {"ok": "#8fd18f", "bad": "#f0a070"}.get(kind, "#c8c8c8")
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)

    # ------------------------------------------------------------------ slots
    def _show_shipped(self, row: int) -> None:
        if row < 0:
            return
        self.user_list.blockSignals(True)
        self.user_list.setCurrentRow(-1)
        self.user_list.blockSignals(False)
        self._editing = ("shipped", row)
        self.editor.blockSignals(True)
        self.editor.setPlainText(pretty(self._shipped[row]))
        self.editor.blockSignals(False)
        self.editor.setReadOnly(True)
        self._update_state()

    def _show_user(self, row: int) -> None:
        if row < 0 or row >= len(self._texts):
            return
        self.shipped_list.blockSignals(True)
        self.shipped_list.setCurrentRow(-1)
        self.shipped_list.blockSignals(False)
        self._editing = ("user", row)
        self.editor.setReadOnly(False)
        self.editor.blockSignals(True)
        self.editor.setPlainText(self._texts[row])
        self.editor.blockSignals(False)
        self._update_state()

    def _edited(self) -> None:
        if self._editing is None or self._editing[0] != "user":
            return
        row = self._editing[1]
        self._texts[row] = self.editor.toPlainText()
        item = self.user_list.item(row)
        if item is not None:
            item.setText(self._label(row))
        self._update_state()

    def select_user(self, row: int) -> None:
        self.user_list.setCurrentRow(row)

    def select_shipped(self, row: int) -> None:
        self.shipped_list.setCurrentRow(row)

    def set_rule_text(self, text: str) -> None:
        """Replace the text of the user rule being edited (as typing would)."""
        self.editor.setPlainText(text)

    def copy_selected_shipped(self) -> None:
        row = self.shipped_list.currentRow()
        if row < 0:
            return
        raw = dict(self._shipped[row])
        raw["name"] = f"{raw['name']} (mine)"
        self._texts.append(pretty(raw))
        self._refill_user(len(self._texts) - 1)

    def add_rule(self) -> None:
        self._texts.append(pretty(NEW_RULE))
        self._refill_user(len(self._texts) - 1)

    def delete_rule(self) -> None:
        if self._editing is None or self._editing[0] != "user":
            return
        row = self._editing[1]
        del self._texts[row]
        self._refill_user(min(row, len(self._texts) - 1))
        self._update_state()

    def move_rule(self, step: int) -> None:
        if self._editing is None or self._editing[0] != "user":
            return
        row = self._editing[1]
        to = row + step
        if not 0 <= to < len(self._texts):
            return
        self._texts[row], self._texts[to] = self._texts[to], self._texts[row]
        self._refill_user(to)

    def save(self) -> bool:
        """Hand the user rules to the window to save; refused while one is invalid."""
        problems = self.problems()
        if problems:
            self._update_state()
            return False
        rules = [json.loads(t) for t in self._texts]
        if not self._save(rules):
            self._say("Your rules could not be saved (see the status bar).", "bad")
            return False
        self._say(f"Saved {len(rules)} rule(s).", "ok")
        self.accept()
        return True
