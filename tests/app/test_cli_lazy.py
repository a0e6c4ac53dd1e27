"""`lucida` imports its subcommand modules only when the command line names a command or
asks for help (app/cli.py): the GUI's start-up does not pay for them, and the answer is
the same as with the whole parser."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import COMMAND_MODULES, COMMAND_NAMES, build_parser, parse_arguments
from app.launch_paths import command_names, parse_command_line


def test_the_name_table_is_what_the_modules_register() -> None:
    registered: dict[str, str] = {}
    for module_name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"app.commands.{module_name}").register(sub)
        registered.update({name: module_name for name in sub.choices})
    assert registered == COMMAND_NAMES
    assert sorted(command_names(build_parser())) == sorted(COMMAND_NAMES)


@pytest.mark.parametrize("argv", [
    [], ["--version"], ["-v", "--library", "LIB"], ["--smoke-test", "--smoke-out", "OUT"],
    ["--first-frame-exit"], ["FILE"], ["--library", "LIB", "FILE", "DIR"], ["--", "DIR"],
])
def test_without_a_command_the_light_parser_answers_as_the_whole_one(
        tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "FILE").write_bytes(b"")
    (tmp_path / "DIR").mkdir()
    argv = [str(tmp_path / w) if w in ("FILE", "DIR") else w for w in argv]
    light = vars(parse_arguments(argv))
    whole = vars(parse_command_line(build_parser(), argv))
    assert light == whole
    assert light["func"] is None and light["command"] is None


def test_a_command_word_gets_the_whole_parser() -> None:
    args = parse_arguments(["--library", "LIB", "list"])
    assert args.command == "list" and args.func is not None and args.library == "LIB"


def _modules_after(argv: list[str], cwd: Path) -> list[str]:
    code = ("import json, sys\n"
            "from app.cli import parse_arguments\n"
            f"parse_arguments({argv!r})\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('app.commands'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=cwd).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_the_gui_command_lines_import_no_command_module(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "scan.dcm").write_bytes(b"")
    assert _modules_after([], repo) == []
    assert _modules_after(["--library", str(tmp_path), str(tmp_path / "scan.dcm")], repo) == []
    assert "app.commands.library" in _modules_after(["list"], repo)


def test_a_mistyped_command_still_names_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_arguments(["lsit"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'lsit' is neither a command (import, list," in err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_arguments(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("import", "infer", "retrieve", "scp"))
