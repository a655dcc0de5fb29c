"""Light and dark themes: Qt's Fusion style with a palette of our own.

Fusion draws the same on every platform, so a palette is all a theme needs; the choice is
kept in QSettings (``ui/theme``) and applied before the window is built.
"""

from __future__ import annotations

import enum

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


class Theme(str, enum.Enum):
    LIGHT = "light"
    DARK = "dark"

    @classmethod
    def parse(cls, value: object) -> Theme:
        """A stored setting as a theme; anything unknown is the light theme."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.LIGHT


_ROLES = QPalette.ColorRole
_DARK = {
    _ROLES.Window: "#1e2227", _ROLES.WindowText: "#d7dae0", _ROLES.Base: "#16191d",
    _ROLES.AlternateBase: "#22262c", _ROLES.ToolTipBase: "#2b3038",
    _ROLES.ToolTipText: "#d7dae0", _ROLES.Text: "#d7dae0", _ROLES.Button: "#2a2f36",
    _ROLES.ButtonText: "#d7dae0", _ROLES.BrightText: "#ff6b6b", _ROLES.Link: "#58a6ff",
    _ROLES.Highlight: "#1f6feb", _ROLES.HighlightedText: "#ffffff",
    _ROLES.PlaceholderText: "#7d8590",
}
_LIGHT = {
    _ROLES.Window: "#f3f4f6", _ROLES.WindowText: "#1f2328", _ROLES.Base: "#ffffff",
    _ROLES.AlternateBase: "#f6f8fa", _ROLES.ToolTipBase: "#ffffe1",
    _ROLES.ToolTipText: "#1f2328", _ROLES.Text: "#1f2328", _ROLES.Button: "#e9ebef",
    _ROLES.ButtonText: "#1f2328", _ROLES.BrightText: "#cf222e", _ROLES.Link: "#0969da",
    _ROLES.Highlight: "#1f6feb", _ROLES.HighlightedText: "#ffffff",
    _ROLES.PlaceholderText: "#6e7781",
}


def palette(theme: Theme) -> QPalette:
    """The palette of ``theme``; disabled controls are greyed in both."""
    result = QPalette()
    for role, colour in (_DARK if theme is Theme.DARK else _LIGHT).items():
        result.setColor(role, QColor(colour))
    muted = QColor("#6e7681" if theme is Theme.DARK else "#8c959f")
    for role in (_ROLES.WindowText, _ROLES.Text, _ROLES.ButtonText):
        result.setColor(QPalette.ColorGroup.Disabled, role, muted)
    return result


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Restyle the whole application (open windows repaint at once)."""
    app.setStyle("Fusion")
    app.setPalette(palette(theme))


def text_colour(theme: Theme) -> QColor:
    """The colour icons are drawn in under ``theme``."""
    return QColor((_DARK if theme is Theme.DARK else _LIGHT)[_ROLES.WindowText])
