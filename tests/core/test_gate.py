"""From a trained candidate to a signed release, through a real project: compress into every
device format, evaluate each on the frozen test split, pass or fail the validation gate
against the deployed model, and approve. A deliberately worse candidate fails the gate with
the reason; a truncated artifact fails it as "does not load"; only a passed version can be
approved, and only by an engineer or admin.

One EdgeNet is trained per module on 900 generated 64 px scenes (about a minute on 2 cores).
The tests share that project and run in file order, as a user would: compress, then gate and
approve, then judge later candidates against the (then deployed) first model.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from app.core.augment import AugmentConfig
from app.core.compress_service import CompressRequest, compress_model
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.errors import InvalidInput, PermissionDenied
from app.core.evaluate_service import evaluate_model
from app.core.gate import GateBudget, run_gate
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.model_store import find_model, store_artifact
from app.core.models import ArtifactFormat, AuditEvent, ModelStatus, ModelVersion
from app.core.project import Project, init_project
from app.core.roles import Role
from app.core.train_service import TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named, add_user
from app.fleet.agent.manifest import verify_release
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.fleet.signing import load_or_create_signing_key

SIZE = 64
ONNX_ONLY = CompressRequest(formats=(ArtifactFormat.ONNX,))


@dataclass
class Setup:
    project: Project
    fleet: FleetContext
    version: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    project = init_project(tmp_path_factory.mktemp("gate") / "p", admin="admin")
    admin = actor_named(project.db, "admin")
    add_user(project.db, project.audit, admin, "ann", Role.ANNOTATOR)
    import_generated(project.db, project.blobs, project.audit, admin, 900, seed=4, size=SIZE)
    freeze_version(project.db, project.audit, admin)
    config = TrainConfig(epochs=6, lr=5e-3, batch_size=32, patience=6,
                         augment=AugmentConfig.preset("flip"))
    outcome = train_model(project.db, project.blobs, project.audit, admin,
                          TrainRequest(size=SIZE, config=config), runs_dir=project.root / "runs")
    yield Setup(project, FleetContext.of(project), outcome.version)
    project.close()


def admin_of(setup: Setup):  # type: ignore[no-untyped-def]
    return actor_named(setup.project.db, "admin")


def variant(setup: Setup, name: str, change=None, *, data: bytes | None = None) -> str:  # type: ignore[no-untyped-def]
    """A candidate with the trained model's lineage and changed weights (or given bytes)."""
    p = setup.project
    with p.db.write() as session:
        source = find_model(session, setup.version)
        torch_sha = next(a.blob_sha256 for a in source.artifacts if a.format is ArtifactFormat.TORCH)
        row = ModelVersion(version=name, kind=source.kind, training_run_id=source.training_run_id,
                           parent_id=source.id, labels=list(source.labels),
                           input_spec=dict(source.input_spec))
        session.add(row)
        session.flush()
        item = load_model(p.blobs.read_bytes(torch_sha))
        if change is not None:
            with torch.no_grad():
                change(item.model)
        store_artifact(session, p.blobs, p.audit, admin_of(setup), row, ArtifactFormat.TORCH,
                       dump_model(item))
    return name


