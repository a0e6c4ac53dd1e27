"""The Models panel runs the demo pack through the worker process, under a real Qt; it
greys out packs the open series does not suit, says why, and shows each pack's card (with
its input requirements) before a run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

DEMO_ID = "lucida-demo-lung-density"
LUNG_ID = "lucida-lung-mask"  # a bundled real CT pack
NODULES_ID = "lucida-lung-nodules"  # the chest CT default: it runs the lung mask first
MARK = "DEMO RULES - NOT A MODEL"


@pytest.fixture
def panel(qtbot, library_dir: Path):  # type: ignore[no-untyped-def]
    from app.models_panel import ModelsPanel

    widget = ModelsPanel(library_dir=library_dir)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


def test_panel_runs_the_demo_pack(qtbot, panel) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    from dicomio.demo import build_demo_volume

    panel.select_pack(DEMO_ID)
    assert "not a trained model" in panel.card.toPlainText()
    assert not panel.run_button.isEnabled()  # no series yet
    volume = build_demo_volume(shape=(60, 128, 128))
    panel.set_volume(volume)
    assert panel.input_warnings() == []
    assert not panel.confirm.isVisible()
    assert panel.run_button.isEnabled()
    errors: list[str] = []
    panel.error.connect(errors.append)
    with qtbot.waitSignal(panel.result_ready, timeout=180_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
        assert panel.running and panel.cancel_button.isEnabled()
    result = blocker.args[0]
    assert errors == []
    assert result.label_map.array.shape == volume.shape
    assert result.provenance["model"]["id"] == DEMO_ID
    assert result.model_name.startswith(MARK)
    assert panel.progress.value() == 1000
    assert f"{len(result.findings)} findings" in panel.status.text()
    assert panel.legend.count() == 1 and MARK in panel.legend.item(0).text()
    assert result.findings and all(f.label_name.startswith(MARK) for f in result.findings)
    assert not panel.running and panel.run_button.isEnabled()
    # The job folder is gone; only the worker's note that the demo graph needs no rewrite.
    assert [p.name for p in (panel.library_dir / "cache" / "inference").iterdir()] == [
        "graph-rewrites"]


def test_warnings_need_confirmation_and_cancel_stops_the_run(qtbot,  # type: ignore[no-untyped-def]
                                                             panel) -> None:
    from PySide6.QtCore import Qt

    from dicomio.demo import build_demo_volume

    panel.select_pack(DEMO_ID)
    volume = build_demo_volume(shape=(60, 128, 128))
    volume.metadata["body_part"] = "ABDOMEN"  # a soft mismatch: confirmable
    panel.set_volume(volume)
    assert panel.confirm.isVisible() and "ABDOMEN" in panel.warnings_label.text()
    assert not panel.run_button.isEnabled()
    panel.confirm.setChecked(True)
    assert panel.run_button.isEnabled()
    results: list[object] = []
    panel.result_ready.connect(results.append)
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert panel.running
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.running, timeout=10_000)
    assert panel.status.text() == "Cancelled."
    assert results == []
    assert panel.run_button.isEnabled()


def test_panel_follows_the_host_windows_open_series(qtbot, library_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QWidget

    from app.models_panel import ModelsPanel
    from dicomio.demo import build_demo_volume

    class Host(QWidget):
        current_volume = None

    host = Host()
    host.library_dir = library_dir  # type: ignore[attr-defined]
    qtbot.addWidget(host)
    panel = ModelsPanel(host)
    panel.select_pack(DEMO_ID)
    assert panel.library_dir == library_dir
    assert not panel.run_button.isEnabled()
    host.current_volume = build_demo_volume(shape=(40, 64, 64))  # type: ignore[assignment]
    host.current_volume.metadata["body_part"] = "PELVIS"  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: "PELVIS" in panel.warnings_label.text(), timeout=5_000)
    assert not panel.confirm.isHidden() and not panel.run_button.isEnabled()
    panel.shutdown()


def test_a_failing_pack_becomes_an_error_message(qtbot, panel, library_dir: Path,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    import json

    from PySide6.QtCore import Qt

    from dicomio.demo import build_demo_volume
    from inference.demo_pack import write_pack

    pack = write_pack(library_dir / "models" / "broken-demo")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["id"] = "broken-demo"
    manifest["tiling"]["output_margin"] = [4, 4, 4]  # the network really trims 8
    (pack / "manifest.json").write_text(json.dumps(manifest))
    panel.refresh()
    panel.select_pack("broken-demo")
    panel.set_volume(build_demo_volume(shape=(40, 64, 64)))
    panel.confirm.setChecked(True)
    with qtbot.waitSignal(panel.error, timeout=120_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert "the network returned shape" in blocker.args[0]
    assert panel.status.text().startswith("Error:")
    assert not panel.running and panel.run_button.isEnabled()


def _patient_ct(shape: tuple[int, int, int] = (40, 64, 64)):  # type: ignore[no-untyped-def]
    """A CT series that is not Lucida's demo study (same voxels, its own series UID)."""
    import dataclasses

    from dicomio.demo import build_demo_volume

    return dataclasses.replace(build_demo_volume(shape=shape),
                               series_uid="1.2.826.0.1.3680043.8.498.42")


