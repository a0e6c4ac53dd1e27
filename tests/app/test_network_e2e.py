"""The radiologist's path against a real PACS (issue 20's "done when"), in the real window.

Orthanc (Debian's binary, loopback, LIDC-IDRI-0001 uploaded) is the clinic PACS. Driven
by keyboard and mouse through the real MainWindow: open the Network panel (Ctrl+Shift+N),
add the node in its dialog, Echo it, type the patient's name and press Enter, click the
study, click Retrieve (C-GET); the series appears in the library while it arrives and is
opened from the library (Enter); it ends up with all 133 slices on screen. Then the
lung-mask pack runs through the Models panel's Run button (the real worker process), the
findings are accepted (A), signed off (Ctrl+Shift+E), and Send with "Last sign-off"
stores the SEG, SR and KO in Orthanc, which lists them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import (  # noqa: F401 - lidc_0001 is a fixture used by name
    DICOMWEB_PLUGIN,
    LIDC_INSTANCES,
    Orthanc,
    launch_orthanc,
    lidc_0001,
    lidc_files,
)

pytestmark = [pytest.mark.gui, pytest.mark.shared]

WAIT_MS = 120_000
LUNG_MASK = "lucida-lung-mask"
PATIENT_NAME = "LIDC^ZERO^ONE"
SHOTS = Path(os.environ.get("LUCIDA_SHOTS", "/tmp/shots/D3"))


@pytest.fixture
def pacs(tmp_path: Path, lidc_0001: Path) -> Iterator[Orthanc]:  # noqa: F811
    """The clinic PACS: an Orthanc of its own holding LIDC-IDRI-0001, named.

    The collection's PatientName is empty (de-identified); the copies uploaded (written in
    tmp_path, pixel data and UIDs untouched) carry PATIENT_NAME so the reader can search
    by name as at the clinic.
    """
    import pydicom

    named = tmp_path / "named"
    named.mkdir()
    files = []
    for source in lidc_files(lidc_0001):
        ds = pydicom.dcmread(source)
        ds.PatientName = PATIENT_NAME
        files.append(named / source.name)
        ds.save_as(files[-1])
    peer = launch_orthanc(tmp_path / "orthanc")
    try:
        peer.upload(files)
        yield peer
    finally:
        peer.stop()


def key(qt: Any, window: Any, widget: Any, k: Any, modifier: Any = None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.activateWindow()
    qt.waitUntil(window.isActiveWindow, timeout=5_000)
    widget.setFocus()
    QTest.keyClick(widget, k, modifier or Qt.KeyboardModifier.NoModifier)


def click(widget: Any, pos: Any = None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    assert widget.isEnabled(), f"{widget.objectName()} is disabled"
    if pos is None:
        QTest.mouseClick(widget, Qt.MouseButton.LeftButton)
    else:
        QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         pos)


def type_into(widget: Any, text: str) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    widget.setFocus()
    widget.selectAll()
    QTest.keyClick(widget, Qt.Key.Key_Backspace)
    QTest.keyClicks(widget, text)


def screen_shot(name: str) -> Any:
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = QApplication.primaryScreen().grabWindow(0).toImage()  # VTK views included
    image.save(str(SHOTS / f"{name}.png"))
    return image


def wait_or_explain(qt: Any, window: Any, series_id: Any, condition: Any) -> None:
    """qt.waitUntil, failing with what the window and the SCP were doing (a timeout alone
    says nothing of why the series did not load again)."""
    from pytestqt.exceptions import TimeoutError as QtTimeout

    try:
        qt.waitUntil(condition, timeout=WAIT_MS)
    except QtTimeout:
        from app import workers

        wiring, job, volume = window.network, window.load_job, window.current_volume
        jobs = workers.running_job_names()
        scp = wiring.scp
        raise AssertionError(
            f"library holds {len(window.library.series_sources(series_id))} instances; "
            f"shown series {window.current_series_id} (waited for {series_id}), "
            f"volume {None if volume is None else volume.shape}, load job "
            f"{None if job is None else (job.name, job.running)}; received "
            f"{wiring.received}, pushing {sorted(wiring._pushing)}, opened with "
            f"{wiring._opened_with}; filer errors "
            f"{None if scp is None else scp.filer.index_errors}; status "
            f"{window.statusBar().currentMessage()!r}; job pool "
            f"{workers.pool().activeThreadCount()} busy, running {jobs}") from None


def grey_levels_in(image: Any, widget: Any) -> int:
    """How many distinct grey levels a widget's middle shows on the screen grab."""
    top_left = widget.mapToGlobal(widget.rect().topLeft())
    w, h = widget.width(), widget.height()
    seen = set()
    for y in range(h // 4, 3 * h // 4, max(1, h // 40)):
        for x in range(w // 4, 3 * w // 4, max(1, w // 40)):
            seen.add(image.pixelColor(top_left.x() + x, top_left.y() + y).lightness())
    return len(seen)


def test_find_retrieve_read_while_arriving_run_sign_off_and_send_back(
        make_window: Any, qt: Any, library_dir: Path, tmp_path: Path, pacs: Orthanc) -> None:
    import pydicom
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialogButtonBox

    from net.nodes import get_node

    window = make_window(library_dir, size=(1500, 950))
    wiring = window.network
    panel = wiring.panel
    ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier

    # Ctrl+Shift+N brings the Network dock (tabified with the library) to the front.
    key(qt, window, window.viewer, Qt.Key.Key_N, ctrl | shift)
    qt.waitUntil(lambda: not wiring.dock.visibleRegion().isEmpty(), timeout=5_000)

    # Configure the clinic PACS once, in the node dialog.
    click(panel.add_button)
    dialog = panel.last_dialog
    qt.waitExposed(dialog)
    type_into(dialog.name, "Clinic PACS")
    type_into(dialog.ae_title, pacs.aet)
    type_into(dialog.host, pacs.host)
    type_into(dialog.port, str(pacs.dicom_port))
    click(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok))
    qt.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert get_node(window.library, "Clinic PACS").port == pacs.dicom_port

    click(panel.echo_button)
    qt.waitUntil(lambda: "OK" in panel.echo_label.text() or "failed" in
                 panel.echo_label.text(), timeout=30_000)
    assert "OK" in panel.echo_label.text(), panel.echo_label.text()

    # Find the study by the patient's name (Enter in the name field searches).
    type_into(panel.form.patient_name, "lidc^zero")
    key(qt, window, panel.form.patient_name, Qt.Key.Key_Return)
    qt.waitUntil(lambda: "Searching" not in panel.query_status.text(), timeout=30_000)
    assert panel.results.model().rowCount() == 1, panel.query_status.text()
    assert panel.results.model().index(0, 6).data() == str(LIDC_INSTANCES)
    screen_shot("e2e_1_found")

    # Click the study, then Retrieve (C-GET is the default).
    results = panel.results
    panel.results.clearSelection()
    click(results.viewport(), results.visualRect(results.model().index(0, 0)).center())
    assert results.selected_study_uids()
    assert panel.method.currentData() == "get"
    batches: list[int] = []
    panel.arrived.connect(lambda arrived: batches.append(arrived.instances))
    click(panel.retrieve_button)
    transfer = panel.transfers.rows[-1]
    assert transfer.direction == "retrieve" and transfer.total == LIDC_INSTANCES

    # The series shows up in the library while it is still arriving; open it from there.
    qt.waitUntil(lambda: bool(window.browser.visible_series_ids()), timeout=WAIT_MS)
    series_id = window.browser.visible_series_ids()[0]
    arriving = not transfer.finished
    window.browser_dock.raise_()
    window.browser.select_series(series_id)
    key(qt, window, window.browser.tree, Qt.Key.Key_Return)
    qt.waitUntil(lambda: window.current_volume is not None or window._shown_partial,
                 timeout=WAIT_MS)
    if arriving:
        screen_shot("e2e_2_reading_while_arriving")
    qt.waitUntil(lambda: transfer.finished, timeout=WAIT_MS)
    assert transfer.state == "done", (transfer.state, transfer.error)
    assert transfer.done == LIDC_INSTANCES
    assert transfer.report.ok and transfer.rate() > 0
    # Indexed in batches as it arrived (each refreshed the library), not once at the end.
    assert len(batches) > 1 and batches[0] < LIDC_INSTANCES, batches
    assert batches[-1] == LIDC_INSTANCES and batches == sorted(batches)
    # Opened while arriving: loaded again once complete; every slice on screen.
    qt.waitUntil(lambda: window.current_volume is not None
                 and window.current_volume.shape[0] == LIDC_INSTANCES
                 and not (window.load_job and window.load_job.running), timeout=WAIT_MS)
    assert window.current_series_id == series_id
    assert len(window.library.series_sources(series_id)) == LIDC_INSTANCES
    qt.wait(500)
    image = screen_shot("e2e_3_retrieved")
    axial = window.viewer.slice_views()["axial"]
    assert grey_levels_in(image, axial) > 20, "the axial view shows the CT, not a blank"

    # The lung mask pack through the Models panel's Run button (the real worker process).
    models = window.models_panel
    window.models_dock.raise_()
    models.select_pack(LUNG_MASK)
    if models.input_warnings():
        models.confirm.setChecked(True)
    with qt.waitSignal(window.review_opened, timeout=300_000):
        click(models.run_button)
    findings = window.findings_panel
    rows = findings.rows()
    assert rows, "the lung mask finds the lungs"
    window.findings_dock.raise_()
    findings.table.selectAll()
    key(qt, window, findings.table, Qt.Key.Key_A)
    assert {r.status for r in findings.rows()} == {"accepted"}
    out = tmp_path / "signoff"
    out.mkdir()
    window.export_dir = out
    key(qt, window, findings.table, Qt.Key.Key_E, ctrl | shift)
    assert window.last_export is not None, window.status_label.text()
    exported = {str(pydicom.dcmread(p, stop_before_pixels=True).Modality):
                str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                for p in out.rglob("*.dcm")}
    assert sorted(exported) == ["KO", "SEG", "SR"]

    # Send the sign-off back to the PACS from the Network panel.
    wiring.show_panel()
    panel.send_what.setCurrentIndex(panel.send_what.findData("signoff"))
    click(panel.send_button)
    sent = panel.transfers.rows[-1]
    assert sent.direction == "send" and sent.total == 3
    qt.waitUntil(lambda: sent.finished, timeout=WAIT_MS)
    assert sent.state == "done", (sent.state, sent.error)
    screen_shot("e2e_4_sent")
    for modality, uid in exported.items():
        found = pacs.rest("POST", "/tools/lookup", uid.encode())
        assert [f["Type"] for f in found] == ["Instance"], (modality, found)
    assert len(pacs.instances()) == LIDC_INSTANCES + 3


@pytest.fixture
def small_pacs(tmp_path: Path, lidc_0001: Path) -> Iterator[Orthanc]:  # noqa: F811
    """An Orthanc holding the first 12 slices of LIDC-IDRI-0001 (quick transfers)."""
    peer = launch_orthanc(tmp_path / "orthanc-small")
    try:
        peer.upload(lidc_files(lidc_0001)[:12])
        yield peer
    finally:
        peer.stop()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_receiving_is_switched_on_in_network_settings_and_a_push_lands_in_the_library(
        make_window: Any, qt: Any, library_dir: Path, small_pacs: Orthanc) -> None:
    """Network ▸ Network settings…: enable the SCP for ORTHANC on a port; Orthanc pushes
    12 instances; the library browser lists them as they are indexed. Receive off (the
    menu) closes the port; the preference is saved."""
    from PySide6.QtWidgets import QDialogButtonBox

    from app.settings import PREFERENCES_FILE, load_preferences

    window = make_window(library_dir, size=(1500, 950))
    wiring = window.network
    assert wiring.scp is None and not wiring.act_receive.isChecked()
    port = free_port()
    wiring.act_settings.trigger()
    dialog = window.last_dialog
    qt.waitExposed(dialog)
    dialog.scp_enabled.setChecked(True)
    type_into(dialog.port, str(port))
    click(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok))
    assert dialog.isVisible() and "AE title" in dialog.problem.text()  # nobody allowed yet
    type_into(dialog.allowed_aes, "ORTHANC, CT_SCANNER")
    click(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok))
    qt.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert wiring.scp is not None and wiring.scp.port == port, wiring.scp_problem
    assert listening(port) and wiring.act_receive.isChecked()
    saved = load_preferences(library_dir / PREFERENCES_FILE)
    assert saved.scp_enabled and saved.local_port == port
    assert saved.scp_allowed_aes == ["ORTHANC", "CT_SCANNER"]
    assert saved.scp_bind == "127.0.0.1", "loopback unless the user picks another interface"

    small_pacs.register_modality("lucida", "LUCIDA", "127.0.0.1", port)
    small_pacs.push("lucida", small_pacs.studies())
    qt.waitUntil(lambda: bool(window.browser.visible_series_ids()), timeout=WAIT_MS)
    series_id = window.browser.visible_series_ids()[0]
    qt.waitUntil(lambda: len(window.library.series_sources(series_id)) == 12, timeout=WAIT_MS)
    assert wiring.received == 12
    assert all("network" in Path(s.path).parts for s in window.library.series_sources(series_id))

    wiring.act_receive.setChecked(False)
    assert wiring.scp is None and not listening(port)
    assert not load_preferences(library_dir / PREFERENCES_FILE).scp_enabled


