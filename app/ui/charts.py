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
from PySide6.QtGui import QColor, QPainter, QPalette, QPen, QShowEvent
from PySide6.QtWidgets import QWidget

Point = tuple[float, float]
ALERT_LEVEL = "alert level"  # the name of the threshold line
MARKED_POINTS = 40  # lines with at most this many points show a marker on each


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
        self.y_axis.setLabelFormat("%.3g")  # short labels: QtCharts elides long ones
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.y_axis, Qt.AlignmentFlag.AlignLeft)
        self.series: dict[str, QLineSeries] = {}
        self.threshold: float | None = None
        self._follow_palette()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        # QtCharts measures the axis labels of a hidden chart (a page not shown yet) too
        # narrow and elides them ("4..."); setting the format again makes it measure anew.
        label_format = self.y_axis.labelFormat()
        self.y_axis.setLabelFormat(label_format + " ")
        self.y_axis.setLabelFormat(label_format)

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
        data = [s for name, s in self.series.items() if name != ALERT_LEVEL]
        xs = [p.x() for s in data for p in s.points()]
        ys = [p.y() for s in data for p in s.points()]
        if not xs:
            return
        for series in data:
            # Markers where a line has few points: a lone measurement is a dot, not nothing.
            series.setPointsVisible(series.count() <= MARKED_POINTS)
        low, high = self._x_span(min(xs), max(xs))
        self._set_x_range(low, high)
        if self.threshold is not None:
            self.line(ALERT_LEVEL).replace([QPointF(low, self.threshold),
                                            QPointF(high, self.threshold)])
            ys.append(self.threshold)
        bottom, top = min(ys), max(ys)
        pad = (top - bottom) * 0.08 or max(abs(top) * 0.1, 0.01)
        self.y_axis.setRange(min(0.0, bottom) if bottom >= 0 else bottom - pad, top + pad)

    def _x_span(self, low: float, high: float) -> tuple[float, float]:
        """The x range to show: the data's, or one unit wide around a single x."""
        return low, (high if high > low else low + 1)

    def _set_x_range(self, low: float, high: float) -> None:
        self.x_axis.setRange(low, high)


class TimeChart(LineChart):
    """A :class:`LineChart` whose x axis is wall-clock time (x values are ms since the epoch,
    as :func:`epoch_ms` gives them)."""

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

    def _x_span(self, low: float, high: float) -> tuple[float, float]:
        return low, (high if high > low else low + 60_000)  # a lone moment: one minute

    def _set_x_range(self, low: float, high: float) -> None:
        span_h = (high - low) / 3_600_000
        # Labels as fine as the range needs, and no finer: seconds for minutes, days for weeks.
        self.x_axis.setFormat("MM-dd" if span_h > 72 else "MM-dd HH:mm" if span_h > 2
                              else "HH:mm:ss")
        self.x_axis.setRange(_when(low), _when(high))


def epoch_ms(moment: datetime) -> float:
    """A datetime as the x value a :class:`TimeChart` takes (ms since the epoch, as Qt)."""
    return moment.timestamp() * 1000.0


def _when(ms: float) -> QDateTime:
    return QDateTime.fromMSecsSinceEpoch(int(ms), QTimeZone.utc())
