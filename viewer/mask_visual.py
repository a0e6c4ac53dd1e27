"""Thin VTK visual of one mask on one slice view: translucent fill + smooth outline.

The mask (a finding's crop, or a label map on its own grid) is resliced in
the view's plane at the view's sampling (half of it for small boxes), so a
mask on a coarse model grid is drawn at the source image's resolution;
binary masks are interpolated linearly and cut at 0.5, which puts the fill
edge and the outline on the mask border instead of on blocky voxel steps.
Outlines come from a 2-D contour filter, are smoothed (Chaikin corner
cutting) and, for dashed styles, split into dash segments (OpenGL line
stipple is gone from core profiles).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import VTK_FLOAT, vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkFlyingEdges2D, vtkStripper
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges2D
from vtkmodules.vtkImagingCore import vtkImageMapToColors, vtkImageReslice
from vtkmodules.vtkRenderingCore import vtkActor, vtkImageActor, vtkPolyDataMapper, vtkRenderer

from viewer import planes
from viewer.vtkutil import set_vtk_matrix

FloatArray = npt.NDArray[np.float64]

Z_FILL, Z_OUTLINE = 0.5, 0.6
_MAX_FINE_SAMPLES = 250_000          # boxes up to this many samples are resliced at 3× density


def chaikin(points: FloatArray, closed: bool, iterations: int = 2) -> FloatArray:
    """Corner-cutting smoothing of a polyline (closed loops stay closed, ends stay put)."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        if len(p) < 3:
            return p
        if closed:
            q = np.roll(p, -1, axis=0)
            out = np.empty((2 * len(p), p.shape[1]))
            out[0::2] = 0.75 * p + 0.25 * q
            out[1::2] = 0.25 * p + 0.75 * q
        else:
            a, b = p[:-1], p[1:]
            mid = np.empty((2 * len(a), p.shape[1]))
            mid[0::2] = 0.75 * a + 0.25 * b
            mid[1::2] = 0.25 * a + 0.75 * b
            out = np.vstack([p[:1], mid, p[-1:]])
        p = out
    return p


def _dedupe(points: FloatArray, closed: bool, eps: float = 1e-4) -> FloatArray:
    """Drop consecutive (near-)duplicate points, which would make zero-length segments."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return p
    keep = np.ones(len(p), bool)
    keep[1:] = np.linalg.norm(np.diff(p, axis=0), axis=1) > eps
    p = p[keep]
    if closed and len(p) > 1 and np.linalg.norm(p[0] - p[-1]) <= eps:
        p = p[:-1]
    return p


def dash_polyline(points: FloatArray, closed: bool, dash: float, gap: float) -> list[FloatArray]:
    """Split a polyline into dash pieces of arc length ``dash`` separated by ``gap``."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.vstack([p, p[:1]])
    if len(p) < 2 or dash <= 0:
        return [p]
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1])
    period = dash + gap
    out: list[FloatArray] = []
    start = 0.0
    while start < total:
        end = min(start + dash, total)
        inner = (s > start) & (s < end)
        ts = np.concatenate([[start], s[inner], [end]])
        xs = np.stack([np.interp(ts, s, p[:, c]) for c in range(p.shape[1])], axis=1)
        out.append(xs)
        start += period
    return out


def polylines_to_polydata(lines: list[FloatArray], z: float) -> vtkPolyData:
    """A vtkPolyData of 2-D polylines placed at height ``z``."""
    n = sum(len(line) for line in lines)
    xyz = np.empty((n, 3))
    cells = vtkCellArray()
    i = 0
    for line in lines:
        m = len(line)
        xyz[i: i + m, :2] = line[:, :2]
        cells.InsertNextCell(m)
        for k in range(i, i + m):
            cells.InsertCellPoint(k)
        i += m
    xyz[:, 2] = z
    pts = vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(xyz, deep=True))
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(cells)
    return poly


def stripped_polylines(poly: vtkPolyData) -> list[tuple[FloatArray, bool, float]]:
    """(points N×2, closed, scalar at the first point) of each polyline of ``poly``."""
    if poly is None or poly.GetNumberOfPoints() == 0:
        return []
    xyz = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    scal_arr = poly.GetPointData().GetScalars()
    scal = numpy_support.vtk_to_numpy(scal_arr) if scal_arr is not None else None
    conn = numpy_support.vtk_to_numpy(poly.GetLines().GetConnectivityArray())
    offs = numpy_support.vtk_to_numpy(poly.GetLines().GetOffsetsArray())
    out = []
    for a, b in itertools.pairwise(offs):
        ids = conn[a:b]
        if len(ids) < 2:
            continue
        closed = bool(ids[0] == ids[-1]) and len(ids) > 3
        if closed:
            ids = ids[:-1]
        value = float(scal[ids[0]]) if scal is not None else 0.0
        out.append((xyz[ids, :2], closed, value))
    return out


