"""``lucida [PATH ...]``: the files and folders a desktop hands to Lucida on its command line.

A file association runs ``lucida %F`` (Linux desktop entry), ``lucida.exe "%1"``
(Windows) or ``lucida FILE`` (a shell). argparse cannot mix free paths with subcommands,
so the paths are taken off the command line before it is parsed:

- the first word that is not an option (nor an option's value) decides: a subcommand's
  name stays a subcommand (names win over paths); anything else starts the paths, which
  must exist;
- after ``--`` every word is a path, so a folder named like a subcommand opens with
  ``lucida -- export``.

Qt-free and light: ``lucida --help`` must stay fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommands (and their aliases) ``parser`` knows."""
    names: list[str] = []
    for action in parser._actions:  # argparse keeps no public list of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            names += list(action.choices)
    return names


def _value_options(parser: argparse.ArgumentParser) -> tuple[set[str], list[str]]:
    """(option strings that take a value, every long option string) of the top level."""
    takes_value: set[str] = set()
    longs: list[str] = []
    for action in parser._actions:
        for option in action.option_strings:
            if action.nargs != 0:
                takes_value.add(option)
            if option.startswith("--"):
                longs.append(option)
    return takes_value, longs


def _takes_value(token: str, takes_value: set[str], longs: list[str]) -> bool:
    """Does option ``token`` (no ``=value``) consume the next word? argparse also accepts
    unique prefixes of long options (``--lib DIR``), so those count too."""
    if token in takes_value:
        return True
    if token.startswith("--"):
        matches = [name for name in longs if name.startswith(token)]
        return bool(matches) and all(name in takes_value for name in matches)
    return False


def split_launch_paths(parser: argparse.ArgumentParser, argv: Sequence[str],
                       commands: Sequence[str] | None = None) -> tuple[list[str], list[Path]]:
    """(the words argparse should parse, the paths to open in the GUI).

    A word that is neither a subcommand nor an existing file or folder is a usage error
    (``parser.error`` exits 2), so a mistyped subcommand is not taken for a path.
    ``commands``: the subcommand names, when ``parser`` was built without them (default:
    the ones ``parser`` has).
    """
    commands = command_names(parser) if commands is None else list(commands)
    takes_value, longs = _value_options(parser)
    words = [w for w in argv if not w.startswith("-psn_")]  # old macOS Finder adds one
    rest: list[str] = []
    paths: list[Path] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            paths += [_existing(parser, w, after_dashes=True) for w in words[i + 1:]]
            break
        if word.startswith("-") and word != "-":
            rest.append(word)
            if "=" not in word and _takes_value(word, takes_value, longs) and i + 1 < len(words):
                rest.append(words[i + 1])
                i += 1
        elif not paths and word in commands:
            return rest + words[i:], []  # a subcommand: it parses the rest itself
        else:
            paths.append(_existing(parser, word, after_dashes=False, commands=commands))
        i += 1
    return rest, paths


def parse_command_line(parser: argparse.ArgumentParser,
                       argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args`` with the launch paths taken off first: ``open_paths`` holds them
    (absolute; empty for a subcommand, whose own arguments may be called ``paths``)."""
    words, paths = split_launch_paths(parser, argv)
    args = parser.parse_args(words)
    args.open_paths = paths
    return args


def _existing(parser: argparse.ArgumentParser, word: str, *, after_dashes: bool,
              commands: Sequence[str] = ()) -> Path:
    path = Path(word).expanduser()
    if path.exists():
        return path.absolute()
    if after_dashes:
        parser.error(f"no such file or folder: {word}")
    parser.error(f"{word!r} is neither a command ({', '.join(commands)}) nor an existing "
                 "file or folder")
    raise AssertionError("unreachable")  # parser.error exits
