"""Keys and double-clicks of the viewing area whose meaning depends on the open series.

A slice view alone knows only CT's number-key presets and resets just its camera on R;
which window a number key means depends on the modality (HU presets only on CT), and R
must also bring back the series' own window, which the window knows. This event filter,
installed on every view by the main window, turns those events into signals before the
view sees them. It also remembers the view that last had keyboard focus (the "active"
view, where focus returns after a layout change) and turns a left double-click on a
view (navigate tool) into a request to maximise it or restore the layout (the PACS habit).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QWidget

_PLAIN = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)


class ViewInputFilter(QObject):
    """Watches the views of the viewing area (see the module docstring)."""

    preset_key = Signal(int)           # 0 … 9, a digit typed in a slice view
    reset_key = Signal(object)         # the slice view where R was typed
    maximise_requested = Signal(str)   # view name ("axial" … "3d") double-clicked

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._names: dict[QObject, str] = {}
        self._keys: set[QObject] = set()
        self._last_focused: QWidget | None = None

    def watch(self, view: QWidget, name: str, *, keys: bool = True) -> None:
        """Filter ``view``'s events; ``keys`` False leaves its keys alone (the 3-D view
        has its own R)."""
        if view in self._names:
            return
        self._names[view] = name
        if keys:
            self._keys.add(view)
        view.installEventFilter(self)
        view.destroyed.connect(lambda _o=None, v=view: self._forget(v))

    def _forget(self, view: QObject) -> None:
        self._names.pop(view, None)
        self._keys.discard(view)
        if self._last_focused is view:
            self._last_focused = None

    def last_focused(self) -> QWidget | None:
        """The watched view that last had keyboard focus (None before any)."""
        return self._last_focused

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.FocusIn and isinstance(watched, QWidget):
            self._last_focused = watched
        elif (kind == QEvent.Type.KeyPress and watched in self._keys
              and isinstance(event, QKeyEvent) and event.modifiers() in _PLAIN):
            key = event.key()
            if Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
                self.preset_key.emit(int(key) - int(Qt.Key.Key_0))
                return True
            if key == Qt.Key.Key_R:
                self.reset_key.emit(watched)
                return True
        elif (kind == QEvent.Type.MouseButtonDblClick and isinstance(event, QMouseEvent)
              and event.button() == Qt.MouseButton.LeftButton
              and getattr(watched, "tool", "navigate") == "navigate"):
            self.maximise_requested.emit(self._names.get(watched, ""))
            return True
        return super().eventFilter(watched, event)
