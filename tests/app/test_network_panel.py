"""The Network panel as a reader drives it: nodes through the real dialog, Echo against a
peer that never answers (waiting…, then the timeout message, the window responsive all
along), a send to a port nobody listens on (the error in the transfer list), the dock
beside the library in the real main window, and a screenshot of it with results.

Real Library (SQLite), real sockets, real Qt widgets under Xvfb; nothing is mocked.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.gui

SHOTS = Path(os.environ.get("LUCIDA_SHOTS", "/tmp/shots/D3"))


@pytest.fixture
def library(library_dir: Path) -> Iterator[Any]:
    from store import Library

    lib = Library.open(library_dir)
    yield lib
    lib.close()


@pytest.fixture
def panel(qt: Any, library: Any, library_dir: Path) -> Any:
    from app.network_panel import NetworkPanel
    from net.nodes import LocalAE

    widget = NetworkPanel(library, library_dir, lambda: LocalAE(ae_title="LUCIDA", port=0))
    widget.resize(420, 760)
    widget.show()
    qt.waitExposed(widget)
    yield widget
    widget.shutdown()
    from app import workers

    workers.cancel_all_and_wait(20_000)
    widget.close()


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield int(server.getsockname()[1])
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def click(widget: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    assert widget.isEnabled(), f"{widget.objectName()} is disabled"
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def type_into(widget: Any, text: str) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    widget.setFocus()
    widget.selectAll()
    QTest.keyClick(widget, Qt.Key.Key_Backspace)
    QTest.keyClicks(widget, text)


def fill_dimse(dialog: Any, name: str, ae: str, host: str, port: int) -> None:
    type_into(dialog.name, name)
    dialog.kind.setCurrentIndex(0)
    type_into(dialog.ae_title, ae)
    type_into(dialog.host, host)
    type_into(dialog.port, str(port))


def ok_button(dialog: Any) -> Any:
    from PySide6.QtWidgets import QDialogButtonBox

    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def add_node_by_dialog(qt: Any, panel: Any, name: str, ae: str, host: str, port: int) -> None:
    click(panel.add_button)
    dialog = panel.last_dialog
    qt.waitExposed(dialog)
    fill_dimse(dialog, name, ae, host, port)
    click(ok_button(dialog))
    qt.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)


def test_nodes_are_added_checked_edited_and_removed_through_the_dialog(
        qt: Any, panel: Any, library: Any) -> None:
    from net.nodes import get_node, list_nodes

    click(panel.add_button)
    dialog = panel.last_dialog
    qt.waitExposed(dialog)
    # An AE title with a backslash is refused by net.nodes.Node: the dialog says why and stays.
    fill_dimse(dialog, "Clinic PACS", "BAD\\AE", "127.0.0.1", 4242)
    click(ok_button(dialog))
    assert dialog.isVisible()
    assert "backslash" in dialog.problem.text()
    assert list_nodes(library) == []
    type_into(dialog.ae_title, "ORTHANC")
    click(ok_button(dialog))
    qt.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    node = get_node(library, "Clinic PACS")
    assert (node.ae_title, node.host, node.port, node.kind) == ("ORTHANC", "127.0.0.1", 4242,
                                                                "dimse")
    assert panel.nodes.count() == 1 and panel.selected_node_name() == "Clinic PACS"
    assert "ORTHANC@127.0.0.1:4242" in panel.nodes.item(0).text()

    # A DICOMweb node: the DIMSE rows hide, the URL row shows.
    click(panel.add_button)
    web = panel.last_dialog
    qt.waitExposed(web)
    type_into(web.name, "Web PACS")
    web.kind.setCurrentIndex(1)
    assert not web.host.isVisible() and web.url.isVisible()
    type_into(web.url, "ftp://nope")
    click(ok_button(web))
    assert web.isVisible() and "http" in web.problem.text()
    type_into(web.url, "http://127.0.0.1:8042/dicom-web")
    click(ok_button(web))
    qt.waitUntil(lambda: not web.isVisible(), timeout=5_000)
    assert get_node(library, "Web PACS").kind == "dicomweb"
    assert panel.nodes.count() == 2

    # Edit: a new port is saved under the same name.
    panel.reload_nodes(select="Clinic PACS")
    click(panel.edit_button)
    edit = panel.last_dialog
    qt.waitExposed(edit)
    assert edit.ae_title.text() == "ORTHANC"
    type_into(edit.port, "4343")
    click(ok_button(edit))
    qt.waitUntil(lambda: not edit.isVisible(), timeout=5_000)
    assert get_node(library, "Clinic PACS").port == 4343

    click(panel.remove_button)
    assert [n.name for n in list_nodes(library)] == ["Web PACS"]
    assert panel.nodes.count() == 1


def test_echo_to_a_peer_that_never_answers_waits_then_times_out_without_freezing(
        qt: Any, panel: Any, silent_peer: int) -> None:
    from PySide6.QtCore import QTimer

    add_node_by_dialog(qt, panel, "Silent", "SILENT", "127.0.0.1", silent_peer)
    panel.timeout_s = 2.0
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(50)
    started = time.monotonic()
    click(panel.echo_button)
    assert "waiting…" in panel.echo_label.text()
    assert not panel.echo_button.isEnabled()  # one echo at a time
    qt.waitUntil(lambda: "failed" in panel.echo_label.text(), timeout=30_000)
    timer.stop()
    took = time.monotonic() - started
    text = panel.echo_label.text()
    assert "Silent" in text and ("time" in text.lower() or "answer" in text.lower()), text
    assert 1.5 <= took <= 15.0, took
    # The event loop ran all along: timer ticks throughout the wait, never a long gap.
    during = [t for t in ticks if started <= t <= started + took]
    assert len(during) >= 0.5 * took / 0.05, (len(during), took)
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert max(gaps) < 0.5, max(gaps)
    assert panel.echo_button.isEnabled()


def test_a_send_to_a_port_nobody_listens_on_is_a_failed_transfer_with_its_error(
        qt: Any, panel: Any, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    add_node_by_dialog(qt, panel, "Gone", "GONE", "127.0.0.1", free_port())
    files = [Path(str(get_testdata_file("CT_small.dcm")))]
    panel.send_what.setCurrentIndex(0)
    job = panel.send_paths(files, what="a file")
    assert job is not None
    row = panel.transfers.rows[-1]
    assert row.direction == "send" and row.node == "Gone" and row.total == 1
    qt.waitUntil(lambda: row.finished, timeout=60_000)
    assert row.state == "failed", (row.state, row.error)
    assert row.error and "Gone" in row.error
    from app.network_transfers import COLUMNS

    model = panel.transfers
    last = len(model.rows) - 1
    assert model.data(model.index(last, COLUMNS.index("Error"))) == row.error
    assert model.data(model.index(last, COLUMNS.index("State"))) == "failed"


def test_the_network_dock_sits_beside_the_library_and_looks_right(
        make_window: Any, qt: Any, library_dir: Path) -> None:
    """Tabified with the library, reachable from the Network menu; a screenshot with a
    node, results and transfers: dark, and no two widgets of the panel overlap."""
    from PySide6.QtWidgets import QApplication, QWidget

    from app.network_transfers import Transfer
    from net.nodes import Node

    window = make_window(library_dir, size=(1500, 950))
    wiring = window.network
    assert wiring.dock in window.tabifiedDockWidgets(window.browser_dock)
    assert window.dockWidgetArea(wiring.dock) == window.dockWidgetArea(window.browser_dock)
    assert wiring.scp is None, "the storage SCP is off by default"
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Network" in titles and titles.index("&Network") < titles.index("&Help")
    wiring.act_show.trigger()
    qt.waitUntil(lambda: not wiring.dock.visibleRegion().isEmpty(), timeout=5_000)

    panel = wiring.panel
    panel.add_node(Node(name="Clinic PACS", ae_title="ORTHANC", host="127.0.0.1", port=4242))
    panel._say(panel.echo_label, "Echo Clinic PACS: OK, 3 ms", "#7fb27f")
    panel._show_results("Clinic PACS", [
        {"PatientName": "LIDC-IDRI-0001", "PatientID": "LIDC-IDRI-0001",
         "StudyDate": "20000101", "StudyDescription": "Chest CT", "ModalitiesInStudy": "CT",
         "NumberOfStudyRelatedSeries": "1", "NumberOfStudyRelatedInstances": "133",
         "StudyInstanceUID": "1.2.3"},
        {"PatientName": "DOE^JANE", "PatientID": "P2", "StudyDate": "20240102",
         "StudyDescription": "MR brain", "ModalitiesInStudy": "MR\\SR",
         "NumberOfStudyRelatedSeries": "4", "NumberOfStudyRelatedInstances": "612",
         "StudyInstanceUID": "1.2.4"}])
    done = Transfer("Clinic PACS", "retrieve", total=133, done=133, bytes=70_000_000,
                    state="done", mb_per_s=41.7)
    broken = Transfer("Clinic PACS", "send", total=3, done=1, state="failed",
                      error="1.2.3.4: status 0xA700 out of resources")
    panel.transfers.add(done)
    panel.transfers.add(broken)
    QApplication.processEvents()
    qt.wait(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = window.grab().toImage()
    image.save(str(SHOTS / "network_dock.png"))

    def at(widget: QWidget, x: float, y: float) -> Any:
        point = widget.mapTo(window, widget.rect().topLeft())
        return image.pixelColor(point.x() + int(x), point.y() + int(y))

    # Dark reading-room background behind the panel's groups.
    corner = at(panel, 2, 2)
    assert corner.lightness() < 60, corner.name()
    # The results show the patient and the instance count (text pixels are light).
    results = panel.results
    assert results.model().rowCount() == 2
    assert results.model().index(0, 0).data() == "LIDC-IDRI-0001"
    assert results.model().index(1, 0).data() == "DOE, JANE"
    assert results.model().index(1, 4).data() == "MR/SR"
    assert results.model().index(0, 2).data() == "2000-01-01"
    cell = results.visualRect(results.model().index(0, 0))
    light = [at(results.viewport(), x, cell.center().y()).lightness()
             for x in range(cell.left() + 2, cell.right())]
    assert max(light) > 130, "the patient's name is drawn in light text"
    # The echo result is green text.
    label = panel.echo_label
    greens = [at(label, x, label.height() // 2) for x in range(0, min(label.width(), 200))]
    assert any(c.green() > 140 and c.green() > c.red() + 25 for c in greens)
    # The failed transfer's state is drawn in the error colour.
    view = panel.transfer_view
    from app.network_transfers import COLUMNS

    state = view.visualRect(panel.transfers.index(1, COLUMNS.index("State")))
    reds = [at(view.viewport(), x, state.center().y()) for x in range(state.left(),
                                                                       state.right())]
    assert any(c.red() > 170 and c.red() > c.green() + 50 for c in reds)

    # Hiding identifying text (Ctrl+I) hides the patients' names and IDs in the results.
    window.act_identity.trigger()
    assert not window.prefs.identity_visible
    assert results.model().index(0, 0).data() == "Patient 1"
    assert results.model().index(1, 1).data() == ""
    assert results.model().index(1, 3).data() == "MR brain"
    assert results.selected_study_uids() == ["1.2.3"], "the selection survives"
    window.act_identity.trigger()
    assert results.model().index(1, 0).data() == "DOE, JANE"

    # Nothing overlaps: the visible widgets laid out side by side in each row never cross.
    def leaves(parent: QWidget) -> list[QWidget]:
        out = []
        for child in parent.findChildren(QWidget):
            if (child.isVisible() and child.parentWidget() is not None
                    and child.layout() is None and not child.findChildren(QWidget)
                    and child.width() > 0):
                out.append(child)
        return out

    for box in panel.findChildren(QWidget):
        if type(box).__name__ not in ("QGroupBox", "QueryForm"):
            continue
        kids = [w for w in leaves(box) if w.parentWidget() is box]
        for n, a in enumerate(kids):
            for b in kids[n + 1:]:
                ra, rb = a.geometry(), b.geometry()
                assert not ra.intersects(rb), (a.objectName() or type(a).__name__,
                                               b.objectName() or type(b).__name__)
        for w in kids:
            assert box.rect().contains(w.geometry()), w.objectName() or type(w).__name__


def test_a_taken_port_leaves_receiving_off_with_the_reason_and_the_window_working(
        make_window: Any, qt: Any, library_dir: Path, silent_peer: int) -> None:
    """The preferences want the SCP on a port another program holds: the window opens,
    says why receiving is off, and the SCP is not running."""
    from app.settings import PREFERENCES_FILE, load_preferences, save_preferences

    prefs = load_preferences(library_dir / PREFERENCES_FILE)
    prefs.scp_enabled = True
    prefs.local_port = silent_peer
    prefs.scp_allowed_aes = ["ORTHANC"]
    save_preferences(prefs, library_dir / PREFERENCES_FILE)
    window = make_window(library_dir)
    wiring = window.network
    assert wiring.scp is None
    assert wiring.scp_problem and str(silent_peer) in wiring.scp_problem, wiring.scp_problem
    assert "Receiving is off" in window.status_label.text()
    assert wiring.act_receive.isChecked(), "the preference stays as the user set it"
