"""Audit log subcommands: ``audit verify``, ``audit export``, ``audit list``.

``verify`` walks the hash chain (``store.audit.verify``) and exits 1 naming the
first altered, inserted or deleted row; ``export`` writes every row with its
hashes as CSV or JSON and is itself audited, after the write, with the sha256
of what it wrote. Library errors exit 2 through ``app.cli.main``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands.library import make_console, open_library

if TYPE_CHECKING:
    from store import Library
    from store.audit import AuditRow, AuditVerdict

#: CSV columns, in this order (the hashes included, so the chain can be re-checked).
CSV_COLUMNS = ("id", "created", "actor", "event", "series_uid", "run_id", "payload_json",
               "prev_hash", "row_hash")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "audit", help="check or export the tamper-evident audit log",
        description="The audit log records imports, model runs, review decisions, sign-offs "
        "and exports, each row carrying the hash of the row before it.")
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    v = sub.add_parser(
        "verify", help="check the hash chain; exit 1 naming the first bad row",
        description="Exit 0 and print the row count and head hash when the log is intact; "
        "exit 1 naming the first altered, inserted or deleted row otherwise.")
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser(
        "export", help="write the log (every row with its hashes) as CSV or JSON",
        description="Writes to --out atomically, or to stdout. The export is recorded in "
        "the log afterwards, with the sha256 of what was written.")
    e.add_argument("--format", choices=("csv", "json"), default="json")
    e.add_argument("--out", type=Path, metavar="FILE", help="file to write (default stdout)")
    _add_filters(e)
    e.set_defaults(func=cmd_export)

    li = sub.add_parser("list", help="show the log as a table")
    _add_filters(li)
    li.add_argument("--limit", type=int, default=0, metavar="K",
                    help="only the last K rows (default all)")
    li.set_defaults(func=cmd_list)


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", metavar="SERIES",
                   help="only rows of this series (SeriesInstanceUID, or the id from "
                   "`lucida list`)")
    p.add_argument("--run", type=int, metavar="N", help="only rows of model run N")


def _series_uid(library: Library, wanted: str | None) -> str | None:
    """A UID as stored in the log, else resolved like `lucida info` resolves SERIES
    (a series may be gone from the library while its audit rows remain)."""
    if wanted is None:
        return None
    if library.audit_rows(series_uid=wanted):
        return wanted
    return library.get_series(wanted).series_uid


def _rows(library: Library, args: argparse.Namespace) -> list[AuditRow]:
    return library.audit_rows(run_id=args.run, series_uid=_series_uid(library, args.series))


# ----------------------------------------------------------------------------- verify


def describe(verdict: AuditVerdict) -> str:
    """One line for the verdict (the CLI's output)."""
    if verdict.ok:
        return (f"OK: the audit log is intact: {verdict.rows} rows, head hash "
                f"{verdict.head_hash}")
    where = f" at row {verdict.bad_row}" if verdict.bad_row is not None else ""
    return f"FAILED{where}: {verdict.problem}"


def cmd_verify(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        verdict = library.verify_audit()
    print(describe(verdict))
    return 0 if verdict.ok else 1


# ----------------------------------------------------------------------------- export


def render_csv(rows: list[AuditRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.id, row.created, row.actor, row.event, row.series_uid,
                         "" if row.run_id is None else row.run_id, row.payload_json,
                         row.prev_hash, row.row_hash])
    return buffer.getvalue().encode("utf-8")


def render_json(rows: list[AuditRow], verdict: AuditVerdict,
                filters: dict[str, Any]) -> bytes:
    # payload_json is kept verbatim beside the parsed payload: the hash covers the text.
    document = {
        "format": "lucida-audit-log",
        "version": 1,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "filters": filters,
        "log_rows": verdict.rows,
        "verified": verdict.ok,
        "problem": verdict.problem,
        "head_hash": verdict.head_hash,
        "rows": [row.to_dict() | {"payload_json": row.payload_json} for row in rows],
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def cmd_export(args: argparse.Namespace) -> int:
    from app.actor import os_user
    from core.atomic import write_bytes

    with open_library(args) as library:
        series_uid = _series_uid(library, args.series)
        with library.transaction():  # rows and head hash from one state of the log
            rows = library.audit_rows(run_id=args.run, series_uid=series_uid)
            verdict = library.verify_audit()
        filters = {"series_uid": series_uid, "run_id": args.run}
        data = (render_csv(rows) if args.format == "csv"
                else render_json(rows, verdict, filters))
        if args.out is not None:
            write_bytes(args.out, data)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        # After the write: the log records what left it, not what was meant to.
        library.audit("export", {
            "what": "audit-log", "format": args.format, "rows": len(rows),
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None,
            "filters": filters, "head_hash": verdict.head_hash, "verified": verdict.ok,
            "destination": "file" if args.out is not None else "stdout",
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        }, actor=os_user(), series_uid=series_uid or "", run_id=args.run)
    if args.out is not None:
        print(f"Wrote {len(rows)} audit rows to {args.out} (head hash {verdict.head_hash})")
    if not verdict.ok:
        print(f"warning: the audit log does not verify: {describe(verdict)}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- list


def _summary(payload_json: str, limit: int = 80) -> str:
    text = payload_json if len(payload_json) <= limit else payload_json[:limit - 1] + "…"
    return text.replace("\n", " ")


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table


    console = make_console()
    with open_library(args) as library:
        rows = _rows(library, args)
    if args.limit > 0:
        rows = rows[-args.limit:]
    if not rows:
        console.print("The audit log has no matching rows.")
        return 0
    table = Table()
    for column in ("id", "created (UTC)", "actor", "event", "series", "run", "payload"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row.id), row.created[:19].replace("T", " "), row.actor, row.event,
                      row.series_uid, "" if row.run_id is None else str(row.run_id),
                      _summary(row.payload_json))
    console.print(table)
    return 0
