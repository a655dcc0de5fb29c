"""The dialogs behind "Export labels..." and "Import labeled images..." on the Datasets page.

They ask what ``edgeloop labels export`` and ``edgeloop labels import`` take as options (a
format, a folder, the current labels or a frozen dataset version, images or not; the
device the imported captures belong to) and hand it to the page, which runs the same
services (:func:`app.annotate.transfer.export_labels`, :func:`~app.annotate.transfer.
import_folder`) as a task with progress and Cancel. :func:`export_summary` and
:func:`import_summary` are what the page shows when the task is done.

The folder choosers are arguments, so tests answer them without a native file dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget,
)

from app.annotate.formats import FORMATS, Format
from app.annotate.transfer import IMPORT_DEVICE, ExportReport, ImportReport

FolderChooser = Callable[[str], Path | None]  # caption -> the folder picked (None: none)
CURRENT_LABELS = "Current labels (each capture's newest label)"
SHOWN_AT_MOST = 8  # notes and left-out files listed in a summary; the rest are counted


def native_folder_chooser(parent: QWidget) -> FolderChooser:
    """The platform's folder dialog."""
    def choose(caption: str) -> Path | None:
        name = QFileDialog.getExistingDirectory(parent, caption)
        return Path(name) if name else None
    return choose


def _format_combo() -> QComboBox:
    combo = QComboBox()
    for fmt, info in FORMATS.items():
        combo.addItem(info.title, fmt)
    return combo


def _folder_row(edit: QLineEdit, browse: Callable[[], None]) -> QHBoxLayout:
    button = QPushButton("Browse...")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class _TransferDialog(QDialog):
    """What both dialogs share: a format, a folder, OK enabled once the folder is named."""

    def __init__(self, title: str, ok_text: str, choose_folder: FolderChooser | None,
                 parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.choose_folder = choose_folder or native_folder_chooser(self)
        self.format_combo = _format_combo()
        self.folder = QLineEdit()
        self.form = QFormLayout()
        self.buttons = QDialogButtonBox()
        self.ok_button = self.buttons.addButton(ok_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.folder.textChanged.connect(self._folder_changed)
        self.ok_button.setEnabled(False)

    def _finish_layout(self, advice: str) -> None:
        text = QLabel(advice)
        text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(self.form)
        layout.addWidget(self.buttons)
        self.resize(640, self.sizeHint().height())

    def _folder_changed(self, text: str) -> None:
        self.ok_button.setEnabled(bool(text.strip()))

    def _browse(self, caption: str) -> None:
        path = self.choose_folder(caption)
        if path is not None:
            self.folder.setText(str(path))

    @property
    def chosen_format(self) -> Format:
        return self.format_combo.currentData()

    @property
    def chosen_folder(self) -> Path:
        return Path(self.folder.text().strip()).expanduser()


class ExportLabelsDialog(_TransferDialog):
    """Export the current labels or a frozen dataset version into a new (or empty) folder."""

    def __init__(self, versions: Sequence[str], parent: QWidget | None = None,
                 choose_folder: FolderChooser | None = None) -> None:
        super().__init__("Export labels", "Export", choose_folder, parent)
        self.source_combo = QComboBox()
        self.source_combo.addItem(CURRENT_LABELS, None)
        for ref in versions:
            self.source_combo.addItem(f"Dataset version {ref}", ref)
        self.copy_images = QCheckBox("Copy the images too (unticked: the label files alone)")
        self.copy_images.setChecked(True)
        self.lossy = QCheckBox("Let the format leave out what it cannot hold")
        self.lossy.setToolTip("ImageFolder holds one class per image: boxes, and images with "
                              "no class, are left out (listed in the summary)")
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.folder.setPlaceholderText("a new or empty folder")
        self.form.addRow("Labels", self.source_combo)
        self.form.addRow("Format", self.format_combo)
        self.form.addRow("Into folder", _folder_row(
            self.folder, lambda: self._browse("Folder to export into (new or empty)")))
        self.form.addRow("", self.copy_images)
        self.form.addRow("", self.lossy)
        self._format_changed()
        self._finish_layout("Writes the labels with their images in another tool's format. "
                            "Captures whose annotators disagree are left out until the "
                            "conflict is resolved (Label page, or `edgeloop labels conflicts`).")

    def _format_changed(self) -> None:
        info = FORMATS[self.chosen_format]
        # Only a format that cannot hold boxes or unclassified images has anything to drop.
        can_lose = not (info.carries_boxes and info.carries_unclassified)
        self.lossy.setVisible(can_lose)
        if not can_lose:
            self.lossy.setChecked(False)

    @property
    def dataset_ref(self) -> str | None:
        """The dataset version to export (None: the current labels)."""
        return self.source_combo.currentData()


class ImportLabelsDialog(_TransferDialog):
    """Import a folder of labeled images as captures of one device, with imported labels."""

    def __init__(self, parent: QWidget | None = None,
                 choose_folder: FolderChooser | None = None) -> None:
        super().__init__("Import labeled images", "Import", choose_folder, parent)
        self.device = QLineEdit(IMPORT_DEVICE)
        self.device.setToolTip("The imported images become captures of this device (one of "
                               "their own, not a camera of the fleet)")
        self.folder.setPlaceholderText("the dataset's folder (or its label file)")
        self.form.addRow("Folder", _folder_row(
            self.folder, lambda: self._browse("Dataset folder to import")))
        self.form.addRow("Format", self.format_combo)
        self.form.addRow("As device", self.device)
        self._finish_layout("Each image becomes a capture (an image already in the project is "
                            "not stored twice) and its label an imported label; classes the "
                            "project lacks are added.")

    @property
    def device_uid(self) -> str:
        return self.device.text().strip() or IMPORT_DEVICE


def _listed(lines: Sequence[str], heading: str) -> list[str]:
    if not lines:
        return []
    shown = [f"  {line}" for line in lines[:SHOWN_AT_MOST]]
    if len(lines) > SHOWN_AT_MOST:
        shown.append(f"  ... and {len(lines) - SHOWN_AT_MOST} more")
    return [heading, *shown]


def export_summary(report: ExportReport) -> str:
    """What an export did, in a few lines."""
    title = FORMATS[report.format].title
    lines = [f"Exported {report.images} images ({report.boxes} boxes, {len(report.classes)} "
             f"classes) from the {report.source} to {report.out_dir} as {title}."]
    lines += _listed(report.notes, "Notes:")
    lines += _listed([f"{s.file_name}: {s.reason}" for s in report.left_out], "Left out:")
    return "\n".join(lines)


def import_summary(report: ImportReport) -> str:
    """What an import did, in a few lines."""
    title = FORMATS[report.format].title
    lines = [f"Imported {report.images} images from {report.folder} ({title}): "
             f"{report.captures_new} new captures, {report.captures_existing} already here; "
             f"{report.labels_recorded} labels recorded, {report.labels_unchanged} unchanged, "
             f"{report.unlabelled} images without a label."]
    if report.classes_created:
        lines.append("Classes added: " + ", ".join(report.classes_created))
    lines += _listed(report.notes, "Notes:")
    lines += _listed([f"{s.file_name}: {s.reason}" for s in report.skipped], "Skipped:")
    return "\n".join(lines)
