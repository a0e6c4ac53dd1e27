"""`lucida view --screenshot` on a full disk: the previous picture survives, nothing half-written.

A real `lucida view` process renders into Xvfb and writes its PNG onto a small
tmpfs that is full (tests/fs_limits.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series
from tests.fs_limits import run_with_full_disk

pytestmark = pytest.mark.gui


def test_a_screenshot_that_does_not_fit_leaves_the_previous_one(
        display: None, tmp_path: Path, library_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Noise: a PNG of it does not compress, so it cannot fit in the space left.
    array = np.random.default_rng(3).integers(-1000, 1500, size=(16, 128, 128)).astype(np.int16)
    write_series(Volume(array, np.diag([2.0, 1.0, 1.0, 1.0])), tmp_path / "src",
                 SeriesInfo(series_description="Noise"), rescale_intercept=-1024.0)
    assert main(["import", str(tmp_path / "src")]) == 0
    capsys.readouterr()
    previous = b"\x89PNG\r\n\x1a\n the screenshot from yesterday"
    (library_dir / "shot.png").write_bytes(previous)

    mount = tmp_path / "small-disk"
    env = {**os.environ, "LUCIDA_LIBRARY": str(mount)}
    result = run_with_full_disk(
        library_dir, mount,
        [sys.executable, "-m", "app.cli", "view", "1", "--layout", "1x1", "--size", "1200x900",
         "--screenshot", str(mount / "shot.png")],
        env=env, reserve_bytes=160 * 1024, read_back=("shot.png",), timeout=240)
    assert result["rc"] == 2, (result["stdout"], result["stderr"])
    assert f"error: could not write {mount / 'shot.png'}" in str(result["stderr"])
    files = result["files"]
    assert isinstance(files, dict)
    assert files["shot.png"] == previous.hex(), "the previous screenshot was destroyed"
    names = result["names"]
    assert isinstance(names, list)
    assert not [n for n in names if n.startswith(".lucida-partial-")], names
