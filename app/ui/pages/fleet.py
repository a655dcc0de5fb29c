"""The Fleet page: devices, their enrollment, health, model and last sighting; pull."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableView, QVBoxLayout

from app.core.roles import Permission
from app.fleet.context import FleetContext
from app.fleet.pull import pull_devices
from app.fleet.summaries import DeviceRow, device_rows
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("Device", "Name", "Enrollment", "Health", "Model", "Address", "Last seen",
           "Captures", "Quarantined")


def device_cells(row: DeviceRow) -> tuple[object, ...]:
    """A device as the table shows it."""
    return (row.uid, row.name, row.enrollment.value, row.health.value, row.model_version or "-",
            f"{row.address}:{row.port}" if row.address else "-",
            row.last_seen.strftime("%Y-%m-%d %H:%M:%S") if row.last_seen else "-",
            row.captures, row.quarantined)


class FleetPage(Page):
    """Devices and what they run; the Pull button pulls every enrolled device."""

    title = "Fleet"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.model: RowsTableModel[DeviceRow] = RowsTableModel(COLUMNS, device_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (110, 170, 100, 90, 90, 150, 150, 80))
        self.refresh_button = QPushButton("Refresh")
        self.pull_button = QPushButton("Pull captures")
        self.pull_button.setEnabled(context.actor.may(Permission.PULL))
        self.pull_button.setToolTip("Pull new captures from every enrolled device"
                                    if context.actor.may(Permission.PULL)
                                    else "Your role may not pull captures")
        self.refresh_button.clicked.connect(self.refresh)
        self.pull_button.clicked.connect(self.pull)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.pull_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table)

    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading devices", lambda progress, cancel: device_rows(db))
        task.succeeded.connect(self.model.set_rows)

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
