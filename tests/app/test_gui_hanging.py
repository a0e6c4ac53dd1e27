"""Hanging protocols in a real main window: the demo chest CT opens as lung + mediastinum
cells, no match gives the default layout, user rules from the settings win, and the dialog
edits, validates and saves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.app.test_gui_window import WAIT_MS, import_into, write_ct

pytestmark = pytest.mark.gui

SHOTS = Path("/tmp/shots18/h4")



def open_and_wait(qt: Any, window: Any, series_id: int) -> None:
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(series_id)


def grey(width: float, level: float, value: float) -> float:
    return float(np.clip((value - (level - width / 2)) / width, 0, 1) * 255)


def landmark(volume: Any, cursor: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """An LPS point on the shown axial slice inside a 7×7 patch of values in [lo, hi], away
    from the crosshair, and the patch's median value."""
    k, jc, ic = (int(np.rint(v)) for v in volume.lps_to_index(cursor))
    plane = np.asarray(volume.array[k], dtype=np.float64)
    inside = (plane >= lo) & (plane <= hi)
    from scipy.ndimage import binary_erosion

    core = binary_erosion(inside, structure=np.ones((7, 7), bool))
    jj, ii = np.nonzero(core)
    keep = (np.abs(jj - jc) > 12) & (np.abs(ii - ic) > 12)
    assert keep.any(), f"no {lo}..{hi} patch on slice {k}"
    j, i = int(jj[keep][0]), int(ii[keep][0])
    value = float(np.median(plane[j - 3: j + 4, i - 3: i + 4]))
    return np.asarray(volume.index_to_lps((k, j, i)), dtype=float), value


def shown_grey(view: Any, lps: np.ndarray) -> float:
    x, y = view.lps_to_display(lps)
    arr = view.grab_rgb()
    x, y = round(x), round(y)
    return float(np.median(arr[y - 1: y + 2, x - 1: x + 2, 0]))


def save_window_png(window: Any, name: str) -> None:
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    window.screen().grabWindow(window.winId()).save(str(SHOTS / name))


