"""What the review draws and paints on the views: the viewer's findings layer kept in
step with the open series' review, selection focus, and brush strokes turned into
review commands.

The viewer knows nothing of reviews (it may import only ``core``): this module maps
``review.model.ReviewFinding`` and imported masks to ``viewer.findings.FindingShape``
and ``viewer.brush.PaintStroke`` drags to ``ReviewSession.paint`` / ``add_finding``
(one committed command per stroke, on release; a preview while dragging).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

BRUSH_TOOLS = ("brush", "eraser")


def overlay_tag(key: str) -> str:
    """Overlay tag: the model's finding number ("m3" → "3"); reader-drawn keep "r1"."""
    return key[1:] if key.startswith("m") else key


def finding_shape(finding: Any) -> Any:
    from viewer.findings import FindingShape

    return FindingShape(key=str(finding.key), offset=tuple(finding.mask.offset),
                        mask=finding.mask.array, color_rgb=tuple(finding.color_rgb),
                        status=str(finding.status), tag=overlay_tag(str(finding.key)))


def combine(base: Any, stroke: Any, *, erase: bool) -> Any:
    """``base`` with ``stroke`` added (or taken away), on their joint bounding box only
    (a full 512×512×133 grid per mouse move would be far too slow)."""
    from review.model import SparseMask

    if stroke.empty:
        return base
    if base.empty:
        return base if erase else stroke
    lo = np.minimum(base.offset, stroke.offset)
    hi = np.maximum(np.add(base.offset, base.array.shape), np.add(stroke.offset,
                                                                  stroke.array.shape))
    out = np.zeros(tuple(int(v) for v in hi - lo), dtype=bool)

    def window(mask: Any) -> tuple[slice, ...]:
        start = np.subtract(mask.offset, lo)
        return tuple(slice(int(s), int(s) + n) for s, n in zip(start, mask.array.shape,
                                                                strict=True))

    out[window(base)] = base.array
    if erase:
        out[window(stroke)] &= ~stroke.array
    else:
        out[window(stroke)] |= stroke.array
    return SparseMask((int(lo[0]), int(lo[1]), int(lo[2])), out).tight()


class ReviewCanvas:
    """The findings layer and the brush of one window. ``viewer`` is the ViewerPanel;
    ``select`` selects a finding's row without moving the views (a just-drawn finding);
    ``problem(title, text)`` tells the reader a stroke was not kept."""

    def __init__(self, viewer: Any, *, select: Callable[[str], None],
                 problem: Callable[[str, str], None]) -> None:
        self.viewer = viewer
        self._select = select
        self._problem = problem
        self.series: Any = None
        self.paint_target: str | None = None  # the finding the brush edits
        self.drawing_new = False  # the next stroke starts a reader-drawn finding
        self._stroke: list[np.ndarray] = []

    @property
    def layer(self) -> Any:
        return getattr(self.viewer, "findings_layer", None)

    @property
    def review(self) -> Any:
        return None if self.series is None else self.series.review

    # ------------------------------------------------------------------ overlay
    def set_series(self, series: Any) -> None:
        """Draw ``series``' findings (None: nothing) and follow its review's changes."""
        self.series = series
        self.stop_painting()
        if series is not None:
            series.add_listener(self.on_review_changed)
        self.redraw()

    def redraw(self) -> None:
        layer = self.layer
        if layer is None:
            return
        series = self.series
        if series is None:
            layer.set_findings([])
            return
        from viewer.findings import FindingShape

        shapes = []
        if series.review is not None:
            shapes = [finding_shape(f) for f in series.review.findings if not f.mask.empty]
        for key, (offset, crop, color) in series.imported.masks.items():
            shapes.append(FindingShape(key=key, offset=offset, mask=crop, color_rgb=color,
                                       status="imported", tag=key))
        layer.set_findings(shapes)

    def on_review_changed(self, keys: Sequence[str]) -> None:
        """Redraw only what changed (a decision, a stroke, an undo)."""
        layer, review = self.layer, self.review
        if layer is None or review is None:
            return
        present = {f.key: f for f in review.findings}
        for key in keys:
            finding = present.get(key)
            if key.startswith("i"):
                continue  # imported: drawn by redraw()
            if finding is None or finding.mask.empty:
                layer.remove(key)
            else:
                layer.update(finding_shape(finding))

    def apply_style(self, style: dict[str, Any]) -> None:
        layer = self.layer
        if layer is not None:
            for name, value in style.items():
                setattr(layer, name, value)

    def focus(self, row: Any) -> None:
        """Centre and zoom every view (3-D too) on a finding's row; select it on the
        overlay; the brush follows the selection."""
        if row.centroid_lps is None:
            return
        focus_on = getattr(self.viewer, "focus_on", None)
        if callable(focus_on):
            focus_on(row.centroid_lps, row.extent_mm)
        else:
            self.viewer.set_cursor_lps(row.centroid_lps)
        self._select_on_layer(row.key)
        if self.paint_target is not None:
            self.paint_target = None if row.imported else row.key

    def _select_on_layer(self, key: str) -> None:
        layer = self.layer
        if layer is not None:
            layer.set_selected(key if layer.get(key) is not None else None)

    # ------------------------------------------------------------------ brush
    def start_edit(self, key: str) -> None:
        self.paint_target, self.drawing_new, self._stroke = key, False, []

    def start_new(self) -> None:
        self.paint_target, self.drawing_new, self._stroke = None, True, []

    def stop_painting(self) -> None:
        self.paint_target, self.drawing_new, self._stroke = None, False, []

    def on_paint_stroke(self, stroke: Any) -> None:
        """A brush drag: preview while dragging, one committed command on release."""
        review = self.review
        if review is not None and self.paint_target is not None \
                and review.find(self.paint_target) is None:
            self.paint_target = None  # undone meanwhile: nothing to paint on
        if review is None or (self.paint_target is None and not self.drawing_new):
            return
        self._stroke.append(np.asarray(stroke.points_lps, dtype=float).reshape(-1, 3))
        voxels = self._stroke_mask(stroke)
        if not stroke.finished:
            self._preview(voxels, bool(stroke.erase))
            return
        self._stroke = []
        if voxels.empty:
            return
        try:
            if self.paint_target is None:
                model = review.findings[0] if review.findings else None
                key = review.add_finding(
                    model.label_name if model is not None else "Reader-drawn finding", voxels,
                    label_value=model.label_value if model is not None else 1)
                self.paint_target, self.drawing_new = key, False
                self._select(key)
                self._select_on_layer(key)
            else:
                review.paint(self.paint_target, voxels, erase=bool(stroke.erase))
        except Exception as exc:  # refused (signed off, read-only): the reader must know
            from app.series_session import error_text

            self._problem("The stroke was not kept", error_text(exc))
            self.redraw()

    def _stroke_mask(self, stroke: Any) -> Any:
        from review.model import SparseMask
        from viewer.brush import stroke_voxels

        review = self.review
        offset, crop = stroke_voxels(review.affine, review.shape, stroke.plane,
                                     np.concatenate(self._stroke), stroke.radius_mm)
        return SparseMask(offset, crop).clip(tuple(int(v) for v in review.shape))

    def _preview(self, voxels: Any, erase: bool) -> None:
        layer, review = self.layer, self.review
        if layer is None or self.paint_target is None:
            return
        finding = review.get(self.paint_target)
        preview = combine(finding.mask, voxels, erase=erase)
        if not preview.empty:
            layer.update(replace(finding_shape(finding), offset=preview.offset,
                                 mask=preview.array))
