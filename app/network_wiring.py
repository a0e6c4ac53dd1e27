"""The Network panel in the main window: its dock, its menu, the storage SCP.

- A "Network" dock tabified with the library browser, and a Network menu (the panel,
  Network settings…, Receive studies on/off).
- The storage SCP (``net.scp.StorageSCP``) runs while the preferences say so and stops
  when the window closes; what it receives is filed and indexed like a retrieve.
- The panel itself is built when its dock tab is first shown (or ``panel`` is reached):
  the dock starts behind the library's tab, off the path to the first frame.
- Instances indexed while a retrieve or a push is still arriving refresh the library
  browser (at most every half second), so the reader can open a series before it is
  complete; a series opened that way is loaded again once its retrieve ends, and the
  series on screen once a push that brought it instances goes quiet.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu, QWidget

if TYPE_CHECKING:
    from app.network_jobs import Arrived
    from app.network_panel import NetworkPanel
    from app.network_settings import NetworkSettingsDialog
    from app.network_transfers import Transfer

log = logging.getLogger(__name__)

REFRESH_MS = 500
SCP_IDLE_MS = 1000


class _Received(QObject):
    """Crosses from the SCP's association threads to the GUI thread (queued signal)."""

    indexed = Signal(object)  # list of paths indexed into the library
    outcome = Signal(object)  # net.transfer.InstanceOutcome
    flushed = Signal()  # a quiet push's last batch is indexed (``_flush_scp``)


