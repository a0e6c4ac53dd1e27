"""``lucida retrieve NODE STUDY_UID...``: bring studies into the library.

C-GET by default, C-MOVE with ``--move`` (the node must know Lucida's AE title at the
port in the settings, or ``--port``), WADO-RS for a DICOMweb node. Instances the
library already has are skipped, so running it again after an interruption completes
the study without duplicates. Exit 0 when everything arrived, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.commands.library import open_library
from app.commands.nodes import add_local_options, local_ae


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "retrieve", help="retrieve studies from a node into the library (C-GET / C-MOVE)",
        description="Each instance is written under <library>/network and indexed as it "
        "arrives. Instances the library has already are skipped (resume without "
        "duplicates). Exit 0 when every instance arrived, 1 otherwise.")
    p.add_argument("node", metavar="NODE", help="name of a saved network node")
    p.add_argument("studies", nargs="+", metavar="STUDY_UID")
    p.add_argument("--move", action="store_true",
                   help="C-MOVE to Lucida's own storage SCP instead of C-GET")
    p.add_argument("--port", type=int, default=None, metavar="PORT",
                   help="with --move: the port Lucida receives on (default: the settings)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_local_options(p)
    p.set_defaults(func=cmd_retrieve)


def cmd_retrieve(args: argparse.Namespace) -> int:
    from app.importer import ArrivalIndexer
    from net.dimse import retrieve
    from net.filing import Filer
    from net.nodes import get_node

    with open_library(args) as library:
        node = get_node(library, args.node)
        folder = library.folder
    indexer = ArrivalIndexer()
    filer = Filer.for_library(folder, indexer.index, finish=indexer.finish)

    def progress(fraction: float, message: str = "") -> None:
        if not args.quiet:
            print(f"\r{message:<60}", end="", file=sys.stderr, flush=True)

    try:
        if node.kind == "dicomweb":
            from net.web import web_retrieve

            report = web_retrieve(node, args.studies, filer, progress=progress,
                                  timeout_s=args.timeout)
        else:
            report = retrieve(node, local_ae(args, args.port), args.studies, filer,
                              method="move" if args.move else "get", progress=progress,
                              timeout_s=args.timeout)
    finally:
        filer.close()
        if not args.quiet:
            print(file=sys.stderr)
    for outcome in report.failed:
        print(f"not stored: {outcome.sop_instance_uid or '?'} (status 0x{outcome.status:04X})"
              f" {outcome.message}")
    skipped = sum(1 for o in report.instances if o.message == "already in the library")
    print(report.summary() + (f"; {skipped} already in the library" if skipped else ""))
    return 0 if report.ok else 1
