"""Tables of the review workflow (migration 2, with the audit log).

A migration that has shipped is never edited, so this function only grows until the
first release that carries schema version 2.

- ``review_runs``: the grid (shape, affine) and labels of a model run under review, so a
  review opens without the run's files.
- ``review_findings``: the CURRENT state of each finding (status, decision, measures as
  JSON), its mask as a compact blob, the model's original finding, the tracking UID.
- ``review_commands``: the undo / redo history (``undone`` = 1 for the redo tail).
- ``review_signoffs``: sign-off and reopen events; the last one says whether the run is
  signed off.
"""

from __future__ import annotations

import sqlite3


def create_review_tables(conn: sqlite3.Connection) -> None:
    """Create the review tables (joins the migration's transaction)."""
    statements = [
        """CREATE TABLE review_runs (
            run_row INTEGER PRIMARY KEY REFERENCES model_runs(id) ON DELETE CASCADE,
            series_uid TEXT NOT NULL DEFAULT '',
            grid_json TEXT NOT NULL,
            labels_json TEXT NOT NULL DEFAULT '[]',
            created TEXT NOT NULL
        )""",
        """CREATE TABLE review_findings (
            id INTEGER PRIMARY KEY,
            run_row INTEGER NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            origin TEXT NOT NULL,
            status TEXT NOT NULL,
            tracking_uid TEXT NOT NULL,
            state_json TEXT NOT NULL,
            original_json TEXT,
            mask BLOB NOT NULL,
            modified TEXT NOT NULL,
            UNIQUE (run_row, key)
        )""",
        "CREATE INDEX review_findings_run ON review_findings(run_row)",
        """CREATE TABLE review_commands (
            id INTEGER PRIMARY KEY,
            run_row INTEGER NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            payload_json TEXT NOT NULL,
            blob BLOB,
            undone INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL,
            UNIQUE (run_row, seq)
        )""",
        """CREATE TABLE review_signoffs (
            id INTEGER PRIMARY KEY,
            run_row INTEGER NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
            action TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            summary_json TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL
        )""",
        "CREATE INDEX review_signoffs_run ON review_signoffs(run_row)",
    ]
    for statement in statements:
        conn.execute(statement)
