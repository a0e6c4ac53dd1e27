"""Dark reading-room theme: Fusion style, a dark palette and a small style sheet.

Reading rooms are dim; a bright UI around a grey-scale image ruins the
observer's adaptation. Backgrounds stay near 8 % luminance, text is light grey
(never pure white), and the one accent colour is a muted blue.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEME_DIR = Path(__file__).resolve().parent.parent / "resources" / "theme"

_COLORS: dict[QPalette.ColorRole, str] = {
    QPalette.ColorRole.Window: "#1b1d20",
    QPalette.ColorRole.WindowText: "#c8ced6",
    QPalette.ColorRole.Base: "#131517",
    QPalette.ColorRole.AlternateBase: "#171a1d",
    QPalette.ColorRole.ToolTipBase: "#23272c",
    QPalette.ColorRole.ToolTipText: "#e0e4e8",
    QPalette.ColorRole.PlaceholderText: "#6b737c",
    QPalette.ColorRole.Text: "#c8ced6",
    QPalette.ColorRole.Button: "#23272c",
    QPalette.ColorRole.ButtonText: "#c8ced6",
    QPalette.ColorRole.BrightText: "#ff8a80",
    QPalette.ColorRole.Light: "#2f343a",
    QPalette.ColorRole.Midlight: "#272b30",
    QPalette.ColorRole.Mid: "#202327",
    QPalette.ColorRole.Dark: "#111315",
    QPalette.ColorRole.Shadow: "#000000",
    QPalette.ColorRole.Highlight: "#2d4461",
    QPalette.ColorRole.HighlightedText: "#e6ebf0",
    QPalette.ColorRole.Link: "#7aa2d6",
    QPalette.ColorRole.LinkVisited: "#9a8ad6",
}


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, color in _COLORS.items():
        palette.setColor(role, QColor(color))
    disabled = QColor("#5c636b")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


def style_sheet() -> str:
    path = THEME_DIR / "dark.qss"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion + dark palette + resources/theme/dark.qss on the whole application."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(style_sheet())
