"""The labeling pane's searchable class list: a filter line above the schema's classes.

Each row shows the class's colour, its number key (1..9 for the first nine, in schema order,
whatever the filter hides) and its name; the capture's current class is the highlighted
row. Typing filters the rows; Enter in the filter picks the first row left; a click picks a
row. ``picked`` says which class the user chose: the pane sets it as the capture's class
(and the selected box's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPixmap
from PySide6.QtWidgets import QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

NUMBER_KEYS = 9


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(colour)
    return QIcon(pixmap)


class _SearchLine(QLineEdit):
    """The filter line: while it has focus, plain keys are typing, not the page's shortcuts
    (Enter picks a class here, Left and Right move the cursor, digits are text)."""

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            held = event.modifiers() & (Qt.KeyboardModifier.ControlModifier
                                        | Qt.KeyboardModifier.AltModifier
                                        | Qt.KeyboardModifier.MetaModifier)
            if not held:
                event.accept()
                return True
        return super().event(event)


class ClassList(QWidget):
    """The classes of the schema, filtered by a search line; ``picked(name)`` on a choice."""

    picked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = _SearchLine()
        self.search.setPlaceholderText("Search classes")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Type to filter; Enter picks the first class left")
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._pick_first)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.itemClicked.connect(lambda item: self.picked.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.list.itemActivated.connect(lambda item: self.picked.emit(item.data(Qt.ItemDataRole.UserRole)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        self.names: tuple[str, ...] = ()

    def set_classes(self, names: Sequence[str], colours: Mapping[str, QColor]) -> None:
        """Show the schema's classes, in order."""
        self.names = tuple(names)
        self.list.clear()
        for i, name in enumerate(self.names):
            key = f"{i + 1}" if i < NUMBER_KEYS else " "
            item = QListWidgetItem(_swatch(colours.get(name, QColor("#808080"))), f"{key}   {name}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            if i < NUMBER_KEYS:
                item.setToolTip(f"Key {i + 1}: {name}")
            self.list.addItem(item)
        self._filter(self.search.text())

    def class_for_key(self, number: int) -> str | None:
        """The class number key ``number`` (1-based) picks; None beyond the schema."""
        return self.names[number - 1] if 1 <= number <= min(len(self.names), NUMBER_KEYS) else None

    def show_current(self, name: str | None) -> None:
        """Highlight the capture's class (None: no row)."""
        self.list.blockSignals(True)
        self.list.clearSelection()
        self.list.setCurrentItem(None)
        if name is not None and name in self.names:
            item = self.list.item(self.names.index(name))
            self.list.setCurrentItem(item)
            item.setSelected(True)
            self.list.scrollToItem(item)
        self.list.blockSignals(False)

    def visible_names(self) -> list[str]:
        """The classes the filter leaves, in order."""
        return [self.names[i] for i in range(self.list.count()) if not self.list.item(i).isHidden()]

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.list.count()):
            self.list.item(i).setHidden(bool(needle) and needle not in self.names[i].lower())

    def _pick_first(self) -> None:
        left = self.visible_names()
        if left:
            self.picked.emit(left[0])
