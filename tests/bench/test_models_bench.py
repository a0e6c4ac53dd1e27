"""bench/models.py's pure helpers and the drivers' network guard (no timing, no models)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_models", BENCH / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


bm = _load()


def test_arguments_default_to_every_family_and_refuse_bad_values() -> None:
    args = bm.parse_args([])
    assert args.family == ["brainchop", "deepbet", "blast-ct"]
    assert (args.threads, args.repeat, args.members) == (2, 1, 6)
    args = bm.parse_args(["--family", "blast-ct", "--family", "brainchop", "--family",
                          "blast-ct", "--members", "2", "--threads", "1"])
    assert args.family == ["blast-ct", "brainchop"]  # order kept, duplicate dropped
    assert (args.members, args.threads) == (2, 1)
    for bad in (["--members", "7"], ["--members", "0"], ["--threads", "0"],
                ["--family", "monai"], ["--blast-mm", "5"]):
        with pytest.raises(SystemExit):
            bm.parse_args(bad)


def test_thread_env_limits_every_runtime() -> None:
    env = bm.thread_env(3)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUM_CPU_THREADS"):
        assert env[key] == "3"


def test_agreement_metrics_on_small_arrays() -> None:
    a = np.zeros((2, 3, 4), dtype=np.uint8)
    b = a.copy()
    a[0, 0, :3] = 1  # 3 voxels
    b[0, 0, 1:] = 2  # 3 voxels, 2 of them overlapping a's
    assert bm.label_agreement(a, b) == pytest.approx(20 / 24)
    assert bm.label_agreement(a, a) == 1.0
    assert bm.dice(a, b) == pytest.approx(2 * 2 / 6)  # non-zero = mask, labels aside
    assert bm.dice(np.zeros(3), np.zeros(3)) == 1.0
    assert bm.dice(a, np.zeros_like(a)) == 0.0
    h = np.zeros((2, 2), dtype=np.float32)
    g = h.copy()
    g[1, 0] = -0.5
    assert bm.abs_diff(h, g) == (pytest.approx(0.5), pytest.approx(0.125))
    with pytest.raises(bm.BenchError, match="different grids"):
        bm.label_agreement(a, a[:1])


def test_ratio_lines_say_met_or_missed() -> None:
    assert bm.ratio_line("time", 10.0, 40.0, 0.5) == (
        "time Lucida/theirs 0.25 (4.00x faster), target <= 0.50: met")
    assert bm.ratio_line("memory", 720.0, 1000.0, 0.7).endswith("target <= 0.70: MISSED")
    assert bm.ratio_line("memory", 700.0, 1000.0, 0.7).endswith(": met")
    assert "n/a" in bm.ratio_line("time", 1.0, 0.0, 0.5)


def test_median_run_takes_each_figure_separately() -> None:
    runs = [bm.Run(10.0, 9.0, 500.0), bm.Run(30.0, 8.0, 700.0), bm.Run(20.0, 7.0, 600.0)]
    med = bm.median_run(runs)
    assert (med.wall_s, med.seconds, med.peak_rss_mb) == (20.0, 8.0, 600.0)


def test_centred_block_in_mm_on_an_anisotropic_grid() -> None:
    lo, hi = bm.centred_block((37, 610, 512), (4.0, 0.5, 0.5), 60.0)
    assert lo == (11, 245, 196) and hi == (26, 365, 316)  # 15 slices, 120 x 120 pixels
    lo, hi = bm.centred_block((5, 10, 10), (4.0, 1.0, 1.0), 60.0)  # clamped to the grid
    assert lo == (0, 0, 0) and hi == (5, 10, 10)


def test_pack_with_fewer_members(tmp_path: Path) -> None:
    files = [{"path": f"member_{n}.onnx", "sha256": str(n) * 64} for n in range(1, 7)]
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"id": "blast-ct", "files": files, "ensemble": {"combine": "mean"}}))
    assert bm._pack_with_members(tmp_path, 6) == tmp_path
    assert len(json.loads((tmp_path / "manifest.json").read_text())["files"]) == 6
    bm._pack_with_members(tmp_path, 2)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert [f["path"] for f in m["files"]] == ["member_1.onnx", "member_2.onnx"]
    assert m["id"] == "blast-ct-2m" and m["ensemble"] == {"combine": "mean"}
    bm._pack_with_members(tmp_path, 1)
    assert "ensemble" not in json.loads((tmp_path / "manifest.json").read_text())


def test_drivers_refuse_the_network_but_not_local_sockets() -> None:
    code = (
        "import socket, sys, urllib.request\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "from _author_common import forbid_network\n"
        "forbid_network()\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "a, b = socket.socketpair(); a.close(); b.close()\n"
        "urllib.request.urlopen('https://raw.githubusercontent.com/x', timeout=5)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    assert "network access attempted" in proc.stderr
