"""Thin VTK visual of a ``FindingsLayer`` in one slice view (one actor pair per finding).

Look per review status: accepted / edited / added-by-reader are filled at the
layer opacity with a solid outline; pending is a dashed outline without fill;
imported a long-dash outline over a faint fill; rejected is hidden, or a
dotted grey outline when the layer shows rejected findings. The selected
finding's outline is thicker and brighter. A short tag is written beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkTextActor

from viewer import planes
from viewer.findings import SOLID_STATUSES, FindingShape, FindingsLayer
from viewer.mask_visual import Z_OUTLINE, MaskSliceVisual, MaskStyle
from viewer.overlay import box_corners_lps
from viewer.vtkutil import index_space_image

FloatArray = npt.NDArray[np.float64]

REJECTED_GREY = (0.62, 0.62, 0.62)
PENDING_DASH_PX = (6.0, 4.0)
IMPORTED_DASH_PX = (12.0, 4.0)
REJECTED_DOT_PX = (2.0, 4.0)
LINE_PX, SELECTED_LINE_PX = 1.5, 3.0
TAG_GAP_PX = 3.0


def finding_style(shape: FindingShape, layer: FindingsLayer) -> MaskStyle:
    """How one finding looks given its status, the layer style and the selection."""
    rgb = tuple(c / 255.0 for c in shape.color_rgb)
    selected = layer.selected == shape.key
    width = SELECTED_LINE_PX if selected else LINE_PX
    if selected:
        rgb = tuple(0.6 * c + 0.4 for c in rgb)      # brighter towards white
    fill = layer.opacity if layer.fill else 0.0
    st = MaskStyle(visible=layer.visible, outline=layer.outline, line_width=width,
                   outline_rgb=rgb)  # type: ignore[arg-type]
    if shape.status in SOLID_STATUSES:
        st.fill_opacity = fill
    elif shape.status == "pending":
        st.dash_px = PENDING_DASH_PX
    elif shape.status == "imported":
        st.fill_opacity = fill / 3.0
        st.dash_px = IMPORTED_DASH_PX
    else:                                           # rejected
        st.visible = layer.visible and layer.show_rejected
        st.outline_rgb = REJECTED_GREY
        st.dash_px = REJECTED_DOT_PX
    return st


@dataclass
class _Item:
    shape: FindingShape
    visual: MaskSliceVisual
    tag: vtkTextActor


class FindingsVisual:
    """Draws every finding of ``layer`` on one slice view's renderer."""

    def __init__(self, renderer: vtkRenderer, layer: FindingsLayer) -> None:
        self.renderer = renderer
        self.layer = layer
        self.affine: FloatArray | None = None
        self._items: dict[str, _Item] = {}
        self._mm_per_px = 1.0

    def set_volume_affine(self, affine: FloatArray | None) -> None:
        for key in list(self._items):
            self._drop(key)
        self.affine = None if affine is None else np.asarray(affine, dtype=np.float64)

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            item.visual.remove()
            self.renderer.RemoveViewProp(item.tag)

    def _build(self, shape: FindingShape) -> _Item:
        assert self.affine is not None
        crop_affine = self.affine.copy()
        crop_affine[:3, 3] = self.affine[:3, :3] @ np.asarray(shape.offset, float) + \
            self.affine[:3, 3]
        arr = np.ascontiguousarray(shape.mask, dtype=np.uint8) * np.uint8(255)
        box = tuple((0, n) for n in arr.shape) if shape.mask.any() else None
        visual = MaskSliceVisual(self.renderer, index_space_image(arr), crop_affine,
                                 box_corners_lps(crop_affine, box), binary_value=255.0)
        visual.set_fill_rgb(tuple(c / 255.0 for c in shape.color_rgb))  # type: ignore[arg-type]
        tag = vtkTextActor()
        tag.SetInput(shape.tag)
        tp = tag.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(12)
        tp.SetBold(True)
        tp.SetShadow(True)
        tag.GetPositionCoordinate().SetCoordinateSystemToWorld()
        tag.VisibilityOff()
        self.renderer.AddViewProp(tag)
        return _Item(shape, visual, tag)

    def sync(self, g: planes.PlaneGeometry | None, offset: float, mm_per_px: float) -> None:
        """Match the layer: build new or edited findings, drop removed ones, restyle all."""
        if self.affine is None:
            return
        shapes = {s.key: s for s in self.layer.shapes()}
        for key in list(self._items):
            if key not in shapes:
                self._drop(key)
        for key, shape in shapes.items():
            self.update_key(key, g, offset, mm_per_px, shape=shape)

    def update_key(self, key: str, g: planes.PlaneGeometry | None, offset: float,
                   mm_per_px: float, shape: FindingShape | None = None) -> None:
        """Redo only finding ``key`` (its mask, status or selection changed)."""
        if self.affine is None:
            return
        shape = shape if shape is not None else self.layer.get(key)
        if shape is None:
            self._drop(key)
            return
        item = self._items.get(key)
        rebuilt = item is None or item.shape.mask is not shape.mask or \
            item.shape.offset != shape.offset
        if rebuilt:
            self._drop(key)
            item = self._build(shape)
            self._items[key] = item
        assert item is not None
        item.shape = shape
        item.visual.set_fill_rgb(tuple(c / 255.0 for c in shape.color_rgb))  # type: ignore[arg-type]
        item.visual.style = finding_style(shape, self.layer)
        self._mm_per_px = mm_per_px
        if rebuilt and g is not None:
            item.visual.place(g, offset, mm_per_px)
        else:
            item.visual.restyle(mm_per_px)
        self._place_tag(item)

    def place_all(self, g: planes.PlaneGeometry, offset: float, mm_per_px: float) -> None:
        self._mm_per_px = mm_per_px
        for item in self._items.values():
            item.visual.place(g, offset, mm_per_px)
            self._place_tag(item)

    def restyle_all(self, mm_per_px: float) -> None:
        self._mm_per_px = mm_per_px
        for item in self._items.values():
            item.visual.style = finding_style(item.shape, self.layer)
            item.visual.restyle(mm_per_px)
            self._place_tag(item)

    def _place_tag(self, item: _Item) -> None:
        lines = item.visual.outline_points()
        st = item.visual.style
        if not item.shape.tag or not lines or not st.visible:
            item.tag.VisibilityOff()
            return
        pts = np.vstack(lines)
        item.tag.GetTextProperty().SetColor(*st.outline_rgb)
        gap = TAG_GAP_PX * self._mm_per_px            # a few pixels beside the outline
        item.tag.GetPositionCoordinate().SetValue(float(pts[:, 0].max()) + gap,
                                                  float(pts[:, 1].max()) - gap, Z_OUTLINE)
        item.tag.SetInput(item.shape.tag)
        item.tag.VisibilityOn()

    def outline_points(self, key: str) -> list[FloatArray]:
        item = self._items.get(key)
        return item.visual.outline_points() if item is not None else []

    def keys(self) -> list[str]:
        return list(self._items)
