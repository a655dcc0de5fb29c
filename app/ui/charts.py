"""Line charts for the pages (training curves, drift statistics, latency), on QtCharts.

One small widget: give it named series of (x, y) points and it redraws, rescaling the axes
to the data. Pages never build QtCharts objects themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from PySide6.QtCharts import (
    QChart, QChartView, QDateTimeAxis, QLineSeries, QValueAxis,
)
from PySide6.QtCore import QDateTime, QEvent, QPointF, Qt, QTimeZone
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QWidget

Point = tuple[float, float]
ALERT_LEVEL = "alert level"  # the name of the threshold line


class LineChart(QChartView):
    """A titled chart of one or more named lines over a numeric x axis.

    ``append(name, x, y)`` adds one point (a live curve), ``set_series`` replaces everything
    (a refresh). A horizontal ``threshold`` line can mark an alert level.
    """

    def __init__(self, title: str, x_label: str, y_label: str,
                 parent: QWidget | None = None) -> None:
        chart = QChart()
        chart.setTitle(title)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        self.x_axis = QValueAxis()
        self.x_axis.setTitleText(x_label)
        self.x_axis.setLabelFormat("%g")
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText(y_label)
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.y_axis, Qt.AlignmentFlag.AlignLeft)
        self.series: dict[str, QLineSeries] = {}
        self.threshold: float | None = None
        self._follow_palette()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt's name)
        # The light and dark themes change the application's palette; QtCharts draws with
        # its own theme, so the chart's background, text and grid follow the palette here
        # (the lines keep their colours).
        if event.type() == QEvent.Type.PaletteChange:
            self._follow_palette()
        super().changeEvent(event)

    def _follow_palette(self) -> None:
        palette = self.palette()
        base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        grid = palette.color(QPalette.ColorRole.Mid)
        chart = self.chart()
        chart.setBackgroundBrush(base)
        chart.setTitleBrush(text)
        chart.legend().setLabelColor(text)
        self.setBackgroundBrush(palette.color(QPalette.ColorRole.Window))
        for axis in chart.axes():
            axis.setLabelsBrush(text)
            axis.setTitleBrush(text)
            axis.setGridLineColor(grid)
            axis.setLinePenColor(grid)

    def line(self, name: str) -> QLineSeries:
        """The series called ``name``, created on first use."""
        series = self.series.get(name)
        if series is None:
            series = QLineSeries()
            series.setName(name)
            if name == ALERT_LEVEL:
                # Red and dashed whatever the palette: the palette's colours repeat after a
                # few lines, and the alert level must never look like a device.
                pen = QPen(QColor(200, 30, 30))
                pen.setStyle(Qt.PenStyle.DashLine)
                pen.setWidthF(1.5)
                series.setPen(pen)
            self.chart().addSeries(series)
            series.attachAxis(self.x_axis)
            series.attachAxis(self.y_axis)
            self.series[name] = series
        return series

    def append(self, name: str, x: float, y: float) -> None:
        self.line(name).append(QPointF(x, y))
        self._rescale()

    def set_series(self, data: Mapping[str, Sequence[Point]], threshold: float | None = None) -> None:
        self.clear()
        self.threshold = threshold
        for name, points in data.items():
            self.line(name).replace([QPointF(x, y) for x, y in points])
        self._rescale()

    def clear(self) -> None:
        self.chart().removeAllSeries()
        self.series.clear()

    def points(self, name: str) -> list[Point]:
        """What the line ``name`` shows (for tests and tooltips)."""
        series = self.series.get(name)
        return [] if series is None else [(p.x(), p.y()) for p in series.points()]

    def _rescale(self) -> None:
        xs = [p.x() for s in self.series.values() for p in s.points()]
        ys = [p.y() for s in self.series.values() for p in s.points()]
        if self.threshold is not None and xs:
            limit = self.line(ALERT_LEVEL)
            limit.replace([QPointF(min(xs), self.threshold), QPointF(max(xs), self.threshold)])
            ys.append(self.threshold)
        if not xs:
            return
        self._set_x_range(min(xs), max(xs))
        bottom, top = min(ys), max(ys)
        pad = (top - bottom) * 0.08 or max(abs(top) * 0.1, 0.01)
        self.y_axis.setRange(min(0.0, bottom) if bottom >= 0 else bottom - pad, top + pad)

    def _set_x_range(self, low: float, high: float) -> None:
        self.x_axis.setRange(low, high if high > low else low + 1)


class TimeChart(LineChart):
    """A :class:`LineChart` whose x axis is wall-clock time (x values are ms since the epoch: :func:`epoch_ms`)."""

    def __init__(self, title: str, y_label: str, parent: QWidget | None = None) -> None:
        super().__init__(title, "time", y_label, parent)
        chart = self.chart()
        chart.removeAxis(self.x_axis)
        self.x_axis = QDateTimeAxis()  # type: ignore[assignment]
        self.x_axis.setFormat("MM-dd HH:mm")
        self.x_axis.setTitleText("time (UTC)")
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        self._follow_palette()
        # A date axis whose range is empty when the chart is first laid out gets no room,
        # and its labels stay missing once data arrives: start with a day's range.
        self._set_x_range(0.0, 86_400_000.0)

    def _set_x_range(self, low: float, high: float) -> None:
        self.x_axis.setRange(_when(low), _when(high if high > low else low + 60_000))


def epoch_ms(moment: datetime) -> float:
    """A datetime as the x value a :class:`TimeChart` takes (ms since the epoch, as Qt)."""
    return moment.timestamp() * 1000.0


def _when(ms: float) -> QDateTime:
    return QDateTime.fromMSecsSinceEpoch(int(ms), QTimeZone.utc())
