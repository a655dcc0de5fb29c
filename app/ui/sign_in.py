"""The sign-in dialog: a local user's name and password, checked by app.core.users."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout,
)

from app.core.errors import EdgeLoopError
from app.core.project import Project
from app.core.roles import Actor
from app.core.users import authenticate


class SignInDialog(QDialog):
    """Asks for a user and password until they match a user of the project, or Cancel."""

    def __init__(self, project: Project, user: str = "") -> None:
        super().__init__()
        self.project = project
        self.actor: Actor | None = None
        self.setWindowTitle(f"Sign in to {project.name}")
        self.user = QLineEdit(user)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        form = QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.try_sign_in)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        (self.password if user else self.user).setFocus()

    def try_sign_in(self) -> None:
        try:
            self.actor = authenticate(self.project.db, self.project.audit, self.user.text(),
                                      self.password.text())
        except EdgeLoopError as exc:
            self.error.setText(str(exc))
            self.password.clear()
            return
        self.accept()