def _install_real_copy(library_dir: Path) -> None:
    """A pack that is not demo-only (the demo's files under another id), in the library."""
    import json

    from inference.demo_pack import write_pack

    pack = write_pack(library_dir / "models" / "real-copy")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest.update(id="real-copy", name="Real copy", demo_only=False)
    (pack / "manifest.json").write_text(json.dumps(manifest))


def test_the_demo_pack_is_never_the_default_for_a_real_series(  # type: ignore[no-untyped-def]
        qtbot, library_dir: Path) -> None:
    from app.models_panel import ModelsPanel
    from dicomio.demo import build_demo_volume

    _install_real_copy(library_dir)
    panel = ModelsPanel(library_dir=library_dir)
    qtbot.addWidget(panel)
    panel.set_volume(build_demo_volume(shape=(60, 128, 128)))
    panel.select_pack(DEMO_ID)  # fine on the demo study
    assert panel.run_button.isEnabled()
    panel.set_volume(_patient_ct())  # opening a patient's series moves off the demo pack
    # (to a pack that may run: the copy, or the bundled nodule detector, a real CT pack;
    # never the lung mask, which the detector runs first)
    assert panel.selected_pack_id() in ("real-copy", NODULES_ID)
    fresh = ModelsPanel(library_dir=library_dir)
    qtbot.addWidget(fresh)
    fresh.set_volume(_patient_ct())
    assert fresh.selected_pack_id() in ("real-copy", NODULES_ID)
    rows = [panel.model_list.item(i).text() for i in range(panel.model_list.count())]
    demo = [r for r in rows if r.startswith(MARK)]
    assert len(demo) == 1 and "demo study only" in demo[0]
    assert len([r for r in rows if r.startswith("Real copy")]) == 1
    # Any other bundled pack (deepbet, MR) is listed, greyed, for this CT.
    others = [r for r in rows if not r.startswith((MARK, "Real copy", "Lung mask",
                                                   "Lucida lung nodule"))]
    assert all(r.endswith("not for this series") for r in others), others
    panel.shutdown()
    fresh.shutdown()


def test_the_demo_pack_is_refused_on_a_real_series(  # type: ignore[no-untyped-def]
        qtbot, panel) -> None:
    panel.set_volume(_patient_ct())
    assert panel.selected_pack_id() != DEMO_ID  # never the default (the lung mask may be)
    panel.select_pack(DEMO_ID)  # chosen by hand: shown, but it cannot run
    text = panel.warnings_label.text()
    assert "Cannot run" in text and "not a model" in text and "demo study" in text
    assert panel.warnings_label.isVisible() and not panel.confirm.isVisible()
    assert not panel.run_button.isEnabled()
    errors: list[str] = []
    panel.error.connect(errors.append)
    assert not panel.run_selected()
    assert not panel.running
    assert errors and "not a model" in errors[0]
    assert not (panel.library_dir / "cache" / "inference").exists()


def test_a_pack_for_another_modality_is_greyed_with_its_reason_and_cannot_run(
        qtbot, panel) -> None:  # type: ignore[no-untyped-def]
    """A real MR-only pack (the demo's network under an MR manifest) on the demo CT."""
    from PySide6.QtGui import QPalette

    from dicomio.demo import build_demo_volume

    _install_mr_copy(panel.library_dir)
    panel.refresh()
    panel.set_volume(build_demo_volume(shape=(60, 128, 128)))
    # The default: a pack that may run, never the demo rules nor the lung mask while the
    # nodule detector that runs it first is available.
    assert panel.selected_pack_id() == NODULES_ID
    row = _row(panel, "mr-copy")
    item = panel.model_list.item(row)
    assert item.text().endswith("not for this series")
    assert item.toolTip() == "Not for this series: Brain MR copy expects MR; this series is CT"
    grey = item.foreground().color()
    normal = panel.model_list.item(_row(panel, DEMO_ID)).foreground().color()
    text = panel.model_list.palette().color(QPalette.ColorRole.Text)
    assert grey.name() == "#6b737c" and normal != grey and grey != text
    assert panel.unavailable_label.isVisible()
    # One line per pack that cannot run here (the bundled deepbet pack is MR too).
    assert ("Not for this series: Brain MR copy expects MR; this series is CT"
            in panel.unavailable_label.text().splitlines())
    assert not panel.available("mr-copy") and panel.available(DEMO_ID)

    # Chosen by hand: its card and requirements are there to read, but it cannot run.
    panel.select_pack("mr-copy")
    card = panel.card.toPlainText()
    assert "Checked before a run" in card and "Modality: MR" in card
    assert "MR sequence: T1, MPRAGE" in card and "Voxel spacing: ≤ 3 mm" in card
    assert "Runtime and memory measured here. 9 s, 0.4 GB" in card
    assert "Cannot run: Brain MR copy expects MR; this series is CT" in panel.warnings_label.text()
    assert not panel.confirm.isVisible()  # nothing to confirm away
    assert not panel.run_button.isEnabled()
    assert not panel.run_selected()
    assert panel.status.text() == "Error: Brain MR copy expects MR; this series is CT"
    assert not panel.running
    assert not (panel.library_dir / "cache" / "inference").exists()

    # With no series open every pack is listed, none greyed, and nothing runs.
    panel.set_volume(None)
    assert panel.available("mr-copy") and not panel.unavailable_label.isVisible()
    assert not panel.model_list.item(row).text().endswith("not for this series")
    assert not panel.run_button.isEnabled() and not panel.run_selected()


