"""A drop-down whose choices carry typed Python values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QComboBox


class ChoiceCombo(QComboBox):
    """A drop-down of (text, value) pairs; the values (datetimes, enums, None for "any")
    are kept here, in Python, typed, rather than converted into and out of Qt's item data.
    """

    def __init__(self, choices: Sequence[tuple[str, object]]) -> None:
        super().__init__()
        self.values: list[object] = []
        self.set_choices(choices)

    def set_choices(self, choices: Sequence[tuple[str, object]]) -> None:
        """Replace the choices, keeping the chosen value if it is still offered (silently:
        this is not the user choosing)."""
        kept = self.value()
        self.blockSignals(True)
        self.clear()
        self.values = [value for _, value in choices]
        self.addItems([text for text, _ in choices])
        self.setCurrentIndex(self.values.index(kept) if kept in self.values else 0)
        self.blockSignals(False)

    def value(self) -> Any:
        index = self.currentIndex()
        return self.values[index] if 0 <= index < len(self.values) else None
