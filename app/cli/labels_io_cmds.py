"""``edgeloop labels export|import``: labels to and from COCO, YOLO, Pascal VOC,
ImageFolder, Label Studio and CVAT files (app.annotate.transfer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.annotate.formats import FORMATS, Format
from app.annotate.transfer import IMPORT_DEVICE, export_labels, import_folder
from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, open_from_cli
from app.cli.longwork import long_work

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="The label format.")]


def export_labels_cmd(
    fmt: FormatOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to create (new or empty).")],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="A frozen dataset version (name@N, or name for its newest) instead "
                          "of the current labels.")] = None,
    images: Annotated[bool, typer.Option(
        "--images/--no-images", help="Copy the images too (default) or write labels only.")] = True,
    lossy: Annotated[bool, typer.Option(
        "--lossy", help="Let the format drop what it cannot hold (ImageFolder: boxes and "
                        "images without a class).")] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Export the current labels (or a dataset version) with their images."""
    with open_from_cli(project, db) as p, long_work(
            "the export", "Export stopped; nothing was written.") as (line, cancel):
        acting_user(p, user)
        report = export_labels(p.db, p.blobs, fmt, out, dataset_ref=dataset,
                               copy_images=images, lossy=lossy, progress=line, cancel=cancel)
    typer.echo(f"Exported {report.images} images ({report.boxes} boxes, "
               f"{len(report.classes)} classes) from {report.source} to {report.out_dir} "
               f"as {FORMATS[report.format].title}.")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    for left in report.left_out:
        typer.echo(f"  left out {left.file_name}: {left.reason}")


def import_labels_cmd(
    folder: Annotated[Path, typer.Argument(help="The dataset folder (or its label file).")],
    fmt: FormatOpt,
    device: Annotated[str, typer.Option(
        "--device", help="Device the imported captures belong to (one of their own).")] =
        IMPORT_DEVICE,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Import a folder of labelled images as captures with imported labels."""
    with open_from_cli(project, db) as p, long_work(
            "the import", "Import stopped; no capture or label was committed.") as (line, cancel):
        report = import_folder(p.db, p.blobs, p.audit, acting_user(p, user), fmt, folder,
                               device_uid=device, clock=p.clock, progress=line, cancel=cancel)
    typer.echo(f"Read {report.images} images: {report.captures_new} new captures, "
               f"{report.captures_existing} already there; {report.labels_recorded} labels "
               f"recorded, {report.labels_unchanged} unchanged, {report.unlabelled} without a "
               f"label; {len(report.skipped)} skipped.")
    if report.classes_created:
        typer.echo(f"Classes added: {', '.join(report.classes_created)}")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    for skipped in report.skipped:
        typer.echo(f"  skipped {skipped.file_name}: {skipped.reason}")