def test_compress_then_evaluate_every_format(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    outcome = compress_model(p.db, p.blobs, p.audit, admin, setup.version)
    assert set(outcome.sizes) == {"onnx", "onnx_int8", "openvino", "openvino_int8"}
    assert outcome.sizes["onnx_int8"] < 0.5 * outcome.sizes["onnx"]
    evaluation = evaluate_model(p.db, p.blobs, p.audit, admin, setup.version, latency_repeats=20)
    assert evaluation.dataset == "inspection@1"
    results = evaluation.results
    assert set(results) == {ArtifactFormat.TORCH, ArtifactFormat.ONNX, ArtifactFormat.ONNX_INT8,
                            ArtifactFormat.OPENVINO, ArtifactFormat.OPENVINO_INT8}
    assert all(r.loads for r in results.values())
    torch_acc = results[ArtifactFormat.TORCH].report.accuracy
    # ONNX and OpenVINO FP32 run the same network: the same answers, to the image.
    assert results[ArtifactFormat.ONNX].report.confusion == results[ArtifactFormat.TORCH].report.confusion
    assert results[ArtifactFormat.OPENVINO].report.accuracy == pytest.approx(torch_acc, abs=0.01)
    count = results[ArtifactFormat.ONNX].report.count
    for int8 in (ArtifactFormat.ONNX_INT8, ArtifactFormat.OPENVINO_INT8):
        # Within 2 images of FP32 on this small split (test_compress holds 1 point on 300).
        assert abs(results[int8].report.accuracy - torch_acc) * count <= 2, int8
    with p.db.read() as session:
        row = find_model(session, setup.version)
        stored = {a.format: a.metrics for a in row.artifacts}
        summary = row.metrics["evaluation"]
    assert stored[ArtifactFormat.ONNX_INT8]["latency_p50_ms"] > 0
    assert stored[ArtifactFormat.ONNX_INT8]["per_class"]["ok"]["support"] > 0
    assert len(stored[ArtifactFormat.ONNX]["confusion"]) == len(row.labels)
    assert summary["formats"]["openvino_int8"]["loads"] is True


def test_the_first_model_passes_on_budgets_and_an_admin_approves_it(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    failed = run_gate(p.db, p.blobs, p.audit, admin, setup.version,
                      GateBudget(max_size_bytes=1000), latency_repeats=10)
    assert not failed.passed and any("budget 1,000 bytes" in r for r in failed.reasons)
    with pytest.raises(InvalidInput, match="not gate_passed"):
        approve_model(setup.fleet, admin, setup.version)

    verdict = run_gate(p.db, p.blobs, p.audit, admin, setup.version, latency_repeats=10)
    assert verdict.passed, verdict.reasons
    assert verdict.baseline is None
    assert any("no deployed model" in c.detail for c in verdict.checks)
    with pytest.raises(PermissionDenied):
        approve_model(setup.fleet, actor_named(p.db, "ann"), setup.version)

    release = approve_model(setup.fleet, admin, setup.version, note="first release")
    folder = p.root / "check-release"
    with tarfile.open(fileobj=__import__("io").BytesIO(release.tar)) as archive:
        archive.extractall(folder, filter="data")
    manifest = verify_release(folder, [load_or_create_signing_key(p.keys_dir).public_key()])
    assert manifest.version == setup.version
    assert manifest.raw["formats"] == {"onnxruntime": "onnx_int8", "openvino": "openvino_int8"}
    # A device self-tests each runtime against its own file's output: the two INT8 models
    # come from two quantizers and need not agree within the tolerance.
    from app.fleet.agent.runtime import self_test

    for runtime in ("onnxruntime", "openvino"):
        assert self_test(folder, manifest, runtime).runtime == runtime
    with p.db.read() as session:
        row = find_model(session, setup.version)
        assert row.status is ModelStatus.APPROVED and row.approved_by_id == admin.user_id
        assert any(a.format is ArtifactFormat.RELEASE for a in row.artifacts)
        actions = list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.object_id == setup.version)))
    assert actions.count("model.gate") == 2 and "model.approve" in actions
    with pytest.raises(InvalidInput, match="approved"):
        compress_model(p.db, p.blobs, p.audit, admin, setup.version)


def deploy(setup: Setup) -> None:
    """What a finished rollout does to the version (app.fleet.deploy)."""
    with setup.project.db.write() as session:
        find_model(session, setup.version).status = ModelStatus.DEPLOYED


