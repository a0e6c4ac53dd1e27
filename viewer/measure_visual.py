"""Thin VTK visual of measurements on a slice view (lines coloured per cell + labels).

The data live in ``viewer.models.MeasurementList`` / ``viewer.measure``;
these helpers decide which measurements lie on the shown slice and draw them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer, vtkTextActor

from viewer import planes
from viewer.corner_text import AMBER
from viewer.measure import Measurement

Z_MEASURE = 1.5
__all__ = ["AMBER", "SELECTED", "Z_MEASURE", "MeasurementsVisual", "visible_measurements"]
SELECTED = (1.0, 0.95, 0.45)


def visible_measurements(g: planes.PlaneGeometry | None, offset: float,
                         items: Sequence[Measurement]) -> list[tuple[int, Measurement]]:
    """(index, measurement) of those drawn in this plane's orientation on slice ``offset``."""
    if g is None:
        return []
    out = []
    plane_pt = g.to_lps((0.0, 0.0), offset)
    for i, m in enumerate(items):
        if abs(float(m.normal @ g.normal)) < 0.999:
            continue
        if abs(float((m.centre_lps - plane_pt) @ g.normal)) >= g.step_mm / 2.0:
            continue
        out.append((i, m))
    return out


def shape_polylines(g: planes.PlaneGeometry, m: Measurement) -> list[list[np.ndarray]]:
    """Polylines (in-plane xy) drawing a measurement."""
    p = [g.to_plane(pt)[:2] for pt in m.points_lps]
    if m.kind == "distance":
        return [[p[0], p[1]]]
    if m.kind == "angle":
        return [[p[0], p[1], p[2]]]
    if m.kind == "bidimensional":
        return [[p[0], p[1]], [p[2], p[3]]]
    # Box corners in the measurement's own plane axes, mapped to this view.
    a_lps, b_lps = m.points_lps
    centre = (a_lps + b_lps) / 2.0
    ha = abs(float((b_lps - a_lps) @ m.right)) / 2.0
    hb = abs(float((b_lps - a_lps) @ m.up)) / 2.0
    if m.kind == "rectangle":
        corners = [centre + sx * ha * m.right + sy * hb * m.up
                   for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))]
    else:
        t = np.linspace(0.0, 2.0 * math.pi, 65)
        corners = [centre + ha * math.cos(a) * m.right + hb * math.sin(a) * m.up for a in t]
    return [[g.to_plane(c)[:2] for c in corners]]


def label_anchor(g: planes.PlaneGeometry, m: Measurement) -> tuple[float, float]:
    """In-plane point where the measurement's label starts (right of the shape)."""
    pts = np.array([g.to_plane(p)[:2] for p in m.points_lps])
    if m.kind in ("ellipse", "rectangle"):
        return float(pts[:, 0].max()) + 2.0, float(pts[:, 1].max())
    if m.kind == "angle":
        return float(pts[1, 0]) + 2.0, float(pts[1, 1]) + 2.0
    i = int(np.argmax(pts[:, 0]))
    return float(pts[i, 0]) + 2.0, float(pts[i, 1])


class MeasurementsVisual:
    """One polydata of lines, coloured per cell, plus a text label per measurement."""

    def __init__(self, renderer: vtkRenderer) -> None:
        self.renderer = renderer
        self._poly = vtkPolyData()
        self._mapper = vtkPolyDataMapper()
        self._mapper.SetInputData(self._poly)
        self.actor = vtkActor()
        self.actor.SetMapper(self._mapper)
        self.actor.GetProperty().SetLineWidth(1.5)
        renderer.AddActor(self.actor)
        self.labels: list[vtkTextActor] = []
        self.visible = True

    def set_visible(self, visible: bool) -> None:
        """Show or hide every measurement (a clean export); drawing goes on while hidden."""
        self.visible = bool(visible)
        self.actor.SetVisibility(self.visible)
        for actor in self.labels:
            actor.SetVisibility(self.visible)

    def _runs_off_right(self, anchor: tuple[float, float], text: str) -> bool:
        """Whether a label starting at in-plane ``anchor`` would pass the view's right edge
        (12 pt Arial: about 7 px a character at 72 dpi)."""
        width_px = self.renderer.GetSize()[0]
        if width_px <= 1:
            return False
        self.renderer.SetWorldPoint(anchor[0], anchor[1], Z_MEASURE, 1.0)
        self.renderer.WorldToDisplay()
        x = self.renderer.GetDisplayPoint()[0]
        window = self.renderer.GetRenderWindow()
        scale = (window.GetDPI() / 72.0) if window is not None else 1.0
        longest = max((len(line) for line in text.splitlines()), default=0)
        return bool(x + 7.0 * scale * longest > width_px - 4)

    def draw(self, g: planes.PlaneGeometry | None,
             items: list[tuple[Measurement, tuple[float, float, float]]]) -> None:
        """Replace what is drawn with ``items`` (measurement, colour)."""
        for actor in self.labels:
            self.renderer.RemoveViewProp(actor)
        self.labels = []
        points = vtkPoints()
        lines = vtkCellArray()
        colours = vtkUnsignedCharArray()
        colours.SetNumberOfComponents(3)
        for m, colour in items if g is not None else []:
            assert g is not None
            for poly in shape_polylines(g, m):
                lines.InsertNextCell(len(poly))
                for xy in poly:
                    lines.InsertCellPoint(points.InsertNextPoint(xy[0], xy[1], Z_MEASURE))
                colours.InsertNextTuple3(*(int(c * 255) for c in colour))
            label = vtkTextActor()
            label.SetInput(m.label())
            tp = label.GetTextProperty()
            tp.SetFontFamilyToArial()
            tp.SetFontSize(12)
            tp.SetColor(*colour)
            tp.SetShadow(True)
            anchor = label_anchor(g, m)
            if self._runs_off_right(anchor, label.GetInput()):
                # Beside the shape's left side instead, right-aligned: never cut off.
                xs = [g.to_plane(p)[0] for p in m.points_lps]
                anchor = (float(min(xs)) - 2.0, anchor[1])
                tp.SetJustificationToRight()
            coord = label.GetPositionCoordinate()
            coord.SetCoordinateSystemToWorld()
            coord.SetValue(anchor[0], anchor[1], Z_MEASURE)
            label.SetVisibility(self.visible)
            self.renderer.AddViewProp(label)
            self.labels.append(label)
        self._poly.SetPoints(points)
        self._poly.SetLines(lines)
        self._poly.GetCellData().SetScalars(colours)
        self._poly.Modified()
