"""The crosshair can be hidden (panel, View menu, key C) and never runs through the
orientation letters: checked on screenshots of real views."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from core.volume import Volume
from viewer.slice_view import LETTER_GAP_PX, PLANE_COLOURS

SHOTS = Path("/tmp/shots18/h5")


def crosshair_mask(arr: np.ndarray, plane: str) -> np.ndarray:
    """Pixels of the colours of the two crosshair lines shown in ``plane``'s view."""
    mask = np.zeros(arr.shape[:2], dtype=bool)
    for other, colour in PLANE_COLOURS.items():
        if other == plane:
            continue
        rgb = np.array([int(c * 255) for c in colour])
        mask |= np.all(np.abs(arr.astype(int) - rgb) <= 14, axis=2)
    return mask


def box_in_image(view: Any, box: tuple[float, float, float, float],
                 arr: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of a display-pixel box (VTK's, y up) in a screenshot of ``view``."""
    h, w = arr.shape[:2]
    x0, x1, y0, y1 = box
    rows = slice(max(0, int(h - y1)), min(h, int(np.ceil(h - y0))))
    cols = slice(max(0, int(x0)), min(w, int(np.ceil(x1))))
    return rows, cols


@pytest.fixture
def shown(panel: Any, phantom_factory: Callable[[str], Volume]) -> Any:
    panel.set_volume(phantom_factory("axial"))
    panel.set_window_level(1000, 500)
    QApplication.processEvents()
    return panel


@pytest.mark.gui
def test_crosshair_stops_short_of_every_orientation_letter(
        shown: Any, grab: Callable[[Any], np.ndarray], save: Callable[..., None]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for plane, view in shown.slice_views().items():
        arr = grab(view)
        save(arr, SHOTS / f"crosshair_{plane}.png")
        line = crosshair_mask(arr, plane)
        assert line.sum() > 200, f"{plane}: no crosshair drawn"
        boxes = view.letter_boxes_px()
        assert len(boxes) == 4 and set(view.orientation_letters().values()) != {""}
        for box in boxes:
            rows, cols = box_in_image(view, box, arr)
            assert line[rows, cols].sum() == 0, f"{plane}: crosshair through a letter at {box}"
            # Just inside the gap, towards the cursor, the line is there (it stops at the gap).
            x0, x1, y0, y1 = box
            grow = 2.5 * LETTER_GAP_PX
            near = (x0 - grow, x1 + grow, y0 - grow, y1 + grow)
            r2, c2 = box_in_image(view, near, arr)
            assert line[r2, c2].sum() > 0, f"{plane}: the line stops far from {box}"


@pytest.mark.gui
def test_crosshair_toggle_hides_the_lines_in_every_view(
        shown: Any, grab: Callable[[Any], np.ndarray]) -> None:
    views = shown.slice_views()
    shown.set_crosshair_visible(False)
    assert not shown.crosshair_visible()
    for plane, view in views.items():
        assert crosshair_mask(grab(view), plane).sum() == 0, plane
    # The cursor still moves (slices follow) while the lines are hidden.
    before = views["axial"].slice_index()
    shown.set_cursor_lps(shown.cursor_lps() + np.array([0.0, 0.0, 10.0]))
    assert views["axial"].slice_index() != before
    shown.set_crosshair_visible(True)
    for plane, view in views.items():
        assert crosshair_mask(grab(view), plane).sum() > 200, plane


@pytest.mark.gui
def test_key_c_and_the_view_menu_toggle_the_crosshair(
        library_dir: Path, gui: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.main_window import MainWindow
    from app.settings import PREFERENCES_FILE, WINDOW_STATE_FILE, load_preferences

    prefs = library_dir / PREFERENCES_FILE
    window = MainWindow(library_dir, load_preferences(prefs), prefs,
                        library_dir / WINDOW_STATE_FILE, open_demo=False, interactive=False)
    try:
        window.resize(1200, 800)
        window.show()
        gui.waitExposed(window)
        view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
        assert window.act_crosshair in view_menu.actions()
        assert window.act_crosshair.isCheckable() and window.act_crosshair.isChecked()
        axial = window.viewer.slice_views()["axial"]
        window.activateWindow()              # no window manager under Xvfb
        gui.waitUntil(window.isActiveWindow, timeout=5_000)
        axial.setFocus()
        QTest.keyClick(axial, Qt.Key.Key_C)
        assert not window.act_crosshair.isChecked()
        assert not window.viewer.crosshair_visible()
        assert all(not v.crosshair_visible for v in window.viewer.slice_views().values())
        window.act_crosshair.trigger()                     # the menu item
        assert window.viewer.crosshair_visible()
    finally:
        window.close()
        window.deleteLater()
