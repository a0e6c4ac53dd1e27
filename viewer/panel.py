"""The whole viewing area: three linked slice views and a 3-D view in a layout.

``ViewerPanel`` owns the shared models (window/level, cursor, slab,
measurements) and hands them to its views, so a change made in one view
(crosshair, W/L, a new measurement) shows in all of them.

Views are made on first need (each one costs a GL context, a good part of the
start-up time): only those the layout or cells show, or a caller reaches through
``views()`` / ``slice_views()``. A layout chosen before any image arrives is
placed when one does, so a hanging rule applied with the first volume builds
only the cells it shows. A view made later is brought up to the panel's state
(volume, overlays, tool, toggles) first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGridLayout, QWidget

from core.projection import ProjectionImage
from core.volume import LabelMap, Volume
from viewer.brush import DEFAULT_RADIUS_MM, clamp_radius_mm
from viewer.findings import FindingsLayer
from viewer.measure import Measurement
from viewer.models import CursorModel, MeasurementList, SlabModel, WindowLevelModel
from viewer.overlay import OverlayStyle
from viewer.planes import PLANE_NAMES, central_voxel_lps
from viewer.presets import AUTO, PRESETS, RELATIVE_PRESETS, default_window
from viewer.slice_view import SliceView

if TYPE_CHECKING:  # imported where first made: neither is on the way to the first frame
    from viewer.projection_view import ProjectionView
    from viewer.volume_view import VolumeView3D

log = logging.getLogger(__name__)

LAYOUTS = ("1x1", "1x3", "2x2")
_AUTO_REFRESH_S = 0.5

V = TypeVar("V")


class LazyViews(Mapping[str, V], Generic[V]):
    """Name → view, each view built by ``make(name)`` on first access (``in``, ``len`` and
    iteration over the names build nothing; ``values()`` / ``items()`` build them all)."""

    def __init__(self, names: Sequence[str], make: Callable[[str], V]) -> None:
        self._names = tuple(names)
        self._make = make

    def __getitem__(self, name: str) -> V:
        if name not in self._names:
            raise KeyError(name)
        return self._make(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class ViewerPanel(QWidget):
    """Axial, coronal, sagittal slice views and a 3-D view sharing one cursor and window."""

    cursor_changed = Signal(object)            # np.ndarray LPS mm
    measurements_changed = Signal()
    window_level_changed = Signal(float, float)  # (width, level)
    layout_changed = Signal(str)
    paint_stroke = Signal(object)              # viewer.brush.PaintStroke
    finding_clicked = Signal(str)              # key of a finding clicked (navigate tool)
    message = Signal(str)                      # a refusal the window shows in its status bar
    view_made = Signal(object)                 # a slice or 3-D view just made (made lazily)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor(24, 24, 24))
        self.setPalette(pal)
        self.window_level = WindowLevelModel()
        self.cursor_model = CursorModel()
        self.slab = SlabModel()
        self.measurements = MeasurementList()
        self.volume: Volume | None = None
        self._overlays: dict[str, tuple[LabelMap, float]] = {}
        self._findings = FindingsLayer()
        self._preset_3d = "ct-bone"
        self._last_auto = 0.0
        self._layout_name = ""
        self._single = "axial"
        # A layout set before any image came: placed with the first one (_place_pending).
        self._pending_layout: tuple[str, str] | None = None
        # The views' shared state: a view made later starts from it (_new_slice_view).
        self._identity_visible = True
        self._crosshair_visible = True
        self._tool = "navigate"
        self._brush_radius_mm = DEFAULT_RADIUS_MM
        self._measurements_visible = True
        self._annotations_visible = True
        self._overlay_styles: dict[str, OverlayStyle] = {}
        # The three planes' views, made on first need (_plane_view).
        self._slice_views: dict[str, SliceView] = {}
        self._view3d: VolumeView3D | None = None
        # set_cells: (view, preset or None) per cell; views beyond the three planes'.
        self._cells: list[tuple[SliceView | VolumeView3D, str | None]] = []
        self._extra_views: list[SliceView] = []
        self._active_cell = 0
        self._syncing_cells = False   # a cell's zoom / pan being copied to the others
        # A 2-D image (set_projection): one ProjectionView over the whole grid, the
        # views it hid shown again when a volume (or nothing) replaces it.
        self._projection: ProjectionView | None = None
        self._hidden_by_projection: list[QWidget] = []
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.cursor_model.changed.connect(self.cursor_changed)
        self.window_level.changed.connect(self.window_level_changed)
        self.measurements.changed.connect(self.measurements_changed)
        self.set_layout("1x3")

    # ------------------------------------------------------------------ views and layout
    def views(self) -> Mapping[str, SliceView | VolumeView3D]:
        """"axial", "coronal", "sagittal" and "3d", each made on first access."""
        self._place_pending()
        return LazyViews((*PLANE_NAMES, "3d"), self._view_named)

    def slice_views(self) -> Mapping[str, SliceView]:
        """The three planes' views, each made on first access."""
        self._place_pending()
        return LazyViews(PLANE_NAMES, self._plane_view)

    def built_slice_views(self) -> dict[str, SliceView]:
        """The planes' views made so far (reaching them builds nothing)."""
        return dict(self._slice_views)

    def _view_named(self, name: str) -> SliceView | VolumeView3D:
        return self._ensure_3d() if name == "3d" else self._plane_view(name)

    def _plane_view(self, plane: str) -> SliceView:
        """The plane's own view (sharing the panel's window), made on first need."""
        view = self._slice_views.get(plane)
        if view is None:
            view = self._new_slice_view(plane, self.window_level)
            self._slice_views[plane] = view
            view.hide()
            self.view_made.emit(view)
        return view

    def _new_slice_view(self, plane: str, window_level: WindowLevelModel) -> SliceView:
        """A slice view sharing cursor, slab, measurements and findings, in the panel's state."""
        view = SliceView(plane, window_level=window_level, cursor=self.cursor_model,
                         slab=self.slab, measurements=self.measurements,
                         findings=self._findings, parent=self)
        view.paint_stroke.connect(self.paint_stroke)
        view.finding_clicked.connect(self.finding_clicked)
        view.brush_radius_changed.connect(self._sync_brush_radius)
        view.set_identity_visible(self._identity_visible)
        view.set_crosshair_visible(self._crosshair_visible)
        view.set_tool(self._tool)
        view.set_brush_radius_mm(self._brush_radius_mm)
        if not self._measurements_visible:
            view.set_measurements_visible(False)
        if not self._annotations_visible:
            self._show_annotations(view, False)
        if self.volume is not None:
            view.set_volume(self.volume)
        for name, (labels, opacity) in self._overlays.items():
            view.add_overlay(name, labels, opacity,
                             style=OverlayStyle(**vars(self._overlay_styles[name])))
        return view

    def built_view_3d(self) -> VolumeView3D | None:
        """The 3-D view if made yet (reaching it this way makes nothing)."""
        return self._view3d

    def _ensure_3d(self) -> VolumeView3D:
        if self._view3d is None:
            from viewer.volume_view import VolumeView3D

            self._view3d = VolumeView3D(window_level=self.window_level, parent=self)
            self._view3d.hide()
            # Scrolling the slices outranks refining the 3-D picture (volume_view).
            self.cursor_model.changed.connect(self._view3d.interrupt)
            self._view3d.apply_preset(self._preset_3d)
            if self.volume is not None:
                self._view3d.set_volume(self.volume)
            for name, (labels, _opacity) in self._overlays.items():
                self._view3d.add_overlay(name, labels)
            self.view_made.emit(self._view3d)
        return self._view3d

    def layout_name(self) -> str:
        return self._layout_name

    def set_layout(self, layout: str, single: str = "axial") -> None:
        """"1x1" (one plane, axial unless ``single`` says), "1x3" (ax/cor/sag), "2x2" (+3-D)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if single not in (*PLANE_NAMES, "3d"):
            raise ValueError(f"single view must be a plane name or '3d', got {single!r}")
        if self._refuse_layout_for_projection():
            return
        self._layout_name, self._single = layout, single
        if self.volume is None and not self._slice_views and self._view3d is None:
            # Nothing to show yet: the views wait for the first image (or a caller).
            self._pending_layout = (layout, single)
        else:
            self._place_layout(layout, single)
        self.layout_changed.emit(layout)

    def _place_layout(self, layout: str, single: str) -> None:
        self._pending_layout = None
        self._drop_cells()
        sv = LazyViews(PLANE_NAMES, self._plane_view)
        placed: list[tuple[QWidget, int, int]]
        if layout == "1x1":
            placed = [(self._ensure_3d() if single == "3d" else sv[single], 0, 0)]
        elif layout == "1x3":
            placed = [(sv["axial"], 0, 0), (sv["coronal"], 0, 1), (sv["sagittal"], 0, 2)]
        else:
            placed = [(sv["axial"], 0, 0), (sv["coronal"], 0, 1), (sv["sagittal"], 1, 0),
                      (self._ensure_3d(), 1, 1)]
        self._place(placed)

    def set_cells(self, cells: Sequence[tuple[str, str | None]],
                  grid: tuple[int, int] | None = None) -> None:
        """A layout given cell by cell: ``[(view, preset), …]`` filled row by row into ``grid``.

        ``view`` is a plane name or "3d" (once); ``preset`` a CT preset, "auto", or
        None / "default" for the series' default window. Each slice cell has its own
        window (a drag or a preset key changes that cell only); cursor, slab,
        measurements, findings and overlays stay shared. Cell 0, when a plane, is that
        plane's usual view and keeps the panel's shared window (``window_level``).
        """
        if not cells:
            raise ValueError("set_cells needs at least one cell")
        rows, cols = grid if grid is not None else (1, len(cells))
        if rows < 1 or cols < 1 or rows * cols < len(cells):
            raise ValueError(f"grid {rows}x{cols} has no room for {len(cells)} cells")
        for view_name, preset in cells:
            if view_name not in (*PLANE_NAMES, "3d"):
                raise ValueError(f"cell view must be a plane name or '3d', got {view_name!r}")
            if preset not in (None, "default", AUTO, *PRESETS, *RELATIVE_PRESETS):
                raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}, "
                                 f"{sorted(RELATIVE_PRESETS)}, 'auto' or 'default'")
        if [v for v, _p in cells].count("3d") > 1:
            raise ValueError("only one cell can show the 3-D view")
        if self._refuse_layout_for_projection():
            return
        self._pending_layout = None
        self._drop_cells()
        self._layout_name = "cells"
        placed: list[tuple[QWidget, int, int]] = []
        for n, (view_name, preset) in enumerate(cells):
            widget: SliceView | VolumeView3D
            if view_name == "3d":
                widget = self._ensure_3d()
            elif n == 0:
                widget = self._plane_view(view_name)
            else:
                widget = self._make_cell_view(view_name)
            widget.installEventFilter(self)
            if isinstance(widget, SliceView):
                widget.view_changed.connect(self._follow_cell_camera)
            self._cells.append((widget, None if preset in (None, "default") else preset))
            placed.append((widget, n // cols, n % cols))
        self._active_cell = 0
        self._place(placed)
        if self.volume is not None:
            self._apply_cell_windows()
        self.layout_changed.emit("cells")

    def cells(self) -> list[SliceView | VolumeView3D]:
        """The views of the cell layout, in cell order (empty unless ``set_cells`` is in use)."""
        return [w for w, _p in self._cells]

    def cell_window_levels(self) -> list[tuple[float, float]]:
        """(width, level) of each cell's window, in cell order."""
        return [(w.window_level.width, w.window_level.level) for w, _p in self._cells]

    def active_cell(self) -> int:
        """The cell a preset or window set from outside applies to (the last one clicked)."""
        return self._active_cell

    def set_active_cell(self, index: int) -> None:
        if not 0 <= index < max(1, len(self._cells)):
            raise IndexError(f"no cell {index}")
        self._active_cell = index

    def _active_window(self) -> WindowLevelModel:
        if self._cells:
            return self._cells[self._active_cell][0].window_level
        return self.window_level

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The cell last clicked, focused or typed in is the one the toolbar's preset applies to.
        if event.type() in (QEvent.Type.FocusIn, QEvent.Type.MouseButtonPress,
                            QEvent.Type.KeyPress):
            for n, (widget, _p) in enumerate(self._cells):
                if widget is watched:
                    self._active_cell = n
        return super().eventFilter(watched, event)

    def _follow_cell_camera(self) -> None:
        """Zoom or pan in one cell: the other cells of the same plane show the same part."""
        source = self.sender()
        if self._syncing_cells or not isinstance(source, SliceView) or source.volume is None:
            return
        self._syncing_cells = True
        try:
            cam = source.renderer.GetActiveCamera()
            sx, sy, _ = cam.GetFocalPoint()
            for widget, _p in self._cells:
                if (widget is source or not isinstance(widget, SliceView)
                        or widget.plane != source.plane or widget.volume is None):
                    continue
                widget.set_zoom(source.zoom_factor())
                fx, fy, _ = widget.renderer.GetActiveCamera().GetFocalPoint()
                widget.pan_mm(fx - sx, fy - sy)
        finally:
            self._syncing_cells = False

    def _make_cell_view(self, plane: str) -> SliceView:
        """A further slice view with its own window, sharing everything else with the panel."""
        view = self._new_slice_view(plane, WindowLevelModel())
        view.window_level.changed.connect(self.window_level_changed)
        self._extra_views.append(view)
        self.view_made.emit(view)
        return view

    def _apply_cell_windows(self) -> None:
        """Each slice cell's preset on its own window (None: the series' default window)."""
        if self.volume is None:
            return
        for widget, preset in self._cells:
            if not isinstance(widget, SliceView):
                continue
            model = widget.window_level
            if preset is None:
                if model is not self.window_level:   # the shared one was set by set_volume
                    w, lev = default_window(self.volume.modality, self.volume.array,
                                            self.volume.metadata)
                    model.set(w, lev, "" if self.volume.modality.upper() == "CT" else AUTO)
            else:
                model.apply_preset(preset, self.volume.array)

    def _drop_cells(self) -> None:
        """Empty the grid; the cell layout's extra views are closed."""
        for widget, _p in self._cells:
            widget.removeEventFilter(self)
            if isinstance(widget, SliceView):
                widget.view_changed.disconnect(self._follow_cell_camera)
        self._cells = []
        self._active_cell = 0
        for view in self._extra_views:
            self._grid.removeWidget(view)
            view.hide()
            view.close_view()
            view.deleteLater()
        self._extra_views = []
        for w in [*self._slice_views.values(), *([self._view3d] if self._view3d else [])]:
            self._grid.removeWidget(w)
            w.hide()
        for r in range(self._grid.rowCount()):
            self._grid.setRowStretch(r, 0)
        for c in range(self._grid.columnCount()):
            self._grid.setColumnStretch(c, 0)

    def _place(self, placed: list[tuple[QWidget, int, int]]) -> None:
        for w, r, c in placed:
            self._grid.addWidget(w, r, c)
            self._grid.setRowStretch(r, 1)
            self._grid.setColumnStretch(c, 1)
            w.show()
        if self.hasFocus() and placed:
            # The keys were given to the panel while its views waited (take_focus).
            placed[0][0].setFocus()
        for w, _r, _c in placed:
            if isinstance(w, SliceView) or w is self._view3d:
                w.request_render()

    def _all_slice_views(self) -> list[SliceView]:
        """Every slice view made so far: the planes' and the cell layout's extra ones."""
        return [*self._slice_views.values(), *self._extra_views]

    def awaiting_views(self) -> bool:
        """True while the layout waits for an image: no view is made or shown yet."""
        return self._pending_layout is not None

    def take_focus(self) -> None:
        """Keys to the panel until its views are placed, then to the first one placed."""
        self.setFocus()

    def _place_pending(self) -> None:
        """Place the layout that waited for an image (now that one came or a caller asks)."""
        # A 2-D image fills the panel: its views are made hidden, the layout still waits.
        if self._pending_layout is not None and self.projection_view() is None:
            self._place_layout(*self._pending_layout)

    def visible_view_names(self) -> list[str]:
        self._place_pending()
        built: dict[str, QWidget] = dict(self._slice_views)
        if self._view3d is not None:
            built["3d"] = self._view3d
        return [name for name in (*PLANE_NAMES, "3d")
                if name in built and built[name].isVisible()]

    # ------------------------------------------------------------------ volume
    def set_volume(self, volume: Volume) -> None:
        """Show a volume; its array may still be filling (then call ``refresh_slices``)."""
        self.clear()
        self.volume = volume
        width, level = default_window(volume.modality, volume.array, volume.metadata)
        preset = "" if volume.modality.upper() == "CT" else AUTO
        self.window_level.set(width, level, preset)
        self.cursor_model.set(central_voxel_lps(volume))
        if volume.modality.upper() != "CT" and self._preset_3d != "mip":
            self.set_3d_preset("mip")      # the other 3-D presets are in HU
        for view in self._all_slice_views():
            view.set_volume(volume)
        if self._view3d is not None:
            self._view3d.set_volume(volume)
        self._apply_cell_windows()
        self._last_auto = time.monotonic()
        if self._pending_layout is not None:
            # After the caller's own layout or cells for this volume (a hanging rule), if any.
            QTimer.singleShot(0, self, self._place_pending)

    def refresh_slices(self) -> None:
        """More slices of the loading volume arrived: redraw (the 3-D view waits for a pause)."""
        if self.volume is None:
            return
        now = time.monotonic()
        if now - self._last_auto > _AUTO_REFRESH_S:
            self._last_auto = now
            self._refresh_auto_windows()
        for view in self._all_slice_views():
            view.refresh()
        if self._view3d is not None:
            self._view3d.refresh()

    def loading_finished(self) -> None:
        """The whole series is in memory: final auto window, ROI stats and a 3-D upload now."""
        if self.volume is None:
            return
        self._refresh_auto_windows()
        for view in self._all_slice_views():
            view.refresh()
        if self._view3d is not None:
            self._view3d.refresh(delay_ms=0)
        for m in self.measurements.items():
            m.compute(self.volume)
        self.measurements.changed.emit()

    # ------------------------------------------------------------------ 2-D images
    def set_projection(self, image: ProjectionImage) -> ProjectionView:
        """Show a 2-D image (radiograph, ultrasound...) alone, filling the panel; the slice
        and 3-D views hide until ``set_volume`` or ``clear``. Layout changes are refused."""
        self.clear()
        if self._projection is None:
            from viewer.projection_view import ProjectionView

            self._projection = ProjectionView(window_level=self.window_level, parent=self)
            self._projection.measurements_changed.connect(self.measurements_changed)
            self._projection.set_identity_visible(self._identity_visible)
            self._projection.set_tool(self._tool)
        view = self._projection
        self._hidden_by_projection = [w for w in self.findChildren(QWidget)
                                      if w.parent() is self and w.isVisible() and w is not view]
        # Keys typed into a view keep going to a view (not to whatever Qt focuses next).
        had_focus = self.hasFocus() or any(w.hasFocus() for w in self._hidden_by_projection)
        for w in self._hidden_by_projection:
            w.hide()
        self._grid.addWidget(view, 0, 0, max(1, self._grid.rowCount()),
                             max(1, self._grid.columnCount()))
        view.show()
        view.set_image(image)
        if had_focus:
            view.setFocus()
        return view

    def projection_view(self) -> ProjectionView | None:
        """The 2-D view while a projection image is shown, else None."""
        p = self._projection
        return p if p is not None and p.image is not None else None

    def _leave_projection(self) -> None:
        p = self._projection
        if p is None or p.image is None:
            return
        p.set_image(None)
        had_focus = p.hasFocus()
        self._grid.removeWidget(p)
        for w in self._hidden_by_projection:
            w.show()
        p.hide()
        shown = [v for v in self._hidden_by_projection if isinstance(v, SliceView)]
        if had_focus and shown:
            shown[0].setFocus()
        self._hidden_by_projection = []

    def _refuse_layout_for_projection(self) -> bool:
        if self.projection_view() is None:
            return False
        self.message.emit("A 2-D image fills the viewer: layouts apply to volumes.")
        return True

    def clear(self) -> None:
        """Show nothing; forget overlays, findings and measurements."""
        self._leave_projection()
        self.volume = None
        self._overlays.clear()
        self._overlay_styles.clear()
        self._findings.set_findings([])
        self.measurements.replace_all([])
        for view in self._all_slice_views():
            view.set_volume(None)
        if self._view3d is not None:
            self._view3d.set_volume(None)

    def shutdown(self) -> None:
        """Release every VTK render window (call when the main window closes)."""
        for view in self._all_slice_views():
            view.close_view()
        if self._view3d is not None:
            self._view3d.close_view()
        if self._projection is not None:
            self._projection.close_view()

    def _refresh_auto_windows(self) -> None:
        """Windows still on "auto" follow the voxels that have arrived."""
        if self.volume is None:
            return
        for model in [self.window_level, *(v.window_level for v in self._extra_views)]:
            if model.preset == AUTO:
                model.apply_preset(AUTO, self.volume.array)

    # ------------------------------------------------------------------ display
    def set_preset(self, name: str) -> None:
        """A CT preset (brain … bone, see PRESETS) or "auto" (in a cell layout: the active
        cell's window only). A 2-D image takes "auto", "full range" or its file VOIs."""
        if (p := self.projection_view()) is not None:
            if not p.apply_preset(name):
                self.message.emit(f"{name}: not a window for a 2-D image "
                                  "(F cycles the file's windows, auto, full range)")
            return
        self._active_window().apply_preset(
            name, None if self.volume is None else self.volume.array)

    def set_window_level(self, width: float, level: float) -> None:
        if (p := self.projection_view()) is not None:
            p.set_window(level, width)
            return
        self._active_window().set(width, level)

    def window_level_values(self) -> tuple[float, float]:
        """The window of every view, or in a cell layout of the active cell."""
        if self.projection_view() is not None:
            return self.window_level.width, self.window_level.level
        model = self._active_window()
        return model.width, model.level

    def set_cursor_lps(self, lps: Sequence[float]) -> None:
        self.cursor_model.set(lps)

    def cursor_lps(self) -> np.ndarray:
        return self.cursor_model.lps

    def set_identity_visible(self, visible: bool) -> None:
        """The one toggle that hides patient name, ID and birth date in every view."""
        self._identity_visible = bool(visible)
        if self._projection is not None:
            self._projection.set_identity_visible(visible)
        for view in self._all_slice_views():
            view.set_identity_visible(visible)

    def set_crosshair_visible(self, visible: bool) -> None:
        """Show or hide the crosshair lines in every slice view (the cursor still moves)."""
        self._crosshair_visible = bool(visible)
        for view in self._all_slice_views():
            view.set_crosshair_visible(visible)

    def crosshair_visible(self) -> bool:
        return self._crosshair_visible

    def set_measurements_visible(self, visible: bool) -> None:
        """Measurements drawn in every 2-D view (hidden for an export without overlays)."""
        self._measurements_visible = bool(visible)
        views: list[Any] = [*self._all_slice_views()]
        if self._projection is not None:
            views.append(self._projection)
        for view in views:
            view.set_measurements_visible(visible)

    def set_annotations_visible(self, visible: bool) -> None:
        """Corner text, orientation letters and scale bar of every 2-D view (a clean
        export); the texts keep updating while hidden. Call ``render_now``/``grab_rgb``."""
        self._annotations_visible = bool(visible)
        views: list[Any] = [*self._all_slice_views(), self._projection]
        for view in views:
            self._show_annotations(view, visible)

    @staticmethod
    def _show_annotations(view: Any, visible: bool) -> None:
        annotations = getattr(view, "annotations", None)
        if annotations is None:
            return
        for actor in (*annotations.corner_actors.values(),
                      *annotations.letter_actors.values(), annotations.scale_actor,
                      annotations.scale_label):
            actor.SetVisibility(bool(visible))
        view.request_render()

    @property
    def tool(self) -> str:
        """The tool every 2-D view uses (``set_tool``)."""
        return self._tool

    def set_tool(self, tool: str) -> None:
        """"navigate", "crosshair", "distance", "angle", "ellipse", "rectangle", "bidimensional",
        "pan", "zoom", "brush", "eraser"."""
        self._tool = tool
        if self._projection is not None:
            self._projection.set_tool(tool)
        for view in self._all_slice_views():
            view.set_tool(tool)

    @property
    def brush_radius_mm(self) -> float:
        return self._brush_radius_mm

    def set_brush_radius_mm(self, radius_mm: float) -> None:
        """Brush / eraser radius in every slice view (also ``[`` / ``]`` in a view)."""
        self._brush_radius_mm = clamp_radius_mm(radius_mm)
        for view in self._all_slice_views():
            view.set_brush_radius_mm(radius_mm)

    def _sync_brush_radius(self, radius_mm: float) -> None:
        self.set_brush_radius_mm(radius_mm)

    # ------------------------------------------------------------------ findings and focus
    @property
    def findings_layer(self) -> FindingsLayer:
        """The findings model every slice view draws (set it after ``set_volume``)."""
        return self._findings

    def focus_on(self, lps: Sequence[float], extent_mm: float | None = None) -> None:
        """Bring an LPS point into view everywhere.

        Moves the crosshair there (every slice view scrolls to it), pans each
        slice view so the point is centred, zooms so ``extent_mm`` spans about
        a third of the view (a closer zoom is kept while the region fits), and aims
        the 3-D camera at it.
        """
        p = np.asarray(lps, dtype=np.float64)
        self.cursor_model.set(p)
        for view in self._all_slice_views():
            if extent_mm is not None:
                view.zoom_to_extent(float(extent_mm))
            view.centre_on(p)
        if self._view3d is not None:
            self._view3d.look_at(p)

    def set_slab(self, mode: str, thickness_mm: float) -> None:
        """Thick slab in every slice view: "none", "mip", "minip" or "mean", thickness in mm."""
        self.slab.set(mode, thickness_mm)

    def set_3d_preset(self, name: str) -> None:
        """"ct-bone", "ct-soft", "ct-lung" or "mip"."""
        self._preset_3d = name
        if self._view3d is not None:
            self._view3d.apply_preset(name)

    def reset_views(self) -> None:
        if (p := self.projection_view()) is not None:
            p.reset()
        for view in self._all_slice_views():
            view.reset_view()
        if self._view3d is not None:
            self._view3d.reset_view()

    # ------------------------------------------------------------------ overlays
    def add_label_overlay(self, name: str, labels: LabelMap, opacity: float = 0.45) -> None:
        """Label map as a translucent colour layer in the slice views, surfaces in 3-D."""
        self._overlays[name] = (labels, opacity)
        self._overlay_styles[name] = OverlayStyle(opacity=float(opacity))
        for view in self._all_slice_views():
            view.add_overlay(name, labels, opacity)
        if self._view3d is not None:
            self._view3d.add_overlay(name, labels)

    def remove_overlay(self, name: str) -> None:
        self._overlays.pop(name, None)
        self._overlay_styles.pop(name, None)
        for view in self._all_slice_views():
            view.remove_overlay(name)
        if self._view3d is not None:
            self._view3d.remove_overlay(name)

    def refresh_overlay(self, name: str) -> None:
        """The label map of overlay ``name`` was edited in place: redraw it."""
        for view in self._all_slice_views():
            view.refresh_overlay(name)
        if self._view3d is not None and name in self._overlays:
            self._view3d.add_overlay(name, self._overlays[name][0])

    def overlay_names(self) -> list[str]:
        return list(self._overlays)

    def overlay_style(self, name: str) -> OverlayStyle:
        return self._overlay_styles[name]

    def set_overlay_style(self, name: str, *, opacity: float | None = None,
                          fill: bool | None = None, outline: bool | None = None,
                          visible: bool | None = None) -> None:
        """Change overlay ``name``'s opacity (0–1), fill, outline or visibility in slice views."""
        old = self.overlay_style(name)
        new = OverlayStyle(
            opacity=old.opacity if opacity is None else float(np.clip(opacity, 0.0, 1.0)),
            fill=old.fill if fill is None else bool(fill),
            outline=old.outline if outline is None else bool(outline),
            visible=old.visible if visible is None else bool(visible))
        self._overlay_styles[name] = new
        for view in self._all_slice_views():
            view.set_overlay_style(name, OverlayStyle(**vars(new)))

    # ------------------------------------------------------------------ measurements
    def measurement_records(self) -> list[dict[str, Any]]:
        """JSON-able records: kind, view, LPS mm points, plane axes, stats, label (a 2-D
        image's distances: ``points_px`` (row, col) and ``frame`` instead of LPS)."""
        if (p := self.projection_view()) is not None:
            return p.measurement_records()
        return self.measurements.records()

    def load_measurement_records(self, records: list[dict[str, Any]]) -> None:
        """Replace the measurements with saved records (stats recomputed from the volume)."""
        if (p := self.projection_view()) is not None:
            p.load_records(records)
            return
        items = [Measurement.from_record(r) for r in records]
        if self.volume is not None:
            for m in items:
                m.compute(self.volume)
        self.measurements.replace_all(items)

    def select_measurement(self, index: int) -> None:
        """Highlight measurement ``index`` and move the cursor to it (its slice shows)."""
        if self.projection_view() is not None:
            return                     # a 2-D image's distances have no LPS to move to
        self.measurements.select(index)
        if index >= 0:
            self.cursor_model.set(self.measurements[index].centre_lps)

    def delete_measurement(self, index: int) -> None:
        if (p := self.projection_view()) is not None:
            p.delete_distance(index)
            return
        self.measurements.delete(index)
