"""``lucida export SERIES --run RUN --out DIR [--reviewer NAME]``: sign off a reviewed
model run and write its DICOM SEG, SR, KO and HTML report (audited as "export")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="sign off a reviewed model run and export DICOM SEG + SR + KO + report",
        description="Signs off the review of model run RUN on SERIES (refused while findings "
        "are pending) and writes a DICOM SEG, a DICOM SR (TID 1500 measurement report), a Key "
        "Object Selection and an HTML report of the kept findings into DIR. Research use only.")
    p.add_argument("series", metavar="SERIES",
                   help="SeriesInstanceUID, or the id from `lucida list`")
    p.add_argument("--run", type=int, required=True, metavar="RUN", help="model run id")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--reviewer", default=None, metavar="NAME",
                   help="reviewer name (default: the operating-system user)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from app.commands.library import open_library
    from app.signoff import export_signoff

    library = open_library(args)
    try:
        series = library.get_series(args.series)
        result = export_signoff(library, series.id, args.run, args.out, reviewer=args.reviewer)
    finally:
        library.close()
    print(f"signed off and exported {result.kept} kept finding(s) "
          f"({result.rejected} rejected, not exported):")
    for path in result.paths:
        print(f"  {path}  sha256 {result.files[path.name]}")
    print(f"audit head before export: {result.audit_head_hash}")
    return 0
