"""Linked crosshair, scrolling by one slice spacing, window/level — through real Qt events."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.volume import Volume

LEFT = np.array([30.0, 0.0, 0.0])
ANTERIOR = np.array([0.0, -30.0, 0.0])


def send_mouse(widget: object, kind: QEvent.Type, x: float, y: float,
               button: Qt.MouseButton, buttons: Qt.MouseButton,
               modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    p = QPointF(x, y)
    ev = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons, modifiers)  # type: ignore[attr-defined]
    QApplication.sendEvent(widget, ev)


def drag(widget: object, start: tuple[float, float], end: tuple[float, float],
         button: Qt.MouseButton = Qt.MouseButton.LeftButton, steps: int = 5) -> None:
    """Press, move in steps and release, as real QMouseEvents."""
    send_mouse(widget, QEvent.Type.MouseButtonPress, *start, button, button)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        x = start[0] + (end[0] - start[0]) * t
        y = start[1] + (end[1] - start[1]) * t
        send_mouse(widget, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, button)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, *end, button, Qt.MouseButton.NoButton)


def screen_point(view: object, centre_lps: np.ndarray, right_mm: float,
                 up_mm: float) -> tuple[float, float]:
    cx, cy = view.lps_to_display(centre_lps)  # type: ignore[attr-defined]
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    ppm = view.height() / (2.0 * scale)  # type: ignore[attr-defined]
    return cx + right_mm * ppm, cy - up_mm * ppm


def non_grey_positions(line: np.ndarray) -> np.ndarray:
    """Indices along a pixel line whose colour is clearly not grey (crosshair lines)."""
    spread = line.max(axis=1).astype(int) - line.min(axis=1).astype(int)
    return np.nonzero(spread > 40)[0]


@pytest.mark.gui
def test_crosshair_lands_on_the_same_point_in_all_views(
        panel: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray],
        centroid: Callable[..., tuple[float, float, int]]) -> None:
    vol = phantom_factory("flipped")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    target = vol.center_lps() + LEFT           # centre of the bright (left) sphere
    panel.set_cursor_lps(target)  # type: ignore[attr-defined]
    for name, view in panel.slice_views().items():  # type: ignore[attr-defined]
        view.image_actor.GetProperty().SetInterpolationTypeToNearest()
        arr = grab(view)
        x, y = view.lps_to_display(target)
        # The shown slice contains the target (the bright sphere is cut through its centre).
        bx, by, count = centroid(arr, 240, 255)
        assert count > 50, f"{name}: bright sphere not visible"
        assert abs(bx - x) < 2.0 and abs(by - y) < 2.0, f"{name}: sphere {bx, by} vs cursor {x, y}"
        # The two crosshair lines cross exactly there.
        h, w, _ = arr.shape
        row = round(y) + 60 if y + 60 < h - 40 else round(y) - 60
        col = round(x) + 60 if x + 60 < w - 40 else round(x) - 60
        xs = non_grey_positions(arr[row, 40: w - 40]) + 40
        ys = non_grey_positions(arr[40: h - 40, col]) + 40
        assert xs.size and np.all(np.abs(xs - x) <= 1.5), f"{name}: vertical line at {xs}"
        assert ys.size and np.all(np.abs(ys - y) <= 1.5), f"{name}: horizontal line at {ys}"
        # The slice index is the voxel nearest the target along the view's axis.
        g = view.geometry_
        expected = int(np.rint(vol.lps_to_index(target)[g.aligned_axis]))
        assert view.slice_index() == expected


@pytest.mark.gui
def test_click_moves_the_other_views(panel: object, phantom_factory: Callable[[str], Volume],
                                     gui: object) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    axial, coronal = views["axial"], views["coronal"]
    before = coronal.slice_index()
    x, y = screen_point(axial, vol.center_lps(), 0.0, 30.0)    # the anterior sphere
    QTest.mouseClick(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(round(x), round(y)))
    cursor = panel.cursor_lps()  # type: ignore[attr-defined]
    px_mm = 2.0 * axial.renderer.GetActiveCamera().GetParallelScale() / axial.height()
    assert np.allclose(cursor[:2], (vol.center_lps() + ANTERIOR)[:2], atol=px_mm)
    expected = int(np.rint(vol.lps_to_index(cursor)[coronal.geometry_.aligned_axis]))
    assert coronal.slice_index() == expected != before
    # Shift+drag drags the crosshair continuously.
    x2, y2 = screen_point(axial, vol.center_lps(), 20.0, -10.0)
    send_mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton,
               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    send_mouse(axial, QEvent.Type.MouseMove, x2, y2, Qt.MouseButton.NoButton,
               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    send_mouse(axial, QEvent.Type.MouseButtonRelease, x2, y2, Qt.MouseButton.LeftButton,
               Qt.MouseButton.NoButton, Qt.KeyboardModifier.ShiftModifier)
    cursor = panel.cursor_lps()  # type: ignore[attr-defined]
    assert np.allclose(cursor[:2], (vol.center_lps() + np.array([20.0, 10.0, 0.0]))[:2], atol=px_mm)


@pytest.mark.gui
@pytest.mark.parametrize("kind", ["axial", "flipped", "sagittal"])
def test_scroll_moves_exactly_one_slice_spacing(panel: object,
                                                phantom_factory: Callable[[str], Volume],
                                                kind: str) -> None:
    vol = phantom_factory(kind)
    panel.set_volume(vol)  # type: ignore[attr-defined]
    for name, view in panel.slice_views().items():  # type: ignore[attr-defined]
        g = view.geometry_
        start = panel.cursor_lps()  # type: ignore[attr-defined]
        idx0 = view.slice_index()
        pos0 = view.slice_position_mm()
        number0 = view.display_slice_number()
        QTest.keyClick(view, Qt.Key.Key_PageDown)
        assert view.display_slice_number() == number0 + 1, name
        moved = panel.cursor_lps() - start  # type: ignore[attr-defined]
        assert np.linalg.norm(moved) == pytest.approx(g.step_mm, abs=1e-9), name
        assert np.allclose(moved / g.step_mm, g.normal), f"{name}: +1 goes towards the viewer"
        assert abs(view.slice_index() - idx0) == 1
        assert abs(view.slice_position_mm() - pos0) == pytest.approx(g.step_mm)
        QTest.keyClick(view, Qt.Key.Key_PageUp)
        assert np.allclose(panel.cursor_lps(), start)  # type: ignore[attr-defined]
        # One wheel notch back (away from the viewer) = one slice the other way.
        centre = QPointF(view.width() / 2, view.height() / 2)
        wheel = QWheelEvent(centre, view.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(view, wheel)
        moved = panel.cursor_lps() - start  # type: ignore[attr-defined]
        assert np.allclose(moved, -g.step_mm * g.normal), name
        panel.set_cursor_lps(start)  # type: ignore[attr-defined]


@pytest.mark.gui
def test_scroll_is_clamped_at_the_last_slice(panel: object,
                                             phantom_factory: Callable[[str], Volume]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    view.scroll_slices(1000)
    last = view.slice_index()
    assert last in (0, vol.shape[0] - 1)
    view.scroll_slices(1)
    assert view.slice_index() == last


@pytest.mark.gui
def test_window_level_changes_rendered_grey_as_predicted(
        panel: object, phantom_factory: Callable[[str], Volume],
        grab: Callable[[object], np.ndarray]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    tissue_xy = screen_point(view, vol.center_lps(), -20.0, -20.0)   # value 40
    air_xy = screen_point(view, vol.center_lps(), -48.5, -10.0)      # value 0

    def grey_at(xy: tuple[float, float]) -> float:
        arr = grab(view)
        x, y = round(xy[0]), round(xy[1])
        return float(np.median(arr[y - 1: y + 2, x - 1: x + 2, 0]))

    def predicted(value: float, width: float, level: float) -> float:
        return float(np.clip((value - (level - width / 2)) / width, 0, 1) * 255)

    for width, level in [(200.0, 0.0), (100.0, 60.0), (80.0, 40.0), (1500.0, -600.0)]:
        panel.set_window_level(width, level)  # type: ignore[attr-defined]
        assert grey_at(tissue_xy) == pytest.approx(predicted(40, width, level), abs=3)
        assert grey_at(air_xy) == pytest.approx(predicted(0, width, level), abs=3)
    # Preset by number key: 4 = lung.
    QTest.keyClick(view, Qt.Key.Key_4)
    assert panel.window_level_values() == (1500.0, -600.0)  # type: ignore[attr-defined]
    # Left drag: right widens the window, up raises… down lowers the level.
    panel.set_window_level(200.0, 0.0)  # type: ignore[attr-defined]
    seen: list[tuple[float, float]] = []
    panel.window_level_changed.connect(lambda w, lev: seen.append((w, lev)))  # type: ignore[attr-defined]
    x, y = view.width() / 2, view.height() / 2
    drag(view, (x, y), (x + 90, y + 30))
    width, level = panel.window_level_values()  # type: ignore[attr-defined]
    assert width > 200.0 and level < 0.0 and seen[-1] == (width, level)
    assert grey_at(tissue_xy) == pytest.approx(predicted(40, width, level), abs=3)


@pytest.mark.gui
def test_zoom_pan_and_reset(panel: object, phantom_factory: Callable[[str], Volume]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    centre = view.lps_to_display(vol.center_lps())
    x, y = view.width() / 2, view.height() / 2
    drag(view, (x, y), (x, y - 100), button=Qt.MouseButton.RightButton)
    assert view.zoom_factor() > 1.5
    assert "Zoom" in view.corner_texts()["bottom_right"]
    drag(view, (x, y), (x + 40, y + 20), button=Qt.MouseButton.MiddleButton)
    moved = view.lps_to_display(vol.center_lps())
    assert moved[0] - centre[0] == pytest.approx(40, abs=1.5)
    assert moved[1] - centre[1] == pytest.approx(20, abs=1.5)
    QTest.keyClick(view, Qt.Key.Key_R)
    assert view.zoom_factor() == pytest.approx(1.0)
    assert np.allclose(view.lps_to_display(vol.center_lps()), centre, atol=0.5)


@pytest.mark.gui
def test_number_keys_on_mr_choose_windows_from_the_volume_never_hu(
        panel: object, phantom_factory: Callable[[str], Volume]) -> None:
    """A view nobody watches (a comparison pane's) maps the number keys by modality too:
    on MR, 4 (CT "lung") changes nothing, 2 is the "tissue" window computed from the
    volume; a cell layout may ask for that window by name."""
    from viewer.presets import PRESETS, relative_window

    ct = phantom_factory("axial")
    rng = np.random.default_rng(7)
    mr = Volume((rng.random(ct.shape) * 900.0 + 100.0).astype(np.float32), ct.affine,
                modality="MR")
    mr.array[:, :4, :] = 0.0  # background
    panel.set_volume(mr)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    panel.set_window_level(123.0, 456.0)  # type: ignore[attr-defined]
    QTest.keyClick(view, Qt.Key.Key_4)
    assert panel.window_level_values() == (123.0, 456.0)  # type: ignore[attr-defined]
    assert (PRESETS["lung"].width, PRESETS["lung"].level) != (123.0, 456.0)
    QTest.keyClick(view, Qt.Key.Key_2)
    assert panel.window_level_values() == pytest.approx(  # type: ignore[attr-defined]
        relative_window("tissue", mr.array))
    panel.set_cells([("axial", "tissue"), ("coronal", "bright")], grid=(1, 2))  # type: ignore[attr-defined]
    windows = panel.cell_window_levels()  # type: ignore[attr-defined]
    assert windows[0] == pytest.approx(relative_window("tissue", mr.array))
    assert windows[1] == pytest.approx(relative_window("bright", mr.array))
