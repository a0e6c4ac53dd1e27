"""One reformatted slice view (axial, coronal or sagittal) rendered with VTK in Qt.

The view reslices the volume in LPS world space (``viewer.planes``) and
renders the shared models: window/level, cursor, slab and measurements.
In-plane coordinates (x right, y up, mm from the plane anchor) are VTK world
coordinates of this view's renderer, so the camera never needs rotating.

Mouse: left click sets the crosshair; left drag adjusts window/level (or
draws with a measurement tool, pans or zooms when that tool is active);
with the navigate or a measurement tool, dragging a measurement's handle
(end, vertex, ROI corner) moves that point and dragging its line moves it whole;
shift+left drag or the "crosshair" tool drags the crosshair; middle drag
pans; right drag and ctrl+wheel zoom; the wheel scrolls one slice.
Keys: PgUp/PgDn and arrows scroll, 1–8 CT presets, 0 auto window, R reset,
Esc cancels a measurement being drawn.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import vtkmodules.vtkRenderingFreeType  # text rendering backend
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL backend)
from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkCommonCore import vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageActor,
    vtkPolyDataMapper,
    vtkRenderer,
)

from core.volume import LabelMap, Volume
from viewer import planes
from viewer.brush import DEFAULT_RADIUS_MM, PaintStroke, clamp_radius_mm
from viewer.corner_text import Annotations, bottom_room, identity_lines, study_lines
from viewer.findings import FindingsLayer
from viewer.findings_visual import FindingsVisual
from viewer.measure import Measurement, bidimensional_from_drag, value_unit
from viewer.measure_visual import (
    AMBER,
    SELECTED,
    Z_MEASURE,
    MeasurementsVisual,
    shape_polylines,
    visible_measurements,
)
from viewer.models import CursorModel, MeasurementList, SlabModel, WindowLevelModel
from viewer.overlay import LabelOverlayVisual, OverlayStyle
from viewer.presets import AUTO, preset_order
from viewer.vtkutil import (
    DeferredRender,
    background_value,
    index_space_image,
    set_vtk_matrix,
)

log = logging.getLogger(__name__)

PLANE_COLOURS = {
    "axial": (0.75, 0.30, 0.30),
    "coronal": (0.30, 0.65, 0.35),
    "sagittal": (0.35, 0.48, 0.85),
}
TOOLS = ("navigate", "crosshair", "distance", "angle", "ellipse", "rectangle", "bidimensional",
         "pan", "zoom", "brush", "eraser")
MEASURE_TOOLS = ("distance", "angle", "ellipse", "rectangle", "bidimensional")
EDIT_TOOLS = ("navigate", *MEASURE_TOOLS)     # tools that can grab a drawn measurement
BRUSH_TOOLS = ("brush", "eraser")
_CLICK_SLOP_PX = 3
HANDLE_GRAB_PX = 7.0     # a press this close to a handle grabs it
LINE_GRAB_PX = 5.0       # this close to a measurement's line grabs the whole measurement
CROSSHAIR_GAP_PX = 10.0
LETTER_GAP_PX = 6.0      # clear space kept between the crosshair and an orientation letter
# Depth of overlays above the image (camera looks down -z from +z).
_Z_CROSS, _Z_MEASURE = 1.0, Z_MEASURE


class SliceView(DeferredRender, QVTKRenderWindowInteractor):
    """A reformatted slice of a Volume in patient orientation.

    ``plane`` is "axial", "coronal" or "sagittal". Models may be shared with
    other views (the panel does); standalone, the view makes its own.
    """

    slice_changed = Signal(int)          # 0-based slice index along the aligned axis
    view_changed = Signal()              # zoom or pan changed
    paint_stroke = Signal(object)        # PaintStroke (brush / eraser drag)
    finding_clicked = Signal(str)        # key of the finding clicked with the navigate tool
    brush_radius_changed = Signal(float)

    def __init__(self, plane: str = "axial", *, window_level: WindowLevelModel | None = None,
                 cursor: CursorModel | None = None, slab: SlabModel | None = None,
                 measurements: MeasurementList | None = None,
                 findings: FindingsLayer | None = None,
                 parent: QWidget | None = None) -> None:
        if plane not in planes.PLANE_NAMES:
            raise ValueError(f"plane must be one of {planes.PLANE_NAMES}, got {plane!r}")
        super().__init__(parent)
        self.plane = plane
        self.window_level = window_level if window_level is not None else WindowLevelModel()
        self.cursor_model = cursor if cursor is not None else CursorModel()
        self.slab = slab if slab is not None else SlabModel()
        self.measurements = measurements if measurements is not None else MeasurementList()
        self.volume: Volume | None = None
        self.geometry_: planes.PlaneGeometry | None = None
        self.tool = "navigate"
        self.identity_visible = True
        self.probe_text = ""                 # value under the mouse, shown bottom left
        self._stale = False                  # hidden while the cursor moved: redo on show
        self._cross_dirs: tuple[object, object] | None = None
        self._drawn_measurements: list[int] | None = None
        self._offset = 0.0
        self._overlays: dict[str, LabelOverlayVisual] = {}
        self.findings = findings if findings is not None else FindingsLayer()
        self.brush_radius_mm = DEFAULT_RADIUS_MM
        self._brush_xy: np.ndarray | None = None     # circle cursor centre (in-plane mm)
        self._styled_mm_per_px = 0.0
        self._render_pending = False
        self._fit_scale = 1.0
        self._drag: dict[str, Any] | None = None
        self._draft: Measurement | None = None    # measurement being drawn
        self._angle_stage = 0
        self._bidi_stage = 0                      # 1: long axis drawn, next drag the short one
        self._draft_anchor = np.zeros(3)          # where the short axis' drag started

        self.setMinimumSize(64, 64)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        rw = self.GetRenderWindow()
        # No multisampling: a 2-D image gains nothing from it, and on software GL it
        # costs most of the frame (8× MSAA is VTK's default).
        rw.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        rw.AddRenderer(self.renderer)
        cam = self.renderer.GetActiveCamera()
        cam.ParallelProjectionOn()

        # Image pipeline: vtkImageReslice → vtkImageActor (W/L in the actor's property).
        self._image: Any = None
        self._source_array: Any = None
        self._axes = vtkMatrix4x4()
        self.reslice = vtkImageReslice()
        self.reslice.SetOutputDimensionality(2)
        self.reslice.SetInterpolationModeToLinear()
        self.reslice.SetResliceAxes(self._axes)
        self.image_actor = vtkImageActor()
        self.image_actor.GetMapper().SetInputConnection(self.reslice.GetOutputPort())
        self.image_actor.GetProperty().SetInterpolationTypeToLinear()
        self.image_actor.VisibilityOff()
        self.renderer.AddViewProp(self.image_actor)

        # Crosshair: two lines through the cursor (one per other plane), each drawn as
        # two segments leaving a small gap so the structure under the cursor stays visible.
        self._cross_points = vtkPoints()
        self._cross_points.SetNumberOfPoints(8)
        self._cross_poly = vtkPolyData()
        self._cross_poly.SetPoints(self._cross_points)
        lines = vtkCellArray()
        for a, b in ((0, 1), (2, 3), (4, 5), (6, 7)):
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        self._cross_poly.SetLines(lines)
        self._cross_colours = vtkUnsignedCharArray()
        self._cross_colours.SetNumberOfComponents(3)
        self._cross_poly.GetCellData().SetScalars(self._cross_colours)
        self._cross_mapper = vtkPolyDataMapper()
        self._cross_mapper.SetInputData(self._cross_poly)
        self.cross_actor = vtkActor()
        self.cross_actor.SetMapper(self._cross_mapper)
        self.cross_actor.GetProperty().SetLineWidth(1.0)
        # Opaque on purpose: a translucent actor adds a whole translucent render pass.
        self.cross_actor.VisibilityOff()
        self.renderer.AddActor(self.cross_actor)
        self.crosshair_visible = True

        # Measurements: one polydata of lines, coloured per cell, plus labels.
        self.measurements_visual = MeasurementsVisual(self.renderer)
        self.meas_actor = self.measurements_visual.actor

        # Findings (one actor pair per finding) and the brush's circle cursor.
        self.findings_visual = FindingsVisual(self.renderer, self.findings)
        self._brush_poly = vtkPolyData()
        self._brush_mapper = vtkPolyDataMapper()
        self._brush_mapper.SetInputData(self._brush_poly)
        self.brush_actor = vtkActor()
        self.brush_actor.SetMapper(self._brush_mapper)
        self.brush_actor.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.brush_actor.GetProperty().SetLineWidth(1.0)
        self.brush_actor.VisibilityOff()
        self.renderer.AddActor(self.brush_actor)

        # Text: four corners, four orientation letters, scale bar (viewer.corner_text).
        self.annotations = Annotations(self.renderer)
        self.corner_actors = self.annotations.corner_actors
        self.letter_actors = self.annotations.letter_actors
        self.scale_actor = self.annotations.scale_actor
        self.scale_label = self.annotations.scale_label

        self.window_level.changed.connect(self._on_window_level)
        self.cursor_model.changed.connect(self._on_cursor)
        self.slab.changed.connect(self._on_slab)
        self.measurements.changed.connect(self._update_measurements)
        self.measurements.selection_changed.connect(lambda _i: self._update_measurements())
        self.findings.changed.connect(self._on_findings_changed)
        self.findings.shape_changed.connect(self._on_finding_changed)
        self._gl_ready = False  # Initialize() with the first draw (DeferredRender.ensure_gl)
        self._apply_window_level()

    # ------------------------------------------------------------------ volume
    def set_volume(self, volume: Volume | None) -> None:
        """Show ``volume`` (its array may still be filling; call ``refresh``)."""
        self.remove_all_overlays()
        self.volume = volume
        self._draft = None
        self.findings_visual.set_volume_affine(None if volume is None else volume.affine)
        self._brush_xy = None
        if volume is None:
            self.geometry_ = None
            self._image = None
            self.reslice.RemoveAllInputs()
            self.image_actor.VisibilityOff()
            self.cross_actor.VisibilityOff()
            self._update_text()
            self._update_measurements()
            self.request_render()
            return
        self.geometry_ = planes.PlaneGeometry.for_volume(volume, self.plane)
        g = self.geometry_
        self._source_array = volume.array
        self._image = index_space_image(volume.array)
        self.reslice.SetInputData(self._image)
        self.reslice.SetBackgroundLevel(background_value(volume.array.dtype))
        self.reslice.SetOutputSpacing(g.spacing_xy[0], g.spacing_xy[1], g.step_mm)
        self.reslice.SetOutputOrigin(g.origin_xy[0], g.origin_xy[1], 0.0)
        self.reslice.SetOutputExtent(0, g.size_xy[0] - 1, 0, g.size_xy[1] - 1, 0, 0)
        self.image_actor.VisibilityOn()
        self.cross_actor.SetVisibility(self.crosshair_visible)
        self._apply_slab()
        self._offset = g.slice_offset(volume, self.cursor_model.lps)
        self.reset_view()
        self.findings_visual.sync(g, self._offset, self.mm_per_px())
        self._apply_slice()
        self._update_measurements()

    def refresh(self) -> None:
        """The volume's array changed in place (more slices loaded)."""
        vol = self.volume
        if vol is not None and self._image is not None and vol.array is not self._source_array:
            # The loader replaced the array (e.g. widened int16 → float32): wrap the new one.
            self._source_array = vol.array
            self._image = index_space_image(vol.array)
            self.reslice.SetInputData(self._image)
            self.reslice.SetBackgroundLevel(background_value(vol.array.dtype))
        if self._image is not None:
            self._image.Modified()
            for ov in self._overlays.values():
                ov.image.Modified()
            self.request_render()

    # ------------------------------------------------------------------ overlays
    def add_overlay(self, name: str, labels: LabelMap, opacity: float = 0.45,
                    style: OverlayStyle | None = None) -> None:
        """Show a label map as a translucent fill with a smooth outline (replaces ``name``)."""
        self.remove_overlay(name)
        st = style if style is not None else OverlayStyle(opacity=float(opacity))
        ov = LabelOverlayVisual(self.renderer, labels, st)
        self._overlays[name] = ov
        if self.geometry_ is not None:
            ov.place(self.geometry_, self._offset, self.mm_per_px())
        self.request_render()

    def remove_overlay(self, name: str) -> None:
        ov = self._overlays.pop(name, None)
        if ov is not None:
            ov.remove()
            self.request_render()

    def remove_all_overlays(self) -> None:
        for name in list(self._overlays):
            self.remove_overlay(name)

    def overlay_names(self) -> list[str]:
        return list(self._overlays)

    def overlay_style(self, name: str) -> OverlayStyle:
        return self._overlays[name].style

    def set_overlay_style(self, name: str, style: OverlayStyle) -> None:
        """Opacity, fill, outline and visibility of overlay ``name``."""
        ov = self._overlays[name]
        was_visible = ov.style.visible
        ov.set_style(style)
        if style.visible and not was_visible and self.geometry_ is not None:
            ov.place(self.geometry_, self._offset, self.mm_per_px())
        else:
            ov.restyle(self.mm_per_px())
        self.request_render()

    def set_overlay_opacity(self, name: str, opacity: float) -> None:
        st = self._overlays[name].style
        self.set_overlay_style(name, OverlayStyle(float(opacity), st.fill, st.outline, st.visible))

    def refresh_overlay(self, name: str) -> None:
        """The label map's array changed in place (an edit): redraw it."""
        ov = self._overlays[name]
        ov.refresh()
        if self.geometry_ is not None:
            ov.place(self.geometry_, self._offset, self.mm_per_px())
        self.request_render()

    def overlay_outline_points(self, name: str) -> list[np.ndarray]:
        """Smoothed outline polylines (in-plane x, y mm) of overlay ``name`` on this slice."""
        visual = self._overlays[name].visual
        return [] if visual is None else visual.outline_points()

    # ------------------------------------------------------------------ findings
    def _on_findings_changed(self) -> None:
        if self.geometry_ is None:
            return
        self.findings_visual.sync(self.geometry_, self._offset, self.mm_per_px())
        self.request_render()

    def _on_finding_changed(self, key: str) -> None:
        if self.geometry_ is None:
            return
        self.findings_visual.update_key(key, self.geometry_, self._offset, self.mm_per_px())
        self.request_render()

    def finding_outline_points(self, key: str) -> list[np.ndarray]:
        """Smoothed outline polylines (in-plane x, y mm) of finding ``key`` on this slice."""
        return self.findings_visual.outline_points(key)

    def mm_per_px(self) -> float:
        """Size of one rendered pixel in mm at the current zoom."""
        _, h = self._size_px()
        return 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / h

    # ------------------------------------------------------------------ slices
    def _apply_slice(self) -> None:
        g, vol = self.geometry_, self.volume
        if g is None or vol is None:
            return
        plane_to_lps = g.plane_to_lps_matrix(self._offset)
        set_vtk_matrix(self._axes, planes.reslice_matrix(vol.affine, plane_to_lps))
        self.reslice.Modified()
        mmpp = self.mm_per_px()
        for ov in self._overlays.values():
            ov.place(g, self._offset, mmpp)
        self.findings_visual.place_all(g, self._offset, mmpp)
        self._styled_mm_per_px = mmpp
        self._update_crosshair()
        self._update_text()
        self._update_measurements()

    def slice_index(self) -> int:
        """0-based index of the shown slice along the volume axis nearest the normal."""
        if self.geometry_ is None or self.volume is None:
            return -1
        return self.geometry_.slice_index(self.volume, self.slice_point_lps())

    def display_slice_number(self) -> int:
        """1-based slice number counted in the scroll direction (+1 = towards the viewer).

        Axial counts from the top of the body (like most head-first instance
        numbers), coronal from the back, sagittal from the right, whatever the
        order of the stored slices; PgDn always adds one.
        """
        g, vol = self.geometry_, self.volume
        if g is None or vol is None:
            return 0
        idx = self.slice_index()
        column = vol.affine[:3, g.aligned_axis]
        if float(column @ g.normal) > 0:
            return idx + 1
        return g.slice_count(vol) - idx

    def slice_point_lps(self) -> np.ndarray:
        """The cursor moved onto the shown plane (LPS mm)."""
        g = self.geometry_
        assert g is not None
        xyz = g.to_plane(self.cursor_model.lps)
        return g.to_lps(xyz[:2], self._offset)

    def slice_position_mm(self) -> float:
        """LPS coordinate naming the plane (z for axial, y coronal, x sagittal), mm."""
        return float(self.slice_point_lps()[planes.PLANE_POSITION_AXIS[self.plane]])

    def scroll_slices(self, steps: int) -> None:
        """Move the cursor ``steps`` slice spacings along the normal, towards the viewer.

        +1 is one slice inferior in axial, anterior in coronal, left in
        sagittal; the move is exactly one voxel step of the volume axis
        nearest the normal, clamped to the volume.
        """
        g, vol = self.geometry_, self.volume
        if g is None or vol is None or steps == 0:
            return
        current = g.slice_index(vol, self.cursor_model.lps)
        column = vol.affine[:3, g.aligned_axis]
        sign = 1 if float(column @ g.normal) > 0 else -1
        target = int(np.clip(current + sign * steps, 0, g.slice_count(vol) - 1))
        if target == current:
            return
        # Land exactly on the target plane (the cursor may have been between planes).
        along = vol.lps_to_index(self.cursor_model.lps)[g.aligned_axis]
        self.cursor_model.set(self.cursor_model.lps + (target - along) * column)

    # ------------------------------------------------------------------ camera
    def reset_view(self) -> None:
        """Fit the whole plane in the view, centred, zoom 100 %."""
        g = self.geometry_
        cam = self.renderer.GetActiveCamera()
        if g is None:
            return
        x0, x1, y0, y1 = g.extent_xy()
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        half_w = (x1 - x0 + g.spacing_xy[0]) / 2.0
        half_h = (y1 - y0 + g.spacing_xy[1]) / 2.0
        w, h = self._size_px()
        aspect = w / h if h > 0 else 1.0
        self._fit_scale = max(half_h, half_w / aspect) * 1.02
        cam.SetFocalPoint(cx, cy, 0.0)
        cam.SetPosition(cx, cy, 1000.0)
        cam.SetViewUp(0.0, 1.0, 0.0)
        cam.SetParallelScale(self._fit_scale)
        cam.SetClippingRange(1.0, 2000.0)
        self._after_camera_change()

    def zoom_factor(self) -> float:
        """Magnification relative to the fitted view (1.0 = whole plane fits)."""
        return self._fit_scale / self.renderer.GetActiveCamera().GetParallelScale()

    def set_zoom(self, factor: float) -> None:
        factor = float(np.clip(factor, 0.1, 40.0))
        self.renderer.GetActiveCamera().SetParallelScale(self._fit_scale / factor)
        self._after_camera_change()

    def pan_mm(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) mm on screen (right, up)."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, fz = cam.GetFocalPoint()
        px, py, pz = cam.GetPosition()
        cam.SetFocalPoint(fx - dx, fy - dy, fz)
        cam.SetPosition(px - dx, py - dy, pz)
        self._after_camera_change()

    def centre_on(self, lps: Sequence[float]) -> None:
        """Pan so the LPS point (projected on the plane) is at the view centre."""
        g = self.geometry_
        if g is None:
            return
        x, y, _ = g.to_plane(lps)
        cam = self.renderer.GetActiveCamera()
        fx, fy, _fz = cam.GetFocalPoint()
        self.pan_mm(fx - x, fy - y)

    def zoom_to_extent(self, extent_mm: float, fraction: float = 1.0 / 3.0) -> None:
        """Zoom so ``extent_mm`` spans ``fraction`` of the view's shorter side.

        A reader who is already closer keeps their zoom, unless the region would not
        fit (90 % of the shorter side): then the view zooms out just enough to show all
        of it (a brain mask must not shrink to a third of the view).
        """
        if self.geometry_ is None or extent_mm <= 0:
            return
        w, h = self._size_px()
        # Parallel scale = half the view height in mm; the shorter side decides.
        short_over_h = min(w, h) / h
        wanted = extent_mm / fraction / 2.0 / short_over_h
        just_fits = extent_mm / 0.88 / 2.0 / short_over_h  # a margin inside the 90 %
        shown = self.renderer.GetActiveCamera().GetParallelScale()
        if shown < just_fits:
            self.set_zoom(self._fit_scale / just_fits)
        elif wanted < shown:
            self.set_zoom(self._fit_scale / max(wanted, just_fits))

    def _after_camera_change(self) -> None:
        mmpp = self.mm_per_px()
        if self._styled_mm_per_px and abs(mmpp / self._styled_mm_per_px - 1.0) > 0.1:
            # Dash lengths are in screen pixels: redo them for the new zoom.
            self._styled_mm_per_px = mmpp
            for ov in self._overlays.values():
                ov.restyle(mmpp)
            self.findings_visual.restyle_all(mmpp)
        self._update_brush_cursor()
        self._update_letters()          # before the crosshair: it stops at the letters
        self._update_crosshair()
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

    def showEvent(self, ev: Any) -> None:
        super().showEvent(ev)
        if self._stale:
            self._stale = False
            self._apply_slice()
            self.request_render()

    def resizeEvent(self, ev: Any) -> None:
        super().resizeEvent(ev)
        if self.geometry_ is not None:
            cam = self.renderer.GetActiveCamera()
            zoom = self.zoom_factor()
            g = self.geometry_
            x0, x1, y0, y1 = g.extent_xy()
            half_w = (x1 - x0 + g.spacing_xy[0]) / 2.0
            half_h = (y1 - y0 + g.spacing_xy[1]) / 2.0
            w, h = self._size_px()
            self._fit_scale = max(half_h, half_w / (w / h)) * 1.02
            cam.SetParallelScale(self._fit_scale / zoom)
            self._update_text()  # corner text is cut to the new width
        self._update_crosshair()
        self._update_scale_bar()

    # ------------------------------------------------------------------ coordinates
    def display_to_plane(self, x: float, y: float) -> np.ndarray:
        """In-plane (x, y) mm of a widget position (Qt logical pixels, y down)."""
        ratio = self.devicePixelRatioF()
        _, h = self._size_px()
        vx, vy = x * ratio, h - 1 - y * ratio
        self.renderer.SetDisplayPoint(vx, vy, 0.0)
        self.renderer.DisplayToWorld()
        wx, wy, _wz, ww = self.renderer.GetWorldPoint()
        if ww not in (0.0, 1.0):
            wx, wy = wx / ww, wy / ww
        return np.array([wx, wy])

    def display_to_lps(self, x: float, y: float) -> np.ndarray:
        """LPS mm of a widget position on the shown plane."""
        g = self.geometry_
        if g is None:
            raise RuntimeError("no volume is shown")
        return g.to_lps(self.display_to_plane(x, y), self._offset)

    def lps_to_display(self, lps: Sequence[float]) -> tuple[float, float]:
        """Widget position (Qt logical pixels, y down) of an LPS point projected on the plane."""
        g = self.geometry_
        if g is None:
            raise RuntimeError("no volume is shown")
        x, y, _ = g.to_plane(lps)
        self.renderer.SetWorldPoint(x, y, 0.0, 1.0)
        self.renderer.WorldToDisplay()
        vx, vy, _ = self.renderer.GetDisplayPoint()
        ratio = self.devicePixelRatioF()
        _, h = self._size_px()
        return vx / ratio, (h - 1 - vy) / ratio

    def screen_axes_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS unit vectors of screen right and screen up, from the actual camera."""
        g = self.geometry_
        if g is None:
            raise RuntimeError("no volume is shown")
        cam = self.renderer.GetActiveCamera()
        up = np.array(cam.GetViewUp())
        dop = np.array(cam.GetDirectionOfProjection())
        right = np.cross(dop, up)
        basis = np.stack([g.right, g.up, g.normal], axis=1)   # plane coords → LPS
        r, u = basis @ right, basis @ up
        return r / np.linalg.norm(r), u / np.linalg.norm(u)

    # ------------------------------------------------------------------ text
    def orientation_letters(self) -> dict[str, str]:
        """The letters shown on each edge, read from the text actors."""
        return {edge: actor.GetInput() or "" for edge, actor in self.letter_actors.items()}

    def corner_texts(self) -> dict[str, str]:
        return {c: actor.GetInput() or "" for c, actor in self.corner_actors.items()}

    def set_identity_visible(self, visible: bool) -> None:
        self.identity_visible = bool(visible)
        self._update_text()
        self.request_render()

    def _update_letters(self) -> None:
        if self.geometry_ is None:
            for actor in self.letter_actors.values():
                actor.SetInput("")
            return
        right, up = self.screen_axes_lps()
        for edge, text in planes.orientation_letters(right, up).items():
            self.letter_actors[edge].SetInput(text)

    def _update_text(self) -> None:
        vol = self.volume
        if vol is None or self.geometry_ is None:
            for actor in self.corner_actors.values():
                actor.SetInput("")
            return
        # Each top corner gets half the width, less the top orientation letter.
        w, _ = self._size_px()
        room = max(24, int(w * 0.49) - 14)
        self._set_fitted("top_left", identity_lines(vol, self.identity_visible), room)
        self._set_fitted("top_right", study_lines(vol), room)
        g = self.geometry_
        n = g.slice_count(vol)
        axis_name = "XYZ"[planes.PLANE_POSITION_AXIS[self.plane]]
        bottom_left = [f"{self.plane.capitalize()}  {self.display_slice_number()}/{n}",
                       f"{axis_name} {self.slice_position_mm():.1f} mm"]
        if self.slab.mode != "none" and self._slab_slices() > 1:
            bottom_left.append(f"{self.slab.mode.upper()} {self._slab_slices() * g.step_mm:.1f} mm")
        if self.probe_text:
            bottom_left.append(self.probe_text)
        wl = self.window_level
        preset = f" ({wl.preset})" if wl.preset else ""
        # The bottom corners share their row with the letter and the scale bar in the middle.
        low = bottom_room(w)
        self._set_fitted("bottom_left", bottom_left, low)
        self._set_fitted("bottom_right", [f"W {wl.width:.0f}  L {wl.level:.0f}{preset}",
                                          f"Zoom {self.zoom_factor() * 100:.0f}%"], low)

    def _set_fitted(self, corner: str, lines: list[str], max_px: int) -> None:
        self.annotations.set_fitted(corner, lines, max_px, int(self.GetRenderWindow().GetDPI()))

    def _update_scale_bar(self) -> None:
        if self.geometry_ is None:
            self.annotations.update_scale_bar(0, 0, None)
            return
        w, h = self._size_px()
        self.annotations.update_scale_bar(w, h, self.renderer.GetActiveCamera().GetParallelScale())

    @property
    def scale_length_mm(self) -> float:
        """Length of the scale bar shown (0 when none fits)."""
        return self.annotations.scale_length_mm

    # ------------------------------------------------------------------ crosshair
    def set_crosshair_visible(self, visible: bool) -> None:
        self.crosshair_visible = bool(visible)
        self.cross_actor.SetVisibility(visible and self.geometry_ is not None)
        self.request_render()

    def _crosshair_directions(self) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
        """In-plane unit direction and colour of the line of each other plane (cached)."""
        g = self.geometry_
        assert g is not None
        if self._cross_dirs is None or self._cross_dirs[0] is not g:
            dirs = []
            for other in planes.PLANE_NAMES:
                if other == self.plane:
                    continue
                other_r, other_u = (np.asarray(v) for v in planes.PLANE_AXES[other])
                d = np.cross(g.normal, np.cross(other_r, other_u))
                d2 = np.array([d @ g.right, d @ g.up])
                d2 = d2 / (np.linalg.norm(d2) or 1.0)
                colour = tuple(int(c * 255) for c in PLANE_COLOURS[other])
                dirs.append((d2, colour))
            self._cross_dirs = (g, dirs)
        return self._cross_dirs[1]  # type: ignore[return-value]

    def letter_boxes_px(self) -> list[tuple[float, float, float, float]]:
        """(x0, x1, y0, y1) display pixels (VTK's: y up) around each shown orientation
        letter, widened by LETTER_GAP_PX: the crosshair stops at them."""
        w, h = self._size_px()
        dpi_scale = self.GetRenderWindow().GetDPI() / 72.0
        boxes = []
        for edge, actor in self.letter_actors.items():
            if not actor.GetInput():
                continue
            bbox = [0.0] * 4
            actor.GetBoundingBox(self.renderer, bbox)
            bw, bh = bbox[1] - bbox[0], bbox[3] - bbox[2]
            if bw <= 0 or bh <= 0:      # not laid out yet: a bold 15 pt capital's size
                size = actor.GetTextProperty().GetFontSize() * dpi_scale
                bw, bh = 0.8 * size * len(actor.GetInput()), 1.2 * size
            x, y = actor.GetPositionCoordinate().GetValue()[:2]
            ax, ay = x * w, y * h
            x0 = {"left": ax, "right": ax - bw}.get(edge, ax - bw / 2.0)
            y0 = {"top": ay - bh, "bottom": ay}.get(edge, ay - bh / 2.0)
            p = LETTER_GAP_PX
            boxes.append((x0 - p, x0 + bw + p, y0 - p, y0 + bh + p))
        return boxes

    def _update_crosshair(self) -> None:
        g = self.geometry_
        if g is None:
            return
        x, y, _ = g.to_plane(self.cursor_model.lps)
        x0, x1, y0, y1 = g.extent_xy()
        reach = 2.0 * max(x1 - x0, y1 - y0) + 100.0
        w, h = self._size_px()
        cam = self.renderer.GetActiveCamera()
        mmpp = 2.0 * cam.GetParallelScale() / h
        gap = CROSSHAIR_GAP_PX * mmpp
        # The cursor in display pixels (parallel camera looking down -z, screen up = +y).
        fx, fy, _fz = cam.GetFocalPoint()
        cursor_px = np.array([(x - fx) / mmpp + w / 2.0, (y - fy) / mmpp + h / 2.0])
        boxes = self.letter_boxes_px()
        self._cross_colours.SetNumberOfTuples(0)
        i = 0
        for d2, colour in self._crosshair_directions():
            for sign in (-1.0, 1.0):
                ray = sign * d2
                # 1.5 px short of the box: a line's last pixel is rasterised around its end.
                end = min(reach, max(0.0, _ray_box_entry(cursor_px, ray, boxes) - 1.5) * mmpp)
                start = min(gap, end)
                self._cross_points.SetPoint(i, x + start * ray[0], y + start * ray[1], _Z_CROSS)
                self._cross_points.SetPoint(i + 1, x + end * ray[0], y + end * ray[1],
                                            _Z_CROSS)
                self._cross_colours.InsertNextTuple3(*colour)
                i += 2
        self._cross_points.Modified()
        self._cross_colours.Modified()
        self._cross_poly.Modified()

    # ------------------------------------------------------------------ W/L and slab
    def _apply_window_level(self) -> None:
        prop = self.image_actor.GetProperty()
        prop.SetColorWindow(self.window_level.width)
        prop.SetColorLevel(self.window_level.level)

    def apply_preset(self, name: str) -> None:
        """Set the shared window to a preset: CT (HU), computed from the volume, or "auto"."""
        self.window_level.apply_preset(name, None if self.volume is None else self.volume.array)

    def _slab_slices(self) -> int:
        g = self.geometry_
        if self.slab.mode == "none" or g is None or self.slab.thickness_mm <= 0:
            return 1
        return max(1, round(self.slab.thickness_mm / g.step_mm))

    def _apply_slab(self) -> None:
        n = self._slab_slices()
        self.reslice.SetSlabNumberOfSlices(n)
        self.reslice.SetSlabSliceSpacingFraction(1.0)
        mode = self.slab.mode
        if mode == "mip":
            self.reslice.SetSlabModeToMax()
        elif mode == "minip":
            self.reslice.SetSlabModeToMin()
        else:
            self.reslice.SetSlabModeToMean()

    # ------------------------------------------------------------------ model slots
    def _on_window_level(self, _w: float, _l: float) -> None:
        self._apply_window_level()
        self._update_text()
        self.request_render()

    def _on_cursor(self, _lps: object) -> None:
        g, vol = self.geometry_, self.volume
        if g is None or vol is None:
            return
        offset = g.slice_offset(vol, self.cursor_model.lps)
        if not self.isVisible():
            # Hidden (another layout): keep the position, draw it when shown.
            if offset != self._offset:
                self._offset = offset
                self.slice_changed.emit(self.slice_index())
            self._stale = True
            return
        if offset != self._offset:
            self._offset = offset
            self._apply_slice()
            self.slice_changed.emit(self.slice_index())
        else:
            self._update_crosshair()
            self._update_text()
        self.request_render()

    def _on_slab(self) -> None:
        self._apply_slab()
        self._update_text()
        self.request_render()

    # ------------------------------------------------------------------ measurements
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
        self.tool = tool
        self._draft = None
        self._angle_stage = 0
        self._bidi_stage = 0
        cursor = (Qt.CursorShape.CrossCursor if tool in MEASURE_TOOLS
                  else Qt.CursorShape.ArrowCursor)
        if tool in BRUSH_TOOLS:
            cursor = Qt.CursorShape.BlankCursor        # the circle is the cursor
        self.setCursor(cursor)
        self._update_brush_cursor()
        self._update_measurements()

    # ------------------------------------------------------------------ brush / eraser
    def set_brush_radius_mm(self, radius_mm: float) -> None:
        r = clamp_radius_mm(radius_mm)
        if r != self.brush_radius_mm:
            self.brush_radius_mm = r
            self._update_brush_cursor()
            self.brush_radius_changed.emit(r)
            self.request_render()

    def _update_brush_cursor(self) -> None:
        xy = self._brush_xy
        if self.tool not in BRUSH_TOOLS or xy is None or self.geometry_ is None:
            if self.brush_actor.GetVisibility():
                self.brush_actor.VisibilityOff()
            return
        t = np.linspace(0.0, 2.0 * math.pi, 73)
        r = self.brush_radius_mm
        pts = vtkPoints()
        lines = vtkCellArray()
        lines.InsertNextCell(len(t))
        for a in t:
            lines.InsertCellPoint(pts.InsertNextPoint(xy[0] + r * math.cos(a),
                                                      xy[1] + r * math.sin(a), _Z_MEASURE))
        self._brush_poly.SetPoints(pts)
        self._brush_poly.SetLines(lines)
        self._brush_poly.Modified()
        colour = (1.0, 0.55, 0.45) if self.tool == "eraser" else (1.0, 1.0, 1.0)
        self.brush_actor.GetProperty().SetColor(*colour)
        self.brush_actor.VisibilityOn()

    def _emit_stroke(self, points: list[np.ndarray], finished: bool) -> None:
        self.paint_stroke.emit(PaintStroke(self.plane, np.asarray(points, dtype=np.float64),
                                           self.brush_radius_mm, self.tool == "eraser",
                                           finished))

    def _visible_measurements(self) -> list[tuple[int, Measurement]]:
        return visible_measurements(self.geometry_, self._offset, self.measurements.items())

    def set_measurements_visible(self, visible: bool) -> None:
        """Hide or show the measurements drawn in this view (they stay in the list)."""
        self.measurements_visual.set_visible(visible)
        self.request_render()

    def _update_measurements(self) -> None:
        visible = self._visible_measurements()
        if not visible and self._draft is None and self._drawn_measurements == []:
            return                     # nothing shown before or now (the common scroll case)
        self._drawn_measurements = [i for i, _ in visible]
        items: list[tuple[Measurement, tuple[float, float, float]]] = [
            (m, SELECTED if i == self.measurements.selected else AMBER) for i, m in visible]
        if self._draft is not None and self.geometry_ is not None:
            items.append((self._draft, SELECTED))
        self.measurements_visual.draw(self.geometry_, items)
        self.request_render()

    def _make_measurement(self, kind: str, points_lps: Sequence[np.ndarray]) -> Measurement:
        g = self.geometry_
        assert g is not None
        m = Measurement(kind=kind, points_lps=list(points_lps), right=g.right, up=g.up,
                        view=self.plane,
                        series_uid=self.volume.series_uid if self.volume else "")
        m.compute(self.volume)
        return m

    def add_measurement_from_display(self, kind: str,
                                     points: Sequence[tuple[float, float]]) -> int:
        """Create a measurement from widget positions on the shown plane; returns its index."""
        m = self._make_measurement(kind, [self.display_to_lps(x, y) for x, y in points])
        return self.measurements.add(m)

    # ------------------------------------------------------------------ events
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        if self.geometry_ is None:
            return
        pos = ev.position()
        button = ev.button()
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        action = "none"
        hit: tuple[int, int] | None = None
        if button == Qt.MouseButton.LeftButton:
            if self.tool in BRUSH_TOOLS:
                action = "paint"
            elif not shift and self.tool in EDIT_TOOLS and not self._drafting() and (
                    hit := self.measurement_at(pos.x(), pos.y())) is not None:
                action = "edit"
            elif self.tool in MEASURE_TOOLS:
                action = "draw"
            elif self.tool == "crosshair" or shift:
                action = "cross"
            elif self.tool == "pan":
                action = "pan"
            elif self.tool == "zoom":
                action = "zoom"
            else:
                action = "wl"
        elif button == Qt.MouseButton.MiddleButton:
            action = "pan"
        elif button == Qt.MouseButton.RightButton:
            action = "zoom"
        self._drag = {"action": action, "start": (pos.x(), pos.y()), "last": (pos.x(), pos.y()),
                      "moved": False, "wl": (self.window_level.width, self.window_level.level),
                      "zoom": self.zoom_factor()}
        if action == "cross":
            self.cursor_model.set(self.display_to_lps(pos.x(), pos.y()))
        elif action == "edit":
            index, handle = hit
            m = self.measurements[index]
            self._drag.update(index=index, handle=handle, points=[p.copy() for p in m.points_lps],
                              grab=self.display_to_lps(pos.x(), pos.y()))
        elif action == "draw":
            self._draw_press(pos.x(), pos.y())
        elif action == "paint":
            p = self.display_to_lps(pos.x(), pos.y())
            self._drag["paint_last"] = p
            self._brush_xy = self.display_to_plane(pos.x(), pos.y())
            self._update_brush_cursor()
            self._emit_stroke([p], finished=False)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self.geometry_ is None:
            return
        pos = ev.position()
        if self.tool in BRUSH_TOOLS:
            self._brush_xy = self.display_to_plane(pos.x(), pos.y())
            self._update_brush_cursor()
            self.request_render()
        if self._drag is None:
            if self._draft is not None and self.tool == "angle" and self._angle_stage == 2:
                self._draft.points_lps[2] = self.display_to_lps(pos.x(), pos.y())
                self._draft.compute(None)
                self._update_measurements()
            elif self.tool in EDIT_TOOLS and not self._drafting():
                over = self.measurement_at(pos.x(), pos.y())
                shape = (Qt.CursorShape.CrossCursor if self.tool in MEASURE_TOOLS
                         else Qt.CursorShape.ArrowCursor)
                if over is not None:
                    shape = (Qt.CursorShape.SizeAllCursor if over[1] < 0
                             else Qt.CursorShape.PointingHandCursor)
                if self.cursor().shape() != shape:
                    self.setCursor(shape)
            self._update_probe(pos.x(), pos.y())
            return
        d = self._drag
        sx, sy = d["start"]
        lx, ly = d["last"]
        x, y = pos.x(), pos.y()
        if abs(x - sx) > _CLICK_SLOP_PX or abs(y - sy) > _CLICK_SLOP_PX:
            d["moved"] = True
        action = d["action"]
        if action == "wl" and d["moved"]:
            w0, l0 = d["wl"]
            sens = max(w0, 1.0) / 300.0
            self.window_level.set(w0 + (x - sx) * sens, l0 - (y - sy) * sens)
        elif action == "cross":
            self.cursor_model.set(self.display_to_lps(x, y))
        elif action == "pan":
            a = self.display_to_plane(lx, ly)
            b = self.display_to_plane(x, y)
            self.pan_mm(*(b - a))
        elif action == "zoom":
            self.set_zoom(d["zoom"] * math.exp(-(y - sy) / 150.0))
        elif action == "draw":
            self._draw_move(x, y)
        elif action == "edit" and d["moved"]:
            self._edit_move(d, self.display_to_lps(x, y))
        elif action == "paint":
            p = self.display_to_lps(x, y)
            self._emit_stroke([d["paint_last"], p], finished=False)
            d["paint_last"] = p
        d["last"] = (x, y)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        d, self._drag = self._drag, None
        if d is None or self.geometry_ is None:
            return
        pos = ev.position()
        if d["action"] == "wl" and not d["moved"]:
            p = self.display_to_lps(pos.x(), pos.y())
            self.cursor_model.set(p)                                       # a click: crosshair
            if self.tool == "navigate" and self.volume is not None:
                key = self.findings.hit(np.floor(self.volume.lps_to_index(p) + 0.5).astype(int))
                if key is not None:
                    self.finding_clicked.emit(key)
        elif d["action"] == "paint":
            self._emit_stroke([self.display_to_lps(pos.x(), pos.y())], finished=True)
        elif d["action"] == "draw":
            self._draw_release(pos.x(), pos.y(), moved=d["moved"])
        elif d["action"] == "edit":
            self._edit_release(d, pos.x(), pos.y())

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
            self.scroll_slices(-notches)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        K = Qt.Key
        if key in (K.Key_PageUp, K.Key_Up, K.Key_Left):
            self.scroll_slices(-1)
        elif key in (K.Key_PageDown, K.Key_Down, K.Key_Right):
            self.scroll_slices(1)
        elif K.Key_1 <= key <= K.Key_9:
            # The open modality's presets (HU windows only on CT); the main window watches
            # its views and says when a key has no preset, a bare view just ignores it.
            order = preset_order(self.volume.modality if self.volume is not None else "")
            if key - K.Key_1 < len(order):
                self.apply_preset(order[key - K.Key_1])
        elif key == K.Key_0:
            self.apply_preset(AUTO)
        elif key == K.Key_R:
            self.reset_view()
        elif key == K.Key_BracketLeft:
            self.set_brush_radius_mm(self.brush_radius_mm / 1.25)
        elif key == K.Key_BracketRight:
            self.set_brush_radius_mm(self.brush_radius_mm * 1.25)
        elif key == K.Key_Escape:
            self._draft = None
            self._angle_stage = 0
            self._bidi_stage = 0
            self._update_measurements()
        else:
            ev.ignore()

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        ev.ignore()

    def enterEvent(self, ev: QEvent) -> None:
        pass

    def leaveEvent(self, ev: QEvent) -> None:
        if self._brush_xy is not None:
            self._brush_xy = None
            self._update_brush_cursor()
            self.request_render()
        if self.probe_text:
            self.probe_text = ""
            self._update_text()
            self.request_render()

    def _update_probe(self, x: float, y: float) -> None:
        """Voxel value under the mouse (nearest voxel, in the volume's units)."""
        vol = self.volume
        if vol is None or self.geometry_ is None:
            return
        idx = np.floor(vol.lps_to_index(self.display_to_lps(x, y)) + 0.5).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.array(vol.shape)):
            text = ""
        else:
            unit = value_unit(vol)
            value = float(vol.array[idx[0], idx[1], idx[2]])
            digits = 0 if value == int(value) else 1
            text = f"{value:.{digits}f} {unit}".strip()
        if text != self.probe_text:
            self.probe_text = text
            self._update_text()
            self.request_render()

    # -- drawing state machine: distance/ellipse/rectangle drag; angle drag then click.
    def _drafting(self) -> bool:
        """A measurement is half drawn (the angle's third point, a short axis to come)."""
        return self._draft is not None and (self._angle_stage == 2 or self._bidi_stage == 1)

    def _draw_press(self, x: float, y: float) -> None:
        p = self.display_to_lps(x, y)
        if self.tool == "angle" and self._draft is not None and self._angle_stage == 2:
            self._draft.points_lps[2] = p
            self._finish_draft()
            return
        if self._draft is not None and self._bidi_stage == 1:
            self._draft_anchor = p               # the short axis' drag starts here
            return
        n = {"angle": 3, "bidimensional": 4}.get(self.tool, 2)
        self._draft = self._make_measurement(self.tool, [p] * n)
        self._angle_stage = 1 if self.tool == "angle" else 0
        self._bidi_stage = 0
        self._update_measurements()

    def _draw_move(self, x: float, y: float) -> None:
        if self._draft is None:
            return
        p = self.display_to_lps(x, y)
        if self._draft.kind == "bidimensional":
            pts = self._draft.points_lps
            if self._bidi_stage == 1:
                self._draft.points_lps = bidimensional_from_drag(
                    pts[0], pts[1], self._draft_anchor, p, self._draft.normal)
            else:
                mid = (pts[0] + p) / 2.0
                self._draft.points_lps = [pts[0], p, mid, mid.copy()]
            self._draft.compute(None)
            self._update_measurements()
            return
        self._draft.points_lps[1] = p
        if self._draft.kind == "angle":
            self._draft.points_lps[2] = p
        self._draft.compute(None)
        self._update_measurements()

    def _draw_release(self, x: float, y: float, moved: bool) -> None:
        if self._draft is None:
            return
        if not moved:
            if not self._drafting():
                self._draft = None
                self._angle_stage = 0
                self._update_measurements()
            return
        self._draw_move(x, y)
        if self._draft.kind == "angle" and self._angle_stage == 1:
            self._angle_stage = 2          # the next click places the third point
            return
        if self._draft.kind == "bidimensional" and self._bidi_stage == 0:
            self._bidi_stage = 1           # the next drag draws the short axis
            return
        self._finish_draft()

    def _finish_draft(self) -> None:
        m, self._draft = self._draft, None
        self._angle_stage = 0
        self._bidi_stage = 0
        if m is None:
            return
        m.compute(self.volume)
        self.measurements.add(m)

    # -- editing drawn measurements: grab a handle or the line, drag, release saves.
    def measurement_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(index, handle) of the shown measurement under widget position (x, y).

        ``handle`` is the index in ``Measurement.handles()``, or -1 when the
        press is on the measurement's line (the whole measurement moves).
        Handles win over lines; the nearest wins among each.
        """
        g = self.geometry_
        if g is None:
            return None
        here = np.array([x, y])
        best: tuple[float, int, int] | None = None
        visible = self._visible_measurements()
        for i, m in visible:
            for h, pt in enumerate(m.handles()):
                dist = float(np.linalg.norm(np.array(self.lps_to_display(pt)) - here))
                if dist <= HANDLE_GRAB_PX and (best is None or dist < best[0]):
                    best = (dist, i, h)
        if best is not None:
            return best[1], best[2]
        for i, m in visible:
            for poly in shape_polylines(g, m):
                pts = [np.array(self.lps_to_display(g.to_lps(xy, self._offset))) for xy in poly]
                for a, b in itertools.pairwise(pts):
                    dist = _segment_distance(here, a, b)
                    if dist <= LINE_GRAB_PX and (best is None or dist < best[0]):
                        best = (dist, i, -1)
        return None if best is None else (best[1], best[2])

    def _edit_move(self, d: dict[str, Any], p: np.ndarray) -> None:
        m = self.measurements[d["index"]]
        m.points_lps = [q.copy() for q in d["points"]]       # from the grab: no drift
        if d["handle"] >= 0:
            # By the mouse's move, not to the mouse: a grab beside the handle does not jump.
            m.move_handle(d["handle"], m.handles()[d["handle"]] + (p - d["grab"]))
        else:
            m.translate(p - d["grab"])
        m.compute(None)                 # geometry now; ROI statistics once, on release
        self._drawn_measurements = None
        self._update_measurements()

    def _edit_release(self, d: dict[str, Any], x: float, y: float) -> None:
        index = d["index"]
        if d["moved"]:
            self._edit_move(d, self.display_to_lps(x, y))
            self.measurements[index].compute(self.volume)
            self.measurements.changed.emit()                  # the app saves the edit
        self.measurements.select(index)

    # ------------------------------------------------------------------ teardown
    def close_view(self) -> None:
        """Release the VTK render window (call before the widget is destroyed)."""
        self.set_volume(None)
        self.Finalize()


def _ray_box_entry(origin: np.ndarray, direction: np.ndarray,
                   boxes: Sequence[tuple[float, float, float, float]]) -> float:
    """Distance along a 2-D ray to the first box it enters (inf when none; 0 when inside)."""
    best = math.inf
    for x0, x1, y0, y1 in boxes:
        t_in, t_out = -math.inf, math.inf
        for o, d, lo, hi in ((origin[0], direction[0], x0, x1), (origin[1], direction[1], y0, y1)):
            if abs(d) < 1e-12:
                if not lo <= o <= hi:
                    t_in, t_out = math.inf, -math.inf
                continue
            a, b = (lo - o) / d, (hi - o) / d
            t_in, t_out = max(t_in, min(a, b)), min(t_out, max(a, b))
        if t_in <= t_out and t_out >= 0:
            best = min(best, max(t_in, 0.0))
    return best


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from point p to segment a–b (2-D)."""
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip((p - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _mouse_event(kind: QEvent.Type, x: float, y: float, button: Qt.MouseButton,
                 buttons: Qt.MouseButton,
                 modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> QMouseEvent:
    """A real QMouseEvent (tests send these through QApplication.sendEvent)."""
    p = QPointF(x, y)
    return QMouseEvent(kind, p, p, button, buttons, modifiers)
