"""Rendered orientation of every view: no L/R, A/P or S/I flip, for several grids.

Pixels are read from a screenshot of the window (QScreen.grabWindow). The
expected screen position of a marker comes from the radiological convention
and the zoom only (mm × pixels-per-mm from the screen position of the volume
centre), never from the view's own orientation, so a flipped axis fails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core.volume import Volume

# Window 1000/500: bright marker 1000 → 255, medium 500 → 127.5, dim 250 → 63.75, tissue 40 → 10.
GREY = {"left": 255.0, "anterior": 127.5, "superior": 63.75, "tissue": 10.2}
# Per view: (marker, screen offset (right, up) in mm) that must show the marker's grey.
EXPECTED = {
    "axial": [("left", (30, 0)), ("anterior", (0, 30)), ("tissue", (-30, 0)), ("tissue", (0, -30))],
    "coronal": [("left", (30, 0)), ("superior", (0, 30)), ("tissue", (-30, 0)),
                ("tissue", (0, -30))],
    "sagittal": [("anterior", (-30, 0)), ("superior", (0, 30)), ("tissue", (30, 0)),
                 ("tissue", (0, -30))],
}
LETTERS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


def screen_point(view: object, centre_lps: np.ndarray, right_mm: float,
                 up_mm: float) -> tuple[int, int]:
    """Pixel (x, y) that is right_mm right and up_mm up of the volume centre on screen."""
    cx, cy = view.lps_to_display(centre_lps)  # type: ignore[attr-defined]
    scale = view.renderer.GetActiveCamera().GetParallelScale()  # type: ignore[attr-defined]
    px_per_mm = view.height() / (2.0 * scale)  # type: ignore[attr-defined]
    return round(cx + right_mm * px_per_mm), round(cy - up_mm * px_per_mm)


def probe(arr: np.ndarray, x: int, y: int) -> float:
    patch = arr[y - 1: y + 2, x - 1: x + 2, 0].astype(float)
    return float(np.median(patch))


@pytest.mark.gui
@pytest.mark.parametrize("kind", ["axial", "flipped", "sagittal", "oblique"])
def test_markers_and_letters_in_every_view(panel: object, phantom_factory: Callable[[str], Volume],
                                           grab: Callable[[object], np.ndarray],
                                           save: Callable[..., None], kind: str) -> None:
    vol = phantom_factory(kind)
    panel.set_volume(vol)  # type: ignore[attr-defined]
    panel.set_window_level(1000, 500)  # type: ignore[attr-defined]
    panel.set_cursor_lps(vol.center_lps())  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    for name, view in views.items():
        arr = grab(view)
        save(arr, f"/tmp/lucida_orient_{kind}_{name}.png")
        for marker, (right, up) in EXPECTED[name]:
            x, y = screen_point(view, vol.center_lps(), right, up)
            got = probe(arr, x, y)
            assert got == pytest.approx(GREY[marker], abs=6), (
                f"{kind} {name}: expected {marker} at {right:+} mm right, {up:+} mm up "
                f"(pixel {x},{y}) grey {GREY[marker]}, got {got}")
        assert view.orientation_letters() == LETTERS[name], f"{kind} {name}"


@pytest.mark.gui
def test_letters_follow_the_camera(panel: object, phantom_factory: Callable[[str], Volume]) -> None:
    """Rolling the camera by 90° moves the letters (they are derived, not hard-coded)."""
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    view.renderer.GetActiveCamera().Roll(90.0)
    view._update_letters()
    letters = view.orientation_letters()
    assert letters == {"top": "L", "bottom": "R", "left": "A", "right": "P"} or \
        letters == {"top": "R", "bottom": "L", "left": "P", "right": "A"}
    view.reset_view()
    assert view.orientation_letters() == LETTERS["axial"]


@pytest.mark.gui
def test_corner_text_and_identity_toggle(panel: object,
                                         phantom_factory: Callable[[str], Volume]) -> None:
    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    views = panel.slice_views()  # type: ignore[attr-defined]
    texts = views["axial"].corner_texts()
    joined = "\n".join(texts.values())
    for expected in ("DOE JANE", "PHANTOM-7", "1970-01-01", "2026-01-01", "Phantom", "CT",
                     "W 350", "L 50", "Zoom 100%"):
        assert expected in joined
    n = vol.shape[0]
    k = views["axial"].slice_index()
    z = vol.index_to_lps((k, 0, 0))[2]
    # Numbered from the top of the body (this grid's k runs upwards), PgDn adds one.
    assert f"{n - k}/{n}" in texts["bottom_left"]
    assert views["axial"].display_slice_number() == n - k
    assert f"Z {z:.1f} mm" in texts["bottom_left"]
    panel.set_identity_visible(False)  # type: ignore[attr-defined]
    for view in views.values():
        joined = "\n".join(view.corner_texts().values())
        assert "DOE" not in joined and "PHANTOM-7" not in joined and "1970" not in joined
        assert "2026-01-01" in joined       # descriptive text stays
    panel.set_identity_visible(True)  # type: ignore[attr-defined]
    assert "DOE JANE" in views["coronal"].corner_texts()["top_left"]
    assert views["axial"].scale_length_mm > 0
    assert views["axial"].scale_label.GetInput() == f"{views['axial'].scale_length_mm:g} mm"


@pytest.mark.gui
def test_top_corner_texts_are_cut_before_they_meet(panel: object, gui: object,
                                                   phantom_factory: Callable[[str], Volume]
                                                   ) -> None:
    from PySide6.QtWidgets import QApplication
    from vtkmodules.vtkRenderingCore import vtkTextRenderer

    vol = phantom_factory("axial")
    long_description = "Thorax 1.0 mm B70f, arterial phase"
    vol.metadata["series_description"] = long_description
    panel.resize(1800, 440)  # type: ignore[attr-defined]
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    gui.waitUntil(lambda: view.width() > 500)  # type: ignore[attr-defined]
    QApplication.processEvents()
    renderer = vtkTextRenderer.GetInstance()
    box = [0, 0, 0, 0]

    def widest(corner: str) -> int:
        prop = view.corner_actors[corner].GetTextProperty()
        widths = []
        for line in view.corner_texts()[corner].splitlines():
            renderer.GetBoundingBox(prop, line, box, view.GetRenderWindow().GetDPI())
            widths.append(box[1] - box[0])
        return max(widths)

    assert long_description in view.corner_texts()["top_right"]  # 600 px: it fits
    panel.resize(620, 440)  # type: ignore[attr-defined]
    gui.waitUntil(lambda: view.width() < 260)  # type: ignore[attr-defined]
    QApplication.processEvents()
    top_right = view.corner_texts()["top_right"].splitlines()
    assert top_right[1].endswith("…") and long_description.startswith(top_right[1][:-1])
    assert top_right[0] == "2026-01-01" and top_right[2] == "CT"  # short lines stay whole
    w = view._size_px()[0]
    assert widest("top_left") + widest("top_right") < w - 20  # a gap for the letter
    panel.resize(1800, 440)  # type: ignore[attr-defined]
    gui.waitUntil(lambda: long_description in view.corner_texts()["top_right"])  # type: ignore[attr-defined]


@pytest.mark.gui
def test_value_under_the_mouse(panel: object, phantom_factory: Callable[[str], Volume]) -> None:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    vol = phantom_factory("axial")
    panel.set_volume(vol)  # type: ignore[attr-defined]
    view = panel.slice_views()["axial"]  # type: ignore[attr-defined]
    for right, expected in ((30.0, "1000 HU"), (-20.0, "40 HU")):
        x, y = screen_point(view, vol.center_lps(), right, 0.0)
        p = QPointF(x, y)
        QApplication.sendEvent(view, QMouseEvent(
            QEvent.Type.MouseMove, p, view.mapToGlobal(p), Qt.MouseButton.NoButton,
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
        assert view.corner_texts()["bottom_left"].splitlines()[-1] == expected
