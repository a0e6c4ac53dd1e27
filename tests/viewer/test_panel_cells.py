"""ViewerPanel.set_cells: the same plane twice with its own window per cell, the rest linked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.volume import Label, LabelMap, Volume

SHOTS = Path("/tmp/shots18/h4")


def send_mouse(widget: object, kind: QEvent.Type, x: float, y: float,
               button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
    p = QPointF(x, y)
    ev = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons,  # type: ignore[attr-defined]
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget: object, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A left-button window drag as real QMouseEvents: press, five moves, release."""
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send_mouse(widget, QEvent.Type.MouseButtonPress, *start, left, left)
    for t in np.linspace(0, 1, 6)[1:]:
        send_mouse(widget, QEvent.Type.MouseMove, start[0] + (end[0] - start[0]) * t,
                   start[1] + (end[1] - start[1]) * t, none, left)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, *end, left, none)


def screen_point(view: object, centre_lps: np.ndarray, right_mm: float,
                 up_mm: float) -> tuple[float, float]:
    cx, cy = view.lps_to_display(centre_lps)  # type: ignore[attr-defined]
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    ppm = view.height() / (2.0 * scale)  # type: ignore[attr-defined]
    return cx + right_mm * ppm, cy - up_mm * ppm


def predicted(value: float, width: float, level: float) -> float:
    return float(np.clip((value - (level - width / 2)) / width, 0, 1) * 255)


def grey_at(grab: Callable[[object], np.ndarray], view: object,
            xy: tuple[float, float]) -> float:
    arr = grab(view)
    x, y = round(xy[0]), round(xy[1])
    return float(np.median(arr[y - 1: y + 2, x - 1: x + 2, 0]))


@pytest.fixture
def two_cells(panel: object, phantom_factory: Callable[[str], Volume]) -> tuple[object, Volume]:
    vol = phantom_factory("axial")
    panel.resize(1200, 520)  # type: ignore[attr-defined]
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_cells([("axial", "lung"), ("axial", "mediastinum")], grid=(1, 2))  # type: ignore[attr-defined]
    return panel, vol


