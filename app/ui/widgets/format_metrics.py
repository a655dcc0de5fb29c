"""The per-format table of a model version: one row per artifact, with its stored scores.

Rows are :class:`~app.core.model_registry.FormatMetrics`: format, precision, the runtime it
was scored on, size, accuracy and its difference from the version's FP32 reference, latency
p50/p99 of one frame, the test images and the dataset version they came from. A format the
evaluation never scored says so; one that does not load is red, its reason in the tooltip.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor

from app.core.model_registry import FormatMetrics
from app.ui.pages.base import RowsTableModel

FORMAT_COLUMNS = ("Format", "Precision", "Runtime", "Size (MB)", "Accuracy", "vs FP32",
                  "p50 (ms)", "p99 (ms)", "Images", "Scored on")
FORMAT_WIDTHS = (110, 90, 120, 90, 90, 90, 80, 80, 70)
WORSE, BETTER = QColor(178, 34, 34), QColor(22, 122, 52)


def _fixed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_cells(f: FormatMetrics) -> tuple[object, ...]:
    """A format as its row shows it."""
    if not f.evaluated:
        accuracy = "not scored"
    elif not f.loads:
        accuracy = "does not load"
    else:
        accuracy = _fixed(f.accuracy, 3)
    delta = ("reference" if f.is_reference
             else "-" if f.accuracy_delta is None else f"{f.accuracy_delta:+.3f}")
    return (f.format.value, f.precision, f.runtime, f"{f.size / 1e6:.3f}", accuracy, delta,
            _fixed(f.latency_p50_ms, 2), _fixed(f.latency_p99_ms, 2),
            "-" if f.count is None else f.count, f.dataset or "-")


class FormatMetricsModel(RowsTableModel[FormatMetrics]):
    """:data:`FORMAT_COLUMNS` of each artifact, coloured where a reader should look."""

    def __init__(self) -> None:
        super().__init__(FORMAT_COLUMNS, format_cells)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        f = self.rows[index.row()]
        if role == Qt.ItemDataRole.ForegroundRole:
            if f.evaluated and not f.loads:
                return WORSE
            if FORMAT_COLUMNS[index.column()] == "vs FP32" and f.accuracy_delta:
                return WORSE if f.accuracy_delta < 0 else BETTER
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(f)
        return super().data(index, role)

    @staticmethod
    def tooltip(f: FormatMetrics) -> str:
        if not f.evaluated:
            return f"{f.format.value} was never scored: Evaluate scores every format"
        if f.error:
            return f"{f.format.value} does not load: {f.error}"
        return (f"{f.format.value} on {f.runtime}, {f.size:,} bytes; latency of one frame "
                "with preprocessing (median and 99th percentile)")
