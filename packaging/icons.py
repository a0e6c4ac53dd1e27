"""Lucida's icon for Windows (.ico) and macOS (.icns), from the one drawing Linux installs
(packaging/linux/lucida.svg): Qt's SVG renderer rasterises it, Pillow writes the formats.

    python packaging/icons.py build/icons        # -> lucida.png, lucida.ico, lucida.icns
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SVG = Path(__file__).resolve().parent / "linux" / "lucida.svg"
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
RASTER = 1024  # the largest .icns entry (512 pt at 2x)


def render_png(out: Path, svg: Path = SVG, size: int = RASTER) -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no window is shown
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a drawable SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out)):
        raise OSError(f"could not write {out}")
    return out


def write_icons(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    png = render_png(folder / "lucida.png")
    with Image.open(png) as image:
        image.save(folder / "lucida.ico", sizes=ICO_SIZES)
        image.save(folder / "lucida.icns")
    return {"png": png, "ico": folder / "lucida.ico", "icns": folder / "lucida.icns"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: icons.py OUT_FOLDER", file=sys.stderr)
        return 2
    for path in write_icons(Path(args[0])).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
