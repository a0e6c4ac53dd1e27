"""The Lucida library: SQLite index of patients, studies, series and instances.

One :class:`Library` per thread (see ``store.library`` for why).
"""

from store.library import DB_NAME, Library
from store.records import (
    FileCheckReport,
    ImportReportRow,
    IndexOutcome,
    InstanceRow,
    ModelRunRow,
    NewInstance,
    NewStack,
    PatientRow,
    SeriesRow,
    StoredSource,
    StudyRow,
)
from store.schema import SCHEMA_VERSION

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "FileCheckReport",
    "ImportReportRow",
    "IndexOutcome",
    "InstanceRow",
    "Library",
    "ModelRunRow",
    "NewInstance",
    "NewStack",
    "PatientRow",
    "SeriesRow",
    "StoredSource",
    "StudyRow",
]