def test_c_move_to_the_running_scp_dicomweb_and_a_stopped_pacs_in_the_transfer_list(
        make_window: Any, qt: Any, library_dir: Path, small_pacs: Orthanc) -> None:
    """The SCP starts with the window when the preferences say so; C-MOVE brings the study
    to it; a DICOMweb node answers the same query; a stopped PACS is a failed transfer
    whose error says why. The SCP stops when the window closes."""
    from app.settings import PREFERENCES_FILE, load_preferences, save_preferences
    from net.nodes import Node

    port = free_port()
    prefs = load_preferences(library_dir / PREFERENCES_FILE)
    prefs.scp_enabled = True
    prefs.local_port = port
    prefs.scp_allowed_aes = [small_pacs.aet]
    save_preferences(prefs, library_dir / PREFERENCES_FILE)
    small_pacs.register_modality("lucida", "LUCIDA", "127.0.0.1", port)

    window = make_window(library_dir, size=(1500, 950))
    wiring = window.network
    panel = wiring.panel
    assert wiring.scp is not None and listening(port), wiring.scp_problem

    panel.add_node(Node(name="PACS", ae_title=small_pacs.aet, host=small_pacs.host,
                        port=small_pacs.dicom_port))
    assert panel.search() is not None
    qt.waitUntil(lambda: "Searching" not in panel.query_status.text(), timeout=30_000)
    assert panel.results.model().rowCount() == 1, panel.query_status.text()
    panel.results.selectRow(0)
    panel.method.setCurrentIndex(panel.method.findData("move"))
    click(panel.retrieve_button)
    moved = panel.transfers.rows[-1]
    qt.waitUntil(lambda: moved.finished, timeout=WAIT_MS)
    assert moved.state == "done" and moved.done == 12, (moved.state, moved.error)
    qt.waitUntil(lambda: bool(window.browser.visible_series_ids()), timeout=10_000)
    series_id = window.browser.visible_series_ids()[0]
    assert len(window.library.series_sources(series_id)) == 12

    # Send the series selected in the library back to a PACS that no longer has it.
    for study in small_pacs.studies():
        small_pacs.rest("DELETE", f"/studies/{study}")
    assert small_pacs.instances() == []
    window.browser.select_series(series_id)
    panel.send_what.setCurrentIndex(panel.send_what.findData("series"))
    click(panel.send_button)
    sent = panel.transfers.rows[-1]
    assert sent.direction == "send" and sent.total == 12
    qt.waitUntil(lambda: sent.finished, timeout=WAIT_MS)
    assert sent.state == "done" and sent.done == 12, (sent.state, sent.error)
    assert len(small_pacs.instances()) == 12

    # The same PACS over DICOMweb (when Orthanc has the plugin): the same study is found.
    if DICOMWEB_PLUGIN.exists():  # Debian's orthanc-dicomweb
        assert "dicom-web" in small_pacs.rest("GET", "/plugins")
        panel.add_node(Node(name="PACS web", dicomweb_url=small_pacs.dicomweb_url))
        type_into(panel.form.patient_id, "LIDC-IDRI-0001")
        assert panel.search() is not None
        qt.waitUntil(lambda: "Searching" not in panel.query_status.text(), timeout=30_000)
        assert panel.results.model().rowCount() == 1, panel.query_status.text()
        assert panel.results.model().index(0, 1).data() == "LIDC-IDRI-0001"
        assert panel.echo_selected() is not None
        qt.waitUntil(lambda: "waiting" not in panel.echo_label.text(), timeout=30_000)
        assert "OK" in panel.echo_label.text(), panel.echo_label.text()

    # The PACS goes away: the next retrieve fails with a message in its row.
    panel.reload_nodes(select="PACS")
    panel.method.setCurrentIndex(panel.method.findData("get"))
    panel.results.selectRow(0)
    small_pacs.stop()
    click(panel.retrieve_button)
    failed = panel.transfers.rows[-1]
    qt.waitUntil(lambda: failed.finished, timeout=WAIT_MS)
    assert failed.state == "failed" and "PACS" in failed.error, (failed.state, failed.error)
    screen_shot("e2e_5_failed_transfer")

    window.close()
    assert wiring.scp is None and not listening(port), "the SCP stops with the window"


