"""The query form and results table of the Network panel.

The form gathers the usual keys (patient name, patient ID, date range, modality, accession)
and the level into a ``net.dimse.QueryKeys``; the results are the ``net`` query's dicts
(DICOM keywords → text), shown one row each. Qt only: the query itself runs in
``app.network_jobs``.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import QRegularExpressionValidator, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QWidget,
)

LEVELS = (("STUDY", "Study"), ("SERIES", "Series"), ("PATIENT", "Patient"))
MODALITIES = ("", "CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "SEG", "SR")
RESULT_COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modality", "Series",
                  "Instances")
UID_ROLE = Qt.ItemDataRole.UserRole + 1
RECORD_ROLE = Qt.ItemDataRole.UserRole + 2
_DATE = re.compile(r"^\d{8}$")

# Which keywords fill each column, first present wins (levels answer with different ones).
_SOURCES: dict[str, tuple[str, ...]] = {
    "Patient": ("PatientName",),
    "Patient ID": ("PatientID",),
    "Date": ("StudyDate", "SeriesDate"),
    "Description": ("StudyDescription", "SeriesDescription"),
    "Modality": ("ModalitiesInStudy", "Modality"),
    "Series": ("NumberOfStudyRelatedSeries", "NumberOfPatientRelatedSeries", "SeriesNumber"),
    "Instances": ("NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances",
                  "NumberOfPatientRelatedInstances"),
}


def field_text(record: dict[str, Any], column: str) -> str:
    for keyword in _SOURCES[column]:
        value = record.get(keyword)
        if value not in (None, ""):
            text = str(value)
            if column == "Patient":
                return text.replace("^", ", ").strip(", ")
            if column == "Date" and _DATE.match(text):
                return f"{text[:4]}-{text[4:6]}-{text[6:]}"
            return text.replace("\\", "/")
    return ""


def instance_count(record: dict[str, Any]) -> int:
    text = field_text(record, "Instances")
    return int(text) if text.isdigit() else 0


class QueryForm(QWidget):
    """Patient name / ID, date range, modality, accession and the level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.patient_name = QLineEdit(self)
        self.patient_name.setObjectName("queryPatientName")
        self.patient_name.setPlaceholderText("e.g. DOE^J*  (wildcards * ?)")
        self.patient_id = QLineEdit(self)
        self.patient_id.setObjectName("queryPatientId")
        date_check = QRegularExpressionValidator(QRegularExpression(r"\d{0,8}"), self)
        self.date_from = QLineEdit(self)
        self.date_from.setObjectName("queryDateFrom")
        self.date_from.setPlaceholderText("from")
        self.date_from.setToolTip("First study date (YYYYMMDD), empty for any")
        self.date_from.setValidator(date_check)
        self.date_to = QLineEdit(self)
        self.date_to.setObjectName("queryDateTo")
        self.date_to.setPlaceholderText("to")
        self.date_to.setToolTip("Last study date (YYYYMMDD), empty for any")
        self.date_to.setValidator(date_check)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("–", self))
        dates.addWidget(self.date_to)
        self.modality = QComboBox(self)
        self.modality.setObjectName("queryModality")
        self.modality.setEditable(True)
        self.modality.addItems(list(MODALITIES))
        self.accession = QLineEdit(self)
        self.accession.setObjectName("queryAccession")
        self.level = QComboBox(self)
        self.level.setObjectName("queryLevel")
        for value, text in LEVELS:
            self.level.addItem(text, value)
        row = QHBoxLayout()
        row.addWidget(self.modality, 1)
        row.addWidget(self.level, 1)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Date (YYYYMMDD)", dates)
        form.addRow("Modality / level", row)
        form.addRow("Accession", self.accession)

    def level_value(self) -> str:
        return str(self.level.currentData())

    def problem(self) -> str | None:
        """Why the form cannot be sent (a date that is not YYYYMMDD), else None."""
        for name, edit in (("from", self.date_from), ("to", self.date_to)):
            text = edit.text().strip()
            if text and not _DATE.match(text):
                return f"The '{name}' date must be YYYYMMDD."
        return None

    def keys(self) -> Any:
        from net.dimse import QueryKeys

        return QueryKeys(patient_name=self.patient_name.text().strip(),
                         patient_id=self.patient_id.text().strip(),
                         date_from=self.date_from.text().strip(),
                         date_to=self.date_to.text().strip(),
                         modality=self.modality.currentText().strip().upper(),
                         accession=self.accession.text().strip())


class ResultsTable(QTableView):
    """One row per match; the study UID rides on each row for Retrieve."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("networkResults")
        self.results = QStandardItemModel(0, len(RESULT_COLUMNS), self)
        self.results.setHorizontalHeaderLabels(list(RESULT_COLUMNS))
        self.setModel(self.results)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)

    identity_visible = True

    def set_identity_visible(self, visible: bool) -> None:
        """Hide patient names and IDs (rows become "Patient 1", ...), as the library does."""
        self.identity_visible = bool(visible)
        rows = [index.row() for index in self.selectionModel().selectedRows()]
        self.set_records(self.records())
        for row in rows:
            self.selectionModel().select(
                self.results.index(row, 0), self.selectionModel().SelectionFlag.Select
                | self.selectionModel().SelectionFlag.Rows)

    def records(self) -> list[dict[str, Any]]:
        return [self.results.item(row, 0).data(RECORD_ROLE)
                for row in range(self.results.rowCount())]

    def _text(self, record: dict[str, Any], column: str, number: int) -> str:
        if not self.identity_visible and column in ("Patient", "Patient ID"):
            return f"Patient {number}" if column == "Patient" else ""
        return field_text(record, column)

    def set_records(self, records: list[dict[str, Any]]) -> None:
        self.results.removeRows(0, self.results.rowCount())
        for number, record in enumerate(records, start=1):
            items = []
            for column in RESULT_COLUMNS:
                item = QStandardItem(self._text(record, column, number))
                item.setToolTip(item.text())
                if column in ("Series", "Instances"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                items.append(item)
            items[0].setData(str(record.get("StudyInstanceUID", "")), UID_ROLE)
            items[0].setData(record, RECORD_ROLE)
            self.results.appendRow(items)
        self.resizeColumnsToContents()

    def selected_records(self) -> list[dict[str, Any]]:
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        return [self.results.item(row, 0).data(RECORD_ROLE) for row in rows]

    def selected_study_uids(self) -> list[str]:
        uids: list[str] = []
        for record in self.selected_records():
            uid = str(record.get("StudyInstanceUID", ""))
            if uid and uid not in uids:
                uids.append(uid)
        return uids
