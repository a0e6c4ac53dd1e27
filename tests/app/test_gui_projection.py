"""2-D images through the real window: pydicom's radiograph and colour files imported
into a temporary library, opened, looked at (screenshots at landmarks), measured, played."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from app.cli import main
from core.volume import Volume
from dicomio.write_image import SeriesInfo, write_series

pytestmark = pytest.mark.gui
WAIT_MS = 60_000
SHOTS = Path("/tmp/shots18/h1b")
FILES = ("RG1_J2KR.dcm", "US1_UNCR.dcm", "SC_rgb_2frame.dcm")


def _grab(view: Any) -> np.ndarray:
    from tests.viewer.conftest import grab_view

    return grab_view(view)


def _save(arr: np.ndarray, name: str) -> None:
    from tests.viewer.conftest import save_png

    SHOTS.mkdir(parents=True, exist_ok=True)
    save_png(arr, SHOTS / f"{name}.png")


@pytest.fixture
def imported(library_dir: Path, tmp_path: Path) -> dict[str, int]:
    """pydicom's files imported with `lucida import` (copies in tmp_path): name → series id."""
    from store import Library

    src = tmp_path / "src"
    src.mkdir()
    uids: dict[str, str] = {}
    import pydicom

    for name in FILES:
        path = Path(get_testdata_file(name))
        shutil.copy(path, src / name)
        uids[name] = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    # And a small CT volume, to switch back to.
    array = np.random.default_rng(3).integers(-1000, 1500, size=(8, 64, 64)).astype(np.int16)
    info = SeriesInfo(series_description="Small CT")
    write_series(Volume(array, np.diag([2.0, 1.0, 1.0, 1.0])), src / "ct", info)
    assert main(["import", str(src)]) == 0
    library = Library.open(library_dir)
    try:
        by_uid = {s.series_uid: s.id for s in library.all_series()}
    finally:
        library.close()
    out = {name: by_uid[uid] for name, uid in uids.items()}
    out["volume"] = next(i for u, i in by_uid.items() if u not in uids.values())
    return out


def _open(qt: Any, window: Any, series_id: int) -> None:
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(series_id)


def _amber(arr: np.ndarray) -> np.ndarray:
    r, g, b = (arr[..., c].astype(int) for c in range(3))
    return (r >= 200) & (g >= 140) & (g <= 215) & (b <= 120)


def test_rg1_opens_as_a_radiograph(make_window: Callable[..., Any], qt: Any, library_dir: Path,
                                   imported: dict[str, int]) -> None:
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtWidgets import QApplication

    from viewer.projection_view import mouse_event

    window = make_window(library_dir)
    _open(qt, window, imported["RG1_J2KR.dcm"])
    view = window.viewer.projection_view()
    assert view is not None and view.isVisible()
    assert window.current_volume is None and window.current_projection is not None
    assert not any(v.isVisible() for v in window.viewer.slice_views().values())
    assert view.orientation_letters() == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    texts = view.corner_texts()
    assert texts["bottom_right"].startswith("W 30000  L 15000 (file")
    assert "uncalibrated px" in texts["bottom_left"]
    assert view.scale_length_mm == 0 and view.scale_text() == ""
    assert window.viewer.window_level_values() == (30000.0, 15000.0)
    arr = _grab(view)
    _save(arr, "app_rg1")
    h, w, _ = arr.shape
    amber = _amber(arr)
    assert amber[int(h * 0.4): int(h * 0.6), w - 30:].sum() > 15    # L right
    assert amber[int(h * 0.4): int(h * 0.6), :30].sum() > 15        # R left
    # MONOCHROME1 under its own window: the lungs dark, not a washed-out inverted film
    # (the centre of the screen lies in the chest, between the lungs' dark fields).
    centre = arr[h // 2 - 100: h // 2 + 100, w // 2 - 150: w // 2 + 150].astype(int)
    assert 20 < centre.mean() < 230 and centre.std() > 15

    # The models panel offers nothing to run on a 2-D image, and says why.
    panel = window.models_panel
    if panel is not None and panel.selected_pack() is not None:
        assert not panel.run_button.isEnabled()
        assert "2-D image" in (panel.refusal() or "")

    # A distance is labelled in px and listed (not saved: no LPS points).
    window.set_tool("distance")
    a = view.pixel_to_display(900.0, 500.0)
    b = view.pixel_to_display(900.0, 1300.0)
    L, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonPress, *a, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, *b, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonRelease, *b, L, none))
    records = window.viewer.measurement_records()
    assert len(records) == 1 and records[0]["label"].endswith(" px")
    assert float(records[0]["label"].split()[0]) == pytest.approx(800.0, abs=3.0)
    _save(_grab(view), "app_rg1_distance")
    # Saved (pixel positions, not LPS) and shown again when the image is opened again.
    from store import Library

    library = Library.open(library_dir)
    try:
        saved = library.read_measurements(imported["RG1_J2KR.dcm"]).records
    finally:
        library.close()
    assert [r["label"] for r in saved] == [records[0]["label"]]
    assert saved[0]["points_px"] == records[0]["points_px"]
    _open(qt, window, imported["US1_UNCR.dcm"])
    assert window.viewer.measurement_records() == []
    _open(qt, window, imported["RG1_J2KR.dcm"])
    view = window.viewer.projection_view()
    assert [r["label"] for r in window.viewer.measurement_records()] == [records[0]["label"]]

    # Identity toggle, layout refused with a message, window drag changes the image.
    name_line = view.corner_texts()["top_left"]
    window.set_identity_visible(False)
    assert view.corner_texts()["top_left"].strip() == ""
    window.set_identity_visible(True)
    assert view.corner_texts()["top_left"] == name_line
    window.set_layout("2x2")
    assert not any(v.isVisible() for v in window.viewer.slice_views().values())
    assert "2-D image" in window.statusBar().currentMessage()
    window.set_tool("navigate")
    before = _grab(view)
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonPress, 300, 300, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, 300, 300, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseMove, 200, 200, L, L))
    QApplication.sendEvent(view, mouse_event(QEvent.Type.MouseButtonRelease, 200, 200, L, none))
    assert window.viewer.window_level_values() != (30000.0, 15000.0)
    after = _grab(view)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 3


