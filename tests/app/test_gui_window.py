"""The main window on a real library: demo on first launch, search, import report,
background loading (first image early, cancel), layouts, measurements that survive
closing, identity toggle, thumbnails, warnings.

Real DICOM series are written to tmp_path and imported into a real SQLite library;
the window is a real Qt + VTK window under Xvfb.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.volume import Volume

pytestmark = pytest.mark.gui

WAIT_MS = 60_000



def write_ct(folder: Path, *, patient: str = "ALPHA^ONE", patient_id: str = "PID-A",
             modality: str = "CT", study_date: str = "20250314",
             study_description: str = "Chest routine", series_description: str = "Axial 2mm",
             n_slices: int = 24, size: int = 48, spacing_mm: float = 2.0) -> list[Path]:
    """A real DICOM series: a bright cube (300) in soft tissue (40), air outside."""
    from dicomio.write_image import SeriesInfo, write_series

    array = np.full((n_slices, size, size), -1000, dtype=np.int16)
    array[:, 8:-8, 8:-8] = 40
    array[n_slices // 3: 2 * n_slices // 3, 16:32, 16:32] = 300
    affine = np.diag([spacing_mm, 0.8, 0.8, 1.0])
    affine[:3, 3] = (-20.0, -20.0, -100.0)
    affine[:3, :3] = np.column_stack([(0, 0, spacing_mm), (0, 0.8, 0), (0.8, 0, 0)])
    volume = Volume(array, affine, modality=modality)
    info = SeriesInfo(patient_name=patient, patient_id=patient_id, study_date=study_date,
                      study_description=study_description,
                      series_description=series_description)
    return write_series(volume, folder, info, modality=modality,
                        rescale_intercept=-1024.0 if modality == "CT" else 0.0)


def import_into(library_dir: Path, *paths: Path) -> list[int]:
    from app.importer import import_paths
    from store import Library

    library = Library.open(library_dir)
    try:
        import_paths(library, list(paths))
        return [s.id for s in library.all_series()]
    finally:
        library.close()


def drop_on(window: Any, paths: list[Path]) -> None:
    """Deliver a real drag-enter + drop of local files to the window."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = window.rect().center()
    # Qt's QDragEnterEvent takes a QPoint, QDropEvent a QPointF.
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()


def open_and_wait(qt: Any, window: Any, series_id: int) -> None:
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(series_id)


# --------------------------------------------------------------------------- launch


def test_first_launch_makes_lists_and_opens_the_demo(make_window: Any, qt: Any,
                                                     library_dir: Path) -> None:
    import argparse

    from app.gui import create_main_window

    # As `lucida --library DIR` builds it (run_gui minus the event loop).
    window = create_main_window(argparse.Namespace(library=str(library_dir)))
    window.show()
    qt.addWidget(window)
    qt.waitUntil(lambda: window.current_volume is not None, timeout=WAIT_MS)
    demo_id = window.current_series_id
    assert demo_id is not None
    assert window.viewer.volume is window.current_volume
    assert window.viewer.volume.shape[0] > 1
    assert demo_id in window.browser.visible_series_ids()
    prefs = json.loads((library_dir / "preferences.json").read_text(encoding="utf-8"))
    assert prefs["first_launch_done"] is True
    window.close()

    # Second launch: the demo is listed but not forced open again.
    again = make_window(library_dir, open_demo=None)
    qt.wait(300)
    assert again.load_job is None and again.current_series_id is None
    assert demo_id in again.browser.visible_series_ids()


# --------------------------------------------------------------------------- library


@pytest.fixture
def two_patients(tmp_path: Path, library_dir: Path) -> dict[str, int]:
    """A CT chest of ALPHA^ONE (2025-03-14) and an MR head of BETA^TWO (2024-11-02)."""
    write_ct(tmp_path / "src" / "ct")
    write_ct(tmp_path / "src" / "mr", patient="BETA^TWO", patient_id="PID-B", modality="MR",
             study_date="20241102", study_description="Head", series_description="T1 sagittal")
    import_into(library_dir, tmp_path / "src")
    from store import Library

    library = Library.open(library_dir)
    try:
        return {s.modality: s.id for s in library.all_series()}
    finally:
        library.close()


