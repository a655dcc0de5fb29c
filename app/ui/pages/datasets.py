"""The Datasets page: frozen versions with their sizes per split and class; diff of two;
labels exported to, and labeled images imported from, other tools' formats."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableView, QVBoxLayout

from app.annotate.transfer import export_labels, import_folder
from app.annotate.widgets.label_transfer import (
    ExportLabelsDialog, FolderChooser, ImportLabelsDialog, export_summary, import_summary,
)
from app.core.datasets import VersionDiff, VersionSummary, diff_versions, list_versions
from app.core.roles import Permission
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("Version", "Frozen (UTC)", "By", "Samples", "Train / val / test", "Per class", "Notes")


def version_cells(v: VersionSummary) -> tuple[object, ...]:
    """A dataset version as the table shows it."""
    splits = v.by_split
    return (v.ref, v.frozen_at.strftime("%Y-%m-%d %H:%M") if v.frozen_at else "-",
            v.created_by or "-", v.total,
            " / ".join(str(splits.get(s, 0)) for s in ("train", "val", "test")),
            ", ".join(f"{name} {n}" for name, n in sorted(v.by_class.items())), v.notes)


def describe_diff(diff: VersionDiff) -> str:
    """One line a person reads: what changed from ``a`` to ``b``."""
    if diff.unchanged:
        return f"{diff.a} and {diff.b} hold the same samples, labels and splits."
    return (f"{diff.a} -> {diff.b}: {len(diff.added)} added, {len(diff.removed)} removed, "
            f"{len(diff.relabelled)} relabelled, {len(diff.moved)} moved between splits")


class DatasetsPage(Page):
    """Select two versions and press Diff to see what changed between them; export labels
    or import labeled images through a dialog each."""

    title = "Datasets"

    def __init__(self, context: PageContext, choose_folder: FolderChooser | None = None) -> None:
        super().__init__(context)
        self.choose_folder = choose_folder  # None: the platform's folder dialog
        self.export_dialog: ExportLabelsDialog | None = None
        self.import_dialog: ImportLabelsDialog | None = None
        self.model: RowsTableModel[VersionSummary] = RowsTableModel(COLUMNS, version_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (120, 130, 90, 70, 130, 380))
        self.table.setSelectionMode(QTableView.SelectionMode.ExtendedSelection)
        self.diff_button = QPushButton("Diff two selected")
        self.diff_button.clicked.connect(self.diff_selected)
        self.result = QLabel("Select two versions to compare them.")
        self.result.setWordWrap(True)
        self.export_button = QPushButton("Export labels...")
        self.export_button.setToolTip("Write the current labels, or a dataset version, as "
                                      "COCO, YOLO, Pascal VOC, ImageFolder, Label Studio or CVAT")
        self.export_button.clicked.connect(self.open_export)
        self.import_button = QPushButton("Import labeled images...")
        self.import_button.clicked.connect(self.open_import)
        if context.actor.may(Permission.PULL) and context.actor.may(Permission.ANNOTATE):
            self.import_button.setToolTip("Add a folder of labeled images (in one of those "
                                          "formats) as captures with their labels")
        else:
            self.import_button.setEnabled(False)
            self.import_button.setToolTip(f"Your role ({context.actor.role.value}) may not "
                                          "import captures and labels")
        bar = QHBoxLayout()
        bar.addWidget(self.diff_button)
        bar.addWidget(self.result, 1)
        bar.addWidget(self.export_button)
        bar.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)

    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading dataset versions",
                                      lambda progress, cancel: list_versions(db))
        # Newest first within each dataset.
        task.succeeded.connect(lambda rows: self.model.set_rows(
            sorted(rows, key=lambda v: (v.dataset, -v.number))))

    def diff_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        if len(rows) != 2:
            self.result.setText("Select exactly two versions (Ctrl-click the second).")
            return
        older, newer = sorted((self.model.rows[r] for r in rows), key=lambda v: v.number)
        db = self.context.project.db
        task = self.context.tasks.run(
            "Comparing versions", lambda progress, cancel: diff_versions(db, older.ref, newer.ref))
        task.succeeded.connect(lambda diff: self.result.setText(describe_diff(diff)))

    # -- export and import ------------------------------------------------------------------
    def open_export(self) -> None:
        """Ask what to export, then export it as a task (progress and Cancel in the status bar)."""
        dialog = ExportLabelsDialog([v.ref for v in self.model.rows], self, self.choose_folder)
        self.export_dialog = dialog
        dialog.accepted.connect(lambda: self._export(dialog))
        dialog.open()

    def _export(self, dialog: ExportLabelsDialog) -> None:
        project = self.context.project
        fmt, out, ref = dialog.chosen_format, dialog.chosen_folder, dialog.dataset_ref
        images, lossy = dialog.copy_images.isChecked(), dialog.lossy.isChecked()
        self.result.setText(f"Exporting to {out}...")
        task = self.context.tasks.run(
            "Exporting labels", lambda progress, cancel: export_labels(
                project.db, project.blobs, fmt, out, dataset_ref=ref, copy_images=images,
                lossy=lossy, progress=progress, cancel=cancel))
        task.succeeded.connect(lambda report: self.result.setText(export_summary(report)))
        task.failed.connect(lambda message: self.result.setText(f"Nothing was exported: {message}"))
        task.cancelled.connect(lambda: self.result.setText("Export cancelled; nothing was written."))

    def open_import(self) -> None:
        """Ask which folder to import, then import it as a task."""
        dialog = ImportLabelsDialog(self, self.choose_folder)
        self.import_dialog = dialog
        dialog.accepted.connect(lambda: self._import(dialog))
        dialog.open()

    def _import(self, dialog: ImportLabelsDialog) -> None:
        project, actor = self.context.project, self.context.actor
        fmt, folder, device = dialog.chosen_format, dialog.chosen_folder, dialog.device_uid
        self.result.setText(f"Importing {folder}...")
        task = self.context.tasks.run(
            "Importing labeled images", lambda progress, cancel: import_folder(
                project.db, project.blobs, project.audit, actor, fmt, folder, device_uid=device,
                clock=project.clock, progress=progress, cancel=cancel))
        task.succeeded.connect(lambda report: self.result.setText(import_summary(report)))
        task.failed.connect(lambda message: self.result.setText(f"Nothing was imported: {message}"))
        task.cancelled.connect(lambda: self.result.setText(
            "Import cancelled; no capture or label was committed."))
