"""The Monitoring page: drift statistics and inference latency over time, and drift alerts.

Pick a scope (the fleet, or one device) and a range; the page reads
:func:`~app.core.monitoring.monitoring_view` on the database lane when it is shown and every
30 seconds while it stays visible. "Measure drift now" runs the same
:func:`~app.core.drift_monitor.measure_drift` as ``edgeloop drift measure`` (the last hour,
against the deployed edge model's baseline).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QColor, QHideEvent, QPen, QShowEvent
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget, QTableView,
    QVBoxLayout, QWidget,
)

from app.core.drift_monitor import DriftReport, measure_drift
from app.core.models import EnrollmentState
from app.core.monitoring import (
    FLEET, STATISTICS, AlertRow, DeviceScope, Line, MonitoringView, monitoring_view, unmeasured_reason,
)
from app.core.roles import Permission
from app.ui.charts import TimeChart, epoch_ms
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

RANGES: tuple[tuple[str, timedelta], ...] = (
    ("Last 24 hours", timedelta(hours=24)),
    ("Last 7 days", timedelta(days=7)),
    ("Last 30 days", timedelta(days=30)),
)
REFRESH_MS = 30_000
MEASURE_WINDOW = timedelta(hours=1)  # as `edgeloop drift measure` and `loop watch`
ALERT_COLUMNS = ("Measured (UTC)", "Scope", "Statistic", "Value", "Threshold", "Window (UTC)",
                 "Samples")
ALERT_TINT = QColor(255, 224, 220)

NOTHING_MEASURED = (
    "No drift measured yet: drift is measured against a baseline of the deployed edge model. "
    "Build the baseline with `edgeloop drift baseline <edge model>`, then press "
    "\"Measure drift now\" (or let `edgeloop loop watch` measure on every pass).")
NO_LATENCY = (
    "No latency reported yet: devices report their inference latency when their health is "
    "polled (`edgeloop devices health`, or every pass of `edgeloop loop watch`).")


def alert_cells(a: AlertRow) -> tuple[object, ...]:
    """A drift alert as the table shows it."""
    return (a.measured_at.strftime("%Y-%m-%d %H:%M"), a.scope, STATISTICS.get(a.metric, a.metric),
            f"{a.value:.4f}", "-" if a.threshold is None else f"{a.threshold:g}",
            f"{a.window_start:%m-%d %H:%M} - {a.window_end:%m-%d %H:%M}",
            "-" if a.samples is None else a.samples)


class AlertsTableModel(RowsTableModel[AlertRow]):
    """The alerts, tinted as alerts (newest first, as the service orders them)."""

    def __init__(self) -> None:
        super().__init__(ALERT_COLUMNS, alert_cells)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.BackgroundRole and index.isValid():
            return ALERT_TINT
        return super().data(index, role)


def chart_points(line: Line) -> list[tuple[float, float]]:
    """A service line as the chart takes it (x in ms since the epoch)."""
    return [(epoch_ms(at), value) for at, value in line.points]


def _scope_label(device: DeviceScope) -> str:
    named = device.name and device.name != device.uid
    name = f"{device.uid} ({device.name})" if named else device.uid
    return name + (" - forgotten" if device.enrollment is EnrollmentState.FORGOTTEN else "")


# One colour per device on both charts (the charts' own palette goes by line order, and the
# drift chart's first line is the fleet's, so a device would change colour between them).
PALETTE = tuple(QColor(c) for c in ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
                                    "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8"))
FLEET_COLOUR = QColor("#222222")


def _colour_devices(chart: TimeChart, devices: tuple[DeviceScope, ...]) -> None:
    place = {device.uid: i for i, device in enumerate(devices)}
    for name, line in chart.series.items():
        if name == FLEET:
            pen = QPen(FLEET_COLOUR)
            pen.setWidthF(2.5)
            line.setPen(pen)
        elif name in place:
            pen = QPen(PALETTE[place[name] % len(PALETTE)])
            pen.setWidthF(1.5)
            line.setPen(pen)


def _placeholder() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setMargin(24)
    label.setStyleSheet("QLabel { color: #555; border: 1px dashed #bbb; background: #fafafa; }")
    return label


class MonitoringPage(Page):
    """Drift and latency charts of a scope over a range, the alerts, and Measure drift now."""

    title = "Monitoring"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.view: MonitoringView | None = None
        self._loading: tuple[str | None, timedelta] | None = None  # what is being read now
        self._stale = False  # the selection changed while reading: read again after
        self._read_error = False  # the status line shows why the last read failed
        self.scope_box = QComboBox()
        self.scope_box.addItem("Fleet", None)
        self.scope_box.setMinimumContentsLength(24)
        self.range_box = QComboBox()
        for label, span in RANGES:
            self.range_box.addItem(label, span)
        self.statistic_box = QComboBox()
        for metric, label in STATISTICS.items():
            self.statistic_box.addItem(label, metric)
        may = context.actor.may(Permission.VIEW)  # what measure_drift checks
        self.measure_button = QPushButton("Measure drift now")
        self.measure_button.setEnabled(may)
        self.measure_button.setToolTip(
            "Measure drift over the last hour against the deployed edge model's baseline, "
            "per device and fleet-wide (as `edgeloop drift measure`)" if may
            else "Your role may not view this project's data, which measuring drift needs")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.hide()  # shown with something to say
        self.scope_box.currentIndexChanged.connect(self.refresh)
        self.range_box.currentIndexChanged.connect(self.refresh)
        self.statistic_box.currentIndexChanged.connect(self._draw_drift)
        self.measure_button.clicked.connect(self.measure_now)

        bar = QHBoxLayout()
        for text, box in (("Scope", self.scope_box), ("Range", self.range_box),
                          ("Statistic", self.statistic_box)):
            bar.addWidget(QLabel(text))
            bar.addWidget(box)
        bar.addStretch(1)
        bar.addWidget(self.measure_button)

        self.drift_chart = TimeChart("Drift", "value")
        self.drift_empty = _placeholder()
        self.drift_stack = _stack(self.drift_empty, self.drift_chart)
        self.latency_chart = TimeChart("Inference latency", "ms")
        self.latency_empty = _placeholder()
        self.latency_stack = _stack(self.latency_empty, self.latency_chart)
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.drift_stack)
        charts.addWidget(self.latency_stack)
        charts.setSizes([550, 550])  # halves: narrower, the time labels are cut short

        self.alerts = AlertsTableModel()
        self.alerts_table = QTableView()
        self.alerts_table.setModel(self.alerts)
        configure_table(self.alerts_table, (120, 120, 220, 70, 75, 170))
        self.alerts_label = QLabel("Alerts")
        alerts_panel = QWidget()
        alerts_layout = QVBoxLayout(alerts_panel)
        alerts_layout.setContentsMargins(0, 0, 0, 0)
        alerts_layout.addWidget(self.alerts_label)
        alerts_layout.addWidget(self.alerts_table)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(charts)
        body.addWidget(alerts_panel)
        body.setSizes([420, 220])

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(body, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._tick)

    # -- what the user picked ---------------------------------------------------------------
    def scope(self) -> str | None:
        """The selected device uid, or None for the fleet."""
        return self.scope_box.currentData()

    def span(self) -> timedelta:
        return self.range_box.currentData()

    def statistic(self) -> str:
        return self.statistic_box.currentData()

    # Names of what the shown view holds (the selection may already have moved on).
    def _scope_name(self) -> str:
        return (self.view.scope if self.view else None) or "the fleet"

    def _range_name(self) -> str:
        span = self.view.until - self.view.since if self.view else self.span()
        return next((label.lower() for label, s in RANGES if s == span), "range")

    # -- reading ----------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt's name)
        self.timer.stop()
        super().hideEvent(event)

    def _tick(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        request = (self.scope(), self.span())
        if self._loading is not None:
            # One read at a time: the window and the timer both ask when the page shows.
            self._stale = self._stale or request != self._loading
            return
        db = self.context.project.db
        until = self.context.project.clock()
        scope, since = request[0], until - request[1]
        self._loading, self._stale = request, False
        # Quiet: the page re-reads every 30 s, which the status bar need not announce.
        task = self.context.tasks.run(
            "Loading drift and latency",
            lambda progress, cancel: monitoring_view(db, scope, since, until), background=True)
        task.succeeded.connect(self._show)
        task.failed.connect(self._read_failed)
        task.finished.connect(self._loaded)

    def _read_failed(self, message: str) -> None:
        self._read_error = True
        self._say(message)

    def _loaded(self) -> None:
        self._loading = None
        if self._stale:
            self.refresh()

    def _show(self, view: MonitoringView) -> None:
        if (view.scope, view.until - view.since) != (self.scope(), self.span()):
            return  # the user picked something else meanwhile; that read follows
        self.view = view
        if self._read_error:  # read fine this time: the old failure no longer holds
            self._read_error = False
            self._say("")
        self._offer_scopes(view.devices)
        self._draw_drift()
        self._draw_latency()
        self.alerts.set_rows(list(view.alerts))
        self.alerts_label.setText(
            f"Drift alerts of {self._scope_name()}, {self._range_name()}: "
            f"{len(view.alerts) or 'none'}" + (", newest first" if view.alerts else ""))

    def _offer_scopes(self, devices: tuple[DeviceScope, ...]) -> None:
        offered = [self.scope_box.itemData(i) for i in range(1, self.scope_box.count())]
        if offered == [d.uid for d in devices]:
            return
        current = self.scope()
        self.scope_box.blockSignals(True)  # keeping the selection is no new request
        while self.scope_box.count() > 1:
            self.scope_box.removeItem(1)
        for device in devices:
            self.scope_box.addItem(_scope_label(device), device.uid)
        index = self.scope_box.findData(current)
        self.scope_box.setCurrentIndex(max(index, 0))
        self.scope_box.blockSignals(False)
        if index < 0:
            self.refresh()  # the device disappeared: show the fleet

    # -- drawing ----------------------------------------------------------------------------
    def _draw_drift(self) -> None:
        view = self.view
        if view is None:
            return
        series = view.drift[self.statistic()]
        if series.lines:
            self.drift_chart.set_series({line.name: chart_points(line) for line in series.lines},
                                        threshold=series.threshold)
            _colour_devices(self.drift_chart, view.devices)
            self.drift_chart.chart().setTitle(f"{series.label}: {self._scope_name()}")
            self.drift_stack.setCurrentWidget(self.drift_chart)
            return
        self.drift_chart.clear()
        if not view.ever_measured:
            message = NOTHING_MEASURED
        elif not view.has_drift:
            message = (f"No drift measured for {self._scope_name()} in the "
                       f"{self._range_name()}: pick a longer range, or "
                       "press \"Measure drift now\".")
        else:
            message = (f"{series.label} was not measured for {self._scope_name()} in the "
                       f"{self._range_name()}: {unmeasured_reason(series.metric)}.")
        self.drift_empty.setText(message)
        self.drift_stack.setCurrentWidget(self.drift_empty)

    def _draw_latency(self) -> None:
        view = self.view
        assert view is not None
        lines = [line for line in view.latency if line.points]
        if lines:
            self.latency_chart.set_series({line.name: chart_points(line) for line in lines})
            _colour_devices(self.latency_chart, view.devices)
            self.latency_chart.chart().setTitle(
                f"Inference latency: {view.scope}" if view.scope
                else "Inference latency p50, per device")
            self.latency_stack.setCurrentWidget(self.latency_chart)
            return
        self.latency_chart.clear()
        self.latency_empty.setText(
            NO_LATENCY if not view.ever_sampled else
            f"No latency reported by {self._scope_name()} in the "
            f"{self._range_name()}: its health was not polled then, or "
            "it was offline.")
        self.latency_stack.setCurrentWidget(self.latency_empty)

    # -- measuring --------------------------------------------------------------------------
    def measure_now(self) -> None:
        project, actor = self.context.project, self.context.actor
        until = project.clock()
        self.measure_button.setEnabled(False)
        self._say("Measuring drift over the last hour...")
        task = self.context.tasks.run(
            "Measuring drift",
            lambda progress, cancel: measure_drift(
                project.db, project.audit, actor, since=until - MEASURE_WINDOW, until=until,
                clock=project.clock))
        task.succeeded.connect(self._measured)
        task.failed.connect(self._say)
        task.finished.connect(self._measure_finished)

    def _measured(self, report: DriftReport) -> None:
        if not report.measurements:
            self._say("Nothing to measure in the last hour: no device statistics or "
                      "captures arrived in it.")
        else:
            alerts = len(report.alerts)
            self._say(
                f"Measured {len(report.measurements)} statistic(s) of {report.edge_model} "
                f"over the last hour: {alerts or 'no'} alert(s).")
        if self._loading is not None:
            self._stale = True  # a read under way may have started before the measuring
        else:
            self.refresh()

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _measure_finished(self) -> None:
        self.measure_button.setEnabled(self.context.actor.may(Permission.VIEW))


def _stack(placeholder: QLabel, chart: TimeChart) -> QStackedWidget:
    stack = QStackedWidget()
    stack.addWidget(placeholder)
    stack.addWidget(chart)
    return stack
