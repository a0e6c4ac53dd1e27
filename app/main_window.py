"""Lucida's main window: library browser, viewing area, measurements, models, findings.

Wiring and menus only: the viewer (``viewer.ViewerPanel``) draws, the open
series' logic — its runs, review, measurements, imported objects — lives in a
Qt-free ``app.series_session.SeriesSession`` (one per open series, so nothing
of one series leaks into the next), the store keeps everything, ``dicomio``
reads series — in background jobs (``app.workers``) whose results arrive by
queued signals. The GUI thread never reads pixels from disk.

Stored data is never written over unread: when a series' saved measurements
cannot all be read (a damaged row, a failing read, a record the viewer cannot
rebuild), the readable ones are shown, saving is blocked for that series, and
the window says so. Library failures (locked, damaged, full) are dialogs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app import __version__, workers
from app.compare import ComparisonController
from app.dialogs import (
    NOT_DIAGNOSTIC,
    AboutDialog,
    ImportReportDialog,
    ShortcutsDialog,
    WarningsDialog,
)
from app.icon import app_icon
from app.library_browser import LibraryBrowser
from app.load_worker import demo_job, import_job, load_series_job, warm_loader
from app.measurements_panel import MeasurementsPanel
from app.open_paths import PathOpener
from app.review_canvas import BRUSH_TOOLS
from app.review_wiring import ReviewWiring
from app.series_session import SeriesSession, error_text
from app.settings import Preferences, save_preferences
from app.view_input import ViewInputFilter
from core.projection import ProjectionImage

log = logging.getLogger(__name__)

LAYOUTS = (("1x1", "Single view", "Ctrl+1"), ("1x3", "Three planes", "Ctrl+2"),
           ("2x2", "Three planes + 3D", "Ctrl+3"))
# A, R, E, N and P belong to the review (Findings panel), so the tools that had
# them moved: navigate V, angle Shift+A, ellipse O (oval), pan H (hand).
TOOLS = (("navigate", "Navigate / window", "V"), ("crosshair", "Crosshair", "X"),
         ("distance", "Distance", "D"), ("angle", "Angle", "Shift+A"),
         ("ellipse", "Ellipse ROI", "O"), ("rectangle", "Rectangle ROI", "B"),
         ("bidimensional", "Bidimensional (long × short axis)", "Shift+D"),
         ("pan", "Pan", "H"), ("zoom", "Zoom", "Z"))
# The views that can fill the window in the 1 × 1 layout (View ▸ Layout, double-click).
SINGLE_VIEWS = (("axial", "axial"), ("coronal", "coronal"), ("sagittal", "sagittal"),
                ("3d", "3-D"))
SLAB_MODES = (("none", "Thin"), ("mip", "MIP"), ("minip", "MinIP"), ("mean", "Mean"))

# Keys the slice views handle themselves (listed on the shortcut sheet).
VIEWER_KEYS = (
    ("Wheel / PgUp / PgDn / ↑ ↓", "Scroll one slice"),
    ("Left click", "Move the crosshair (all views follow)"),
    ("Left drag", "Window / level (or draw with the active tool)"),
    ("Left drag on a measurement", "Move the handle under the pointer (end, vertex, ROI "
     "corner) or, on its line, the whole measurement"),
    ("Shift + left drag", "Drag the crosshair"),
    ("Middle drag", "Pan"),
    ("Right drag / Ctrl + wheel", "Zoom"),
    ("1 … 8", "CT presets: brain, subdural, stroke, lung, mediastinum, abdomen, liver, bone"),
    ("1 … 3 (MR and other non-CT)", "Windows from the volume: full range, tissue, bright"),
    ("0", "Automatic window (percentiles)"),
    ("R", "Reset zoom and pan of the view and the window to the series' own "
     "(no review open; else Ctrl+R, every view)"),
    ("Double-click (navigate)", "Maximise the view; again to restore the layout"),
    ("[ / ]", "Brush / eraser smaller / larger"),
    ("Esc", "Cancel the measurement being drawn"),
    ("F (3-D view)", "Draw one full-quality 3-D frame now (it otherwise refines only as far "
     "as keeps the app responsive)"),
)
# Keys of the review dialogs (listed on the shortcut sheet).
REVIEW_KEYS = (
    ("1 … 5 / ↑ ↓ Enter", "Reject reason: false positive, artefact, not clinically "
     "significant, duplicate, other (asks for text)"),
)


class MainWindow(QMainWindow, ReviewWiring):
    """The application window. Signals let tests and scripts follow loading."""

    series_loading = Signal(object)  # series id
    first_image_shown = Signal(object)  # series id, partial volume on screen
    series_loaded = Signal(object)  # series id, whole volume on screen
    load_failed = Signal(str)
    load_cancelled = Signal(object)
    import_done = Signal(object)  # ImportReport
    demo_ready = Signal(object)  # demo series id
    review_opened = Signal(object)  # run id: its findings are in the panel and on the views
    imported_ready = Signal(int)  # imported SEG / SR / RTSTRUCT findings of the open series

    def __init__(self, library_dir: Path, prefs: Preferences, prefs_path: Path | None = None,
                 state_path: Path | None = None, *, library: Any = None,
                 open_demo: bool | None = None, interactive: bool = True,
                 open_paths: Sequence[Path] = ()) -> None:
        super().__init__()
        # The series reader's imports load in the background while the window is built:
        # the first series (the demo at first launch) shows sooner.
        warm_loader()
        from store import Library

        self.setObjectName("lucidaMainWindow")
        self.setWindowTitle(f"Lucida {__version__} — research use only, not for diagnostic use")
        self.setWindowIcon(app_icon())
        self.library_dir = Path(library_dir)
        self.prefs = prefs
        self.prefs_path = prefs_path
        self.state_path = state_path
        self.interactive = interactive  # False: no modal dialogs (scripts, tests)
        self._owns_library = library is None
        self.library = library if library is not None else Library.open(self.library_dir)
        self.current_series_id: Any = None
        self.current_volume: Any = None
        self.current_projection: ProjectionImage | None = None
        from app.hanging import Hanging, Protocols

        self.hanging_protocols = Protocols.load(prefs.hanging_protocols)
        self.hanging: Hanging | None = None  # the rule applied to the open series
        self._hanging_applied = False        # a rule (not the user) set the layout
        self._hanging_prior: int | None = None  # the prior a rule opened beside the series
        # The open series' logic (runs, review, measurements); None while loading.
        self.series: SeriesSession | None = None
        self.export_dir: Path | None = None  # non-interactive sign-off folder (tests, scripts)
        self.last_export: Any = None
        self._findings_sized = False
        self._derived_job: workers.Job | None = None
        self._load_job: workers.Job | None = None
        # Set by closeEvent: a job's result queued before the close must not reach the
        # library (closed) or the viewer (shut down).
        self._closed = False
        self._import_job: workers.Job | None = None
        self._demo_job: workers.Job | None = None
        self._shown_partial = False
        self._shown_array: Any = None
        self._auto_cursor: Any = None
        self._restoring_measurements = False
        self._restore_problem = ""
        # Why the open series' measurements must not be saved (None: they may).
        self.measurements_not_saved: str | None = None
        self._docks_sized = False
        self._preset_modality = ""
        self.last_import_report: Any = None
        self.last_dialog: Any = None
        self.setAcceptDrops(True)
        self.resize(1600, 1000)

        from viewer import ViewerPanel, presets

        self._presets: Any = presets
        self.viewer: Any = ViewerPanel(self)
        self.viewer.setObjectName("viewerPanel")
        # Number keys, R and double-click in the views depend on the series (view_input).
        self.view_input = ViewInputFilter(self)
        self.view_input.preset_key.connect(self.apply_preset_key)
        self.view_input.reset_key.connect(self._reset_view_and_window)
        self.view_input.maximise_requested.connect(self.toggle_maximised)
        self._layout_before_maximise: str | None = None
        self._watch_views()
        self.viewer.view_made.connect(lambda _view: self._watch_views())  # views made lazily

        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.warning_banner = QLabel(self)
        self.warning_banner.setObjectName("warningBanner")
        self.warning_banner.setWordWrap(True)
        self.warning_banner.setTextFormat(Qt.TextFormat.RichText)
        self.warning_banner.linkActivated.connect(lambda _link: self.show_warnings())
        self.warning_banner.hide()
        column.addWidget(self.warning_banner)
        # A compared series (a prior) opens beside the viewer in this splitter.
        self.compare = ComparisonController(self, self.viewer)
        column.addWidget(self.compare.splitter, 1)
        self.setCentralWidget(central)

        self.browser = LibraryBrowser(self.library_dir, self)
        self.browser.thumbnails_enabled = prefs.thumbnails
        self.browser.open_requested.connect(self._open_requested)
        self.browser.import_requested.connect(self.choose_import_folder)
        self.browser.compare_requested.connect(self.compare.open_series)
        self.browser_dock = self._dock("Library", "libraryDock", self.browser,
                                       Qt.DockWidgetArea.LeftDockWidgetArea)

        self.measurements = MeasurementsPanel(self)
        self.measurements.select_requested.connect(self._select_measurement)
        self.measurements.delete_requested.connect(self._delete_measurement)
        self.measurements_dock = self._dock("Measurements", "measurementsDock", self.measurements,
                                            Qt.DockWidgetArea.RightDockWidgetArea)
        self.models_panel: Any = None
        self.models_dock: QDockWidget | None = None
        self._mount_models_panel()
        self._mount_findings_panel()
        from app.tag_browser import TagBrowserDock

        self.tags = TagBrowserDock(self)  # DICOM tags dock, Ctrl+T

        self.viewer.measurements_changed.connect(self._on_measurements_changed)
        if hasattr(self.viewer, "window_level_changed"):
            self.viewer.window_level_changed.connect(self._on_window_level)
        if hasattr(self.viewer, "message"):
            self.viewer.message.connect(lambda text: self.set_status(text, transient=True))

        self.slab_mode: QComboBox
        self._cine_timer = QTimer(self)
        self._cine_timer.timeout.connect(self._cine_step)
        self._build_status_bar()
        self._build_actions()
        self._build_menus_and_toolbar()
        from app.network_wiring import NetworkWiring

        # Network dock beside the library, Network menu, the storage SCP when enabled.
        self.network = NetworkWiring(self)

        self.set_layout(prefs.default_layout)
        self.set_identity_visible(prefs.identity_visible)
        self._state_restored = self._restore_window_state()
        self.refresh_library()
        if prefs.load_problem:
            self.show_problem("Preferences", prefs.load_problem)
        self._report_hanging_problems()

        # Paths from the command line or the system (file associations, macOS FileOpen)
        # are imported and their first series opens, instead of the demo.
        self.path_opener = PathOpener(self)
        want_demo = (prefs.open_demo_on_first_launch and not prefs.first_launch_done
                     if open_demo is None else open_demo)
        if open_paths:
            self.path_opener.open(open_paths)
        elif want_demo:
            QTimer.singleShot(0, self.open_demo)

    # ------------------------------------------------------------------ building
    def _dock(self, title: str, name: str, widget: QWidget,
              area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _mount_models_panel(self) -> None:
        try:
            from app.models_panel import ModelsPanel
        except ImportError:
            return
        try:
            # Packs are read after the first frame (the Models tab starts hidden).
            panel = ModelsPanel(self, library_dir=self.library_dir, defer_scan=True)
        except Exception as exc:  # a broken optional panel must not stop the viewer
            log.warning("models panel unavailable: %s", exc)
            return
        self.models_panel = panel
        self.models_dock = self._dock("Models", "modelsDock", panel,
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.measurements_dock, self.models_dock)
        self.measurements_dock.raise_()
        # Its tab brought forward reads the packs now if that has not happened yet.
        self.models_dock.visibilityChanged.connect(
            lambda visible: visible and panel.ensure_scanned())
        panel.result_ready.connect(self._on_inference_result)
        panel.error.connect(lambda message: self.set_status(f"Model: {message}"))
        panel.status_message.connect(self.set_status)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_label = QLabel("", self)
        bar.addWidget(self.status_label, 1)
        notice = QLabel(NOT_DIAGNOSTIC, self)
        notice.setObjectName("notDiagnostic")
        bar.addPermanentWidget(notice)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(220)
        self.progress.hide()
        bar.addPermanentWidget(self.progress)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_background)
        bar.addPermanentWidget(self.cancel_button)

    def _action(self, text: str, slot: Any,
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
                checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work even with menus hidden
        return action

    def _build_actions(self) -> None:
        self.act_import = self._action("Import folder…", self.choose_import_folder,
                                       QKeySequence.StandardKey.Open,
                                       tip="Import a folder of DICOM files into the library")
        self.act_import_files = self._action("Import files…", self.choose_import_files,
                                             "Ctrl+Shift+O")
        self.act_quit = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_search = self._action("Find in library", self._focus_search,
                                       QKeySequence.StandardKey.Find)
        self.layout_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        group.setExclusive(True)
        for name, text, key in LAYOUTS:
            act = QAction(f"{text} ({name.replace('x', '×')})", self)
            act.setShortcut(QKeySequence(key))
            act.setCheckable(True)
            act.setData(name)
            act.triggered.connect(lambda _c=False, n=name: self.set_layout(n))
            group.addAction(act)
            self.addAction(act)
            self.layout_actions[name] = act
        self.single_actions: dict[str, QAction] = {}
        for name, text in SINGLE_VIEWS:
            act = QAction(f"1 × 1 {text}", self)
            act.setCheckable(True)
            act.triggered.connect(lambda _c=False, n=name: self.set_layout("1x1", single=n))
            self.single_actions[name] = act
        self.act_identity = self._action("Show identifying text", self.set_identity_visible,
                                         "Ctrl+I", checkable=True,
                                         tip="Show or hide patient name, ID and birth date")
        self.act_crosshair = self._action("Show crosshair", self.viewer.set_crosshair_visible,
                                          "C", checkable=True,
                                          tip="Show or hide the crosshair lines in every view")
        self.act_crosshair.setChecked(self.viewer.crosshair_visible())
        self.act_reset = self._action("Reset views and window", self._reset_views, "Ctrl+R",
                                      tip="Zoom, pan and the window of every view as the "
                                      "series opened (its own window)")
        self.tool_actions: dict[str, QAction] = {}
        tool_group = QActionGroup(self)
        tool_group.setExclusive(True)
        for name, text, key in TOOLS:
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.setCheckable(True)
            act.triggered.connect(lambda _c=False, n=name: self.set_tool(n))
            tool_group.addAction(act)
            self.addAction(act)
            self.tool_actions[name] = act
        self.tool_actions["navigate"].setChecked(True)
        self.act_cine = self._action("Play cine", self.set_cine_playing, "Space", checkable=True,
                                     tip="Play through the slices of the series")
        self.act_warnings = self._action("Series warnings…", self.show_warnings)
        self.act_hanging = self._action("Hanging protocols…", self.show_hanging_dialog,
                                        tip="Rules that choose layout and windows per series")
        self.act_shortcuts = self._action("Keyboard shortcuts", self.show_shortcuts,
                                          QKeySequence.StandardKey.HelpContents)
        self.act_about = self._action("About Lucida", self.show_about)

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.act_import, self.act_import_files])
        from app.export_actions import ExportActions

        self.exports = ExportActions(self)  # File ▸ Export: PNG, cine, de-identified copy
        file_menu.addMenu(self.exports.menu)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        view_menu = menu.addMenu("&View")
        layout_menu = view_menu.addMenu("Layout")
        for act in self.layout_actions.values():
            layout_menu.addAction(act)
        layout_menu.addSeparator()
        for act in self.single_actions.values():
            layout_menu.addAction(act)
        view_menu.addSeparator()
        # Filled per modality by _fill_presets (HU windows only for CT).
        self.preset_menu = view_menu.addMenu("Window preset")
        self.preset_actions: dict[str, QAction] = {}
        slab_menu = view_menu.addMenu("Thick slab")
        for mode, text in SLAB_MODES:
            act = QAction(text, self)
            act.triggered.connect(lambda _c=False, m=mode: self.slab_mode.setCurrentIndex(
                [x for x, _ in SLAB_MODES].index(m)))
            slab_menu.addAction(act)
        vr_menu = view_menu.addMenu("3D preset")
        volume_presets = getattr(self._presets, "VOLUME_PRESETS", {}) if self._presets else {}
        for name, vp in volume_presets.items():
            act = QAction(str(getattr(vp, "label", "") or name), self)
            act.triggered.connect(lambda _c=False, n=name: self.viewer.set_3d_preset(n))
            vr_menu.addAction(act)
        view_menu.addSeparator()
        view_menu.addAction(self.act_identity)
        view_menu.addAction(self.act_crosshair)
        view_menu.addAction(self.act_reset)
        view_menu.addAction(self.act_cine)
        view_menu.addAction(self.act_warnings)
        view_menu.addAction(self.tags.action)
        view_menu.addAction(self.act_hanging)
        view_menu.addMenu(self.compare.menu(view_menu))
        view_menu.addSeparator()
        view_menu.addAction(self.browser_dock.toggleViewAction())
        view_menu.addAction(self.measurements_dock.toggleViewAction())
        if self.models_dock is not None:
            view_menu.addAction(self.models_dock.toggleViewAction())
        view_menu.addAction(self.findings_dock.toggleViewAction())

        tools_menu = menu.addMenu("&Tools")
        for act in self.tool_actions.values():
            tools_menu.addAction(act)

        if self.models_panel is not None and self.models_dock is not None:
            models_menu = menu.addMenu("&Models")
            models_menu.addAction(self.models_dock.toggleViewAction())
            self.act_run_model = self._action("Run selected model", self._run_model, "Ctrl+M",
                                              tip="Run the model chosen in the Models panel "
                                              "on the open series")
            models_menu.addAction(self.act_run_model)
            self.act_cancel_model = self._action("Cancel model run", self.models_panel.cancel)
            models_menu.addAction(self.act_cancel_model)

        review_menu = menu.addMenu("&Review")
        review_menu.addAction(self.findings_dock.toggleViewAction())
        review_menu.addSeparator()
        for action in self.findings_panel.review_actions():
            review_menu.addAction(action)

        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_about)

        bar = QToolBar("Main", self)
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.addAction(self.act_import)
        bar.addSeparator()
        for name in ("1x1", "1x3", "2x2"):
            act = self.layout_actions[name]
            act.setIconText(name.replace("x", "×"))
            bar.addAction(act)
        bar.addSeparator()
        self.preset_combo = QComboBox(self)
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("Window preset (keys 1–8, 0 = auto)")
        self.preset_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(12)
        self.preset_combo.activated.connect(self._on_preset_combo)
        self._fill_presets("CT")
        bar.addWidget(self.preset_combo)
        bar.addSeparator()
        for name in ("navigate", "distance", "angle", "ellipse", "rectangle", "bidimensional"):
            act = self.tool_actions[name]
            act.setIconText(act.text().replace(" ROI", "").replace(" / window", "")
                            .replace(" (long × short axis)", ""))
            bar.addAction(act)
        bar.addSeparator()
        bar.addWidget(QLabel(" Slab ", self))
        self.slab_mode = QComboBox(self)
        self.slab_mode.setObjectName("slabMode")
        for mode, text in SLAB_MODES:
            self.slab_mode.addItem(text, mode)
        self.slab_mode.currentIndexChanged.connect(self._on_slab)
        bar.addWidget(self.slab_mode)
        self.slab_mm = QDoubleSpinBox(self)
        self.slab_mm.setRange(1.0, 100.0)
        self.slab_mm.setValue(10.0)
        self.slab_mm.setSuffix(" mm")
        self.slab_mm.setToolTip("Slab thickness")
        self.slab_mm.valueChanged.connect(self._on_slab)
        bar.addWidget(self.slab_mm)
        bar.addSeparator()
        self.act_cine.setIconText("▶ Cine")
        bar.addAction(self.act_cine)
        self.cine_fps = QSpinBox(self)
        self.cine_fps.setRange(1, 60)
        self.cine_fps.setValue(self.prefs.cine_fps)
        self.cine_fps.setSuffix(" fps")
        self.cine_fps.setToolTip("Cine speed (frames per second)")
        self.cine_fps.valueChanged.connect(self._on_cine_fps)
        bar.addWidget(self.cine_fps)
        bar.addSeparator()
        self.act_identity.setIconText("Identity")
        bar.addAction(self.act_identity)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar

    # ------------------------------------------------------------------ library
    def refresh_library(self) -> None:
        from core.errors import StoreError

        try:
            self.browser.refresh(self.library)
        except StoreError as exc:  # damaged or unreadable: say so, keep the window alive
            log.warning("library could not be listed: %s", type(exc).__name__)
            self.show_problem("The library could not be read", str(exc))

    def choose_import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of DICOM files")
        if folder:
            self.import_paths([Path(folder)])

    def choose_import_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import DICOM files, DICOMDIR or .zip", "",
            "DICOM and archives (*.dcm *.DCM *.ima *.zip DICOMDIR *);;All files (*)")
        if files:
            self.import_paths([Path(f) for f in files])

    def import_paths(self, paths: Sequence[Path]) -> workers.Job | None:
        """Import in the background; the report dialog opens when it is done."""
        if self._import_job is not None and self._import_job.running:
            self.set_status("An import is already running.")
            return None
        job = import_job(self.library_dir, list(paths))
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_import_finished)
        job.failed.connect(lambda exc: self._on_job_failed("Import", exc))
        job.cancelled.connect(lambda: self.set_status("Import cancelled."))
        job.done.connect(self._on_job_done)
        self._import_job = job
        self._show_busy(f"Importing {len(paths)} item(s)…")
        return job.start()

    def _on_import_finished(self, report: Any) -> None:
        self.last_import_report = report
        self.refresh_library()
        summary, skipped = describe_import_report(report)
        self.set_status(summary)
        dialog = ImportReportDialog(summary, skipped, self)
        self.last_dialog = dialog
        dialog.setModal(False)
        dialog.show()
        self.import_done.emit(report)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_paths(paths)

    def _focus_search(self) -> None:
        self.browser_dock.show()
        self.browser.search.setFocus()
        self.browser.search.selectAll()

    # ------------------------------------------------------------------ demo
    def open_demo(self) -> workers.Job:
        job = demo_job(self.library_dir)
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_demo_ready)
        job.failed.connect(lambda exc: self._on_job_failed("Demo study", exc))
        job.done.connect(self._on_job_done)
        self._demo_job = job
        self._show_busy("Preparing the demo study…")
        return job.start()

    def _on_demo_ready(self, series_id: Any) -> None:
        if self._closed:
            return
        self.prefs.first_launch_done = True
        self._save_prefs()
        self.refresh_library()
        self.demo_ready.emit(series_id)
        if self.current_series_id is not None:
            # The user opened a series while the demo was being made: it stays open.
            self.browser.select_series(self.current_series_id)
            self.set_status("The demo study is ready in the library.")
            return
        self.open_series(series_id)

    def _open_requested(self, series_id: Any) -> None:
        """Double-click or Enter in the library: open, and the keys go to the views."""
        self.open_series(series_id)
        self.focus_active_view()

    # ------------------------------------------------------------------ loading
    def open_series(self, series_id: Any) -> workers.Job:
        """Load a series in the background; the first slices appear as they arrive."""
        if self._load_job is not None and self._load_job.running:
            self._load_job.cancel()
        self.set_cine_playing(False)
        self.current_series_id = series_id
        self.current_volume = None
        self.current_projection = None
        self._shown_partial = False
        self._auto_cursor = None
        self.warning_banner.hide()
        self._close_series_session()
        self.viewer.clear()
        self.measurements.set_records([])
        self.measurements.set_notice(None)
        self.measurements_not_saved = None
        if self.models_panel is not None:
            self.models_panel.set_volume(None)
            self.models_panel.set_projection(None)
        job = load_series_job(self.library_dir, series_id)
        job.progress.connect(self._on_progress)
        job.partial.connect(lambda vol, j=job: self._on_partial(j, vol))
        job.finished.connect(lambda vol, j=job: self._on_loaded(j, vol))
        job.failed.connect(lambda exc, j=job: self._on_load_failed(j, exc))
        job.cancelled.connect(lambda j=job: self._on_load_cancelled(j))
        job.done.connect(self._on_job_done)
        self._load_job = job
        self.browser.select_series(series_id)
        self._show_busy("Loading series…")
        self.series_loading.emit(series_id)
        return job.start()

    @property
    def load_job(self) -> workers.Job | None:
        """The current (or last) series-loading job."""
        return self._load_job

    def cancel_loading(self) -> None:
        if self._load_job is not None and self._load_job.running:
            self._load_job.cancel()

    def cancel_background(self) -> None:
        for job in (self._load_job, self._import_job, self._demo_job, self._derived_job):
            if job is not None and job.running:
                job.cancel()

    def _on_partial(self, job: workers.Job, value: Any) -> None:
        if self._closed or job is not self._load_job or job.cancel_token.cancelled:
            return
        k, volume = value
        if not self._shown_partial:
            self._shown_partial = True
            self._show_volume(volume)
            # Show the slice that has arrived (the centre one may still be empty); once
            # loading ends the cursor moves to the centre unless the user moved it.
            lps = volume.index_to_lps(
                (k, (volume.shape[1] - 1) / 2.0, (volume.shape[2] - 1) / 2.0))
            self.viewer.set_cursor_lps(lps)
            self._auto_cursor = np.asarray(self.viewer.cursor_lps(), dtype=float)
            self.first_image_shown.emit(self.current_series_id)
        else:
            self._update_volume(volume)

    def _show_volume(self, volume: Any) -> None:
        if volume.modality != self._preset_modality:
            self._fill_presets(volume.modality)
        self._shown_array = volume.array
        self.viewer.set_volume(volume)
        if not self._apply_hanging(volume):
            self._apply_initial_window(volume)

    def _update_volume(self, volume: Any) -> None:
        """More slices arrived: re-render, or re-attach when the reader widened the array."""
        if volume.array is self._shown_array and self.viewer.volume is volume:
            self.viewer.refresh_slices()
        else:
            self._shown_array = volume.array
            self.viewer.set_volume(volume)

    def _on_loaded(self, job: workers.Job, volume: Any) -> None:
        if self._closed or job is not self._load_job:
            return
        if isinstance(volume, ProjectionImage):
            self._on_projection_loaded(volume)
            return
        if self._shown_partial:
            self._update_volume(volume)
            auto = self._auto_cursor
            if auto is not None and np.allclose(self.viewer.cursor_lps(), auto):
                self.viewer.set_cursor_lps(volume.center_lps())
        else:
            self._shown_partial = True
            self._show_volume(volume)
            self.first_image_shown.emit(self.current_series_id)
        self._auto_cursor = None
        self.viewer.loading_finished()
        self.series = SeriesSession(self.library, self.current_series_id, volume,
                                    reviewer=self.prefs.reviewer or None)
        self._restore_measurements()
        # Only now: measurement changes before this point are not the user's.
        self.current_volume = volume
        self._open_series_review()
        self._remember_recent(self.current_series_id)
        if self.models_panel is not None:
            self.models_panel.set_volume(volume)
        self.setWindowTitle(f"Lucida — {describe_volume(volume)} — "
                            "research use only, not for diagnostic use")
        self._show_volume_warnings(volume)
        n_warn = len(self.volume_warnings())
        self.set_status(f"Loaded {describe_volume(volume)}  "
                        f"{volume.shape[2]}×{volume.shape[1]}×{volume.shape[0]}"
                        + (f", {n_warn} warning(s) — see the banner." if n_warn else "")
                        + self._restore_problem)
        self.series_loaded.emit(self.current_series_id)

    def _on_projection_loaded(self, image: ProjectionImage) -> None:
        """A radiograph, ultrasound or capture: one plain 2-D view. No model runs on it; its
        distances are saved like any measurement (in pixel positions, not LPS)."""
        view = self.viewer.set_projection(image)
        # The preset list: the image's own windows (file VOIs, auto, full range), no HU ones.
        self._fill_presets(image.modality or "", [c.label for c in view.voi_choices()])
        self.series = SeriesSession(self.library, self.current_series_id, image,
                                    reviewer=self.prefs.reviewer or None)
        self._restore_measurements()
        # Only now: measurement changes before this point are not the user's.
        self.current_projection = image
        self._apply_hanging_2d(image)
        self._shown_partial = True
        self.first_image_shown.emit(self.current_series_id)
        self._remember_recent(self.current_series_id)
        if self.models_panel is not None:
            self.models_panel.set_projection(image.modality or "")
        what = " ".join(x for x in (image.modality, str(image.metadata.get(
            "series_description", "") or "")) if x) or "2-D image"
        self.setWindowTitle(f"Lucida — {what} — research use only, not for diagnostic use")
        self._show_volume_warnings(image)
        frames = f", {image.frame_count} frames" if image.frame_count > 1 else ""
        self.set_status(f"Loaded {what}  {image.cols}×{image.rows}{frames} (2-D image)"
                        + self._restore_problem)
        self.series_loaded.emit(self.current_series_id)

    def _remember_recent(self, series_id: Any) -> None:
        if not isinstance(series_id, int):
            return
        recent = [series_id, *[s for s in self.prefs.recent_series if s != series_id]][:10]
        if recent != self.prefs.recent_series:
            self.prefs.recent_series = recent
            self._save_prefs()

    def _on_load_failed(self, job: workers.Job, exc: Exception) -> None:
        if self._closed or job is not self._load_job:
            return
        self.viewer.clear()
        self.current_volume = None
        self._on_job_failed("Opening the series", exc)
        self.load_failed.emit(str(exc))

    def _on_load_cancelled(self, job: workers.Job) -> None:
        if job is not self._load_job:
            return
        self.set_status("Loading cancelled.")
        if self.current_volume is None:
            self.viewer.clear()
        self.load_cancelled.emit(self.current_series_id)

    def _apply_initial_window(self, volume: Any) -> None:
        preset = self.prefs.last_preset
        modality = str(getattr(volume, "modality", "")).upper()
        if preset and modality == "CT" and self._presets is not None \
                and preset in self._presets.PRESETS:
            self.viewer.set_preset(preset)

    # ------------------------------------------------------------------ hanging protocols
    def _report_hanging_problems(self) -> None:
        problems = self.hanging_protocols.problems
        if problems:
            self.show_problem("Hanging protocols", "Skipped: " + "; ".join(map(str, problems)))

    def _apply_hanging(self, volume: Any) -> bool:
        """The first matching hanging protocol sets layout and windows (True when it set
        the window); no match puts back the user's layout if a rule had changed it.

        Applied once, when a series' first image shows: later layout changes are the user's.
        """
        from app.hanging import facts_for

        try:
            facts = facts_for(volume, self.library, self.current_series_id)
        except Exception as exc:  # a library read failing must not stop the series showing
            log.warning("hanging protocol facts: %s", exc)
            facts = facts_for(volume)
        hanging = self.hanging_protocols.choose(facts)
        self._close_hanging_prior()
        if hanging is None:
            self.hanging = None
            if self._hanging_applied:
                self._hanging_applied = False
                self.set_layout(self.prefs.default_layout, remember=False)
            return False
        # A prior opens in the comparison pane beside this one (app/compare.py); the
        # current series gets the rule's other cells.
        if hanging.wants_prior and not self._open_hanging_prior(facts.prior_series_id):
            hanging = hanging.without_prior()
        self.hanging = hanging
        hanging = hanging.without_prior()
        self._hanging_applied = True
        if hanging.cells:
            self.viewer.set_cells([(c.view, c.preset) for c in hanging.cells], grid=hanging.grid)
            group = next(iter(self.layout_actions.values())).actionGroup()
            if group is not None:   # no named layout is on: none of their buttons is down
                group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
                for act in self.layout_actions.values():
                    act.setChecked(False)
        else:
            # Through the window's own set_layout (menu ticks, the remembered 1 x 1 view),
            # but not remembered as the user's default: the rule chose it, not the user.
            self.set_layout(hanging.layout or self.prefs.default_layout, remember=False)
            if hanging.preset not in (None, "default"):
                self.viewer.set_preset(hanging.preset)
        self._watch_views()
        self.focus_active_view()
        self.set_status(f"Hanging protocol: {hanging.rule_name}", transient=True)
        return bool(hanging.cells) or hanging.preset not in (None, "default")

    def _apply_hanging_2d(self, image: Any) -> None:
        """A 2-D image is shown alone (``ViewerPanel.set_projection``): a matching rule
        only adds its prior beside it, in the comparison pane."""
        from app.hanging import facts_for

        try:
            facts = facts_for(image, self.library, self.current_series_id)
        except Exception as exc:  # a library read failing must not stop the image showing
            log.warning("hanging protocol facts: %s", exc)
            facts = facts_for(image)
        hanging = self.hanging_protocols.choose(facts)
        self._close_hanging_prior()
        if hanging is not None:
            if hanging.wants_prior and not self._open_hanging_prior(facts.prior_series_id):
                hanging = hanging.without_prior()
            self.set_status(f"Hanging protocol: {hanging.rule_name}", transient=True)
        self.hanging = hanging

    def _open_hanging_prior(self, prior_id: int | None) -> bool:
        if prior_id is None:
            return False
        self.compare.open_series(prior_id)
        self._hanging_prior = prior_id
        return True

    def _close_hanging_prior(self) -> None:
        """The prior a rule opened for the last series goes; one the user opened stays."""
        compare = self.compare
        if (self._hanging_prior is not None and compare.is_open
                and compare.series_id == self._hanging_prior):
            compare.close()
        self._hanging_prior = None

    def show_hanging_dialog(self) -> Any:
        """View ▸ Hanging protocols…: shipped rules and the user's, editable (non-modal)."""
        from app.hanging_dialog import HangingDialog

        dialog = HangingDialog(list(self.prefs.hanging_protocols),
                               self.set_user_hanging_protocols, self,
                               protocols=self.hanging_protocols)
        self.last_dialog = dialog
        dialog.show()
        return dialog

    def set_user_hanging_protocols(self, rules: list[dict[str, Any]]) -> bool:
        """Keep the user's rules in the preferences (written atomically); used from the
        next series opened. False when the preferences may not be saved."""
        from app.hanging import Protocols

        if self.prefs.save_blocked or self.prefs_path is None:
            self.set_status("Hanging protocols not saved: the preferences cannot be written "
                            "this session.")
            return False
        self.prefs.hanging_protocols = list(rules)
        self._save_prefs()
        self.hanging_protocols = Protocols.load(self.prefs.hanging_protocols)
        self.set_status(f"Hanging protocols saved ({len(rules)} of yours); they apply to the "
                        "next series opened.")
        return True

    # ------------------------------------------------------------------ warnings
    def _show_volume_warnings(self, volume: Any) -> None:
        warnings = [str(getattr(w, "message", w)) for w in getattr(volume, "warnings", [])]
        if not warnings:
            self.warning_banner.hide()
            return
        first = warnings[0]
        more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
        self.warning_banner.setText(
            f"⚠ {first}{more} &nbsp; <a href='details' style='color:#f0d890'>Details…</a>")
        self.warning_banner.show()

    def volume_warnings(self) -> list[str]:
        vol = self.current_volume or self.current_projection
        return [str(getattr(w, "message", w)) for w in getattr(vol, "warnings", [])] if vol else []

    def show_warnings(self) -> None:
        warnings = self.volume_warnings()
        if not warnings:
            self.set_status("The open series has no warnings.")
            return
        dialog = WarningsDialog("Series warnings", warnings, self)
        self.last_dialog = dialog
        dialog.show()

    # ------------------------------------------------------------------ measurements
    def _on_measurements_changed(self, *args: Any) -> None:
        records = self.viewer.measurement_records()
        self.measurements.set_records(records)
        if self._restoring_measurements or self.current_series_id is None:
            return
        if self.current_volume is None and self.current_projection is None:
            return  # still loading: nothing the user drew yet
        if self.measurements_not_saved is not None:
            # A save replaces every stored row of the series: it would delete the ones
            # that could not be read.
            self.set_status("Not saved: measurements of this series are not saved, because "
                            "its saved ones could not all be read "
                            f"({self.measurements_not_saved}).")
            return
        if self.series is None:
            return
        try:
            self.series.save_measurements(records)
        except Exception as exc:  # the user must know a measurement was not kept
            log.warning("saving measurements failed: %s", type(exc).__name__)
            self.show_problem("Could not save measurements", _error_text(exc))

    def _restore_measurements(self) -> None:
        """Show the series' saved measurements; block saving when any could not be read."""
        self._restore_problem = ""
        if self.series is None:
            return
        records, problems = self.series.read_measurements()
        self._restoring_measurements = True
        try:
            try:
                self.viewer.load_measurement_records(list(records))
            except (ValueError, TypeError, KeyError):
                # Keep what can be shown; the rest is named below.
                good, first_error = [], ""
                for record in records:
                    try:
                        self.viewer.load_measurement_records([record])
                    except (ValueError, TypeError, KeyError) as exc:
                        first_error = first_error or str(exc)[:120]
                        continue
                    good.append(record)
                self.viewer.load_measurement_records(good)
                problems.append(f"{len(records) - len(good)} saved measurement(s) could not "
                                f"be restored ({first_error})")
        finally:
            self._restoring_measurements = False
        self.measurements.set_records(self.viewer.measurement_records())
        if not problems:
            return
        self.measurements_not_saved = "; ".join(problems)
        notice = ("Saved measurements of this series could not all be read: "
                  f"{self.measurements_not_saved}. Changes to this series' measurements are "
                  "NOT saved, so that the saved ones stay as they are.")
        self.measurements.set_notice(notice)
        self._restore_problem = (" Saved measurements could not be restored; changes to "
                                 "measurements of this series are not saved.")
        self.show_problem("Measurements not saved", notice, status=False)

    def _select_measurement(self, index: int) -> None:
        self.viewer.select_measurement(index)

    def _delete_measurement(self, index: int) -> None:
        self.viewer.delete_measurement(index)

    # ------------------------------------------------------------------ models
    def _run_model(self) -> None:
        if self.models_dock is not None:
            self.models_dock.show()
            self.models_dock.raise_()
        if self.models_panel is not None:
            self.models_panel.run_selected()

    # ------------------------------------------------------------------ view state
    def set_layout(self, name: str, single: str | None = None, *, remember: bool = True) -> None:
        """"1x1" (view ``single``, else the last single view), "1x3" or "2x2", remembered
        as the default layout unless ``remember`` is False (a maximised view is not).

        Keyboard focus then goes to the active view: hiding the focused view moves Qt's
        focus to the next widget (the library search box), where the next keys would
        filter the library instead of scrolling or windowing.
        """
        if name not in self.layout_actions:
            name = "1x3"
        if single not in dict(SINGLE_VIEWS):
            single = self.prefs.single_view
        self._layout_before_maximise = None
        active = self.view_input.last_focused()  # hiding views moves the focus around
        self.viewer.set_layout(name, single=single)
        group = self.layout_actions[name].actionGroup()
        if group is not None:  # hanging-protocol cells left it with no button down
            group.setExclusionPolicy(QActionGroup.ExclusionPolicy.Exclusive)
        self.layout_actions[name].setChecked(True)
        for view, act in self.single_actions.items():
            act.setChecked(name == "1x1" and view == single)
        if remember and (self.prefs.default_layout != name
                         or (name == "1x1" and self.prefs.single_view != single)):
            self.prefs.default_layout = name  # type: ignore[assignment]
            if name == "1x1":
                self.prefs.single_view = single  # type: ignore[assignment]
            self._save_prefs()
        self._watch_views()
        self.focus_active_view(active)

    def toggle_maximised(self, view: str) -> None:
        """Double-click on a view: it fills the window; again: the layout it came from."""
        if view not in dict(SINGLE_VIEWS):
            return
        shown = self.viewer.layout_name()  # "cells" when a hanging protocol laid it out
        if shown == "1x1":
            back = self._layout_before_maximise or ("2x2" if view == "3d" else "1x3")
            if back == "cells" and self._restore_hanging_cells():
                return
            self.set_layout(back, remember=False)
            return
        self.set_layout("1x1", single=view, remember=False)
        self._layout_before_maximise = shown

    def _restore_hanging_cells(self) -> bool:
        """Back to the hanging protocol's cells a view was maximised from (False: none)."""
        cells = getattr(self.hanging, "cells", None)
        if not cells:
            return False
        self.viewer.set_cells([(c.view, c.preset) for c in cells],
                              grid=getattr(self.hanging, "grid", None))
        self._watch_views()
        self.focus_active_view()
        return True

    def _watch_views(self) -> None:
        """Every view, including a 3-D or cell view made since, goes through view_input."""
        view3d = self.viewer.built_view_3d()  # VTK's 3-D modules wait until it is made
        for view in self._view_widgets():
            if view is view3d:
                self.view_input.watch(view, "3d", keys=False)  # it has its own R
            else:
                self.view_input.watch(view, str(getattr(view, "plane", "")))

    def _view_widgets(self) -> list[QWidget]:
        """The views in layout order: cells (when a cell layout is on), planes, 3-D."""
        views: list[QWidget] = list(self.viewer.cells())
        # Only the views made so far (the panel makes the others on first need).
        view3d = self.viewer.built_view_3d()
        for view in [*self.viewer.built_slice_views().values(),
                     *([view3d] if view3d is not None else [])]:
            if view not in views:
                views.append(view)
        return views

    def focus_active_view(self, prefer: QWidget | None = None) -> None:
        """Keyboard focus to ``prefer`` or else the view used last, if shown, else the
        first view shown."""
        shown = [v for v in self._view_widgets() if not v.isHidden()]
        if not shown:
            if self.viewer.awaiting_views():
                self.viewer.take_focus()  # the views, made with the image, get it then
            return
        last = self.view_input.last_focused()
        target = next((v for v in (prefer, last) if v is not None and v in shown), shown[0])
        target.setFocus(Qt.FocusReason.OtherFocusReason)

    def current_layout(self) -> str:
        for name, act in self.layout_actions.items():
            if act.isChecked():
                return name
        return self.prefs.default_layout

    def set_identity_visible(self, visible: bool) -> None:
        visible = bool(visible)
        self.viewer.set_identity_visible(visible)
        self.compare.set_identity_visible(visible)  # its panel may not exist yet
        self.browser.set_identity_visible(visible)
        self.tags.set_identity_visible(visible)
        self.network.set_identity_visible(visible)  # its panel may not exist yet
        if self.act_identity.isChecked() != visible:
            self.act_identity.blockSignals(True)
            self.act_identity.setChecked(visible)
            self.act_identity.blockSignals(False)
        if self.prefs.identity_visible != visible:
            self.prefs.identity_visible = visible
            self._save_prefs()

    def set_preset(self, name: str) -> None:
        """Window preset ``name``: a CT one (HU: only on CT), one computed from the volume
        (not CT, see ``viewer.presets.RELATIVE_PRESETS``) or "auto"."""
        p = self._presets
        volume = self.viewer.volume
        modality = str(getattr(volume, "modality", "") or "")
        if volume is not None and not p.preset_fits(name, modality):
            hu = " (a window in Hounsfield units)" if name in p.PRESETS else ""
            self.set_status(f"The {p.preset_label(name)} preset{hu} does not fit "
                            f"{modality or 'this series'}; the window is unchanged.")
            return
        if name in p.RELATIVE_PRESETS:
            if volume is not None:
                self.viewer.set_window_level(*p.relative_window(name, volume.array))
            return
        self.viewer.set_preset(name)
        if (name in p.PRESETS or name == p.AUTO) and self.prefs.last_preset != name:
            self.prefs.last_preset = name
            self._save_prefs()

    def apply_preset_key(self, number: int) -> None:
        """Number key typed in a view: the open modality's preset ``number`` (0: auto)."""
        volume = self.viewer.volume
        if volume is None:
            return
        if number == 0:
            self.set_preset(self._presets.AUTO)
            return
        order = self._presets.preset_order(volume.modality)
        if number > len(order):
            self.set_status(f"Key {number}: no window preset for {volume.modality or 'this'} "
                            f"series (keys 1–{len(order)}, 0 = auto).")
            return
        self.set_preset(order[number - 1])

    def _fill_presets(self, modality: str, choices: Sequence[str] | None = None) -> None:
        """The preset menu and combo list only the presets that fit ``modality``, or else
        ``choices`` (a 2-D image's own windows, by label)."""
        p = self._presets
        self._preset_modality = modality if choices is None else ""  # a volume refills
        self.preset_menu.clear()
        self.preset_actions = {}
        self.preset_combo.clear()
        self.preset_combo.addItem("Window preset", "")
        order = p.preset_order(modality) if choices is None else ()
        keyed = [(f"\t{key}", name) for key, name in [*enumerate(order, start=1), (0, p.AUTO)]]
        for key_text, name in (keyed if choices is None else [("", c) for c in choices]):
            label = p.preset_label(name) if choices is None else name
            text = label
            if name in p.PRESETS:
                text += f"  (W {p.PRESETS[name].width:g} L {p.PRESETS[name].level:g})"
            act = QAction(f"{text}{key_text}", self.preset_menu)
            act.triggered.connect(lambda _c=False, n=name: self.set_preset(n))
            self.preset_menu.addAction(act)
            self.preset_actions[name] = act
            self.preset_combo.addItem(label, name)
        self.preset_combo.setToolTip(f"Window preset (keys 1–{len(order)}, 0 = auto)")

    def _on_preset_combo(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self.set_preset(str(name))
        self.preset_combo.setCurrentIndex(0)

    def _on_window_level(self, width: float, level: float) -> None:
        self.set_status(f"W {width:.0f}  L {level:.0f}", transient=True)

    def set_tool(self, name: str) -> None:
        if name not in BRUSH_TOOLS and hasattr(self, "canvas"):  # leaving the brush ends it
            if self.viewer.tool in BRUSH_TOOLS:
                self.set_status("Editing ended.")
            self.canvas.stop_painting()
        self.viewer.set_tool(name)
        act = self.tool_actions.get(name)
        if act is not None and not act.isChecked():
            act.setChecked(True)

    def _on_slab(self, *args: Any) -> None:
        mode = str(self.slab_mode.currentData())
        self.slab_mm.setEnabled(mode != "none")
        self.viewer.set_slab(mode, float(self.slab_mm.value()))

    def _reset_views(self) -> None:
        """Ctrl+R: every view's zoom and pan, and the window, as the series opened."""
        self.viewer.reset_views()
        self.reset_window()

    def _reset_view_and_window(self, view: Any) -> None:
        """R in a view: its zoom and pan, and the window, as the series opened."""
        view.reset_view()
        self.reset_window()

    def reset_window(self) -> None:
        """The series' own window: its DICOM window, else the modality default."""
        volume = self.viewer.volume
        if volume is None:
            return
        self.viewer.set_window_level(*self._presets.default_window(
            volume.modality, volume.array, volume.metadata))

    # ------------------------------------------------------------------ cine
    def set_cine_playing(self, playing: bool) -> None:
        view = self.viewer.projection_view() if hasattr(self.viewer, "projection_view") else None
        if view is not None:       # a 2-D image plays its own frames at its frame time
            playing = bool(playing) and view.play()
            if not playing:
                view.pause()
        playing = bool(playing) and (self.current_volume is not None or view is not None)
        if playing and view is None:
            self._cine_timer.start(max(1, round(1000 / self.cine_fps.value())))
        else:
            self._cine_timer.stop()
        if self.act_cine.isChecked() != playing:
            self.act_cine.blockSignals(True)
            self.act_cine.setChecked(playing)
            self.act_cine.blockSignals(False)
        self.act_cine.setIconText("❚❚ Cine" if playing else "▶ Cine")

    def _on_cine_fps(self, fps: int) -> None:
        self.prefs.cine_fps = int(fps)
        self._save_prefs()
        if self._cine_timer.isActive():
            self._cine_timer.start(max(1, round(1000 / fps)))

    def cine_step(self) -> int:
        """Advance the cursor one acquired slice (k), wrapping; returns the new k."""
        volume = self.current_volume
        if volume is None:
            return -1
        lps = np.asarray(self.viewer.cursor_lps(), dtype=float)
        index = np.asarray(volume.lps_to_index(lps), dtype=float)
        n_slices = volume.shape[0]
        k = (round(index[0]) + 1) % n_slices
        index[0] = k
        self.viewer.set_cursor_lps(volume.index_to_lps(index))
        return int(k)

    def _cine_step(self) -> None:
        self.cine_step()

    # ------------------------------------------------------------------ dialogs
    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for act in self.actions():
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if keys:
                rows.append((keys, act.text().replace("&", "").split("\t")[0]))
        rows.extend(VIEWER_KEYS)
        rows.extend(REVIEW_KEYS)
        return rows

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(self.shortcut_rows(), self)
        self.last_dialog = dialog
        dialog.show()

    def show_about(self) -> None:
        runtime = ""
        try:
            from app.version_info import runtime_report  # the build rows are the box's own

            runtime = runtime_report()
        except Exception:  # the About box works without the runtime report
            runtime = ""
        dialog = AboutDialog(__version__, runtime, self)
        self.last_dialog = dialog
        dialog.show()

    # ------------------------------------------------------------------ status
    def set_status(self, text: str, transient: bool = False) -> None:
        # One line in the status bar (a long error would push the viewer up);
        # the whole text stays available as the tooltip.
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        line = lines[0] if lines else ""
        if len(lines) > 1:
            line += " …"
        if transient:
            self.statusBar().showMessage(line, 2000)
        else:
            self.status_label.setText(line)
            self.status_label.setToolTip(text if len(lines) > 1 else "")

    def _show_busy(self, text: str) -> None:
        self.set_status(text)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress.show()
        self.cancel_button.show()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        if message:
            self.progress.setFormat(f"{message} %p%")

    def _on_job_done(self) -> None:
        busy = any(j is not None and j.running
                   for j in (self._load_job, self._import_job, self._demo_job))
        if not busy:
            self.progress.hide()
            self.cancel_button.hide()

    def _on_job_failed(self, what: str, exc: Exception) -> None:
        log.warning("%s failed: %s", what, type(exc).__name__)
        self.show_problem(f"{what} failed", _error_text(exc))

    def show_problem(self, title: str, text: str, *, status: bool = True) -> None:
        """Say what went wrong: the status bar, and a (non-modal) dialog when interactive.

        The same message is not stacked in a second dialog while the first is open
        (a library that stays locked fails every save the same way).
        """
        if status:
            self.set_status(f"{title}: {text}")
        if not self.interactive:
            return
        last = self.last_dialog
        if isinstance(last, QMessageBox) and last.isVisible() and last.text() == text:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("problemDialog")
        self.last_dialog = box
        box.show()

    # ------------------------------------------------------------------ persistence
    def _save_prefs(self) -> None:
        if self.prefs_path is not None:
            try:
                save_preferences(self.prefs, self.prefs_path)
            except OSError as exc:
                log.warning("could not save preferences: %s", exc)
                self.set_status(f"Preferences could not be saved: {exc}")

    def _qsettings(self) -> QSettings | None:
        if self.state_path is None:
            return None
        return QSettings(str(self.state_path), QSettings.Format.IniFormat)

    def _restore_window_state(self) -> bool:
        settings = self._qsettings()
        if settings is None:
            return False
        geometry = settings.value("window/geometry")
        state = settings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            return bool(self.restoreState(state))
        return False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._state_restored and not self._docks_sized:
            # First run: give the docks useful widths (only possible once shown).
            self._docks_sized = True
            self.resizeDocks([self.browser_dock, self.measurements_dock], [310, 300],
                             Qt.Orientation.Horizontal)

    def save_window_state(self) -> None:
        settings = self._qsettings()
        if settings is None:
            return
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/layout", self.current_layout())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self.set_cine_playing(False)
        self.save_window_state()
        self._save_prefs()
        self.browser.stop()
        self.cancel_background()
        workers.cancel_all_and_wait(15000)
        if self.models_panel is not None:
            self.models_panel.shutdown()
        self._close_series_session()
        self.viewer.shutdown()
        self.compare.shutdown()
        self.network.shutdown()
        if self._owns_library:
            self.library.close()
        super().closeEvent(event)


_error_text = error_text


def describe_volume(volume: Any) -> str:
    """Short non-identifying title: modality and series description."""
    meta = getattr(volume, "metadata", {}) or {}
    desc = str(meta.get("series_description") or meta.get("SeriesDescription") or "").strip()
    modality = str(getattr(volume, "modality", "") or "").strip()
    return " ".join(x for x in (modality, desc) if x) or "series"


def describe_import_report(report: Any) -> tuple[str, list[tuple[str, str]]]:
    """(summary line, [(file, reason)]) from an ImportReport."""
    skipped_raw = list(getattr(report, "skipped", []) or [])
    skipped: list[tuple[str, str]] = []
    for item in skipped_raw:
        if isinstance(item, tuple | list) and len(item) == 2:
            skipped.append((str(item[0]), str(item[1])))
        else:
            path = getattr(item, "source", None) or getattr(item, "path", item)
            skipped.append((str(path), str(getattr(item, "reason", ""))))
    summary = getattr(report, "summary", None)
    text = summary() if callable(summary) else (summary if isinstance(summary, str) else "")
    if not text:
        bits = []
        for attr, label in (("files_seen", "file(s) examined"), ("instances_added", "added"),
                            ("series_added", "new series"), ("studies_added", "new studies")):
            value = getattr(report, attr, None)
            if value is not None:
                bits.append(f"{value} {label}")
        bits.append(f"{len(skipped)} skipped")
        text = "Import finished: " + ", ".join(bits) + "."
    return text, skipped
