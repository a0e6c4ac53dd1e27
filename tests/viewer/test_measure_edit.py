"""Measurements edited after drawing (handles and whole moves) and the bidimensional tool,
driven with real mouse events on a shown panel; records round trip through JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from core.volume import Volume
from viewer.measure import Measurement

SHOTS = Path("/tmp/shots18/h5")
LEFT, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def send(widget: object, kind: QEvent.Type, x: float, y: float, button: Qt.MouseButton,
         buttons: Qt.MouseButton) -> None:
    p = QPointF(x, y)
    ev = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons,  # type: ignore[attr-defined]
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget: object, start: tuple[float, float], end: tuple[float, float]) -> None:
    send(widget, QEvent.Type.MouseButtonPress, *start, LEFT, LEFT)
    for t in (0.25, 0.5, 0.75, 1.0):
        send(widget, QEvent.Type.MouseMove, start[0] + (end[0] - start[0]) * t,
             start[1] + (end[1] - start[1]) * t, NONE, LEFT)
    send(widget, QEvent.Type.MouseButtonRelease, *end, LEFT, NONE)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_a: object) -> None:
        self.n += 1


@pytest.fixture
def axial(panel: object, phantom_factory: Callable[[str], Volume]) -> tuple[object, object]:
    """(panel, axial view) in 1×1 at 800×800 on the axial phantom, W/L showing the markers."""
    panel.set_layout("1x1")  # type: ignore[attr-defined]
    panel.resize(800, 800)  # type: ignore[attr-defined]
    QApplication.processEvents()
    panel.set_volume(phantom_factory("axial"))  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    QApplication.processEvents()
    return panel, view


def at(view: object, lps: np.ndarray) -> tuple[float, float]:
    x, y = view.lps_to_display(lps)  # type: ignore[attr-defined]
    return float(x), float(y)


def mm_per_px(view: object) -> float:
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    return 2.0 * scale / view.height()  # type: ignore[attr-defined]


def draw(panel: object, view: object, tool: str, a: tuple[float, float],
         b: tuple[float, float]) -> dict[str, object]:
    panel.set_tool(tool)  # type: ignore[attr-defined]
    drag(view, a, b)
    return panel.measurement_records()[-1]  # type: ignore[attr-defined, no-any-return]


@pytest.mark.gui
def test_distance_end_handle_moves_only_that_end(axial: tuple[object, object]) -> None:
    panel, view = axial
    cx, cy = view.width() / 2, view.height() / 2  # type: ignore[attr-defined]
    rec = draw(panel, view, "distance", (cx - 100, cy), (cx + 100, cy))
    a0, b0 = (np.array(p) for p in rec["points_lps_mm"])  # type: ignore[attr-defined]
    changed = Counter()
    panel.measurements_changed.connect(changed)  # type: ignore[attr-defined]
    panel.set_tool("navigate")  # type: ignore[attr-defined]
    # Grab the right end (a few pixels off, within the grab radius) and pull it 60 px down.
    end_x, end_y = at(view, b0)
    drag(view, (end_x + 3, end_y - 2), (end_x + 3, end_y + 58))
    recs = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(recs) == 1 and changed.n == 1            # edited, not a second measurement
    a1, b1 = (np.array(p) for p in recs[0]["points_lps_mm"])
    np.testing.assert_allclose(a1, a0, atol=1e-9)        # the other end stayed
    mmpp = mm_per_px(view)
    # The screen's down is LPS +y (posterior) in axial; 60 px of drag.
    np.testing.assert_allclose(b1 - b0, [0.0, 60 * mmpp, 0.0], atol=1.5 * mmpp)
    assert recs[0]["stats"]["length_mm"] == pytest.approx(float(np.linalg.norm(b1 - a1)))
    assert recs[0]["label"] == f"{np.linalg.norm(b1 - a1):.1f} mm"
    # The window did not change: the drag edited instead of windowing.
    assert panel.window_level_values() == (1000, 500)  # type: ignore[attr-defined]


@pytest.mark.gui
def test_grabbing_the_line_moves_the_whole_measurement(axial: tuple[object, object]) -> None:
    panel, view = axial
    cx, cy = view.width() / 2, view.height() / 2  # type: ignore[attr-defined]
    rec = draw(panel, view, "distance", (cx - 80, cy - 40), (cx + 80, cy - 40))
    pts0 = np.array(rec["points_lps_mm"])  # type: ignore[arg-type]
    # With the drawing tool still active: a press on the line moves it, no new distance.
    drag(view, (cx, cy - 40), (cx + 30, cy + 10))
    recs = panel.measurement_records()  # type: ignore[attr-defined]
    assert len(recs) == 1
    pts1 = np.array(recs[0]["points_lps_mm"])
    mmpp = mm_per_px(view)
    np.testing.assert_allclose(pts1 - pts0, [[30 * mmpp, 50 * mmpp, 0.0]] * 2, atol=1.5 * mmpp)
    assert recs[0]["stats"]["length_mm"] == pytest.approx(rec["stats"]["length_mm"])  # type: ignore[index]
    # A press away from any measurement still draws a new one.
    draw(panel, view, "distance", (cx - 80, cy + 150), (cx + 80, cy + 150))
    assert len(panel.measurement_records()) == 2  # type: ignore[attr-defined]


@pytest.mark.gui
def test_roi_corner_and_angle_vertex_edits_recompute(axial: tuple[object, object],
                                                     grab: Callable[[object], np.ndarray],
                                                     save: Callable[..., None]) -> None:
    panel, view = axial
    vol = panel.volume  # type: ignore[attr-defined]
    bright = vol.index_to_lps(np.array([[27.5, 59.5, 63.5]]))[0] + np.array([30.0, 0.0, 0.0])
    bx, by = at(view, bright)
    # A rectangle beside the bright (1000) marker: soft tissue only (mean 40).
    rec = draw(panel, view, "rectangle", (bx - 140, by - 20), (bx - 100, by + 20))
    assert rec["stats"]["mean"] == pytest.approx(40.0)  # type: ignore[index]
    # Pull its right-top corner onto the marker: the mean rises, the area grows.
    corners = Measurement.from_record(rec).handles()  # type: ignore[arg-type]
    corner = max(corners, key=lambda c: (at(view, c)[0], -at(view, c)[1]))
    drag(view, at(view, corner), (bx + 5, by - 5))
    edited = panel.measurement_records()[0]  # type: ignore[attr-defined]
    assert edited["stats"]["max"] == pytest.approx(1000.0)
    assert edited["stats"]["mean"] > 100.0
    assert edited["stats"]["area_mm2"] > 2.0 * rec["stats"]["area_mm2"]  # type: ignore[index]
    assert "mean" in edited["label"]

    # An angle: moving the vertex changes the angle (a right angle becomes 2·atan(…)).
    panel.set_tool("angle")  # type: ignore[attr-defined]
    cx, cy = view.width() / 2, view.height() / 2 + 200  # type: ignore[attr-defined]
    drag(view, (cx - 100, cy), (cx, cy))                   # first arm to the vertex
    send(view, QEvent.Type.MouseButtonPress, cx, cy - 100, LEFT, LEFT)    # third point
    send(view, QEvent.Type.MouseButtonRelease, cx, cy - 100, LEFT, NONE)
    angle = panel.measurement_records()[-1]  # type: ignore[attr-defined]
    assert angle["kind"] == "angle" and angle["stats"]["angle_deg"] == pytest.approx(90, abs=1.5)
    panel.set_tool("navigate")  # type: ignore[attr-defined]
    drag(view, (cx, cy), (cx - 100, cy - 100 + 100 * math.tan(math.radians(15))))
    moved = panel.measurement_records()[-1]  # type: ignore[attr-defined]
    assert len(panel.measurement_records()) == 2  # type: ignore[attr-defined]
    assert moved["stats"]["angle_deg"] != pytest.approx(90, abs=5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(grab(view), SHOTS / "edited_roi_and_angle.png")


@pytest.mark.gui
def test_bidimensional_tool_draws_edits_and_round_trips(axial: tuple[object, object],
                                                        grab: Callable[[object], np.ndarray],
                                                        save: Callable[..., None]) -> None:
    panel, view = axial
    changed = Counter()
    panel.measurements_changed.connect(changed)  # type: ignore[attr-defined]
    cx, cy = view.width() / 2, view.height() / 2  # type: ignore[attr-defined]
    panel.set_tool("bidimensional")  # type: ignore[attr-defined]
    drag(view, (cx - 120, cy - 60), (cx + 120, cy + 60))   # long axis, oblique
    assert changed.n == 0                                # not finished: the short axis is next
    # Short axis: a drag across the long axis, not quite perpendicular.
    drag(view, (cx + 40, cy - 70), (cx - 25, cy + 45))
    recs = panel.measurement_records()  # type: ignore[attr-defined]
    assert changed.n == 1 and len(recs) == 1
    rec = recs[0]
    assert rec["kind"] == "bidimensional" and len(rec["points_lps_mm"]) == 4
    a, b, c, d = (np.array(p) for p in rec["points_lps_mm"])
    long_dir, short_dir = (b - a) / np.linalg.norm(b - a), (d - c) / np.linalg.norm(d - c)
    assert abs(float(long_dir @ short_dir)) < 1e-9                 # perpendicular
    assert np.cross(long_dir, short_dir) @ np.array([0, 0, 1.0]) != 0  # in the axial plane
    mmpp = mm_per_px(view)
    assert rec["stats"]["long_mm"] == pytest.approx(math.hypot(240, 120) * mmpp, abs=2 * mmpp)
    assert 0 < rec["stats"]["short_mm"] < rec["stats"]["long_mm"]
    # The short axis crosses the long axis (its ends lie on either side of it).
    normal = np.array([0.0, 0.0, 1.0])
    side = [float(np.cross(long_dir, p - a) @ normal) for p in (c, d)]
    assert side[0] * side[1] < 0
    assert rec["label"] == f"{rec['stats']['long_mm']:.1f} × {rec['stats']['short_mm']:.1f} mm"
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(grab(view), SHOTS / "bidimensional.png")

    # Drag a short-axis end outwards: it stays perpendicular, the long axis is unchanged.
    panel.set_tool("navigate")  # type: ignore[attr-defined]
    dx, dy = at(view, d)
    drag(view, (dx, dy), (dx - 40, dy + 25))
    e = panel.measurement_records()[0]  # type: ignore[attr-defined]
    a2, b2, c2, d2 = (np.array(p) for p in e["points_lps_mm"])
    np.testing.assert_allclose([a2, b2], [a, b], atol=1e-9)
    assert abs(float((b2 - a2) @ (d2 - c2))) < 1e-6
    assert e["stats"]["short_mm"] > rec["stats"]["short_mm"] + 10 * mmpp
    assert changed.n == 2
    # Drag a long-axis end: the short axis turns with it, still perpendicular.
    ax, ay = at(view, a2)
    drag(view, (ax, ay), (ax, ay + 80))
    a3, b3, c3, d3 = (np.array(p) for p in panel.measurement_records()[0]["points_lps_mm"])  # type: ignore[attr-defined]
    assert abs(float((b3 - a3) @ (d3 - c3))) < 1e-6
    assert np.linalg.norm(d3 - c3) == pytest.approx(np.linalg.norm(d2 - c2))
    save(grab(view), SHOTS / "bidimensional_edited.png")

    # JSON (as the store keeps it) and back: same geometry and label.
    saved = json.loads(json.dumps(panel.measurement_records()))  # type: ignore[attr-defined]
    panel.load_measurement_records([])  # type: ignore[attr-defined]
    panel.load_measurement_records(saved)  # type: ignore[attr-defined]
    again = panel.measurement_records()  # type: ignore[attr-defined]
    assert again[0]["kind"] == "bidimensional"
    np.testing.assert_allclose(again[0]["points_lps_mm"], saved[0]["points_lps_mm"])
    assert again[0]["label"] == saved[0]["label"]


def test_unknown_kind_is_refused_by_name_not_by_crash() -> None:
    """A record from a newer Lucida (unknown kind) raises ValueError naming the kind; the
    app's restore path reads the others and blocks saving (app/main_window.py)."""
    rec = {"kind": "volumetric", "points_lps_mm": [[0, 0, 0]], "plane_right_lps": [1, 0, 0],
           "plane_up_lps": [0, -1, 0]}
    with pytest.raises(ValueError, match="volumetric"):
        Measurement.from_record(rec)
    bidi = Measurement("bidimensional", [[0, 0, 0], [30, 0, 0], [10, -5, 0], [10, 7, 0]],
                       right=[1, 0, 0], up=[0, -1, 0])
    bidi.compute(None)
    assert bidi.label() == "30.0 × 12.0 mm"
    assert Measurement.from_record(json.loads(json.dumps(bidi.to_record()))).points_lps[3][1] == 7


