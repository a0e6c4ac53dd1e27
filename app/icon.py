"""Lucida's own icon for its windows (title bar, task bar, Alt+Tab).

The drawing is ``resources/icons/lucida.svg``, the same picture the installers put in
the desktop menu (packaging/linux/lucida.svg, .ico/.icns made from it). Qt draws it
through its SVG icon engine / image plugin, which a packaged build must carry.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

ICON_FILE = Path(__file__).resolve().parent.parent / "resources" / "icons" / "lucida.svg"


def app_icon() -> QIcon:
    """The application icon; a null QIcon (Qt's default icon shows) if it cannot be read."""
    return QIcon(str(ICON_FILE)) if ICON_FILE.is_file() else QIcon()
