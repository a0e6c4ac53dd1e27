"""The library's SQLite schema as an ordered list of migrations.

``PRAGMA user_version`` records how many migrations a database has had.
Migration *n* (1-based) turns a version *n-1* database into version *n*; each
runs in one transaction together with the version bump, so a crash leaves the
database at the old version, never half-migrated. Append new migrations to
:data:`MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def _v1_initial(conn: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE patients (
            id INTEGER PRIMARY KEY,
            patient_key TEXT NOT NULL UNIQUE,
            patient_id TEXT NOT NULL DEFAULT '',
            patient_name TEXT NOT NULL DEFAULT '',
            birth_date TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE studies (
            id INTEGER PRIMARY KEY,
            patient_row INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            study_uid TEXT NOT NULL UNIQUE,
            study_date TEXT NOT NULL DEFAULT '',
            study_time TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            accession_number TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX studies_patient ON studies(patient_row)",
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            study_row INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
            series_uid TEXT NOT NULL,
            stack_index INTEGER NOT NULL,
            stack_key TEXT NOT NULL,
            object_kind TEXT NOT NULL,
            modality TEXT NOT NULL DEFAULT '',
            series_number INTEGER,
            description TEXT NOT NULL DEFAULT '',
            body_part TEXT NOT NULL DEFAULT '',
            frame_of_reference_uid TEXT NOT NULL DEFAULT '',
            rows INTEGER,
            columns INTEGER,
            is_localizer INTEGER NOT NULL DEFAULT 0,
            num_instances INTEGER NOT NULL DEFAULT 0,
            num_frames INTEGER NOT NULL DEFAULT 0,
            geometry_json TEXT,
            warnings_json TEXT,
            created TEXT NOT NULL,
            UNIQUE (series_uid, stack_key),
            UNIQUE (series_uid, stack_index)
        )""",
        "CREATE INDEX series_study ON series(study_row)",
        """CREATE TABLE instances (
            id INTEGER PRIMARY KEY,
            series_row INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
            sop_instance_uid TEXT NOT NULL UNIQUE,
            sop_class_uid TEXT NOT NULL,
            transfer_syntax_uid TEXT NOT NULL DEFAULT '',
            path TEXT NOT NULL,
            member TEXT,
            file_size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            instance_number INTEGER,
            number_of_frames INTEGER NOT NULL DEFAULT 1,
            position_json TEXT
        )""",
        "CREATE INDEX instances_series ON instances(series_row)",
        "CREATE INDEX instances_path ON instances(path)",
        """CREATE TABLE import_reports (
            id INTEGER PRIMARY KEY,
            created TEXT NOT NULL,
            summary TEXT NOT NULL,
            report_json TEXT NOT NULL
        )""",
        """CREATE TABLE measurements (
            id INTEGER PRIMARY KEY,
            series_row INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL DEFAULT '',
            payload_json TEXT NOT NULL,
            created TEXT NOT NULL,
            modified TEXT NOT NULL
        )""",
        "CREATE INDEX measurements_series ON measurements(series_row)",
        """CREATE TABLE model_runs (
            id INTEGER PRIMARY KEY,
            series_row INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            model_version TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'created',
            provenance_json TEXT NOT NULL DEFAULT '{}',
            output_folder TEXT
        )""",
        "CREATE INDEX model_runs_series ON model_runs(series_row)",
    ]
    for statement in statements:
        conn.execute(statement)


def _v2_review_and_audit(conn: sqlite3.Connection) -> None:
    """The hash-chained audit log (``store.audit``) and the review tables (``store.review``)."""
    from store.audit import create_audit_tables
    from store.review_schema import create_review_tables

    create_audit_tables(conn)
    create_review_tables(conn)


def _v3_network_nodes(conn: sqlite3.Connection) -> None:
    """Remote DICOM nodes (``net.nodes``): one JSON config per name, kept with the library."""
    conn.execute("""CREATE TABLE network_nodes (
        name TEXT PRIMARY KEY,
        config_json TEXT NOT NULL,
        created TEXT NOT NULL
    )""")


#: Ordered migrations; the schema version is ``len(MIGRATIONS)``.
MIGRATIONS: list[Migration] = [_v1_initial, _v2_review_and_audit, _v3_network_nodes]

SCHEMA_VERSION = len(MIGRATIONS)