@pytest.mark.gui
def test_the_app_saves_an_edit_and_a_bidimensional_in_the_store(library_dir: Path,
                                                                gui: Any) -> None:
    """The main window's measurements_changed path stores edits and the new kind."""
    from app.main_window import MainWindow
    from app.settings import PREFERENCES_FILE, WINDOW_STATE_FILE, load_preferences
    from store import Library

    prefs = library_dir / PREFERENCES_FILE
    window = MainWindow(library_dir, load_preferences(prefs), prefs,
                        library_dir / WINDOW_STATE_FILE, open_demo=True, interactive=False)
    try:
        window.resize(1300, 850)
        window.show()
        gui.waitExposed(window)
        gui.waitUntil(lambda: window.series is not None, timeout=120_000)
        series_id = window.current_series_id
        window.set_layout("1x1")
        view = window.viewer.slice_views()["axial"]
        QApplication.processEvents()
        cx, cy = view.width() / 2, view.height() / 2
        window.tool_actions["bidimensional"].trigger()
        drag(view, (cx - 90, cy), (cx + 90, cy))
        drag(view, (cx, cy - 40), (cx, cy + 30))
        window.tool_actions["navigate"].trigger()
        a, b = (np.array(p) for p in window.viewer.measurement_records()[0]["points_lps_mm"][:2])
        ax, ay = at(view, b)
        drag(view, (ax, ay), (ax + 40, ay))                  # lengthen the long axis

        library = Library.open(library_dir)
        try:
            saved = library.load_measurements(series_id)
        finally:
            library.close()
        assert [r["kind"] for r in saved] == ["bidimensional"]
        shown = window.viewer.measurement_records()[0]
        np.testing.assert_allclose(saved[0]["points_lps_mm"], shown["points_lps_mm"])
        assert saved[0]["stats"]["long_mm"] > float(np.linalg.norm(b - a)) + 3.0
        assert window.measurements.row_count() == 1
    finally:
        window.close()
        window.deleteLater()
