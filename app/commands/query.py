"""``lucida query NODE``: C-FIND (or QIDO-RS) at patient, study or series level.

Prints a table of the matches (or JSON lines with ``--json``); exit 0 with or without
matches, 2 with one line when the node cannot be asked.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from app.commands.library import make_console, open_library
from app.commands.nodes import add_local_options, local_ae

_COLUMNS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientID", "PatientName", "StudyDate", "ModalitiesInStudy", "StudyDescription",
              "AccessionNumber", "NumberOfStudyRelatedInstances", "StudyInstanceUID"),
    "SERIES": ("SeriesNumber", "Modality", "SeriesDescription",
               "NumberOfSeriesRelatedInstances", "SeriesInstanceUID"),
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "query", help="find patients, studies or series on a node (C-FIND / QIDO-RS)",
        description="A name without * or ? matches any name that contains it. --date is "
        "FROM-TO (YYYYMMDD or YYYY-MM-DD; either end may be left open: 2020-, -20201231).")
    p.add_argument("node", metavar="NODE", help="name of a saved network node")
    p.add_argument("--level", choices=("patient", "study", "series"), default="study")
    p.add_argument("--patient", default="", metavar="NAME", help="patient name")
    p.add_argument("--patient-id", default="", metavar="ID")
    p.add_argument("--date", default="", metavar="FROM-TO", help="study date range")
    p.add_argument("--modality", default="", metavar="MOD", help="e.g. CT")
    p.add_argument("--accession", default="", metavar="NUMBER")
    p.add_argument("--study", default="", metavar="UID",
                   help="StudyInstanceUID (needed for --level series on strict PACS)")
    p.add_argument("--json", action="store_true", help="one JSON object per match")
    add_local_options(p)
    p.set_defaults(func=cmd_query)


_DAY = r"(\d{4}-?\d{2}-?\d{2})"
_RANGE = re.compile(rf"^{_DAY}?(?:(-){_DAY}?)?$")


def parse_date_range(text: str) -> tuple[str, str]:
    """``FROM-TO`` (either end may be open) with YYYYMMDD or YYYY-MM-DD dates; a single
    date is that day."""
    from core.errors import LucidaError

    match = _RANGE.match(text.strip())
    if match is None:
        raise LucidaError(f"--date {text!r}: write FROM-TO as YYYYMMDD-YYYYMMDD (or with "
                          "YYYY-MM-DD dates; either end may be left out)")
    start, dash, end = match.groups()
    start, end = (start or "").replace("-", ""), (end or "").replace("-", "")
    return (start, end) if dash else (start, start)


def cmd_query(args: argparse.Namespace) -> int:
    from net.dimse import QueryKeys, find
    from net.nodes import get_node

    date_from, date_to = parse_date_range(args.date)
    keys = QueryKeys(patient_name=args.patient, patient_id=args.patient_id,
                     date_from=date_from, date_to=date_to, modality=args.modality,
                     accession=args.accession, study_uid=args.study)
    level = args.level.upper()
    with open_library(args) as library:
        node = get_node(library, args.node)
    if node.kind == "dicomweb":
        from net.web import web_search

        matches = web_search(node, level, keys, timeout_s=args.timeout)
    else:
        matches = find(node, local_ae(args), level, keys, timeout_s=args.timeout)
    if args.json:
        for match in matches:
            print(json.dumps(match, sort_keys=True))
        return 0
    if not matches:
        print(f"no {args.level} on {node.name} matches")
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    columns = _COLUMNS[level]
    for column in columns:
        table.add_column(column, overflow="fold")
    for match in matches:
        table.add_row(*(match.get(c, "") for c in columns))
    make_console().print(table)
    print(f"{len(matches)} match(es)")
    return 0
