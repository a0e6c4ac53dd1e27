"""Reading-room defects of the main window (issue 18, item 6), each driven as a radiologist
would: real key presses on the focused widget, real double-clicks, a real first launch.

Keyboard focus after a layout change or opening a series, R resetting the window too, any
view filling the window, per-modality number keys and preset lists, the demo study not
replacing the series the user opened, and a warnings dialog that shows every line whole.
Real DICOM series written to tmp_path and imported into a real SQLite library; real Qt +
VTK windows under Xvfb. Screenshots go to /tmp/shots18/h6/.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.app.test_gui_window import WAIT_MS, import_into, open_and_wait, write_ct

SHOTS = Path("/tmp/shots18/h6")
gui = pytest.mark.gui



def write_mr(folder: Path) -> list[Path]:
    """A real MR series: dark background, tissue around 300, a bright 900 block."""
    from core.volume import Volume
    from dicomio.write_image import SeriesInfo, write_series

    rng = np.random.default_rng(7)
    array = rng.integers(0, 20, size=(20, 48, 48)).astype(np.int16)
    array[:, 8:-8, 8:-8] = 300 + rng.integers(-40, 40, size=(20, 32, 32))
    array[6:14, 18:30, 18:30] = 900
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([(0, 0, 3.0), (0, 0.9, 0), (0.9, 0, 0)])
    info = SeriesInfo(patient_name="BETA^TWO", patient_id="PID-B", study_date="20241102",
                      study_description="Head", series_description="T1 axial")
    return write_series(Volume(array, affine, modality="MR"), folder, info, modality="MR")


@pytest.fixture
def ct_and_mr(tmp_path: Path, library_dir: Path) -> dict[str, int]:
    # Not a chest: no hanging protocol changes the layout these tests start from.
    write_ct(tmp_path / "src" / "ct", study_description="Abdomen routine")
    write_mr(tmp_path / "src" / "mr")
    import_into(library_dir, tmp_path / "src")
    from store import Library

    library = Library.open(library_dir)
    try:
        return {s.modality: s.id for s in library.all_series()}
    finally:
        library.close()


def focused() -> Any:
    from PySide6.QtWidgets import QApplication

    return QApplication.focusWidget()


def press(qt: Any, key: Any, modifier: Any = None) -> None:
    """A real key press on whatever widget has the keyboard focus (shortcuts included)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    widget = focused()
    assert widget is not None, "nothing has the keyboard focus"
    QTest.keyClick(widget, key, modifier or Qt.KeyboardModifier.NoModifier)
    qt.wait(20)


def activate(qt: Any, window: Any) -> None:
    window.activateWindow()
    window.raise_()
    qt.waitUntil(window.isActiveWindow, timeout=5000)


def series_index(browser: Any, series_id: int) -> Any:
    from app.library_browser import ID_ROLE

    model = browser.proxy
    stack = [model.index(r, 0) for r in range(model.rowCount())]
    while stack:
        index = stack.pop()
        if index.data(ID_ROLE) == series_id and not model.hasChildren(index):
            return index
        stack.extend(model.index(r, 0, index) for r in range(model.rowCount(index)))
    raise AssertionError(f"series {series_id} is not in the browser")


def open_with_enter(qt: Any, window: Any, series_id: int) -> None:
    """Click the series in the library tree and press Enter, as a user does."""
    from PySide6.QtCore import Qt

    tree = window.browser.tree
    index = series_index(window.browser, series_id)
    tree.scrollTo(index)
    qt.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                  pos=tree.visualRect(index).center())
    assert focused() is tree
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        press(qt, Qt.Key.Key_Return)


def view_centre(view: Any) -> Any:
    return view.rect().center()


def screen(qt: Any, window: Any, name: str) -> Any:
    """The window as on screen (VTK views included), saved to SHOTS/name, as a QImage."""
    from PySide6.QtGui import QImage

    from app.commands.view import grab_window_png

    qt.wait(100)  # let Qt repaint before the screen is read
    grab_window_png(window, SHOTS / name)
    return QImage(str(SHOTS / name))