def test_colour_pixel_and_cine(make_window: Callable[..., Any], qt: Any, library_dir: Path,
                               imported: dict[str, int]) -> None:
    window = make_window(library_dir)
    _open(qt, window, imported["US1_UNCR.dcm"])
    view = window.viewer.projection_view()
    assert view is not None and window.current_projection.is_colour
    frame = window.current_projection.frames[0].astype(int)
    # A saturated pixel whose 7×7 neighbourhood is one colour (interpolation cannot
    # change it): on screen it must be that colour, not its luminance.
    saturated = np.argwhere(np.ptp(frame, axis=2) > 60)
    best = next(((int(r), int(c)) for r, c in saturated
                 if 3 <= r < frame.shape[0] - 3 and 3 <= c < frame.shape[1] - 3
                 and np.ptp(frame[r - 3: r + 4, c - 3: c + 4].reshape(-1, 3), axis=0).max() <= 6),
                None)
    assert best is not None, "no uniform coloured patch in US1_UNCR"
    arr = _grab(view)
    _save(arr, "app_us1_rgb")
    x, y = (round(v) for v in view.pixel_to_display(*best))
    assert np.abs(arr[y, x].astype(int) - frame[best]).max() <= 4

    # Opened as from the library (Enter / double-click): the keys then go to the 2-D view.
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    window.activateWindow()
    window.raise_()
    qt.waitUntil(window.isActiveWindow, timeout=5000)
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window._open_requested(imported["SC_rgb_2frame.dcm"])
    view = window.viewer.projection_view()
    assert view.image.frame_count == 2
    assert QApplication.focusWidget() is view
    QTest.keyClick(view, Qt.Key.Key_PageDown)
    assert view.frame_index == 1
    QTest.keyClick(view, Qt.Key.Key_Up)
    assert view.frame_index == 0
    seen: list[int] = []
    view.frame_changed.connect(seen.append)
    window.set_cine_playing(True)
    assert window.act_cine.isChecked() and view.is_playing()
    qt.waitUntil(lambda: len(seen) >= 2, timeout=5000)
    window.set_cine_playing(False)
    assert seen[:2] == [1, 0] and not view.is_playing()
    # Opening a volume afterwards brings the slice views back.
    _open(qt, window, imported["volume"])
    assert window.current_volume is not None and window.current_projection is None
    assert window.viewer.projection_view() is None
    assert window.viewer.slice_views()["axial"].isVisible()
