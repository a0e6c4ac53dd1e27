"""Small numpy ↔ VTK helpers shared by the views."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkRenderingCore import (
    vtkRenderWindow,
    vtkTextProperty,
    vtkTextRenderer,
    vtkWindowToImageFilter,
)

from core.volume import LabelMap

log = logging.getLogger(__name__)


def index_space_image(array_kji: npt.NDArray[Any]) -> vtkImageData:
    """vtkImageData in index space (origin 0, spacing 1, x=i, y=j, z=k) sharing memory.

    A C-contiguous array is shared, so later in-place writes (a series still
    loading) show up after ``Modified()`` on the image; others are copied.
    """
    arr = array_kji
    if not arr.flags.c_contiguous:
        log.info("voxel array is not C-contiguous; showing a copy (in-place updates are lost)")
        arr = np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    k, j, i = arr.shape
    image = vtkImageData()
    image.SetDimensions(int(i), int(j), int(k))
    image.SetOrigin(0.0, 0.0, 0.0)
    image.SetSpacing(1.0, 1.0, 1.0)
    vtk_array = numpy_support.numpy_to_vtk(arr.reshape(-1), deep=False)
    vtk_array.SetName("scalars")
    image.GetPointData().SetScalars(vtk_array)
    # numpy_to_vtk keeps a reference, but hold one on the image too for clarity.
    image._lucida_array = arr  # type: ignore[attr-defined]
    return image


def vtk_matrix(m: npt.ArrayLike) -> vtkMatrix4x4:
    """vtkMatrix4x4 from a 4×4 array."""
    a = np.asarray(m, dtype=np.float64)
    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(a[r, c]))
    return out


def set_vtk_matrix(target: vtkMatrix4x4, m: npt.ArrayLike) -> None:
    a = np.asarray(m, dtype=np.float64)
    target.DeepCopy(a.ravel().tolist())


def background_value(dtype: np.dtype[Any]) -> float:
    """A value below anything real, shown black outside the volume."""
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).min)
    return -1.0e6


def render_window_rgb(window: vtkRenderWindow) -> npt.NDArray[np.uint8]:
    """The back buffer of a rendered window as (h, w, 3) uint8, top row first."""
    f = vtkWindowToImageFilter()
    f.SetInput(window)
    f.ReadFrontBufferOff()
    f.Update()
    out = f.GetOutput()
    w, h, _ = out.GetDimensions()
    arr = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars())
    return np.ascontiguousarray(arr.reshape(h, w, -1)[::-1, :, :3])


# Label values without a name still show, in this neutral orange (RGBA).
UNNAMED_LABEL_RGBA = (1.0, 0.4, 0.1, 1.0)


def label_lookup_table(labels: LabelMap) -> vtkLookupTable:
    """Colours of label values 0–255: 0 transparent, named labels their colour."""
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    lut.SetTableRange(0, 255)
    lut.SetTableValue(0, 0.0, 0.0, 0.0, 0.0)
    for v in range(1, 256):
        lut.SetTableValue(v, *UNNAMED_LABEL_RGBA)
    for lab in labels.labels:
        if 0 < lab.value < 256:
            lut.SetTableValue(int(lab.value), *(c / 255.0 for c in lab.color_rgb), 1.0)
    lut.Build()
    return lut


def fit_text_lines(lines: list[str], prop: vtkTextProperty, max_px: int, dpi: int) -> str:
    """Join ``lines``, each cut to at most ``max_px`` wide (measured by VTK's own text
    renderer, as it will be drawn) and ended with "…" where cut: two corner texts of a
    narrow view then stop short of each other instead of overprinting."""
    renderer = vtkTextRenderer.GetInstance()
    box = [0, 0, 0, 0]

    def width(text: str) -> int:
        renderer.GetBoundingBox(prop, text, box, dpi)
        return int(box[1] - box[0])

    out = []
    for line in lines:
        if not line:
            continue
        if width(line) <= max_px:
            out.append(line)
            continue
        lo, hi = 0, len(line) - 1  # longest prefix that fits with the ellipsis
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if width(line[:mid].rstrip() + "…") <= max_px:
                lo = mid
            else:
                hi = mid - 1
        out.append(line[:lo].rstrip() + "…")
    return "\n".join(out)


class DeferredRender:
    """Rendering of a 2-D view (``QVTKRenderWindowInteractor``): requests made in one
    event-loop turn are drawn once, and only while the view is shown."""

    _render_pending = False
    # False: the view skipped ``Initialize()`` when it was made, so its GL context (and
    # the empty frame Initialize draws) comes with its first draw: a layout's later views
    # then cost nothing before the first one is on screen (start-up, issue 19).
    _gl_ready = True

    def ensure_gl(self) -> bool:
        """Initialize the interactor (which draws a frame) if not yet; True when it did."""
        if self._gl_ready:
            return False
        self._gl_ready = True
        self.Initialize()  # type: ignore[attr-defined]
        return True

    def paintEvent(self, ev: Any) -> None:
        if not self.ensure_gl():  # the first paint's frame is Initialize's own
            super().paintEvent(ev)  # type: ignore[misc]

    def request_render(self) -> None:
        """Render soon (coalesced with other requests in the same event-loop turn)."""
        from PySide6.QtCore import QTimer

        if not self._render_pending:
            self._render_pending = True
            QTimer.singleShot(0, self, self._deferred_render)  # type: ignore[call-overload]

    def _deferred_render(self) -> None:
        self._render_pending = False
        if self.isVisible():  # type: ignore[attr-defined]
            self.render_now()

    def render_now(self) -> None:
        if not self.ensure_gl():
            self.GetRenderWindow().Render()  # type: ignore[attr-defined]

    def grab_rgb(self) -> np.ndarray:
        """The rendered view as an (h, w, 3) uint8 array, top row first."""
        self.render_now()
        return render_window_rgb(self.GetRenderWindow())  # type: ignore[attr-defined]
