"""The DICOM tag browser: a dock listing every element of the instance under the cursor.

The rows come from :mod:`dicomio.tags` (bounded header read, no pixel data, an
unreadable file is one error row). The header is read by a background job, never
on the GUI thread; a newer request supersedes an older one. The instance shown is
the one whose ImagePositionPatient is nearest the current slice along the
volume's slice axis (else the first instance of the series: a multi-frame object
or a series without positions).

With identity hidden (the window's Ctrl+I), identifying values read "hidden" — the
rows stay, so the reader sees which elements the file carries — and the search
never matches a hidden value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import workers
from dicomio.tags import TagRow, TagTree, filter_rows

COLUMNS = ("Tag", "Name", "VR", "Value")
# Scrolling fires many cursor changes: read the header once the cursor rests.
CURSOR_SETTLE_MS = 150
DOCK_WIDTH = 560
ERROR_TEXT = "#ff8a80"  # the theme's soft red (app/theme.py BrightText), not pure red


class TagBrowser(QWidget):
    """Search box + tree (Tag, Name, VR, Value) + a caption naming the instance."""

    rows_shown = Signal()  # the tree was rebuilt (new file, filter or identity)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.identity_visible = True
        self.tag_tree: TagTree | None = None
        self._caption_parts = ("", "")
        self.caption = QLabel("No series open.", self)
        self.caption.setObjectName("tagCaption")
        self.caption.setWordWrap(True)
        self.search = QLineEdit(self)
        self.search.setObjectName("tagSearch")
        self.search.setPlaceholderText("Filter: keyword, tag (0010,0010) or value")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _text: self._rebuild())
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("tagTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIndentation(12)
        self.tree.setColumnWidth(0, 112)
        self.tree.setColumnWidth(1, 190)
        self.tree.setColumnWidth(2, 34)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self.caption)
        column.addWidget(self.search)
        column.addWidget(self.tree, 1)

    def set_tag_tree(self, tree: TagTree | None, instance: str = "", file_name: str = "") -> None:
        """Show ``tree``; the caption names the instance, and the file only while identity
        is shown (file names can carry a patient's name)."""
        self.tag_tree = tree
        self._caption_parts = (instance, file_name)
        self._rebuild()

    def set_identity_visible(self, visible: bool) -> None:
        self.identity_visible = bool(visible)
        self._rebuild()

    def _update_caption(self) -> None:
        instance, file_name = self._caption_parts
        if self.tag_tree is None:
            self.caption.setText(instance or "No series open.")
            return
        parts = [instance or "Instance", file_name if self.identity_visible else ""]
        self.caption.setText(" — ".join(p for p in parts if p))

    def set_filter(self, text: str) -> None:
        self.search.setText(text)

    def _rebuild(self) -> None:
        self._update_caption()
        self.tree.clear()
        rows = self.tag_tree.rows if self.tag_tree is not None else []
        query = self.search.text()
        shown = filter_rows(rows, query, self.identity_visible)
        for row in shown:
            self.tree.addTopLevelItem(self._item(row))
        if query.strip():
            self.tree.expandAll()  # show where inside a sequence the match is
        self.rows_shown.emit()

    def _item(self, row: TagRow) -> QTreeWidgetItem:
        item = QTreeWidgetItem([row.tag_text, row.name, row.vr,
                                row.shown_value(self.identity_visible)])
        tip = row.name if not row.private_creator else f"{row.name} — {row.private_creator}"
        item.setToolTip(1, tip)
        if row.error:
            item.setForeground(1, QColor(ERROR_TEXT))
        for child in row.children:
            item.addChild(self._item(child))
        return item

    def visible_rows(self) -> list[tuple[str, str, str, str]]:
        """(tag, name, VR, value) of every row in the tree, depth first (tests, scripts)."""
        out: list[tuple[str, str, str, str]] = []

        def walk(item: QTreeWidgetItem | None) -> None:
            if item is None:
                return
            out.append((item.text(0), item.text(1), item.text(2), item.text(3)))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out


def nearest_instance(instances: list[Any], volume: Any, cursor_lps: Any) -> Any:
    """The instance whose position is nearest the cursor along the volume's slice axis
    (k); the first instance when none has a position."""
    if not instances:
        return None
    placed = [inst for inst in instances if getattr(inst, "position", None) is not None]
    if volume is None or cursor_lps is None or not placed:
        return instances[0]
    normal = np.asarray(volume.affine, dtype=float)[:3, 0]
    norm = float(np.linalg.norm(normal))
    if norm == 0.0:
        return instances[0]
    normal = normal / norm
    cursor = np.asarray(cursor_lps, dtype=float)
    return min(placed, key=lambda inst: abs(float(
        np.dot(np.asarray(inst.position, dtype=float) - cursor, normal))))


class TagBrowserDock:
    """The dock, its "DICOM tags…" action (Ctrl+T) and the wiring to the main window."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.browser = TagBrowser(window)
        self.dock = window._dock("DICOM tags", "tagsDock", self.browser,
                                 Qt.DockWidgetArea.RightDockWidgetArea)
        # A tab beside Measurements / Models / Findings: the full height of the right side.
        window.tabifyDockWidget(window.measurements_dock, self.dock)
        self.dock.hide()
        self.action = window._action("DICOM tags…", self.show, "Ctrl+T",
                                     tip="Every element of the image under the cursor")
        self._job: workers.Job | None = None
        self._hooked_view: Any = None  # the 2-D view whose frame changes we follow
        self._shown_key: Any = None
        self._settle = QTimer(window)
        self._settle.setSingleShot(True)
        self._settle.setInterval(CURSOR_SETTLE_MS)
        self._settle.timeout.connect(self.refresh)
        self.dock.visibilityChanged.connect(self._on_visibility)
        window.series_loaded.connect(self._on_series_loaded)
        window.series_loading.connect(lambda _sid: self._clear())
        window.viewer.cursor_changed.connect(lambda _lps: self._request())
        self.browser.set_identity_visible(bool(window.prefs.identity_visible))

    def show(self) -> None:
        self.dock.show()
        self.dock.raise_()
        if self.dock.width() < DOCK_WIDTH:  # room for the Value column
            self.window.resizeDocks([self.dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        self.browser.search.setFocus()
        self.refresh()

    def set_identity_visible(self, visible: bool) -> None:
        self.browser.set_identity_visible(visible)

    def _on_visibility(self, visible: bool) -> None:
        if visible:
            self.refresh()

    def _on_series_loaded(self, _series_id: Any) -> None:
        view = self._projection_view()
        if view is not None and view is not self._hooked_view:
            view.frame_changed.connect(lambda _index: self._request())
            self._hooked_view = view
        self._request(force=True)

    def _projection_view(self) -> Any:
        viewer = self.window.viewer
        return viewer.projection_view() if hasattr(viewer, "projection_view") else None

    def _clear(self) -> None:
        self._shown_key = None
        self.browser.set_tag_tree(None)

    def _request(self, force: bool = False) -> None:
        if force:
            self._shown_key = None
        if self.dock.isVisible():
            self._settle.start()

    def current_instance(self) -> Any:
        """The library's instance row under the cursor (None: no series open)."""
        window = self.window
        series_id = window.current_series_id
        if series_id is None:
            return None
        try:
            instances = window.library.series_instances(series_id)
        except Exception as exc:  # a library failure is shown, not raised into Qt
            self.browser.set_tag_tree(None, f"Cannot list the series' files: {exc}")
            return None
        view = self._projection_view()
        image = getattr(view, "image", None)
        if image is not None and 1 < len(instances) == image.frame_count:
            # A 2-D series of single-frame files: frame n is the n-th instance (both in
            # Instance Number, then file order).
            return instances[min(int(view.frame_index), len(instances) - 1)]
        cursor = window.viewer.cursor_lps() if window.current_volume is not None else None
        return nearest_instance(instances, window.current_volume, cursor)

    def refresh(self) -> workers.Job | None:
        """Read the header of the instance under the cursor (in the background)."""
        if not self.dock.isVisible():
            return None
        instance = self.current_instance()
        if instance is None:
            if self.window.current_series_id is None:
                self._clear()
            return None
        key = (instance.path, instance.member)
        if key == self._shown_key:
            return None
        self._shown_key = key
        number = f"Instance {instance.instance_number}" if instance.instance_number else ""
        caption = (number, instance.member or instance.path.name)
        source = (instance.path, instance.member)

        def work(_ctx: workers.JobContext) -> TagTree:
            from dicomio.source import DicomSource
            from dicomio.tags import read_tag_rows

            return read_tag_rows(DicomSource(*source))

        job = workers.make(work, name="tag-rows")
        job.finished.connect(lambda tree, j=job: self._on_rows(j, tree, caption))
        job.failed.connect(lambda exc, j=job: self._on_rows(
            j, TagTree("", [TagRow(None, f"Cannot read this file: {exc}", error=True)]),
            caption))
        self._job = job
        return job.start()

    def _on_rows(self, job: workers.Job, tree: TagTree, caption: tuple[str, str]) -> None:
        if job is not self._job:
            return  # a newer request superseded this one
        self.browser.set_tag_tree(tree, *caption)
