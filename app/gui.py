"""Start the GUI: ``lucida`` with no subcommand ends up in :func:`run_gui`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from app import __version__
from app.paths import library_dir
from app.settings import (
    PREFERENCES_FILE,
    WINDOW_STATE_FILE,
    config_dir,
    load_preferences,
)
from core.errors import LucidaError

log = logging.getLogger(__name__)


def display_problem() -> str | None:
    """Why no window can be shown here, or None when a display is available."""
    if sys.platform.startswith("linux"):
        platform = os.environ.get("QT_QPA_PLATFORM", "")
        if platform.startswith(("offscreen", "minimal")):
            return None
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return ("no display: DISPLAY is not set. Run Lucida in a desktop session, or "
                    "headless under a virtual display: xvfb-run -a -s '-screen 0 1920x1080x24' "
                    "lucida ...")
    return None


def make_application(argv: list[str] | None = None) -> Any:
    """The QApplication (created once), high-DPI aware, with the dark theme."""
    from PySide6.QtCore import Qt

    from app.pyside_hooks import quiet_feature_hook

    quiet_feature_hook()  # before the modules the window imports: each would be read
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.icon import app_icon
    from app.open_paths import install_file_open_filter
    from app.theme import apply_dark_theme

    existing = QApplication.instance()
    if existing is not None:
        return existing
    # Qt 6 scales by the screen's device pixel ratio by default; pass fractional
    # factors through unrounded so 125 %/150 % screens stay sharp and correctly sized.
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationName("Lucida")
    app.setOrganizationName("Lucida")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    # macOS hands documents opened from Finder to the running app as QEvent.FileOpen.
    install_file_open_filter(app)
    apply_dark_theme(app)
    return app


def create_main_window(args: argparse.Namespace, *, open_demo: bool | None = None,
                       interactive: bool = True, persist: bool = True) -> Any:
    """Build the main window for ``args.library`` with the user's preferences; the files
    and folders in ``args.open_paths`` (``lucida PATH ...``) are imported and the first opens.

    ``persist=False`` (scripted views): preferences are read but never written,
    and the remembered window geometry is neither restored nor saved.
    """
    from app.main_window import MainWindow

    lib_arg = getattr(args, "library", None)
    lib_dir = library_dir(lib_arg)
    cfg = config_dir(lib_arg)
    prefs_path = cfg / PREFERENCES_FILE
    prefs = load_preferences(prefs_path)
    return MainWindow(lib_dir, prefs, prefs_path if persist else None,
                      cfg / WINDOW_STATE_FILE if persist else None,
                      open_demo=open_demo, interactive=interactive,
                      open_paths=list(getattr(args, "open_paths", None) or ()))


def run_gui(args: argparse.Namespace) -> int:
    """Open the main window and run the event loop; returns the exit code."""
    problem = display_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    first_frame = getattr(args, "first_frame_exit", False)
    if first_frame:
        from app.first_frame import mark

        mark("gui")
    app = make_application()
    try:
        # The start-up instrument measures the demo study, opened as at first launch.
        window = create_main_window(args, open_demo=True if first_frame else None)
    except (LucidaError, OSError) as exc:  # a locked or too new library, a read-only folder
        from PySide6.QtWidgets import QMessageBox

        print(f"error: {exc}", file=sys.stderr)
        if not first_frame:  # a measuring run must end, not wait on a dialog
            QMessageBox.critical(None, "Lucida cannot start", str(exc))
        return 2
    probe = None
    if first_frame:
        from app.first_frame import FirstFrameProbe

        probe = FirstFrameProbe(window, shot=getattr(args, "first_frame_shot", None))
    from app.open_paths import install_file_open_filter

    install_file_open_filter(app).set_opener(window.path_opener)
    window.show()
    code = int(app.exec())
    return probe.exit_code if probe is not None else code
