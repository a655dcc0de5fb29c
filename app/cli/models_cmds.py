"""``edgeloop compress|prune|evaluate`` and ``edgeloop models list|show|gate|approve``.

Each command calls the same service the GUI calls (``app.core.compress_service``,
``evaluate_service``, ``gate``, ``app.fleet.approval``); long ones print a progress line and
stop cleanly on Ctrl-C. torch, ONNX Runtime and OpenVINO load inside the commands that need
them, so the CLI starts quickly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, format_time, open_from_cli,
)
from app.cli.longwork import long_work
from app.core.errors import InvalidInput
from app.core.models import ArtifactFormat, ModelKind

models_app = typer.Typer(help="Model versions: list, inspect, gate and approve.",
                         no_args_is_help=True)

FormatsOpt = Annotated[
    list[str] | None,
    typer.Option("--format", help="onnx, onnx_int8, openvino or openvino_int8 (repeatable; "
                                  "default: all four)."),
]
RepeatsOpt = Annotated[int, typer.Option(min=1, max=100_000,
                                         help="Timed runs per format for latency.")]


def _formats(names: list[str] | None) -> tuple[ArtifactFormat, ...] | None:
    if not names:
        return None
    try:
        return tuple(ArtifactFormat(name) for name in names)
    except ValueError:
        raise InvalidInput(f"unknown format in {names}; choose from onnx, onnx_int8, "
                           "openvino, openvino_int8") from None


def compress(
    version: Annotated[str, typer.Argument(help="The model version to compress.")],
    format: FormatsOpt = None,
    calibration: Annotated[int, typer.Option(min=1, max=100_000,
                                             help="Training images to calibrate INT8 on.")] = 300,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Export a version to ONNX and OpenVINO and quantize both to INT8; each is stored as an
    artifact of the version. Ctrl-C cancels and stores nothing."""
    from app.core.compress_service import COMPRESSED_FORMATS, CompressRequest, compress_model

    request = CompressRequest(formats=_formats(format) or COMPRESSED_FORMATS,
                              calibration_images=calibration)
    with open_from_cli(project, db) as p, long_work(
            "compression", "Compression cancelled; nothing was stored.") as (line, cancel):
        outcome = compress_model(p.db, p.blobs, p.audit, acting_user(p, user), version,
                                 request, progress=line, cancel=cancel)
    echo_table(["FORMAT", "KB"], [[name, f"{size / 1024:.0f}"]
                                  for name, size in outcome.sizes.items()])
    typer.echo(f"Next: `edgeloop evaluate {version}` or `edgeloop models gate {version}`.")


