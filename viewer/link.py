"""Two viewer panels in lock-step: cursor (scrolling), window/level, zoom and pan.

A :class:`PaneLink` joins a primary and a secondary :class:`viewer.ViewerPanel`
through a rigid 4×4 that maps the primary's LPS mm to the secondary's (the
identity when both share a Frame of Reference, a registration's result
otherwise). Every change in one pane is sent through the matrix (or its
inverse) to the other:

- the cursor point, so scrolling one pane scrolls the other to the same anatomy;
- window / level (and the preset name), as values;
- zoom, as the same mm per screen pixel, and pan, as the same anatomy at the
  centre of each plane's view.

The panes keep their own plane orientations (a registered prior is not
resliced obliquely): the link moves points, not pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QEvent, QObject, QTimer, Signal

if TYPE_CHECKING:
    from viewer.panel import ViewerPanel
    from viewer.slice_view import SliceView

FloatArray = npt.NDArray[np.float64]


def map_point(matrix: FloatArray, lps: npt.ArrayLike) -> FloatArray:
    """``matrix`` (4×4) applied to one LPS point."""
    p = np.asarray(lps, dtype=np.float64).reshape(3)
    return np.asarray(matrix[:3, :3] @ p + matrix[:3, 3], dtype=np.float64)


class PaneLink(QObject):
    """Keeps ``secondary`` in step with ``primary`` (and back) while linked."""

    changed = Signal(bool)  # linked or not

    def __init__(self, primary: ViewerPanel, secondary: ViewerPanel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.primary = primary
        self.secondary = secondary
        self._matrix: FloatArray | None = None
        self._inverse: FloatArray | None = None
        self._busy = False  # a change we are sending must not bounce back
        self.window_linked = True
        self._connections: list[tuple[Any, Callable[..., None]]] = []
        # A view's fit changes when it is resized (layout, splitter, window) without a
        # camera signal: the cameras are matched again once the resizing has settled.
        self._resync = QTimer(self)
        self._resync.setSingleShot(True)
        self._resync.setInterval(0)
        self._resync.timeout.connect(self._resync_cameras)
        for panel in (primary, secondary):
            for view in panel.slice_views().values():
                view.installEventFilter(self)

    # ------------------------------------------------------------------ state
    @property
    def linked(self) -> bool:
        return self._matrix is not None

    @property
    def matrix(self) -> FloatArray | None:
        """Primary LPS → secondary LPS while linked, else None."""
        return None if self._matrix is None else self._matrix.copy()

    def link(self, primary_to_secondary: npt.ArrayLike | None = None, *,
             window: bool = True) -> None:
        """Link through a 4×4 (None: identity, a shared Frame of Reference); the
        secondary pane moves to the primary's cursor, window, zoom and pan at once.
        ``window=False`` leaves window / level apart (values in other units: CT and MR)."""
        matrix = np.eye(4) if primary_to_secondary is None else np.asarray(
            primary_to_secondary, dtype=np.float64).reshape(4, 4)
        self.unlink(notify=False)
        self.window_linked = bool(window)
        self._matrix, self._inverse = matrix, np.asarray(np.linalg.inv(matrix), dtype=np.float64)
        self._connect()
        self.sync_from(self.primary)
        self.changed.emit(True)

    def unlink(self, notify: bool = True) -> None:
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # the view is already gone
                pass
        self._connections.clear()
        was = self._matrix is not None
        self._matrix = self._inverse = None
        if notify and was:
            self.changed.emit(False)

    def to_secondary(self, lps: npt.ArrayLike) -> FloatArray:
        if self._matrix is None:
            raise RuntimeError("the panes are not linked")
        return map_point(self._matrix, lps)

    def to_primary(self, lps: npt.ArrayLike) -> FloatArray:
        if self._inverse is None:
            raise RuntimeError("the panes are not linked")
        return map_point(self._inverse, lps)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self._matrix is not None:
            self._resync.start()
        return False

    def _resync_cameras(self) -> None:
        if self._matrix is None:
            return
        for name in self.primary.slice_views():
            self._send_camera(self.primary, name)

    # ------------------------------------------------------------------ wiring
    def _on(self, signal: Any, slot: Callable[..., None]) -> None:
        signal.connect(slot)
        self._connections.append((signal, slot))

    def _connect(self) -> None:
        for source in (self.primary, self.secondary):
            self._on(source.cursor_model.changed,
                     lambda _p, s=source: self._send_cursor(s))
            self._on(source.window_level.changed,
                     lambda _w, _l, s=source: self._send_window(s))
            for name, view in source.slice_views().items():
                self._on(view.view_changed,
                         lambda s=source, n=name: self._send_camera(s, n))

    @contextmanager
    def _sending(self) -> Iterator[bool]:
        if self._busy or self._matrix is None:
            yield False
            return
        self._busy = True
        try:
            yield True
        finally:
            self._busy = False

    def _other(self, source: ViewerPanel) -> tuple[ViewerPanel, FloatArray]:
        assert self._matrix is not None and self._inverse is not None
        if source is self.primary:
            return self.secondary, self._matrix
        return self.primary, self._inverse

    def sync_from(self, source: ViewerPanel) -> None:
        """Bring the other pane to ``source``'s cursor, window, zoom and pan."""
        self._send_cursor(source)
        self._send_window(source)
        for name in source.slice_views():
            self._send_camera(source, name)

    def _send_cursor(self, source: ViewerPanel) -> None:
        with self._sending() as ok:
            if not ok or source.volume is None:
                return
            target, matrix = self._other(source)
            target.set_cursor_lps(map_point(matrix, source.cursor_lps()).tolist())

    def _send_window(self, source: ViewerPanel) -> None:
        with self._sending() as ok:
            if not ok or not self.window_linked:
                return
            target, _ = self._other(source)
            wl = source.window_level
            target.window_level.set(wl.width, wl.level, wl.preset)

    def _send_camera(self, source: ViewerPanel, plane: str) -> None:
        with self._sending() as ok:
            if not ok:
                return
            target, matrix = self._other(source)
            src = source.slice_views()[plane]
            dst = target.slice_views()[plane]
            if src.geometry_ is None or dst.geometry_ is None:
                return
            match_camera(src, dst, matrix)


def view_centre_lps(view: SliceView) -> FloatArray:
    """LPS mm of the point at the centre of a slice view (on its shown plane)."""
    g = view.geometry_
    assert g is not None
    fx, fy, _fz = view.renderer.GetActiveCamera().GetFocalPoint()
    offset = float(g.to_plane(view.slice_point_lps().tolist())[2])  # the shown plane
    return np.asarray(g.to_lps((fx, fy), offset), dtype=np.float64)


def match_camera(src: SliceView, dst: SliceView, matrix: FloatArray) -> None:
    """Give ``dst`` the same mm per screen pixel as ``src`` (the panes may differ in size)
    and centre it on the same anatomy."""
    src_mmpp, dst_mmpp = src.mm_per_px(), dst.mm_per_px()
    if src_mmpp > 0 and abs(dst_mmpp / src_mmpp - 1.0) > 1e-6:
        dst.set_zoom(dst.zoom_factor() * dst_mmpp / src_mmpp)
    dst.centre_on(map_point(matrix, view_centre_lps(src)).tolist())
