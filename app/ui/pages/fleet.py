"""The Fleet page: discovered and enrolled devices with their health, model, install status
and last sighting; discovery, enrollment with a host-key check, forget, and pull.

Everything goes through the services the ``edgeloop devices`` commands call: the mDNS
:class:`~app.fleet.discovery.Discovery` and :class:`~app.fleet.registry.DeviceRegistry`,
``probe`` / ``enroll`` / ``forget`` and ``pull_devices``.

Discovery runs while the engineer has it switched on (the Discover button), not whenever the
page is open: it sends multicast queries on the interfaces typed next to the button, and on a
factory network that is a choice (which interface, and when) the engineer makes, as with
``edgeloop devices discover --interface``; annotators, who may not manage devices, never
start it by opening the page. Once on, it runs on the network pool until switched off or
cancelled from the status bar, and every device it sees is recorded (on the database lane)
and shows up in the table at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout,
)

from app.core.models import DeviceHealth, EnrollmentState
from app.core.progress import CancelToken, ProgressFn
from app.core.roles import Permission, authorize
from app.fleet.context import FleetContext
from app.fleet.discovery import Sighting, browse_until_cancelled
from app.fleet.enrollment import Bootstrap, EnrollmentResult, enroll, forget, probe
from app.fleet.pull import pull_devices
from app.fleet.registry import DeviceRegistry
from app.fleet.ssh import HostKeyInfo
from app.fleet.summaries import DeviceRow, device_rows
from app.ui.enroll_dialog import EnrollDialog, ForgetConfirmation, KeyFileChooser
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table
from app.ui.tasks import Task

# As `edgeloop devices discover`: this machine only, where simulated devices advertise. On a
# factory network the engineer types the workstation's address on that network instead.
DEFAULT_INTERFACES = ("127.0.0.1",)

COLUMNS = ("Device", "Name", "Enrollment", "Health", "Model", "Install status", "Address",
           "Last seen (UTC)", "Captures", "Quarantined")
HEALTH_COLUMN = COLUMNS.index("Health")
# Light tints under dark text, readable on light and dark palettes alike.
HEALTH_COLOURS: dict[DeviceHealth, str] = {
    DeviceHealth.HEALTHY: "#c8ebcf",  # ok
    DeviceHealth.DEGRADED: "#f5c4be",  # unhealthy: errors, dropped frames, low fps
    DeviceHealth.STALE: "#f7e0a3",  # its status file stopped changing
    DeviceHealth.OFFLINE: "#d4d4d4",  # unreachable
}
HEALTH_TEXT = "#1b1b1b"


def device_cells(row: DeviceRow) -> tuple[object, ...]:
    """A device as the table shows it."""
    return (row.uid, row.name, row.enrollment_text, row.health_text, row.model_version or "-",
            row.install_status or "-",
            f"{row.address}:{row.port}" if row.address else "-",
            row.last_seen.strftime("%Y-%m-%d %H:%M") if row.last_seen else "-",
            row.captures, row.quarantined)


class DeviceTableModel(RowsTableModel[DeviceRow]):
    """The device table, its health cells coloured by state."""

    def __init__(self) -> None:
        super().__init__(COLUMNS, device_cells)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (index.isValid() and index.column() == HEALTH_COLUMN
                and role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole)):
            colour = HEALTH_COLOURS.get(self.rows[index.row()].health)
            if colour is None:
                return None
            return QBrush(QColor(colour if role == Qt.ItemDataRole.BackgroundRole
                                 else HEALTH_TEXT))
        return super().data(index, role)


def parse_interfaces(text: str) -> list[str]:
    """The addresses typed in the interfaces box (commas or spaces between them)."""
    return [part for part in re.split(r"[,\s]+", text) if part]


class FleetPage(Page):
    """Devices and what they run: discover, enroll, forget, and pull every enrolled device."""

    title = "Fleet"
    sighted = Signal(object)  # a Sighting; emitted on the discovery worker, handled here

    def __init__(self, context: PageContext, interfaces: Sequence[str] = DEFAULT_INTERFACES,
                 choose_key_file: KeyFileChooser | None = None) -> None:
        super().__init__(context)
        self.choose_key_file = choose_key_file
        self.model = DeviceTableModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (110, 125, 110, 75, 65, 125, 115, 120, 70))
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        may_manage = context.actor.may(Permission.MANAGE_DEVICES)
        self.discover_button = QPushButton("Discover")
        self.discover_button.setCheckable(True)
        self.interfaces = QLineEdit(", ".join(interfaces))
        self.interfaces.setMaximumWidth(220)
        self.interfaces.setToolTip(
            "IPv4 addresses of this workstation's interfaces to listen on, comma-separated. "
            "127.0.0.1 finds simulated devices on this machine; for real devices, give the "
            "workstation's address on the factory network.")
        self.enroll_button = QPushButton("Enroll...")
        self.forget_button = QPushButton("Forget...")
        if may_manage:
            self.discover_button.setToolTip("Listen for devices' advertisements (mDNS) until "
                                            "switched off")
            self.enroll_button.setToolTip("Check the selected device's host-key fingerprint "
                                          "and enroll it")
            self.forget_button.setToolTip("Stop trusting the selected device")
        else:
            for button, what in ((self.discover_button, "discover"),
                                 (self.enroll_button, "enroll"), (self.forget_button, "forget")):
                button.setToolTip(f"Your role may not {what} devices (it needs the "
                                  "manage devices permission)")
        self.discover_button.setEnabled(may_manage)
        self.interfaces.setEnabled(may_manage)
        self.refresh_button = QPushButton("Refresh")
        self.pull_button = QPushButton("Pull captures")
        self.pull_button.setEnabled(context.actor.may(Permission.PULL))
        self.pull_button.setToolTip("Pull new captures from every enrolled device"
                                    if context.actor.may(Permission.PULL)
                                    else "Your role may not pull captures")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.discover_button.toggled.connect(self._toggle_discovery)
        self.enroll_button.clicked.connect(self.enroll_selected)
        self.forget_button.clicked.connect(self.forget_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.pull_button.clicked.connect(self.pull)
        self.sighted.connect(self._on_sighting)

        self.enroll_dialog: EnrollDialog | None = None
        self.forget_box: ForgetConfirmation | None = None
        self.discovery: Task | None = None
        self._pending: dict[str, Sighting] = {}  # seen, not yet recorded (newest per uid)
        self._recording = False
        self._trusting = False  # a probe, enroll or forget is under way (one at a time)

        bar = QHBoxLayout()
        bar.addWidget(self.discover_button)
        bar.addWidget(QLabel("on"))
        bar.addWidget(self.interfaces)
        bar.addSpacing(16)
        bar.addWidget(self.enroll_button)
        bar.addWidget(self.forget_button)
        bar.addStretch(1)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.pull_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self._update_buttons()

    # -- the table --------------------------------------------------------------------------
    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading devices", lambda progress, cancel: device_rows(db))
        task.succeeded.connect(self._show_rows)

    def _show_rows(self, rows: list[DeviceRow]) -> None:
        # Discovery refreshes the table while the engineer works in it: keep their selection.
        keep = self.selected()
        self.model.set_rows(rows)
        if keep is not None:
            for position, row in enumerate(rows):
                if row.uid == keep.uid:
                    self.table.selectRow(position)
        self._update_buttons()

    def selected(self) -> DeviceRow | None:
        """The selected device, as the table last showed it."""
        chosen = self.table.selectionModel().selectedRows()
        if not chosen:
            return None
        position = chosen[0].row()
        return self.model.rows[position] if 0 <= position < len(self.model.rows) else None

    def _update_buttons(self) -> None:
        row = self.selected()
        ready = (self.context.actor.may(Permission.MANAGE_DEVICES) and row is not None
                 and not self._trusting)
        self.enroll_button.setEnabled(ready and row.enrollment is not EnrollmentState.ENROLLED)
        self.forget_button.setEnabled(ready and row.enrollment is not EnrollmentState.FORGOTTEN)

    def _set_trusting(self, busy: bool) -> None:
        self._trusting = busy
        self._update_buttons()

    # -- discovery --------------------------------------------------------------------------
    def _toggle_discovery(self, on: bool) -> None:
        if on and self.discovery is None:
            self._start_discovery()
        elif not on and self.discovery is not None:
            self.discovery.cancel()

    def _start_discovery(self) -> None:
        interfaces = parse_interfaces(self.interfaces.text())
        found = self.sighted.emit  # a signal: Qt queues it to this page's (the main) thread
        task = self.context.tasks.run(
            f"Discovering devices on {', '.join(interfaces) or '(no interface)'}",
            lambda progress, cancel: browse_until_cancelled(interfaces, found, progress, cancel),
            network=True)
        self.discovery = task
        self.interfaces.setEnabled(False)
        self.discover_button.setText("Stop discovery")
        task.finished.connect(self._discovery_ended)

    def _discovery_ended(self) -> None:
        self.discovery = None
        self.discover_button.blockSignals(True)
        self.discover_button.setChecked(False)
        self.discover_button.blockSignals(False)
        self.discover_button.setText("Discover")
        self.interfaces.setEnabled(self.context.actor.may(Permission.MANAGE_DEVICES))

    def _on_sighting(self, sighting: Sighting) -> None:
        self._pending[sighting.uid] = sighting
        self._record_pending()

    def _record_pending(self) -> None:
        # One recording at a time; sightings arriving meanwhile go in the next batch.
        if self._recording or not self._pending:
            return
        batch, self._pending = list(self._pending.values()), {}
        project, actor = self.context.project, self.context.actor

        def record(progress: ProgressFn, cancel: CancelToken) -> list[DeviceRow]:
            authorize(project.db, project.audit, actor, Permission.MANAGE_DEVICES, "discovery")
            DeviceRegistry(project.db, project.audit, project.clock).record_many(batch)
            return device_rows(project.db)

        self._recording = True
        task = self.context.tasks.run("Recording discovered devices", record)
        task.succeeded.connect(self._show_rows)
        task.finished.connect(self._recorded)

    def _recorded(self) -> None:
        self._recording = False
        self._record_pending()

    # -- enroll -----------------------------------------------------------------------------
    def enroll_selected(self) -> None:
        """Read the selected device's host key, then ask the engineer to confirm it."""
        row = self.selected()
        if row is None:
            return
        project = self.context.project
        self._set_trusting(True)
        self.status.setText(f"Reading the host key of {row.uid}...")
        task = self.context.tasks.run(
            f"Reading the host key of {row.uid}",
            lambda progress, cancel: probe(FleetContext.of(project), row.uid), network=True)
        task.succeeded.connect(lambda host_key: self._confirm(row, host_key))
        task.failed.connect(lambda message: self._trust_ended(
            f"The host key of {row.uid} could not be read: {message}"))
        task.cancelled.connect(lambda: self._trust_ended(""))

    def _confirm(self, row: DeviceRow, host_key: HostKeyInfo) -> None:
        dialog = EnrollDialog(row, host_key, self, self.choose_key_file)
        self.enroll_dialog = dialog
        self.status.setText(f"Compare the fingerprint of {row.uid} with the one on the device.")
        dialog.accepted.connect(lambda: self._enroll(row, dialog.confirmed_fingerprint,
                                                     dialog.user(), dialog.bootstrap()))
        dialog.rejected.connect(lambda: self._trust_ended(
            f"Nothing was enrolled: the fingerprint of {row.uid} was not confirmed."))
        dialog.finished.connect(lambda _result: self._dialog_closed(dialog))
        dialog.open()

    def _dialog_closed(self, dialog: EnrollDialog) -> None:
        if self.enroll_dialog is dialog:
            self.enroll_dialog = None
        dialog.deleteLater()

    def _enroll(self, row: DeviceRow, fingerprint: str, user: str, bootstrap: Bootstrap) -> None:
        project, actor = self.context.project, self.context.actor
        self.status.setText(f"Enrolling {row.uid}...")
        # No address: like `edgeloop devices enroll UID`, the service reaches the device where
        # discovery last saw it, and refuses it there unless it shows the confirmed key.
        task = self.context.tasks.run(
            f"Enrolling {row.uid}",
            lambda progress, cancel: enroll(FleetContext.of(project), actor, row.uid,
                                            confirmed_fingerprint=fingerprint, user=user,
                                            bootstrap=bootstrap),
            network=True)
        task.succeeded.connect(self._enrolled)
        task.failed.connect(lambda message: self._trust_ended(
            f"{row.uid} was not enrolled: {message}"))
        task.cancelled.connect(lambda: self._trust_ended(f"Enrolling {row.uid} was cancelled."))

    def _enrolled(self, result: EnrollmentResult) -> None:
        self.status.setText(f"Enrolled {result.uid} at {result.address}:{result.port}; host key "
                            f"{result.fingerprint} pinned.")
        self._set_trusting(False)
        self.refresh()

    def _trust_ended(self, message: str) -> None:
        # The main window shows a failure as a dialog; this line stays on the page after it.
        self.status.setText(message)
        self._set_trusting(False)
        self.refresh()

    # -- forget -----------------------------------------------------------------------------
    def forget_selected(self) -> None:
        """Ask, naming the device, then stop trusting it."""
        row = self.selected()
        if row is None:
            return
        box = ForgetConfirmation(row, self)
        self.forget_box = box
        self._set_trusting(True)
        box.finished.connect(lambda _result: self._forget_answered(box, row))
        box.open()

    def _forget_answered(self, box: ForgetConfirmation, row: DeviceRow) -> None:
        confirmed = box.confirmed()
        if self.forget_box is box:
            self.forget_box = None
        box.deleteLater()
        if not confirmed:
            self.status.setText(f"{row.uid} stays {row.enrollment.value}.")
            self._set_trusting(False)
            return
        project, actor = self.context.project, self.context.actor
        task = self.context.tasks.run(
            f"Forgetting {row.uid}",
            lambda progress, cancel: forget(FleetContext.of(project), actor, row.uid))
        task.succeeded.connect(lambda _: self._trust_ended(
            f"Forgot {row.uid}; its captures stay in the project."))
        task.failed.connect(lambda message: self._trust_ended(
            f"{row.uid} was not forgotten: {message}"))

    # -- pull -------------------------------------------------------------------------------
    def pull(self) -> None:
        project, actor = self.context.project, self.context.actor
        ctx = FleetContext.of(project)
        self.pull_button.setEnabled(False)
        task = self.context.tasks.run(
            "Pulling captures",
            lambda progress, cancel: pull_devices(ctx, actor, progress=progress, cancel=cancel),
            network=True)
        task.finished.connect(lambda: self.pull_button.setEnabled(True))
        task.succeeded.connect(lambda _: self.refresh())
