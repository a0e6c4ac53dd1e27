"""``lucida scp``: run the storage SCP in the foreground until Ctrl-C.

Listens on --bind (loopback by default) and --port, accepts only the calling AE
titles given with --allow (and hosts with --allow-host), files every instance into
the library; one line per received instance.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

from app.commands.library import open_library


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scp", help="receive studies: run the storage SCP until Ctrl-C",
        description="Only callers whose AE title is given with --allow may store; "
        "everything received goes through the same checks as an import and into the "
        "library.")
    p.add_argument("--port", type=int, default=None, metavar="PORT",
                   help="port to listen on (default: the settings; 0 picks a free one)")
    p.add_argument("--bind", default=None, metavar="ADDRESS",
                   help="interface to listen on (default: the settings, loopback)")
    p.add_argument("--allow", action="append", default=[], metavar="AE",
                   help="a calling AE title allowed to store (repeat for more)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="only accept these peer addresses (repeat for more)")
    p.add_argument("--ae-title", default=None, metavar="AE",
                   help="Lucida's AE title (default: the settings)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="PEM")
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM")
    p.add_argument("--max-instance-mb", type=float, default=None, metavar="MB")
    p.add_argument("--max-association-mb", type=float, default=None, metavar="MB")
    p.set_defaults(func=cmd_scp)


def cmd_scp(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from app.importer import ArrivalIndexer
    from app.settings import PREFERENCES_FILE, config_dir, load_preferences
    from net.filing import Filer
    from net.scp import ScpConfig, StorageSCP
    from net.transfer import InstanceOutcome

    prefs = load_preferences(config_dir(args.library) / PREFERENCES_FILE)
    with open_library(args) as library:
        folder = library.folder
    config = ScpConfig(
        ae_title=args.ae_title or prefs.local_ae_title,
        port=prefs.local_port if args.port is None else args.port,
        bind=args.bind or prefs.scp_bind,
        allowed_aes=args.allow or list(prefs.scp_allowed_aes),
        allowed_hosts=args.allow_host or list(prefs.scp_allowed_hosts),
        tls_cert=args.tls_cert or (Path(prefs.scp_tls_cert) if prefs.scp_tls_cert else None),
        tls_key=args.tls_key or (Path(prefs.scp_tls_key) if prefs.scp_tls_key else None),
        max_instance_mb=args.max_instance_mb or prefs.scp_max_instance_mb,
        max_association_mb=args.max_association_mb or prefs.scp_max_association_mb)

    def show(outcome: InstanceOutcome) -> None:
        state = "stored" if outcome.ok else f"refused (0x{outcome.status:04X})"
        print(f"{state} {outcome.sop_instance_uid or '?'} {outcome.message}".rstrip(),
              flush=True)

    indexer = ArrivalIndexer()
    filer = Filer.for_library(folder, indexer.index, finish=indexer.finish,
                              max_instance_mb=config.max_instance_mb)
    scp = StorageSCP(config, filer, on_received=show)
    scp.start()
    print(f"receiving as {config.ae_title} on {config.bind}:{scp.port} from "
          f"{', '.join(config.allowed_aes)}; Ctrl-C stops", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        scp.stop()
        filer.close()
        print("storage SCP stopped", flush=True)
    return 0