def test_search_filters_the_browser(make_window: Any, two_patients: dict[str, int],
                                    library_dir: Path) -> None:
    window = make_window(library_dir)
    browser = window.browser
    both = sorted(two_patients.values())
    assert sorted(browser.visible_series_ids()) == both
    cases = {
        "beta": [two_patients["MR"]],  # patient name
        "PID-A": [two_patients["CT"]],  # patient ID
        "2024-11": [two_patients["MR"]],  # study date, ISO form
        "20250314": [two_patients["CT"]],  # study date, DICOM form
        "mr": [two_patients["MR"]],  # modality
        "chest": [two_patients["CT"]],  # study description
        "sagittal t1": [two_patients["MR"]],  # series description, words in any order
        "alpha head": [],  # words must all match
        "": both,
    }
    for text, expected in cases.items():
        browser.set_filter(text)
        assert sorted(browser.visible_series_ids()) == expected, text


def test_double_click_on_a_series_opens_it(make_window: Any, qt: Any,
                                           two_patients: dict[str, int],
                                           library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    from app.library_browser import ID_ROLE

    window = make_window(library_dir)
    browser = window.browser
    browser.set_filter("beta")
    index = browser.proxy.index(0, 0)  # patient → study → series
    index = browser.proxy.index(0, 0, browser.proxy.index(0, 0, index))
    assert index.data(ID_ROLE) == two_patients["MR"]
    rect = browser.tree.visualRect(index)
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS) as loaded:
        qt.mouseClick(browser.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qt.mouseDClick(browser.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert loaded.args == [two_patients["MR"]]
    assert window.current_volume.modality == "MR"


def test_import_report_lists_skipped_files_with_reasons(make_window: Any, qt: Any,
                                                        tmp_path: Path, library_dir: Path) -> None:
    from app.dialogs import ImportReportDialog

    folder = tmp_path / "incoming"
    sources = write_ct(folder / "series")
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    (folder / "broken.dcm").write_bytes(b"\x00" * 200)
    before = sorted(p.name for p in folder.rglob("*"))

    window = make_window(library_dir)
    assert window.browser.visible_series_ids() == []
    with qt.waitSignal(window.import_done, timeout=WAIT_MS) as done:
        drop_on(window, [folder])  # drag and drop of a folder onto the window
    report = done.args[0]
    assert report.new == len(sources)
    dialog = window.last_dialog
    assert isinstance(dialog, ImportReportDialog) and dialog.isVisible()
    rows = dict(dialog.skipped_rows())
    skipped_names = {Path(p).name: reason for p, reason in rows.items()}
    assert set(skipped_names) == {"notes.txt", "broken.dcm"}
    assert all(reason.strip() for reason in skipped_names.values())
    assert len(window.browser.visible_series_ids()) == 1
    # Nothing was written next to the sources.
    assert sorted(p.name for p in folder.rglob("*")) == before


def test_thumbnails_are_cached_in_the_library_not_beside_sources(
        make_window: Any, qt: Any, two_patients: dict[str, int], library_dir: Path,
        tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    from app.library_browser import thumb_dir

    before = sorted(p.name for p in (tmp_path / "src").rglob("*"))
    window = make_window(library_dir)
    keys = list(window.browser._series_items)
    assert len(keys) == 2
    qt.waitUntil(lambda: all(window.browser.has_thumbnail(k) for k in keys), timeout=WAIT_MS)
    thumbs = sorted(thumb_dir(library_dir).glob("*.png"))
    assert len(thumbs) == 2
    image = QImage(str(thumbs[0]))
    assert max(image.width(), image.height()) == 128  # shown at 64 logical px, 2× for HiDPI
    assert sorted(p.name for p in (tmp_path / "src").rglob("*")) == before


# --------------------------------------------------------------------------- loading


def test_first_image_is_shown_before_loading_completes(make_window: Any, qt: Any,
                                                       two_patients: dict[str, int],
                                                       library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    window = make_window(library_dir)
    events: list[str] = []
    in_worker: list[bool] = []

    def on_loading(_series_id: object) -> None:
        # Runs before the job starts: a direct connection sees each partial in the worker.
        job = window.load_job
        job.partial.connect(lambda _vol: in_worker.append(job.running),
                            Qt.ConnectionType.DirectConnection)

    window.series_loading.connect(on_loading)
    def on_first(_sid: object) -> None:
        volume = window.viewer.volume
        k = round(float(volume.lps_to_index(window.viewer.cursor_lps())[0]))
        # The shown axial slice holds pixels already (not the empty background).
        events.append(f"first:{np.ptp(volume.array[k]) > 0}")

    window.first_image_shown.connect(on_first)
    window.series_loaded.connect(lambda _sid: events.append("loaded"))
    open_and_wait(qt, window, two_patients["CT"])
    assert in_worker and in_worker[0] is True  # partial volume sent while still reading
    assert events == ["first:True", "loaded"]
    assert window.current_volume.shape == (24, 48, 48)
    assert window.viewer.volume is window.current_volume
    assert not window.progress.isVisible()
    # Loaded and untouched: the crosshair settles in the middle of the volume.
    np.testing.assert_allclose(window.viewer.cursor_lps(), window.current_volume.center_lps(),
                               atol=1e-6)


def test_cancel_stops_loading(make_window: Any, qt: Any, two_patients: dict[str, int],
                              library_dir: Path) -> None:
    from PySide6.QtCore import Qt

    window = make_window(library_dir)
    loaded: list[object] = []
    window.series_loaded.connect(loaded.append)

    def on_loading(_series_id: object) -> None:
        job = window.load_job
        # Cancel from inside the first slice callback: the reader must stop there.
        job.partial.connect(lambda _vol: job.cancel(), Qt.ConnectionType.DirectConnection)

    window.series_loading.connect(on_loading)
    with qt.waitSignal(window.load_cancelled, timeout=WAIT_MS):
        window.open_series(two_patients["CT"])
    qt.waitUntil(lambda: not window.load_job.running, timeout=WAIT_MS)
    assert loaded == []
    assert window.current_volume is None
    assert window.viewer.volume is None
    assert "cancelled" in window.status_label.text().lower()

    # The window is still usable afterwards.
    window.series_loading.disconnect(on_loading)
    open_and_wait(qt, window, two_patients["CT"])
    assert window.current_volume is not None


def test_a_series_whose_files_are_gone_fails_with_a_message(make_window: Any, qt: Any,
                                                            tmp_path: Path,
                                                            library_dir: Path) -> None:
    files = write_ct(tmp_path / "gone", n_slices=6)
    (series_id,) = import_into(library_dir, tmp_path / "gone")
    for f in files:
        f.unlink()
    window = make_window(library_dir)
    with qt.waitSignal(window.load_failed, timeout=WAIT_MS) as failed:
        window.open_series(series_id)
    assert failed.args[0]
    assert window.current_volume is None and window.viewer.volume is None
    assert "failed" in window.status_label.text()


def test_volume_warnings_reach_the_user(make_window: Any, qt: Any, tmp_path: Path,
                                        library_dir: Path) -> None:
    files = write_ct(tmp_path / "gappy", n_slices=12)
    files[5].unlink()  # a missing slice in the middle
    (series_id,) = import_into(library_dir, tmp_path / "gappy")
    window = make_window(library_dir)
    open_and_wait(qt, window, series_id)
    warnings = window.volume_warnings()
    assert warnings, "a gap in the stack must produce a warning"
    assert window.warning_banner.isVisible()
    assert warnings[0][:20] in window.warning_banner.text()
    window.show_warnings()
    assert window.last_dialog.table.rowCount() == len(warnings)


# --------------------------------------------------------------------------- view state


def test_layout_switching(make_window: Any, qt: Any, two_patients: dict[str, int],
                          library_dir: Path) -> None:
    from app.settings import load_preferences

    window = make_window(library_dir)
    open_and_wait(qt, window, two_patients["CT"])
    expected = {"1x1": {"axial"}, "1x3": {"axial", "coronal", "sagittal"},
                "2x2": {"axial", "coronal", "sagittal", "3d"}}
    for name in ("2x2", "1x1", "1x3", "2x2"):
        window.layout_actions[name].trigger()  # as the toolbar, menu and Ctrl+1..3 do
        qt.waitUntil(lambda n=name: set(window.viewer.visible_view_names()) == expected[n],
                     timeout=WAIT_MS)
        assert window.viewer.layout_name() == name
        assert window.current_layout() == name
    assert load_preferences(library_dir / "preferences.json").default_layout == "2x2"
    window.close()
    reopened = make_window(library_dir)
    assert reopened.viewer.layout_name() == "2x2"
    assert reopened.layout_actions["2x2"].isChecked()


def test_window_and_dock_state_are_remembered(make_window: Any, qt: Any,
                                              library_dir: Path) -> None:
    window = make_window(library_dir)
    assert window.measurements_dock.isVisible()
    window.measurements_dock.toggleViewAction().trigger()
    window.resize(1300, 850)
    qt.waitUntil(lambda: not window.measurements_dock.isVisible(), timeout=WAIT_MS)
    window.close()
    assert (library_dir / "window-state.ini").is_file()
    again = make_window(library_dir)
    assert not again.measurements_dock.isVisible()
    assert again.browser_dock.isVisible()


def test_identity_toggle_hides_names_everywhere(make_window: Any, qt: Any,
                                                two_patients: dict[str, int],
                                                library_dir: Path) -> None:
    window = make_window(library_dir)
    open_and_wait(qt, window, two_patients["CT"])
    axial = window.viewer.slice_views()["axial"]
    tree_text = lambda: " ".join(  # noqa: E731
        window.browser.model.item(r).text() for r in range(window.browser.model.rowCount()))
    assert "ALPHA" in tree_text()
    window.act_identity.trigger()  # Ctrl+I
    assert window.act_identity.isChecked() is False
    assert "ALPHA" not in tree_text() and "BETA" not in tree_text()
    assert "Patient 1" in tree_text()
    corner = " ".join(axial.corner_texts().values())
    assert "ALPHA" not in corner and "PID-A" not in corner
    window.act_identity.trigger()
    assert "PID-A" in " ".join(axial.corner_texts().values())


def test_toolbar_drives_the_viewer(make_window: Any, qt: Any, two_patients: dict[str, int],
                                   library_dir: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QKeySequence

    from app.settings import load_preferences
    from viewer.presets import PRESETS

    window = make_window(library_dir)
    open_and_wait(qt, window, two_patients["CT"])
    viewer = window.viewer
    # Window preset from the toolbar combo: the viewer's window and the preference follow.
    index = window.preset_combo.findData("bone")
    window.preset_combo.activated.emit(index)
    assert viewer.window_level_values() == (PRESETS["bone"].width, PRESETS["bone"].level)
    assert load_preferences(library_dir / "preferences.json").last_preset == "bone"
    # Slab mode and thickness.
    window.slab_mode.setCurrentIndex(window.slab_mode.findData("mip"))
    window.slab_mm.setValue(8.0)
    assert (viewer.slab.mode, viewer.slab.thickness_mm) == ("mip", 8.0)
    window.slab_mode.setCurrentIndex(window.slab_mode.findData("none"))
    assert viewer.slab.mode == "none" and not window.slab_mm.isEnabled()
    # Measurement tools by keyboard shortcut (D = distance), in every slice view.
    window.activateWindow()
    window.tool_actions["distance"].trigger()
    assert {v.tool for v in viewer.slice_views().values()} == {"distance"}
    assert window.tool_actions["distance"].shortcut() == QKeySequence(Qt.Key.Key_D)
    # The review owns A, R, E, N, P: no tool may share them (an ambiguous shortcut fires
    # neither action).
    review_keys = {a.shortcut() for a in window.findings_panel.review_actions()}
    assert not review_keys & {a.shortcut() for a in window.tool_actions.values()}
    assert QKeySequence("A") in review_keys
    window.tool_actions["navigate"].trigger()
    assert {v.tool for v in viewer.slice_views().values()} == {"navigate"}


def test_cine_steps_one_slice_and_wraps(make_window: Any, qt: Any,
                                        two_patients: dict[str, int], library_dir: Path) -> None:
    window = make_window(library_dir)
    open_and_wait(qt, window, two_patients["CT"])
    volume = window.current_volume
    start = np.asarray(volume.lps_to_index(window.viewer.cursor_lps()))
    k = window.cine_step()
    after = np.asarray(volume.lps_to_index(window.viewer.cursor_lps()))
    assert k == round(start[0]) + 1
    np.testing.assert_allclose(after, [k, start[1], start[2]], atol=1e-6)
    for _ in range(volume.shape[0] - k):
        k = window.cine_step()
    assert k == 0
    window.act_cine.trigger()
    assert window._cine_timer.isActive()
    window.act_cine.trigger()
    assert not window._cine_timer.isActive()


def test_help_sheet_and_about_box(make_window: Any, library_dir: Path) -> None:
    window = make_window(library_dir)
    window.act_shortcuts.trigger()
    keys = {k: v for k, v in window.shortcut_rows()}
    assert "Ctrl+I" in keys and "Ctrl+1" in keys
    assert keys["A"] == "Accept finding(s)" and keys["Shift+A"] == "Angle"
    assert window.last_dialog.table.rowCount() == len(window.shortcut_rows())
    window.act_about.trigger()
    text = window.last_dialog.notice.text().lower()
    assert "not for diagnostic use" in text


# --------------------------------------------------------------------------- measurements


def test_measurements_survive_closing_and_reopening(make_window: Any, qt: Any,
                                                    two_patients: dict[str, int],
                                                    library_dir: Path) -> None:
    from store import Library

    ct, mr = two_patients["CT"], two_patients["MR"]
    window = make_window(library_dir)
    open_and_wait(qt, window, ct)
    axial = window.viewer.slice_views()["axial"]
    w, h = axial.width(), axial.height()
    axial.add_measurement_from_display("distance", [(w * 0.3, h * 0.5), (w * 0.7, h * 0.5)])
    axial.add_measurement_from_display("rectangle", [(w * 0.4, h * 0.4), (w * 0.6, h * 0.6)])
    records = window.viewer.measurement_records()
    assert window.measurements.row_count() == 2

    library = Library.open(library_dir)  # the real store file, another connection
    try:
        saved = library.load_measurements(ct)
    finally:
        library.close()
    assert [r["kind"] for r in saved] == ["distance", "rectangle"]

    # Another series, then back: restored.
    open_and_wait(qt, window, mr)
    assert window.viewer.measurement_records() == []
    open_and_wait(qt, window, ct)
    restored = window.viewer.measurement_records()
    assert [r["kind"] for r in restored] == ["distance", "rectangle"]
    np.testing.assert_allclose(restored[0]["points_lps_mm"], records[0]["points_lps_mm"])
    assert restored[0]["stats"]["length_mm"] == pytest.approx(records[0]["stats"]["length_mm"])

    # Close the application window and start again.
    window.close()
    window = make_window(library_dir)
    open_and_wait(qt, window, ct)
    assert window.measurements.row_count() == 2

    # Select jumps to the measurement, Delete removes it and the store follows.
    window.measurements.table.selectRow(1)
    rect = window.viewer.measurement_records()[1]
    np.testing.assert_allclose(window.viewer.cursor_lps(),
                               np.mean(rect["points_lps_mm"], axis=0), atol=1e-6)
    window.measurements.delete_button.click()
    assert window.measurements.row_count() == 1
    library = Library.open(library_dir)
    try:
        assert [r["kind"] for r in library.load_measurements(ct)] == ["distance"]
    finally:
        library.close()


# --------------------------------------------------------------------------- models dock


def test_model_result_is_shown_as_an_overlay_on_its_own_series_only(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = make_window(library_dir, open_demo=True)
    qt.waitUntil(lambda: window.current_volume is not None, timeout=WAIT_MS)
    panel = window.models_panel
    assert panel is not None, "the Models panel is mounted in a dock"
    assert window.models_dock is not None
    panel.select_pack("lucida-demo-lung-density")
    if panel.input_warnings():
        panel.confirm.setChecked(True)
    with qt.waitSignal(panel.result_ready, timeout=240_000) as got:
        assert panel.run_selected()
    result = got.args[0]
    # The run is recorded and its review opens at once: one row per finding, drawn as
    # findings (not a plain label overlay) — a click focuses every view on it.
    assert window.series is not None and window.series.run_id is not None
    assert "recorded" in window.status_label.text()
    findings = window.findings_panel
    assert result.findings and findings.row_count() == len(result.findings)
    assert sorted(window.viewer.findings_layer.keys()) == sorted(r.key for r in findings.rows())
    row = findings.rows()[0]
    assert any(np.allclose(row.centroid_lps, f.centroid_lps) for f in result.findings)
    rect = findings.table.visualRect(findings.table.model().index(0, 1))
    QTest.mouseClick(findings.table.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, rect.center())
    assert np.allclose(window.viewer.cursor_lps(), row.centroid_lps, atol=1e-6)
    assert window.viewer.findings_layer.selected == row.key

    # A result that arrives after the user opened another series is not painted on it.
    write_ct(tmp_path / "other")
    import_into(library_dir, tmp_path / "other")
    window.refresh_library()
    other = [sid for sid in window.browser.visible_series_ids()
             if sid != window.current_series_id]
    open_and_wait(qt, window, other[0])
    # The other series shows its own (no) runs: nothing of the demo's findings.
    assert findings.row_count() == 0 and window.viewer.findings_layer.keys() == []
    assert window.series.runs() == []
    panel.result_ready.emit(result)
    assert window.viewer.overlay_names() == [] and findings.row_count() == 0
    assert "ignored" in window.status_label.text()


def test_unreadable_saved_measurements_do_not_block_the_others(make_window: Any, qt: Any,
                                                               two_patients: dict[str, int],
                                                               library_dir: Path) -> None:
    from store import Library

    ct = two_patients["CT"]
    window = make_window(library_dir)
    open_and_wait(qt, window, ct)
    axial = window.viewer.slice_views()["axial"]
    w, h = axial.width(), axial.height()
    axial.add_measurement_from_display("distance", [(w * 0.3, h * 0.5), (w * 0.7, h * 0.5)])
    good = window.viewer.measurement_records()[0]
    library = Library.open(library_dir)
    try:  # a record a future or damaged version might have left behind
        library.save_measurements(ct, [good, {"kind": "distance", "points_lps_mm": [[0, 0, 0]]}])
    finally:
        library.close()
    open_and_wait(qt, window, two_patients["MR"])
    open_and_wait(qt, window, ct)
    assert [r["kind"] for r in window.viewer.measurement_records()] == ["distance"]
    assert "could not be restored" in window.status_label.text()


def test_long_messages_take_one_line_of_the_status_bar(make_window: Any,
                                                       library_dir: Path) -> None:
    window = make_window(library_dir)
    window.set_status("Model: could not start\n  a long traceback-like\n  explanation")
    assert window.status_label.text() == "Model: could not start …"
    assert "explanation" in window.status_label.toolTip()
    window.set_status("Loaded")
    assert window.status_label.text() == "Loaded" and window.status_label.toolTip() == ""


# --------------------------------------------------------------------------- stored data is safe


def mouse_drag(widget: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A real left-button drag (press, moves, release) delivered to a widget."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind: QEvent.Type, x: float, y: float, button: Any, buttons: Any) -> None:
        p = QPointF(x, y)
        QApplication.sendEvent(widget, QMouseEvent(kind, p, widget.mapToGlobal(p), button,
                                                   buttons, Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, *start, left, left)
    for t in (0.25, 0.5, 0.75, 1.0):
        send(QEvent.Type.MouseMove, start[0] + (end[0] - start[0]) * t,
             start[1] + (end[1] - start[1]) * t, none, left)
    send(QEvent.Type.MouseButtonRelease, *end, left, none)


def draw_distance(window: Any, y_fraction: float) -> None:
    """The user picks the Distance tool and drags across the axial view."""
    window.tool_actions["distance"].trigger()
    axial = window.viewer.slice_views()["axial"]
    w, h = axial.width(), axial.height()
    before = len(window.viewer.measurement_records())
    mouse_drag(axial, (w * 0.3, h * y_fraction), (w * 0.7, h * y_fraction))
    assert len(window.viewer.measurement_records()) == before + 1


def _raw_rows(library_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    import sqlite3

    conn = sqlite3.connect(library_dir / "library.sqlite", isolation_level=None)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["undecodable JSON", "unusable geometry", "unreadable table"])
def test_measurements_that_cannot_be_read_are_never_saved_over(
        make_window: Any, qt: Any, two_patients: dict[str, int], library_dir: Path,
        damage: str) -> None:
    ct = two_patients["CT"]
    window = make_window(library_dir)
    open_and_wait(qt, window, ct)
    draw_distance(window, 0.4)
    draw_distance(window, 0.6)
    window.close()  # closes the library: everything is in library.sqlite itself

    db = library_dir / "library.sqlite"
    second = _raw_rows(library_dir, "SELECT MAX(id) FROM measurements")[0][0]
    if damage == "undecodable JSON":
        _raw_rows(library_dir, "UPDATE measurements SET payload_json = "
                  "substr(payload_json, 1, 40) WHERE id = ?", (second,))
    elif damage == "unusable geometry":
        _raw_rows(library_dir, "UPDATE measurements SET payload_json = json_set(payload_json, "
                  "'$.points_lps_mm', json('[[1, 2, 3]]')) WHERE id = ?", (second,))
    else:  # the measurements table's page is garbage: reading it fails
        page_size, root = _raw_rows(library_dir, "SELECT * FROM pragma_page_size(), (SELECT "
                                    "rootpage FROM sqlite_master WHERE name = 'measurements')")[0]
        with open(db, "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(bytes(range(256)) * (page_size // 256))
    stored = db.read_bytes()

    window = make_window(library_dir)
    window.interactive = True  # the user gets the dialog too
    open_and_wait(qt, window, ct)
    shown = 0 if damage == "unreadable table" else 1
    assert window.measurements.row_count() == shown  # what could be read is shown
    notice = window.measurements.notice_text()
    assert "could not all be read" in notice and "NOT saved" in notice
    if damage != "unreadable table":
        assert "could not be restored" in window.status_label.text()
    assert "not saved" in window.status_label.text()
    assert window.last_dialog is not None and window.last_dialog.isVisible()
    assert "NOT saved" in window.last_dialog.text()

    # The user goes on measuring, and deletes one: nothing reaches the store.
    draw_distance(window, 0.5)
    assert window.measurements.row_count() == shown + 1
    assert window.status_label.text().startswith("Not saved: measurements of this series")
    window.measurements.table.selectRow(0)
    window.measurements.delete_button.click()
    assert window.measurements.row_count() == shown
    window.close()
    assert db.read_bytes() == stored, "the saved measurements were written over"

    window = make_window(library_dir)
    open_and_wait(qt, window, two_patients["MR"])
    draw_distance(window, 0.5)
    if damage == "unreadable table":  # the whole table is unreadable: saving fails, visibly
        assert window.status_label.text().startswith(
            "Could not save measurements: library.sqlite is damaged")
        window.close()
        assert db.read_bytes() == stored
    else:  # another series is unaffected: its measurements are saved as usual
        assert window.measurements.notice_text() == ""
        assert _raw_rows(library_dir, "SELECT COUNT(*) FROM measurements WHERE series_row = ?",
                         (two_patients["MR"],)) == [(1,)]


def test_a_library_locked_by_another_program_is_a_dialog_and_nothing_is_lost(
        make_window: Any, qt: Any, two_patients: dict[str, int], library_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import subprocess
    import sys
    import time

    import store.library

    monkeypatch.setattr(store.library, "BUSY_TIMEOUT_S", 1.0)
    ct = two_patients["CT"]
    window = make_window(library_dir)
    window.interactive = True
    open_and_wait(qt, window, ct)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n", str(library_dir / "library.sqlite")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        draw_distance(window, 0.4)
        assert time.monotonic() - started < 20  # a bounded wait, not a hung window
        dialog = window.last_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.windowTitle() == "Could not save measurements"
        assert dialog.text().startswith("the library is in use by another Lucida (")
        assert "close the other Lucida or wait" in dialog.text()
        assert window.measurements.row_count() == 1  # still on screen
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # Lock gone: the next edit saves everything the user drew, the first one included.
    draw_distance(window, 0.6)
    conn = sqlite3.connect(library_dir / "library.sqlite")
    try:
        assert conn.execute("SELECT COUNT(*) FROM measurements WHERE series_row = ?",
                            (ct,)).fetchone() == (2,)
    finally:
        conn.close()


def _run_gui_and_answer_dialogs(library_dir: Path, qt: Any) -> tuple[int, list[tuple[str, str]]]:
    """`lucida --library DIR` (run_gui, event loop included); every message box that
    opens is read and closed, then the main window (if any) is closed."""
    import argparse

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

    from app.gui import run_gui

    seen: list[tuple[str, str]] = []
    finished = [False]

    def answer() -> None:
        if finished[0]:
            return
        boxes = [w for w in QApplication.topLevelWidgets()
                 if isinstance(w, QMessageBox) and w.isVisible()]
        for box in boxes:
            seen.append((box.windowTitle(), box.text()))
            box.done(0)
        windows = [w for w in QApplication.topLevelWidgets()
                   if isinstance(w, QMainWindow) and w.isVisible()]
        if seen and not boxes:
            for w in windows:
                w.close()
        if not seen or boxes or windows:
            QTimer.singleShot(200, answer)

    QTimer.singleShot(200, answer)
    try:
        code = run_gui(argparse.Namespace(library=str(library_dir)))
    finally:
        finished[0] = True
    return code, seen


@pytest.mark.parametrize("damage", ["not sqlite", "newer schema", "unreadable series table"])
def test_a_damaged_library_at_start_is_a_dialog(qt: Any, two_patients: dict[str, int],
                                                library_dir: Path, damage: str) -> None:
    from store import SCHEMA_VERSION

    (library_dir / "preferences.json").write_text('{"first_launch_done": true}',
                                                  encoding="utf-8")
    db = library_dir / "library.sqlite"
    if damage == "not sqlite":
        db.write_bytes(b"not a database at all\n" * 500)
    elif damage == "newer schema":
        _raw_rows(library_dir, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        page_size, root = _raw_rows(library_dir, "SELECT * FROM pragma_page_size(), (SELECT "
                                    "rootpage FROM sqlite_master WHERE name = 'series')")[0]
        with open(db, "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(bytes(range(256)) * (page_size // 256))
    before = db.read_bytes()
    code, seen = _run_gui_and_answer_dialogs(library_dir, qt)
    assert len(seen) == 1, seen
    title, text = seen[0]
    if damage == "newer schema":
        assert code == 2 and title == "Lucida cannot start"
        assert f"schema version {SCHEMA_VERSION + 1}, newer than this Lucida" in text
    elif damage == "not sqlite":
        assert code == 2 and title == "Lucida cannot start"
        assert text.startswith("library.sqlite is damaged: ")
    else:  # the window opens and says what is wrong; the app stays alive
        assert code == 0 and title == "The library could not be read"
        assert text.startswith("library.sqlite is damaged: ")
    assert "restore it from a backup" in text or damage == "newer schema"
    assert db.read_bytes() == before


def test_preferences_from_a_newer_lucida_are_not_written_over(make_window: Any, qt: Any,
                                                              library_dir: Path) -> None:
    prefs_file = library_dir / "preferences.json"
    newer = json.dumps({"version": 99, "default_layout": "2x2", "first_launch_done": True})
    prefs_file.write_text(newer, encoding="utf-8")
    window = make_window(library_dir)
    assert "newer Lucida" in window.status_label.text()
    assert "not saved" in window.status_label.toolTip() + window.status_label.text()
    window.set_layout("1x1")
    window.set_identity_visible(False)
    window.close()
    assert prefs_file.read_text(encoding="utf-8") == newer


def test_closing_while_a_series_loads_drops_its_late_results(make_window: Any, qt: Any,
                                                             two_patients: dict[str, int],
                                                             library_dir: Path) -> None:
    # The load's results are queued to the GUI thread; one delivered after closeEvent must
    # not touch the closed library or the shut-down viewer (pytest-qt fails the test on an
    # exception raised in a slot).
    from app import workers

    window = make_window(library_dir)
    window.open_series(two_patients["CT"])
    # The reader finishes while the GUI thread is busy: its results wait in the event queue.
    assert workers.pool().waitForDone(WAIT_MS)
    window.close()
    qt.wait(1000)
    assert window.current_volume is None
