"""The Lucida library: SQLite index of patients, studies, series and instances.

One :class:`Library` per thread (see ``store.library`` for why).
"""

from store.errors import (
    DamagedRecordError,
    LibraryBusyError,
    LibraryDamagedError,
    LibraryFullError,
    LibraryReadOnlyError,
    LibraryTooNewError,
)
from store.library import BUSY_TIMEOUT_S, DB_NAME, Library
from store.records import (
    FileCheckReport,
    ImportReportRow,
    IndexOutcome,
    InstanceRow,
    MeasurementsRead,
    ModelRunRow,
    NewInstance,
    NewStack,
    PatientRow,
    SeriesRow,
    StoredSource,
    StudyRow,
)
from store.review import CommandRecord, FindingRecord, ReviewGrid, ReviewStore, SignoffRecord
from store.schema import SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_NAME",
    "SCHEMA_VERSION",
    "CommandRecord",
    "DamagedRecordError",
    "FileCheckReport",
    "FindingRecord",
    "ImportReportRow",
    "IndexOutcome",
    "InstanceRow",
    "Library",
    "LibraryBusyError",
    "LibraryDamagedError",
    "LibraryFullError",
    "LibraryReadOnlyError",
    "LibraryTooNewError",
    "MeasurementsRead",
    "ModelRunRow",
    "NewInstance",
    "NewStack",
    "PatientRow",
    "ReviewGrid",
    "ReviewStore",
    "SeriesRow",
    "SignoffRecord",
    "StoredSource",
    "StudyRow",
]
