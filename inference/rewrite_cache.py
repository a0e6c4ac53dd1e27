"""Remember which model files the exact graph rewrites leave as they are.

Checking a graph for :mod:`inference.rewrite` needs the ``onnx`` package, and importing it
costs about 0.6 s (most of it ``ml_dtypes``) in every spawned inference worker: a third of
a whole deepbet run on 2 cores. The answer for a file never changes while the rewrites and
onnx stay the same, so it is kept as an empty marker file named by the model's sha256, the
rewrites' version and onnx's version. Only "nothing to rewrite" is remembered: a marker can
at worst skip an optimisation, never put a different graph in the model's place, so a
rewritten graph is always made afresh from the verified original.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Bump with any change to what inference.rewrite does: older markers are then ignored.
REWRITES_VERSION = 2


def _marker(cache_dir: Path, sha256: str) -> Path:
    try:
        onnx_version = importlib.metadata.version("onnx")
    except importlib.metadata.PackageNotFoundError:
        onnx_version = "none"
    return cache_dir / f"unchanged-v{REWRITES_VERSION}-onnx{onnx_version}-{sha256}"


def optimize(data: bytes, sha256: str, cache_dir: Path | None) -> tuple[bytes, list[str]]:
    """(model bytes to load, rewrites applied) for ``data``, whose verified sha256 is
    ``sha256``; ``cache_dir`` None checks the graph every time."""
    marker = _marker(cache_dir, sha256) if cache_dir is not None else None
    if marker is not None and marker.is_file():
        return data, []
    from inference import rewrite  # imports onnx

    out = rewrite.optimize(data)
    if marker is not None and not out.changes:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as exc:  # a read-only cache only costs the check next time
            log.debug("could not remember an unchanged graph in %s: %s", marker.parent, exc)
    return out.data, out.changes
