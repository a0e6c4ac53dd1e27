"""3-D volume rendering of a Volume (GPU ray casting, software GL when no GPU).

Rotate with left drag, pan with middle drag, zoom with right drag or the
wheel, R resets, F draws one full-quality frame on request (blocking).
While the mouse moves the mapper samples coarsely (interactive level of
detail). Otherwise rendering is progressive: a coarse
frame at once, then finer frames one step at a time from a QTimer, so the
event loop runs between steps; a step predicted to block the GUI thread for
longer than ``REFINE_BUDGET_S`` is not taken on the GUI thread: the
full-quality frame is then drawn by a worker thread in an off-screen window
(``viewer.volume_worker``; VTK releases the GIL while it renders) and shown
as the background picture when it arrives, unless something changed in the
meantime (label surfaces are copied to it and drawn with the rays). A large
volume is drawn on the GUI thread from a half-resolution copy, so its upload
and coarse frames stay short. A GPU gets through all steps in milliseconds.
Any interaction, or
a scroll in the slice views (``interrupt``), cancels the pending steps. The
GPU ray-cast mapper draws a frame in one call and cannot abort it midway,
hence bounded steps and the worker rather than an abort check.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import vtkmodules.vtkInteractionStyle  # trackball style
import vtkmodules.vtkRenderingOpenGL2  # OpenGL backend
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (GPU ray cast)
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformFilter
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTexture,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper

from core.volume import LabelMap, Volume
from viewer.models import WindowLevelModel
from viewer.presets import VOLUME_PRESETS, VolumePreset
from viewer.volume_worker import FrameJob, FrameWorker, snapshot_camera
from viewer.vtkutil import index_space_image, label_lookup_table, render_window_rgb, vtk_matrix

log = logging.getLogger(__name__)

INTERACTIVE_SAMPLE_MM = 2.0
INTERACTIVE_IMAGE_SAMPLE = 3.0        # starting value; adapted to the measured frame time
#: The first coarse frame of a volume casts about this many rays whatever the view's size
#: (a 1400 × 900 view at 3.0 took 2.5 s on software GL); later frames adapt to their time.
FIRST_FRAME_RAYS = 40_000
INTERACTIVE_FRAME_S = 0.15            # aim for this frame time while the mouse moves
_MAX_IMAGE_SAMPLE = 8.0
#: Volumes of at least this many voxels are drawn on the GUI thread from a half-resolution
#: copy (8× less to upload: on software GL LIDC-IDRI-0001's 35 M voxels blocked the app
#: 4-5 s before its first frame); full quality comes from the worker's full-resolution frame.
PREVIEW_MIN_VOXELS = 16_000_000
_SUBMIT_DELAY_MS = 250
_EXPOSE_REDRAW_AFTER_S = 1.0
_FULL_QUALITY_DELAY_MS = 250         # quiet time after an interaction before refining
# Progressive refinement: (image sample distance, sample distance as a multiple of the
# full-quality one) from coarse to full; each step is one frame.
REFINE_STEPS: tuple[tuple[float, float], ...] = ((2.0, 1.5), (1.4, 1.0), (1.0, 1.0))
REFINE_BUDGET_S = 0.3                 # the longest a refinement step may block the GUI thread
_REFINE_STEP_DELAY_MS = 15            # the event loop runs between steps
_RESUME_AFTER_MS = 300                # refinement resumes once scrolling has paused this long
# A CT slice window whose top is below this is too narrow for a whole-volume MIP.
CT_MIP_MIN_TOP = 300.0
CT_MIP_WINDOW = (-350.0, 1150.0)
# Without an absolute scale (MR, PET …) the MIP window spans these percentiles of a
# maximum-intensity projection of the volume itself: the brightest rays keep detail.
MIP_LOW_PCT, MIP_HIGH_PCT = 5.0, 99.7
_MIP_SAMPLE_VOXELS = 8_000_000     # beyond this the projection is taken on a strided copy


def mip_percentile_window(volume: Volume) -> tuple[float, float]:
    """(low, high) of a MIP window from the volume's own intensities.

    A slice window (1st–99th percentile of voxels) saturates a MIP: every ray
    meets some of the brightest voxels (fat, vessels, contrast). The window is
    instead taken from a real projection, along the voxel axis nearest the
    anterior–posterior direction (the default 3-D view), so only the brightest
    ~0.3 % of projected rays reach white.
    """
    arr = np.asarray(volume.array)
    if arr.size == 0:
        return 0.0, 1.0
    axis = int(np.argmax(np.abs(volume.affine[1, :3])))        # voxel axis nearest A–P
    step = max(1, math.ceil((arr.size / _MIP_SAMPLE_VOXELS) ** 0.5))
    across = [slice(None, None, step) if d != axis else slice(None) for d in range(3)]
    projection = arr[tuple(across)].max(axis=axis).astype(np.float64)
    lo, hi = (float(v) for v in np.percentile(projection, [MIP_LOW_PCT, MIP_HIGH_PCT]))
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return lo, hi


class VolumeView3D(QVTKRenderWindowInteractor):
    """GPU ray-cast volume rendering with presets and interactive level of detail."""

    preset_changed = Signal(str)
    refined = Signal(int)      # progressive rendering finished at this step (-1: coarse)

    def __init__(self, *, window_level: WindowLevelModel | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_level = window_level if window_level is not None else WindowLevelModel()
        self.volume: Volume | None = None
        self.preset_name = "ct-bone"
        self.full_sample_mm = 1.0
        self.setMinimumSize(64, 64)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.GetRenderWindow().AddRenderer(self.renderer)
        self._style = vtkInteractorStyleTrackballCamera()
        self.SetInteractorStyle(self._style)
        self._style.AddObserver("StartInteractionEvent", self._on_start_interaction)
        self._style.AddObserver("EndInteractionEvent", self._on_end_interaction)

        self._image: Any = None
        self._source_array: Any = None
        self._mip_auto: tuple[float, float] | None = None     # cached mip_percentile_window
        self.mapper = vtkOpenGLGPUVolumeRayCastMapper()
        self.mapper.AutoAdjustSampleDistancesOff()
        self.mapper.SetLockSampleDistanceToInputSpacing(False)
        self.colour_tf = vtkColorTransferFunction()
        self.opacity_tf = vtkPiecewiseFunction()
        self.volume_property = vtkVolumeProperty()
        self.volume_property.SetColor(self.colour_tf)
        self.volume_property.SetScalarOpacity(self.opacity_tf)
        self.volume_property.SetInterpolationTypeToLinear()
        self.actor = vtkVolume()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(self.volume_property)
        self.actor.VisibilityOff()
        self.renderer.AddVolume(self.actor)
        self.interactive = False           # True while the mouse rotates/zooms
        self._overlays: dict[str, tuple[Any, ...]] = {}
        self.full_quality_frames = 0
        self.interactive_image_sample = INTERACTIVE_IMAGE_SAMPLE
        self.refine_step = -1              # the step of the frame on screen (-1: coarse)
        self.refine_budget_s = REFINE_BUDGET_S
        # Full quality beyond the budget comes from a worker thread (volume_worker).
        self.background_frames = True
        self._worker: FrameWorker | None = None
        self.preview_min_voxels = PREVIEW_MIN_VOXELS
        self._preview: vtkImageData | None = None
        self.on_preview = False            # the mapper draws the half-resolution copy
        # What the progressive rendering under way was started for: a paint event with the
        # same scene and size is only an expose (see paintEvent).
        self._scene_changed = True
        self._progressive_size: tuple[int, ...] = ()
        self._first_frame = True
        self._last_render_end = 0.0
        self._generation = 0               # bumped by every change: older frames are stale
        self._bg_texture: vtkTexture | None = None
        self._bg_image: vtkImageData | None = None
        self.last_frame_s = 0.0            # duration of the last frame rendered
        self._frame_start = 0.0
        rw = self.GetRenderWindow()
        rw.SetMultiSamples(0)     # MSAA buys nothing for ray casting and slows software GL
        rw.AddObserver("StartEvent", self._on_frame_start)
        rw.AddObserver("EndEvent", self._on_frame_end)

        # _full_timer: start progressive rendering (coalesces requests); _refine_timer: the
        # next step; _resume_timer: continue after an interruption (a scroll elsewhere).
        self._full_timer = QTimer(self)
        self._full_timer.setSingleShot(True)
        self._full_timer.timeout.connect(self._start_progressive)
        self._refine_timer = QTimer(self)
        self._refine_timer.setSingleShot(True)
        self._refine_timer.timeout.connect(self._refine_step)
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.timeout.connect(self._schedule_refinement)
        self._submit_timer = QTimer(self)
        self._submit_timer.setSingleShot(True)
        self._submit_timer.timeout.connect(self._submit_later)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self._apply_refresh)
        self.window_level.changed.connect(self._on_window_level)
        self.Initialize()
        self.apply_preset(self.preset_name)

    # ------------------------------------------------------------------ data
    def set_volume(self, volume: Volume | None) -> None:
        for name in list(self._overlays):
            self.remove_overlay(name)
        self.volume = volume
        self._mip_auto = None
        if volume is None:
            self._image = None
            self.mapper.RemoveAllInputs()
            self.actor.VisibilityOff()
            self.request_render()
            return
        spacing = volume.spacing_mm             # (k, j, i)
        self._source_array = volume.array
        self._image = index_space_image(volume.array)
        self._image.SetSpacing(float(spacing[2]), float(spacing[1]), float(spacing[0]))
        # User matrix: (i, j, k) mm along the voxel axes → LPS (handles any direction).
        a = volume.affine
        m = np.eye(4)
        m[:3, 0] = a[:3, 2] / spacing[2]
        m[:3, 1] = a[:3, 1] / spacing[1]
        m[:3, 2] = a[:3, 0] / spacing[0]
        m[:3, 3] = a[:3, 3]
        self._user_matrix = vtk_matrix(m)
        self.actor.SetUserMatrix(self._user_matrix)
        self._first_frame = True
        self._preview = None
        self._use_input()
        self.full_sample_mm = float(np.clip(np.min(spacing), 1.0, 2.0))
        self._set_quality(interactive=False)
        self.actor.VisibilityOn()
        self.apply_preset(self.preset_name)
        self.reset_view()

    def refresh(self, delay_ms: int = 1000) -> None:
        """The array changed in place; re-upload once loading pauses (debounced)."""
        if self._image is not None:
            self._refresh_timer.start(delay_ms)

    def _apply_refresh(self) -> None:
        vol = self.volume
        if vol is not None and self._image is not None and vol.array is not self._source_array:
            self.set_volume(vol)       # the loader replaced the array: wrap the new one
            return
        if self._image is not None:
            self._image.Modified()
            if self._preview is not None:        # more slices: a new copy
                self._preview = None
                self._use_input()
            if self._mip_auto is not None:           # more slices: a new projection
                self._mip_auto = None
                if VOLUME_PRESETS[self.preset_name].mip:
                    self._build_transfer_functions(VOLUME_PRESETS[self.preset_name])
            self.request_render()

    def _preview_wanted(self) -> bool:
        vol = self.volume
        return (vol is not None and self.background_frames
                and vol.array.size >= self.preview_min_voxels)

    def _use_input(self, full: bool = False) -> None:
        """Give the mapper the full volume or (large volumes, when the worker draws the
        full-quality frames) its half-resolution copy; only a change is re-uploaded."""
        if self._image is None or self.volume is None:
            return
        preview = not full and self._preview_wanted()
        if preview and self._preview is None:
            half = np.ascontiguousarray(self.volume.array[::2, ::2, ::2])
            self._preview = index_space_image(half)
            sx, sy, sz = self._image.GetSpacing()
            # Voxel 2n of the volume is voxel n of the copy: same origin, twice the step.
            self._preview.SetSpacing(2.0 * sx, 2.0 * sy, 2.0 * sz)
        target = self._preview if preview else self._image
        if self.mapper.GetInput() is not target:
            self.mapper.SetInputData(target)
        self.on_preview = preview

    # ------------------------------------------------------------------ label overlays
    def add_overlay(self, name: str, labels: LabelMap, opacity: float = 0.9) -> None:
        """Show a label map as coloured surfaces (one per label value) inside the volume."""
        self.remove_overlay(name)
        arr = np.asarray(labels.array)
        ranges = []
        for axes in ((1, 2), (0, 2), (0, 1)):
            hit = np.flatnonzero(arr.any(axis=axes))
            if hit.size == 0:
                return                          # nothing labelled: nothing to draw
            ranges.append((int(hit[0]), int(hit[-1]) + 1))
        (k0, k1), (j0, j1), (i0, i1) = ranges
        # Crop to the labelled box with a one-voxel zero border so every surface closes.
        values = np.pad(np.clip(arr[k0:k1, j0:j1, i0:i1], 0, 255).astype(np.uint8), 1)
        image = index_space_image(np.ascontiguousarray(values))
        surf = vtkDiscreteFlyingEdges3D()
        surf.SetInputData(image)
        present = [int(v) for v in np.unique(values) if v > 0]
        for n, v in enumerate(present):
            surf.SetValue(n, v)
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(surf.GetOutputPort())
        smooth.SetNumberOfIterations(12)
        smooth.NormalizeCoordinatesOn()
        lut = label_lookup_table(labels)
        # Index space of the crop → LPS: shift by the crop origin, then the label affine.
        # Baked into the points (not a user matrix): a mirroring affine, e.g. a
        # feet-first series, would otherwise turn the surfaces inside out.
        shift = np.eye(4)
        shift[:3, 3] = (i0 - 1, j0 - 1, k0 - 1)
        ijk_to_kji = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
        matrix = vtk_matrix(labels.affine @ ijk_to_kji @ shift)
        transform = vtkTransform()
        transform.SetMatrix(matrix)
        to_lps = vtkTransformFilter()
        to_lps.SetTransform(transform)
        to_lps.SetInputConnection(smooth.GetOutputPort())
        normals = vtkPolyDataNormals()
        normals.SetInputConnection(to_lps.GetOutputPort())
        normals.SplittingOff()
        normals.ConsistencyOn()
        normals.AutoOrientNormalsOn()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.SetLookupTable(lut)
        mapper.SetScalarRange(0, 255)
        mapper.SetScalarModeToUsePointData()
        mapper.SetColorModeToMapScalars()   # uint8 scalars would otherwise be taken as colours
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetOpacity(float(opacity))
        self.renderer.AddActor(actor)
        self._overlays[name] = (image, surf, smooth, lut, mapper, actor, matrix, transform,
                                to_lps, normals)
        self.request_render()

    def remove_overlay(self, name: str) -> None:
        parts = self._overlays.pop(name, None)
        if parts is not None:
            self.renderer.RemoveActor(parts[5])
            self.request_render()

    def overlay_names(self) -> list[str]:
        return list(self._overlays)

    # ------------------------------------------------------------------ presets
    def apply_preset(self, name: str) -> None:
        """One of ``VOLUME_PRESETS``: "ct-bone", "ct-soft", "ct-lung", "mip"."""
        if name not in VOLUME_PRESETS:
            raise ValueError(f"unknown 3-D preset {name!r}; choose from {sorted(VOLUME_PRESETS)}")
        self.preset_name = name
        p = VOLUME_PRESETS[name]
        self._build_transfer_functions(p)
        if p.mip:
            self.mapper.SetBlendModeToMaximumIntensity()
            self.volume_property.ShadeOff()
        else:
            self.mapper.SetBlendModeToComposite()
            self.volume_property.SetShade(p.shade)
            self.volume_property.SetAmbient(p.ambient)
            self.volume_property.SetDiffuse(p.diffuse)
            self.volume_property.SetSpecular(p.specular)
        self.preset_changed.emit(name)
        self.request_render()

    def _build_transfer_functions(self, p: VolumePreset) -> None:
        self.colour_tf.RemoveAllPoints()
        self.opacity_tf.RemoveAllPoints()
        if p.mip:
            lo, hi = self.mip_window()
            # White, with the window as opacity: over a black background the grey is the
            # windowed maximum, and surfaces (label overlays) show through dim rays.
            self.colour_tf.AddRGBPoint(lo, 1.0, 1.0, 1.0)
            self.colour_tf.AddRGBPoint(hi, 1.0, 1.0, 1.0)
            self.opacity_tf.AddPoint(lo, 0.0)
            self.opacity_tf.AddPoint(hi, 1.0)
            return
        for value, r, g, b in p.color_points:
            self.colour_tf.AddRGBPoint(value, r, g, b)
        for value, a in p.opacity_points:
            self.opacity_tf.AddPoint(value, a)

    def mip_window(self) -> tuple[float, float]:
        """(low, high) of the MIP grey ramp.

        CT: the slice window (HU mean the same in a slice and a projection) —
        except a window that ends below 300 HU (lung, brain, stroke): a
        whole-volume maximum through the chest wall or skull would be white
        everywhere, so MIP then shows vessels and bone (−350…1150 HU).
        Anything else (MR …): percentiles of the volume's own projection
        (:func:`mip_percentile_window`), never a slice window or CT numbers.
        """
        vol = self.volume
        if vol is not None and vol.modality.strip().upper() != "CT":
            if self._mip_auto is None:
                self._mip_auto = mip_percentile_window(vol)
            return self._mip_auto
        lo = self.window_level.level - self.window_level.width / 2.0
        hi = self.window_level.level + self.window_level.width / 2.0
        if vol is not None and hi < CT_MIP_MIN_TOP:
            return CT_MIP_WINDOW
        return lo, hi

    def _on_window_level(self, _w: float, _l: float) -> None:
        if VOLUME_PRESETS[self.preset_name].mip:
            self._build_transfer_functions(VOLUME_PRESETS[self.preset_name])
            self.request_render()

    # ------------------------------------------------------------------ camera
    def reset_view(self) -> None:
        """Anterior view (patient's left on screen right), superior up, whole volume."""
        cam = self.renderer.GetActiveCamera()
        self.renderer.ResetCamera()
        fx, fy, fz = cam.GetFocalPoint()
        dist = cam.GetDistance()
        cam.SetPosition(fx, fy - dist, fz)          # in front of the patient (−P = anterior)
        cam.SetViewUp(0.0, 0.0, 1.0)
        self.renderer.ResetCamera()
        cam.Zoom(1.4)        # ResetCamera fits the bounding sphere: too far for a box
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def look_at(self, lps: object) -> None:
        """Point the camera at an LPS point, keeping its direction, distance and zoom."""
        p = np.asarray(lps, dtype=np.float64)
        cam = self.renderer.GetActiveCamera()
        shift = p - np.array(cam.GetFocalPoint())
        cam.SetFocalPoint(*p)
        cam.SetPosition(*(np.array(cam.GetPosition()) + shift))
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def _set_quality(self, interactive: bool) -> None:
        if interactive:
            self._set_step(-1)
        else:
            self._set_step(len(REFINE_STEPS) - 1)

    def _step_sampling(self, step: int) -> tuple[float, float]:
        """(image sample distance, sample distance mm) of a refinement step (-1: coarse)."""
        if step < 0:
            return self.interactive_image_sample, max(INTERACTIVE_SAMPLE_MM, self.full_sample_mm)
        image_sample, factor = REFINE_STEPS[step]
        return image_sample, self.full_sample_mm * factor

    def _set_step(self, step: int) -> None:
        image_sample, sample_mm = self._step_sampling(step)
        self.mapper.SetImageSampleDistance(image_sample)
        self.mapper.SetSampleDistance(sample_mm)

    def _step_cost(self, step: int) -> float:
        """Relative cost of a step's frame: rays ∝ 1/image_sample², samples ∝ 1/distance."""
        image_sample, sample_mm = self._step_sampling(step)
        return 1.0 / (image_sample * image_sample * sample_mm)

    def _on_frame_start(self, _obj: Any, _event: str) -> None:
        self._frame_start = time.perf_counter()

    def _on_frame_end(self, _obj: Any, _event: str) -> None:
        """Time every frame; adapt the coarse sampling so interactive frames take
        ~INTERACTIVE_FRAME_S."""
        if self._frame_start == 0.0:
            return
        took = time.perf_counter() - self._frame_start
        self.last_frame_s = took
        self._last_render_end = time.perf_counter()
        if not self.interactive and self.refine_step != -1:
            return                         # coarse frames, moving or not, keep ~0.15 s
        factor = math.sqrt(max(took, 1e-3) / INTERACTIVE_FRAME_S)
        self.interactive_image_sample = float(np.clip(
            self.interactive_image_sample * min(max(factor, 0.7), 3.0), 1.0, _MAX_IMAGE_SAMPLE))

    def _on_start_interaction(self, _obj: Any, _event: str) -> None:
        self._stop_refinement()
        self._invalidate_frame()
        self.interactive = True
        self._set_quality(interactive=True)

    def _on_end_interaction(self, _obj: Any, _event: str) -> None:
        self.interactive = False           # the coarse frame stays until refinement starts
        self.refine_step = -1
        self._resume_timer.start(_FULL_QUALITY_DELAY_MS)

    # ------------------------------------------------------------------ rendering
    def request_render(self) -> None:
        """Draw progressively soon (requests in the same moment are coalesced)."""
        self._scene_changed = True  # a hidden view starts over when it is shown again
        if not self.isVisible():
            return
        self._full_timer.start(0)

    def interrupt(self) -> None:
        """Something else needs the GUI thread now (a slice scroll): drop the pending
        refinement steps and resume once it has been quiet for a moment."""
        if self._refine_timer.isActive() or self._resume_timer.isActive():
            self._refine_timer.stop()
            self._resume_timer.start(_RESUME_AFTER_MS)

    def paintEvent(self, ev: Any) -> None:
        if self._image is None or self.interactive:
            self._Iren.Render()
            return
        size = tuple(self.GetRenderWindow().GetSize())
        if not self._scene_changed and size == self._progressive_size:
            # An expose (uncovered, or repainted after a long frame): the scene is the same,
            # so draw what is current and keep the refinement and the full-quality frame
            # under way (restarting here threw away a software-GL frame of ~10 s). Showing
            # the view sends two of these right after its first frame: that frame is on
            # screen, so they cost nothing (each redraw was another 2.5 s on software GL).
            if time.perf_counter() - self._last_render_end > _EXPOSE_REDRAW_AFTER_S:
                self._Iren.Render()
            return
        self._start_progressive()

    def _stop_refinement(self) -> None:
        self._full_timer.stop()
        self._refine_timer.stop()
        self._resume_timer.stop()
        self._submit_timer.stop()

    def _start_progressive(self) -> None:
        """A coarse frame now, then the refinement steps from the event loop."""
        self._stop_refinement()
        self._invalidate_frame()
        if not self.isVisible():
            return
        self._scene_changed = False
        self._progressive_size = tuple(self.GetRenderWindow().GetSize())
        if self._first_frame:  # a new volume: a cheap first picture at any view size
            self._first_frame = False
            w, h = self._progressive_size[:2]
            self.interactive_image_sample = float(np.clip(
                math.sqrt(max(w * h, 1) / FIRST_FRAME_RAYS), INTERACTIVE_IMAGE_SAMPLE,
                _MAX_IMAGE_SAMPLE))
        self._use_input()  # back to the copy after a full-resolution picture (render_now)
        self._render_step(-1)
        self._schedule_refinement()

    def _render_step(self, step: int) -> None:
        self._set_step(step)
        self.refine_step = step
        self._Iren.Render()
        if step == len(REFINE_STEPS) - 1:
            self.full_quality_frames += 1

    def _next_step(self) -> int | None:
        """The next refinement step worth drawing within the budget, or None."""
        current = self.refine_step
        # On the half-resolution copy the last step is the worker's full-resolution frame.
        last = len(REFINE_STEPS) - 1 if self.on_preview else len(REFINE_STEPS)
        for step in range(current + 1, last):
            if self._step_cost(step) <= self._step_cost(current) * 1.01:
                continue                   # no finer than what is shown (a fine coarse level)
            predicted = self.last_frame_s * self._step_cost(step) / self._step_cost(current)
            return step if predicted <= self.refine_budget_s else None
        return None

    def _schedule_refinement(self) -> None:
        if self._image is None or self.interactive or not self.isVisible():
            return
        if self._next_step() is None:
            if self.refine_step < len(REFINE_STEPS) - 1 and self._can_submit():
                # A moment later: the expose paint that often follows the first frame is
                # drawn before the worker's upload competes with it for the CPU.
                self._submit_timer.start(_SUBMIT_DELAY_MS)
                return                     # refined is emitted when the frame arrives
            self.refined.emit(self.refine_step)
            return
        self._refine_timer.start(_REFINE_STEP_DELAY_MS)

    # -- full-quality frames from the worker thread, shown as the background picture
    def _invalidate_frame(self) -> None:
        """The scene changes: frames under way are stale; show the volume itself again."""
        self._generation += 1
        if self._worker is not None:
            self._worker.cancel(self._generation)
        if self._bg_texture is not None:
            self.renderer.TexturedBackgroundOff()
            self.actor.SetVisibility(self._image is not None)
            for parts in self._overlays.values():
                parts[5].VisibilityOn()

    def _can_submit(self) -> bool:
        return self.background_frames and self._image is not None

    def _surfaces(self) -> list[tuple[Any, Any, float]]:
        """Copies of the label surfaces for the worker, which depth-mixes them with the
        rays in its own frame: (polydata, lookup table, opacity)."""
        out = []
        for parts in self._overlays.values():
            lut, actor, normals = parts[3], parts[5], parts[9]
            normals.Update()
            poly = vtkPolyData()
            poly.DeepCopy(normals.GetOutput())
            table = vtkLookupTable()
            table.DeepCopy(lut)
            out.append((poly, table, float(actor.GetProperty().GetOpacity())))
        return out

    def _submit_later(self) -> None:
        if not self.interactive and self.isVisible():
            self._submit_background_frame()

    def _submit_background_frame(self) -> bool:
        if not self._can_submit():
            return False
        if self._worker is None:
            self._worker = FrameWorker()
            self._worker.frame_ready.connect(self._on_background_frame)
        colour, opacity = vtkColorTransferFunction(), vtkPiecewiseFunction()
        colour.DeepCopy(self.colour_tf)
        opacity.DeepCopy(self.opacity_tf)
        matrix = vtkMatrix4x4()
        matrix.DeepCopy(self._user_matrix)
        p = VOLUME_PRESETS[self.preset_name]
        w, h = self.GetRenderWindow().GetSize()
        self._worker.submit(FrameJob(
            generation=self._generation, image=self._image, user_matrix=matrix,
            colour=colour, opacity=opacity, mip=p.mip, shade=p.shade,
            lighting=(p.ambient, p.diffuse, p.specular), sample_mm=self.full_sample_mm,
            camera=snapshot_camera(self.renderer.GetActiveCamera()), size=(int(w), int(h)),
            surfaces=self._surfaces()))
        return True

    def _on_background_frame(self, generation: int, rgb: np.ndarray) -> None:
        w, h = self.GetRenderWindow().GetSize()
        if (generation != self._generation or self.interactive or not self.isVisible()
                or self._image is None or rgb.shape[:2] != (h, w)):
            return
        data = vtkImageData()
        data.SetDimensions(w, h, 1)
        flat = np.ascontiguousarray(rgb[::-1]).reshape(-1, 3)
        scalars = numpy_support.numpy_to_vtk(flat, deep=True)
        scalars.SetNumberOfComponents(3)
        data.GetPointData().SetScalars(scalars)
        if self._bg_texture is None:
            self._bg_texture = vtkTexture()
            self._bg_texture.InterpolateOff()
        self._bg_texture.SetInputData(data)
        self._bg_image = data
        self.renderer.SetBackgroundTexture(self._bg_texture)
        self.renderer.TexturedBackgroundOn()
        self.actor.VisibilityOff()  # the frame holds the volume and the surfaces
        for parts in self._overlays.values():
            parts[5].VisibilityOff()
        self._Iren.Render()
        self.refine_step = len(REFINE_STEPS) - 1
        self.full_quality_frames += 1
        self.refined.emit(self.refine_step)

    def _refine_step(self) -> None:
        step = self._next_step()
        if step is None or self.interactive or not self.isVisible():
            return
        self._render_step(step)
        self._schedule_refinement()

    def render_now(self) -> None:
        """Render one full-quality frame now (blocking: for pictures, not for viewing)."""
        self._stop_refinement()
        self._invalidate_frame()
        self._use_input(full=True)
        self._set_quality(interactive=False)
        self.GetRenderWindow().Render()
        self.refine_step = len(REFINE_STEPS) - 1
        self.full_quality_frames += 1

    def grab_rgb(self) -> np.ndarray:
        """The rendered view as an (h, w, 3) uint8 array, top row first."""
        self.render_now()
        return render_window_rgb(self.GetRenderWindow())

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_R:
            self.reset_view()
            return
        if ev.key() == Qt.Key.Key_F:
            self.render_now()          # the reader asked for it: worth the wait
            return
        ev.ignore()     # VTK's own key bindings (wireframe, stereo, quit …) stay off

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        ev.ignore()

    def close_view(self) -> None:
        self._stop_refinement()
        self._invalidate_frame()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._refresh_timer.stop()
        self.set_volume(None)
        self.Finalize()
