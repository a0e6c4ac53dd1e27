"""inference.rewrite_cache: a model with nothing to rewrite is remembered by its sha256, so
later runs load it without importing onnx; a rewritten graph is never taken from the cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume
from inference import rewrite_cache, run

from .test_rewrite import prelu_model

REPO = Path(__file__).resolve().parents[2]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_unchanged_model_is_remembered_and_rewritten_one_is_not(
        tmp_path: Path, models: dict[str, Any]) -> None:
    plain = models["identity"]()
    data, changes = rewrite_cache.optimize(plain, _sha(plain), tmp_path)
    assert (data, changes) == (plain, [])
    [marker] = tmp_path.iterdir()
    assert marker.name.endswith(_sha(plain)) and marker.stat().st_size == 0

    prelu = prelu_model(np.array(0.5, np.float32))
    for _ in range(2):
        data, changes = rewrite_cache.optimize(prelu, _sha(prelu), tmp_path)
        assert changes == ["1 PRelu with a single slope run as LeakyRelu"] and data != prelu
    assert [p.name for p in tmp_path.iterdir()] == [marker.name]  # nothing kept for it


def test_marker_of_other_rewrites_version_is_ignored(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A marker written before a rewrite was added must not hide the new rewrite."""
    prelu = prelu_model(np.array(0.5, np.float32))
    monkeypatch.setattr(rewrite_cache, "REWRITES_VERSION", 1)
    old = rewrite_cache._marker(tmp_path, _sha(prelu))
    old.touch()  # as if an older Lucida had found nothing to rewrite in it
    monkeypatch.undo()
    data, changes = rewrite_cache.optimize(prelu, _sha(prelu), tmp_path)
    assert changes and data != prelu


def test_cache_hit_loads_without_onnx(tmp_path: Path, models: dict[str, Any]) -> None:
    """In a fresh interpreter (as a spawned worker is) a remembered model needs no onnx."""
    plain = models["identity"]()
    rewrite_cache.optimize(plain, _sha(plain), tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(plain)
    code = (
        "import sys, hashlib, pathlib\n"
        "from inference import rewrite_cache\n"
        f"data = pathlib.Path({str(model)!r}).read_bytes()\n"
        f"out = rewrite_cache.optimize(data, hashlib.sha256(data).hexdigest(), "
        f"pathlib.Path({str(tmp_path)!r}))\n"
        "assert out == (data, []), out\n"
        "print('onnx' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True)
    assert done.stdout.strip() == "False"


def test_unwritable_cache_only_costs_the_check(tmp_path: Path, models: dict[str, Any]) -> None:
    plain = models["identity"]()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert rewrite_cache.optimize(plain, _sha(plain), blocker / "cache") == (plain, [])


def test_pipeline_uses_the_cache(tmp_path: Path, make_pack: Any,
                                 models: dict[str, Any]) -> None:
    pack = make_pack(models["identity"](), tiling={"mode": "whole"})
    cache = tmp_path / "rewrites"
    vol = Volume(np.random.default_rng(2).normal(size=(9, 8, 7)).astype(np.float32),
                 np.diag([0.7, 0.8, 1.3, 1.0]), modality="CT")
    first = run(vol, pack, threads=1, rewrite_cache=cache)
    digest = first.provenance["model"]["files"]["model.onnx"]
    assert [p.name.endswith(digest) for p in cache.iterdir()] == [True]
    second = run(vol, pack, threads=1, rewrite_cache=cache)
    assert second.provenance["graph_rewrites"] == []
    np.testing.assert_array_equal(second.label_map.array, first.label_map.array)
