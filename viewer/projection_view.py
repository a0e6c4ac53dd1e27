"""A plain 2-D view of a ProjectionImage (radiograph, ultrasound, capture) with VTK in Qt.

No patient space: no crosshair, no MPR, no LPS cursor. The frame is shown as
acquired at its pixel aspect (row vs column spacing, square when
uncalibrated), with letters from Patient Orientation, the file's own VOI,
and lengths in mm with where they hold ("at detector", ...) or in px.

World coordinates of the renderer: x = column × column spacing, y = −row ×
row spacing (mm, or pixels when uncalibrated), so row 0 is at the top.

Mouse (as in SliceView): left drag window/level (or draws with "distance"),
middle drag / tool "pan" pans, right drag / ctrl+wheel / tool "zoom" zooms,
the wheel steps frames. Keys: PgUp/PgDn and arrows step frames, F cycles the
file's windows / VOI LUTs then auto and full range, 0 auto, R resets zoom, pan
and window, Esc cancels a distance being drawn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import vtkmodules.vtkRenderingFreeType  # text rendering backend
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL backend)
from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
)

from core.projection import ProjectionImage
from core.voi import auto_window, to_display
from viewer.corner_text import (
    AMBER,
    Annotations,
    bottom_room,
    identity_lines,
    study_lines,
    text_actor,
)
from viewer.models import WindowLevelModel
from viewer.projection_model import (
    Distance,
    VoiChoice,
    default_choice,
    edge_letters,
    lut_equivalent_window,
    spacing_text,
    voi_choices,
)
from viewer.vtkutil import DeferredRender

TOOLS = ("navigate", "distance", "pan", "zoom")
_CLICK_SLOP_PX = 3
_Z_MEASURE = 1.5
DEFAULT_FRAME_TIME_MS = 100.0      # cine speed when the file gives none


class ProjectionView(DeferredRender, QVTKRenderWindowInteractor):
    """One frame of a ProjectionImage, plain 2-D."""

    frame_changed = Signal(int)          # 0-based frame index
    view_changed = Signal()              # zoom or pan
    measurements_changed = Signal()

    def __init__(self, *, window_level: WindowLevelModel | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_level = window_level if window_level is not None else WindowLevelModel()
        self.image: ProjectionImage | None = None
        self.frame_index = 0
        self.tool = "navigate"
        self.identity_visible = True
        self.voi: VoiChoice | None = None          # the shown VOI (None: dragged by hand)
        self.distances: list[Distance] = []
        self._draft: Distance | None = None
        self._drag: dict[str, Any] | None = None
        self.probe_text = ""                 # pixel and value under the mouse, bottom left
        self._fit_scale = 1.0
        self._render_pending = False
        self._spacing = (1.0, 1.0)                 # (row, column) world units per pixel
        self._buffer: np.ndarray | None = None     # display values shared with VTK (bottom row 1st)
        self._vtk_image: vtkImageData | None = None
        self._updating_wl = False
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_tick)

        self.setMinimumSize(64, 64)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        rw = self.GetRenderWindow()
        rw.SetMultiSamples(0)                      # a 2-D image gains nothing from MSAA
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        rw.AddRenderer(self.renderer)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.image_actor = vtkImageActor()
        prop = self.image_actor.GetProperty()
        prop.SetColorWindow(255.0)                 # display values are already 0..255
        prop.SetColorLevel(127.5)
        prop.SetInterpolationTypeToLinear()
        self.image_actor.VisibilityOff()
        self.renderer.AddViewProp(self.image_actor)

        self._meas_points = vtkPoints()
        self._meas_poly = vtkPolyData()
        self._meas_poly.SetPoints(self._meas_points)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self._meas_poly)
        self.meas_actor = vtkActor()
        self.meas_actor.SetMapper(mapper)
        self.meas_actor.GetProperty().SetColor(*AMBER)
        self.meas_actor.GetProperty().SetLineWidth(1.5)
        self.renderer.AddActor(self.meas_actor)
        self._label_actors: list[vtkTextActor] = []
        self._measurements_visible = True

        self.annotations = Annotations(self.renderer)
        self.corner_actors = self.annotations.corner_actors
        self.letter_actors = self.annotations.letter_actors
        self.window_level.changed.connect(self._on_window_level)
        self.Initialize()

    # ------------------------------------------------------------------ image
    def set_image(self, image: ProjectionImage | None) -> None:
        """Show ``image`` at frame 0 with its own default VOI (None: show nothing)."""
        self.pause()
        self.image = image
        self.frame_index = 0
        self.distances = []
        self._draft = None
        if image is None:
            self._vtk_image = None
            self._buffer = None
            self.image_actor.VisibilityOff()
            self._update_text()
            self._update_measurements()
            self.request_render()
            return
        self._spacing = image.pixel_spacing_mm or (1.0, 1.0)
        rows, cols = image.rows, image.cols
        comps = 3 if image.is_colour else 1
        self._buffer = np.zeros((rows, cols, comps), dtype=np.uint8)
        vimg = vtkImageData()
        vimg.SetDimensions(cols, rows, 1)
        vimg.SetSpacing(self._spacing[1], self._spacing[0], 1.0)
        vimg.SetOrigin(0.0, -(rows - 1) * self._spacing[0], 0.0)
        arr = numpy_support.numpy_to_vtk(self._buffer.reshape(-1, comps), deep=False)
        vimg.GetPointData().SetScalars(arr)
        self._vtk_image = vimg
        self.image_actor.SetInputData(vimg)
        self.image_actor.VisibilityOn()
        self.set_voi(default_choice(image, self.current_frame()))
        self.reset_view()
        self._update_measurements()
        self.measurements_changed.emit()

    def current_frame(self) -> np.ndarray:
        assert self.image is not None
        return np.asarray(self.image.frames[self.frame_index])

    def _redraw_image(self) -> None:
        image, buf = self.image, self._buffer
        if image is None or buf is None or self._vtk_image is None:
            return
        frame = self.current_frame()
        voi = self.voi
        if voi is not None and voi.kind == "lut":
            shown = to_display(frame, image, voi_index=voi.index, use_lut=True)
        elif voi is not None:
            shown = to_display(frame, image, (voi.center, voi.width), function=voi.function)
        else:
            shown = to_display(frame, image, (self.window_level.level, self.window_level.width))
        buf[...] = shown[::-1].reshape(buf.shape)
        self._vtk_image.Modified()
        self.request_render()

    # ------------------------------------------------------------------ VOI
    def voi_choices(self) -> list[VoiChoice]:
        """The file's windows / LUTs, then "auto" and "full range" (F cycles them)."""
        if self.image is None:
            return []
        return voi_choices(self.image, self.current_frame())

    def set_voi(self, choice: VoiChoice) -> None:
        self.voi = choice
        if choice.kind == "lut" and self.image is not None:
            c, w = lut_equivalent_window(self.image, choice.index)
        else:
            c, w = choice.center, choice.width
        self._updating_wl = True
        try:
            self.window_level.set(w, c, choice.label)
        finally:
            self._updating_wl = False
        self._redraw_image()
        self._update_text()

    def cycle_voi(self, step: int = 1) -> VoiChoice | None:
        """Next VOI of the file, then auto and full range, wrapping."""
        choices = self.voi_choices()
        if not choices or self.image is None or self.image.is_colour:
            return None
        labels = [c.label for c in choices]
        now = labels.index(self.voi.label) if self.voi and self.voi.label in labels else -1
        choice = choices[(now + step) % len(choices)]
        self.set_voi(choice)
        return choice

    def apply_preset(self, name: str) -> bool:
        """"auto", "full range" / "full" or a file VOI's label; False for anything else
        (CT presets in HU make no sense on a 2-D image)."""
        wanted = "full range" if name == "full" else name
        for choice in self.voi_choices():
            if choice.label == wanted:
                self.set_voi(choice)
                return True
        return False

    def set_window(self, center: float, width: float) -> None:
        """A hand-made window (the file's VOI LUT Function is kept)."""
        self.window_level.set(width, center)

    def window_values(self) -> tuple[float, float]:
        """(center, width) shown now."""
        return self.window_level.level, self.window_level.width

    def _on_window_level(self, _w: float, _l: float) -> None:
        if self._updating_wl or self.image is None:
            return
        fn = self.voi.function if self.voi is not None and self.voi.kind == "window" else None
        # A hand-made window: no longer one of the choices, but keep its VOI function.
        self.voi = None if fn is None else VoiChoice("", "window", 0, self.window_level.level,
                                                     self.window_level.width, fn)
        self._redraw_image()
        self._update_text()

    # ------------------------------------------------------------------ frames and cine
    def set_frame(self, index: int) -> None:
        if self.image is None:
            return
        index = int(np.clip(index, 0, self.image.frame_count - 1))
        if index == self.frame_index:
            return
        self.frame_index = index
        self._redraw_image()
        self._update_text()
        self._update_measurements()
        self.frame_changed.emit(index)

    def step_frames(self, steps: int) -> None:
        self.set_frame(self.frame_index + steps)

    def frame_interval_ms(self) -> int:
        """Cine interval: the file's frame time (1000 / frame rate), else 100 ms."""
        t = self.image.frame_time_ms if self.image is not None else None
        return max(1, round(t if t and t > 0 else DEFAULT_FRAME_TIME_MS))

    def play(self) -> bool:
        """Start cine (wrapping); False for a single frame."""
        if self.image is None or self.image.frame_count < 2:
            return False
        self.cine_timer.start(self.frame_interval_ms())
        self._update_text()
        self.request_render()
        return True

    def pause(self) -> None:
        if self.cine_timer.isActive():
            self.cine_timer.stop()
            self._update_text()
            self.request_render()

    def is_playing(self) -> bool:
        return self.cine_timer.isActive()

    def _cine_tick(self) -> None:
        if self.image is None:
            self.pause()
            return
        self.set_frame((self.frame_index + 1) % self.image.frame_count)

    # ------------------------------------------------------------------ camera
    def _half_extent(self) -> tuple[float, float]:
        assert self.image is not None
        return (self.image.cols * self._spacing[1] / 2.0, self.image.rows * self._spacing[0] / 2.0)

    def reset_view(self) -> None:
        """Fit the whole frame, centred, zoom 100 %."""
        if self.image is None:
            return
        half_w, half_h = self._half_extent()
        cx = (self.image.cols - 1) * self._spacing[1] / 2.0
        cy = -(self.image.rows - 1) * self._spacing[0] / 2.0
        w, h = self._size_px()
        self._fit_scale = max(half_h, half_w / (w / h)) * 1.02
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(cx, cy, 0.0)
        cam.SetPosition(cx, cy, 1000.0)
        cam.SetViewUp(0.0, 1.0, 0.0)
        cam.SetParallelScale(self._fit_scale)
        cam.SetClippingRange(1.0, 2000.0)
        self._after_camera_change()

    def reset(self) -> None:
        """R: zoom, pan and the file's window."""
        self.reset_view()
        if self.image is not None:
            self.set_voi(default_choice(self.image, self.current_frame()))

    def zoom_factor(self) -> float:
        return self._fit_scale / self.renderer.GetActiveCamera().GetParallelScale()

    def set_zoom(self, factor: float) -> None:
        factor = float(np.clip(factor, 0.05, 40.0))
        self.renderer.GetActiveCamera().SetParallelScale(self._fit_scale / factor)
        self._after_camera_change()

    def pan(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) world units on screen (right, up)."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, fz = cam.GetFocalPoint()
        px, py, pz = cam.GetPosition()
        cam.SetFocalPoint(fx - dx, fy - dy, fz)
        cam.SetPosition(px - dx, py - dy, pz)
        self._after_camera_change()

    def _after_camera_change(self) -> None:
        self._update_text()
        self._update_scale_bar()
        self.view_changed.emit()
        self.request_render()

    def _size_px(self) -> tuple[int, int]:
        w, h = self.GetRenderWindow().GetSize()
        if w <= 1 or h <= 1:
            ratio = self.devicePixelRatioF()
            w, h = int(self.width() * ratio), int(self.height() * ratio)
        return max(int(w), 1), max(int(h), 1)

    def resizeEvent(self, ev: Any) -> None:
        super().resizeEvent(ev)
        if self.image is not None:
            zoom = self.zoom_factor()
            half_w, half_h = self._half_extent()
            w, h = self._size_px()
            self._fit_scale = max(half_h, half_w / (w / h)) * 1.02
            self.renderer.GetActiveCamera().SetParallelScale(self._fit_scale / zoom)
            self._update_text()
        self._update_scale_bar()

    # ------------------------------------------------------------------ coordinates
    def display_to_world(self, x: float, y: float) -> tuple[float, float]:
        ratio = self.devicePixelRatioF()
        _, h = self._size_px()
        self.renderer.SetDisplayPoint(x * ratio, h - 1 - y * ratio, 0.0)
        self.renderer.DisplayToWorld()
        wx, wy, _wz, ww = self.renderer.GetWorldPoint()
        if ww not in (0.0, 1.0):
            wx, wy = wx / ww, wy / ww
        return float(wx), float(wy)

    def display_to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """(row, col) of the image under a widget position (Qt logical pixels, y down)."""
        wx, wy = self.display_to_world(x, y)
        return -wy / self._spacing[0], wx / self._spacing[1]

    def pixel_to_display(self, row: float, col: float) -> tuple[float, float]:
        """Widget position (Qt logical pixels, y down) of an image (row, col)."""
        self.renderer.SetWorldPoint(col * self._spacing[1], -row * self._spacing[0], 0.0, 1.0)
        self.renderer.WorldToDisplay()
        vx, vy, _ = self.renderer.GetDisplayPoint()
        ratio = self.devicePixelRatioF()
        _, h = self._size_px()
        return vx / ratio, (h - 1 - vy) / ratio

    # ------------------------------------------------------------------ text
    def orientation_letters(self) -> dict[str, str]:
        return {edge: actor.GetInput() or "" for edge, actor in self.letter_actors.items()}

    def corner_texts(self) -> dict[str, str]:
        return {c: actor.GetInput() or "" for c, actor in self.corner_actors.items()}

    def set_identity_visible(self, visible: bool) -> None:
        self.identity_visible = bool(visible)
        self._update_text()
        self.request_render()

    def _update_text(self) -> None:
        image = self.image
        letters = edge_letters(image.patient_orientation if image is not None else None)
        for edge, text in letters.items():
            self.letter_actors[edge].SetInput(text)
        if image is None:
            for actor in self.corner_actors.values():
                actor.SetInput("")
            return
        w, _ = self._size_px()
        room = max(24, int(w * 0.49) - 14)
        dpi = int(self.GetRenderWindow().GetDPI())
        # identity_lines / study_lines read .identity, .metadata and .modality, as a Volume has.
        self.annotations.set_fitted("top_left", identity_lines(image, self.identity_visible),  # type: ignore[arg-type]
                                    room, dpi)
        self.annotations.set_fitted("top_right", study_lines(image), room, dpi)  # type: ignore[arg-type]
        bottom_left = [f"Frame {self.frame_index + 1}/{image.frame_count}", spacing_text(image)]
        if self.probe_text:
            bottom_left.append(self.probe_text)
        if self.is_playing():
            bottom_left.insert(1, f"Cine {1000.0 / self.frame_interval_ms():.0f} fps")
        low = bottom_room(w)  # the letter and the scale bar sit between the bottom corners
        self.annotations.set_fitted("bottom_left", bottom_left, low, dpi)
        if image.is_colour:
            wl_line = "Colour"
        else:
            wl = self.window_level
            voi = self.voi
            which = f" ({voi.label})" if voi is not None and voi.label else ""
            wl_line = f"W {wl.width:.0f}  L {wl.level:.0f}{which}"
        self.annotations.set_fitted(
            "bottom_right", [wl_line, f"Zoom {self.zoom_factor() * 100:.0f}%"], low, dpi)

    def _update_scale_bar(self) -> None:
        image = self.image
        if image is None or image.pixel_spacing_mm is None:
            self.annotations.update_scale_bar(0, 0, None)       # nothing to measure by
            return
        w, h = self._size_px()
        self.annotations.update_scale_bar(w, h, self.renderer.GetActiveCamera().GetParallelScale())
        if self.annotations.scale_length_mm:
            self.annotations.scale_label.SetInput(
                f"{self.annotations.scale_length_mm:g} mm {image.spacing_kind}")

    @property
    def scale_length_mm(self) -> float:
        """Length of the scale bar shown (0 when none: uncalibrated or too small)."""
        return self.annotations.scale_length_mm

    def scale_text(self) -> str:
        return self.annotations.scale_label.GetInput() or ""

    # ------------------------------------------------------------------ measurements
    def set_tool(self, tool: str) -> None:
        """"distance", "pan", "zoom"; any other tool of the slice views is "navigate" here."""
        self.tool = tool if tool in TOOLS else "navigate"
        self._draft = None
        self.setCursor(Qt.CursorShape.CrossCursor if self.tool == "distance"
                       else Qt.CursorShape.ArrowCursor)
        self._update_measurements()

    def add_distance(self, a: tuple[float, float], b: tuple[float, float]) -> Distance:
        """A distance between two (row, col) pixel positions on the shown frame."""
        assert self.image is not None
        d = Distance(a=(float(a[0]), float(a[1])), b=(float(b[0]), float(b[1])),
                     frame=self.frame_index)
        d.compute(self.image)
        self.distances.append(d)
        self._update_measurements()
        self.measurements_changed.emit()
        return d

    def delete_distance(self, index: int) -> None:
        del self.distances[index]
        self._update_measurements()
        self.measurements_changed.emit()

    def load_records(self, records: list[dict[str, Any]]) -> None:
        """Replace the distances with saved records (``measurement_records``' form); a record
        of another kind raises ValueError and nothing changes."""
        assert self.image is not None
        loaded = [Distance.from_record(r) for r in records]
        for d in loaded:
            d.compute(self.image)
        self.distances = loaded
        self._update_measurements()
        self.measurements_changed.emit()

    def measurement_records(self) -> list[dict[str, Any]]:
        uid = self.image.series_uid if self.image is not None else ""
        return [d.record(uid) for d in self.distances]

    def set_measurements_visible(self, visible: bool) -> None:
        """Hide or show the distances drawn on the image (they stay in the list)."""
        self._measurements_visible = bool(visible)
        self.meas_actor.SetVisibility(self._measurements_visible)
        self._update_measurements()

    def _update_measurements(self) -> None:
        shown = [d for d in self.distances if d.frame == self.frame_index]
        if self._draft is not None:
            shown.append(self._draft)
        pts, lines = vtkPoints(), vtkCellArray()
        rs, cs = self._spacing
        for d in shown:
            ia = pts.InsertNextPoint(d.a[1] * cs, -d.a[0] * rs, _Z_MEASURE)
            ib = pts.InsertNextPoint(d.b[1] * cs, -d.b[0] * rs, _Z_MEASURE)
            lines.InsertNextCell(2)
            lines.InsertCellPoint(ia)
            lines.InsertCellPoint(ib)
        self._meas_poly.SetPoints(pts)
        self._meas_poly.SetLines(lines)
        self._meas_poly.Modified()
        while len(self._label_actors) < len(shown):
            actor = text_actor(self.renderer, 0, 0, "left", "bottom", AMBER, 12)
            actor.GetPositionCoordinate().SetCoordinateSystemToWorld()
            self._label_actors.append(actor)
        for i, actor in enumerate(self._label_actors):
            if i < len(shown):
                d = shown[i]
                end = d.b if d.b[1] >= d.a[1] else d.a      # label at the right-hand end
                actor.GetPositionCoordinate().SetValue(end[1] * cs + 4 * self._px_world(),
                                                       -end[0] * rs, _Z_MEASURE)
                actor.SetInput(d.label)
                actor.SetVisibility(self._measurements_visible)
            else:
                actor.VisibilityOff()
        self.request_render()

    def _px_world(self) -> float:
        _, h = self._size_px()
        return 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / h

    # ------------------------------------------------------------------ events
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        if self.image is None:
            return
        pos = ev.position()
        button = ev.button()
        action = "none"
        if button == Qt.MouseButton.LeftButton:
            action = {"distance": "draw", "pan": "pan", "zoom": "zoom"}.get(self.tool, "wl")
        elif button == Qt.MouseButton.MiddleButton:
            action = "pan"
        elif button == Qt.MouseButton.RightButton:
            action = "zoom"
        self._drag = {"action": action, "start": (pos.x(), pos.y()), "last": (pos.x(), pos.y()),
                      "moved": False, "wl": (self.window_level.width, self.window_level.level),
                      "zoom": self.zoom_factor()}
        if action == "draw":
            p = self.display_to_pixel(pos.x(), pos.y())
            self._draft = Distance(a=p, b=p, frame=self.frame_index)
            self._draft.compute(self.image)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        x, y = pos.x(), pos.y()
        self._update_probe(x, y)
        d = self._drag
        if d is None or self.image is None:
            return
        sx, sy = d["start"]
        if abs(x - sx) > _CLICK_SLOP_PX or abs(y - sy) > _CLICK_SLOP_PX:
            d["moved"] = True
        action = d["action"]
        if action == "wl" and d["moved"] and not self.image.is_colour:
            w0, l0 = d["wl"]
            sens = max(w0, 1.0) / 300.0
            self.window_level.set(w0 + (x - sx) * sens, l0 - (y - sy) * sens)
        elif action == "pan":
            ax, ay = self.display_to_world(*d["last"])
            bx, by = self.display_to_world(x, y)
            self.pan(bx - ax, by - ay)
        elif action == "zoom":
            self.set_zoom(d["zoom"] * math.exp(-(y - sy) / 150.0))
        elif action == "draw" and self._draft is not None:
            self._draft.b = self.display_to_pixel(x, y)
            self._draft.compute(self.image)
            self._update_measurements()
        d["last"] = (x, y)

    def leaveEvent(self, ev: QEvent) -> None:
        if self.probe_text:
            self.probe_text = ""
            self._update_text()
            self.request_render()

    def _update_probe(self, x: float, y: float) -> None:
        """The pixel under the mouse, as (column, row) from the top left, and its value:
        the modality value (after rescale, before the window) or the RGB triple."""
        image = self.image
        text = ""
        if image is not None:
            r, c = (math.floor(v + 0.5) for v in self.display_to_pixel(x, y))
            if 0 <= r < image.rows and 0 <= c < image.cols:
                value = image.frames[self.frame_index, r, c]
                if image.is_colour:
                    shown = "RGB " + " ".join(str(int(v)) for v in value)
                else:
                    v = float(value)
                    shown = f"{v:.0f}" if v == int(v) else f"{v:.2f}"
                text = f"px ({c}, {r}): {shown}"
        if text != self.probe_text:
            self.probe_text = text
            self._update_text()
            self.request_render()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        d, self._drag = self._drag, None
        if d is None or d["action"] != "draw" or self._draft is None:
            return
        draft, self._draft = self._draft, None
        if d["moved"]:
            pos = ev.position()
            self.add_distance(draft.a, self.display_to_pixel(pos.x(), pos.y()))
        else:
            self._update_measurements()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        self.mousePressEvent(ev)

    def wheelEvent(self, ev: QWheelEvent) -> None:
        delta = ev.angleDelta().y()
        if delta == 0:
            return
        notches = int(delta / 120) or (1 if delta > 0 else -1)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom_factor() * (1.15 ** notches))
        else:
            self.step_frames(-notches)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        K = Qt.Key
        if key in (K.Key_PageUp, K.Key_Up, K.Key_Left):
            self.step_frames(-1)
        elif key in (K.Key_PageDown, K.Key_Down, K.Key_Right):
            self.step_frames(1)
        elif key == K.Key_F:
            back = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.cycle_voi(-1 if back else 1)
        elif key == K.Key_0:
            self.apply_preset("auto")
        elif key == K.Key_R:
            self.reset()
        elif key == K.Key_Escape:
            self._draft = None
            self._update_measurements()
        else:
            ev.ignore()

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        ev.ignore()

    # ------------------------------------------------------------------ teardown
    def close_view(self) -> None:
        """Release the VTK render window (call before the widget is destroyed)."""
        self.set_image(None)
        self.Finalize()


def auto_center_width(image: ProjectionImage, frame_index: int = 0) -> tuple[float, float]:
    """(center, width) of the 1st–99th percentile of one frame."""
    return auto_window(np.asarray(image.frames[frame_index]))


def mouse_event(kind: Any, x: float, y: float, button: Qt.MouseButton,
                buttons: Qt.MouseButton) -> QMouseEvent:
    """A real QMouseEvent (tests send these through QApplication.sendEvent)."""
    p = QPointF(x, y)
    return QMouseEvent(kind, p, p, button, buttons, Qt.KeyboardModifier.NoModifier)
