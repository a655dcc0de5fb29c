"""The chart widget the pages draw with: lines, the alert level, and the theme it follows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.ui.charts import ALERT_LEVEL, LineChart, TimeChart, epoch_ms
from app.ui.theme import Theme, apply_theme


def test_lines_grow_point_by_point_and_the_axes_cover_them(qtbot) -> None:  # type: ignore[no-untyped-def]
    chart = LineChart("Loss", "epoch", "loss")
    qtbot.addWidget(chart)
    for epoch, loss in enumerate((0.9, 0.6, 0.4), start=1):
        chart.append("train", epoch, loss)
    assert chart.points("train") == [(1.0, 0.9), (2.0, 0.6), (3.0, 0.4)]
    assert (chart.x_axis.min(), chart.x_axis.max()) == (1.0, 3.0)
    assert chart.y_axis.min() <= 0.4 and chart.y_axis.max() >= 0.9
    chart.set_series({"val": [(1, 1.0)]})
    assert chart.points("train") == [] and chart.points("val") == [(1.0, 1.0)]


def test_the_alert_level_spans_the_data_in_red_dashes(qtbot) -> None:  # type: ignore[no-untyped-def]
    chart = TimeChart("PSI", "psi")
    qtbot.addWidget(chart)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    xs = [epoch_ms(start + timedelta(hours=h)) for h in range(4)]
    chart.set_series({"cam-a": [(x, 0.1 * i) for i, x in enumerate(xs)]}, threshold=0.25)
    assert chart.points(ALERT_LEVEL) == [(xs[0], 0.25), (xs[-1], 0.25)]
    pen = chart.series[ALERT_LEVEL].pen()
    assert pen.style() == Qt.PenStyle.DashLine and pen.color().red() > 150
    assert chart.x_axis.min().toMSecsSinceEpoch() == xs[0]
    assert chart.y_axis.max() >= 0.3


def test_the_chart_follows_the_theme(qtbot) -> None:  # type: ignore[no-untyped-def]
    chart = LineChart("Loss", "epoch", "loss")
    qtbot.addWidget(chart)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    try:
        apply_theme(app, Theme.DARK)
        qtbot.waitUntil(lambda: chart.chart().backgroundBrush().color().lightness() < 80)
        apply_theme(app, Theme.LIGHT)
        qtbot.waitUntil(lambda: chart.chart().backgroundBrush().color().lightness() > 200)
    finally:
        apply_theme(app, Theme.LIGHT)


def test_a_lone_measurement_is_a_visible_dot_under_a_visible_alert_level(qtbot) -> None:  # type: ignore[no-untyped-def]
    chart = TimeChart("PSI", "psi")
    qtbot.addWidget(chart)
    x = epoch_ms(datetime(2026, 11, 1, 8, tzinfo=timezone.utc))
    chart.set_series({"fleet": [(x, 5.0)]}, threshold=0.25)
    assert chart.series["fleet"].pointsVisible()
    (x0, _), (x1, _) = chart.points(ALERT_LEVEL)
    assert x0 == x and x1 > x  # a line, not a point, at the alert level
    assert chart.x_axis.format() == "HH:mm:ss"
