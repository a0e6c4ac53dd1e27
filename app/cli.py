"""The ``lucida`` command line.

``lucida`` alone starts the GUI (``lucida PATH ...`` imports and opens those files there:
app/launch_paths.py); subcommands work without a display. Each
subcommand lives in ``app/commands/<name>.py`` with a ``register(subparsers)``
function; heavy modules (Qt, VTK, onnxruntime) are imported only inside the
command that needs them, so ``lucida --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from app.bootstrap import prepare_environment
from app.launch_paths import parse_command_line, split_launch_paths

# Order is the order shown in --help.
COMMAND_MODULES = ("library", "models", "infer", "review", "export", "export_deid", "view",
                   "audit", "send", "nodes", "query", "retrieve", "scp")
# Every command name and the module (above) that registers it. A plain `lucida` (the GUI, or
# a desktop's `lucida FILE`) needs none of the modules, so start-up imports them only when
# a word on the command line names a command or asks for help. tests/app/test_cli_lazy.py
# checks this table against what the modules register.
COMMAND_NAMES: dict[str, str] = {
    "import": "library", "list": "library", "info": "library",
    "export-volume": "library", "check": "library", "models": "models", "infer": "infer",
    "review": "review", "export": "export", "export-deid": "export_deid", "view": "view",
    "audit": "audit", "send": "send", "nodes": "nodes", "query": "query",
    "retrieve": "retrieve", "scp": "scp",
}
_HELP = ("-h", "--help")


def build_parser(*, commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``commands=False``: the top-level options only (no
    subcommand module imported), enough for the GUI, ``--version`` and ``--smoke-test``."""
    from app import __version__

    parser = argparse.ArgumentParser(
        prog="lucida",
        description="Lucida: offline medical image viewer with local AI assist. "
        "Research use only, not for diagnostic use.",
        epilog="lucida PATH ... starts the window, imports those files or folders (DICOM, "
        "DICOMDIR, .zip) into the library and opens the first series, as a file association "
        "does. Command names win over paths: open a folder named like a command with "
        "'lucida -- NAME'.",
    )
    parser.add_argument("--version", action="store_true", help="print version, runtime and exit")
    parser.add_argument("--smoke-test", action="store_true",
                        help="check this installation end to end (demo study, default model, "
                        "every view rendered) in a temporary library; exit 0 when it works")
    parser.add_argument("--smoke-out", metavar="DIR", type=Path, default=None,
                        help="where --smoke-test writes smoke.png and smoke.json (default: a "
                        "new temporary folder)")
    # Start-up instrument (app/first_frame.py, bench/startup.py): open the demo study, print
    # "first-frame <seconds since process start>" once its first slice is on screen, exit 0.
    parser.add_argument("--first-frame-exit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-frame-shot", metavar="PNG", type=Path, default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument(
        "--library",
        metavar="PATH",
        default=None,
        help="library folder (default: $LUCIDA_LIBRARY or the user data directory)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.set_defaults(func=None, command=None, version_string=__version__)
    if not commands:
        return parser
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lucida`` entry point: :func:`_main`, quiet when stdout's reader goes away."""
    try:
        try:
            return _main(argv)
        finally:
            # Flush here, not at interpreter exit (also after --help's SystemExit): with a
            # buffered stdout a reader that went away (`lucida --version | head -1`) only
            # shows at the flush.
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def _quiet_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush stays quiet too."""
    if sys.stdout is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _main(argv: Sequence[str] | None = None) -> int:
    # A frozen (PyInstaller) build re-enters here in each spawned inference
    # worker; freeze_support() runs the worker instead of a second app.
    multiprocessing.freeze_support()
    prepare_environment()
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.version:
        from app.version_info import version_report

        print(version_report())
        return 0
    if args.smoke_test:
        from app.smoke import run_smoke_test

        return run_smoke_test(args.smoke_out)
    if args.func is None:
        from app.gui import run_gui

        return run_gui(args)
    try:
        code = int(args.func(args) or 0)
        # Flush here, not at interpreter exit: with a buffered stdout (no
        # PYTHONUNBUFFERED) a reader that went away only shows at the flush.
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `lucida list | head`: the reader went away; that is not an error.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # one place turns errors into messages
        from core.errors import LucidaError

        if isinstance(exc, LucidaError):
            print(f"error: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError) and not os.environ.get("LUCIDA_DEBUG"):
            # The machine's condition (no space, no permission, a read-only disk), not a bug.
            print(f"error: {_describe_os_error(exc)}", file=sys.stderr)
            return 2
        if os.environ.get("LUCIDA_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set LUCIDA_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line. `lucida PATH ...` (file associations): paths come off
    before argparse sees them (app/launch_paths.py). The subcommand modules are imported
    only when a word could be a command or asks for help; otherwise the top-level parser
    gives the same result without them."""
    light = build_parser(commands=False)
    words, paths = split_launch_paths(light, argv, commands=list(COMMAND_NAMES))
    if any(w in COMMAND_NAMES or w in _HELP for w in words):
        return parse_command_line(build_parser(), argv)
    args = light.parse_args(words)
    args.open_paths = paths
    return args


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _describe_os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name)
    return _one_line(f"{what}: {where}" if where else what)


if __name__ == "__main__":
    sys.exit(main())
