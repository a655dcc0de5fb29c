"""The Review page's words and its two verdict panels (the edge model's and the observer's).

Kept apart from the page so the page holds only the walk through the queue: what each kind
of review item means in words, and how one model's prediction is shown.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.core.models import ReviewKind

KIND_NAMES = {
    ReviewKind.FALSE_NEGATIVE: "False negatives",
    ReviewKind.FALSE_POSITIVE: "False positives",
    ReviewKind.DISAGREEMENT: "Disagreements",
    ReviewKind.LOW_CONFIDENCE: "Low confidence",
    ReviewKind.SPOT_CHECK: "Spot checks",
}
"""The kinds as the filter and the counts name them, in queue order."""

KIND_EXPLAINED = {
    ReviewKind.FALSE_NEGATIVE: "Suspected false negative: the edge model passed a part the "
                               "observer thinks is defective.",
    ReviewKind.FALSE_POSITIVE: "Suspected false positive: the edge model rejected a part the "
                               "observer thinks is good.",
    ReviewKind.DISAGREEMENT: "Disagreement: the edge model and the observer see different "
                             "defects.",
    ReviewKind.LOW_CONFIDENCE: "Low confidence: both models agree, but at least one of them "
                               "is unsure.",
    ReviewKind.SPOT_CHECK: "Spot check: a frame the device kept at random, which both models "
                           "are sure of; checked because both could be sure and wrong.",
}
"""Why an item is in front of the reviewer, in a sentence."""


def verdict_text(class_name: str | None, confidence: float | None) -> str:
    """A prediction as the panel shows it: "scratch 0.91", or why there is none."""
    if class_name is None:
        return "no prediction"
    return class_name if confidence is None else f"{class_name} {confidence:.2f}"


class VerdictPanel(QGroupBox):
    """One model's verdict on the shown capture, large, with the button that accepts it.

    The group's title reads as the whole verdict ("Edge model: scratch 0.91 (edge-3)"), so a
    screen reader or a screenshot says it in one line; the class is repeated large below.
    """

    def __init__(self, heading: str, accept_text: str) -> None:
        super().__init__(heading)
        self.heading = heading
        self.verdict = QLabel("-")
        font = QFont(self.verdict.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        self.verdict.setFont(font)
        self.version = QLabel("")
        self.accept_button = QPushButton(accept_text)
        self.accept_button.setMinimumHeight(34)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addWidget(self.version)
        layout.addSpacing(8)
        layout.addWidget(self.accept_button)
        self.class_name: str | None = None

    def show_verdict(self, class_name: str | None, confidence: float | None,
                     version: str | None) -> None:
        """Show a prediction (``class_name`` None: the model made none)."""
        self.class_name = class_name
        text = verdict_text(class_name, confidence)
        suffix = f" ({version})" if version else ""
        self.setTitle(f"{self.heading}: {text}{suffix}")
        self.verdict.setText(text)
        self.version.setText(f"model {version}" if version else "model version not recorded")

    def clear(self) -> None:
        self.class_name = None
        self.setTitle(self.heading)
        self.verdict.setText("-")
        self.version.setText("")

    def summary(self) -> str:
        """The one-line verdict shown (what the title says)."""
        return self.title()


class CaptureImage(QWidget):
    """The capture as large as the page allows, square pixels kept sharp (a 64 px capture
    shows the pixels the model saw, not a blur); or a line of text when there is none."""

    def __init__(self, minimum: int = 320) -> None:
        super().__init__()
        self._pixmap = QPixmap()
        self._text = ""
        self.setMinimumSize(minimum, minimum)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(480, 480)

    def setPixmap(self, pixmap: QPixmap) -> None:  # noqa: N802 (QLabel's name, kept)
        self._pixmap, self._text = pixmap, ""
        self.update()

    def pixmap(self) -> QPixmap:
        return self._pixmap

    def setText(self, text: str) -> None:  # noqa: N802
        self._text = text
        self.update()

    def text(self) -> str:
        return self._text

    def image_rect(self) -> QRect:
        """Where the picture is drawn: the largest square-pixel fit, centred at the top."""
        if self._pixmap.isNull():
            return QRect()
        size = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRect((self.width() - size.width()) // 2, 0, size.width(), size.height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        if not self._pixmap.isNull():
            painter.drawPixmap(self.image_rect(), self._pixmap)
        if self._text:
            painter.drawText(self.rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._text)
        painter.end()
