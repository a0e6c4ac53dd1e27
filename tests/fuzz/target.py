"""The fuzz target: bytes in, Lucida's import path run on them, the contract checked.

This module needs no atheris: the fuzzer (``run.py``) and the regression tests
(``test_regressions.py``) call the same :func:`check`.

The contract, stage by stage, read from the code under test:

``scan``
    ``dicomio.scan.scan_paths`` documents "no exception from a single bad file
    escapes": it must return, whatever the bytes. Every file written must come
    back as an instance, a ``SkippedFile`` (with a non-empty reason) or a
    DICOMDIR (a valid zip with no file members is exempt: it holds nothing).
``fastheader`` / ``fastheader-walk``
    ``dicomio.fastheader.read_lean_header`` documents that anything unusual
    returns ``None``: it returns ``None`` or ``(dataset, offset)`` with
    ``0 <= offset <= size``, and never raises. ``read_file_meta`` and ``walk``
    (the one element walker the scan and the loader share) return, or refuse with
    ``HeaderProblem`` / ``Declined``; the walk goes over every element, pixel data
    included, so its caps are tested on the whole file.
``group``
    ``dicomio.group.group_series`` takes whatever the scan indexed: no exception.
``plan`` / ``load``
    ``dicomio.load.plan_volume`` / ``read_volume`` on each image stack of the
    scan: a result, or a ``core.errors.LucidaError`` (DicomReadError,
    GeometryError, UnsupportedError) — the only family ``app/cli.py`` prints as
    ``error:``; anything else there is what the CLI prints as
    ``internal error: <Type>`` (and what ``app.importer.plan_summary`` hides as
    "geometry could not be read"). The volume's shape must be the plan's, and
    its affine finite.
``load-direct``
    ``read_volume`` on each file the scan did not index as an image (what a
    library entry does when its file changed after import): a Volume or a
    LucidaError.

In every stage an input that takes more than ``cpu_seconds`` of CPU (normal
inputs take milliseconds) or an escaping ``MemoryError`` (the fuzzer and the
regression tests run under an address-space cap) is a finding too, and so is a
stage whose peak RSS grows by more than ``MEMORY_LIMIT_MB`` (a decoder that
allocates gigabytes for a small corrupt file and then fails). A process abort
or segfault cannot be caught here: libFuzzer records those as crash artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from core.errors import LucidaError
from dicomio import fastheader
from dicomio.group import group_series
from dicomio.load import plan_volume, read_volume
from dicomio.scan import scan_paths
from dicomio.source import DicomSource

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("file", "zip", "series", "dicomdir", "synth")
#: Files of one "series" input are separated by this token (also in the dictionary).
SERIES_SEPARATOR = b"#LUCIDA-NEXT-FILE#"
MAX_SERIES_FILES = 6
#: Member name used by the "zip" target: a sub-folder, as real archives have.
ZIP_MEMBER = "study/series/IM0001.dcm"
DEFAULT_CPU_SECONDS = 10.0
#: Address-space cap for fuzzing and replay: a header that makes the loader
#: allocate gigabytes raises MemoryError (a finding) instead of swapping the machine.
DEFAULT_ADDRESS_SPACE_MB = 8192
#: A stage whose peak RSS grows by more than this for one small input is a finding.
MEMORY_LIMIT_MB = 1024


class InputTimeout(BaseException):
    """Raised from the CPU-time signal: BaseException so no ``except Exception`` in
    the code under test can turn a hang into a clean error."""


class Finding(Exception):
    """A break of the contract: what escaped, where, and a stable signature."""

    def __init__(self, stage: str, signature: str, detail: str) -> None:
        super().__init__(f"[{stage}] {signature}")
        self.stage = stage
        self.signature = signature
        self.detail = detail


# --------------------------------------------------------------------------- signatures


def _where(filename: str, function: str) -> str:
    """A frame as 'dicomio/load.py:_read_header' or 'pydicom/values.py:convert_DS_string'."""
    path = Path(filename)
    with contextlib.suppress(ValueError):
        return f"{path.resolve().relative_to(REPO_ROOT).as_posix()}:{function}"
    text = path.as_posix()
    marker = "site-packages/"
    if marker in text:
        return f"{text.split(marker, 1)[1]}:{function}"
    return f"{path.name}:{function}"


def _is_project_frame(filename: str) -> bool:
    try:
        rel = Path(filename).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return False
    return rel.parts[0] not in ("tests", ".venv")


def signature_of(stage: str, exc: BaseException) -> str:
    """Stable bucket for an escaped exception: stage, type, the deepest Lucida frame
    (the call site), and the deepest frame overall (where it was raised).

    Line numbers are left out so that edits elsewhere in a file do not split one
    bug into two; a hang or MemoryError is bucketed by the Lucida frame only,
    since where the signal lands inside a library varies from run to run.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    project = [f for f in frames if _is_project_frame(f.filename)]
    call_site = _where(project[-1].filename, project[-1].name) if project else "?"
    kind = type(exc).__name__
    if isinstance(exc, InputTimeout | MemoryError | RecursionError):
        return f"{stage}|{kind}|{call_site}"
    deepest = _where(frames[-1].filename, frames[-1].name) if frames else "?"
    return f"{stage}|{kind}|{call_site}|{deepest}"


