"""Icons from resources/: found beside the source tree, inside a PyInstaller bundle, or where
a wheel install put them (``<prefix>/share/edgeloop/resources``, pyproject's data-files).

The page icons are single-colour line drawings whose SVG says ``currentColor``; they are drawn
in the theme's text colour, so one file serves the light and the dark theme.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer


def resources_dir() -> Path:
    """resources/ of the bundle PyInstaller unpacked, of a source checkout (an editable
    install included), or of a wheel install."""
    bundled = getattr(sys, "_MEIPASS", None)
    if bundled is not None:
        return Path(bundled) / "resources"
    checkout = Path(__file__).resolve().parents[2] / "resources"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "edgeloop" / "resources"


@cache
def _svg(name: str) -> str:
    path = resources_dir() / "icons" / f"{name}.svg"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def icon(name: str, color: QColor | str = "#444444") -> QIcon:
    """The icon ``name`` drawn in ``color``; an empty icon when there is no such file
    (a missing icon must never stop the app)."""
    svg = _svg(name)
    if not svg:
        return QIcon()
    colour = QColor(color).name()
    renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", colour).encode()))
    result = QIcon()
    for size in (16, 24, 32, 48):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        result.addPixmap(pixmap)
    return result


def app_icon() -> QIcon:
    """EdgeLoop's own icon (window title bar, task bar)."""
    path = resources_dir() / "icons" / "edgeloop.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
