"""``lucida view … --screenshot``: a real subprocess renders a real series under Xvfb."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _env(tmp_path: Path, library: Path, *, display: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    home = tmp_path / "home"
    for sub in (".config", ".cache", ".local/share"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CACHE_HOME=str(home / ".cache"), LUCIDA_LIBRARY=str(library))
    env.pop("QT_QPA_PLATFORM", None)
    if not display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    return env


def _lucida(*args: str, env: dict[str, str],
            timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])


def _read_png(path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull()
    w, h = image.width(), image.height()
    raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return raw.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


@pytest.mark.gui
def test_view_demo_writes_a_screenshot_of_the_requested_size(tmp_path: Path,
                                                             display: None) -> None:
    library = tmp_path / "library"
    out = tmp_path / "shots" / "demo.png"
    result = _lucida("view", "demo", "--layout", "1x3", "--preset", "lung", "--size", "1280x800",
                     "--screenshot", str(out), env=_env(tmp_path, library))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.is_file() and out.stat().st_size > 10_000
    pixels = _read_png(out)
    assert pixels.shape == (800, 1280, 3)
    # The viewing area (the middle of the window, between the docks) shows an image:
    # neither uniformly black nor uniform at all.
    viewport = pixels[200:600, 420:860].astype(np.float64)
    assert viewport.max() > 100
    assert viewport.std() > 15
    # The scripted view did not change the user's remembered settings.
    assert not (library / "window-state.ini").exists()


def test_view_without_display_fails_with_a_clear_message(tmp_path: Path) -> None:
    library = tmp_path / "library"
    result = _lucida("view", "demo", "--screenshot", str(tmp_path / "x.png"),
                     env=_env(tmp_path, library, display=False))
    assert result.returncode == 2
    assert "no display" in result.stderr and "xvfb-run" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_view_rejects_bad_arguments_before_opening_anything(tmp_path: Path) -> None:
    env = _env(tmp_path, tmp_path / "library", display=False)
    for args, fragment in ((("--size", "big"), "--size"), (("--at", "1,2"), "--at"),
                           (("--preset", "purple"), "unknown preset")):
        result = _lucida("view", "1", *args, "--screenshot", str(tmp_path / "x.png"), env=env)
        assert result.returncode == 2, args
        assert fragment in result.stderr, (args, result.stderr)
