"""The Deploy page's "New rollout" form: which release, to which devices, in which stages.

The same choices as ``edgeloop deploy`` (a release version, ``--device``, ``--canary``,
``--stages``, the health bounds), checked by the same pure functions (parse_shares,
plan_stages), with the stage plan previewed as the user edits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QListWidgetItem, QPushButton, QVBoxLayout, QWidget,
)

from app.core.errors import InvalidInput
from app.fleet.rollout_plan import DEFAULT_SHARES, HealthBounds, parse_shares, plan_stages

FIRST_TARGET = "first device (default)"
_BOUNDS = HealthBounds()


@dataclass(frozen=True)
class RolloutRequest:
    """What the form asks for: start_rollout's arguments."""

    version: str
    targets: tuple[str, ...]
    canary: tuple[str, ...]
    shares: tuple[float, ...]
    bounds: HealthBounds


class NewRolloutForm(QGroupBox):
    """Version, target devices, canary, stage shares, health bounds, a plan preview, Start.

    ``start_requested`` carries a checked :class:`RolloutRequest`; the page runs it.
    """

    start_requested = Signal(object)  # RolloutRequest

    def __init__(self, may_deploy: bool, parent: QWidget | None = None) -> None:
        super().__init__("New rollout", parent)
        self.may_deploy = may_deploy
        self.version = QComboBox()
        self.version.setMinimumWidth(130)
        self.version.setToolTip("Approved models with a signed release (approve one on the "
                                "Models page)")
        self.canary = QComboBox()
        self.canary.setMinimumWidth(170)
        self.canary.setToolTip("The device that gets the release first, alone")
        self.stages = QLineEdit(",".join(f"{share * 100:g}" for share in DEFAULT_SHARES))
        self.stages.setMaximumWidth(90)
        self.stages.setToolTip("Cumulative shares of the devices after the canary, in percent "
                               "(25,100: a quarter, then all)")
        self.targets = QListWidget()
        self.targets.setFixedSize(260, 96)
        self.targets.setToolTip("The devices the rollout goes to (enrolled devices)")
        self.min_fps = _spin(0.0, 1000.0, _BOUNDS.min_fps, " fps", 2)
        self.max_errors = _spin(0.0, 100.0, _BOUNDS.max_error_rate * 100, " %", 1)
        self.window = _spin(1.0, 3600.0, _BOUNDS.window_s, " s", 0)
        self.timeout = _spin(5.0, 3600.0, _BOUNDS.timeout_s, " s", 0)
        self.plan = QLabel("")
        self.plan.setWordWrap(True)
        self.plan.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.plan.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.start_button = QPushButton("Start rollout")
        self.start_button.setToolTip("Start the rollout: the canary first, each stage healthy "
                                     "before the next" if may_deploy
                                     else "Your role may not deploy models")
        self.start_button.clicked.connect(self._start)
        self._busy = False
        for signal in (self.version.currentIndexChanged, self.canary.currentIndexChanged,
                       self.stages.textChanged, self.targets.itemChanged):
            signal.connect(self._update_plan)
        self._lay_out()
        self._update_plan()

    def _lay_out(self) -> None:
        choice = QHBoxLayout()
        for label, widget in (("Model version", self.version), ("Canary", self.canary),
                              ("Stages (%)", self.stages)):
            choice.addWidget(QLabel(label))
            choice.addWidget(widget)
            choice.addSpacing(12)
        choice.addStretch(1)
        health = QHBoxLayout()
        health.addWidget(QLabel("Healthy: at least"))
        health.addWidget(self.min_fps)
        health.addWidget(QLabel("with at most"))
        health.addWidget(self.max_errors)
        health.addWidget(QLabel("errors, for"))
        health.addWidget(self.window)
        health.addWidget(QLabel("within"))
        health.addWidget(self.timeout)
        health.addStretch(1)
        plan = QHBoxLayout()
        plan.addWidget(QLabel("Plan:"), 0, Qt.AlignmentFlag.AlignTop)
        plan.addWidget(self.plan, 1)
        plan.addWidget(self.start_button, 0, Qt.AlignmentFlag.AlignBottom)
        right = QVBoxLayout()
        right.addLayout(choice)
        right.addLayout(health)
        right.addLayout(plan)
        devices = QVBoxLayout()
        devices.addWidget(QLabel("Devices"))
        devices.addWidget(self.targets)
        row = QHBoxLayout(self)
        row.addLayout(devices)
        row.addSpacing(8)
        row.addLayout(right, 1)

    # -- contents ---------------------------------------------------------------------------
    def set_choices(self, versions: Sequence[str], devices: Sequence[tuple[str, str]]) -> None:
        """Offer these release versions and (uid, name) devices, keeping what the user chose
        where it still exists (a new device comes in checked)."""
        chosen = self.version.currentText()
        self.version.blockSignals(True)
        self.version.clear()
        self.version.addItems(list(versions))
        if chosen in versions:
            self.version.setCurrentText(chosen)
        self.version.blockSignals(False)
        unchecked = {self.targets.item(i).data(Qt.ItemDataRole.UserRole)
                     for i in range(self.targets.count())
                     if self.targets.item(i).checkState() is Qt.CheckState.Unchecked}
        canary = self.canary.currentData()
        self.targets.blockSignals(True)
        self.targets.clear()
        for uid, name in devices:
            item = QListWidgetItem(f"{uid}  {name}" if name and name != uid else uid)
            item.setData(Qt.ItemDataRole.UserRole, uid)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if uid in unchecked
                               else Qt.CheckState.Checked)
            self.targets.addItem(item)
        self.targets.blockSignals(False)
        self.canary.blockSignals(True)
        self.canary.clear()
        self.canary.addItem(FIRST_TARGET, None)
        for uid, _name in devices:
            self.canary.addItem(uid, uid)
        index = self.canary.findData(canary)
        self.canary.setCurrentIndex(max(0, index))
        self.canary.blockSignals(False)
        self._update_plan()

    def set_busy(self, busy: bool) -> None:
        """While a start is under way, Start waits (one click, one rollout)."""
        self._busy = busy
        self._update_plan()

    def checked_targets(self) -> list[str]:
        return [self.targets.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.targets.count())
                if self.targets.item(i).checkState() is Qt.CheckState.Checked]

    def request(self) -> RolloutRequest:
        """The form as start_rollout's arguments, or InvalidInput saying what to fix."""
        version = self.version.currentText()
        if not version:
            raise InvalidInput("no approved release to deploy: approve a model on the Models "
                               "page first")
        targets = self.checked_targets()
        canary = () if self.canary.currentData() is None else (self.canary.currentData(),)
        shares = parse_shares(self.stages.text())
        plan_stages(targets, canary, shares)  # refuses an empty or inconsistent plan
        bounds = HealthBounds(min_fps=self.min_fps.value(),
                              max_error_rate=self.max_errors.value() / 100.0,
                              window_s=self.window.value(), timeout_s=self.timeout.value())
        return RolloutRequest(version, tuple(targets), canary, shares, bounds)

    def plan_text(self) -> str:
        try:
            request = self.request()
        except InvalidInput as exc:
            return str(exc)
        stages = plan_stages(request.targets, request.canary, request.shares)
        return "   ".join(f"{number}: {', '.join(stage)}"
                          for number, stage in enumerate(stages, start=1))

    def _update_plan(self) -> None:
        try:
            self.request()
            valid = True
        except InvalidInput:
            valid = False
        self.plan.setText(self.plan_text())
        self.plan.setStyleSheet("" if valid else "color: #a00000;")
        self.start_button.setEnabled(self.may_deploy and valid and not self._busy)

    def _start(self) -> None:
        try:
            request = self.request()
        except InvalidInput as exc:
            self.plan.setText(str(exc))
            return
        self.start_requested.emit(request)


def _spin(low: float, high: float, value: float, suffix: str, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin
