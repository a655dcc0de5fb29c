"""The Deploy page: start a staged rollout, watch each stage and device live, halt, roll back.

The same services as ``edgeloop deploy`` and ``edgeloop rollout halt|rollback``: Start runs
start_rollout (database lane) then run_rollout (network pool); Halt and Roll back ask for a
reason first. While the selected rollout runs, or while this page's work on it runs, a timer
reads its view (rollout_view) about once a second, so every device's state shows as it moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractItemModel, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPushButton, QSplitter, QTableView, QVBoxLayout, QWidget,
)

from app.core.models import EnrollmentState, ModelStatus, RolloutState
from app.core.roles import Permission
from app.fleet.context import FleetContext
from app.fleet.deploy import halt_rollout, run_rollout, start_rollout
from app.fleet.releases import list_releases
from app.fleet.rollback import RollbackResult, roll_back_rollout
from app.fleet.summaries import RolloutView, device_rows, recent_rollouts, rollout_view
from app.ui.pages.base import Page, PageContext, configure_table
from app.ui.pages.rollout_form import NewRolloutForm, RolloutRequest
from app.ui.pages.rollout_tables import (
    deployments_model, may_roll_back, rollouts_model, stage_rows, stages_model, summary_text,
)
from app.ui.reason_dialog import ReasonDialog
from app.ui.tasks import Task

POLL_MS = 1000
DEPLOYABLE = (ModelStatus.APPROVED.value, ModelStatus.DEPLOYED.value)
NOT_ALLOWED = "Your role may not deploy models"


@dataclass(frozen=True)
class DeployData:
    """What the page loads at once: deployable releases, enrolled devices, recent rollouts."""

    versions: list[str]
    devices: list[tuple[str, str]]
    rollouts: list[RolloutView]


def load_deploy_data(ctx: FleetContext) -> DeployData:
    """Everything the page shows, read in the background (database lane)."""
    versions = [v for v, status, _size in list_releases(ctx) if status in DEPLOYABLE]
    devices = [(d.uid, d.name) for d in device_rows(ctx.db)
               if d.enrollment is EnrollmentState.ENROLLED]
    return DeployData(versions, devices, recent_rollouts(ctx.db))


class DeployPage(Page):
    """New rollout form on top; recent rollouts and the selected one's stages and devices."""

    title = "Deploy"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.fleet = FleetContext.of(context.project)
        self.may_deploy = context.actor.may(Permission.DEPLOY)
        self.form = NewRolloutForm(self.may_deploy)
        self.form.start_requested.connect(self.start)
        self.rollouts = rollouts_model()
        self.rollout_table = _table(self.rollouts, (58, 66, 86, 56, 62, 116, 50))
        self.rollout_table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: self._select_row(current.row()))
        self.summary = QLabel("Select a rollout to see its stages and devices.")
        self.summary.setWordWrap(True)
        self.halt_reason = QLabel("")
        self.halt_reason.setWordWrap(True)
        self.halt_reason.setStyleSheet("color: #a00000;")
        self.stages = stages_model()
        self.stage_table = _table(self.stages, (50, 170, 90))
        self.stage_table.setMaximumHeight(120)
        self.devices = deployments_model()
        self.device_table = _table(self.devices, (50, 150, 90))
        self.halt_button = QPushButton("Halt...")
        self.halt_button.clicked.connect(self.ask_halt)
        self.roll_back_button = QPushButton("Roll back...")
        self.roll_back_button.clicked.connect(self.ask_roll_back)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.reason_dialog: ReasonDialog | None = None
        self.shown: RolloutView | None = None
        self._busy: dict[int, list[Task]] = {}  # rollout id -> this page's work on it
        self._poll_task: Task | None = None
        self._poll_again = False
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._lay_out()
        self._update_buttons()

    def _lay_out(self) -> None:
        bar = QHBoxLayout()
        bar.addWidget(self.halt_button)
        bar.addWidget(self.roll_back_button)
        bar.addStretch(1)
        detail = QWidget()
        right = QVBoxLayout(detail)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.summary)
        right.addWidget(self.halt_reason)
        right.addLayout(bar)
        right.addWidget(self.stage_table)
        right.addWidget(self.device_table, 1)
        split = QSplitter()
        split.addWidget(self.rollout_table)
        split.addWidget(detail)
        split.setSizes([520, 560])
        top = QHBoxLayout()
        top.addWidget(self.refresh_button)
        top.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    # -- loading ----------------------------------------------------------------------------
    def refresh(self) -> None:
        fleet = self.fleet
        task = self.context.tasks.run("Loading rollouts",
                                      lambda progress, cancel: load_deploy_data(fleet))
        task.succeeded.connect(self._loaded)

    def _loaded(self, data: DeployData) -> None:
        self.form.set_choices(data.versions, data.devices)
        self.rollouts.set_rows(data.rollouts)
        keep = self.shown.id if self.shown else (data.rollouts[0].id if data.rollouts else None)
        row = next((i for i, v in enumerate(data.rollouts) if v.id == keep), -1)
        if row >= 0:
            self.rollout_table.selectRow(row)
            self._select_row(row)  # selectRow on the same row does not signal again
        else:
            self._show(None)

    def select_rollout(self, rollout_id: int) -> None:
        row = next((i for i, v in enumerate(self.rollouts.rows) if v.id == rollout_id), -1)
        if row >= 0:
            self.rollout_table.selectRow(row)

    def _select_row(self, row: int) -> None:
        self._show(self.rollouts.rows[row] if 0 <= row < len(self.rollouts.rows) else None)
        self._update_polling()

    def _show(self, view: RolloutView | None) -> None:
        """Show one rollout in the detail pane (and its fresh state in the list)."""
        same = self.shown is not None and view is not None and self.shown.id == view.id
        self.shown = view
        if view is None:
            self.summary.setText("Select a rollout to see its stages and devices.")
            self.halt_reason.setText("")
            self.halt_reason.setVisible(False)
            self.stages.set_rows([])
            self.devices.set_rows([])
        else:
            self.summary.setText(summary_text(view))
            self.halt_reason.setText(f"Halted: {view.halt_reason}" if view.halt_reason else "")
            self.halt_reason.setVisible(bool(view.halt_reason))
            update = "update_rows" if same else "set_rows"
            getattr(self.stages, update)(stage_rows(view))
            getattr(self.devices, update)(list(view.deployments))
            row = next((i for i, v in enumerate(self.rollouts.rows) if v.id == view.id), -1)
            if row >= 0:
                rows = list(self.rollouts.rows)
                rows[row] = view
                self.rollouts.update_rows(rows)
        self._update_buttons()

    # -- watching ---------------------------------------------------------------------------
    def _update_polling(self) -> None:
        """Poll while the shown rollout runs or this page works on it; stop otherwise."""
        view = self.shown
        live = view is not None and (view.state is RolloutState.RUNNING
                                     or bool(self._busy.get(view.id)))
        if live and not self.timer.isActive():
            self.timer.start()
        elif not live:
            self.timer.stop()

    def poll(self) -> None:
        """Read the shown rollout again (one read in flight at a time; a poll asked for
        meanwhile follows it, so the last state shown is never older than the last ask)."""
        if self.shown is None:
            return
        if self._poll_task is not None:
            self._poll_again = True
            return
        self._poll_again = False
        db, rollout_id = self.context.project.db, self.shown.id
        # A background read: the status bar keeps showing the rollout's own progress.
        task = self.context.tasks.run(f"Watching rollout {rollout_id}",
                                      lambda progress, cancel: rollout_view(db, rollout_id),
                                      background=True)
        self._poll_task = task
        task.succeeded.connect(self._polled)
        # One failure is one dialog (the window shows it), not one a second.
        task.failed.connect(lambda _message: self.timer.stop())
        task.finished.connect(self._poll_done)

    def _polled(self, view: RolloutView) -> None:
        if self.shown is not None and self.shown.id == view.id:
            self._show(view)
            self._update_polling()

    def _poll_done(self) -> None:
        self._poll_task = None
        if self._poll_again:
            self.poll()

    # -- actions ----------------------------------------------------------------------------
    def _track(self, rollout_id: int, task: Task) -> None:
        """Work of this page on a rollout: buttons wait for it and the view stays live."""
        self._busy.setdefault(rollout_id, []).append(task)
        task.progressed.connect(lambda _step: self.poll())
        task.finished.connect(lambda: self._untrack(rollout_id, task))
        self._update_buttons()
        self._update_polling()

    def _untrack(self, rollout_id: int, task: Task) -> None:
        tasks = self._busy.get(rollout_id, [])
        if task in tasks:
            tasks.remove(task)
        self._update_buttons()
        self.poll()  # the final state, then polling stops unless the rollout still runs
        self._update_polling()

    def start(self, request: RolloutRequest) -> None:
        """start_rollout on the database lane, then run_rollout on the network pool."""
        fleet, actor = self.fleet, self.context.actor
        self.form.set_busy(True)
        self.status.setText(f"Starting a rollout of {request.version}...")
        task = self.context.tasks.run(
            f"Starting a rollout of {request.version}",
            lambda progress, cancel: start_rollout(
                fleet, actor, request.version, targets=request.targets, canary=request.canary,
                shares=request.shares, bounds=request.bounds))
        task.succeeded.connect(lambda rollout_id: self._run(rollout_id, request.version))
        task.failed.connect(self.status.setText)
        task.finished.connect(lambda: self.form.set_busy(False))

    def _run(self, rollout_id: int, version: str) -> None:
        fleet, actor = self.fleet, self.context.actor
        task = self.context.tasks.run(
            f"Rolling out {version}",
            lambda progress, cancel: run_rollout(fleet, actor, rollout_id, progress=progress,
                                                 cancel=cancel),
            network=True)
        self._track(rollout_id, task)
        self.status.setText(f"Rollout {rollout_id} of {version} started.")
        task.succeeded.connect(lambda state: self.status.setText(
            f"Rollout {rollout_id} of {version}: {state.value.replace('_', ' ')}."))
        task.failed.connect(self.status.setText)
        task.cancelled.connect(lambda: self.status.setText(
            f"Rollout {rollout_id} paused after the devices in flight; it is still running: "
            f"`edgeloop rollout resume {rollout_id}` goes on."))
        self.shown = None  # the new rollout is selected once the list has it
        self._reload_then_select(rollout_id)

    def _reload_then_select(self, rollout_id: int) -> None:
        fleet = self.fleet
        task = self.context.tasks.run("Loading rollouts",
                                      lambda progress, cancel: load_deploy_data(fleet))
        task.succeeded.connect(lambda data: (self._loaded(data), self.select_rollout(rollout_id)))

    def ask_halt(self) -> None:
        view = self.shown
        if view is None:
            return
        self.reason_dialog = ReasonDialog(
            f"Halt rollout {view.id}", f"Halt the rollout of {view.version}: no further stage "
            "starts; devices already updated keep it. Why?", "Halt", self)
        self.reason_dialog.chosen.connect(lambda reason: self.halt(view.id, reason))
        self.reason_dialog.open()

    def halt(self, rollout_id: int, reason: str) -> None:
        fleet, actor = self.fleet, self.context.actor
        task = self.context.tasks.run(
            f"Halting rollout {rollout_id}",
            lambda progress, cancel: halt_rollout(fleet, actor, rollout_id, reason))
        self._track(rollout_id, task)
        task.succeeded.connect(lambda _: self.status.setText(f"Rollout {rollout_id} halted."))
        task.failed.connect(self.status.setText)

    def ask_roll_back(self) -> None:
        view = self.shown
        if view is None:
            return
        self.reason_dialog = ReasonDialog(
            f"Roll back rollout {view.id}", f"Put every device that got {view.version} back on "
            "the release it ran before (the rollout halts first). Why?", "Roll back", self)
        self.reason_dialog.chosen.connect(lambda reason: self.roll_back(view.id, reason))
        self.reason_dialog.open()

    def roll_back(self, rollout_id: int, reason: str) -> None:
        fleet, actor = self.fleet, self.context.actor
        task = self.context.tasks.run(
            f"Rolling back rollout {rollout_id}",
            lambda progress, cancel: roll_back_rollout(fleet, actor, rollout_id, reason,
                                                       progress=progress, cancel=cancel),
            network=True)
        self._track(rollout_id, task)
        self.status.setText(f"Rolling back rollout {rollout_id}...")
        task.succeeded.connect(self._rolled_back)
        task.failed.connect(self.status.setText)

    def _rolled_back(self, result: RollbackResult) -> None:
        if result.failed:
            self.status.setText(
                f"Rollout {result.rollout_id}: {len(result.failed)} device(s) not rolled back "
                f"({', '.join(o.uid for o in result.failed)}); see their detail, and roll back "
                "again when they are online.")
        else:
            self.status.setText(f"Rollout {result.rollout_id} rolled back: {result.version} is "
                                "off every device it reached.")

    # -- controls ---------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        view = self.shown
        running = view is not None and view.state is RolloutState.RUNNING
        rolling = view is not None and any(t.title.startswith("Rolling back")
                                           for t in self._busy.get(view.id, []))
        self.halt_button.setEnabled(self.may_deploy and running and not rolling)
        self.roll_back_button.setEnabled(self.may_deploy and view is not None
                                         and may_roll_back(view) and not rolling)
        if not self.may_deploy:
            self.halt_button.setToolTip(NOT_ALLOWED)
            self.roll_back_button.setToolTip(NOT_ALLOWED)
            return
        self.halt_button.setToolTip("Stop the selected rollout: no further stage starts"
                                    if running else "Only a running rollout can be halted")
        self.roll_back_button.setToolTip(
            "A roll back of this rollout is under way" if rolling
            else "Put every device this rollout updated back on its previous release"
            if view is not None and may_roll_back(view)
            else "Nothing to roll back: the release reached no device, or it is rolled back")


def _table(model: QAbstractItemModel, widths: tuple[int, ...]) -> QTableView:
    table = QTableView()
    table.setModel(model)
    configure_table(table, widths)
    table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    return table
