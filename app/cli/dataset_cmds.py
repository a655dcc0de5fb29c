"""``edgeloop dataset freeze|list|diff|generate`` and ``edgeloop train``: frozen data in,
candidate models out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, format_time, open_from_cli,
)
from app.cli.longwork import long_work
from app.core.dataset_import import import_generated
from app.core.datasets import (
    DEFAULT_DATASET, VersionDiff, VersionSummary, diff_versions, freeze_version, list_versions,
)
from app.core.models import ModelKind

dataset_app = typer.Typer(help="Freeze labelled captures into immutable dataset versions.",
                          no_args_is_help=True)

DatasetOpt = Annotated[str, typer.Option("--dataset", help="Dataset name.")]


@dataset_app.command("freeze")
def freeze(
    dataset: DatasetOpt = DEFAULT_DATASET,
    seed: Annotated[int, typer.Option(min=0, help="Split seed (same seed, same split).")] = 0,
    val: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share for validation.")] = 0.15,
    test: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share for test.")] = 0.15,
    near_window: Annotated[float, typer.Option(
        min=0.0, help="Seconds: frames of one device this close stay on one side of the "
                      "split.")] = 60.0,
    notes: Annotated[str, typer.Option(help="Why this version exists.")] = "",
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Freeze the current reviewed labels into the next version of a dataset."""
    with open_from_cli(project, db) as p:
        summary = freeze_version(p.db, p.audit, acting_user(p, user), dataset, seed=seed,
                                 fractions=(1.0 - val - test, val, test),
                                 near_window_s=near_window, notes=notes, clock=p.clock)
    _echo_summary(summary)


@dataset_app.command("list")
def list_(dataset: Annotated[str | None, typer.Option("--dataset")] = None,
          project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None) -> None:
    """Every frozen version with its counts per split."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        versions = list_versions(p.db, dataset)
    if not versions:
        typer.echo("No dataset versions yet; `edgeloop dataset freeze` makes one.")
        return
    echo_table(["VERSION", "FROZEN", "BY", "TRAIN", "VAL", "TEST", "CLASSES", "HASH", "PARENT"],
               [[v.ref, format_time(v.frozen_at), v.created_by or "-",
                 v.by_split.get("train", 0), v.by_split.get("val", 0),
                 v.by_split.get("test", 0), len(v.label_schema), (v.content_hash or "-")[:12],
                 f"{v.dataset}@{v.parent_number}" if v.parent_number else "-"]
                for v in versions])


@dataset_app.command("diff")
def diff(a: Annotated[str, typer.Argument(metavar="A", help="name@N")],
         b: Annotated[str, typer.Argument(metavar="B", help="name@N")],
         project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None) -> None:
    """What changed between two versions: captures added, removed, relabelled, moved."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        change = diff_versions(p.db, a, b)
    _echo_diff(change)


@dataset_app.command("generate")
def generate(
    count: Annotated[int, typer.Argument(min=1, max=1_000_000, help="How many frames.")],
    seed: Annotated[int, typer.Option(min=0, help="Generator seed.")] = 0,
    size: Annotated[int, typer.Option(min=64, max=256, help="Image size in pixels.")] = 96,
    start: Annotated[int, typer.Option(min=0, help="First frame index.")] = 0,
    scenario: Annotated[str | None, typer.Option(help="Drift scenario, e.g. lighting:0.8.")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Import labelled frames from the synthetic factory-scene generator (reviewed labels)."""
    with open_from_cli(project, db) as p, long_work(
            "the import", "Import stopped; nothing of it was committed.") as (line, cancel):
        new = import_generated(p.db, p.blobs, p.audit, acting_user(p, user), count,
                               seed=seed, size=size, start_index=start, scenario=scenario,
                               clock=p.clock, progress=line, cancel=cancel)
    typer.echo(f"Imported {new} new capture(s) ({count - new} already there).")


def train(
    dataset: Annotated[str, typer.Option(help="Dataset version: name@N, or name for its "
                                              "newest.")] = DEFAULT_DATASET,
    kind: Annotated[ModelKind, typer.Option(help="edge (runs on devices) or observer.")] =
        ModelKind.EDGE,
    parent: Annotated[str | None, typer.Option(help="Model version to fine-tune from.")] = None,
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = 15,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 5e-3,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs "
                                                      "without a better val accuracy.")] = 5,
    size: Annotated[int, typer.Option(min=32, max=1024, help="Input size in pixels.")] = 96,
    width: Annotated[float, typer.Option(min=0.25, max=4.0, help="Channel width "
                                                                 "multiplier.")] = 1.0,
    arch: Annotated[str | None, typer.Option(help="edgenet or observernet (default: edgenet "
                                                  "for edge models, observernet for "
                                                  "observers).")] = None,
    augment: Annotated[str, typer.Option(help="none, flip, mild or strong.")] = "flip",
    seed: Annotated[int, typer.Option(min=0)] = 0,
    version: Annotated[str | None, typer.Option(help="Name of the new model version "
                                                     "(default: the next edge-N).")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Train a candidate model on a frozen dataset version (CUDA when present). Ctrl-C
    cancels; the best epoch so far stays in the project's runs/ folder."""
    # torch and kornia take seconds to import: only the commands that train load them.
    from app.core.augment import AugmentConfig
    from app.core.train_service import TrainRequest, train_model
    from app.core.training import TrainConfig

    request = TrainRequest(kind=kind, dataset=dataset, parent=parent, width=width, size=size,
                           version=version, arch=arch,
                           config=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                                              patience=patience, seed=seed,
                                              augment=AugmentConfig.preset(augment)))
    with open_from_cli(project, db) as p, long_work(
            "training", "Training cancelled; the run is recorded as cancelled.") as (line, cancel):
        outcome = train_model(p.db, p.blobs, p.audit, acting_user(p, user), request,
                              runs_dir=p.root / "runs", clock=p.clock, progress=line,
                              cancel=cancel)
    m = outcome.metrics
    typer.echo(f"Run {outcome.run_id}: candidate {outcome.version}, val accuracy "
               f"{m['val_accuracy']:.3f} (epoch {m['best_epoch']}), test accuracy "
               f"{m['test_accuracy']:.3f}, {m['images_per_second']:.0f} images/s.")


def _echo_summary(v: VersionSummary) -> None:
    typer.echo(f"Froze {v.ref}: {v.total} samples (train {v.by_split.get('train', 0)}, "
               f"val {v.by_split.get('val', 0)}, test {v.by_split.get('test', 0)}), "
               f"hash {(v.content_hash or '-')[:12]}.")
    echo_table(["CLASS", "SAMPLES"], [[name, v.by_class.get(name, 0)]
                                      for name in v.label_schema])


def _echo_diff(d: VersionDiff) -> None:
    typer.echo(f"{d.a} -> {d.b}: {len(d.added)} added, {len(d.removed)} removed, "
               f"{len(d.relabelled)} relabelled, {len(d.moved)} moved between splits.")
    names = list(dict.fromkeys([*d.schema_before, *d.schema_after]))
    echo_table(["CLASS", d.a, d.b], [[n, d.counts_before.get(n, 0), d.counts_after.get(n, 0)]
                                     for n in names])
    for change in d.relabelled[:20]:
        typer.echo(f"  capture {change.capture_id}: {change.old} -> {change.new}")
    if len(d.relabelled) > 20:
        typer.echo(f"  ... and {len(d.relabelled) - 20} more relabelled")