def test_a_cancelled_retrieve_keeps_what_arrived_and_the_next_one_completes_it(
        make_window: Any, qt: Any, library_dir: Path, pacs: Orthanc) -> None:
    """Cancel transfer (the button) stops the C-GET part way: the row says cancelled, the
    instances that arrived stay in the library; Retrieve again completes the series with
    no duplicates."""
    from net.nodes import Node

    window = make_window(library_dir, size=(1500, 950))
    panel = window.network.panel
    window.network.show_panel()
    panel.add_node(Node(name="PACS", ae_title=pacs.aet, host=pacs.host, port=pacs.dicom_port))
    type_into(panel.form.patient_id, "LIDC-IDRI-0001")
    assert panel.search() is not None
    qt.waitUntil(lambda: "Searching" not in panel.query_status.text(), timeout=30_000)
    panel.results.selectRow(0)
    click(panel.retrieve_button)
    first = panel.transfers.rows[-1]
    qt.waitUntil(lambda: first.done > 0 or first.finished, timeout=WAIT_MS)
    panel.transfer_view.selectRow(len(panel.transfers.rows) - 1)
    click(panel.cancel_button)
    qt.waitUntil(lambda: first.finished, timeout=WAIT_MS)
    assert first.state == "cancelled"
    qt.waitUntil(lambda: bool(window.browser.visible_series_ids()), timeout=WAIT_MS)
    series_id = window.browser.visible_series_ids()[0]
    kept = len(window.library.series_sources(series_id))
    assert 0 < kept < LIDC_INSTANCES, kept

    panel.results.selectRow(0)
    click(panel.retrieve_button)
    second = panel.transfers.rows[-1]
    qt.waitUntil(lambda: second.finished, timeout=WAIT_MS)
    assert second.state == "done", (second.state, second.error)
    sources = window.library.series_sources(series_id)
    assert len(sources) == LIDC_INSTANCES
    assert len({s.path for s in sources}) == LIDC_INSTANCES
    filed = list((library_dir / "network").rglob("*.dcm"))
    assert len(filed) == LIDC_INSTANCES, "each instance written once"