@pytest.mark.gui
def test_two_axial_cells_show_their_own_windows(
        two_cells: tuple[object, Volume], grab: Callable[[object], np.ndarray],
        save: Callable[[np.ndarray, object], None]) -> None:
    panel, vol = two_cells
    lung, mediastinum = panel.cells()  # type: ignore[attr-defined]
    assert lung.plane == mediastinum.plane == "axial" and lung is not mediastinum
    assert lung.isVisible() and mediastinum.isVisible()
    assert lung.x() < mediastinum.x() and lung.y() == mediastinum.y()  # side by side
    assert panel.layout_name() == "cells"  # type: ignore[attr-defined]
    assert panel.cell_window_levels() == [(1500.0, -600.0), (350.0, 50.0)]  # type: ignore[attr-defined]
    # The tissue (40 HU) is light in the lung window, mid-grey in the mediastinal one.
    for view, (w, lev) in zip((lung, mediastinum), [(1500.0, -600.0), (350.0, 50.0)],
                              strict=True):
        xy = screen_point(view, vol.center_lps(), -20.0, -20.0)
        assert grey_at(grab, view, xy) == pytest.approx(predicted(40, w, lev), abs=3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(grab(panel), SHOTS / "panel_cells_lung_mediastinum.png")
    # Back to a named layout: the extra view goes, the three planes share one window again.
    panel.set_layout("1x3")  # type: ignore[attr-defined]
    assert panel.cells() == []  # type: ignore[attr-defined]
    assert sorted(panel.visible_view_names()) == ["axial", "coronal", "sagittal"]  # type: ignore[attr-defined]
    panel.set_window_level(200.0, 0.0)  # type: ignore[attr-defined]
    assert {(v.window_level.width, v.window_level.level)
            for v in panel.slice_views().values()} == {(200.0, 0.0)}  # type: ignore[attr-defined]


@pytest.mark.gui
def test_window_drag_and_preset_key_change_one_cell_only(
        two_cells: tuple[object, Volume], grab: Callable[[object], np.ndarray]) -> None:
    panel, vol = two_cells
    lung, mediastinum = panel.cells()  # type: ignore[attr-defined]
    seen: list[tuple[float, float]] = []
    panel.window_level_changed.connect(lambda w, lev: seen.append((w, lev)))  # type: ignore[attr-defined]
    x, y = mediastinum.width() / 2, mediastinum.height() / 2
    drag(mediastinum, (x, y), (x + 90, y + 30))
    (lw, ll), (mw, ml) = panel.cell_window_levels()  # type: ignore[attr-defined]
    assert (lw, ll) == (1500.0, -600.0)
    assert mw > 350.0 and ml < 50.0 and seen and seen[-1] == (mw, ml)
    xy = screen_point(lung, vol.center_lps(), -20.0, -20.0)
    assert grey_at(grab, lung, xy) == pytest.approx(predicted(40, 1500.0, -600.0), abs=3)
    xy = screen_point(mediastinum, vol.center_lps(), -20.0, -20.0)
    assert grey_at(grab, mediastinum, xy) == pytest.approx(predicted(40, mw, ml), abs=3)
    # Key 1 (brain) in the lung cell changes that cell only.
    QTest.keyClick(lung, Qt.Key.Key_1)
    assert panel.cell_window_levels() == [(80.0, 40.0), (mw, ml)]  # type: ignore[attr-defined]
    # The toolbar's preset goes to the cell last clicked.
    assert panel.active_cell() == 0  # type: ignore[attr-defined]
    QTest.mouseClick(mediastinum, Qt.MouseButton.LeftButton)
    assert panel.active_cell() == 1  # type: ignore[attr-defined]
    panel.set_preset("bone")  # type: ignore[attr-defined]
    assert panel.cell_window_levels() == [(80.0, 40.0), (1800.0, 400.0)]  # type: ignore[attr-defined]
    assert panel.window_level_values() == (1800.0, 400.0)  # type: ignore[attr-defined]


@pytest.mark.gui
def test_scrolling_cursor_and_slab_stay_linked(two_cells: tuple[object, Volume]) -> None:
    panel, vol = two_cells
    lung, mediastinum = panel.cells()  # type: ignore[attr-defined]
    start = lung.slice_index()
    QTest.keyClick(mediastinum, Qt.Key.Key_PageDown)
    QTest.keyClick(mediastinum, Qt.Key.Key_PageDown)
    assert mediastinum.slice_index() != start
    assert lung.slice_index() == mediastinum.slice_index()
    np.testing.assert_allclose(lung.slice_point_lps(), mediastinum.slice_point_lps())
    target = vol.center_lps() + np.array([0.0, 0.0, 20.0])
    panel.set_cursor_lps(target)  # type: ignore[attr-defined]
    assert lung.slice_position_mm() == pytest.approx(mediastinum.slice_position_mm())
    assert lung.slice_position_mm() == pytest.approx(target[2], abs=1.0)
    assert lung.slab is mediastinum.slab and lung.findings is mediastinum.findings
    # Zoom and pan in one cell: the other cell of the same plane shows the same part.
    mediastinum.set_zoom(2.5)
    assert lung.zoom_factor() == pytest.approx(2.5, rel=1e-3)
    lung.pan_mm(12.0, -7.0)
    centre = (lung.width() / 2, lung.height() / 2)
    np.testing.assert_allclose(lung.display_to_lps(*centre),
                               mediastinum.display_to_lps(*centre), atol=0.5)
    assert mediastinum.zoom_factor() == pytest.approx(2.5, rel=1e-3)
    assert lung.measurements is mediastinum.measurements


@pytest.mark.gui
def test_extra_cells_get_overlays_tools_and_identity(
        panel: object, phantom_factory: Callable[[str], Volume]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    labels = LabelMap((vol.array > 200).astype(np.uint8), vol.affine,
                      [Label(1, "bright", (255, 0, 0))])
    panel.add_label_overlay("before", labels)  # type: ignore[attr-defined]
    panel.set_identity_visible(False)  # type: ignore[attr-defined]
    panel.set_tool("distance")  # type: ignore[attr-defined]
    panel.set_crosshair_visible(False)  # type: ignore[attr-defined]
    panel.set_cells([("axial", None), ("coronal", "bone"), ("axial", "auto")],  # type: ignore[attr-defined]
                    grid=(2, 2))
    first, coronal, third = panel.cells()  # type: ignore[attr-defined]
    assert first is panel.slice_views()["axial"]  # type: ignore[attr-defined]
    assert coronal.plane == "coronal" and coronal is not panel.slice_views()["coronal"]  # type: ignore[attr-defined]
    assert third.y() > first.y()                     # third cell on the second row
    for view in (coronal, third):
        assert view.overlay_names() == ["before"]
        assert view.tool == "distance" and view.identity_visible is False
        assert view.crosshair_visible is False
    panel.add_label_overlay("after", labels)  # type: ignore[attr-defined]
    panel.set_overlay_style("after", opacity=0.2)  # type: ignore[attr-defined]
    assert coronal.overlay_names() == ["before", "after"]
    assert coronal.overlay_style("after").opacity == pytest.approx(0.2)
    panel.remove_overlay("before")  # type: ignore[attr-defined]
    assert third.overlay_names() == ["after"]
    # "default" keeps the series' window (CT: mediastinum); "auto" is percentiles.
    (w0, l0), (w1, l1), (w2, l2) = panel.cell_window_levels()  # type: ignore[attr-defined]
    assert (w0, l0) == (350.0, 50.0) and (w1, l1) == (1800.0, 400.0)
    assert third.window_level.preset == "auto" and (w2, l2) != (w0, l0)


@pytest.mark.gui
def test_bad_cells_are_refused(panel: object) -> None:
    with pytest.raises(ValueError, match="no room"):
        panel.set_cells([("axial", None)] * 3, grid=(1, 2))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown preset"):
        panel.set_cells([("axial", "lungs")])  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="plane name"):
        panel.set_cells([("oblique", None)])  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="one cell"):
        panel.set_cells([("3d", None), ("3d", None)])  # type: ignore[attr-defined]
    assert panel.layout_name() == "1x3"  # type: ignore[attr-defined]
