"""ProjectionView: a plain 2-D image, checked on screen at known landmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from core.projection import ProjectionImage, SpacingKind, VoiWindow

SHOTS = Path("/tmp/shots18/h1b")
AMBER_MIN = (200, 140, 30)          # orientation letters: (255, 189, 71) with a shadow


def synthetic(orientation: tuple[str, str] | None = ("L", "F"), *,
              spacing: tuple[float, float] | None = (1.0, 0.5), frames: int = 1,
              kind: SpacingKind = SpacingKind.AT_DETECTOR) -> ProjectionImage:
    """200 × 300 px, background 100, a 4000 square at rows 10–59, cols 10–59 (top left)."""
    arr = np.full((frames, 200, 300), 100, dtype=np.uint16)
    arr[:, 10:60, 10:60] = 4000
    for f in range(frames):                     # a frame marker: a bar whose row moves
        arr[f, 150:160, 200 + 10 * f: 210 + 10 * f] = 3000
    return ProjectionImage(
        frames=arr, series_uid="1.2.3", modality="DX", value_range=(0, 4095),
        voi_windows=[VoiWindow(2000.0, 4000.0, explanation="NORMAL"),
                     VoiWindow(300.0, 400.0, explanation="SOFT")],
        pixel_spacing_mm=spacing, spacing_kind=kind if spacing else SpacingKind.UNCALIBRATED,
        patient_orientation=orientation, frame_time_ms=40.0 if frames > 1 else None,
        metadata={"study_date": "20250102", "series_description": "PA CHEST"},
        identity={"patient_name": "DOE^JOHN", "patient_id": "PID-42"})


@pytest.fixture
def view(gui: object) -> Iterator[object]:
    from viewer.projection_view import ProjectionView

    v = ProjectionView()
    v.resize(600, 500)
    v.show()
    gui.waitExposed(v)  # type: ignore[attr-defined]
    yield v
    v.close_view()
    v.close()
    v.deleteLater()


def _shot(arr: np.ndarray, name: str, save: Callable[[np.ndarray, object], None]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    save(arr, SHOTS / f"{name}.png")


def _amber(arr: np.ndarray) -> np.ndarray:
    r, g, b = (arr[..., c].astype(int) for c in range(3))
    return (r >= AMBER_MIN[0]) & (g >= AMBER_MIN[1]) & (g <= 215) & (b <= 120)


def _bright_box(arr: np.ndarray, lo: int = 240) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.all(arr >= lo, axis=2))
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


@pytest.mark.gui
def test_bright_square_top_left_at_its_aspect_with_letters(
        view: object, grab: Callable[[object], np.ndarray],
        save: Callable[[np.ndarray, object], None]) -> None:
    image = synthetic()
    view.set_image(image)  # type: ignore[attr-defined]
    arr = grab(view)
    _shot(arr, "synthetic_LF", save)
    h, w, _ = arr.shape
    # The image (300 px × 0.5 mm wide, 200 × 1 mm tall) fits the height: centre column.
    x0, x1, y0, y1 = _bright_box(arr)
    assert x1 < w / 2 and y1 < h / 2                        # top left of the screen
    # 50 × 50 px at 1.0 mm rows / 0.5 mm columns: twice as tall as wide on screen.
    assert (y1 - y0) / (x1 - x0) == pytest.approx(2.0, rel=0.1)
    # The square's top-left corner lands where pixel_to_display says.
    px, py = view.pixel_to_display(9.5, 9.5)  # type: ignore[attr-defined]
    assert abs(px - x0) <= 2 and abs(py - y0) <= 2
    assert view.orientation_letters() == {  # type: ignore[attr-defined]
        "left": "R", "right": "L", "top": "H", "bottom": "F"}
    amber = _amber(arr)
    mid = slice(int(h * 0.4), int(h * 0.6))
    assert amber[mid, w - 30:].sum() > 15           # "L" on the right edge
    assert amber[mid, :30].sum() > 15               # "R" on the left edge
    assert amber[:30, int(w * 0.4): int(w * 0.6)].sum() > 15    # "H" top
    assert amber[h - 30:, int(w * 0.4): int(w * 0.6)].sum() > 15  # "F" bottom
    texts = view.corner_texts()  # type: ignore[attr-defined]
    assert "W 4000  L 2000 (file: NORMAL)" in texts["bottom_right"]
    assert "Frame 1/1" in texts["bottom_left"]
    assert "at detector" in texts["bottom_left"]
    assert "DOE JOHN" in texts["top_left"] and "PA CHEST" in texts["top_right"]
    assert view.scale_length_mm > 0  # type: ignore[attr-defined]
    assert view.scale_text().endswith("mm at detector")  # type: ignore[attr-defined]
    view.set_identity_visible(False)  # type: ignore[attr-defined]
    assert "DOE" not in view.corner_texts()["top_left"]  # type: ignore[attr-defined]


@pytest.mark.gui
def test_compound_letters_and_none_without_orientation(
        view: object, grab: Callable[[object], np.ndarray],
        save: Callable[[np.ndarray, object], None]) -> None:
    view.set_image(synthetic(("LF", "P")))  # type: ignore[attr-defined]
    assert view.orientation_letters() == {  # type: ignore[attr-defined]
        "left": "RH", "right": "LF", "top": "A", "bottom": "P"}
    view.set_image(synthetic(None, spacing=None))  # type: ignore[attr-defined]
    arr = grab(view)
    _shot(arr, "synthetic_no_orientation_uncalibrated", save)
    assert set(view.orientation_letters().values()) == {""}  # type: ignore[attr-defined]
    assert _amber(arr).sum() == 0
    assert view.scale_length_mm == 0 and view.scale_text() == ""  # type: ignore[attr-defined]
    assert "uncalibrated px" in view.corner_texts()["bottom_left"]  # type: ignore[attr-defined]
    # Square pixels when uncalibrated: the 50 × 50 square is square on screen.
    x0, x1, y0, y1 = _bright_box(arr)
    assert (y1 - y0) / (x1 - x0) == pytest.approx(1.0, rel=0.1)


@pytest.mark.gui
def test_window_drag_cycle_and_reset(view: object, grab: Callable[[object], np.ndarray]) -> None:
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtWidgets import QApplication

    from viewer.projection_view import mouse_event

    view.set_image(synthetic())  # type: ignore[attr-defined]
    before = grab(view)
    bg_before = int(before[250, 300, 0])              # background 100 under W 4000 L 2000
    L, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonPress, 300, 250, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, 300, 250, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, 150, 400, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonRelease, 150, 400, L, none))
    c, w = view.window_values()  # type: ignore[attr-defined]
    assert w < 4000 and c < 2000                        # narrower and lower: brighter background
    after = grab(view)
    assert int(after[250, 300, 0]) > bg_before + 20
    assert "(file" not in view.corner_texts()["bottom_right"]  # type: ignore[attr-defined]
    labels = [ch.label for ch in view.voi_choices()]  # type: ignore[attr-defined]
    assert labels == ["file: NORMAL", "file: SOFT", "auto", "full range"]
    from core.projection import VoiFunction
    from viewer.projection_model import voi_choices
    sig = synthetic()
    sig.voi_windows = [VoiWindow(2000.0, 4000.0, VoiFunction.SIGMOID)]
    assert voi_choices(sig, sig.frames[0])[0].label == "file, sigmoid"
    view.cycle_voi()  # type: ignore[attr-defined]           # from a hand window: the first
    view.cycle_voi()  # type: ignore[attr-defined]
    assert view.window_values() == (300.0, 400.0)  # type: ignore[attr-defined]
    assert "(file: SOFT)" in view.corner_texts()["bottom_right"]  # type: ignore[attr-defined]
    assert view.apply_preset("lung") is False  # type: ignore[attr-defined]  # no HU presets
    view.set_zoom(2.0)  # type: ignore[attr-defined]
    from PySide6.QtGui import QKeyEvent
    QApplication.sendEvent(view, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_R,
                                           Qt.KeyboardModifier.NoModifier))
    assert view.zoom_factor() == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert view.window_values() == (2000.0, 4000.0)  # type: ignore[attr-defined]


@pytest.mark.gui
@pytest.mark.parametrize("spacing, unit", [((1.0, 0.5), "mm at detector"), (None, "px")])
def test_distance_label_mm_or_px(view: object, spacing: tuple[float, float] | None,
                                 unit: str, grab: Callable[[object], np.ndarray],
                                 save: Callable[[np.ndarray, object], None]) -> None:
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtWidgets import QApplication

    from viewer.projection_view import mouse_event

    view.set_image(synthetic(spacing=spacing))  # type: ignore[attr-defined]
    view.set_tool("distance")  # type: ignore[attr-defined]
    a = view.pixel_to_display(100.0, 40.0)  # type: ignore[attr-defined]
    b = view.pixel_to_display(100.0, 240.0)  # type: ignore[attr-defined]
    L, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonPress, *a, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, *b, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonRelease, *b, L, none))
    records = view.measurement_records()  # type: ignore[attr-defined]
    assert len(records) == 1
    expected = 100.0 if spacing else 200.0          # 200 columns × 0.5 mm, or 200 px
    assert records[0]["label"] == f"{expected:.1f} {unit}"
    arr = grab(view)
    _shot(arr, f"distance_{unit.split()[0]}", save)
    assert _amber(arr)[int(b[1]) - 2: int(b[1]) + 3, int(a[0]) + 10: int(b[0]) - 10].any()


@pytest.mark.gui
def test_rgb_pixel_colour_on_screen(view: object, grab: Callable[[object], np.ndarray]) -> None:
    rgb = np.zeros((1, 100, 100, 3), np.uint8)
    rgb[0, :, :50] = (200, 30, 40)               # left half red, right half teal
    rgb[0, :, 50:] = (20, 160, 150)
    image = ProjectionImage(frames=rgb, photometric="RGB", modality="US")
    view.set_image(image)  # type: ignore[attr-defined]
    arr = grab(view)
    x, y = (round(v) for v in view.pixel_to_display(50.0, 25.0))  # type: ignore[attr-defined]
    assert np.abs(arr[y, x].astype(int) - (200, 30, 40)).max() <= 3
    x, y = (round(v) for v in view.pixel_to_display(50.0, 75.0))  # type: ignore[attr-defined]
    assert np.abs(arr[y, x].astype(int) - (20, 160, 150)).max() <= 3
    assert "Colour" in view.corner_texts()["bottom_right"]  # type: ignore[attr-defined]


@pytest.mark.gui
def test_cine_plays_at_frame_time(view: object, gui: object,
                                  grab: Callable[[object], np.ndarray]) -> None:
    image = synthetic(frames=5)
    view.set_image(image)  # type: ignore[attr-defined]
    assert view.frame_interval_ms() == 40  # type: ignore[attr-defined]
    x_marker = round(view.pixel_to_display(155.0, 205.0)[0])  # type: ignore[attr-defined]
    first = grab(view)
    seen: list[int] = []
    view.frame_changed.connect(seen.append)  # type: ignore[attr-defined]
    assert view.play() is True  # type: ignore[attr-defined]
    assert "Cine 25 fps" in view.corner_texts()["bottom_left"]  # type: ignore[attr-defined]
    gui.waitUntil(lambda: len(seen) >= 3, timeout=3000)  # type: ignore[attr-defined]
    view.pause()  # type: ignore[attr-defined]
    assert seen[:3] == [1, 2, 3]
    assert "Cine" not in view.corner_texts()["bottom_left"]  # type: ignore[attr-defined]
    view.set_frame(2)  # type: ignore[attr-defined]
    third = grab(view)
    y = round(view.pixel_to_display(155.0, 205.0)[1])  # type: ignore[attr-defined]
    # Frame 1's bar starts at column 200, frame 3's at 220: the pixel at column 205 differs.
    assert int(first[y, x_marker, 0]) > int(third[y, x_marker, 0]) + 50
    assert "Frame 3/5" in view.corner_texts()["bottom_left"]  # type: ignore[attr-defined]
    view.step_frames(10)  # type: ignore[attr-defined]
    assert view.frame_index == 4  # type: ignore[attr-defined]


@pytest.mark.gui
def test_panel_shows_a_projection_alone_and_switches_back(
        panel: object, phantom_factory: Callable[[str], object],
        grab: Callable[[object], np.ndarray], save: Callable[[np.ndarray, object], None]) -> None:
    messages: list[str] = []
    panel.message.connect(messages.append)  # type: ignore[attr-defined]
    panel.set_volume(phantom_factory("axial"))  # type: ignore[attr-defined]
    assert panel.slice_views()["coronal"].isVisible()  # type: ignore[attr-defined]
    view = panel.set_projection(synthetic())  # type: ignore[attr-defined]
    assert panel.projection_view() is view  # type: ignore[attr-defined]
    assert view.isVisible() and view.width() > panel.width() - 10  # type: ignore[attr-defined]
    assert not any(v.isVisible() for v in panel.slice_views().values())  # type: ignore[attr-defined]
    panel.set_layout("2x2")  # type: ignore[attr-defined]
    assert messages and "2-D image" in messages[-1]
    assert not any(v.isVisible() for v in panel.slice_views().values())  # type: ignore[attr-defined]
    assert panel.window_level_values() == (4000.0, 2000.0)  # type: ignore[attr-defined]
    panel.set_preset("lung")  # type: ignore[attr-defined]        # refused, window kept
    assert panel.window_level_values() == (4000.0, 2000.0)  # type: ignore[attr-defined]
    panel.set_window_level(1000.0, 500.0)  # type: ignore[attr-defined]
    assert view.window_values() == (500.0, 1000.0)  # type: ignore[attr-defined]
    panel.set_identity_visible(False)  # type: ignore[attr-defined]
    assert "DOE" not in view.corner_texts()["top_left"]  # type: ignore[attr-defined]
    arr = grab(panel)
    _shot(arr, "panel_projection", save)
    panel.set_volume(phantom_factory("axial"))  # type: ignore[attr-defined]
    assert panel.projection_view() is None  # type: ignore[attr-defined]
    assert not view.isVisible()  # type: ignore[attr-defined]
    assert all(v.isVisible() for v in panel.slice_views().values())  # type: ignore[attr-defined]
    panel.set_layout("1x1")  # type: ignore[attr-defined]
    assert panel.layout_name() == "1x1"  # type: ignore[attr-defined]


def _uniform_saturated_pixel(frame: np.ndarray) -> tuple[int, int] | None:
    """A pixel whose 7×7 neighbourhood is one saturated colour (interpolation keeps it)."""
    f = frame.astype(int)
    for r, c in np.argwhere(np.ptp(f, axis=2) > 40):
        if 3 <= r < f.shape[0] - 3 and 3 <= c < f.shape[1] - 3 and \
                np.ptp(f[r - 3: r + 4, c - 3: c + 4].reshape(-1, 3), axis=0).max() <= 6:
            return int(r), int(c)
    return None


@pytest.mark.gui
@pytest.mark.parametrize("name, letters, wl, spacing", [
    ("RG3_J2KR.dcm", {"left": "L", "right": "R", "top": "H", "bottom": "F"},
     "W 1024  L 550 (file)", "uncalibrated px"),
    ("US1_J2KR.dcm", None, "Colour", "uncalibrated px"),          # YBR_RCT
    ("OBXXXX1A.dcm", None, "Colour", "0.262 mm calibrated"),      # palette colour
])
def test_pydicom_files_through_the_reader(view: object, grab: Callable[[object], np.ndarray],
                                          save: Callable[[np.ndarray, object], None], name: str,
                                          letters: dict[str, str] | None, wl: str,
                                          spacing: str) -> None:
    from pydicom.data import get_testdata_file

    from dicomio.projection import read_projection

    image = read_projection([Path(get_testdata_file(name))])
    view.set_image(image)  # type: ignore[attr-defined]
    arr = grab(view)
    _shot(arr, f"file_{name.split('.')[0]}", save)
    expected = letters or {"left": "", "right": "", "top": "", "bottom": ""}
    assert view.orientation_letters() == expected  # type: ignore[attr-defined]
    if not image.is_colour:                 # (a Doppler image has amber of its own)
        assert (_amber(arr).sum() > 0) == (letters is not None)
    texts = view.corner_texts()  # type: ignore[attr-defined]
    assert texts["bottom_right"].startswith(wl)
    assert spacing in texts["bottom_left"]
    assert (view.scale_length_mm > 0) == ("calibrated" in spacing  # type: ignore[attr-defined]
                                          and "un" not in spacing)
    if image.is_colour:
        frame = image.frames[0]
        rc = _uniform_saturated_pixel(frame)
        assert rc is not None
        x, y = (round(v) for v in view.pixel_to_display(*rc))  # type: ignore[attr-defined]
        assert np.abs(arr[y, x].astype(int) - frame[rc].astype(int)).max() <= 4


@pytest.mark.gui
def test_pixel_and_value_under_the_mouse(view: object) -> None:
    """Moving the mouse (no button) over the bright square shows its pixel and stored
    value bottom left; over the background its value; off the image and on leaving,
    nothing. A colour image shows the RGB triple."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    def move(x: float, y: float) -> str:
        ev = QMouseEvent(QEvent.Type.MouseMove, QPointF(x, y), QPointF(x, y),
                         Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view, ev)  # type: ignore[arg-type]
        return view.corner_texts()["bottom_left"]  # type: ignore[attr-defined,no-any-return]

    view.set_image(synthetic())  # type: ignore[attr-defined]
    x, y = view.pixel_to_display(30.0, 40.0)  # type: ignore[attr-defined]
    assert move(x, y).splitlines()[-1] == "px (40, 30): 4000"
    x, y = view.pixel_to_display(120.0, 250.0)  # type: ignore[attr-defined]
    assert move(x, y).splitlines()[-1] == "px (250, 120): 100"
    assert "px (" not in move(2.0, 2.0)          # the margin beside the image
    QApplication.sendEvent(view, QEvent(QEvent.Type.Leave))  # type: ignore[arg-type]
    assert "px (" not in view.corner_texts()["bottom_left"]  # type: ignore[attr-defined]
    rgb = np.zeros((1, 40, 60, 3), np.uint8)
    rgb[0, 5, 7] = (200, 30, 90)
    view.set_image(ProjectionImage(frames=rgb, photometric="RGB", modality="US"))  # type: ignore[attr-defined]
    x, y = view.pixel_to_display(5.0, 7.0)  # type: ignore[attr-defined]
    assert move(x, y).splitlines()[-1] == "px (7, 5): RGB 200 30 90"
