"""The Label page's side panels: the capture's metadata, and the model's pre-label.

Kept apart from the page so the page holds the walk and the edits: these only show a
:class:`~app.annotate.capture_card.CaptureCard` in words.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from app.annotate.capture_card import CaptureCard

FIELDS = ("Device", "Capture", "Captured", "Kept because", "Edge model", "Observer", "Status")


def prediction_text(class_name: str | None, confidence: float | None,
                    version: str | None = None) -> str:
    """A model's prediction in words: "scratch 0.91 (edge-3)", or "no prediction"."""
    if class_name is None:
        return "no prediction"
    text = class_name if confidence is None else f"{class_name} {confidence:.2f}"
    return f"{text} ({version})" if version else text


class CaptureDetails(QGroupBox):
    """Where the capture comes from and what the models said of it, one line each."""

    def __init__(self) -> None:
        super().__init__("Capture")
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.fields: dict[str, QLabel] = {}
        for name in FIELDS:
            value = QLabel("-")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            self.fields[name] = value
            form.addRow(name, value)

    def show_card(self, card: CaptureCard | None) -> None:
        """Show ``card`` (None: dashes)."""
        if card is None:
            for value in self.fields.values():
                value.setText("-")
            return
        self.fields["Device"].setText(card.device_uid)
        self.fields["Capture"].setText(f"{card.device_capture_id} (#{card.capture_id})")
        self.fields["Captured"].setText(card.captured_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
        self.fields["Kept because"].setText(card.reason.value.replace("_", " "))
        self.fields["Edge model"].setText(prediction_text(card.edge_class, card.edge_confidence,
                                                          card.model_version))
        self.fields["Observer"].setText(prediction_text(card.observer_class,
                                                        card.observer_confidence))
        self.fields["Status"].setText(card.review_status.value)


class PrelabelPanel(QGroupBox):
    """The model-assisted pre-label, marked as a model's guess, and the button confirming it
    (the page connects it and decides whether it is enabled)."""

    def __init__(self, confirm_button: QPushButton) -> None:
        super().__init__("Pre-label")
        self.text = QLabel("-")
        self.text.setWordWrap(True)
        self.confirm_button = confirm_button
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(confirm_button)

    def show_card(self, card: CaptureCard | None) -> None:
        """Show the card's pre-label (None, or a card without one: say so)."""
        if card is None or card.prelabel is None:
            self.setTitle("Pre-label")
            self.text.setText("-" if card is None else "No model prediction for this capture.")
            return
        boxes = len(card.prelabel.boxes)
        self.setTitle(f"Pre-label (the {card.prelabel_from}'s prediction)")
        self.text.setText(
            f"<b>{card.prelabel.class_name or 'no class'}</b>"
            + (f", {boxes} box{'es' if boxes != 1 else ''} (dashed on the image)" if boxes else "")
            + "<br>A model's guess until someone confirms it: Enter confirms it when nothing "
              "was changed.")
