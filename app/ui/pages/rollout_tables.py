"""What the Deploy page's tables show: rollouts, their stages, each device's deployment.

Pure functions from the fleet's read-only views (app.fleet.summaries) to table cells, and
one table model that colours a row's state cell, so a failing device stands out at a glance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from app.core.models import DeploymentState, RolloutState
from app.fleet.rollback import REACHED
from app.fleet.summaries import DeploymentRow, RolloutView
from app.ui.pages.base import RowsTableModel

# Light tints: the state's word stays readable in black on them.
DEPLOYMENT_COLOURS = {
    DeploymentState.PENDING: "#e6e6e6",
    DeploymentState.UPLOADING: "#cfe2ff",
    DeploymentState.ACTIVATING: "#fff0b3",
    DeploymentState.HEALTHY: "#c8efc8",
    DeploymentState.FAILED: "#f7c1c1",
    DeploymentState.ROLLED_BACK: "#ffd8a8",
}
ROLLOUT_COLOURS = {
    RolloutState.PLANNED: "#e6e6e6",
    RolloutState.RUNNING: "#cfe2ff",
    RolloutState.HALTED: "#f7c1c1",
    RolloutState.COMPLETED: "#c8efc8",
    RolloutState.ROLLED_BACK: "#ffd8a8",
}

ROLLOUT_COLUMNS = ("Rollout", "Version", "State", "Stage", "Healthy", "Started (UTC)", "By")
STAGE_COLUMNS = ("Stage", "Devices", "State", "Deployments")
DEVICE_COLUMNS = ("Stage", "Device", "State", "Detail")
STAGE_COLOURS = {"done": "#c8efc8", "in progress": "#cfe2ff", "halted": "#f7c1c1",
                 "rolled back": "#ffd8a8", "waiting": "#e6e6e6", "not started": "#e6e6e6"}


@dataclass(frozen=True)
class StageRow:
    """One stage of a rollout: its number (from 1), devices, where it stands, and counts."""

    number: int
    devices: tuple[str, ...]
    state: str
    counts: str


def rollout_cells(view: RolloutView) -> tuple[object, ...]:
    healthy = sum(1 for d in view.deployments if d.state is DeploymentState.HEALTHY)
    return (view.id, view.version, view.state.value.replace("_", " "),
            f"{view.stage_shown} of {view.stage_count}", f"{healthy} of {len(view.deployments)}",
            view.created_at.strftime("%Y-%m-%d %H:%M"), view.started_by or "-")


def deployment_cells(row: DeploymentRow) -> tuple[object, ...]:
    # The error is the raw cause; the detail already says it in words, with what to do.
    return (row.stage + 1, row.uid, row.state.value.replace("_", " "), row.detail or row.error
            or "")


def stage_cells(row: StageRow) -> tuple[object, ...]:
    return (f"{row.number}", ", ".join(row.devices), row.state, row.counts)


def stage_rows(view: RolloutView) -> list[StageRow]:
    """Each stage of ``view`` with its state in words: done, in progress, halted, waiting..."""
    rows = []
    for stage in range(view.stage_count):
        mine = [d for d in view.deployments if d.stage == stage]
        counts = Counter(d.state for d in mine)
        rows.append(StageRow(stage + 1, tuple(d.uid for d in mine),
                             _stage_state(view, stage, counts),
                             ", ".join(f"{counts[state]} {state.value.replace('_', ' ')}"
                                       for state in DeploymentState if counts[state])))
    return rows


def _stage_state(view: RolloutView, stage: int, counts: Counter[DeploymentState]) -> str:
    if view.state is RolloutState.ROLLED_BACK:
        return "rolled back" if counts[DeploymentState.ROLLED_BACK] else "not started"
    if view.state is RolloutState.COMPLETED or stage < view.current_stage:
        return "done"
    if stage > view.current_stage:
        return "waiting" if view.state is RolloutState.RUNNING else "not started"
    return {RolloutState.RUNNING: "in progress", RolloutState.HALTED: "halted"}.get(
        view.state, view.state.value)


def summary_text(view: RolloutView) -> str:
    """The detail pane's headline for one rollout."""
    finished = (f", finished {view.finished_at.strftime('%Y-%m-%d %H:%M:%S')}"
                if view.finished_at else "")
    return (f"Rollout {view.id}: {view.version}, {view.state.value.replace('_', ' ')}, stage "
            f"{view.stage_shown} of {view.stage_count}; started "
            f"{view.created_at.strftime('%Y-%m-%d %H:%M:%S')} by {view.started_by or '-'}"
            f"{finished}")


def may_roll_back(view: RolloutView) -> bool:
    """Whether a roll back has anything to undo: the rollout is not rolled back yet and its
    release reached at least one device."""
    return (view.state is not RolloutState.ROLLED_BACK
            and any(d.state in REACHED for d in view.deployments))


Row = TypeVar("Row")


class StateTableModel(RowsTableModel[Row]):
    """Rows whose state cell is tinted by ``colour(row)``, updated in place when the rows
    are the same ones again (a live refresh keeps the selection and the scroll position)."""

    def __init__(self, columns: Sequence[str], cells: Callable[[Row], Sequence[object]],
                 state_column: int, colour: Callable[[Row], str],
                 key: Callable[[Row], object]) -> None:
        super().__init__(columns, cells)
        self.state_column = state_column
        self.colour = colour
        self.key = key

    def update_rows(self, rows: list[Row]) -> None:
        """Replace the rows: in place when the same keys come in the same order."""
        if [self.key(r) for r in rows] != [self.key(r) for r in self.rows] or not rows:
            self.set_rows(rows)
            return
        self.rows = rows
        self.dataChanged.emit(self.index(0, 0),
                              self.index(len(rows) - 1, len(self.columns) - 1))

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.BackgroundRole and index.isValid()
                and index.column() == self.state_column):
            return QBrush(QColor(self.colour(self.rows[index.row()])))
        if role == Qt.ItemDataRole.ToolTipRole and index.isValid():
            return super().data(index)  # the whole text of a cell cut short by its column
        if (role == Qt.ItemDataRole.ForegroundRole and index.isValid()
                and index.column() == self.state_column):
            return QBrush(QColor("#000000"))  # dark text on the light tint, in any theme
        return super().data(index, role)


def rollouts_model() -> StateTableModel[RolloutView]:
    return StateTableModel(ROLLOUT_COLUMNS, rollout_cells, 2,
                           lambda v: ROLLOUT_COLOURS[v.state], lambda v: v.id)


def deployments_model() -> StateTableModel[DeploymentRow]:
    return StateTableModel(DEVICE_COLUMNS, deployment_cells, 2,
                           lambda d: DEPLOYMENT_COLOURS[d.state], lambda d: (d.stage, d.uid))


def stages_model() -> StateTableModel[StageRow]:
    return StateTableModel(STAGE_COLUMNS, stage_cells, 2,
                           lambda s: STAGE_COLOURS.get(s.state, "#e6e6e6"), lambda s: s.number)
