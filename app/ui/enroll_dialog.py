"""The dialogs that change whether the project trusts a device: enroll it, or forget it.

:class:`EnrollDialog` shows who the device says it is and the SSH host-key fingerprint its
server presented a moment ago, and enables Enroll only once the engineer has ticked that the
fingerprint is the same as the one on the device's label or console: discovery only proposes
(DESIGN.md), and this comparison is what makes the key trusted. It also takes what the first
login needs (the SSH account, a bootstrap key file or password), as ``edgeloop devices
enroll`` does with ``--ssh-user``, ``--bootstrap-key`` and ``--password``.
:class:`ForgetConfirmation` names the device before the project stops trusting it.

Pages open both with ``open()`` (window-modal, no nested event loop) and react to their
``accepted`` / ``finished`` signals, so a test answers them by clicking their buttons.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
    QLabel, QLineEdit, QMessageBox, QPushButton, QVBoxLayout, QWidget,
)

from app.fleet.enrollment import DEFAULT_SSH_USER, Bootstrap
from app.fleet.ssh import HostKeyInfo
from app.fleet.summaries import DeviceRow

KeyFileChooser = Callable[[], Path | None]


def _open_dialog(parent: QWidget) -> KeyFileChooser:
    def choose() -> Path | None:
        name, _ = QFileDialog.getOpenFileName(parent, "Bootstrap key (ed25519 private key)")
        return Path(name) if name else None
    return choose


class EnrollDialog(QDialog):
    """Confirm a device's host-key fingerprint (and give first-login credentials) to enroll it.

    ``accepted`` means the engineer ticked that the fingerprints match and clicked Enroll;
    :attr:`confirmed_fingerprint` and :meth:`bootstrap` then say what to enroll with.
    """

    def __init__(self, device: DeviceRow, host_key: HostKeyInfo, parent: QWidget | None = None,
                 choose_key_file: KeyFileChooser | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.host_key = host_key
        self.choose_key_file = choose_key_file or _open_dialog(self)
        self.setWindowTitle(f"Enroll device {device.uid}")

        facts = QFormLayout()
        address = f"{device.address}:{device.port}" if device.address else "-"
        for label, value in (("Device id", device.uid), ("Name", device.name),
                             ("Address", address), ("Model", device.model_version or "-"),
                             ("Agent version", device.agent_version or "-"),
                             ("Host key type", host_key.key_type)):
            facts.addRow(label, _selectable(value))
        self.fingerprint = _selectable(host_key.fingerprint)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(mono.pointSizeF() * 1.25)
        mono.setWeight(QFont.Weight.Bold)
        self.fingerprint.setFont(mono)
        facts.addRow("Fingerprint", self.fingerprint)

        advice = QLabel("Compare this fingerprint, character by character, with the one printed "
                        "on the device's label or shown on its own console. If they differ, "
                        "do not enroll: another machine may be answering at this address.")
        advice.setWordWrap(True)
        self.matches = QCheckBox("The fingerprint on the device is exactly the same")

        self.ssh_user = QLineEdit(DEFAULT_SSH_USER)
        self.key_file = QLineEdit()
        self.key_file.setPlaceholderText("ed25519 private key, if the device asks for one")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_file, 1)
        key_row.addWidget(browse)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("if the device's account has one")
        first_login = QGroupBox("First login (until the workstation's own key is installed)")
        login_form = QFormLayout(first_login)
        login_form.addRow("SSH account", self.ssh_user)
        login_form.addRow("Bootstrap key", key_row)
        login_form.addRow("Password", self.password)

        buttons = QDialogButtonBox()
        self.enroll_button = buttons.addButton("Enroll", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.enroll_button.setEnabled(False)
        self.enroll_button.setToolTip("Tick the box above once the fingerprints match")
        self.matches.toggled.connect(self.enroll_button.setEnabled)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.cancel_button.setDefault(True)  # Return must not enroll by accident

        layout = QVBoxLayout(self)
        layout.addLayout(facts)
        layout.addWidget(advice)
        layout.addWidget(self.matches)
        layout.addWidget(first_login)
        layout.addWidget(buttons)
        self.resize(620, self.sizeHint().height())

    @property
    def confirmed_fingerprint(self) -> str:
        """The fingerprint the engineer compared and confirmed (enroll pins this one)."""
        return self.host_key.fingerprint

    def bootstrap(self) -> Bootstrap:
        """The first-login credentials typed in (none: the workstation key must already work)."""
        key_file = self.key_file.text().strip()
        return Bootstrap(password=self.password.text() or None,
                         key_file=Path(key_file).expanduser() if key_file else None)

    def user(self) -> str:
        """The SSH account on the device."""
        return self.ssh_user.text().strip() or DEFAULT_SSH_USER

    def _browse(self) -> None:
        path = self.choose_key_file()
        if path is not None:
            self.key_file.setText(str(path))


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    # Selectable, so a fingerprint can be copied to compare it with a ticket or a log.
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ForgetConfirmation(QMessageBox):
    """Asks before the project stops trusting ``device``; :meth:`confirmed` after it closes."""

    def __init__(self, device: DeviceRow, parent: QWidget | None = None) -> None:
        super().__init__(QMessageBox.Icon.Warning, f"Forget device {device.uid}",
                         f"Forget {device.uid} ({device.name})?", parent=parent)
        self.setInformativeText(
            "The project stops trusting its host key: it must be enrolled again, with its "
            "fingerprint confirmed, before the next pull or deploy. Its captures stay.")
        self.forget_button = self.addButton("Forget", QMessageBox.ButtonRole.DestructiveRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.cancel_button)

    def confirmed(self) -> bool:
        """Whether the engineer clicked Forget."""
        return self.clickedButton() is self.forget_button
