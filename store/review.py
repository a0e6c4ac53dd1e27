"""Persistence of review sessions: findings' current state, undo history, sign-offs.

The store knows nothing of ``review``'s classes: it keeps plain records (JSON state and
mask blobs) that ``review.session`` builds and reads. Write methods join the caller's
``library.transaction()`` so that a change, its history entry and its audit row commit
together (one ``with`` in the session).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import StoreError
from store.errors import decode_json, translate

if TYPE_CHECKING:
    from store.library import Library


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"review data is not JSON-serialisable: {exc}") from exc


@dataclass(frozen=True)
class ReviewGrid:
    """The grid and labels of a run under review."""

    run_id: int
    series_uid: str
    shape: tuple[int, int, int]
    affine: list[list[float]]  # 4x4, (k, j, i, 1) -> LPS mm
    labels: list[dict[str, Any]]  # {"value", "name", "color_rgb", "code"}


@dataclass(frozen=True)
class FindingRecord:
    """One finding's current state as stored."""

    key: str
    origin: str
    status: str
    tracking_uid: str
    state: dict[str, Any]
    original: dict[str, Any] | None
    mask: bytes


@dataclass(frozen=True)
class CommandRecord:
    """One entry of the undo / redo history."""

    seq: int
    kind: str
    text: str
    payload: dict[str, Any]
    blob: bytes | None
    undone: bool
    created: str = ""


@dataclass(frozen=True)
class SignoffRecord:
    action: str  # "sign-off" | "reopen"
    reviewer: str
    summary: dict[str, Any]
    created: str


