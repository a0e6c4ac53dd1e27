"""File ▸ Export: the view or the layout as PNG, a cine as GIF or numbered PNGs, and the
open series as a de-identified DICOM copy.

Pictures are read from VTK's render windows (``grab_rgb``; ``QWidget.grab`` does not
see OpenGL), the layout composed from its visible views at their places in the
panel. "Corner text" (identity, study, slice, W/L, letters, scale bar) and
"overlays" (label overlays, findings, crosshair) can each be left out: they are
hidden for the capture and restored after. Measurements stay (they are the reading).
While a prior is compared, "layout" is both panes with the comparison's header.

Every file goes through :mod:`core.atomic`; file dialogs open in the user's Pictures
(images) or Documents (DICOM) folder, and a target in or under the series' source
folder is refused. The de-identified copy (:mod:`dicomio.deidentify`) runs off the
GUI thread with progress and cancel in the status bar, asks before exporting images
flagged with burned-in annotation, and is audited (``export``: counts and the
profile, no names, no paths).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPoint, QStandardPaths
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QMessageBox, QWidget

from app import workers
from core.atomic import atomic_path, write_bytes

log = logging.getLogger(__name__)

#: A cine longer than this is sampled evenly (a GIF of 1000 CT slices helps nobody).
CINE_MAX_FRAMES = 300
PANEL_BACKGROUND = (0, 0, 0)


class ExportRefused(ValueError):
    """The target is next to the sources, or there is nothing to export."""


# --------------------------------------------------------------------------- capture


def grabbable_views(panel: Any) -> list[Any]:
    """The visible views of the panel that can be read back (VTK render windows)."""
    return [w for w in panel.findChildren(QWidget)
            if hasattr(w, "grab_rgb") and w.isVisible() and w.width() > 0]


def current_view(panel: Any) -> Any:
    """The 2-D image if one is shown, else the active cell, else the focused view, else
    the first visible one."""
    projection = panel.projection_view()
    if projection is not None:
        return projection
    cells = panel.cells()
    if cells:
        return cells[min(panel.active_cell(), len(cells) - 1)]
    visible = grabbable_views(panel)
    focused = QApplication.focusWidget()
    for view in visible:
        if view is focused:
            return view
    if not visible:
        raise ExportRefused("no view is shown")
    return visible[0]


@contextmanager
def decorations(panel: Any, *, corner_text: bool, overlays: bool) -> Iterator[None]:
    """Hide corner text and / or overlays (model overlays, findings, measurements, the
    crosshair) for a capture; restore them after."""
    saved_styles: dict[str, bool] = {}
    crosshair = panel.crosshair_visible()
    findings_visible = panel.findings_layer.visible
    try:
        if not corner_text:
            panel.set_annotations_visible(False)
        if not overlays:
            for name in panel.overlay_names():
                saved_styles[name] = panel.overlay_style(name).visible
                panel.set_overlay_style(name, visible=False)
            panel.findings_layer.visible = False
            panel.set_measurements_visible(False)
            panel.set_crosshair_visible(False)
        yield
    finally:
        if not corner_text:
            panel.set_annotations_visible(True)
        if not overlays:
            for name, visible in saved_styles.items():
                panel.set_overlay_style(name, visible=visible)
            panel.findings_layer.visible = findings_visible
            panel.set_measurements_visible(True)
            panel.set_crosshair_visible(crosshair)


def compose_layout(area: Any, labels: Sequence[Any] = ()) -> np.ndarray:
    """The visible views under ``area`` pasted at their places, on black; ``labels`` are
    plain Qt widgets (a pane's header) painted in too (``QWidget.grab`` is fine there)."""
    views = grabbable_views(area)
    if not views:
        raise ExportRefused("no view is shown")
    grabs = [(view, view.grab_rgb()) for view in views]
    scale = grabs[0][1].shape[1] / max(1, grabs[0][0].width())  # device pixels per widget px
    canvas = np.zeros((round(area.height() * scale), round(area.width() * scale), 3),
                      dtype=np.uint8)
    canvas[...] = PANEL_BACKGROUND
    pieces = [*grabs, *((w, qimage_rgb(w.grab().toImage())) for w in labels if w.isVisible())]
    for widget, rgb in pieces:
        at = widget.mapTo(area, QPoint(0, 0))
        y, x = round(at.y() * scale), round(at.x() * scale)
        h = max(0, min(rgb.shape[0], canvas.shape[0] - y))
        w = max(0, min(rgb.shape[1], canvas.shape[1] - x))
        canvas[y:y + h, x:x + w] = rgb[:h, :w]
    return canvas


def qimage_rgb(image: QImage) -> np.ndarray:
    """A QImage as an (h, w, 3) uint8 array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    data = np.frombuffer(image.constBits(), np.uint8, count=h * stride)
    return data.reshape(h, stride)[:, :w * 3].reshape(h, w, 3).copy()


def capture(panel: Any, what: str = "view", *, corner_text: bool = True,
            overlays: bool = True, others: Sequence[Any] = (), area: Any = None,
            labels: Sequence[Any] = ()) -> np.ndarray:
    """``what`` "view" (the current view of ``panel``) or "layout" (every view under
    ``area``, default the panel): an (h, w, 3) uint8 picture. ``others`` are further
    panels in the area (a comparison) whose decorations follow the same choice."""
    if what not in ("view", "layout"):
        raise ValueError(f"capture what must be 'view' or 'layout', got {what!r}")
    with ExitStack() as stack:
        for each in (panel, *others):
            stack.enter_context(decorations(each, corner_text=corner_text, overlays=overlays))
        if what == "view":
            return np.asarray(current_view(panel).grab_rgb())
        return compose_layout(area if area is not None else panel, labels)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., :3]), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- cine


def cine_frames(window: Any, *, corner_text: bool = True, overlays: bool = True,
                max_frames: int = CINE_MAX_FRAMES) -> list[np.ndarray]:
    """The current view at every frame of a multi-frame image, or at every slice of the
    volume (sampled to ``max_frames``); the position shown is restored after."""
    panel = window.viewer
    frames: list[np.ndarray] = []
    projection = panel.projection_view()
    with decorations(panel, corner_text=corner_text, overlays=overlays):
        if projection is not None and projection.image is not None:
            count = int(getattr(projection.image, "frame_count", 1) or 1)
            first = int(getattr(projection, "frame_index", 0))
            for index in _sample(count, max_frames):
                projection.set_frame(index)
                frames.append(np.asarray(projection.grab_rgb()))
            projection.set_frame(first)
            return frames
        volume = window.current_volume
        if volume is None:
            raise ExportRefused("no series is open")
        view = current_view(panel)
        start = np.asarray(panel.cursor_lps(), dtype=float)
        plane_normal = getattr(view, "plane", "axial")
        try:
            for position in _slice_positions(volume, start, plane_normal, max_frames):
                panel.set_cursor_lps(position)
                frames.append(np.asarray(view.grab_rgb()))
        finally:
            panel.set_cursor_lps(start)
    return frames


def _sample(count: int, max_frames: int) -> list[int]:
    if count <= max_frames:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, max_frames)})


def _slice_positions(volume: Any, start: np.ndarray, plane: str,
                     max_frames: int) -> list[np.ndarray]:
    """Cursor positions through every voxel plane of the volume axis nearest the view's
    normal (axial: S-I, coronal: A-P, sagittal: L-R)."""
    axis_lps = {"axial": 2, "coronal": 1, "sagittal": 0}.get(plane, 2)
    directions = np.asarray(volume.affine, dtype=float)[:3, :3]
    array_axis = int(np.argmax(np.abs(directions[axis_lps, :])))
    index = np.asarray(volume.lps_to_index(start), dtype=float)
    positions = []
    for n in _sample(int(volume.shape[array_axis]), max_frames):
        index[array_axis] = n
        positions.append(np.asarray(volume.index_to_lps(index), dtype=float))
    return positions


def gif_durations(count: int, fps: float) -> list[int]:
    """Per-frame GIF durations (ms): GIF counts in 10 ms ticks, so 33.3 ms frames become
    30, 40, 30, … — the loop keeps the true rate instead of drifting to 30 ms frames."""
    interval = max(20.0, 1000.0 / max(fps, 0.1))  # browsers slow down faster GIFs
    ticks = [round(interval * n / 10.0) * 10 for n in range(count + 1)]
    return [b - a for a, b in pairwise(ticks)]


def write_cine(target: Path, frames: Sequence[np.ndarray], fps: float) -> list[Path]:
    """An animated GIF (``target`` ends in .gif) or, otherwise, a folder ``target`` of
    numbered PNGs (frame_0001.png …). Each file is written atomically."""
    from PIL import Image

    if not frames:
        raise ExportRefused("there are no frames to export")
    target = Path(target)
    if target.suffix.lower() == ".gif":
        images = [Image.fromarray(np.ascontiguousarray(f[..., :3]), "RGB") for f in frames]
        with atomic_path(target) as tmp:
            images[0].save(tmp, "GIF", save_all=True, append_images=images[1:],
                           duration=gif_durations(len(images), fps), loop=0)
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for n, frame in enumerate(frames, start=1):
        path = target / f"frame_{n:04d}.png"
        write_bytes(path, png_bytes(frame))
        written.append(path)
    return written


# --------------------------------------------------------------------------- the menu


def user_folder(kind: str) -> Path:
    """The user's Pictures ("pictures") or Documents folder; home when there is none."""
    location = (QStandardPaths.StandardLocation.PicturesLocation if kind == "pictures"
                else QStandardPaths.StandardLocation.DocumentsLocation)
    folder = QStandardPaths.writableLocation(location)
    return Path(folder) if folder else Path.home()


class ExportActions:
    """The File ▸ Export submenu of a MainWindow and what its actions do."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.last_written: list[Path] = []
        self.last_deid: Any = None
        self.deid_job: workers.Job | None = None
        self.menu = QMenu("Export", window)
        self.menu.setObjectName("exportMenu")
        self.act_corner_text = self._check("Include corner text", True)
        self.act_overlays = self._check("Include overlays", True)
        self.menu.addSeparator()
        self.act_view_png = self._add("Current view as PNG…",
                                      lambda: self.save_png_dialog("view"), "Ctrl+Shift+S")
        self.act_layout_png = self._add("Whole layout as PNG…",
                                        lambda: self.save_png_dialog("layout"))
        self.act_cine_gif = self._add("Cine as animated GIF…", lambda: self.save_cine_dialog(True))
        self.act_cine_png = self._add("Cine as numbered PNGs…",
                                      lambda: self.save_cine_dialog(False))
        self.menu.addSeparator()
        self.act_deid = self._add("De-identified DICOM copy of the series…", self.deid_dialog)
        self.act_deid_study = self._add("De-identified DICOM copy of the study…",
                                        lambda: self.deid_dialog(whole_study=True))

    def _check(self, text: str, checked: bool) -> QAction:
        act = QAction(text, self.window)
        act.setCheckable(True)
        act.setChecked(checked)
        self.menu.addAction(act)
        return act

    def _add(self, text: str, slot: Any, shortcut: str | None = None) -> QAction:
        act: QAction = self.window._action(text, slot, shortcut)
        self.menu.addAction(act)
        return act

    # ------------------------------------------------------------------ checks
    def source_paths(self, *, whole_study: bool = False) -> list[Any]:
        window = self.window
        if window.current_series_id is None:
            return []
        from app.commands.export_deid import deid_sources

        return deid_sources(window.library, window.current_series_id, whole_study=whole_study)

    def check_target(self, target: Path, *, whole_study: bool = False) -> None:
        """Refuse a target in or under the open series' (or study's) source folders."""
        from dicomio.deidentify import DeidTargetError, check_target

        folder = target if target.suffix == "" else target.parent
        try:
            check_target(folder, self.source_paths(whole_study=whole_study))
        except DeidTargetError as exc:
            raise ExportRefused(str(exc)) from None

    # ------------------------------------------------------------------ pictures
    def export_png(self, target: Path, what: str = "view", *, corner_text: bool | None = None,
                   overlays: bool | None = None) -> Path:
        target = Path(target)
        self.check_target(target)
        compare: Any = getattr(self.window, "compare", None)
        comparing = compare is not None and compare.is_open and compare.pane.isVisible()
        rgb = capture(self.window.viewer, what,
                      corner_text=self.act_corner_text.isChecked() if corner_text is None
                      else corner_text,
                      overlays=self.act_overlays.isChecked() if overlays is None else overlays,
                      # Comparing: the layout is both panes, headers (link state) included.
                      others=[compare.panel] if comparing else [],
                      area=compare.splitter if comparing else None,
                      labels=[*compare.pane.findChildren(QWidget, "compareHeader"),
                              compare.link_label] if comparing else [])
        write_bytes(target, png_bytes(rgb))
        self.last_written = [target]
        self.window.set_status(f"Saved {target.name}")
        return target

    def export_cine(self, target: Path, *, corner_text: bool | None = None,
                    overlays: bool | None = None) -> list[Path]:
        target = Path(target)
        self.check_target(target)
        frames = cine_frames(
            self.window,
            corner_text=self.act_corner_text.isChecked() if corner_text is None else corner_text,
            overlays=self.act_overlays.isChecked() if overlays is None else overlays)
        self.last_written = write_cine(target, frames, self._fps())
        self.window.set_status(f"Saved a cine of {len(frames)} frames: {target.name}")
        return self.last_written

    def _fps(self) -> float:
        projection = self.window.viewer.projection_view()
        if projection is not None:
            return 1000.0 / max(1, int(projection.frame_interval_ms()))
        spin = getattr(self.window, "cine_fps", None)
        return float(spin.value()) if spin is not None else 10.0

    def _choose_file(self, title: str, name: str, pattern: str) -> Path | None:
        window = self.window
        if not window.interactive:
            folder = window.export_dir or user_folder("pictures")
            return Path(folder) / name
        chosen, _ = QFileDialog.getSaveFileName(window, title,
                                                str(user_folder("pictures") / name), pattern)
        return Path(chosen) if chosen else None

    def _guarded(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except (ExportRefused, OSError, ValueError) as exc:
            self.window.show_problem(what, str(exc))
            return None

    def save_png_dialog(self, what: str) -> Path | None:
        if self.window.current_volume is None and not self._projection_shown():
            self.window.show_problem("Export", "Open a series first.")
            return None
        target = self._choose_file("Save as PNG", f"lucida-{what}.png", "PNG image (*.png)")
        if target is None:
            return None
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        result: Path | None = self._guarded("Export PNG", lambda: self.export_png(target, what))
        return result

    def save_cine_dialog(self, gif: bool) -> list[Path] | None:
        if self.window.current_volume is None and not self._projection_shown():
            self.window.show_problem("Export", "Open a series first.")
            return None
        window = self.window
        target: Path | None
        if gif:
            target = self._choose_file("Save cine as GIF", "lucida-cine.gif", "GIF (*.gif)")
            if target is not None and target.suffix.lower() != ".gif":
                target = target.with_suffix(".gif")
        elif not window.interactive:
            target = Path(window.export_dir or user_folder("pictures")) / "lucida-cine"
        else:
            chosen = QFileDialog.getExistingDirectory(
                window, "Folder for the numbered PNG frames", str(user_folder("pictures")))
            target = Path(chosen) / "lucida-cine" if chosen else None
        if target is None:
            return None
        written: list[Path] | None = self._guarded("Export cine",
                                                   lambda: self.export_cine(target))
        return written

    def _projection_shown(self) -> bool:
        viewer = self.window.viewer
        return viewer.projection_view() is not None

    # ------------------------------------------------------------------ de-identified
    def deid_dialog(self, whole_study: bool = False) -> workers.Job | None:
        window = self.window
        if window.current_series_id is None:
            window.show_problem("Export", "Open a series first.")
            return None
        if window.interactive:
            chosen = QFileDialog.getExistingDirectory(
                window, "Folder for the de-identified copy", str(user_folder("documents")))
            if not chosen:
                return None
            out_dir = Path(chosen)
        else:
            out_dir = Path(window.export_dir or user_folder("documents"))
        return self.start_deid(out_dir, whole_study=whole_study)

    def start_deid(self, out_dir: Path, *, allow_burned_in: bool = False,
                   whole_study: bool = False) -> workers.Job | None:
        """Check the target and the burned-in flags, then export in the background
        (the open series, or every image series of its study in one UID mapping)."""
        from dicomio.deidentify import burned_in_sources, export_deidentified

        window = self.window
        sources = self.source_paths(whole_study=whole_study)
        try:
            self.check_target(Path(out_dir), whole_study=whole_study)
        except ExportRefused as exc:
            window.show_problem("De-identified export", str(exc))
            return None
        if not allow_burned_in:
            flagged = burned_in_sources(sources)
            if flagged and not self._confirm_burned_in(len(flagged), len(sources)):
                window.show_problem(
                    "De-identified export",
                    f"Not exported: {len(flagged)} image(s) are flagged with burned-in "
                    "annotation (text in the pixels that de-identification does not remove).")
                return None
            allow_burned_in = bool(flagged)
        series_uid = str(getattr(window.current_volume, "series_uid", "") or "")

        def work(ctx: workers.JobContext) -> Any:
            return export_deidentified(sources, Path(out_dir), allow_burned_in=allow_burned_in,
                                       progress=ctx.progress, cancel=ctx.cancel)

        job = workers.make(work, name="export-deid")
        job.progress.connect(window._on_progress)
        job.finished.connect(lambda result: self._deid_done(result, series_uid, whole_study))
        job.failed.connect(lambda exc: window.show_problem("De-identified export", str(exc)))
        job.cancelled.connect(lambda: window.set_status("De-identified export cancelled."))
        job.done.connect(window._on_job_done)
        window.cancel_button.clicked.connect(job.cancel)
        job.done.connect(lambda: _disconnect(window.cancel_button.clicked, job.cancel))
        self.deid_job = job
        window._show_busy(f"De-identifying the {'study' if whole_study else 'series'}…")
        return job.start()

    def _confirm_burned_in(self, flagged: int, total: int) -> bool:
        if not self.window.interactive:
            return False  # scripts and tests: refused unless asked with allow_burned_in
        answer = QMessageBox.warning(
            self.window, "Burned-in annotation",
            f"{flagged} of {total} images are flagged BurnedInAnnotation YES: their pixels "
            "may show the patient's name, ID or dates, which de-identifying the header does "
            "not remove.\n\nExport them anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _deid_done(self, result: Any, series_uid: str, whole_study: bool = False) -> None:
        from app.actor import os_user
        from app.commands.export_deid import audit_payload

        self.last_deid = result
        window = self.window
        try:
            # The audit says what left and how, never who or where (no names, no paths).
            window.library.audit("export", audit_payload(result, whole_study=whole_study),
                                 actor=window.prefs.reviewer or os_user(), series_uid=series_uid)
        except Exception as exc:  # the copy exists; say the audit failed
            window.show_problem("Audit", f"the export was not recorded: {exc}")
        skipped = f", {len(result.skipped)} unreadable file(s) skipped" if result.skipped else ""
        window.set_status(f"De-identified copy: {len(result.files)} file(s) in "
                          f"{result.out_dir}{skipped}.")


def _disconnect(signal: Any, slot: Any) -> None:
    try:
        signal.disconnect(slot)
    except (RuntimeError, TypeError):
        pass
