"""Tables of the review workflow (migration 2, with the audit log).

Filled in by the review persistence (``store.review``); a migration that has
shipped is never edited, so this function only grows until the first release
that carries schema version 2.
"""

from __future__ import annotations

import sqlite3


def create_review_tables(conn: sqlite3.Connection) -> None:
    """Create the review tables (placeholder until the review store lands)."""
    del conn