class ReviewStore:
    """What a review session reads and writes, on one open :class:`Library`."""

    def __init__(self, library: Library) -> None:
        self.library = library

    @property
    def _conn(self) -> sqlite3.Connection:
        return self.library._conn

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
            raise
        except sqlite3.Error as exc:
            raise translate(exc, self.library.path, doing, self.library.busy_timeout_s) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The library's write transaction (nested uses join it)."""
        with self._guard("saving the review"), self.library.transaction():
            yield

    # ------------------------------------------------------------------ runs

    def create_run(self, run_id: int, series_uid: str, shape: Sequence[int],
                   affine: Sequence[Sequence[float]], labels: list[dict[str, Any]],
                   findings: Sequence[FindingRecord]) -> None:
        """The review of a new run: its grid, labels and pending findings."""
        grid = {"shape": [int(s) for s in shape],
                "affine": [[float(v) for v in row] for row in affine]}
        with self.transaction():
            self._conn.execute(
                "INSERT INTO review_runs (run_row, series_uid, grid_json, labels_json, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (int(run_id), series_uid, _dumps(grid), _dumps(labels), _now()))
            self.save_findings(run_id, findings)

    def has_run(self, run_id: int) -> bool:
        with self._guard("reading the review"):
            row = self._conn.execute("SELECT 1 FROM review_runs WHERE run_row = ?",
                                     (int(run_id),)).fetchone()
        return row is not None

    def grid(self, run_id: int) -> ReviewGrid:
        with self._guard("reading the review"):
            row = self._conn.execute(
                "SELECT series_uid, CAST(grid_json AS BLOB), CAST(labels_json AS BLOB) "
                "FROM review_runs WHERE run_row = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"model run {run_id} has no review in the library (it was not "
                             "recorded for review; run the model again on the series)")
        grid = decode_json(row[1], table="review_runs", row_id=int(run_id), column="grid_json",
                           expect=dict)
        labels = decode_json(row[2], table="review_runs", row_id=int(run_id),
                             column="labels_json", expect=list)
        try:
            shape = tuple(int(v) for v in grid["shape"])
            affine = [[float(v) for v in r] for r in grid["affine"]]
            if len(shape) != 3 or len(affine) != 4 or any(len(r) != 4 for r in affine):
                raise ValueError("wrong dimensions")
        except (KeyError, TypeError, ValueError) as exc:
            from store.errors import damaged_json

            raise damaged_json("review_runs", int(run_id), "grid_json",
                               f"no valid shape / affine: {exc}") from exc
        return ReviewGrid(int(run_id), str(row[0]), (shape[0], shape[1], shape[2]), affine,
                          [dict(x) for x in labels if isinstance(x, dict)])

    # ------------------------------------------------------------------ findings

    def findings(self, run_id: int) -> list[FindingRecord]:
        """Every finding of the run (a damaged row raises DamagedRecordError naming it)."""
        with self._guard("reading the review findings"):
            rows = self._conn.execute(
                "SELECT id, key, origin, status, tracking_uid, CAST(state_json AS BLOB), "
                "CAST(original_json AS BLOB), mask FROM review_findings WHERE run_row = ? "
                "ORDER BY id", (int(run_id),)).fetchall()
        out = []
        for r in rows:
            state = decode_json(r[5], table="review_findings", row_id=int(r[0]),
                                column="state_json", expect=dict)
            original = None if r[6] is None else decode_json(
                r[6], table="review_findings", row_id=int(r[0]), column="original_json",
                expect=dict)
            out.append(FindingRecord(str(r[1]), str(r[2]), str(r[3]), str(r[4]), state,
                                     original, bytes(r[7])))
        return out

    def findings_status(self, run_id: int) -> list[tuple[str, str]]:
        """(key, status) of each finding, without decoding masks (for listings)."""
        with self._guard("reading the review findings"):
            rows = self._conn.execute(
                "SELECT key, status FROM review_findings WHERE run_row = ? ORDER BY id",
                (int(run_id),)).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def save_findings(self, run_id: int, records: Sequence[FindingRecord]) -> None:
        """Insert or replace findings by key (joins the caller's transaction)."""
        with self.transaction():
            for rec in records:
                self._conn.execute(
                    "INSERT INTO review_findings (run_row, key, origin, status, tracking_uid, "
                    "state_json, original_json, mask, modified) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (run_row, key) DO UPDATE SET origin = excluded.origin, "
                    "status = excluded.status, tracking_uid = excluded.tracking_uid, "
                    "state_json = excluded.state_json, original_json = excluded.original_json, "
                    "mask = excluded.mask, modified = excluded.modified",
                    (int(run_id), rec.key, rec.origin, rec.status, rec.tracking_uid,
                     _dumps(rec.state),
                     None if rec.original is None else _dumps(rec.original),
                     sqlite3.Binary(rec.mask), _now()))

    def delete_findings(self, run_id: int, keys: Sequence[str]) -> None:
        with self.transaction():
            for key in keys:
                self._conn.execute("DELETE FROM review_findings WHERE run_row = ? AND key = ?",
                                   (int(run_id), key))

    # ------------------------------------------------------------------ history

    def commands(self, run_id: int) -> list[CommandRecord]:
        with self._guard("reading the review history"):
            rows = self._conn.execute(
                "SELECT id, seq, kind, text, CAST(payload_json AS BLOB), blob, undone, created "
                "FROM review_commands WHERE run_row = ? ORDER BY seq", (int(run_id),)).fetchall()
        return [CommandRecord(int(r[1]), str(r[2]), str(r[3]),
                              decode_json(r[4], table="review_commands", row_id=int(r[0]),
                                          column="payload_json", expect=dict),
                              None if r[5] is None else bytes(r[5]), bool(r[6]), str(r[7]))
                for r in rows]

    def push_command(self, run_id: int, kind: str, text: str, payload: dict[str, Any],
                     blob: bytes | None) -> int:
        """Append a command; the redo tail (undone commands) is discarded. Returns its seq."""
        with self.transaction():
            self._conn.execute("DELETE FROM review_commands WHERE run_row = ? AND undone = 1",
                               (int(run_id),))
            row = self._conn.execute("SELECT MAX(seq) FROM review_commands WHERE run_row = ?",
                                     (int(run_id),)).fetchone()
            seq = int(row[0] or 0) + 1
            self._conn.execute(
                "INSERT INTO review_commands (run_row, seq, kind, text, payload_json, blob, "
                "undone, created) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                (int(run_id), seq, kind, text, _dumps(payload),
                 None if blob is None else sqlite3.Binary(blob), _now()))
        return seq

    def set_undone(self, run_id: int, seq: int, undone: bool) -> None:
        with self.transaction():
            self._conn.execute(
                "UPDATE review_commands SET undone = ? WHERE run_row = ? AND seq = ?",
                (1 if undone else 0, int(run_id), int(seq)))

    # ------------------------------------------------------------------ sign-off

    def add_signoff(self, run_id: int, action: str, reviewer: str,
                    summary: dict[str, Any]) -> None:
        if action not in ("sign-off", "reopen"):
            raise ValueError(f"unknown sign-off action {action!r}")
        with self.transaction():
            self._conn.execute(
                "INSERT INTO review_signoffs (run_row, action, reviewer, summary_json, created) "
                "VALUES (?, ?, ?, ?, ?)", (int(run_id), action, reviewer, _dumps(summary),
                                           _now()))

    def signoffs(self, run_id: int) -> list[SignoffRecord]:
        with self._guard("reading the sign-offs"):
            rows = self._conn.execute(
                "SELECT id, action, reviewer, CAST(summary_json AS BLOB), created "
                "FROM review_signoffs WHERE run_row = ? ORDER BY id", (int(run_id),)).fetchall()
        return [SignoffRecord(str(r[1]), str(r[2]),
                              decode_json(r[3], table="review_signoffs", row_id=int(r[0]),
                                          column="summary_json", expect=dict), str(r[4]))
                for r in rows]

    def signed_off(self, run_id: int) -> bool:
        with self._guard("reading the sign-offs"):
            row = self._conn.execute(
                "SELECT action FROM review_signoffs WHERE run_row = ? ORDER BY id DESC LIMIT 1",
                (int(run_id),)).fetchone()
        return row is not None and str(row[0]) == "sign-off"