def test_a_worse_candidate_fails_the_gate_with_its_reason(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    deploy(setup)
    with p.db.read() as session:
        baseline = find_model(session, setup.version)
        per_class = next(a.metrics for a in baseline.artifacts
                         if a.format is ArtifactFormat.ONNX_INT8)["per_class"]  # what it ships
    # The class the deployed model finds best besides "ok": the candidate stops finding it.
    victim = max((name for name in per_class if name != "ok"),
                 key=lambda name: per_class[name]["recall"])
    assert per_class[victim]["recall"] > 0.3, per_class
    index = baseline.labels.index(victim)

    def blind(model: torch.nn.Module) -> None:
        model.head.bias[index] -= 1000.0

    worse = variant(setup, "edge-blind", blind)
    compress_model(p.db, p.blobs, p.audit, admin, worse, ONNX_ONLY)
    verdict = run_gate(p.db, p.blobs, p.audit, admin, worse, latency_repeats=10)
    assert not verdict.passed
    assert verdict.baseline == setup.version
    assert any(f"recall of {victim} 0.000" in r for r in verdict.reasons), verdict.reasons
    with p.db.read() as session:
        row = find_model(session, worse)
        assert row.status is ModelStatus.GATE_FAILED
        assert row.gate_verdict["reasons"] == verdict.reasons
    with pytest.raises(InvalidInput, match="gate_failed"):
        approve_model(setup.fleet, admin, worse)


def test_an_equal_candidate_passes_against_the_deployed_model(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    deploy(setup)
    same = variant(setup, "edge-same")
    compress_model(p.db, p.blobs, p.audit, admin, same,
                   CompressRequest(formats=(ArtifactFormat.ONNX_INT8,)))
    verdict = run_gate(p.db, p.blobs, p.audit, admin, same, latency_repeats=10)
    assert verdict.passed, verdict.reasons
    assert verdict.baseline == setup.version
    assert any(c.name.startswith("recall:onnx_int8:") for c in verdict.checks)


def test_a_truncated_artifact_fails_the_gate_as_not_loading(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    broken = variant(setup, "edge-cut")
    compress_model(p.db, p.blobs, p.audit, admin, broken, ONNX_ONLY)
    with p.db.write() as session:
        row = find_model(session, broken)
        onnx = next(a for a in row.artifacts if a.format is ArtifactFormat.ONNX)
        data = p.blobs.read_bytes(onnx.blob_sha256)
        store_artifact(session, p.blobs, p.audit, admin, row, ArtifactFormat.ONNX,
                       data[: len(data) // 2])
    verdict = run_gate(p.db, p.blobs, p.audit, admin, broken, latency_repeats=10)
    assert not verdict.passed
    assert any("edge-cut onnx does not load" in r and "model.onnx" in r for r in verdict.reasons)
    assert any("no loadable ONNX model to ship" in r for r in verdict.reasons)


def test_bad_requests_are_refused_clearly(setup: Setup) -> None:
    p, admin = setup.project, admin_of(setup)
    with pytest.raises(InvalidInput, match="no model version 'edge-404'"):
        compress_model(p.db, p.blobs, p.audit, admin, "edge-404")
    with pytest.raises(InvalidInput, match="gate tolerances"):
        GateBudget(recall_tolerance=5)
    with pytest.raises(PermissionDenied):
        compress_model(p.db, p.blobs, p.audit, actor_named(p.db, "ann"), setup.version)
    fresh = variant(setup, "edge-fresh")
    with pytest.raises(InvalidInput, match="no onnx artifact"):
        evaluate_model(p.db, p.blobs, p.audit, admin, fresh, formats=(ArtifactFormat.ONNX,))


def test_pruning_makes_a_smaller_child_version_with_its_own_run(setup: Setup) -> None:
    from app.core.compress_service import prune_model
    from app.core.models import TrainingRun

    p, admin = setup.project, admin_of(setup)
    outcome = prune_model(p.db, p.blobs, p.audit, admin, setup.version, 0.5, finetune_epochs=1)
    assert outcome.report["parameters_after"] < 0.5 * outcome.report["parameters_before"]
    with p.db.read() as session:
        child, parent = find_model(session, outcome.version), find_model(session, setup.version)
        run = session.get(TrainingRun, outcome.run_id)
        assert child.parent_id == parent.id and child.status is ModelStatus.CANDIDATE
        assert run.parent_model_id == parent.id and run.hyperparameters["prune_ratio"] == 0.5
        sha = next(a.blob_sha256 for a in child.artifacts if a.format is ArtifactFormat.TORCH)
    loaded = load_model(p.blobs.read_bytes(sha))
    assert loaded.pruned and loaded.labels == list(child.labels)
    # The pruned child compresses and evaluates like any version.
    compress_model(p.db, p.blobs, p.audit, admin, outcome.version, ONNX_ONLY)
    evaluation = evaluate_model(p.db, p.blobs, p.audit, admin, outcome.version,
                                formats=(ArtifactFormat.ONNX,), latency_repeats=10)
    assert evaluation.results[ArtifactFormat.ONNX].loads
