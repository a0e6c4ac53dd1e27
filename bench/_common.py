"""Helpers shared by the benchmarks (run as scripts: ``python bench/NAME.py``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``../shared/data`` beside the repository (or ``$LUCIDA_SHARED/data``), if present."""
    env = os.environ.get("LUCIDA_SHARED")
    root = Path(env) if env else REPO.parent / "shared"
    return root / "data" if (root / "data").is_dir() else None


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
