"""Lucida's windows carry its own icon (title bar, task bar, Alt+Tab), drawn from
resources/icons/lucida.svg by Qt's SVG support: checked on a real MainWindow under Xvfb
at known points of the drawing, and on the QApplication that ``lucida`` makes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_app_icon_is_the_installers_drawing() -> None:
    """One picture: the desktop menu (the .deb's icon) and the window show the same."""
    from app.icon import ICON_FILE

    assert ICON_FILE.read_bytes() == (REPO / "packaging" / "linux" / "lucida.svg").read_bytes()


@pytest.mark.gui
def test_main_window_icon_is_drawn_from_the_svg(make_window: Any, library_dir: Path) -> None:
    window = make_window(library_dir)
    icon = window.windowIcon()
    assert not icon.isNull()
    image = icon.pixmap(256, 256).toImage()
    assert (image.width(), image.height()) == (256, 256)

    def rgb(x: int, y: int) -> tuple[int, int, int]:
        colour = image.pixelColor(x, y)
        return colour.red(), colour.green(), colour.blue()

    def near(got: tuple[int, int, int], want: str) -> bool:
        wanted = tuple(int(want[i:i + 2], 16) for i in (1, 3, 5))
        return all(abs(a - b) <= 12 for a, b in zip(got, wanted, strict=True))

    assert image.pixelColor(2, 2).alpha() == 0  # outside the rounded tile: transparent
    assert near(rgb(20, 100), "#1e2127")  # the dark tile
    assert near(rgb(94, 100), "#1e2127")  # inside the left lung
    assert near(rgb(110, 66), "#c9ccd1")  # the body's bright rim
    red, _green, blue = rgb(128, 40)  # the accent-blue crosshair (90 % over the tile)
    assert blue > 200 and red < 100
    assert near(rgb(110, 80), "#7d828b")  # soft tissue between rim and lungs


def test_the_application_made_by_lucida_has_the_icon_and_the_file_open_filter(
        tmp_path: Path) -> None:
    """``make_application`` (what ``lucida`` starts with), in a fresh process: the icon is set
    for every window and macOS's FileOpen events have their filter."""
    script = (
        "from app.gui import make_application\n"
        "from app.open_paths import FileOpenFilter\n"
        "app = make_application()\n"
        "print(app.windowIcon().isNull(), app.findChild(FileOpenFilter) is not None)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
