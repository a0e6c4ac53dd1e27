"""The Network panel: remote nodes, query, results, retrieve, send and the transfer list.

Everything that talks to a peer runs in ``app.network_jobs`` (thread pool, cancel token);
this widget only draws and dispatches, so a node that never answers shows "waiting…" and
then its timeout message while the window stays responsive. Nodes are kept in the library
(``net.nodes``); the protocol work is ``net``'s.

The buttons call public methods (``echo_selected``, ``search``, ``retrieve_selected``,
``send_selected``, ``cancel_selected``), which return the started job, so scripts and tests
can drive the same path as a click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app import network_jobs
from app.network_jobs import Arrived, Progress
from app.network_node_dialog import NodeDialog
from app.network_query import QueryForm, ResultsTable, instance_count
from app.network_transfers import WAITING, Transfer, TransferModel
from app.series_session import error_text
from app.workers import Job

log = logging.getLogger(__name__)

OK_COLOUR = "#7fb27f"
ERROR_COLOUR = "#e08a80"
MUTED_COLOUR = "#9aa3ad"
METHODS = (("get", "C-GET"), ("move", "C-MOVE"))
SEND_WHAT = (("series", "Selected library series"), ("signoff", "Last sign-off (SEG, SR, KO)"))


class NetworkPanel(QWidget):
    """Nodes, query form, results, Retrieve / Send, transfers. Lives in a dock."""

    arrived = Signal(object)  # network_jobs.Arrived: instances indexed into the library
    transfer_finished = Signal(object)  # Transfer, its report set
    message = Signal(str)  # one line for the status bar

    def __init__(self, library: Any, library_dir: Path, local: Callable[[], Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("networkPanel")
        self.library = library  # the GUI thread's Library (nodes only)
        self.library_dir = Path(library_dir)
        self.local = local  # () -> net.nodes.LocalAE from the current preferences
        self.timeout_s = 10.0  # echo: a node that never answers
        self.series_provider: Callable[[], Any] = lambda: None  # selected library series id
        self.signoff_provider: Callable[[], list[Path]] = list  # the last sign-off's files
        self.scp_provider: Callable[[], Any] = lambda: None  # the running storage SCP
        self.jobs: list[Job] = []
        self.last_results: list[dict[str, Any]] = []

        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        # The three boxes need ~800 px together: in a scroll area the dock never forces the
        # window taller than the screen (a 768 px laptop) or a scripted screenshot's size.
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        column.addWidget(scroll)
        splitter = QSplitter(Qt.Orientation.Vertical, scroll)
        splitter.setChildrenCollapsible(False)
        scroll.setWidget(splitter)
        splitter.addWidget(self._nodes_box())
        splitter.addWidget(self._query_box())
        splitter.addWidget(self._transfers_box())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 3)
        splitter.setStretchFactor(2, 1)
        self.splitter = splitter
        self.reload_nodes()
        self._update_buttons()

    # ------------------------------------------------------------------ building
    def _nodes_box(self) -> QGroupBox:
        box = QGroupBox("Nodes", self)
        layout = QVBoxLayout(box)
        self.nodes = QListWidget(box)
        self.nodes.setObjectName("networkNodes")
        self.nodes.setMaximumHeight(96)
        self.nodes.setAlternatingRowColors(True)
        self.nodes.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.nodes.itemDoubleClicked.connect(lambda _item: self.edit_selected())
        layout.addWidget(self.nodes)
        buttons = QHBoxLayout()
        self.add_button = self._button("Add…", self.add_clicked, buttons, "networkAdd")
        self.edit_button = self._button("Edit…", self.edit_selected, buttons, "networkEdit")
        self.remove_button = self._button("Remove", self.remove_selected, buttons,
                                          "networkRemove")
        self.echo_button = self._button("Echo", self.echo_selected, buttons, "networkEcho")
        layout.addLayout(buttons)
        self.echo_label = self._label("networkEchoResult", box)
        layout.addWidget(self.echo_label)
        return box

    def _query_box(self) -> QGroupBox:
        box = QGroupBox("Query", self)
        layout = QVBoxLayout(box)
        self.form = QueryForm(box)
        layout.addWidget(self.form)
        row = QHBoxLayout()
        self.query_status = self._label("networkQueryStatus", box)
        row.addWidget(self.query_status, 1)
        self.search_button = self._button("Search", self.search, row, "networkSearch")
        layout.addLayout(row)
        for edit in (self.form.patient_name, self.form.patient_id, self.form.accession,
                     self.form.date_from, self.form.date_to):
            edit.returnPressed.connect(self.search)
        self.results = ResultsTable(box)
        self.results.selectionModel().selectionChanged.connect(
            lambda *_args: self._update_buttons())
        layout.addWidget(self.results, 1)
        retrieve = QHBoxLayout()
        self.method = QComboBox(box)
        self.method.setObjectName("networkMethod")
        for value, text in METHODS:
            self.method.addItem(text, value)
        self.method.setToolTip("C-GET brings the images on the same connection; C-MOVE "
                               "asks the PACS to send them to Lucida's storage SCP")
        retrieve.addWidget(self.method)
        self.retrieve_button = self._button("Retrieve", self.retrieve_selected, retrieve,
                                            "networkRetrieve")
        retrieve.addStretch(1)
        layout.addLayout(retrieve)
        send = QHBoxLayout()
        self.send_what = QComboBox(box)
        self.send_what.setObjectName("networkSendWhat")
        for value, text in SEND_WHAT:
            self.send_what.addItem(text, value)
        send.addWidget(self.send_what, 1)
        self.send_button = self._button("Send", self.send_selected, send, "networkSend")
        self.send_button.setToolTip("Send to the selected node")
        layout.addLayout(send)
        return box

    def _transfers_box(self) -> QGroupBox:
        box = QGroupBox("Transfers", self)
        layout = QVBoxLayout(box)
        self.transfers = TransferModel(self)
        self.transfer_view = QTableView(box)
        self.transfer_view.setObjectName("networkTransfers")
        self.transfer_view.setModel(self.transfers)
        self.transfer_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.transfer_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.transfer_view.verticalHeader().hide()
        self.transfer_view.verticalHeader().setDefaultSectionSize(22)
        self.transfer_view.setAlternatingRowColors(True)
        self.transfer_view.setMinimumHeight(24 + 4 * 22)  # the header and four transfers
        header = self.transfer_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.transfer_view.selectionModel().selectionChanged.connect(
            lambda *_args: self._update_buttons())
        layout.addWidget(self.transfer_view, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.cancel_button = self._button("Cancel transfer", self.cancel_selected, row,
                                          "networkCancel")
        layout.addLayout(row)
        return box

    def _button(self, text: str, slot: Callable[[], Any], row: QHBoxLayout,
                name: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.clicked.connect(lambda _checked=False: slot())
        row.addWidget(button)
        return button

    def _label(self, name: str, parent: QWidget) -> QLabel:
        label = QLabel("", parent)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    @staticmethod
    def _say(label: QLabel, text: str, colour: str = MUTED_COLOUR) -> None:
        label.setStyleSheet(f"color: {colour};")
        label.setText(text)

    # ------------------------------------------------------------------ nodes
    def reload_nodes(self, select: str | None = None) -> None:
        from net.nodes import list_nodes

        current = select or self.selected_node_name()
        self.nodes.clear()
        try:
            nodes = list_nodes(self.library)
        except Exception as exc:  # a damaged or locked library: say so, keep the window
            self._say(self.echo_label, f"Nodes could not be read: {error_text(exc)}",
                      ERROR_COLOUR)
            nodes = []
        for node in nodes:
            item = QListWidgetItem(f"{node.name}  —  {node.describe()}")
            item.setData(Qt.ItemDataRole.UserRole, node.name)
            item.setToolTip(node.describe())
            self.nodes.addItem(item)
            if node.name == current:
                self.nodes.setCurrentItem(item)
        if self.nodes.currentRow() < 0 and self.nodes.count():
            self.nodes.setCurrentRow(0)
        self._update_buttons()

    def selected_node_name(self) -> str | None:
        item = self.nodes.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def selected_node(self) -> Any:
        from net.nodes import get_node

        name = self.selected_node_name()
        return get_node(self.library, name) if name else None

    def add_node(self, node: Any, *, replace: bool = False) -> None:
        """Save ``node`` in the library and select it (what Add… / Edit… do after the dialog)."""
        from net.nodes import add_node

        add_node(self.library, node, replace=replace)
        self.reload_nodes(select=node.name)
        self.message.emit(f"Network node {node.name} saved.")

    def add_clicked(self) -> NodeDialog:
        return self._open_dialog(NodeDialog(self), replace_name=None)

    def edit_selected(self) -> NodeDialog | None:
        node = self.selected_node()
        if node is None:
            return None
        return self._open_dialog(NodeDialog(self, node), replace_name=node.name)

    def _open_dialog(self, dialog: NodeDialog, replace_name: str | None) -> NodeDialog:
        def done(result: int) -> None:
            node = dialog.node() if result == NodeDialog.DialogCode.Accepted else None
            if node is None:
                return
            try:
                if replace_name is not None and replace_name != node.name:
                    from net.nodes import remove_node

                    remove_node(self.library, replace_name)
                self.add_node(node, replace=replace_name is not None)
            except Exception as exc:  # a taken name, a failing library: say so
                self._say(self.echo_label, error_text(exc), ERROR_COLOUR)

        dialog.finished.connect(done)
        dialog.setModal(True)
        dialog.show()  # not exec(): tests and scripts drive the shown dialog
        self.last_dialog = dialog
        return dialog

    def remove_selected(self) -> bool:
        from net.nodes import remove_node

        name = self.selected_node_name()
        if not name:
            return False
        removed = remove_node(self.library, name)
        self.reload_nodes()
        self._say(self.echo_label, f"{name} removed." if removed else "")
        return removed

    # ------------------------------------------------------------------ echo and query
    def _start(self, job: Job) -> Job:
        self.jobs.append(job)
        job.done.connect(lambda j=job: self._forget(j))
        return job.start()

    def _forget(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self._update_buttons()

    def _node_or_say(self, label: QLabel) -> Any:
        try:
            node = self.selected_node()
        except Exception as exc:
            self._say(label, error_text(exc), ERROR_COLOUR)
            return None
        if node is None:
            self._say(label, "Add a node first (Add…).", ERROR_COLOUR)
        return node

    def echo_selected(self) -> Job | None:
        """C-ECHO the selected node; "waiting…" until it answers or times out."""
        node = self._node_or_say(self.echo_label)
        if node is None:
            return None
        self._say(self.echo_label, f"Echo {node.name}: {WAITING}")
        job = network_jobs.echo_job(node, self.local(), self.timeout_s)
        job.finished.connect(lambda seconds, n=node.name: self._say(
            self.echo_label, f"Echo {n}: OK, {seconds * 1000:.0f} ms", OK_COLOUR))
        job.failed.connect(lambda exc, n=node.name: self._say(
            self.echo_label, f"Echo {n} failed: {error_text(exc)}", ERROR_COLOUR))
        self.echo_button.setEnabled(False)
        return self._start(job)

    def search(self) -> Job | None:
        """Query the selected node with the form's keys at the chosen level."""
        node = self._node_or_say(self.query_status)
        if node is None:
            return None
        problem = self.form.problem()
        if problem:
            self._say(self.query_status, problem, ERROR_COLOUR)
            return None
        level = self.form.level_value()
        self._say(self.query_status, f"Searching {node.name}: {WAITING}")
        job = network_jobs.find_job(node, self.local(), level, self.form.keys())  # type: ignore[arg-type]
        job.finished.connect(lambda records, n=node.name: self._show_results(n, records))
        job.failed.connect(lambda exc, n=node.name: self._say(
            self.query_status, f"Search on {n} failed: {error_text(exc)}", ERROR_COLOUR))
        self.search_button.setEnabled(False)
        return self._start(job)

    def _show_results(self, node: str, records: list[dict[str, Any]]) -> None:
        self.last_results = list(records)
        self.results.set_records(self.last_results)
        count = len(self.last_results)
        self._say(self.query_status, f"{count} match{'es' if count != 1 else ''} on {node}.",
                  OK_COLOUR if count else MUTED_COLOUR)
        if count:
            self.results.selectRow(0)
        self._update_buttons()

    # ------------------------------------------------------------------ transfers
    def retrieve_selected(self, method: str | None = None) -> Job | None:
        """Retrieve the studies of the selected results (C-GET unless C-MOVE is chosen)."""
        node = self._node_or_say(self.query_status)
        uids = self.results.selected_study_uids()
        if node is None or not uids:
            if node is not None:
                self._say(self.query_status, "Select a study in the results first.",
                          ERROR_COLOUR)
            return None
        how = method or str(self.method.currentData())
        total = sum(instance_count(r) for r in self.results.selected_records())
        transfer = Transfer(node.name, "retrieve", total=total)
        job = network_jobs.retrieve_job(self.library_dir, node, self.local(), uids,
                                        method=how, total_hint=total,  # type: ignore[arg-type]
                                        scp=self.scp_provider())
        return self._run_transfer(transfer, job)

    def send_selected(self) -> Job | None:
        """Send what the Send list names (the selected library series, or the sign-off)."""
        if self.send_what.currentData() == "signoff":
            try:
                files = self.signoff_provider()
            except Exception as exc:  # a changed or missing export: say so, send nothing
                self._say(self.query_status, error_text(exc), ERROR_COLOUR)
                return None
            return self.send_paths(files, what="the sign-off")
        series_id = self.series_provider()
        if series_id is None:
            self._say(self.query_status, "Select a series in the library first.", ERROR_COLOUR)
            return None
        from net.send import series_paths

        return self.send_paths(series_paths(self.library, int(series_id)),
                               what="the series")

    def send_paths(self, paths: Sequence[Any], what: str = "files") -> Job | None:
        """Send files (or a series' stored sources) to the selected node."""
        node = self._node_or_say(self.query_status)
        if node is None:
            return None
        files = [p for p in paths if not (isinstance(p, Path) and p.suffix.lower() == ".html")]
        if not files:
            self._say(self.query_status, f"Nothing to send: {what} has no DICOM files "
                      "(sign off first, or select a series).", ERROR_COLOUR)
            return None
        transfer = Transfer(node.name, "send", total=len(files))
        return self._run_transfer(transfer, network_jobs.send_job(node, self.local(), files))

    def _run_transfer(self, transfer: Transfer, job: Job) -> Job:
        transfer.job = job
        row = self.transfers.add(transfer)
        self.transfer_view.selectRow(row)
        job.partial.connect(lambda value, t=transfer: self._on_partial(t, value))
        job.finished.connect(lambda report, t=transfer: self._on_finished(t, report))
        job.failed.connect(lambda exc, t=transfer: self._on_failed(t, exc))
        job.cancelled.connect(lambda t=transfer: self._on_cancelled(t))
        self.message.emit(f"{transfer.direction.capitalize()} {transfer.node}: {WAITING}")
        return self._start(job)

    def _on_partial(self, transfer: Transfer, value: Any) -> None:
        if isinstance(value, Arrived):
            transfer.done = max(transfer.done, value.instances)
            transfer.bytes = max(transfer.bytes, value.bytes)
            self.arrived.emit(value)
        elif isinstance(value, Progress):
            transfer.done = max(transfer.done, value.done)
            transfer.total = max(transfer.total, value.total)
            transfer.bytes = max(transfer.bytes, value.bytes)
        if transfer.state == WAITING:
            transfer.state = "running"
        self.transfers.changed(transfer)

    def _on_finished(self, transfer: Transfer, report: Any) -> None:
        transfer.finish(report)
        self._ended(transfer)

    def _on_failed(self, transfer: Transfer, exc: Exception) -> None:
        transfer.fail(error_text(exc))
        self._ended(transfer)

    def _on_cancelled(self, transfer: Transfer) -> None:
        transfer.state = "cancelled"
        self._ended(transfer)

    def _ended(self, transfer: Transfer) -> None:
        self.transfers.changed(transfer)
        text = f"{transfer.direction.capitalize()} {transfer.node}: {transfer.state}, " \
               f"{transfer.instances_text()} instances"
        self.message.emit(text + (f" — {transfer.error}" if transfer.error else ""))
        self.transfer_finished.emit(transfer)
        self._update_buttons()

    def selected_transfer(self) -> Transfer | None:
        rows = self.transfer_view.selectionModel().selectedRows()
        return self.transfers.rows[rows[0].row()] if rows else None

    def cancel_selected(self) -> bool:
        transfer = self.selected_transfer()
        if transfer is None or transfer.finished or transfer.job is None:
            return False
        transfer.job.cancel()
        transfer.state = "cancelling…"
        self.transfers.changed(transfer)
        return True

    def set_identity_visible(self, visible: bool) -> None:
        """Patient names and IDs in the results follow View ▸ Show identifying text."""
        self.results.set_identity_visible(visible)

    def running(self) -> bool:
        return any(job.running for job in self.jobs)

    def shutdown(self) -> None:
        """Cancel every network job (the window is closing; app.workers waits for them)."""
        for job in list(self.jobs):
            job.cancel()

    def _update_buttons(self) -> None:
        has_node = self.nodes.currentRow() >= 0
        busy = {job.name.split(" ")[0] for job in self.jobs if job.running}
        self.edit_button.setEnabled(has_node)
        self.remove_button.setEnabled(has_node)
        self.echo_button.setEnabled(has_node and "echo" not in busy)
        self.search_button.setEnabled(has_node and "query" not in busy)
        self.retrieve_button.setEnabled(has_node and bool(self.results.selected_study_uids()))
        self.send_button.setEnabled(has_node)
        transfer = self.selected_transfer()
        self.cancel_button.setEnabled(transfer is not None and not transfer.finished)
