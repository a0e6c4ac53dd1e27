"""Library subcommands: ``import``, ``list``, ``info``, ``export-volume``, ``check``.

Everything here runs without a display; modules are imported inside the
handlers so that ``lucida --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from app.importer import ImportReport
    from store import Library


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="import DICOM files, folders, DICOMDIRs or .zip archives",
        description="Scan the given paths (recursively; DICOMDIR and .zip understood) and "
        "index every DICOM object into the library. Source files are only read. Exit 0 when "
        "anything was imported or everything was already there, 1 when nothing importable "
        "was found.")
    p.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    p.add_argument("--max-skipped", type=int, default=200, metavar="N",
                   help="list at most N skipped files (default 200; 0 = all)")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("list", help="list patients, studies and series in the library")
    p.add_argument("search", nargs="*", help="only series matching these words "
                   "(patient name/ID, date, modality, description)")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser(
        "info", help="geometry, transfer syntaxes and warnings of a series",
        description="SERIES is the id from `lucida list` or a unique prefix of the "
        "SeriesInstanceUID (UID:N selects stack N).")
    p.add_argument("series", metavar="SERIES")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser(
        "export-volume", help="write a series as a NIfTI volume (.nii or .nii.gz)",
        description="Load SERIES (id or UID prefix) and write it as NIfTI-1 with a RAS "
        "affine (qform and sform code 1, scanner coordinates).")
    p.add_argument("series", metavar="SERIES")
    p.add_argument("output", metavar="OUT.nii.gz", type=Path)
    p.set_defaults(func=cmd_export_volume)

    p = subparsers.add_parser(
        "check", help="find indexed files that are missing or modified on disk")
    p.add_argument("--forget-missing", action="store_true",
                   help="remove missing files from the library (the files are not touched)")
    p.set_defaults(func=cmd_check)


# ----------------------------------------------------------------------------- helpers


def make_console() -> Console:
    from rich.console import Console

    # Wide when not a terminal, so that paths and UIDs stay whole in logs and tests.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def open_library(args: argparse.Namespace) -> Library:
    """The library chosen by --library / $LUCIDA_LIBRARY / the default folder."""
    from app.paths import library_dir
    from store import Library

    return Library.open(library_dir(args.library))


def _progress_printer(enabled: bool) -> Any:
    if not enabled:
        return None
    state = {"last": -1}

    def show(fraction: float, message: str = "") -> None:
        percent = int(fraction * 100)
        if percent != state["last"]:
            state["last"] = percent
            sys.stderr.write(f"\r{percent:3d}% {message[:60]:<60}")
            sys.stderr.flush()
            if percent >= 100:
                sys.stderr.write("\n")

    return show


def _short(warning: str, limit: int = 70) -> str:
    return warning if len(warning) <= limit else warning[:limit - 1] + "…"


def print_import_report(report: ImportReport, console: Console, max_skipped: int = 200) -> None:
    """The import report as the CLI shows it (a tally, the stacks, the skipped files)."""
    from rich.table import Table

    console.print(f"Imported: {report.summary()}")
    if report.series:
        table = Table(title="Series found", title_justify="left")
        for column in ("id", "kind", "description", "files", "new", "warnings"):
            table.add_column(column, overflow="fold")
        for s in report.series:
            table.add_row(str(s.series_id), s.object_kind, s.description, str(s.instances),
                          str(s.new_instances), "; ".join(_short(w) for w in s.warnings))
        console.print(table)
    for old, new in report.moved:
        console.print(f"moved: {old} -> {new}")
    for path in report.modified:
        console.print(f"modified since last import: {path}")
    for kept, ignored in report.duplicates[:20]:
        console.print(f"same SOP Instance UID as an indexed file, ignored: {ignored} "
                      f"(kept {kept})")
    if len(report.duplicates) > 20:
        console.print(f"... and {len(report.duplicates) - 20} more duplicate copies")
    if report.skipped:
        shown = report.skipped if max_skipped <= 0 else report.skipped[:max_skipped]
        table = Table(title=f"Skipped files ({len(report.skipped)})", title_justify="left")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for item in shown:
            table.add_row(str(item.source), item.reason)
        console.print(table)
        if len(shown) < len(report.skipped):
            console.print(f"... and {len(report.skipped) - len(shown)} more "
                          "(use --max-skipped 0 to list all)")


# ----------------------------------------------------------------------------- commands


def cmd_import(args: argparse.Namespace) -> int:
    from app.importer import import_paths

    console = make_console()
    with open_library(args) as library:
        report = import_paths(library, args.paths,
                              progress=_progress_printer(sys.stderr.isatty()))
        print_import_report(report, console, args.max_skipped)
    if not report.ok:
        console.print("Nothing importable was found.")
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    console = make_console()
    with open_library(args) as library:
        rows = library.search(" ".join(args.search)) if args.search else library.all_series()
        if not rows:
            console.print("The library is empty: add studies with `lucida import PATH`."
                          if not args.search else "No series match.")
            return 0
        table = Table()
        for column in ("id", "patient", "date", "modality", "description", "instances",
                       "kind"):
            table.add_column(column, overflow="fold")
        for row in rows:
            patient = f"{row.patient_name} ({row.patient_id})" if row.patient_id else \
                row.patient_name
            description = row.series_description or "(no description)"
            if row.series_number is not None:
                description = f"#{row.series_number} {description}"
            if row.stack_index:
                description += f" [stack {row.stack_index}]"
            if row.is_localizer:
                description += " [localizer]"
            kind = row.object_kind
            if row.num_frames > row.num_instances:
                kind += f" ({row.num_frames} frames)"
            table.add_row(str(row.id), patient, _pretty_date(row.study_date), row.modality,
                          description, str(row.num_instances), kind)
        console.print(table)
    return 0


def _pretty_date(date: str) -> str:
    if len(date) == 8 and date.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return date


def _fmt_vector(values: Any, digits: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):.{digits}f}" for v in values) + ")"


def cmd_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from app.importer import plan_summary, series_sources

    console = make_console()
    with open_library(args) as library:
        row = library.get_series(args.series)
        instances = library.series_instances(row.id)
        sources = series_sources(library, row.id)
    console.print(f"Series {row.id}: {row.series_uid} (stack {row.stack_index})")
    console.print(f"  patient:      {row.patient_name} ({row.patient_id})")
    console.print(f"  study:        {_pretty_date(row.study_date)} {row.study_description}")
    console.print(f"  modality:     {row.modality}   kind: {row.object_kind}")
    console.print(f"  description:  {row.series_description}")
    console.print(f"  files:        {len(instances)} ({row.num_frames} frames)")
    for problem in row.problems:
        console.print(f"  note: {problem}")
    syntaxes = Counter(inst.transfer_syntax_uid for inst in instances)
    for uid, count in sorted(syntaxes.items()):
        console.print(f"  transfer syntax: {uid} {_syntax_name(uid)} ({count} files)")
    if not row.is_image:
        console.print(f"  not an image stack ({row.object_kind}): no volume geometry")
        return 0
    from dicomio.projection import is_projection

    if is_projection(sources):
        console.print("  2-D image without patient geometry: shown as acquired, with its own "
                      "window, orientation letters and pixel spacing (no volume geometry)")
        return 0
    geometry, warnings = plan_summary(sources)
    if geometry is None:
        console.print("  geometry: unavailable")
        for warning in warnings or row.warnings:
            console.print(f"  warning: {warning}")
        return 1
    console.print(f"  shape (k, j, i):   {tuple(geometry['shape'])}")
    console.print(f"  spacing (mm):      {_fmt_vector(geometry['spacing_mm'])} (k, j, i)")
    console.print(f"  orientation:       {geometry['orientation']} (+k, +j, +i point to)")
    console.print(f"  origin (LPS mm):   {_fmt_vector(geometry['origin_lps'])}")
    console.print("  affine (k, j, i) -> LPS mm:")
    for affine_row in geometry["affine"]:
        console.print("    [" + "  ".join(f"{float(v):11.4f}" for v in affine_row) + "]")
    if warnings:
        for warning in warnings:
            console.print(f"  warning: {warning}")
    else:
        console.print("  warnings: none")
    _cache_geometry(args, row.id, geometry, warnings, console)
    return 0


def _cache_geometry(args: argparse.Namespace, series_id: int, geometry: dict[str, Any],
                    warnings: list[str], console: Console) -> None:
    """Best effort: `info` reads; a library busy elsewhere must not make it fail or hang."""
    from app.paths import library_dir
    from core.errors import StoreError
    from store import Library

    try:
        with Library.open(library_dir(args.library), busy_timeout_s=2.0) as library:
            library.set_series_geometry(series_id, geometry, warnings)
    except StoreError as exc:
        console.print(f"  note: the geometry was not cached in the library: {exc}")


def _syntax_name(uid: str) -> str:
    try:
        from pydicom.uid import UID

        name = UID(uid).name
    except (ValueError, TypeError):
        return ""
    return f"({name})" if name and name != uid else ""


def cmd_export_volume(args: argparse.Namespace) -> int:
    from app.importer import series_sources
    from core.errors import LucidaError

    output: Path = args.output
    if not output.name.endswith((".nii", ".nii.gz")):
        raise _usage_error(f"output must end in .nii or .nii.gz, got {output.name}")
    if not output.parent.is_dir():
        raise _usage_error(f"the folder {output.parent} does not exist")
    with open_library(args) as library:
        row = library.get_series(args.series)
        sources = series_sources(library, row.id)
    if not row.is_image:
        raise _usage_error(f"series {row.id} is a {row.object_kind}, not an image stack")
    from dicomio.load import read_volume

    volume = read_volume(sources, progress=_progress_printer(sys.stderr.isatty()))
    try:
        write_nifti(volume, output)
    except (OSError, ValueError) as exc:
        raise LucidaError(f"cannot write {output}: {exc}") from exc
    console = make_console()
    console.print(f"Wrote {output}: shape (i, j, k) {tuple(volume.shape[::-1])}, "
                  f"dtype {volume.array.dtype}")
    for warning in volume.warnings:
        console.print(f"warning: {warning}")
    return 0


def _usage_error(message: str) -> Exception:
    from core.errors import LucidaError

    return LucidaError(message)


def write_nifti(volume: Any, output: Path) -> None:
    """Write a core.Volume as NIfTI-1 (RAS affine via core.convert, scanner codes).

    Atomically: a crash or kill mid-write leaves ``output`` as it was (absent, or
    the previous file), never a truncated volume.
    """
    import nibabel as nib
    import numpy as np

    from core.atomic import atomic_path
    from core.convert import array_to_ijk, to_ras_affine_ijk

    affine_ras = to_ras_affine_ijk(volume.affine)
    data = np.asarray(array_to_ijk(volume.array))
    image = nib.Nifti1Image(data, affine_ras)
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    image.header.set_xyzt_units("mm")
    with atomic_path(output) as tmp:  # the temporary name ends in output's .nii(.gz)
        nib.save(image, str(tmp))


def cmd_check(args: argparse.Namespace) -> int:
    console = make_console()
    with open_library(args) as library:
        report = library.check_files()
        console.print(f"Checked {report.checked} files: {len(report.missing)} missing, "
                      f"{len(report.modified)} modified")
        for inst in report.missing:
            console.print(f"missing: {inst.source}")
        for inst in report.modified:
            console.print(f"modified: {inst.source}")
        if args.forget_missing and report.missing:
            removed = library.remove_instances(inst.id for inst in report.missing)
            console.print(f"Removed {removed} missing files from the library")
    return 0 if report.ok else 1
