"""Network settings: Lucida's own AE title and port, and the storage SCP.

The SCP is off by default and listens on loopback unless the user picks another
interface; only the calling AE titles (and, if given, hosts) on the allow list may store.
TLS needs a certificate and key the user supplies. The values live in the preferences
(``app.settings.Preferences``); the dialog validates them (AE titles through
``net.nodes.check_ae_title``) before anything is written.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
_SPLIT = re.compile(r"[,\s]+")


def interfaces() -> list[str]:
    """Loopback first, then this machine's own addresses, then all interfaces."""
    found = [LOOPBACK]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if address not in found:
                found.append(address)
    except OSError:  # no resolvable host name: loopback and "all" are still choices
        pass
    return [*found, ALL_INTERFACES]


def split_list(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text.strip()) if part]


class NetworkSettingsDialog(QDialog):
    """Edit the network preferences; :meth:`apply` writes them into a Preferences."""

    def __init__(self, prefs: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("networkSettings")
        self.setWindowTitle("Network settings")
        self.setMinimumWidth(480)
        self.ae_title = QLineEdit(prefs.local_ae_title, self)
        self.ae_title.setObjectName("localAeTitle")
        self.ae_title.setMaxLength(16)
        self.port = QSpinBox(self)
        self.port.setObjectName("localPort")
        self.port.setRange(1, 65535)
        self.port.setValue(int(prefs.local_port))
        self.scp_enabled = QCheckBox("Receive studies (storage SCP)", self)
        self.scp_enabled.setObjectName("scpEnabled")
        self.scp_enabled.setChecked(bool(prefs.scp_enabled))
        self.bind = QComboBox(self)
        self.bind.setObjectName("scpBind")
        self.bind.setEditable(True)
        self.bind.addItems(interfaces())
        self.bind.setCurrentText(str(prefs.scp_bind or LOOPBACK))
        self.allowed_aes = QLineEdit(", ".join(prefs.scp_allowed_aes), self)
        self.allowed_aes.setObjectName("scpAllowedAes")
        self.allowed_aes.setPlaceholderText("AE titles that may send, e.g. ORTHANC, CT1")
        self.allowed_hosts = QLineEdit(", ".join(prefs.scp_allowed_hosts), self)
        self.allowed_hosts.setObjectName("scpAllowedHosts")
        self.allowed_hosts.setPlaceholderText("optional: only these addresses")
        self.tls_cert = QLineEdit(str(prefs.scp_tls_cert or ""), self)
        self.tls_cert.setObjectName("scpTlsCert")
        self.tls_key = QLineEdit(str(prefs.scp_tls_key or ""), self)
        self.tls_key.setObjectName("scpTlsKey")
        self.problem = QLabel("", self)
        self.problem.setObjectName("networkSettingsProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #e08a80;")
        note = QLabel("The SCP listens only while enabled; loopback keeps it off the "
                      "network. Callers not on the allow list are refused.", self)
        note.setWordWrap(True)
        note.setStyleSheet("color: #7d858e;")

        form = QFormLayout()
        form.addRow("Lucida's AE title", self.ae_title)
        form.addRow("Port", self.port)
        form.addRow("", self.scp_enabled)
        form.addRow("Listen on", self.bind)
        form.addRow("Allowed AE titles", self.allowed_aes)
        form.addRow("Allowed hosts", self.allowed_hosts)
        form.addRow("TLS certificate", self._with_browse(self.tls_cert))
        form.addRow("TLS key", self._with_browse(self.tls_key))
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(note)
        column.addWidget(self.problem)
        column.addWidget(self.buttons)

    def _with_browse(self, edit: QLineEdit) -> QWidget:
        holder = QWidget(self)
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        browse = QPushButton("Browse…", holder)
        browse.clicked.connect(lambda: self._browse(edit))
        row.addWidget(browse)
        return holder

    def _browse(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a PEM file", edit.text(),
                                              "PEM (*.pem *.crt *.key);;All files (*)")
        if path:
            edit.setText(path)

    def values(self) -> dict[str, Any] | None:
        """The entered values, checked; None with the reason shown."""
        from net.nodes import check_ae_title

        try:
            title = check_ae_title(self.ae_title.text())
            allowed = [check_ae_title(t) for t in split_list(self.allowed_aes.text())]
        except ValueError as exc:
            self.problem.setText(str(exc))
            return None
        cert, key = self.tls_cert.text().strip(), self.tls_key.text().strip()
        if bool(cert) != bool(key):
            self.problem.setText("TLS needs both a certificate and its key.")
            return None
        for path in (cert, key):
            if path and not Path(path).is_file():
                self.problem.setText(f"{path} is not a file.")
                return None
        if self.scp_enabled.isChecked() and not allowed:
            self.problem.setText("Name at least one AE title that may send to Lucida.")
            return None
        self.problem.setText("")
        return {"local_ae_title": title, "local_port": self.port.value(),
                "scp_enabled": self.scp_enabled.isChecked(),
                "scp_bind": self.bind.currentText().strip() or LOOPBACK,
                "scp_allowed_aes": allowed,
                "scp_allowed_hosts": split_list(self.allowed_hosts.text()),
                "scp_tls_cert": cert or None, "scp_tls_key": key or None}

    def apply(self, prefs: Any) -> bool:
        """Write the values into ``prefs`` (validated on assignment); False if invalid."""
        values = self.values()
        if values is None:
            return False
        for name, value in values.items():
            setattr(prefs, name, value)
        return True

    def accept(self) -> None:
        if self.values() is not None:
            super().accept()
