"""A small dialog asking why, before an action that the audit trail records with its reason.

Opened with ``open()`` (window-modal, not a nested event loop), so the caller goes on at once
and gets the reason through ``chosen``; tests type into ``reason`` and click ``ok_button``.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget


class ReasonDialog(QDialog):
    """Asks for a non-empty reason; ``chosen`` carries it when the user confirms."""

    chosen = Signal(str)

    def __init__(self, title: str, prompt: str, action: str, parent: QWidget | None = None,
                 default: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(420)
        self.prompt = QLabel(prompt)
        self.prompt.setWordWrap(True)
        self.reason = QLineEdit(default)
        self.reason.setPlaceholderText("kept in the audit trail")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(self._enable)
        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt)
        layout.addWidget(self.reason)
        layout.addWidget(buttons)
        self._enable()

    def _enable(self) -> None:
        self.ok_button.setEnabled(bool(self.reason.text().strip()))

    def accept(self) -> None:
        if not self.reason.text().strip():
            return
        super().accept()
        self.chosen.emit(self.reason.text().strip())
