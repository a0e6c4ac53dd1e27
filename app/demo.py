"""The built-in demo study in the library: written once, imported like any other series.

On first launch the GUI calls :func:`ensure_demo_study`; it writes the
synthetic chest CT (:mod:`dicomio.demo`) as DICOM files into
``<library>/demo/`` and imports that folder with :func:`app.importer.import_paths`.
Later calls find the series already indexed with all its files present and
return at once, without scanning or writing anything.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from core.errors import LucidaError, StoreError
from core.progress import CancelToken, ProgressSink
from store import Library

log = logging.getLogger(__name__)

DEMO_FOLDER_NAME = "demo"


def demo_folder(library_dir: Path) -> Path:
    """Where the demo series' files live inside a library folder."""
    return Path(library_dir) / DEMO_FOLDER_NAME


def find_demo_series(library: Library) -> int | None:
    """Library id of the demo series when it is indexed complete and its files are unchanged."""
    from dicomio.demo import DEFAULT_SHAPE, DEMO_SERIES_UID

    for row in library.all_series():
        if row.series_uid != DEMO_SERIES_UID or row.stack_index != 0:
            continue
        instances = library.series_instances(row.id)
        if row.num_instances != DEFAULT_SHAPE[0] or len(instances) != DEFAULT_SHAPE[0]:
            return None
        for inst in instances:
            try:
                stat = Path(inst.path).stat()
            except OSError:
                return None
            # Same tolerance as the importer's "modified" check.
            if (inst.member is not None or stat.st_size != inst.file_size
                    or abs(stat.st_mtime - inst.mtime) > 1e-3):
                return None
        return row.id
    return None


def _demo_files_present(folder: Path) -> bool:
    from dicomio.demo import DEFAULT_SHAPE

    return folder.is_dir() and len(list(folder.glob("*.dcm"))) == DEFAULT_SHAPE[0]


def _write_demo_files(folder: Path) -> None:
    """Write the series beside ``folder`` first, then move each file in (no half-written files)."""
    from dicomio.demo import write_demo_study

    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        written = write_demo_study(staging)
        folder.mkdir(parents=True, exist_ok=True)
        for path in written:
            os.replace(path, folder / path.name)
    except OSError as exc:
        raise StoreError(f"cannot write the demo study into {folder}: {exc}; "
                         "check free disk space and permissions of the library folder") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_demo_study(library: Library, library_dir: Path, *,
                      progress: ProgressSink | None = None,
                      cancel: CancelToken | None = None) -> int | None:
    """Make sure the demo study is in ``library``; return its series' library id.

    Writes ``<library_dir>/demo/`` only when its files are missing, and
    imports only when the series is not already indexed with all its files.
    Idempotent: a second call writes and imports nothing. Raises a
    :class:`core.errors.LucidaError` when the demo cannot be written or imported.
    """
    found = find_demo_series(library)
    if found is not None:
        if progress is not None:
            progress(1.0, "demo study already in the library")
        return found
    from app.importer import import_paths

    folder = demo_folder(library_dir)
    wrote = False
    if not _demo_files_present(folder):
        if progress is not None:
            progress(0.0, "writing the synthetic demo study")
        log.info("writing the demo study into %s", folder)
        _write_demo_files(folder)
        wrote = True

    def import_progress(fraction: float, message: str = "") -> None:
        if progress is not None:
            progress(0.3 + 0.7 * fraction, message)

    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        report = import_paths(library, [folder], progress=import_progress, cancel=cancel)
        found = find_demo_series(library)
        if found is not None:
            log.info("demo study ready (series id %d)", found)
            return found
        if wrote:
            break
        # Files were there but did not import as the demo series (damaged or edited):
        # write them afresh, once, and import again.
        log.warning("the demo files in %s did not import as expected; rewriting them", folder)
        _write_demo_files(folder)
        wrote = True
    reasons = "; ".join(f"{s.source}: {s.reason}" for s in report.skipped[:5])
    raise LucidaError(
        f"the demo study in {folder} could not be imported ({report.summary()}"
        f"{'; ' + reasons if reasons else ''}); delete that folder and start Lucida again")
