"""Network work off the GUI thread: echo, query, retrieve and send as ``app.workers`` jobs.

Every function builds a :class:`app.workers.Job` (not started) whose worker calls the
``net`` room — ``net.dimse`` for DIMSE nodes, ``net.web`` for DICOMweb ones, ``net.send``
for C-STORE — and never does protocol work itself. The job's cancel token is the one the
``net`` call polls, so Cancel in the transfer list reaches the association.

Retrieved instances are indexed into the library as they arrive (``net.filing.Filer`` hands
each small batch to ``app.importer.import_paths``); each batch is reported through the
job's ``partial`` signal as an :class:`Arrived`, so the window can refresh the library
browser and the reader can open a series that is still arriving. The library is opened per
batch: pynetdicom may call the filer from its own association thread, and a SQLite
connection belongs to the thread that opened it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app import workers
from app.workers import Job, JobContext

Level = Literal["PATIENT", "STUDY", "SERIES"]
Method = Literal["get", "move"]

_COUNT = re.compile(r"(\d+)\s*(?:/|of)\s*(\d+)")


@dataclass(frozen=True)
class Arrived:
    """A batch of instances written and indexed: running totals of the transfer."""

    instances: int
    bytes: int
    series_uids: frozenset[str]


@dataclass(frozen=True)
class Progress:
    """What a transfer reports while it runs (instances done of total, bytes so far)."""

    done: int
    total: int
    bytes: int
    message: str


def count_from(message: str, fraction: float, total_hint: int) -> tuple[int, int]:
    """Instances (done, total) from a ``net`` progress message ("12/133 …") or the fraction."""
    match = _COUNT.search(message or "")
    if match:
        return int(match.group(1)), int(match.group(2))
    if total_hint > 0:
        return round(max(0.0, min(1.0, fraction)) * total_hint), total_hint
    return 0, 0


def echo_job(node: Any, local: Any, timeout_s: float) -> Job:
    """C-ECHO a DIMSE node (round trip in seconds); a DICOMweb node answers one QIDO search."""

    def work(_ctx: JobContext) -> float:
        if node.kind == "dicomweb":
            from net.dimse import QueryKeys
            from net.web import web_search

            start = time.perf_counter()
            web_search(node, "STUDY", QueryKeys(patient_id="LUCIDA-ECHO"), timeout_s=timeout_s)
            return time.perf_counter() - start
        from net.dimse import echo

        return float(echo(node, local, timeout_s=timeout_s))

    return workers.make(work, name=f"echo {node.name}")


def find_job(node: Any, local: Any, level: Level, keys: Any) -> Job:
    """C-FIND (or QIDO-RS) at ``level``; the result is the list of matches (dicts)."""

    def work(_ctx: JobContext) -> list[dict[str, str]]:
        if node.kind == "dicomweb":
            from net.web import web_search

            return list(web_search(node, level, keys))
        from net.dimse import find

        return list(find(node, local, level, keys))

    return workers.make(work, name=f"query {node.name}")


def _sink(ctx: JobContext, total_hint: int,
          sent_bytes: Callable[[], int]) -> Callable[..., None]:
    def progress(fraction: float, message: str = "") -> None:
        done, total = count_from(message, fraction, total_hint)
        ctx.partial(Progress(done, total, sent_bytes(), message))
        ctx.progress(fraction, message)

    return progress


def retrieve_job(library_dir: Path, node: Any, local: Any, study_uids: Sequence[str], *,
                 method: Method = "get", total_hint: int = 0, scp: Any = None) -> Job:
    """Retrieve studies into the library; the result is the ``net`` TransferReport.

    ``scp``: Lucida's running storage SCP, which receives a C-MOVE (else ``net`` starts
    one for the duration on the local port).
    """
    uids = list(study_uids)

    def work(ctx: JobContext) -> Any:
        from app.importer import ArrivalIndexer
        from net.filing import Filer

        arrived = {"instances": 0, "bytes": 0}
        series: set[str] = set()
        indexer = ArrivalIndexer()

        def index_batch(library: Any, paths: Sequence[Path]) -> object:
            result = indexer.index(library, paths)
            arrived["instances"] += len(paths)
            arrived["bytes"] += sum(p.stat().st_size for p in paths if p.exists())
            series.update(p.parent.name for p in paths)
            ctx.partial(Arrived(arrived["instances"], arrived["bytes"], frozenset(series)))
            return result

        # One Library connection on the indexing thread; geometry planned at the end.
        filer = Filer.for_library(Path(library_dir), index_batch, finish=indexer.finish)
        progress = _sink(ctx, total_hint, lambda: arrived["bytes"])
        try:
            if node.kind == "dicomweb":
                from net.web import web_retrieve

                return web_retrieve(node, uids, filer, progress, ctx.cancel)
            from net.dimse import retrieve

            return retrieve(node, local, uids, filer, method=method, progress=progress,
                            cancel=ctx.cancel, scp=scp)
        finally:
            filer.close()  # what arrived before a failure or a cancel stays indexed
            if scp is not None:  # a C-MOVE's instances went through the SCP's own Filer
                scp.filer.flush(60)

    return workers.make(work, name=f"retrieve {node.name}")


def send_job(node: Any, local: Any, paths: Sequence[Any]) -> Job:
    """C-STORE (STOW-RS for a DICOMweb node: ``net.send`` chooses) the files or library
    sources; the result is the ``net`` TransferReport."""
    sources = list(paths)
    total_bytes = sum(p.stat().st_size for p in sources if isinstance(p, Path) and p.exists())

    def work(ctx: JobContext) -> Any:
        from net.send import send

        state = {"fraction": 0.0}
        inner = _sink(ctx, len(sources), lambda: int(total_bytes * state["fraction"]))

        def progress(fraction: float, message: str = "") -> None:
            state["fraction"] = fraction
            inner(fraction, message)

        return send(node, local, sources, progress, ctx.cancel)

    return workers.make(work, name=f"send {node.name}")
