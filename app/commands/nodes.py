"""``lucida nodes add|list|remove|echo``: the remote DICOM nodes kept in the library.

A node is DIMSE (``--ae``, ``--host``, ``--port``, optionally ``--tls``) or DICOMweb
(``--url``). ``echo`` sends a C-ECHO and prints the round trip; a node that cannot be
reached exits 2 with one line saying why (through ``app.cli.main``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from app.commands.library import make_console, open_library

if TYPE_CHECKING:
    from net.nodes import LocalAE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "nodes", help="remote DICOM nodes (PACS): add, list, remove, echo",
        description="The PACS and other DICOM nodes Lucida queries, retrieves from and "
        "sends to, kept in the library.")
    sub = p.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)

    a = sub.add_parser("add", help="add (or with --replace, change) a node",
                       description="A DIMSE node needs --ae, --host and --port; a DICOMweb "
                       "node needs --url. Not both.")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--ae", default="", metavar="AE", help="the node's AE title")
    a.add_argument("--host", default="", metavar="HOST")
    a.add_argument("--port", type=int, default=0, metavar="PORT")
    a.add_argument("--tls", action="store_true", help="use TLS for DIMSE")
    a.add_argument("--url", default="", metavar="URL", help="DICOMweb base URL")
    a.add_argument("--replace", action="store_true", help="replace a node of that name")
    a.set_defaults(func=cmd_add)

    li = sub.add_parser("list", help="show the saved nodes")
    li.set_defaults(func=cmd_list)

    r = sub.add_parser("remove", help="forget a node (exit 1 when there is none)")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_remove)

    e = sub.add_parser("echo", help="C-ECHO a node and print the round trip")
    e.add_argument("name", metavar="NAME")
    add_local_options(e)
    e.set_defaults(func=cmd_echo)


def add_local_options(p: argparse.ArgumentParser) -> None:
    """--timeout and --ae-title, shared by the commands that call a node."""
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for the node at each step (default 30)")
    p.add_argument("--ae-title", default=None, metavar="AE",
                   help="Lucida's calling AE title (default: the one in the settings)")


def local_ae(args: argparse.Namespace, port: int | None = None) -> LocalAE:
    """Lucida's AE from the settings, with --ae-title (and ``port``) over them."""
    from app.settings import PREFERENCES_FILE, config_dir, load_preferences
    from net.nodes import LocalAE

    prefs = load_preferences(config_dir(args.library) / PREFERENCES_FILE)
    return LocalAE(ae_title=getattr(args, "ae_title", None) or prefs.local_ae_title,
                   port=prefs.local_port if port is None else port, bind=prefs.scp_bind)


def cmd_add(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from core.errors import LucidaError
    from net.nodes import Node, add_node

    try:
        node = Node(name=args.name, ae_title=args.ae, host=args.host, port=args.port,
                    tls=args.tls, dicomweb_url=args.url)
    except ValidationError as exc:
        raise LucidaError(f"node {args.name!r} is not valid: "
                          f"{exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    with open_library(args) as library:
        add_node(library, node, replace=args.replace)
    print(f"saved node {node.name}: {node.describe()}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from net.nodes import list_nodes

    with open_library(args) as library:
        nodes = list_nodes(library)
    if not nodes:
        print("no network nodes yet (add one with `lucida nodes add`)")
        return 0
    table = Table(box=None, header_style="bold")
    for column in ("name", "kind", "address"):
        table.add_column(column)
    for node in nodes:
        table.add_row(node.name, node.kind, node.describe())
    make_console().print(table)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from net.nodes import remove_node

    with open_library(args) as library:
        removed = remove_node(library, args.name)
    print(f"removed node {args.name}" if removed else f"no node named {args.name!r}")
    return 0 if removed else 1


def cmd_echo(args: argparse.Namespace) -> int:
    from net.dimse import echo
    from net.nodes import get_node

    with open_library(args) as library:
        node = get_node(library, args.name)
    if node.kind == "dicomweb":  # no C-ECHO over HTTP: the smallest QIDO-RS search
        import time

        from net.dimse import QueryKeys
        from net.web import web_search

        started = time.perf_counter()
        web_search(node, "STUDY", QueryKeys(), timeout_s=args.timeout, max_results=1)
        seconds = time.perf_counter() - started
        print(f"{node.name}: QIDO-RS answered in {seconds * 1000:.0f} ms ({node.describe()})")
        return 0
    seconds = echo(node, local_ae(args), timeout_s=args.timeout)
    print(f"{node.name}: C-ECHO answered in {seconds * 1000:.0f} ms ({node.describe()})")
    return 0