def test_a_series_opened_while_a_pacs_pushes_it_loads_again_when_the_push_ends(
        make_window: Any, qt: Any, library_dir: Path, small_pacs: Orthanc) -> None:
    """The PACS pushes half a series to the running SCP; the reader opens it (6 slices);
    the PACS pushes the rest; once that push goes quiet the series on screen loads again,
    whole (whether or not the first push had gone quiet before it was opened)."""
    from app.settings import PREFERENCES_FILE, load_preferences, save_preferences

    port = free_port()
    prefs = load_preferences(library_dir / PREFERENCES_FILE)
    prefs.scp_enabled, prefs.local_port = True, port
    prefs.scp_allowed_aes = [small_pacs.aet]
    save_preferences(prefs, library_dir / PREFERENCES_FILE)
    small_pacs.register_modality("lucida", "LUCIDA", "127.0.0.1", port)
    window = make_window(library_dir, size=(1500, 950))
    wiring = window.network
    assert wiring.scp is not None, wiring.scp_problem
    instances = sorted(small_pacs.instances())
    first, rest = instances[:6], instances[6:]

    small_pacs.push("lucida", first)
    qt.waitUntil(lambda: bool(window.browser.visible_series_ids()), timeout=WAIT_MS)
    series_id = window.browser.visible_series_ids()[0]
    qt.waitUntil(lambda: len(window.library.series_sources(series_id)) == 6, timeout=WAIT_MS)
    window.open_series(series_id)
    qt.waitUntil(lambda: window.current_volume is not None
                 and not (window.load_job and window.load_job.running), timeout=WAIT_MS)
    assert window.current_volume.shape[0] == 6
    qt.wait(1500)  # the first push goes quiet (1 s) and reloads what it brought: still 6
    qt.waitUntil(lambda: not (window.load_job and window.load_job.running), timeout=WAIT_MS)
    assert window.current_volume.shape[0] == 6

    small_pacs.push("lucida", rest)
    # LIDC's first 12 positions have a gap: the loader gives 13 slices (one filled).
    wait_or_explain(qt, window, series_id, lambda: window.current_volume is not None
                    and window.current_volume.shape[0] > 6
                    and not (window.load_job and window.load_job.running))
    assert len(window.library.series_sources(series_id)) == 12
    assert window.current_series_id == series_id and window.current_volume.shape[0] >= 12
    assert not wiring._pushing