def prune(
    version: Annotated[str, typer.Argument(help="The model version to prune.")],
    ratio: Annotated[float, typer.Option(min=0.05, max=0.9,
                                         help="Share of channels to remove.")] = 0.4,
    epochs: Annotated[int, typer.Option(min=1, max=100, help="Fine-tune epochs.")] = 3,
    name: Annotated[str | None, typer.Option(help="Name of the new version "
                                                  "(default: the next edge-N).")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Remove channels from a version and fine-tune it: a new, smaller candidate version."""
    from app.core.compress_service import prune_model

    with open_from_cli(project, db) as p, long_work(
            "pruning", "Pruning cancelled; the run is recorded as cancelled, no version "
                       "made.") as (line, cancel):
        outcome = prune_model(p.db, p.blobs, p.audit, acting_user(p, user), version, ratio,
                              finetune_epochs=epochs, new_version=name, clock=p.clock,
                              progress=line, cancel=cancel)
    r = outcome.report
    typer.echo(f"Pruned {version} into {outcome.version}: {r['parameters_before']:,} -> "
               f"{r['parameters_after']:,} parameters, {r['macs_before']:,} -> "
               f"{r['macs_after']:,} MACs; val accuracy {r['val_accuracy_before']:.3f} -> "
               f"{r['val_accuracy_after']:.3f}.")


def evaluate(
    version: Annotated[str, typer.Argument(help="The model version to evaluate.")],
    dataset: Annotated[str | None, typer.Option(help="Dataset version whose test split to "
                                                     "use (default: the training one).")] = None,
    format: FormatsOpt = None,
    repeats: RepeatsOpt = 200,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Runtime threads.")] = 1,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Score every artifact of a version on a frozen test split as devices run it."""
    from app.core.evaluate_service import evaluate_model

    with open_from_cli(project, db) as p, long_work(
            "evaluation", "Evaluation cancelled; nothing was stored.") as (line, cancel):
        evaluation = evaluate_model(p.db, p.blobs, p.audit, acting_user(p, user), version,
                                    dataset=dataset, formats=_formats(format),
                                    latency_repeats=repeats, threads=threads,
                                    progress=line, cancel=cancel)
    typer.echo(f"{version} on the test split of {evaluation.dataset}:")
    _format_table({f.value: r.to_json() for f, r in evaluation.results.items()})
    first = next((r for r in evaluation.results.values() if r.report is not None), None)
    if first is not None and first.report is not None:
        typer.echo(f"Per class ({first.format.value}):")
        echo_table(["CLASS", "PRECISION", "RECALL", "IMAGES"],
                   [[n, f"{c.precision:.3f}", f"{c.recall:.3f}", c.support]
                    for n, c in first.report.per_class.items()])


def _format_table(results: dict[str, dict[str, Any]]) -> None:
    echo_table(["FORMAT", "LOADS", "ACCURACY", "P50 MS", "P99 MS", "KB"], [
        [name, "yes" if r.get("loads", True) else "NO",
         f"{r['accuracy']:.3f}" if "accuracy" in r else "-",
         f"{r['latency_p50_ms']:.2f}" if "latency_p50_ms" in r else "-",
         f"{r['latency_p99_ms']:.2f}" if "latency_p99_ms" in r else "-",
         f"{r.get('size', 0) / 1024:.0f}"] for name, r in results.items()])
    for name, r in results.items():
        if r.get("error"):
            typer.echo(f"  {name}: {r['error']}")


@models_app.command("list")
def models_list(
    kind: Annotated[ModelKind | None, typer.Option(help="edge or observer (default: both).")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Every model version, newest first, with its status and artifacts."""
    from app.core.model_registry import model_summaries

    with open_from_cli(project, db) as p:
        acting_user(p, user)
        rows = [[m.version, m.kind.value, m.status.value,
                 "-" if m.test_accuracy is None else f"{m.test_accuracy:.3f}",
                 ",".join(m.formats), format_time(m.created_at)]
                for m in model_summaries(p.db, kind)]
    if not rows:
        typer.echo("No model versions yet; `edgeloop train` makes the first candidate.")
        return
    echo_table(["VERSION", "KIND", "STATUS", "TEST ACC", "ARTIFACTS", "CREATED"], rows)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="The model version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Everything, as JSON.")] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """A version's lineage, metrics, artifacts and gate verdict."""
    from app.core.model_registry import model_details

    with open_from_cli(project, db) as p:
        acting_user(p, user)
        m = model_details(p.db, version)
    data = {
        "version": m.version, "kind": m.kind.value, "status": m.status.value,
        "parent": m.parent, "training_run": m.training_run, "dataset": m.dataset,
        "labels": m.labels, "input_spec": m.input_spec, "metrics": m.metrics,
        "artifacts": {f.format.value: {"sha256": f.sha256, "size": f.size, **f.stored}
                      for f in m.formats},
        "gate_verdict": m.gate_verdict,
        "approved_at": format_time(m.approved_at) if m.approved_at else None,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    typer.echo(f"{data['version']} ({data['kind']}): {data['status']}"
               + (f", from {data['parent']}" if data["parent"] else "")
               + (f", training run {data['training_run']}" if data["training_run"] else "")
               + (f" on {data['dataset']}" if data["dataset"] else ""))
    typer.echo(f"Labels: {', '.join(data['labels'])}")
    shown = {k: v for k, v in data["metrics"].items() if not isinstance(v, (dict, list))}
    if shown:
        typer.echo("Metrics: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    _format_table(data["artifacts"])
    verdict = data["gate_verdict"]
    if verdict:
        typer.echo(f"Gate: {'PASSED' if verdict['passed'] else 'FAILED'} on "
                   f"{verdict['dataset']} against {verdict['baseline'] or 'no deployed model'}")
        for reason in verdict["reasons"]:
            typer.echo(f"  - {reason}")


@models_app.command("gate")
def models_gate(
    version: Annotated[str, typer.Argument(help="The candidate version.")],
    baseline: Annotated[str | None, typer.Option(help="Compare with this version (default: "
                                                      "the deployed one).")] = None,
    recall_tolerance: Annotated[float, typer.Option(min=0.0, max=1.0, help="How much lower "
                                                    "a class's recall may be (0.02 = 2 points).")] = 0.02,
    accuracy_tolerance: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    max_latency_ms: Annotated[float | None, typer.Option(help="p50 budget per frame.")] = None,
    max_size_kb: Annotated[float | None, typer.Option(help="Size budget per shipped "
                                                           "artifact.")] = None,
    repeats: RepeatsOpt = 200,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Evaluate a candidate and its baseline on the same test split and decide; the verdict is
    stored. Exit status 1 when the candidate fails."""
    from app.core.gate import GateBudget, run_gate

    budget = GateBudget(accuracy_tolerance=accuracy_tolerance, recall_tolerance=recall_tolerance,
                        max_latency_ms=max_latency_ms,
                        max_size_bytes=None if max_size_kb is None else int(max_size_kb * 1024))
    with open_from_cli(project, db) as p, long_work(
            "the gate", "Gate cancelled; the version's status is unchanged.") as (line, cancel):
        verdict = run_gate(p.db, p.blobs, p.audit, acting_user(p, user), version, budget,
                           baseline=baseline, latency_repeats=repeats, progress=line,
                           cancel=cancel)
    against = verdict.baseline or "no deployed model (budgets only)"
    if verdict.passed:
        typer.echo(f"{version} PASSED the gate on {verdict.dataset} against {against}; "
                   f"approve it with `edgeloop models approve {version}`.")
        return
    typer.echo(f"{version} FAILED the gate on {verdict.dataset} against {against}:")
    for reason in verdict.reasons:
        typer.echo(f"  - {reason}")
    raise typer.Exit(1)


@models_app.command("approve")
def models_approve(
    version: Annotated[str, typer.Argument(help="A version that passed the gate.")],
    note: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Approve a gate-passed version: build its release, sign it with the project's key and
    register it for deploys (engineers and admins; audited)."""
    from app.fleet.approval import approve_model
    from app.fleet.context import FleetContext

    with open_from_cli(project, db) as p:
        release = approve_model(FleetContext.of(p), acting_user(p, user), version, note=note)
    typer.echo(f"Approved {version}: signed release registered ({len(release.tar) // 1024} "
               f"KiB); deploy it with `edgeloop deploy {version}`.")