def _finding(stage: str, exc: BaseException) -> Finding:
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Finding(stage, signature_of(stage, exc), detail)


def _contract(stage: str, message: str) -> Finding:
    return Finding(stage, f"{stage}|contract|{message}", message)


def _hidden_hang(exc: BaseException) -> BaseException | None:
    """The InputTimeout a clean error was made from, if any (a hang is a hang)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InputTimeout):
            return current
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _stage(name: str, *, clean: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run one stage: ``clean`` exceptions pass, anything else becomes a Finding.

    A stage whose peak RSS grew by more than :data:`MEMORY_LIMIT_MB` is a
    finding even when it ends cleanly: a decoder that allocates gigabytes for a
    small corrupt file and then fails looks clean from outside but takes the
    user's machine down first. (A MemoryError turned into a clean error is not
    one by itself: under the address-space cap it can come from a large
    *untouched* allocation, e.g. ``read(n)`` with a huge n, which costs nothing
    on a real machine; what is touched shows in the peak RSS.)
    """
    before = _rss_mb() if _reset_peak() else None
    try:
        yield
    except (KeyboardInterrupt, SystemExit, Finding):
        raise
    except clean as exc:
        hidden = _hidden_hang(exc)
        if hidden is not None:
            finding = _finding(name, exc)
            raise Finding(name, f"{name}|{type(hidden).__name__} inside {type(exc).__name__}|"
                          + finding.signature.split("|", 2)[2], finding.detail) from exc
    except BaseException as exc:  # everything else is what the contract forbids
        raise _finding(name, exc) from exc
    if before is not None:
        grown = _peak_mb() - before
        if grown > MEMORY_LIMIT_MB:
            raise _contract(name, f"peak RSS grew by more than {MEMORY_LIMIT_MB} MB")


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so one stage can be measured (Linux)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _status_mb(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


def _peak_mb() -> float:
    return _status_mb("VmHWM:")


# --------------------------------------------------------------------------- resource guards


@contextlib.contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise InputTimeout after ``seconds`` of process CPU time (user + system).

    SIGPROF/ITIMER_PROF, not SIGALRM: libFuzzer's own ``-timeout`` uses SIGALRM,
    and CPU time is fair on a shared, busy machine. Main thread only.
    """
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise InputTimeout(f"more than {seconds:g} s of CPU for one input")

    previous = signal.signal(signal.SIGPROF, fire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def limit_address_space(megabytes: int = DEFAULT_ADDRESS_SPACE_MB) -> None:
    """Cap this process's address space so huge allocations raise MemoryError."""
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# --------------------------------------------------------------------------- the pipeline


def _zip_has_no_files(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return not any(not info.is_dir() for info in archive.infolist())
    except Exception:  # not a readable zip: the scan must account for it
        return False


def _plain_sources(written: list[Path]) -> list[DicomSource]:
    """Each object written: plain files, or the members of the zips among them."""
    sources: list[DicomSource] = []
    for path in written:
        if path.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    sources.extend(DicomSource(path, info.filename)
                                   for info in archive.infolist() if not info.is_dir())
            except Exception:  # a broken archive: nothing to load directly
                continue
        else:
            sources.append(DicomSource(path))
    return sources


def _check_fastheader(path: Path) -> None:
    """The header parser's public readers on the raw file, each within its contract.

    ``read_lean_header`` returns None for anything it does not read; ``read_file_meta``
    and ``walk`` may refuse with their own ``HeaderProblem`` (a user-facing reason)
    or ``Declined`` (hand it to pydicom). Readers missing from this tree are skipped,
    so the harness follows the parser's API as it changes.
    """
    size = path.stat().st_size
    reader: Callable[..., Any] | None = getattr(fastheader, "read_lean_header", None)
    if reader is not None:
        with _stage("fastheader"), open(path, "rb") as fp:
            got = reader(fp, size)
            if got is not None and not 0 <= got[1] <= size:
                raise _contract("fastheader", "offset outside the file")
    read_meta = getattr(fastheader, "read_file_meta", None)
    walk = getattr(fastheader, "walk", None)
    refusals = tuple(getattr(fastheader, name) for name in ("HeaderProblem", "Declined")
                     if hasattr(fastheader, name))
    if read_meta is None or walk is None:
        return
    with _stage("fastheader-walk", clean=refusals), open(path, "rb") as fp:
        meta = read_meta(fp, size)
        if meta is None:  # a bare data set: walk it as implicit VR little endian
            start, syntax, head = 0, "1.2.840.10008.1.2", b""
        else:
            start, syntax, head = meta.dataset_start, meta.transfer_syntax, meta.head
        if syntax in getattr(fastheader, "DEFLATED", ()):
            return
        # Every element, past the pixel data: the walker's caps must hold on all of it.
        walk(fp, start, end=size, implicit=syntax == "1.2.840.10008.1.2",
             little=syntax != "1.2.840.10008.1.2.2", wanted=_WALK_WANTED,
             stop_at_pixels=False, head=head)


#: Tags the walk keeps (those the scan and the loader read), so value capture is exercised.
_WALK_WANTED = frozenset({0x00080016, 0x00080018, 0x0020000D, 0x0020000E, 0x00200032,
                          0x00200037, 0x00280008, 0x00280010, 0x00280011, 0x00280030,
                          0x00281052, 0x00281053})


def _check_volume(stage: str, volume: Any, expected_shape: tuple[int, ...] | None) -> None:
    if expected_shape is not None and tuple(volume.array.shape) != tuple(expected_shape):
        raise _contract(stage, "read_volume shape differs from plan_volume shape")
    if not np.all(np.isfinite(np.asarray(volume.affine, dtype=np.float64))):
        raise _contract(stage, "volume affine is not finite")


def check_folder(folder: Path, written: list[Path]) -> None:
    """Run the import path on ``folder`` (holding ``written``); raise Finding on a break."""
    result: Any = None
    with _stage("scan"):
        result = scan_paths([folder], workers=1)
    accounted: dict[Path, int] = {}
    for entry in (*result.instances, *result.skipped):
        accounted[Path(entry.source.path)] = accounted.get(Path(entry.source.path), 0) + 1
        if isinstance(getattr(entry, "reason", "x"), str) and not getattr(entry, "reason", "x"):
            raise _contract("scan", "a SkippedFile with an empty reason")
    for path in result.dicomdirs:
        accounted[Path(path)] = accounted.get(Path(path), 0) + 1
    for path in written:
        if not accounted.get(path) and not _zip_has_no_files(path):
            raise _contract("scan", "a file was neither indexed nor skipped with a reason")

    for path in written:
        if path.suffix.lower() != ".zip":
            _check_fastheader(path)

    groups: list[Any] = []
    with _stage("group"):
        groups = group_series(result.instances)

    for group in groups:
        if not group.object_kind.is_image:
            continue
        sources = [inst.source for inst in group.instances]
        plan: Any = None
        with _stage("plan", clean=(LucidaError,)):
            plan = plan_volume(sources)
        with _stage("load", clean=(LucidaError,)):
            volume = read_volume(sources, workers=1)
            _check_volume("load", volume, plan.shape if plan is not None else None)

    indexed_images = {inst.source for inst in result.instances if inst.object_kind.is_image}
    for source in _plain_sources(written):
        if source in indexed_images:
            continue
        with _stage("load-direct", clean=(LucidaError,)):
            volume = read_volume([source], workers=1)
            _check_volume("load-direct", volume, None)


# --------------------------------------------------------------------------- writers


def _write_file(data: bytes, folder: Path) -> list[Path]:
    path = folder / "input.dcm"
    path.write_bytes(data)
    return [path]


def _write_zip(data: bytes, folder: Path) -> list[Path]:
    path = folder / "input.zip"
    # Deflated, as archives from PACS exports and e-mail usually are.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(ZIP_MEMBER, data)
    return [path]


def split_series(data: bytes) -> list[bytes]:
    """The files of one "series" input (at most MAX_SERIES_FILES; empty parts dropped)."""
    parts = [p for p in data.split(SERIES_SEPARATOR) if p]
    return parts[:MAX_SERIES_FILES] or [data]


def join_series(files: list[bytes]) -> bytes:
    return SERIES_SEPARATOR.join(files)


def _write_series(data: bytes, folder: Path) -> list[Path]:
    written = []
    for n, part in enumerate(split_series(data)):
        path = folder / f"IM{n:04d}.dcm"
        path.write_bytes(part)
        written.append(path)
    return written


def _write_dicomdir(data: bytes, folder: Path) -> list[Path]:
    path = folder / "DICOMDIR"
    path.write_bytes(data)
    return [path]


def _write_synth(data: bytes, folder: Path) -> list[Path]:
    from tests.fuzz.synth import write_series

    return write_series(data, folder)


WRITERS: dict[str, Callable[[bytes, Path], list[Path]]] = {
    "file": _write_file,
    "zip": _write_zip,
    "series": _write_series,
    "dicomdir": _write_dicomdir,
    "synth": _write_synth,
}


_BASE: Path | None = None


def _base_dir() -> Path:
    """One scratch folder per process, in RAM when /dev/shm exists (never in the repo)."""
    global _BASE
    if _BASE is None:
        shm = Path("/dev/shm")
        root = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        _BASE = Path(tempfile.mkdtemp(prefix="lucida-fuzz-", dir=root))
        import atexit

        atexit.register(shutil.rmtree, _BASE, ignore_errors=True)
    return _BASE


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    folder = _base_dir() / "in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check(target: str, data: bytes, *, cpu_seconds: float = DEFAULT_CPU_SECONDS) -> None:
    """Write ``data`` as the ``target`` says and run the import path; raise Finding."""
    with workdir() as folder:
        written = WRITERS[target](data, folder)
        with cpu_limit(cpu_seconds):
            check_folder(folder, written)


def check_tree(source: Path, *, cpu_seconds: float = DEFAULT_CPU_SECONDS) -> None:
    """A regression stored as a folder of files (e.g. a synthetic series): copied, checked."""
    with workdir() as folder:
        written = []
        for item in sorted(source.iterdir()):
            if item.is_file():
                shutil.copyfile(item, folder / item.name)
                written.append(folder / item.name)
        with cpu_limit(cpu_seconds):
            check_folder(folder, written)


def replay(target: str, path: Path, *, cpu_seconds: float = DEFAULT_CPU_SECONDS
           ) -> Finding | None:
    """The Finding an input produces, or None when it passes the contract."""
    try:
        if path.is_dir():
            check_tree(path, cpu_seconds=cpu_seconds)
        else:
            check(target, path.read_bytes(), cpu_seconds=cpu_seconds)
    except Finding as finding:
        return finding
    return None


# --------------------------------------------------------------------------- recording


class Recorder:
    """Fuzz mode: each new signature is saved once (and its smallest input kept);
    known signatures are counted, so one bug does not stop the whole run."""

    def __init__(self, folder: Path, target: str) -> None:
        self.folder = folder
        self.target = target
        self.seen: dict[str, int] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def _dir(self, signature: str) -> Path:
        digest = hashlib.sha1(signature.encode()).hexdigest()[:12]
        return self.folder / f"{self.target}-{digest}"

    def record(self, finding: Finding, data: bytes) -> None:
        where = self._dir(finding.signature)
        first = not where.exists()
        where.mkdir(exist_ok=True)
        sample = where / "input.bin"
        if first or not sample.exists() or len(data) < sample.stat().st_size:
            sample.write_bytes(data)
        if first:
            (where / "signature.txt").write_text(finding.signature + "\n")
            (where / "traceback.txt").write_text(finding.detail)
            print(f"\n=== NEW FINDING {where.name}: {finding.signature}\n{finding.detail}",
                  file=sys.stderr, flush=True)
        self.seen[finding.signature] = self.seen.get(finding.signature, 0) + 1


def _main(argv: list[str]) -> int:
    """``python -m tests.fuzz.target TARGET PATH``: replay one input in a fresh,
    memory-capped process; prints one JSON line (used by the regression tests)."""
    import logging
    import warnings

    target, path = argv[0], Path(argv[1])
    limit_address_space()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    finding = replay(target, path)
    out = {"clean": finding is None}
    if finding is not None:
        out.update(signature=finding.signature, detail=finding.detail)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


__all__ = ["TARGETS", "Finding", "Recorder", "check", "check_folder", "replay"]
