"""Label-map overlays of a slice view: a model of the style and a thin VTK visual.

``OverlayStyle`` is the plain style (opacity, fill, outline, visible);
``LabelOverlayVisual`` draws one ``core.LabelMap`` (on any grid, with its own
affine) in one slice view through ``MaskSliceVisual``: a binary map with a
smooth outline on the source image's resolution, a multi-label map with
nearest-neighbour fill and per-label outlines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkRenderingCore import vtkRenderer

from core.volume import LabelMap
from viewer import planes
from viewer.mask_visual import MaskSliceVisual, MaskStyle
from viewer.vtkutil import UNNAMED_LABEL_RGBA, index_space_image, label_lookup_table

FloatArray = npt.NDArray[np.float64]


@dataclass
class OverlayStyle:
    opacity: float = 0.45
    fill: bool = True
    outline: bool = True
    visible: bool = True


def label_box(arr: npt.NDArray[np.generic]) -> tuple[tuple[int, int], ...] | None:
    """Half-open (start, stop) per axis of the box holding every non-zero voxel."""
    ranges = []
    for axes in ((1, 2), (0, 2), (0, 1)):
        hit = np.flatnonzero(arr.any(axis=axes))
        if hit.size == 0:
            return None
        ranges.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(ranges)


def box_corners_lps(affine: FloatArray, box: tuple[tuple[int, int], ...] | None,
                    ) -> FloatArray | None:
    """LPS corners (8×3) of an index box, voxel edges included."""
    if box is None:
        return None
    r = [(a - 0.5, b - 0.5) for a, b in box]
    corners = np.array([[a, b, c] for a in r[0] for b in r[1] for c in r[2]])
    return np.asarray(corners @ affine[:3, :3].T + affine[:3, 3])


def label_array_uint8(labels: LabelMap) -> npt.NDArray[np.uint8]:
    arr = np.ascontiguousarray(labels.array)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"label values must lie in 0–255 to be shown, got "
                             f"{arr.min()}–{arr.max()}")
        arr = arr.astype(np.uint8)
    return arr


def _label_colours(labels: LabelMap, values: list[int]) -> dict[int, tuple[float, float, float]]:
    named = {int(lab.value): tuple(c / 255.0 for c in lab.color_rgb) for lab in labels.labels}
    fallback = tuple(float(c) for c in UNNAMED_LABEL_RGBA[:3])
    return {v: named.get(v, fallback) for v in values}  # type: ignore[misc]


class LabelOverlayVisual:
    """One label map drawn in one slice view."""

    def __init__(self, renderer: vtkRenderer, labels: LabelMap, style: OverlayStyle) -> None:
        self.labels = labels
        self.style = style
        self._arr = label_array_uint8(labels)
        self.image = index_space_image(self._arr)
        self._renderer = renderer
        self.visual: MaskSliceVisual | None = None
        self._present: list[int] = []
        self._rebuild()

    def _rebuild(self) -> None:
        if self.visual is not None:
            self.visual.remove()
        box = label_box(self._arr)
        present: list[int] = []
        if box is not None:
            crop = self._arr[tuple(slice(a, b) for a, b in box)]
            present = [int(v) for v in np.unique(crop) if v > 0]
        self._present = present
        colours = _label_colours(self.labels, present)
        binary = present[0] if len(present) == 1 else None
        self.visual = MaskSliceVisual(
            self._renderer, self.image, self.labels.affine,
            box_corners_lps(self.labels.affine, box), binary_value=binary,
            lut=None if binary is not None else label_lookup_table(self.labels),
            label_rgb=colours)
        if binary is not None:
            self.visual.set_fill_rgb(colours[binary])
        self._apply_style()

    def _apply_style(self) -> None:
        assert self.visual is not None
        st = self.style
        colour = next(iter(_label_colours(self.labels, self._present[:1]).values()),
                      (1.0, 0.0, 0.0))
        self.visual.style = MaskStyle(visible=st.visible,
                                      fill_opacity=st.opacity if st.fill else 0.0,
                                      outline=st.outline, outline_rgb=colour, line_width=1.5)

    def refresh(self) -> None:
        """The label array was edited in place: the labelled box and values may differ."""
        present = self._present
        box = label_box(self._arr)
        new_present: list[int] = []
        if box is not None:
            crop = self._arr[tuple(slice(a, b) for a, b in box)]
            new_present = [int(v) for v in np.unique(crop) if v > 0]
        if new_present != present:
            self._rebuild()
        assert self.visual is not None
        self.visual.corners_lps = box_corners_lps(self.labels.affine, box)
        self.image.Modified()

    def set_style(self, style: OverlayStyle) -> None:
        self.style = style
        self._apply_style()

    def place(self, g: planes.PlaneGeometry, offset: float, mm_per_px: float) -> None:
        assert self.visual is not None
        self.visual.place(g, offset, mm_per_px)

    def restyle(self, mm_per_px: float) -> None:
        assert self.visual is not None
        self._apply_style()
        self.visual.restyle(mm_per_px)

    def remove(self) -> None:
        if self.visual is not None:
            self.visual.remove()
