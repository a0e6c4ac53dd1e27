"""Add or edit a remote node: a DIMSE peer (AE title, host, port, TLS) or a DICOMweb URL.

The values are checked by ``net.nodes.Node`` itself (AE title charset and length, port
range, exactly one of DIMSE or DICOMweb); its message is shown under the fields and OK
stays refused until the node is valid.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

FIELD_LABELS = {"name": "Name", "ae_title": "AE title", "host": "Host", "port": "Port",
                "dicomweb_url": "DICOMweb URL"}
KINDS = (("dimse", "DIMSE (AE title, host, port)"), ("dicomweb", "DICOMweb (HTTP URL)"))


def validation_text(exc: Exception) -> str:
    """pydantic's errors as short lines ("port: must be 1–65535"), else the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        lines = []
        for error in errors():
            where = ", ".join(FIELD_LABELS.get(str(p), str(p)) for p in error.get("loc", ()))
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            lines.append(f"{where}: {message}" if where else message)
        return "\n".join(lines)
    return str(exc)


class NodeDialog(QDialog):
    """The node's fields; :meth:`node` is the validated ``net.nodes.Node`` (None if invalid)."""

    def __init__(self, parent: QWidget | None = None, node: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("nodeDialog")
        self.setWindowTitle("Edit node" if node is not None else "Add node")
        self.setMinimumWidth(420)
        self.name = QLineEdit(self)
        self.name.setObjectName("nodeName")
        self.name.setPlaceholderText("e.g. Clinic PACS")
        self.kind = QComboBox(self)
        self.kind.setObjectName("nodeKind")
        for value, text in KINDS:
            self.kind.addItem(text, value)
        self.ae_title = QLineEdit(self)
        self.ae_title.setObjectName("nodeAeTitle")
        self.ae_title.setMaxLength(16)
        self.host = QLineEdit(self)
        self.host.setObjectName("nodeHost")
        self.host.setPlaceholderText("host name or IP address")
        self.port = QSpinBox(self)
        self.port.setObjectName("nodePort")
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.tls = QCheckBox("Use TLS", self)
        self.tls.setObjectName("nodeTls")
        self.url = QLineEdit(self)
        self.url.setObjectName("nodeUrl")
        self.url.setPlaceholderText("https://pacs.example/dicom-web")
        self.problem = QLabel("", self)
        self.problem.setObjectName("nodeProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #e08a80;")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("AE title", self.ae_title)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("", self.tls)
        form.addRow("DICOMweb URL", self.url)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(self.problem)
        column.addWidget(self.buttons)
        self._form = form
        if node is not None:
            self.name.setText(node.name)
            self.kind.setCurrentIndex(1 if node.kind == "dicomweb" else 0)
            self.ae_title.setText(node.ae_title)
            self.host.setText(node.host)
            self.port.setValue(int(node.port) or 104)
            self.tls.setChecked(bool(node.tls))
            self.url.setText(node.dicomweb_url)
        self.kind.currentIndexChanged.connect(self._on_kind)
        self._on_kind()

    def _on_kind(self, *_args: Any) -> None:
        web = self.kind.currentData() == "dicomweb"
        for widget in (self.ae_title, self.host, self.port, self.tls):
            self._form.setRowVisible(widget, not web)
        self._form.setRowVisible(self.url, web)
        self.problem.setText("")

    def node(self) -> Any:
        """The node as entered, validated by ``net.nodes.Node``; None with the reason shown."""
        from net.nodes import Node

        values: dict[str, Any] = {"name": self.name.text().strip()}
        if self.kind.currentData() == "dicomweb":
            values["dicomweb_url"] = self.url.text().strip()
        else:
            values.update(ae_title=self.ae_title.text().strip(), host=self.host.text().strip(),
                          port=self.port.value(), tls=self.tls.isChecked())
        try:
            node = Node(**values)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self.problem.setText(validation_text(exc))
            return None
        self.problem.setText("")
        return node

    def accept(self) -> None:
        if self.node() is not None:
            super().accept()