class NetworkWiring:
    """Owns the panel, its dock and menu, and the storage SCP of one main window."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.scp: Any = None
        self.scp_problem: str | None = None
        self.received = 0
        self._arriving: set[str] = set()  # series UIDs of running retrieves / pushes
        self._pushing: set[str] = set()  # series UIDs the SCP indexed since the push began
        self._opened_while_arriving: Any = None
        # (series id, instances the library held when it was opened): what is on screen.
        self._opened_with: tuple[Any, int] | None = None
        self._signals = _Received()
        self._signals.indexed.connect(self._on_scp_indexed)
        self._signals.outcome.connect(self._on_scp_outcome)
        self._signals.flushed.connect(self._on_push_quiet)
        self._refresh = QTimer(window)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(window.refresh_library)
        # The SCP's Filer indexes in batches as instances arrive; once a push goes quiet
        # the last partial batch is flushed (off the GUI thread), so it reaches the library.
        self._scp_idle = QTimer(window)
        self._scp_idle.setSingleShot(True)
        self._scp_idle.setInterval(SCP_IDLE_MS)
        self._scp_idle.timeout.connect(self._flush_scp)

        self._panel: NetworkPanel | None = None
        self._identity_visible = True  # handed to the panel when it is built
        dock = QDockWidget("Network", window)
        dock.setObjectName("networkDock")
        dock.setWidget(QWidget(dock))  # the panel replaces it when first shown
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        window.tabifyDockWidget(window.browser_dock, dock)
        window.browser_dock.raise_()
        self.dock = dock
        dock.visibilityChanged.connect(self._on_dock_visible)
        window.series_loading.connect(self._on_series_loading)
        self.menu = self._menu(window)
        self.apply_scp_preference()

    @property
    def panel(self) -> NetworkPanel:
        """The Network panel, built on first need (its dock shown, or a caller)."""
        if self._panel is None:
            from app.network_panel import NetworkPanel

            window = self.window
            panel = NetworkPanel(window.library, window.library_dir, self.local_ae, window)
            panel.series_provider = window.browser.selected_series_id
            panel.signoff_provider = self._signoff_paths
            panel.scp_provider = lambda: self.scp
            panel.arrived.connect(self._on_arrived)
            panel.transfer_finished.connect(self._on_transfer_finished)
            panel.message.connect(window.set_status)
            panel.set_identity_visible(self._identity_visible)
            self._panel = panel
            self.dock.setWidget(panel)
        return self._panel

    def set_identity_visible(self, visible: bool) -> None:
        """Patient names and IDs in the results (the panel, now or when it is built)."""
        self._identity_visible = bool(visible)
        if self._panel is not None:
            self._panel.set_identity_visible(visible)

    def _on_dock_visible(self, visible: bool) -> None:
        if visible:
            _ = self.panel

    # ------------------------------------------------------------------ menu
    def _menu(self, window: Any) -> QMenu:
        menu = QMenu("&Network", window)
        show = QAction("Network panel", window)
        show.setShortcut("Ctrl+Shift+N")
        show.triggered.connect(lambda _checked=False: self.show_panel())
        window.addAction(show)
        menu.addAction(show)
        menu.addAction(self.dock.toggleViewAction())
        self.act_settings = QAction("Network settings…", window)
        self.act_settings.triggered.connect(lambda _checked=False: self.show_settings())
        menu.addAction(self.act_settings)
        self.act_receive = QAction("Receive studies (storage SCP)", window)
        self.act_receive.setCheckable(True)
        self.act_receive.setChecked(bool(window.prefs.scp_enabled))
        self.act_receive.toggled.connect(self.set_scp_enabled)
        menu.addAction(self.act_receive)
        bar = window.menuBar()
        help_action = next((a for a in bar.actions() if a.text() == "&Help"), None)
        if help_action is not None:
            bar.insertMenu(help_action, menu)
        else:
            bar.addMenu(menu)
        self.act_show = show
        return menu

    def show_panel(self) -> None:
        self.dock.show()
        self.dock.raise_()
        self.panel.form.patient_name.setFocus()

    def show_settings(self) -> NetworkSettingsDialog:
        from app.network_settings import NetworkSettingsDialog

        dialog = NetworkSettingsDialog(self.window.prefs, self.window)

        def done(result: int) -> None:
            if result == NetworkSettingsDialog.DialogCode.Accepted and \
                    dialog.apply(self.window.prefs):
                self.window._save_prefs()
                self.act_receive.blockSignals(True)
                self.act_receive.setChecked(bool(self.window.prefs.scp_enabled))
                self.act_receive.blockSignals(False)
                self.apply_scp_preference(restart=True)

        dialog.finished.connect(done)
        dialog.setModal(True)
        dialog.show()
        self.window.last_dialog = dialog
        return dialog

    # ------------------------------------------------------------------ local AE and SCP
    def local_ae(self) -> Any:
        from net.nodes import LocalAE

        prefs = self.window.prefs
        return LocalAE(ae_title=prefs.local_ae_title, port=int(prefs.local_port),
                       bind=prefs.scp_bind)

    def set_scp_enabled(self, enabled: bool) -> None:
        self.window.prefs.scp_enabled = bool(enabled)
        self.window._save_prefs()
        self.apply_scp_preference()

    def apply_scp_preference(self, restart: bool = False) -> None:
        """Start the SCP when the preferences want it (stop it when not)."""
        wanted = bool(self.window.prefs.scp_enabled)
        if self.scp is not None and (restart or not wanted):
            self.stop_scp()
        if wanted and self.scp is None:
            self.start_scp()

    def start_scp(self) -> bool:
        from app.importer import ArrivalIndexer
        from net.filing import Filer
        from net.scp import ScpConfig, StorageSCP

        prefs = self.window.prefs
        signals = self._signals
        library_dir = Path(self.window.library_dir)

        indexer = ArrivalIndexer()

        def index(library: Any, paths: Any) -> object:  # on the Filer's indexing thread
            report = indexer.index(library, list(paths))
            signals.indexed.emit(list(paths))
            return report

        try:
            config = ScpConfig(
                ae_title=prefs.local_ae_title, port=int(prefs.local_port), bind=prefs.scp_bind,
                allowed_aes=list(prefs.scp_allowed_aes),
                allowed_hosts=list(prefs.scp_allowed_hosts),
                tls_cert=Path(prefs.scp_tls_cert) if prefs.scp_tls_cert else None,
                tls_key=Path(prefs.scp_tls_key) if prefs.scp_tls_key else None,
                max_instance_mb=prefs.scp_max_instance_mb,
                max_association_mb=prefs.scp_max_association_mb)
            # One Library connection on the indexing thread for all batches (for_library).
            filer = Filer.for_library(library_dir, index, finish=indexer.finish)
            scp = StorageSCP(config, filer, signals.outcome.emit)
            scp.start()
        except Exception as exc:  # a taken port, a bad certificate: say so, keep running
            from app.series_session import error_text

            self.scp_problem = error_text(exc)
            log.warning("storage SCP not started: %s", self.scp_problem)
            self.window.set_status(f"Receiving is off: {self.scp_problem}")
            return False
        self.scp = scp
        self.scp_problem = None
        self.window.set_status(f"Receiving studies as {prefs.local_ae_title} on "
                               f"{prefs.scp_bind}:{scp.port}.")
        return True

    def stop_scp(self) -> None:
        self._scp_idle.stop()
        if self.scp is not None:
            try:
                self.scp.stop()
            finally:
                self.scp = None

    def _on_scp_outcome(self, outcome: Any) -> None:
        if getattr(outcome, "ok", False):
            self.received += 1
        self._scp_idle.start()

    def _flush_scp(self) -> None:
        """Index a quiet push's last partial batch, then ``_on_push_quiet``. On a thread of
        its own, not the job pool: four long user jobs (loads, exports, transfers) must not
        hold back the end of a push, and it has no progress or cancel to show."""
        scp = self.scp
        if scp is None:
            return
        flushed = self._signals.flushed

        def flush() -> None:
            try:
                scp.filer.flush(30)
            finally:
                flushed.emit()

        threading.Thread(target=flush, name="lucida-scp-flush", daemon=True).start()

    def _on_scp_indexed(self, paths: list[Path]) -> None:
        series_uids = {Path(p).parent.name for p in paths}  # <study>/<series>/<sop>.dcm
        self._arriving.update(series_uids)
        self._pushing.update(series_uids)
        self._refresh.start()
        self.window.set_status(f"Received {self.received} instance(s).", transient=True)

    # ------------------------------------------------------------------ arriving series
    def _on_arrived(self, arrived: Arrived) -> None:
        self._arriving.update(arrived.series_uids)
        if not self._refresh.isActive():
            self._refresh.start()

    def _series_row(self, series_id: Any) -> Any:
        try:
            return self.window.library.get_series(int(series_id))
        except Exception:  # a series that went away: nothing to follow
            return None

    def _series_uid(self, series_id: Any) -> str | None:
        row = self._series_row(series_id)
        return None if row is None else str(row.series_uid)

    def _on_series_loading(self, series_id: Any) -> None:
        panel = self._panel  # no panel yet: no transfer running
        row = self._series_row(series_id)
        uid = None if row is None else str(row.series_uid)
        # The load reads the instances after this: it shows at least this many.
        self._opened_with = None if row is None else (series_id, int(row.num_instances))
        # A C-MOVE's instances come through the SCP: they count as the retrieve's.
        arriving = (panel is not None and panel.running()
                    and uid in (self._arriving | self._pushing))
        self._opened_while_arriving = series_id if arriving else None

    def _on_transfer_finished(self, transfer: Transfer) -> None:
        if not self.panel.running():
            self._arriving.clear()
        self._arrival_over()

    def _on_push_quiet(self) -> None:
        """A push went quiet and its last batch is indexed (``_flush_scp``): the series on
        screen loads again if the push brought it instances, whenever it was opened."""
        pushed, self._pushing = self._pushing, set()
        if self._panel is not None and self._panel.running():
            return  # a retrieve runs (a C-MOVE arrives through the SCP too): its end reloads
        self._arriving.clear()
        self._refresh.stop()
        self.window.refresh_library()
        shown = self.window.current_series_id
        row = None if shown is None else self._series_row(shown)
        if row is not None and (str(row.series_uid) in pushed or self._grew(shown, row)):
            self._reload(shown)

    def _grew(self, series_id: Any, row: Any) -> bool:
        """The library's ``row`` of ``series_id`` holds more instances than when it was
        opened (a check on state, whatever order the push's signals came in)."""
        opened = self._opened_with
        return (opened is not None and opened[0] == series_id
                and int(row.num_instances) > opened[1])

    def _arrival_over(self) -> None:
        """A retrieve ended: the library shows everything, and the series opened while it
        arrived loads again, complete."""
        self._refresh.stop()
        self.window.refresh_library()
        reopen, self._opened_while_arriving = self._opened_while_arriving, None
        if reopen is not None:
            self._reload(reopen)

    def _reload(self, series_id: Any) -> None:
        """Load ``series_id`` again, unless the user moved on, a model runs or a review is
        open on it."""
        window = self.window
        busy = window.models_panel is not None and window.models_panel.running
        if (series_id == window.current_series_id and not busy
                and (window.series is None or window.series.review is None)):
            window.open_series(series_id)  # now complete: load every instance
            window.set_status("The series finished arriving and was loaded again.")

    def _signoff_paths(self) -> list[Path]:
        """The open run's signed-off SEG, SR and KO, checked against the audited hashes."""
        from net.send import signoff_paths

        series = self.window.series
        run_id = getattr(series, "run_id", None) if series is not None else None
        if run_id is None:
            return []
        return signoff_paths(self.window.library, int(run_id))

    def shutdown(self) -> None:
        if self._panel is not None:
            self._panel.shutdown()
        self.stop_scp()
