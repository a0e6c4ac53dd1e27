"""Measurements in mm from voxels: distance by real mouse drag, ROI means, records round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from core.volume import Volume

LEFT = np.array([30.0, 0.0, 0.0])
ANTERIOR = np.array([0.0, -30.0, 0.0])
SUPERIOR = np.array([0.0, 0.0, 30.0])


def send_mouse(widget: object, kind: QEvent.Type, x: float, y: float,
               button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
    p = QPointF(x, y)
    ev = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons,  # type: ignore[attr-defined]
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget: object, start: tuple[float, float], end: tuple[float, float]) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send_mouse(widget, QEvent.Type.MouseButtonPress, *start, left, left)
    for t in (0.25, 0.5, 0.75, 1.0):
        send_mouse(widget, QEvent.Type.MouseMove, start[0] + (end[0] - start[0]) * t,
                   start[1] + (end[1] - start[1]) * t, none, left)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, *end, left, none)


def screen_point(view: object, centre_lps: np.ndarray, right_mm: float,
                 up_mm: float) -> tuple[float, float]:
    cx, cy = view.lps_to_display(centre_lps)  # type: ignore[attr-defined]
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    ppm = view.height() / (2.0 * scale)  # type: ignore[attr-defined]
    return cx + right_mm * ppm, cy - up_mm * ppm


@pytest.fixture
def big_axial(panel: object, phantom_factory: Callable[[str], Volume]) -> tuple[object, Volume]:
    """The panel in 1×1 (axial) at 900×900, showing the axial phantom."""
    vol = phantom_factory("axial")
    panel.set_layout("1x1")  # type: ignore[attr-defined]
    panel.resize(900, 900)  # type: ignore[attr-defined]
    QApplication.processEvents()
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    return panel, vol


@pytest.mark.gui
def test_distance_by_mouse_between_phantom_markers(
        big_axial: tuple[object, Volume], grab: Callable[[object], np.ndarray],
        centroid: Callable[..., tuple[float, float, int]]) -> None:
    panel, _vol = big_axial
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    view.image_actor.GetProperty().SetInterpolationTypeToNearest()
    view.set_crosshair_visible(False)
    arr = grab(view)
    # Find the two markers in the picture, then measure between them with the mouse.
    # Search the middle of the view only (anti-aliased corner text is grey too).
    m = 120
    inner = arr[m:-m, m:-m]
    bright = tuple(v + m if k < 2 else v for k, v in enumerate(centroid(inner, 240, 255)))
    medium = tuple(v + m if k < 2 else v for k, v in enumerate(centroid(inner, 115, 140)))
    assert bright[2] > 100 and medium[2] > 100
    panel.set_tool("distance")  # type: ignore[attr-defined]
    with _wait_changed(panel):
        drag(view, (round(bright[0]), round(bright[1])), (round(medium[0]), round(medium[1])))
    records = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(records) == 1 and records[0]["kind"] == "distance"
    truth = float(np.linalg.norm(LEFT - ANTERIOR))           # 42.43 mm
    assert records[0]["stats"]["length_mm"] == pytest.approx(truth, abs=0.5)
    assert records[0]["label"].endswith(" mm")
    # Both ends lie on the shown axial plane.
    z = view.slice_point_lps()[2]
    assert all(p[2] == pytest.approx(z) for p in records[0]["points_lps_mm"])


class _wait_changed:
    """Context manager asserting that measurements_changed fired."""

    def __init__(self, panel: object) -> None:
        self.panel, self.count = panel, 0

    def __enter__(self) -> _wait_changed:
        self.panel.measurements_changed.connect(self._hit)  # type: ignore[attr-defined]
        return self

    def _hit(self) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.panel.measurements_changed.disconnect(self._hit)  # type: ignore[attr-defined]
        assert self.count >= 1, "measurements_changed was not emitted"


@pytest.mark.gui
def test_roi_means_and_angle(big_axial: tuple[object, Volume]) -> None:
    panel, vol = big_axial
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    c = vol.center_lps()
    # Rectangle in the 40-HU tissue, through the model API in display coordinates.
    a = screen_point(view, c, -25.0, -25.0)
    b = screen_point(view, c, -12.0, -10.0)
    i = view.add_measurement_from_display("rectangle", [a, b])
    rect = panel.measurement_records()[i]  # type: ignore[attr-defined]
    assert rect["stats"]["mean"] == pytest.approx(40.0)
    assert rect["stats"]["sd"] == pytest.approx(0.0)
    assert rect["stats"]["min"] == rect["stats"]["max"] == 40.0
    assert rect["stats"]["unit"] == "HU"
    assert rect["stats"]["area_mm2"] == pytest.approx(13.0 * 15.0, rel=0.02)
    # Ellipse inside the bright sphere, drawn with real mouse events.
    panel.set_tool("ellipse")  # type: ignore[attr-defined]
    drag(view, screen_point(view, c, 25.0, -5.0), screen_point(view, c, 35.0, 5.0))
    ell = panel.measurement_records()[-1]  # type: ignore[attr-defined]
    assert ell["kind"] == "ellipse"
    assert ell["stats"]["mean"] == pytest.approx(1000.0)
    assert ell["stats"]["count"] > 50
    assert ell["stats"]["area_mm2"] == pytest.approx(math.pi * 25.0, rel=0.03)
    # An ROI straddling the sphere edge: mean between tissue and sphere.
    idx = view.add_measurement_from_display(
        "rectangle", [screen_point(view, c, 30.0, -2.0), screen_point(view, c, 44.0, 2.0)])
    straddle = panel.measurement_records()[idx]["stats"]  # type: ignore[attr-defined]
    assert 40.0 < straddle["mean"] < 1000.0 and straddle["max"] == 1000.0
    assert straddle["min"] == 40.0
    # Angle left marker – centre – anterior marker = 90°.
    j = view.add_measurement_from_display(
        "angle", [screen_point(view, c, 30.0, 0.0), screen_point(view, c, 0.0, 0.0),
                  screen_point(view, c, 0.0, 30.0)])
    assert panel.measurement_records()[j]["stats"]["angle_deg"] == pytest.approx(90.0, abs=0.5)  # type: ignore[attr-defined]


@pytest.mark.gui
def test_angle_tool_by_mouse(big_axial: tuple[object, Volume]) -> None:
    panel, vol = big_axial
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    c = vol.center_lps()
    panel.set_tool("angle")  # type: ignore[attr-defined]
    drag(view, screen_point(view, c, 20.0, 0.0), screen_point(view, c, 0.0, 0.0))
    assert len(panel.measurement_records()) == 0  # type: ignore[attr-defined]
    x, y = screen_point(view, c, 20.0, 20.0)
    send_mouse(view, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton,
               Qt.MouseButton.NoButton)
    send_mouse(view, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton,
               Qt.MouseButton.LeftButton)
    send_mouse(view, QEvent.Type.MouseButtonRelease, x, y, Qt.MouseButton.LeftButton,
               Qt.MouseButton.NoButton)
    records = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(records) == 1
    assert records[0]["stats"]["angle_deg"] == pytest.approx(45.0, abs=1.0)


@pytest.mark.gui
def test_records_round_trip_select_and_delete(big_axial: tuple[object, Volume]) -> None:
    panel, vol = big_axial
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    c = vol.center_lps()
    view.add_measurement_from_display(
        "ellipse", [screen_point(view, c, 25.0, -5.0), screen_point(view, c, 35.0, 5.0)])
    # A distance on another slice: scroll 15 slices superior (away from the viewer).
    view.scroll_slices(-15)
    far_slice = view.slice_index()
    view.add_measurement_from_display(
        "distance", [screen_point(view, c, -10.0, 0.0), screen_point(view, c, 10.0, 0.0)])
    records = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(records) == 2
    # Close and reopen the series: records (as JSON) restore the same measurements.
    saved = json.loads(json.dumps(records))
    panel.clear()  # type: ignore[attr-defined]
    assert panel.measurement_records() == []  # type: ignore[attr-defined]
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.load_measurement_records(saved)  # type: ignore[attr-defined]
    restored = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(restored) == 2
    for old, new in zip(records, restored, strict=True):
        assert new["kind"] == old["kind"]
        assert np.allclose(new["points_lps_mm"], old["points_lps_mm"])
        for key, value in old["stats"].items():
            assert new["stats"][key] == (pytest.approx(value) if isinstance(value, float)
                                         else value)
    # Selecting jumps to the measurement's slice and shows it there.
    assert view.slice_index() != far_slice
    panel.select_measurement(1)  # type: ignore[attr-defined]
    assert view.slice_index() == far_slice
    assert [i for i, _ in view._visible_measurements()] == [1]
    panel.select_measurement(0)  # type: ignore[attr-defined]
    assert [i for i, _ in view._visible_measurements()] == [0]
    panel.delete_measurement(0)  # type: ignore[attr-defined]
    left = panel.measurement_records()  # type: ignore[attr-defined]
    assert [r["kind"] for r in left] == ["distance"]
