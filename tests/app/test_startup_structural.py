"""Start-up builds only what the first frame needs (issue 19) and the rest still happens:
the demo's hanging cells are the only slice views made, the model packs are read after
the window is up, the Network panel is built when its tab is first shown, and views made
later still answer the window's keys and double-clicks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.app.test_gui_window import WAIT_MS, import_into, write_ct

pytestmark = pytest.mark.gui
SHOTS = Path("/tmp/shots/C2")


def test_demo_start_builds_the_shown_cells_only_then_the_deferred_panels(
        make_window: Any, qt: Any, library_dir: Path) -> None:
    from app.network_panel import NetworkPanel
    from viewer.slice_view import SliceView

    window = make_window(library_dir, open_demo=True, size=(1500, 900))
    assert window.network._panel is None, "the Network tab starts hidden: no panel yet"
    assert not isinstance(window.network.dock.widget(), NetworkPanel)
    qt.waitUntil(lambda: window.current_volume is not None, timeout=WAIT_MS * 4)
    viewer = window.viewer
    assert viewer.layout_name() == "cells"
    cells = viewer.cells()
    assert len(cells) == 2 and all(c.isVisible() for c in cells)
    # The two axial cells are the only slice views: no coronal or sagittal was made.
    assert set(window.findChildren(SliceView)) == set(cells)
    assert sorted(viewer.built_slice_views()) == ["axial"]
    # The packs were read after the window came up, and the default model chosen.
    models = window.models_panel
    qt.waitUntil(lambda: models._scanned, timeout=5000)
    assert models.model_list.count() > 0 and models.selected_pack() is not None
    assert models.available(models.selected_pack_id()), "chosen for the open demo series"
    # The Network tab, raised, gets its panel then.
    window.network.dock.raise_()
    qt.waitUntil(lambda: window.network._panel is not None, timeout=5000)
    assert window.network.dock.widget() is window.network.panel
    assert window.network.panel.isVisible()
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    window.screen().grabWindow(window.winId()).save(str(SHOTS / "demo_start_network_tab.png"))


def test_views_made_with_a_series_that_no_rule_hangs_answer_the_window(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from viewer.slice_view import SliceView

    write_ct(tmp_path / "src" / "mr", patient="BETA^TWO", patient_id="PID-B", modality="MR",
             study_date="20241102", study_description="Head", series_description="T1 sag")
    (mr_id,) = import_into(library_dir, tmp_path / "src")
    window = make_window(library_dir)
    assert window.findChildren(SliceView) == []
    with qt.waitSignal(window.series_loaded, timeout=WAIT_MS):
        window.open_series(mr_id)
    viewer = window.viewer
    qt.waitUntil(lambda: len(viewer.built_slice_views()) == 3, timeout=5000)
    assert window.hanging is None and viewer.layout_name() == "1x3"
    coronal = viewer.built_slice_views()["coronal"]
    qt.waitUntil(coronal.isVisible, timeout=5000)
    # The window watches the views made late: a double-click maximises that view.
    centre = QPoint(coronal.width() // 2, coronal.height() // 2)
    QTest.mouseDClick(coronal, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      centre)
    qt.waitUntil(lambda: viewer.layout_name() == "1x1", timeout=5000)
    assert viewer.visible_view_names() == ["coronal"]