def test_the_card_is_shown_before_any_run(qtbot, panel) -> None:  # type: ignore[no-untyped-def]
    _install_mr_copy(panel.library_dir)
    panel.refresh()
    panel.select_pack("mr-copy")
    card = panel.card.toPlainText()
    # The title, what is checked, the measured cost (moved up), then the rest of the card.
    assert card.startswith("Brain MR copy")
    order = [card.index(text) for text in ("Checked before a run", "measured here",
                                           "What it does", "Limits")]
    assert order == sorted(order)
    panel.select_pack(DEMO_ID)
    card = panel.card.toPlainText()
    assert "not a trained model" in card
    assert "Body part: CHEST / LUNG / THORAX" in card and "Voxel spacing: 0.3–5 mm" in card
    assert "Series: Lucida's synthetic demo study only" in card
    assert panel.last_result is None


def test_a_real_series_of_each_modality_gets_its_own_packs(  # type: ignore[no-untyped-def]
        make_window, qt, library_dir: Path, shared_data: Path, shared_models: Path) -> None:
    """The main window with the demo CT, then the real Siemens MPRAGE, and a real brainchop
    pack (mindgrab, built by the importer into the library): each series is offered only the
    packs that suit it."""
    from inference.importers.brainchop_pack import build_pack

    build_pack(shared_models / "brainchop-meshnet", library_dir / "models", model="mindgrab")
    _install_real_copy(library_dir)  # a CT pack that is not demo-only
    (mr_id,) = _import(library_dir, shared_data / "mr" / "Siemens_Trio_T1_MPRAGE")
    window = make_window(library_dir, open_demo=True)
    qt.waitUntil(lambda: window.current_volume is not None, timeout=60_000)
    panel = window.models_panel
    qt.waitUntil(lambda: not panel.available(MINDGRAB), timeout=5_000)
    assert panel.available(DEMO_ID) and panel.available("real-copy")
    assert "expects MR; this series is CT" in panel.model_list.item(
        _row(panel, MINDGRAB)).toolTip()
    assert panel.selected_pack_id() == NODULES_ID

    with qt.waitSignal(window.series_loaded, timeout=60_000):
        window.open_series(mr_id)
    qt.waitUntil(lambda: panel.available(MINDGRAB), timeout=5_000)
    assert panel.selected_pack_id() == MINDGRAB  # moved off the CT pack
    assert not panel.available(DEMO_ID) and not panel.available("real-copy")
    assert "Real copy expects CT; this series is MR" in panel.unavailable_label.text()
    assert "demonstration for Lucida's demo study only" in panel.unavailable_label.text()
    # The MPRAGE names its sequence: no sequence warning, and the card is shown.
    assert not any("sequence" in w for w in panel.input_warnings()), panel.input_warnings()
    assert "MR sequence: T1, MPRAGE" in panel.card.toPlainText()
    card = panel.card.toPlainText()
    assert card.index("Runtime and memory measured here") < card.index("What it does")
    if panel.input_warnings():  # series geometry, if any, still needs the checkbox
        assert not panel.run_button.isEnabled()
        panel.confirm.setChecked(True)
    assert panel.run_button.isEnabled()


MINDGRAB = "brainchop-mindgrab"


def _row(panel, pack_id: str) -> int:  # type: ignore[no-untyped-def]
    ids = [p.id for p in panel._packs]
    return ids.index(pack_id)


def _install_mr_copy(library_dir: Path) -> None:
    """A pack for brain MR only (the demo's network under an MR manifest and its own card)."""
    import json

    from inference.demo_pack import write_pack

    pack = write_pack(library_dir / "models" / "mr-copy")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest.update(id="mr-copy", name="Brain MR copy", demo_only=False, modality=["MR"],
                    body_part=[], min_spacing_mm=None, max_spacing_mm=3.0, min_slices=32,
                    sequence_hints=["T1", "MPRAGE"])
    (pack / "manifest.json").write_text(json.dumps(manifest))
    (pack / "MODEL_CARD.md").write_text(
        "# Brain MR copy\n\n**What it does.** Nothing useful: a test pack.\n\n"
        "**Limits.** Many.\n\n**Runtime and memory measured here.** 9 s, 0.4 GB peak.\n")


def _import(library_dir: Path, folder: Path) -> list[int]:
    from app.importer import import_paths
    from store import Library

    library = Library.open(library_dir)
    try:
        import_paths(library, [folder])
        return [s.id for s in library.all_series()]
    finally:
        library.close()
