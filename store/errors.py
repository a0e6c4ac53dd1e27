"""What went wrong with the library, in words a user can act on.

``sqlite3`` reports a locked, damaged, read-only or full database as
``OperationalError`` / ``DatabaseError`` with terse texts ("database is
locked", "file is not a database"). :func:`translate` turns each into a
:class:`core.errors.StoreError` subclass whose one-line message says what
happened and what to do; the CLI prints it, the GUI shows it in a dialog.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from core.errors import StoreError

# SQLite primary result codes (extended codes carry them in the low byte).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = (
    5, 6, 8, 10, 11, 13, 14, 26)


class LibraryBusyError(StoreError):
    """Another process holds the library's write lock longer than the busy timeout."""


class LibraryDamagedError(StoreError):
    """library.sqlite is not a database, truncated or malformed."""


class LibraryReadOnlyError(StoreError):
    """The library folder or database cannot be written."""


class LibraryFullError(StoreError):
    """The disk (or quota) holding the library is full."""


class LibraryTooNewError(StoreError):
    """The library was written by a newer Lucida (a higher schema version)."""


class DamagedRecordError(StoreError):
    """One row's JSON column does not decode; the rest of the library is fine."""

    # Defaults keep the exception picklable (unpickling passes only the message).
    def __init__(self, message: str, *, table: str = "", row_id: int = 0,
                 column: str = "") -> None:
        super().__init__(message)
        self.table = table
        self.row_id = row_id
        self.column = column


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _kind(exc: sqlite3.Error) -> str:
    code = _primary_code(exc)
    text = str(exc).lower()
    if code in (_BUSY, _LOCKED) or "locked" in text:
        return "busy"
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return "damaged"
    if code == _FULL or "disk is full" in text:
        return "full"
    if code == _READONLY or "readonly" in text or "read-only" in text:
        return "readonly"
    if code == _CANTOPEN or "unable to open" in text:
        return "cantopen"
    if code == _IOERR or "i/o error" in text:
        return "io"
    return "other"


def folder_is_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def read_only_error(folder: Path, detail: str) -> LibraryReadOnlyError:
    return LibraryReadOnlyError(
        f"the library folder {folder} is read-only ({detail}); Lucida must write there: make "
        "it writable, or choose another library folder with --library or LUCIDA_LIBRARY")


def translate(exc: sqlite3.Error, db_path: Path, doing: str, busy_timeout_s: float) -> StoreError:
    """The StoreError to raise (``from exc``) for a sqlite3 error met while ``doing``."""
    folder = db_path.parent
    kind = _kind(exc)
    if kind == "busy":
        return LibraryBusyError(
            f"the library is in use by another Lucida ({db_path} stayed locked for "
            f"{busy_timeout_s:g} s while {doing}); close the other Lucida or wait until it "
            "has finished, then try again")
    if kind == "damaged":
        return LibraryDamagedError(
            f"{db_path.name} is damaged: {exc} ({db_path}, while {doing}); restore it from a "
            "backup, or move it aside — Lucida will then create a new, empty library. "
            "Lucida never deletes it")
    if kind == "full":
        return LibraryFullError(
            f"the disk holding the library {folder} is full ({exc}, while {doing}); free some "
            "space and try again — the library is as it was before this step")
    if kind in ("readonly", "cantopen") and not folder_is_writable(folder):
        return read_only_error(folder, str(exc))
    if kind == "readonly":
        return LibraryReadOnlyError(
            f"the library database {db_path} is read-only ({exc}, while {doing}); make the "
            "file writable, or choose another library folder with --library")
    if kind == "cantopen":
        return StoreError(
            f"cannot open the library database {db_path} ({exc}, while {doing}); check that "
            "the folder still exists and that Lucida may read and write it")
    if kind == "io":
        return StoreError(
            f"the library {db_path} could not be read or written (disk I/O error: {exc}, while "
            f"{doing}); check that the disk is attached and not full, then try again")
    return StoreError(f"library error while {doing}: {exc} ({db_path})")


def damaged_json(table: str, row_id: int, column: str, problem: str) -> DamagedRecordError:
    return DamagedRecordError(
        f"the library's {table} row {row_id} has a damaged {column} ({problem}); that entry "
        "cannot be used (restore library.sqlite from a backup to get it back), the rest of "
        "the library is fine", table=table, row_id=row_id, column=column)


_JSON_KINDS: dict[type, str] = {dict: "an object", list: "a list"}


def decode_json(text: str | bytes | None, *, table: str, row_id: int, column: str,
                expect: type | None = None) -> Any:
    """``json.loads`` of one column, or DamagedRecordError naming the table and row;
    with ``expect`` (dict or list) a value of another JSON type is damaged too."""
    if text is None:
        raise damaged_json(table, row_id, column, "it is empty")
    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        value = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise damaged_json(table, row_id, column, f"not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise damaged_json(table, row_id, column,
                           f"not valid JSON: {exc.msg} at character {exc.pos}") from exc
    except ValueError as exc:  # e.g. numbers too long to convert
        raise damaged_json(table, row_id, column, f"not valid JSON: {exc}") from exc
    if expect is not None and not isinstance(value, expect):
        raise damaged_json(table, row_id, column, f"a JSON {type(value).__name__}, not "
                           f"{_JSON_KINDS.get(expect, expect.__name__)}")
    return value
