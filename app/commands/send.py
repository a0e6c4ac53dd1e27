"""``lucida send NODE [REF...] [--signoff RUN]``: C-STORE (or STOW-RS) to a saved node.

A REF is a library series (the id from ``lucida list`` or its SeriesInstanceUID), or a
DICOM file or folder; ``--signoff RUN`` adds the SEG, SR and KO that the sign-off export
of model run RUN wrote (checked against the hashes in the audit log). Every instance is
reported; exit 0 when all were stored, 1 when any was not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from net.nodes import LocalAE
    from net.send import Source
    from store import Library


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "send", help="send series or signed-off SEG/SR/KO to a PACS node (C-STORE or STOW-RS)",
        description="Sends every instance of each REF to NODE (see `lucida nodes list`): "
        "C-STORE for a DIMSE node, STOW-RS for a DICOMweb node. A REF is a library series "
        "(id from `lucida list`, or its SeriesInstanceUID) or a DICOM file or folder. "
        "--signoff RUN adds the SEG, SR and KO exported at the sign-off of model run RUN. "
        "Each instance that is not stored is listed with the node's status code. Exit 0 "
        "when everything was stored, 1 otherwise. Source files are only read.")
    p.add_argument("node", metavar="NODE", help="name of a saved network node")
    p.add_argument("refs", nargs="*", metavar="REF",
                   help="library series id or UID, or a DICOM file or folder")
    p.add_argument("--signoff", type=int, default=None, metavar="RUN",
                   help="also send the SEG/SR/KO of model run RUN's sign-off export")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for the node at each step (default 30)")
    p.add_argument("--ae-title", default=None, metavar="AE",
                   help="Lucida's calling AE title (default: the one in the settings)")
    p.set_defaults(func=cmd_send)


def _local_ae(args: argparse.Namespace) -> LocalAE:
    from app.settings import PREFERENCES_FILE, config_dir, load_preferences
    from net.nodes import LocalAE

    if args.ae_title:
        return LocalAE(ae_title=args.ae_title)
    prefs = load_preferences(config_dir(args.library) / PREFERENCES_FILE)
    return LocalAE(ae_title=prefs.local_ae_title)


def _files_under(path: Path) -> tuple[list[Path], int]:
    """A file as given; a folder's DICOM files (Part 10 preamble), and how many were not."""
    from pydicom.misc import is_dicom

    if path.is_file():
        return [path], 0
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    dicom = [p for p in files if p.name != "DICOMDIR" and is_dicom(p)]
    return dicom, len(files) - len(dicom)


def resolve_refs(library: Library, refs: list[str]) -> list[Source]:
    """Files for each REF: an existing file or folder, else a library series."""
    from core.errors import LucidaError
    from net.send import series_paths

    out: list[Source] = []
    for ref in refs:
        path = Path(ref)
        if path.exists():
            files, skipped = _files_under(path)
            if skipped:
                print(f"{path}: skipped {skipped} file(s) that are not DICOM instances",
                      file=sys.stderr)
            out.extend(files)
            continue
        try:
            series = library.get_series(ref)
        except LucidaError as exc:
            raise LucidaError(f"{ref!r} is neither a file or folder nor a library series "
                              f"({exc})") from exc
        out.extend(series_paths(library, series.id))
    return out


def cmd_send(args: argparse.Namespace) -> int:
    from app.commands.library import _progress_printer, open_library
    from core.errors import LucidaError
    from net.nodes import get_node
    from net.send import send, signoff_paths

    if not args.refs and args.signoff is None:
        raise LucidaError("nothing to send: give a series, a file or folder, or --signoff RUN")
    library = open_library(args)
    try:
        node = get_node(library, args.node)
        sources = resolve_refs(library, list(args.refs))
        if args.signoff is not None:
            sources.extend(signoff_paths(library, args.signoff))
    finally:
        library.close()
    if not sources:
        raise LucidaError("nothing to send: the references hold no files")
    report = send(node, _local_ae(args), sources, _progress_printer(sys.stderr.isatty()),
                  timeout_s=args.timeout)
    for outcome in report.failed:
        print(f"  not stored: {outcome.message}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1
