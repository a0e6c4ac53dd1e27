"""Corner text, orientation letters and scale bar of a slice view (2-D VTK actors).

``identity_lines`` / ``study_lines`` compose the top corners from a Volume
(pure); ``Annotations`` owns the text actors and the scale bar and draws
what the slice view hands it.
"""

from __future__ import annotations

from typing import Any

from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import (
    vtkActor2D,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
)

from core.volume import Volume
from viewer.vtkutil import fit_text_lines

TEXT_GREY = (0.78, 0.78, 0.76)
AMBER = (1.0, 0.74, 0.28)
SCALE_BAR_LENGTHS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)
SCALE_BAR_MAX_FRACTION = 0.22       # of the view width


def _meta(d: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = d.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def format_date(value: str) -> str:
    """YYYYMMDD → YYYY-MM-DD (anything else unchanged)."""
    v = value.strip()
    if len(v) == 8 and v.isdigit():
        return f"{v[:4]}-{v[4:6]}-{v[6:]}"
    return v


def identity_lines(vol: Volume, visible: bool) -> list[str]:
    """Top-left lines: patient name, ID, birth date (none when identity is hidden)."""
    if not visible:
        return [""]
    ident = vol.identity
    name = _meta(ident, "patient_name", "PatientName", "name").replace("^", " ").strip()
    pid = _meta(ident, "patient_id", "PatientID", "id")
    birth = format_date(_meta(ident, "patient_birth_date", "PatientBirthDate", "birth_date"))
    lines = [name, f"ID {pid}" if pid else "", f"DOB {birth}" if birth else ""]
    return [x for x in lines if x] or [""]


def study_lines(vol: Volume) -> list[str]:
    """Top-right lines: study date, series description, modality."""
    md = vol.metadata
    return [format_date(_meta(md, "study_date", "StudyDate")),
            _meta(md, "series_description", "SeriesDescription"),
            vol.modality or _meta(md, "modality", "Modality")]


def bottom_room(width_px: int) -> int:
    """How wide a bottom corner's lines may be: the scale bar (up to 22 % of the width)
    and the bottom orientation letter take the middle of the row."""
    return max(24, int(width_px * (0.5 - SCALE_BAR_MAX_FRACTION / 2)) - 10)


def text_actor(renderer: vtkRenderer, x: float, y: float, hjust: str, vjust: str,
               colour: tuple[float, float, float], size: int,
               bold: bool = False) -> vtkTextActor:
    """A shadowed text actor at normalised viewport (x, y), added to ``renderer``."""
    actor = vtkTextActor()
    actor.SetTextScaleModeToNone()
    actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    actor.GetPositionCoordinate().SetValue(x, y)
    tp = actor.GetTextProperty()
    tp.SetFontFamilyToArial()
    tp.SetFontSize(size)
    tp.SetColor(*colour)
    tp.SetBold(bold)
    tp.SetShadow(True)
    hj = {"left": "Left", "right": "Right", "center": "Centered"}[hjust]
    getattr(tp, f"SetJustificationTo{hj}")()
    vj = {"top": "Top", "bottom": "Bottom", "center": "Centered"}[vjust]
    getattr(tp, f"SetVerticalJustificationTo{vj}")()
    actor.SetInput("")
    renderer.AddViewProp(actor)
    return actor


class Annotations:
    """Four corner texts, four orientation letters and a scale bar on one renderer."""

    def __init__(self, renderer: vtkRenderer) -> None:
        self.renderer = renderer
        self.corner_actors: dict[str, vtkTextActor] = {}
        self._fitted: dict[str, tuple[Any, str]] = {}  # corner → (lines, width), text
        for corner, (x, y, hj, vj) in {
            "top_left": (0.01, 0.99, "left", "top"),
            "top_right": (0.99, 0.99, "right", "top"),
            "bottom_left": (0.01, 0.01, "left", "bottom"),
            "bottom_right": (0.99, 0.01, "right", "bottom"),
        }.items():
            self.corner_actors[corner] = text_actor(renderer, x, y, hj, vj, TEXT_GREY, 12)
        self.letter_actors: dict[str, vtkTextActor] = {}
        for edge, (x, y, hj, vj) in {
            "left": (0.01, 0.5, "left", "center"),
            "right": (0.99, 0.5, "right", "center"),
            "top": (0.5, 0.99, "center", "top"),
            "bottom": (0.5, 0.01, "center", "bottom"),
        }.items():
            self.letter_actors[edge] = text_actor(renderer, x, y, hj, vj, AMBER, 15, bold=True)
        self._scale_points = vtkPoints()
        self._scale_poly = vtkPolyData()
        self._scale_poly.SetPoints(self._scale_points)
        self._scale_mapper = vtkPolyDataMapper2D()
        self._scale_mapper.SetInputData(self._scale_poly)
        self.scale_actor = vtkActor2D()
        self.scale_actor.SetMapper(self._scale_mapper)
        self.scale_actor.GetProperty().SetColor(*TEXT_GREY)
        renderer.AddViewProp(self.scale_actor)
        self.scale_label = text_actor(renderer, 0.5, 0.0, "center", "bottom", TEXT_GREY, 11)
        self.scale_label.GetPositionCoordinate().SetCoordinateSystemToDisplay()
        self.scale_length_mm = 0.0

    def set_fitted(self, corner: str, lines: list[str], max_px: int, dpi: int) -> None:
        """Set a corner's text cut to ``max_px`` wide; cached, as it runs on every scroll."""
        key = (tuple(lines), max_px)
        if self._fitted.get(corner, (None, ""))[0] != key:
            actor = self.corner_actors[corner]
            self._fitted[corner] = (key, fit_text_lines(lines, actor.GetTextProperty(),
                                                        max_px, dpi))
        self.corner_actors[corner].SetInput(self._fitted[corner][1])

    def _clear_bar(self) -> None:
        self._scale_points.SetNumberOfPoints(0)
        self._scale_poly.SetLines(vtkCellArray())
        self._scale_poly.Modified()
        self.scale_label.SetInput("")

    def update_scale_bar(self, w: int, h: int, parallel_scale: float | None) -> None:
        """The longest round length up to 22 % of the width, bottom centre (none: no image)."""
        if parallel_scale is None or h <= 0:
            self.scale_length_mm = 0.0
            self._clear_bar()
            return
        px_per_mm = h / (2.0 * parallel_scale)
        length = 0.0
        for candidate in SCALE_BAR_LENGTHS_MM:
            if candidate * px_per_mm <= SCALE_BAR_MAX_FRACTION * w:
                length = float(candidate)
        self.scale_length_mm = length
        if length == 0.0:
            self._clear_bar()
            return
        bar = length * px_per_mm
        x0, x1, y = w / 2.0 - bar / 2.0, w / 2.0 + bar / 2.0, 34.0
        pts = [(x0, y + 5), (x0, y), (x1, y), (x1, y + 5)]
        self._scale_points.SetNumberOfPoints(4)
        for i, (px, py) in enumerate(pts):
            self._scale_points.SetPoint(i, px, py, 0.0)
        # vtkPoints.SetPoint does not bump the modified time; without this the
        # mapper keeps drawing the bar of the previous size.
        self._scale_points.Modified()
        cells = vtkCellArray()
        cells.InsertNextCell(4)
        for i in range(4):
            cells.InsertCellPoint(i)
        self._scale_poly.SetLines(cells)
        self._scale_poly.Modified()
        self.scale_label.GetPositionCoordinate().SetValue(w / 2.0, y + 3)
        self.scale_label.SetInput(f"{length:g} mm")