def lightness(shot: Any, window: Any, view: Any, i0: int, i1: int) -> float:
    """Mean lightness on screen over voxels [i0, i1] × [i0, i1] (j, i) of the middle slice
    shown in the slice ``view``."""
    volume = view.volume
    origin = view.mapTo(window, view.rect().topLeft())
    ratio = view.devicePixelRatioF()
    corners = []
    for i in (i0, i1):
        x, y = view.lps_to_display(volume.index_to_lps((volume.shape[0] // 2, i, i)))
        corners.append((int(origin.x() + x / ratio), int(origin.y() + view.height() - y / ratio)))
    (xa, ya), (xb, yb) = corners
    return float(np.mean([shot.pixelColor(x, y).lightness()
                          for x in range(min(xa, xb), max(xa, xb) + 1)
                          for y in range(min(ya, yb), max(ya, yb) + 1)]))


# --------------------------------------------------------------------------- 1. focus


@gui
def test_keys_go_to_the_views_after_opening_and_after_a_layout_change(
        make_window: Any, qt: Any, ct_and_mr: dict[str, int], library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    from viewer.presets import PRESETS
    from viewer.slice_view import SliceView

    window = make_window(library_dir)
    activate(qt, window)
    open_with_enter(qt, window, ct_and_mr["CT"])
    views = window.viewer.slice_views()
    # Opening from the library hands the keys to the views: PgDn scrolls the slice.
    assert focused() is views["axial"]
    before = views["axial"].slice_index()
    press(qt, Qt.Key.Key_PageDown)
    assert abs(views["axial"].slice_index() - before) == 1
    assert window.browser.search.text() == ""

    # The coronal view is the active one (clicked); Ctrl+1, Ctrl+2, Ctrl+3 keep the keys
    # in a view (before: the library search box took them and filtered the library).
    qt.mouseClick(views["coronal"], Qt.MouseButton.LeftButton, pos=view_centre(views["coronal"]))
    qt.waitUntil(lambda: focused() is views["coronal"], timeout=5000)
    for key, layout in ((Qt.Key.Key_3, "2x2"), (Qt.Key.Key_2, "1x3"), (Qt.Key.Key_1, "1x1")):
        press(qt, key, Qt.KeyboardModifier.ControlModifier)
        assert window.viewer.layout_name() == layout
        assert isinstance(focused(), SliceView), (layout, focused())
        assert not focused().isHidden()
        # The active view keeps the keys while it is shown (1 × 1 shows the axial one).
        assert focused() is views["axial" if layout == "1x1" else "coronal"], layout
        press(qt, Qt.Key.Key_4)  # lung
        assert window.viewer.window_level_values() == (PRESETS["lung"].width,
                                                      PRESETS["lung"].level)
        window.viewer.set_preset("mediastinum")
        before = focused().slice_index()
        press(qt, Qt.Key.Key_PageDown)
        assert abs(focused().slice_index() - before) == 1
    assert window.browser.search.text() == ""
    assert len(window.browser.visible_series_ids()) == 2


# --------------------------------------------------------------------------- 2. R


def send_wheel(view: Any, notches: int, modifiers: Any) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(view_centre(view))
    event = QWheelEvent(pos, QPointF(view.mapToGlobal(view_centre(view))), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, modifiers,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, event)


@gui
def test_r_resets_zoom_pan_and_the_window_to_the_series_own(
        make_window: Any, qt: Any, tmp_path: Path, library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    from core.volume import Volume
    from dicomio.write_image import SeriesInfo, write_series
    from viewer.presets import PRESETS

    # A CT with its own DICOM window (W 1200, L 200): R must come back to it.
    array = np.full((16, 48, 48), -1000, dtype=np.int16)
    array[:, 8:-8, 8:-8] = 40
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([(0, 0, 2.0), (0, 0.8, 0), (0.8, 0, 0)])
    info = SeriesInfo(patient_name="DELTA^FOUR", patient_id="PID-D", study_date="20250101",
                      study_description="Abdomen", series_description="Axial",
                      window_center=200.0, window_width=1200.0)
    write_series(Volume(array, affine, modality="CT"), tmp_path / "ct", info, modality="CT",
                 rescale_intercept=-1024.0)
    (series_id,) = import_into(library_dir, tmp_path / "ct")
    window = make_window(library_dir)
    activate(qt, window)
    open_and_wait(qt, window, series_id)
    axial = window.viewer.slice_views()["axial"]
    assert window.viewer.window_level_values() == (1200.0, 200.0)
    qt.mouseClick(axial, Qt.MouseButton.LeftButton, pos=view_centre(axial))
    assert focused() is axial
    press(qt, Qt.Key.Key_8)  # bone
    assert window.viewer.window_level_values() == (PRESETS["bone"].width, PRESETS["bone"].level)
    send_wheel(axial, 3, Qt.KeyboardModifier.ControlModifier)  # zoom in
    assert axial.zoom_factor() > 1.3
    axial.pan_mm(7.0, -4.0)  # (a middle drag in use; pytest-qt has no drag helper)
    focal = axial.renderer.GetActiveCamera().GetFocalPoint()

    press(qt, Qt.Key.Key_R)
    assert axial.zoom_factor() == pytest.approx(1.0)
    assert axial.renderer.GetActiveCamera().GetFocalPoint() != pytest.approx(focal)
    assert window.viewer.window_level_values() == (1200.0, 200.0)
    # The shortcut sheet says what R does.
    sheet = dict(window.shortcut_rows())
    assert "window" in sheet["R"] and "zoom" in sheet["R"]
    assert "window" in sheet["Ctrl+R"]

    # Ctrl+R (every view) also brings the window back.
    press(qt, Qt.Key.Key_3)  # stroke
    assert window.viewer.window_level_values() == (PRESETS["stroke"].width,
                                                  PRESETS["stroke"].level)
    press(qt, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert window.viewer.window_level_values() == (1200.0, 200.0)


# --------------------------------------------------------------------------- 3. 1 × 1


@gui
def test_any_view_fills_the_window_and_double_click_restores(
        make_window: Any, qt: Any, ct_and_mr: dict[str, int], library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    from app.settings import load_preferences

    window = make_window(library_dir)
    activate(qt, window)
    open_and_wait(qt, window, ct_and_mr["CT"])
    viewer = window.viewer
    coronal = viewer.slice_views()["coronal"]
    assert set(viewer.visible_view_names()) == {"axial", "coronal", "sagittal"}

    # Double-click (PACS habit) maximises the coronal view, a second one restores 1 × 3.
    qt.mouseDClick(coronal, Qt.MouseButton.LeftButton, pos=view_centre(coronal))
    qt.waitUntil(lambda: set(viewer.visible_view_names()) == {"coronal"}, timeout=WAIT_MS)
    assert viewer.layout_name() == "1x1"
    assert coronal.width() > 0.9 * viewer.width()
    # A maximised view is a moment's look, not a new default layout.
    assert load_preferences(library_dir / "preferences.json").default_layout == "1x3"
    # On screen: the coronal image fills the viewing area (its bright cube at the centre).
    shot = screen(qt, window, "maximised_coronal.png")
    centre = viewer.mapTo(window, viewer.rect().center())
    assert shot.pixelColor(centre).lightness() > 200
    assert coronal.plane == "coronal" and coronal.orientation_letters()
    qt.mouseDClick(coronal, Qt.MouseButton.LeftButton, pos=view_centre(coronal))
    qt.waitUntil(lambda: set(viewer.visible_view_names()) == {"axial", "coronal", "sagittal"},
                 timeout=WAIT_MS)
    assert window.current_layout() == "1x3"

    # View ▸ Layout: every plane and the 3-D view as 1 × 1; Ctrl+1 keeps the last one.
    layout_menu = next(a.menu() for a in window.menuBar().actions()
                       if a.text() == "&View").actions()[0].menu()
    entries = {a.text(): a for a in layout_menu.actions() if a.text()}
    for text, name in (("1 × 1 3-D", "3d"), ("1 × 1 sagittal", "sagittal")):
        entries[text].trigger()
        qt.waitUntil(lambda n=name: set(viewer.visible_view_names()) == {n}, timeout=WAIT_MS)
        assert entries[text].isChecked()
    prefs = load_preferences(library_dir / "preferences.json")
    assert (prefs.default_layout, prefs.single_view) == ("1x1", "sagittal")
    press(qt, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    press(qt, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert set(viewer.visible_view_names()) == {"sagittal"}
    window.close()

    reopened = make_window(library_dir)
    qt.waitUntil(lambda: set(reopened.viewer.visible_view_names()) == {"sagittal"},
                 timeout=WAIT_MS)
    assert reopened.single_actions["sagittal"].isChecked()


@gui
def test_a_view_maximised_from_a_hanging_protocol_goes_back_to_its_cells(
        make_window: Any, qt: Any, tmp_path: Path, library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    write_ct(tmp_path / "chest")  # "Chest routine": the shipped lung + mediastinum rule
    (series_id,) = import_into(library_dir, tmp_path / "chest")
    window = make_window(library_dir)
    activate(qt, window)
    open_and_wait(qt, window, series_id)
    viewer = window.viewer
    assert viewer.layout_name() == "cells", "the shipped chest CT rule lays out two cells"
    second = viewer.cells()[1]
    qt.mouseDClick(second, Qt.MouseButton.LeftButton, pos=view_centre(second))
    qt.waitUntil(lambda: viewer.layout_name() == "1x1", timeout=WAIT_MS)
    assert set(viewer.visible_view_names()) == {"axial"}
    axial = viewer.slice_views()["axial"]
    qt.mouseDClick(axial, Qt.MouseButton.LeftButton, pos=view_centre(axial))
    qt.waitUntil(lambda: viewer.layout_name() == "cells", timeout=WAIT_MS)
    assert len(viewer.cells()) == 2 and all(not v.isHidden() for v in viewer.cells())
    assert focused() in viewer.cells()


# --------------------------------------------------------------------------- 4. presets


def test_relative_presets_come_from_the_volume_not_hounsfield() -> None:
    from viewer.presets import (
        CT_PRESET_ORDER,
        PRESETS,
        RELATIVE_PRESET_ORDER,
        preset_fits,
        preset_order,
        relative_window,
    )

    rng = np.random.default_rng(3)
    mr = rng.integers(0, 15, size=(10, 64, 64)).astype(np.float64)  # background noise
    mr[:, 16:48, 16:48] = rng.normal(400.0, 30.0, size=(10, 32, 32))  # tissue
    assert preset_order("MR") == RELATIVE_PRESET_ORDER == preset_order("PT")
    assert preset_order("ct") == CT_PRESET_ORDER
    assert not preset_fits("lung", "MR") and preset_fits("auto", "MR")
    assert not preset_fits("tissue", "CT")
    width, level = relative_window("tissue", mr)
    # The tissue window spans the tissue (not the background that is most of the voxels).
    assert 250 < level - width / 2 < 400 < level + width / 2 < 550
    full_w, full_l = relative_window("full-range", mr)
    assert full_l - full_w / 2 < 15 and full_w > width
    assert (width, level) not in {(p.width, p.level) for p in PRESETS.values()}


@gui
def test_number_keys_and_preset_list_fit_the_modality(
        make_window: Any, qt: Any, ct_and_mr: dict[str, int], library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    from viewer.presets import PRESETS, relative_window

    window = make_window(library_dir)
    activate(qt, window)
    open_with_enter(qt, window, ct_and_mr["MR"])
    viewer = window.viewer
    array = viewer.volume.array
    hu_windows = {(p.width, p.level) for p in PRESETS.values()}
    combo = [window.preset_combo.itemData(i) for i in range(window.preset_combo.count())]
    assert combo == ["", "full-range", "tissue", "bright", "auto"]
    assert not set(window.preset_actions) & set(PRESETS)

    for key, name in ((Qt.Key.Key_2, "tissue"), (Qt.Key.Key_1, "full-range"),
                      (Qt.Key.Key_3, "bright")):
        press(qt, key)
        assert viewer.window_level_values() == pytest.approx(relative_window(name, array))
    # On screen, the tissue window: background black, tissue (300 ± 40) mid-grey, the
    # 900 block white.
    press(qt, Qt.Key.Key_2)
    shot = screen(qt, window, "mr_tissue_window.png")
    axial = viewer.slice_views()["axial"]
    assert lightness(shot, window, axial, 1, 5) < 30
    assert 70 < lightness(shot, window, axial, 9, 15) < 190
    assert lightness(shot, window, axial, 20, 27) > 230
    shown = viewer.window_level_values()
    for key in (Qt.Key.Key_4, Qt.Key.Key_8):  # CT's lung and bone keys: nothing on MR
        press(qt, key)
        assert viewer.window_level_values() == shown
        assert viewer.window_level_values() not in hu_windows
    assert "no window preset" in window.status_label.text()
    window.set_preset("lung")  # e.g. `lucida view --preset lung` on an MR
    assert viewer.window_level_values() == shown
    assert "Hounsfield" in window.status_label.text()

    # A CT lists and applies the HU presets again.
    open_with_enter(qt, window, ct_and_mr["CT"])
    combo = [window.preset_combo.itemData(i) for i in range(window.preset_combo.count())]
    assert combo[1:] == [*("brain subdural stroke lung mediastinum abdomen liver bone".split()),
                         "auto"]
    press(qt, Qt.Key.Key_4)
    assert viewer.window_level_values() == (PRESETS["lung"].width, PRESETS["lung"].level)


@gui
def test_a_radiograph_lists_its_own_windows_not_hounsfield_presets(
        make_window: Any, qt: Any, tmp_path: Path, library_dir: Path) -> None:
    import shutil

    from pydicom.data import get_testdata_file

    from viewer.presets import PRESETS

    folder = tmp_path / "cr"
    folder.mkdir()
    shutil.copy(get_testdata_file("RG1_J2KR.dcm"), folder / "rg1.dcm")
    (series_id,) = import_into(library_dir, folder)
    window = make_window(library_dir)
    open_and_wait(qt, window, series_id)
    view = window.viewer.projection_view()
    assert view is not None
    labels = [c.label for c in view.voi_choices()]
    combo = [window.preset_combo.itemData(i) for i in range(1, window.preset_combo.count())]
    assert combo == labels and not set(combo) & set(PRESETS)
    window.preset_combo.activated.emit(combo.index("full range") + 1)
    assert view.voi is not None and view.voi.label == "full range"


# --------------------------------------------------------------------------- 5. demo


@gui
def test_the_demo_does_not_replace_the_series_opened_while_it_was_made(
        make_window: Any, qt: Any, tmp_path: Path, library_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtCore import Qt

    import app.demo

    write_ct(tmp_path / "mine", patient="GAMMA^THREE", patient_id="PID-G",
             study_description="Abdomen routine")
    (mine,) = import_into(library_dir, tmp_path / "mine")
    # The demo job waits (in its worker thread) until the user's series is on screen.
    started, gate = threading.Event(), threading.Event()
    real = app.demo.ensure_demo_study

    def gated(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert gate.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.demo, "ensure_demo_study", gated)
    window = make_window(library_dir, open_demo=None)  # a first launch: the demo starts
    activate(qt, window)
    qt.waitUntil(started.is_set, timeout=WAIT_MS)  # the demo is being made
    tree = window.browser.tree
    index = series_index(window.browser, mine)
    tree.scrollTo(index)
    rect = tree.visualRect(index)
    with qt.waitSignal(window.series_loaded, timeout=20_000):
        qt.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qt.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qt.waitSignal(window.demo_ready, timeout=WAIT_MS) as ready:
        gate.set()
    demo_id = ready.args[0]
    qt.wait(500)
    assert demo_id != mine
    assert window.current_series_id == mine
    assert window.load_job is not None and not window.load_job.running
    assert window.current_volume is not None and window.viewer.volume is window.current_volume
    assert demo_id in window.browser.visible_series_ids()  # imported all the same
    assert "demo" in window.status_label.text().lower()


# --------------------------------------------------------------------------- 6. warnings


LONG = ("Slice spacing is irregular: the gap between slice 41 (z = -102.5 mm) and slice 42 "
        "(z = -96.0 mm) is 6.5 mm where the rest of the series is 2.5 mm apart, so distances "
        "measured across the gap and the reformatted coronal and sagittal views are wrong "
        "there; the volume was resampled onto a regular grid and the missing region is "
        "interpolated, so check every finding near it against the acquired axial images "
        "before relying on it WARNINGTAIL")


@gui
def test_warnings_dialog_shows_every_line_whole_and_copies(qt: Any) -> None:
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QFontMetrics, QGuiApplication

    from app.dialogs import WarningsDialog

    warnings = [LONG, "Two slices share one position; the later one was kept.",
                LONG.replace("WARNINGTAIL", "SECONDTAIL")]
    dialog = WarningsDialog("Series warnings", warnings)
    qt.addWidget(dialog)
    dialog.resize(640, 520)
    dialog.show()
    qt.waitExposed(dialog)
    qt.wait(100)
    table = dialog.table
    metrics = QFontMetrics(table.font())
    column = table.columnWidth(0)
    assert column <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()
    for row, text in enumerate(warnings):
        item = table.item(row, 0)
        assert item.text() == text  # the whole warning, last word included
        needed = metrics.boundingRect(QRect(0, 0, column - 12, 100_000),
                                      int(Qt.TextFlag.TextWordWrap), text).height()
        assert table.rowHeight(row) >= needed, (row, table.rowHeight(row), needed)
    # The last line of the last warning can be scrolled to and is inside the viewport.
    table.scrollToBottom()
    qt.wait(50)
    last = table.visualItemRect(table.item(len(warnings) - 1, 0))
    assert last.bottom() <= table.viewport().height()
    SHOTS.mkdir(parents=True, exist_ok=True)
    table.scrollToTop()
    qt.wait(50)
    shot = dialog.grab()
    shot.save(str(SHOTS / "warnings_dialog.png"))
    # Resizable: a narrower dialog wraps into taller rows instead of cutting them.
    tall = table.rowHeight(0)
    dialog.resize(420, 520)
    qt.waitUntil(lambda: table.rowHeight(0) > tall, timeout=5000)
    dialog.grab().save(str(SHOTS / "warnings_dialog_narrow.png"))

    qt.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    copied = QGuiApplication.clipboard().text()
    assert copied.splitlines() == warnings
    assert copied.rstrip().endswith("SECONDTAIL")


@gui
def test_the_window_opens_the_warnings_of_its_series(make_window: Any, qt: Any, tmp_path: Path,
                                                     library_dir: Path) -> None:
    from app.dialogs import WarningsDialog

    files = write_ct(tmp_path / "gappy", n_slices=12, study_description="Abdomen")
    files[5].unlink()  # a missing slice in the middle
    (series_id,) = import_into(library_dir, tmp_path / "gappy")
    window = make_window(library_dir)
    open_and_wait(qt, window, series_id)
    window.show_warnings()
    dialog = window.last_dialog
    assert isinstance(dialog, WarningsDialog)
    qt.waitExposed(dialog)
    texts = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert texts == window.volume_warnings()
    assert dialog.isSizeGripEnabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "warnings_dialog_series.png"))
