"""Helpers shared by the benchmarks (run as scripts: ``python bench/NAME.py``)."""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``../shared/data`` beside the repository (or ``$LUCIDA_SHARED/data``), if present."""
    env = os.environ.get("LUCIDA_SHARED")
    root = Path(env) if env else REPO.parent / "shared"
    return root / "data" if (root / "data").is_dir() else None


def bench_start(doc: str, repeat: int, parser: argparse.ArgumentParser | None = None
                ) -> tuple[argparse.Namespace, Path | None]:
    """The usual start of a benchmark on ../shared data: ``--repeat`` (best of N, default
    ``repeat``) added to ``parser`` (a new one from ``doc``'s first line by default), the
    arguments, and ``shared_data()``; None after printing a SKIP line when it is absent (the
    caller then exits 0)."""
    if parser is None:
        parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=repeat,
                        help=f"best of N (default {repeat})")
    args = parser.parse_args()
    data = shared_data()
    if data is None:
        print("SKIP: ../shared/data is absent (set LUCIDA_SHARED to its parent folder)")
    return args, data


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """Peak RSS of this process image in MB. VmHWM, because ru_maxrss survives fork+exec and
    would report a (torch-laden) parent's size for a fresh child."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
