"""``lucida view SERIES [--layout] [--preset] [--at X,Y,Z] [--size WxH] [--screenshot OUT.png]``.

Opens a library series (id, SeriesInstanceUID prefix, or ``demo``) in the main
window. With ``--screenshot`` it renders, writes the whole window as a PNG and
exits — for README images, bug reports and tests. The window is grabbed from
the screen (``QScreen.grabWindow``): ``QWidget.grab`` garbles VTK's OpenGL
content. Needs a display; headless, run it under ``xvfb-run``.

Qt and VTK are imported only when the command runs (``lucida --help`` stays light).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from core.errors import LucidaError

log = logging.getLogger(__name__)

LAYOUT_CHOICES = ("1x1", "1x3", "2x2")
DEFAULT_SIZE = (1600, 1000)
# Let the views settle (deferred renders, the 3-D upload) before grabbing.
SETTLE_MS = 600


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "view", help="open a series in the viewer; with --screenshot save a PNG and exit",
        description="Open a library series in the main window. SERIES is a library id, a "
        "SeriesInstanceUID (or a unique prefix, UID:STACK for one stack), or 'demo' for the "
        "built-in demo study. With --screenshot the window is rendered, saved as PNG and the "
        "program exits (needs a display: use xvfb-run on a headless machine).")
    p.add_argument("series", metavar="SERIES", help="library id, UID (prefix) or 'demo'")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, help="1x1, 1x3 (three planes) or 2x2 "
                   "(three planes + 3D); default: the remembered layout")
    p.add_argument("--preset", metavar="NAME",
                   help="window preset: brain, subdural, stroke, lung, mediastinum, abdomen, "
                   "liver, bone, or auto")
    p.add_argument("--at", metavar="X,Y,Z", help="put the crosshair at this LPS point (mm)")
    p.add_argument("--3d-preset", dest="preset_3d", metavar="NAME",
                   help="3D rendering preset: ct-bone, ct-soft, ct-lung or mip")
    p.add_argument("--zoom", type=float, metavar="F",
                   help="magnify the slice views F times, centred on the crosshair")
    p.add_argument("--size", metavar="WxH", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
                   help="window size in pixels (default %(default)s)")
    p.add_argument("--hide-identity", action="store_true",
                   help="hide patient name, ID and birth date")
    p.add_argument("--screenshot", metavar="OUT.png", type=Path,
                   help="write the window as PNG and exit")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w_text, h_text = text.lower().replace("×", "x").split("x")
        w, h = int(w_text), int(h_text)
    except ValueError:
        raise LucidaError(f"--size must look like 1600x1000, got {text!r}") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise LucidaError(f"--size {w}x{h} is out of range (320x240 … 8192x8192)")
    return w, h


def parse_point(text: str) -> tuple[float, float, float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise LucidaError(f"--at must be three numbers X,Y,Z in LPS mm, got {text!r}")
    return values[0], values[1], values[2]


def resolve_series(library_dir: Path, ref: str) -> int:
    """Library id of SERIES (``demo`` makes the demo study when it is missing)."""
    from store import Library

    library = Library.open(library_dir)
    try:
        if ref.strip().lower() == "demo":
            from app.demo import ensure_demo_study

            series_id = ensure_demo_study(library, library_dir)
            if series_id is None:
                raise LucidaError("the demo study could not be prepared")
            return int(series_id)
        return int(library.get_series(ref).id)
    finally:
        library.close()


def _check_preset(name: str | None) -> None:
    if name is None:
        return
    from viewer.presets import AUTO, PRESETS

    if name != AUTO and name not in PRESETS:
        raise LucidaError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)} or auto")


def _check_3d_preset(name: str | None) -> None:
    if name is None:
        return
    from viewer.presets import VOLUME_PRESETS

    if name not in VOLUME_PRESETS:
        raise LucidaError(f"unknown 3D preset {name!r}; choose from {', '.join(VOLUME_PRESETS)}")


def zoom_on_cursor(window: Any, factor: float) -> None:
    """Magnify every slice view ``factor`` times with the crosshair in its middle."""
    cursor = window.viewer.cursor_lps()
    for view in window.viewer.slice_views().values():
        if view.volume is None:
            continue
        view.reset_view()
        view.set_zoom(factor)
        x, y = view.lps_to_display(cursor)
        here = view.display_to_plane(x, y)
        middle = view.display_to_plane(view.width() / 2.0, view.height() / 2.0)
        view.pan_mm(float(middle[0] - here[0]), float(middle[1] - here[1]))


def render_views(window: Any) -> None:
    """Render every visible VTK view now (they otherwise render on a deferred timer)."""
    from PySide6.QtWidgets import QWidget

    for widget in window.viewer.findChildren(QWidget):
        render_now = getattr(widget, "render_now", None)
        if callable(render_now) and widget.isVisible():
            render_now()


def grab_window_png(window: Any, out: Path) -> tuple[int, int]:
    """Write the whole window, as on screen, to ``out``; returns (width, height) in pixels."""
    render_views(window)
    screen = window.screen()
    pixmap = screen.grabWindow(window.winId())
    if pixmap.isNull():
        raise LucidaError("the screen could not be captured (is the display working?)")
    from core.atomic import atomic_path

    out = Path(out)
    try:
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        # Atomically: a crash or a full disk leaves the previous file, not half a PNG.
        with atomic_path(out) as tmp:
            if not pixmap.save(str(tmp), "PNG"):
                raise LucidaError(f"could not write {out} (is the disk full?)")
    except OSError as exc:
        raise LucidaError(f"could not write {out}: {exc.strerror or exc}") from exc
    return pixmap.width(), pixmap.height()


def run(args: argparse.Namespace) -> int:
    from app.gui import display_problem
    from app.paths import library_dir

    size = parse_size(args.size)
    at = parse_point(args.at) if args.at else None
    _check_preset(args.preset)
    _check_3d_preset(args.preset_3d)
    if args.zoom is not None and not 0.1 <= args.zoom <= 40:
        raise LucidaError(f"--zoom must be between 0.1 and 40, got {args.zoom}")
    problem = display_problem()
    if problem:
        raise LucidaError(problem)
    lib_dir = library_dir(args.library)
    series_id = resolve_series(lib_dir, args.series)

    from PySide6.QtCore import QTimer

    from app.gui import create_main_window, make_application

    app = make_application()
    screenshot = args.screenshot is not None
    # A scripted view neither reads nor changes the remembered window state and preferences
    # (its --layout must not become the user's default).
    window = create_main_window(args, open_demo=False, interactive=not screenshot,
                                persist=not screenshot)
    window.resize(*size)
    if args.hide_identity:
        window.set_identity_visible(False)
    outcome: dict[str, Any] = {"code": 0}

    def fail(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        outcome["code"] = 2
        window.close()
        app.quit()

    # Slice layouts and presets before loading, so the views render the series right the
    # first time. The 3-D view joins only once the whole volume is in: without a GPU
    # each 3-D frame costs seconds, and a partly loaded volume is not worth rendering.
    # The window preset applies as soon as the first image shows (like a remembered one).
    if args.layout and args.layout != "2x2":
        window.set_layout(args.layout)
    if args.preset_3d:
        window.viewer.set_3d_preset(args.preset_3d)
    if args.preset:
        window.prefs.last_preset = args.preset

    def apply_options() -> None:
        if args.layout == "2x2":
            window.set_layout(args.layout)
        if args.preset:
            window.set_preset(args.preset)  # also MR "auto", which needs the whole volume
        if at is not None:
            window.viewer.set_cursor_lps(at)

    def shoot() -> None:
        try:
            width, height = grab_window_png(window, args.screenshot)
        except LucidaError as exc:
            fail(str(exc))
            return
        print(f"wrote {args.screenshot} ({width}×{height})")
        window.close()
        app.quit()

    def zoom_and_shoot() -> None:
        # After the layout has settled: a view fits its image again when it is resized.
        if args.zoom:
            zoom_on_cursor(window, args.zoom)
        if screenshot:
            QTimer.singleShot(SETTLE_MS // 3, shoot)

    def on_loaded(_series_id: object) -> None:
        apply_options()
        if screenshot or args.zoom:
            QTimer.singleShot(SETTLE_MS, zoom_and_shoot)

    window.series_loaded.connect(on_loaded)
    window.load_failed.connect(lambda message: fail(f"could not open the series: {message}"))
    window.show()
    window.open_series(series_id)
    code = app.exec()
    return int(outcome["code"] or code)
