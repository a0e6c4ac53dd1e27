"""Full-quality 3-D frames rendered off the GUI thread, in an off-screen window of their own.

On software GL a full-quality ray-cast frame takes seconds; drawn on the GUI
thread it freezes the app. VTK releases the GIL while it renders, so a worker
thread with its own off-screen render window (its own GL context) draws the
frame while the event loop keeps running; the view then shows the finished
picture. The worker owns every GL object it renders with; the GUI thread only
hands it copies of the scene (``FrameJob``) and receives RGB arrays through a
queued Qt signal. A job that is superseded before it starts is skipped; one
already rendering finishes and its result is dropped by the view.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkCamera,
    vtkColorTransferFunction,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper

from viewer.vtkutil import render_window_rgb

log = logging.getLogger(__name__)


@dataclass
class FrameJob:
    """Everything a full-quality frame depends on, copied on the GUI thread."""

    generation: int
    image: Any                      # vtkImageData (shared, read only)
    user_matrix: vtkMatrix4x4
    colour: vtkColorTransferFunction
    opacity: vtkPiecewiseFunction
    mip: bool
    shade: bool
    lighting: tuple[float, float, float]     # ambient, diffuse, specular
    sample_mm: float
    camera: vtkCamera
    size: tuple[int, int]
    #: Label surfaces, copied: (polydata, lookup table, opacity), drawn with the rays.
    surfaces: list[tuple[Any, Any, float]] = field(default_factory=list)


def snapshot_camera(cam: vtkCamera) -> vtkCamera:
    out = vtkCamera()
    out.DeepCopy(cam)
    return out


class FrameWorker(QObject):
    """One background thread per 3-D view; ``frame_ready(generation, rgb)`` on the GUI thread."""

    frame_ready = Signal(int, object)

    def __init__(self) -> None:
        super().__init__()
        self._jobs: queue.Queue[FrameJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lucida-3d-frames", daemon=True)
        self._latest = -1
        self._lock = threading.Lock()
        self._thread.start()

    def submit(self, job: FrameJob) -> None:
        with self._lock:
            self._latest = job.generation
        self._jobs.put(job)

    def cancel(self, generation: int) -> None:
        """Jobs older than ``generation`` that have not started are skipped."""
        with self._lock:
            self._latest = max(self._latest, generation)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout_s)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        window: vtkRenderWindow | None = None
        renderer = vtkRenderer()
        mapper = vtkOpenGLGPUVolumeRayCastMapper()
        mapper.AutoAdjustSampleDistancesOff()
        mapper.SetLockSampleDistanceToInputSpacing(False)
        mapper.SetImageSampleDistance(1.0)
        prop = vtkVolumeProperty()
        prop.SetInterpolationTypeToLinear()
        actor = vtkVolume()
        actor.SetMapper(mapper)
        actor.SetProperty(prop)
        renderer.AddVolume(actor)
        renderer.SetBackground(0.0, 0.0, 0.0)
        image: Any = None
        surface_actors: list[vtkActor] = []
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                with self._lock:
                    stale = job.generation < self._latest
                if stale:
                    continue
                if window is None:
                    window = vtkRenderWindow()
                    window.SetOffScreenRendering(1)
                    window.SetMultiSamples(0)
                    window.AddRenderer(renderer)
                if job.image is not image:
                    image = job.image
                    mapper.SetInputData(image)
                window.SetSize(*job.size)
                actor.SetUserMatrix(job.user_matrix)
                prop.SetColor(job.colour)
                prop.SetScalarOpacity(job.opacity)
                if job.mip:
                    mapper.SetBlendModeToMaximumIntensity()
                    prop.ShadeOff()
                else:
                    mapper.SetBlendModeToComposite()
                    prop.SetShade(job.shade)
                    prop.SetAmbient(job.lighting[0])
                    prop.SetDiffuse(job.lighting[1])
                    prop.SetSpecular(job.lighting[2])
                mapper.SetSampleDistance(job.sample_mm)
                for old in surface_actors:
                    renderer.RemoveActor(old)
                surface_actors = [_surface_actor(*s) for s in job.surfaces]
                for new in surface_actors:
                    renderer.AddActor(new)
                renderer.SetActiveCamera(job.camera)
                renderer.ResetCameraClippingRange()
                window.Render()
                rgb = render_window_rgb(window)
                self.frame_ready.emit(job.generation, np.ascontiguousarray(rgb))
        except Exception:  # a failed background frame leaves the refined preview on screen
            log.exception("background 3-D frame failed")
        finally:
            if window is not None:
                window.Finalize()


def _surface_actor(poly: Any, table: Any, opacity: float) -> vtkActor:
    """A label surface as the 3-D view draws it (labels coloured by the table)."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.SetLookupTable(table)
    mapper.SetScalarRange(0, 255)
    mapper.SetScalarModeToUsePointData()
    mapper.SetColorModeToMapScalars()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetOpacity(opacity)
    return actor