@dataclass
class MaskStyle:
    """How a mask looks: fill opacity (0 = none), outline colour/width/dash in screen px."""

    visible: bool = True
    fill_opacity: float = 0.0
    outline: bool = True
    outline_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    line_width: float = 1.5
    dash_px: tuple[float, float] | None = None     # (dash, gap) or None for solid


class MaskSliceVisual:
    """Fill image actor + outline actor of one mask in one slice view.

    ``image`` is the mask in VTK index space (x=i, y=j, z=k) of the grid
    ``affine_kji``; ``binary_value`` is the label value of a binary mask
    (linear, smooth), or None for a multi-label map drawn with ``lut``
    (nearest neighbour, discrete contours coloured by ``label_rgb``).
    """

    def __init__(self, renderer: vtkRenderer, image: vtkImageData,
                 affine_kji: FloatArray, corners_lps: FloatArray | None, *,
                 binary_value: float | None, lut: vtkLookupTable | None = None,
                 label_rgb: dict[int, tuple[float, float, float]] | None = None) -> None:
        self.renderer = renderer
        self.image = image
        self.affine = np.asarray(affine_kji, dtype=np.float64)
        self.corners_lps = corners_lps
        self.binary_value = binary_value
        self.label_rgb = label_rgb or {}
        self.style = MaskStyle()
        self._lines: list[tuple[FloatArray, bool, float]] = []
        self._shown = False
        self._matrix = vtkMatrix4x4()
        self.reslice = vtkImageReslice()
        self.reslice.SetInputData(image)
        self.reslice.SetOutputDimensionality(2)
        self.reslice.SetResliceAxes(self._matrix)
        self.reslice.SetBackgroundLevel(0)
        if binary_value is not None:
            self.reslice.SetInterpolationModeToLinear()
            self.reslice.SetOutputScalarType(VTK_FLOAT)
            lut = vtkLookupTable()
            lut.SetNumberOfTableValues(2)
            lut.SetTableRange(0.0, float(binary_value))     # < v/2 → 0, ≥ v/2 → 1
            lut.SetTableValue(0, 0.0, 0.0, 0.0, 0.0)
            lut.SetTableValue(1, 1.0, 1.0, 1.0, 1.0)
            lut.Build()
            self.contour: Any = vtkFlyingEdges2D()
            self.contour.SetValue(0, float(binary_value) / 2.0)
        else:
            self.reslice.SetInterpolationModeToNearestNeighbor()
            self.contour = vtkDiscreteFlyingEdges2D()
            for n, v in enumerate(sorted(self.label_rgb)):
                self.contour.SetValue(n, float(v))
        assert lut is not None
        self.lut = lut
        self.colours = vtkImageMapToColors()
        self.colours.SetLookupTable(lut)
        self.colours.SetOutputFormatToRGBA()
        self.colours.SetInputConnection(self.reslice.GetOutputPort())
        self.fill_actor = vtkImageActor()
        self.fill_actor.GetMapper().SetInputConnection(self.colours.GetOutputPort())
        self.fill_actor.GetProperty().SetInterpolationTypeToNearest()
        self.fill_actor.SetPosition(0.0, 0.0, Z_FILL)
        self.fill_actor.VisibilityOff()
        self.contour.SetInputConnection(self.reslice.GetOutputPort())
        self.stripper = vtkStripper()
        self.stripper.SetInputConnection(self.contour.GetOutputPort())
        self.stripper.JoinContiguousSegmentsOn()
        self.outline_mapper = vtkPolyDataMapper()
        self.outline_mapper.ScalarVisibilityOff()
        self.outline_actor = vtkActor()
        self.outline_actor.SetMapper(self.outline_mapper)
        self.outline_actor.VisibilityOff()
        self.multi_actors: list[tuple[vtkActor, vtkPolyDataMapper]] = []
        renderer.AddViewProp(self.fill_actor)
        renderer.AddActor(self.outline_actor)

    def remove(self) -> None:
        self.renderer.RemoveViewProp(self.fill_actor)
        self.renderer.RemoveActor(self.outline_actor)
        for actor, _m in self.multi_actors:
            self.renderer.RemoveActor(actor)
        self.multi_actors = []

    def set_fill_rgb(self, rgb: tuple[float, float, float]) -> None:
        if self.binary_value is not None:
            self.lut.SetTableValue(1, *rgb, 1.0)
            self.lut.Modified()

    def place(self, g: planes.PlaneGeometry, offset: float, mm_per_px: float) -> None:
        """Reslice the part of slice ``offset`` that can hold the mask, or hide it."""
        self._shown = False
        self._lines = []
        corners = self.corners_lps
        if corners is not None and self.style.visible:
            rel = corners - g.anchor
            xs, ys, zs = rel @ g.right, rel @ g.up, rel @ g.normal
            if zs.min() - 1e-6 <= offset <= zs.max() + 1e-6:
                self._reslice_box(g, offset, xs, ys)
                self._shown = True
        self.restyle(mm_per_px)

    def _reslice_box(self, g: planes.PlaneGeometry, offset: float, xs: FloatArray,
                     ys: FloatArray) -> None:
        (sx, sy) = g.spacing_xy
        (x0, y0), (nx, ny) = g.origin_xy, g.size_xy
        # Box in view samples, one sample of margin so every contour closes.
        i0 = int(np.clip(np.floor((xs.min() - x0) / sx) - 1, -1, nx))
        i1 = int(np.clip(np.ceil((xs.max() - x0) / sx) + 1, -1, nx))
        j0 = int(np.clip(np.floor((ys.min() - y0) / sy) - 1, -1, ny))
        j1 = int(np.clip(np.ceil((ys.max() - y0) / sy) + 1, -1, ny))
        # 3× (not 2×): samples then never fall on the 0.5 midpoints between voxel
        # centres, where the contour would pass exactly through samples.
        f = 3 if (i1 - i0 + 1) * (j1 - j0 + 1) * 9 <= _MAX_FINE_SAMPLES else 1
        self.reslice.SetOutputSpacing(sx / f, sy / f, g.step_mm)
        self.reslice.SetOutputOrigin(x0, y0, 0.0)
        self.reslice.SetOutputExtent(i0 * f, i1 * f, j0 * f, j1 * f, 0, 0)
        set_vtk_matrix(self._matrix, planes.reslice_matrix(self.affine,
                                                           g.plane_to_lps_matrix(offset)))
        self.reslice.Modified()
        self.stripper.Update()
        self._lines = [(chaikin(_dedupe(p, closed), closed, 3), closed, v)
                       for p, closed, v in stripped_polylines(self.stripper.GetOutput())]

    def restyle(self, mm_per_px: float) -> None:
        """Apply ``self.style`` to the last resliced contours (cheap: no reslicing)."""
        st = self.style
        shown = self._shown and st.visible
        self.fill_actor.SetVisibility(shown and st.fill_opacity > 0.0)
        self.fill_actor.GetProperty().SetOpacity(float(st.fill_opacity))
        for actor, _m in self.multi_actors:
            self.renderer.RemoveActor(actor)
        self.multi_actors = []
        if not (shown and st.outline and self._lines):
            self.outline_actor.VisibilityOff()
            return
        groups: dict[float, list[FloatArray]] = {}
        for pts, closed, value in self._lines:
            key = value if self.binary_value is None else 0.0
            if st.dash_px is None:
                groups.setdefault(key, []).append(np.vstack([pts, pts[:1]]) if closed else pts)
            else:
                dash, gap = (d * mm_per_px for d in st.dash_px)
                groups.setdefault(key, []).extend(dash_polyline(pts, closed, dash, gap))
        prop = self.outline_actor.GetProperty()
        prop.SetLineWidth(st.line_width)
        if self.binary_value is not None:
            self.outline_mapper.SetInputData(polylines_to_polydata(groups.get(0.0, []), Z_OUTLINE))
            prop.SetColor(*st.outline_rgb)
            self.outline_actor.VisibilityOn()
            return
        # Multi-label: one actor per label colour.
        self.outline_actor.VisibilityOff()
        for value, lines in groups.items():
            mapper = vtkPolyDataMapper()
            mapper.ScalarVisibilityOff()
            mapper.SetInputData(polylines_to_polydata(lines, Z_OUTLINE))
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetLineWidth(st.line_width)
            actor.GetProperty().SetColor(*self.label_rgb.get(round(value), st.outline_rgb))
            self.renderer.AddActor(actor)
            self.multi_actors.append((actor, mapper))

    def outline_points(self) -> list[FloatArray]:
        """The smoothed outline polylines (in-plane x, y mm) of the shown slice."""
        return [p for p, _c, _v in self._lines] if self._shown else []