def test_demo_chest_ct_opens_lung_and_mediastinum_then_no_match_is_the_default(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    window = make_window(library_dir, open_demo=True, size=(1500, 900))
    qt.waitUntil(lambda: window.current_volume is not None, timeout=WAIT_MS * 4)
    assert window.hanging is not None
    assert window.hanging.rule_name == "Chest CT: lung and mediastinum"
    viewer = window.viewer
    assert viewer.layout_name() == "cells"
    lung, mediastinum = viewer.cells()
    assert lung.isVisible() and mediastinum.isVisible() and lung.x() < mediastinum.x()
    assert viewer.cell_window_levels() == [(1500.0, -600.0), (350.0, 50.0)]
    assert "W 1500" in lung.corner_texts()["bottom_right"]
    assert "W 350" in mediastinum.corner_texts()["bottom_right"]
    # Landmarks: aerated lung is mid-grey in the lung cell and black in the mediastinal
    # one; soft tissue is near-white in the lung cell and mid-grey in the mediastinal one.
    volume = window.current_volume
    cursor = viewer.cursor_lps()
    for lo, hi in [(-950.0, -700.0), (0.0, 80.0)]:
        lps, value = landmark(volume, cursor, lo, hi)
        got = shown_grey(lung, lps), shown_grey(mediastinum, lps)
        want = grey(1500.0, -600.0, value), grey(350.0, 50.0, value)
        assert got == pytest.approx(want, abs=8), (lo, hi, value)
        assert abs(got[0] - got[1]) > 40
    save_window_png(window, "demo_chest_ct_lung_mediastinum.png")
    # A window drag in one cell leaves the other alone; scrolling stays linked.
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    mediastinum.setFocus()
    QTest.keyClick(mediastinum, Qt.Key.Key_PageDown)
    assert lung.slice_index() == mediastinum.slice_index()

    # An MR of another patient matches no rule: the default layout, shared window.
    write_ct(tmp_path / "src" / "mr", patient="BETA^TWO", patient_id="PID-B", modality="MR",
             study_date="20241102", study_description="Head", series_description="T1 sag")
    (mr_id,) = [s for s in import_into(library_dir, tmp_path / "src")
                if s != window.current_series_id]
    open_and_wait(qt, window, mr_id)
    assert window.hanging is None
    assert viewer.cells() == [] and viewer.layout_name() == window.prefs.default_layout == "1x3"
    assert sorted(viewer.visible_view_names()) == ["axial", "coronal", "sagittal"]
    widths = {v.window_level.width for v in viewer.slice_views().values()}
    assert len(widths) == 1


def test_user_rule_in_settings_beats_shipped_and_a_bad_one_is_reported(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    write_ct(tmp_path / "src" / "ct")                 # "Chest routine": a shipped rule matches
    (ct_id,) = import_into(library_dir, tmp_path / "src")
    prefs = {"version": 3, "hanging_protocols": [
        {"name": "typo", "match": {"modality": "CT"}, "layout": "1x3", "preset": "lungs"},
        {"name": "my CT", "match": {"modality": "ct"}, "layout": "2x2", "preset": "bone"}]}
    (library_dir / "preferences.json").write_text(json.dumps(prefs), encoding="utf-8")
    window = make_window(library_dir)
    status = window.status_label.text()
    assert "Hanging protocols" in status and "'typo'" in status and ": preset:" in status
    assert [str(p.name) for p in window.hanging_protocols.problems] == ["typo"]
    open_and_wait(qt, window, ct_id)
    assert window.hanging is not None and window.hanging.rule_name == "my CT"
    assert window.viewer.layout_name() == "2x2" and window.viewer.cells() == []
    assert window.viewer.window_level_values() == (1800.0, 400.0)
    assert window.layout_actions["2x2"].isChecked()
    # The rule's layout is not the user's default: that stays as it was.
    saved = json.loads((library_dir / "preferences.json").read_text(encoding="utf-8"))
    assert saved.get("default_layout", "1x3") == "1x3"
    # The user's own layout change afterwards is theirs.
    window.set_layout("1x1")
    assert window.viewer.layout_name() == "1x1"


def test_dialog_copies_validates_reorders_and_saves_rules_a_new_window_uses(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    write_ct(tmp_path / "src" / "ct")
    (ct_id,) = import_into(library_dir, tmp_path / "src")
    window = make_window(library_dir)
    window.act_hanging.trigger()
    dialog = window.last_dialog
    assert dialog.objectName() == "hangingDialog" and dialog.isVisible()
    assert dialog.shipped_list.count() >= 4 and dialog.user_list.count() == 0
    names = [dialog.shipped_list.item(n).text() for n in range(dialog.shipped_list.count())]
    dialog.select_shipped(names.index("Chest CT (by study description): lung and mediastinum"))
    assert dialog.editor.isReadOnly() and "read-only" in dialog.message.text()
    dialog.copy_button.click()
    assert dialog.user_list.count() == 1 and not dialog.editor.isReadOnly()
    rule = json.loads(dialog.editor.toPlainText())
    assert rule["name"].endswith("(mine)")
    assert '\n    {"view": "axial", "preset": "lung", "series": "current"},\n' in \
        dialog.editor.toPlainText()                   # one line per cell, not per value
    # A typo: named by field, saving refused.
    rule["cells"][1]["preset"] = "mediastinnum"
    dialog.set_rule_text(json.dumps(rule))
    assert "cells.1.preset" in dialog.message.text()
    assert not dialog.save_button.isEnabled() and dialog.save() is False
    assert "invalid" in dialog.user_list.item(0).text()
    dialog.set_rule_text("{not json")
    assert "JSON" in dialog.message.text()
    rule["cells"][1]["preset"] = "bone"
    rule["name"] = "chest: lung + bone"
    dialog.set_rule_text(json.dumps(rule, indent=2))
    assert dialog.message.text() == "Valid rule." and dialog.save_button.isEnabled()
    # A second rule, moved above the first, then deleted again.
    dialog.add_button.click()
    assert dialog.user_list.count() == 2
    dialog.up_button.click()
    assert json.loads(dialog.user_texts()[0])["name"] == "New rule"
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "hanging_dialog.png"))
    dialog.select_user(0)
    dialog.delete_button.click()
    assert [json.loads(t)["name"] for t in dialog.user_texts()] == ["chest: lung + bone"]
    dialog.save_button.click()
    assert not dialog.isVisible()
    saved = json.loads((library_dir / "preferences.json").read_text(encoding="utf-8"))
    assert saved["version"] == 4  # the preferences' version (4: network settings)
    assert [r["name"] for r in saved["hanging_protocols"]] == ["chest: lung + bone"]
    window.close()
    # A new window reads the rule back and applies it.
    again = make_window(library_dir)
    assert [r.rule.name for r in again.hanging_protocols.user] == ["chest: lung + bone"]
    open_and_wait(qt, again, ct_id)
    assert again.hanging.rule_name == "chest: lung + bone"
    assert again.viewer.cell_window_levels() == [(1500.0, -600.0), (1800.0, 400.0)]


def write_radiograph(folder: Path, *, study_date: str) -> Path:
    """pydicom's PA chest radiograph (CR, CHEST) as a study of its own on ``study_date``."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDate = study_date
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cr.dcm"
    ds.save_as(path)
    return path


def test_chest_radiograph_opens_alone_with_its_prior_beside_it(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    write_radiograph(tmp_path / "src" / "prior", study_date="20030214")
    write_radiograph(tmp_path / "src" / "current", study_date="20040826")
    write_ct(tmp_path / "src" / "ct", patient="BETA^TWO", patient_id="PID-B",
             study_description="Abdomen", series_description="Axial")
    import_into(library_dir, tmp_path / "src")
    from store import Library

    library = Library.open(library_dir)
    try:
        rows = {(s.modality, s.study_date): s.id for s in library.all_series()}
    finally:
        library.close()
    current, prior = rows[("CR", "20040826")], rows[("CR", "20030214")]
    window = make_window(library_dir)
    open_and_wait(qt, window, current)
    assert window.hanging is not None
    assert window.hanging.rule_name == "Chest radiograph: 1x1, its prior beside it"
    assert window.current_projection is not None                    # shown as a 2-D image
    assert window.compare.is_open and window.compare.series_id == prior
    qt.waitSignal(window.compare.loaded, timeout=WAIT_MS, raising=False).wait()
    save_window_png(window, "chest_radiograph_with_prior.png")
    # The prior opened by the rule goes with the next series that wants none.
    open_and_wait(qt, window, rows[("CT", "20250314")])
    assert window.hanging is None and not window.compare.is_open
    # Opened without a prior (the prior itself is the oldest): alone.
    open_and_wait(qt, window, prior)
    assert window.hanging is not None and window.hanging.wants_prior is False
    assert not window.compare.is_open
