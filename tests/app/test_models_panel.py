"""The Models panel runs the demo pack through the worker process, under a real Qt."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

DEMO_ID = "lucida-demo-lung-density"
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
    assert not list((panel.library_dir / "cache" / "inference").iterdir())


def test_warnings_need_confirmation_and_cancel_stops_the_run(qtbot,  # type: ignore[no-untyped-def]
                                                             panel) -> None:
    from PySide6.QtCore import Qt

    from dicomio.demo import build_demo_volume

    panel.select_pack(DEMO_ID)
    volume = build_demo_volume(shape=(60, 128, 128))
    volume.modality = "MR"
    panel.set_volume(volume)
    assert panel.confirm.isVisible() and "MR" in panel.warnings_label.text()
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
    host.current_volume.modality = "MR"  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: "MR" in panel.warnings_label.text(), timeout=5_000)
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
    assert panel.selected_pack_id() == "real-copy"
    fresh = ModelsPanel(library_dir=library_dir)
    qtbot.addWidget(fresh)
    fresh.set_volume(_patient_ct())
    assert fresh.selected_pack_id() == "real-copy"
    rows = [panel.model_list.item(i).text() for i in range(panel.model_list.count())]
    assert rows[0].startswith(MARK) and "demo study only" in rows[0]
    assert rows[1].startswith("Real copy") and len(rows) == 2
    panel.shutdown()
    fresh.shutdown()


def test_the_demo_pack_is_refused_on_a_real_series(  # type: ignore[no-untyped-def]
        qtbot, panel) -> None:
    panel.set_volume(_patient_ct())
    assert panel.selected_pack() is None  # the only pack is the demo: none is chosen
    assert "No model pack here suits this series" in panel.card.toPlainText()
    assert not panel.run_button.isEnabled()
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
