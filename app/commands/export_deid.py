"""``lucida export-deid SERIES --out DIR [--study] [--allow-burned-in]``: write a
de-identified DICOM copy of a library series, or of every image series of its study
(PS3.15 Basic Profile via dicognito, new UIDs consistent across the copy) into a new folder
under DIR, audited as "export"."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-deid", help="write a de-identified DICOM copy of a series",
        description="De-identifies every file of SERIES (PS3.15 Basic Application Level "
        "Confidentiality Profile through dicognito; UIDs remapped consistently, private "
        "elements removed, pixel data unchanged) into a new folder under DIR. The sources "
        "are only read; DIR may not be in or under their folder. Images flagged "
        "BurnedInAnnotation YES are refused unless --allow-burned-in is given.")
    p.add_argument("series", metavar="SERIES",
                   help="SeriesInstanceUID, or the id from `lucida list`")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--study", action="store_true",
                   help="copy every image series of SERIES' study in one export, so the new "
                   "study, series and frame of reference UIDs agree across them")
    p.add_argument("--allow-burned-in", action="store_true",
                   help="export images flagged with burned-in annotation too (their pixels "
                   "may show names or dates)")
    p.set_defaults(func=cmd_export_deid)


def deid_sources(library: Any, series_id: int, *, whole_study: bool) -> list[Any]:
    """The files of a series, or of every image series of its study. One export maps
    UIDs consistently, so series exported together keep their shared study and frame of
    reference; exported one by one, each copy gets its own new study."""
    from app.importer import series_sources

    if not whole_study:
        return list(series_sources(library, series_id))
    row = library.get_series(series_id)
    out: list[Any] = []
    for s in library.series(row.study_row):
        if s.is_image:
            out.extend(series_sources(library, s.id))
    return out


def audit_payload(result: Any, *, whole_study: bool = False) -> dict[str, Any]:
    """What the audit row says of a de-identified export: counts and method, never a
    name or a path."""
    from dicomio.deidentify import PROFILE

    return {"what": "deidentified-study" if whole_study else "deidentified-series",
            "profile": PROFILE, "tool": "dicognito",
            "files": len(result.files), "skipped": len(result.skipped),
            "burned_in_confirmed": result.burned_in}


def cmd_export_deid(args: argparse.Namespace) -> int:
    import sys

    from app.actor import os_user
    from app.commands.library import open_library
    from core.errors import LucidaError
    from dicomio.deidentify import export_deidentified

    library = open_library(args)
    try:
        series = library.get_series(args.series)
        sources = deid_sources(library, series.id, whole_study=args.study)
        try:
            result = export_deidentified(sources, args.out,
                                         allow_burned_in=args.allow_burned_in)
        except LucidaError as exc:
            print(f"lucida export-deid: {exc}", file=sys.stderr)
            return 2
        library.audit("export", audit_payload(result, whole_study=args.study), actor=os_user(),
                      series_uid=series.series_uid)
    finally:
        library.close()
    print(f"wrote {len(result.files)} de-identified file(s) to {result.out_dir}")
    for source, reason in result.skipped:
        print(f"  skipped {source}: {reason}")
    return 0
