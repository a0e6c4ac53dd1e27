"""``lucida review SERIES --run RUN --accept ID... --reject ID:REASON[:TEXT]...``.

Scripted review of a recorded model run, audited like the GUI (each option is one
command: all ``--accept`` ids are one bulk decision, all ``--reject`` ids with the same
reason another). Every id and reason is checked before anything is changed.

``--script FILE`` (``-`` = standard input) reads one step per line — ``accept ID...``,
``reject ID:REASON[:TEXT]`` (one per line), ``reset ID...``, ``undo``, ``redo``, ``sign-off``;
blank lines and ``#`` comments are skipped — and prints ``committed N STEP`` the moment
each step is in the library, so a driving program knows what survives a crash. A bad
line stops the script with exit 2; the steps before it stay committed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from review import ReviewSession


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "review", help="accept / reject the findings of a model run, sign off",
        description="Review the findings of a model run recorded on SERIES (its id or "
        "SeriesInstanceUID prefix). Every decision is committed and audited at once. "
        "Reasons: false-positive, artefact, not-clinically-significant, duplicate, "
        "other (needs TEXT). Research use only.")
    p.add_argument("series", metavar="SERIES")
    p.add_argument("--run", type=int, default=None, metavar="RUN",
                   help="model run id (default: the series' only or latest run)")
    p.add_argument("--accept", nargs="+", default=[], metavar="ID",
                   help="finding ids to accept (e.g. m1 m3)")
    p.add_argument("--reject", nargs="+", default=[], metavar="ID:REASON[:TEXT]",
                   help="findings to reject with a reason (e.g. m2:artefact, "
                   "m4:other:old scar)")
    p.add_argument("--reviewer", default=None, metavar="NAME",
                   help="who decides (default: the OS user)")
    p.add_argument("--sign-off", action="store_true",
                   help="sign the review off (refused while findings are pending)")
    p.add_argument("--list", action="store_true", help="only print the findings table")
    p.add_argument("--script", metavar="FILE", default=None,
                   help="steps, one per line (accept ID..., reject ID:REASON[:TEXT], "
                   "reset ID..., undo, redo, sign-off); '-' reads standard input")
    p.set_defaults(func=cmd_review)


def _parse_rejects(specs: list[str]) -> list[tuple[str, Any, str]]:
    from review import Reason, ReviewError

    out = []
    for spec in specs:
        key, sep, rest = spec.partition(":")
        if not sep or not key or not rest:
            raise ReviewError(f"--reject {spec!r}: expected ID:REASON[:TEXT], e.g. m2:artefact")
        reason_text, _, text = rest.partition(":")
        try:
            reason = Reason.parse(reason_text)
        except ValueError as exc:
            raise ReviewError(f"--reject {spec!r}: {exc}") from None
        if reason is Reason.OTHER and not text.strip():
            raise ReviewError(f"--reject {spec!r}: reason 'other' needs text "
                              "(ID:other:TEXT)")
        out.append((key.strip(), reason, text.strip()))
    return out


def print_table(session: ReviewSession) -> None:
    """The findings as the Findings panel lists them (same slice numbers and sides)."""
    from rich.console import Console
    from rich.table import Table

    from app.series_session import review_rows

    reviewed, total = session.progress()
    state = "signed off" if session.signed_off else f"{reviewed} of {total} reviewed"
    table = Table(title=f"run {session.run_id} · {state} · reviewer {session.reviewer}")
    for col in ("id", "label", "slice", "side, position (mm, LPS)", "diameter (mm)",
                "volume (mm³)", "score", "status", "reason"):
        table.add_column(col, overflow="fold")
    for row in review_rows(session):
        table.add_row(
            row.key, row.full_label,
            "" if row.slice_number is None else f"{row.slice_number}/{row.n_slices}",
            row.position_text,
            "" if row.diameter_mm is None else f"{row.diameter_mm:.1f}",
            "" if row.volume_mm3 is None else f"{row.volume_mm3:.1f}",
            "" if row.score is None else f"{row.score:.2f}", row.status, row.reason)
    Console(width=160).print(table)


def _run_script(session: ReviewSession, source: str) -> None:
    """Run the steps of ``source`` (a path or '-'), one commit each, confirming each."""
    import sys
    from pathlib import Path

    from review import ReviewError

    stream = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")
    try:
        for number, raw in enumerate(stream, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            verb, *ids = line.split(" ", 1)
            words = ids[0].split() if ids else []
            if verb == "accept" and words:
                session.accept(words)
            elif verb == "reject" and ids:
                for key, reason, text in _parse_rejects([ids[0]]):
                    session.reject([key], reason, text)
            elif verb == "reset" and words:
                session.reset(words)
            elif verb in ("undo", "redo") and not words:
                done = session.undo() if verb == "undo" else session.redo()
                if done is None:
                    raise ReviewError(f"line {number}: nothing to {verb}")
            elif verb == "sign-off" and not words:
                session.sign_off()
            else:
                raise ReviewError(f"line {number}: {line!r} is not a step (accept ID..., "
                                  "reject ID:REASON[:TEXT], reset ID..., undo, redo, "
                                  "sign-off)")
            print(f"committed {number} {line}", flush=True)
    finally:
        if stream is not sys.stdin:
            stream.close()


def cmd_review(args: argparse.Namespace) -> int:
    from app.commands.library import open_library
    from review import ReviewError, ReviewSession

    rejects = _parse_rejects(args.reject)
    library = open_library(args)
    try:
        series = library.get_series(args.series)
        runs = library.model_runs(series.id)
        if args.run is None:
            if not runs:
                raise ReviewError(f"series {series.id} has no recorded model run (run "
                                  "`lucida infer` on it first)")
            run_id = runs[-1].id
        else:
            run_id = args.run
            if run_id not in {r.id for r in runs}:
                listed = ", ".join(str(r.id) for r in runs) or "none"
                raise ReviewError(f"model run {run_id} is not a run of series {series.id} "
                                  f"(its runs: {listed})")
        session = ReviewSession.open(library, run_id, reviewer=args.reviewer)
        wanted = list(args.accept) + [key for key, _r, _t in rejects]
        for key in wanted:
            session.get(key)  # unknown id: one clear line, nothing changed
        both = set(args.accept) & {key for key, _r, _t in rejects}
        if both:
            raise ReviewError(f"{', '.join(sorted(both))}: both accepted and rejected")
        if args.script is not None:
            _run_script(session, args.script)
        elif not args.list:
            if args.accept:
                session.accept(args.accept)
            groups: dict[tuple[Any, str], list[str]] = {}
            for key, reason, text in rejects:
                groups.setdefault((reason, text), []).append(key)
            for (reason, text), keys in groups.items():
                session.reject(keys, reason, text)
            if args.sign_off:
                session.sign_off()
        print_table(session)
    finally:
        library.close()
    return 0
