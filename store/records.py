"""Plain records going into and coming out of the library.

The store knows nothing of pydicom or dicomio: the importer translates scan
results into :class:`NewStack` / :class:`NewInstance`, and readers get the
``*Row`` records back. Identifying fields (patient name, birth date) are
excluded from ``repr`` so that a record printed into a log stays anonymous.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO


@dataclass(frozen=True, order=True)
class StoredSource:
    """Where one indexed object's bytes are: a file, or a member of a zip archive.

    Same fields and ``open()`` as ``dicomio.source.DicomSource`` (the store may
    not import dicomio); ``app.importer.to_dicom_source`` converts.
    """

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def __fspath__(self) -> str:
        if self.member is not None:
            raise TypeError(f"{self} is a zip member, not a file path: use .path and .member")
        return str(self.path)

    def open(self) -> BinaryIO:
        """Readable binary stream; source files are only ever opened for reading."""
        if self.member is None:
            return open(self.path, "rb")
        with zipfile.ZipFile(self.path) as archive:
            return BytesIO(archive.read(self.member))


@dataclass(frozen=True)
class NewInstance:
    """One object to index (from a header scan)."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    member: str | None
    file_size: int
    mtime: float
    instance_number: int | None = None
    number_of_frames: int = 1
    position: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class NewStack:
    """One stack of a series to index, with its patient and study."""

    patient_id: str
    patient_name: str = field(repr=False)
    birth_date: str = field(repr=False)
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    series_uid: str
    stack_key: str
    object_kind: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    frame_of_reference_uid: str
    rows: int | None
    columns: int | None
    is_localizer: bool
    instances: tuple[NewInstance, ...]


@dataclass
class IndexOutcome:
    """What indexing one stack did."""

    series_id: int
    created: bool
    new: int = 0
    existing: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old, new) locations
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (kept, ignored copy)
    modified: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PatientRow:
    id: int
    patient_id: str
    patient_name: str = field(repr=False)
    birth_date: str = field(repr=False)


@dataclass(frozen=True)
class StudyRow:
    id: int
    patient_row: int
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str

    @property
    def description(self) -> str:
        return self.study_description


@dataclass(frozen=True)
class SeriesRow:
    """One stack of a series, with its study and patient for display."""

    id: int
    study_row: int
    series_uid: str
    stack_index: int
    stack_key: str
    object_kind: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    frame_of_reference_uid: str
    rows: int | None
    columns: int | None
    is_localizer: bool
    num_instances: int
    num_frames: int
    geometry: dict[str, Any] | None
    warnings: list[str]
    study_uid: str
    study_date: str
    study_description: str
    patient_row: int
    patient_id: str
    patient_name: str = field(repr=False)
    #: What could not be read from this row (a damaged cached column): one sentence each.
    #: The damaged cache reads as absent (geometry None), so the next import rebuilds it.
    problems: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return self.series_description

    @property
    def is_image(self) -> bool:
        return self.object_kind in ("image", "rtimage")


@dataclass(frozen=True)
class InstanceRow:
    id: int
    series_row: int
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    member: str | None
    file_size: int
    mtime: float
    instance_number: int | None
    number_of_frames: int
    position: tuple[float, float, float] | None

    @property
    def source(self) -> StoredSource:
        return StoredSource(self.path, self.member)


@dataclass
class FileCheckReport:
    """Result of :meth:`store.Library.check_files`."""

    checked: int = 0
    missing: list[InstanceRow] = field(default_factory=list)
    modified: list[InstanceRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.modified


@dataclass(frozen=True)
class ModelRunRow:
    id: int
    series_row: int
    model_id: str
    model_version: str
    created: str
    status: str
    provenance: dict[str, Any]
    output_folder: Path | None
    #: Set when provenance_json does not decode (provenance is then empty): what is wrong.
    problem: str = ""


@dataclass(frozen=True)
class ImportReportRow:
    id: int
    created: str
    summary: str
    report: dict[str, Any]
    #: Set when report_json does not decode (report is then empty): what is wrong.
    problem: str = ""


@dataclass
class MeasurementsRead:
    """The saved measurements of a series as far as they could be read.

    ``damaged`` names each row that could not be decoded. A caller that gets
    any must not save this series' measurements: a save replaces every row,
    so it would delete the damaged ones (see :meth:`store.Library.read_measurements`).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
