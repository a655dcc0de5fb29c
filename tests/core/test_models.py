"""Every model round-trips through SQLite and PostgreSQL with its values and relations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.core.errors import ImmutableRecord
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, ArtifactFormat, Blob, Capture, CaptureReason,
    Dataset, DatasetSample, DatasetVersion, Deployment, DeploymentState, Device,
    DriftMeasurement, EnrollmentState, LabelClass, ModelArtifact, ModelKind, ModelStatus,
    ModelVersion, ProjectSetting, ReviewStatus, Role, Rollout, RolloutState, RunStatus, Split,
    TrainingRun, User,
)
from app.core.project import Project

T0 = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=timezone.utc)


def _build_graph(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    user = User(name="ann", full_name="Ann Notator", role=Role.ANNOTATOR, password_hash="x")
    device = Device(
        uid="cam-07", name="Line 7 camera", address="10.0.0.7", ssh_port=2222,
        host_key_fingerprint="SHA256:abc", enrollment=EnrollmentState.ENROLLED,
        agent_version="0.1.0", model_version="edge-1", hardware="rpi5",
        advertised={"id": "cam-07", "hw": "rpi5", "nested": {"fps": 29.5}},
        capture_cursor="000123", last_seen=T0, enrolled_at=T0,
    )
    ok, scratch = LabelClass(name="ok", position=0), LabelClass(name="scratch", position=1,
                                                                 color="#ff0000")
    blob = Blob(sha256="b" * 64, size=20480, media_type="image/png")
    s.add_all([user, device, ok, scratch, blob])
    s.flush()
    capture = Capture(
        device_id=device.id, device_capture_id="2026-11-02T09-30-15-0001", blob_sha256=blob.sha256,
        captured_at=T0, reason=CaptureReason.LOW_CONFIDENCE, model_version="edge-1",
        edge_class_id=ok.id, edge_confidence=0.41, observer_class_id=scratch.id,
        observer_confidence=0.93, review_status=ReviewStatus.QUEUED,
    )
    s.add(capture)
    s.flush()
    annotation = Annotation(
        capture_id=capture.id, class_id=scratch.id, author_id=user.id,
        source=AnnotationSource.MODEL_ASSISTED, created_at=T0,
        boxes=[AnnotationBox(class_id=scratch.id, x=1.5, y=2.0, width=30.25, height=12.0)],
    )
    dataset = Dataset(name="inspection", description="line 7")
    s.add_all([annotation, dataset])
    s.flush()
    version = DatasetVersion(
        dataset_id=dataset.id, number=1, created_by_id=user.id, content_hash="c" * 64,
        split_seed=7, label_schema=["ok", "scratch"], notes="first",
    )
    s.add(version)
    s.flush()
    s.add(DatasetSample(version_id=version.id, capture_id=capture.id, blob_sha256=blob.sha256,
                        split=Split.TEST, class_id=scratch.id,
                        boxes=[{"class": "scratch", "x": 1.5, "y": 2, "w": 30.25, "h": 12}]))
    run = TrainingRun(
        kind=ModelKind.EDGE, dataset_version_id=version.id, started_by_id=user.id,
        status=RunStatus.SUCCEEDED, hyperparameters={"lr": 0.001, "epochs": 5},
        code_version="abc123", seed=42, device="cpu", metrics={"val_acc": 0.97},
        started_at=T0, finished_at=T0 + timedelta(minutes=3),
    )
    s.add(run)
    s.flush()
    parent = ModelVersion(version="edge-1", kind=ModelKind.EDGE, status=ModelStatus.DEPLOYED)
    s.add(parent)
    s.flush()
    model = ModelVersion(
        version="edge-2", kind=ModelKind.EDGE, training_run_id=run.id, parent_id=parent.id,
        status=ModelStatus.APPROVED, labels=["ok", "scratch"],
        input_spec={"size": [128, 128], "mean": [0.5, 0.5, 0.5]}, metrics={"acc": 0.97},
        gate_verdict={"passed": True, "reasons": []}, approved_by_id=user.id, approved_at=T0,
        artifacts=[ModelArtifact(format=ArtifactFormat.ONNX_INT8, blob_sha256=blob.sha256,
                                 size=20480, metrics={"p50_ms": 1.2})],
    )
    s.add(model)
    s.flush()
    run.parent_model_id = parent.id
    rollout = Rollout(model_id=model.id, started_by_id=user.id, state=RolloutState.RUNNING,
                      stages=[{"name": "canary", "devices": ["cam-07"]}], current_stage=0)
    s.add(rollout)
    s.flush()
    s.add(Deployment(rollout_id=rollout.id, model_id=model.id, device_id=device.id, stage=0,
                     state=DeploymentState.HEALTHY, started_at=T0, finished_at=T0,
                     detail="self-test passed"))
    s.add(DriftMeasurement(device_id=device.id, metric="psi_confidence", value=0.31,
                           threshold=0.25, alert=True, window_start=T0,
                           window_end=T0 + timedelta(hours=1), baseline="dataset:1",
                           details={"bins": [0.1, 0.2]}))
    s.add(ProjectSetting(key="retention_days", value={"captures": 90}))
    return {"capture": capture.id, "model": model.id, "run": run.id, "version": version.id}


def test_every_model_round_trips(project: Project) -> None:
    with project.db.write() as s:
        ids = _build_graph(s)
    with project.db.read() as s:
        capture = s.get(Capture, ids["capture"])
        assert capture.captured_at == T0 and capture.captured_at.tzinfo is not None
        assert capture.reason is CaptureReason.LOW_CONFIDENCE
        assert capture.review_status is ReviewStatus.QUEUED
        assert capture.edge_confidence == pytest.approx(0.41)
        device = s.scalar(select(Device).where(Device.uid == "cam-07"))
        assert device.advertised["nested"] == {"fps": 29.5}
        assert device.enrollment is EnrollmentState.ENROLLED and device.last_seen == T0
        annotation = s.scalar(select(Annotation))
        assert annotation.source is AnnotationSource.MODEL_ASSISTED
        assert [(b.x, b.width) for b in annotation.boxes] == [(1.5, 30.25)]
        version = s.get(DatasetVersion, ids["version"])
        assert version.label_schema == ["ok", "scratch"]
        assert version.samples[0].split is Split.TEST
        assert version.samples[0].boxes[0]["w"] == 30.25
        model = s.get(ModelVersion, ids["model"])
        assert model.artifacts[0].format is ArtifactFormat.ONNX_INT8
        assert model.input_spec["size"] == [128, 128] and model.gate_verdict["passed"] is True
        run = s.get(TrainingRun, ids["run"])
        assert run.parent_model_id == model.parent_id
        assert run.finished_at - run.started_at == timedelta(minutes=3)
        rollout = s.scalar(select(Rollout))
        assert rollout.deployments[0].state is DeploymentState.HEALTHY
        drift = s.scalar(select(DriftMeasurement))
        assert drift.alert is True and drift.details == {"bins": [0.1, 0.2]}
        assert s.get(ProjectSetting, "retention_days").value == {"captures": 90}


def test_naive_datetimes_are_refused(project: Project) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        with project.db.write() as s:
            s.add(Blob(sha256="d" * 64, size=1, created_at=datetime(2026, 1, 1)))


def test_frozen_dataset_version_and_audit_events_cannot_change(project: Project) -> None:
    from app.core.models import AuditEvent

    with project.db.write() as s:
        ids = _build_graph(s)
        s.get(DatasetVersion, ids["version"]).frozen_at = T0
    with pytest.raises(ImmutableRecord, match="frozen"):
        with project.db.write() as s:
            s.get(DatasetVersion, ids["version"]).samples[0].split = Split.TRAIN
    with pytest.raises(ImmutableRecord, match="frozen"):
        with project.db.write() as s:
            s.get(DatasetVersion, ids["version"]).notes = "changed"
    with pytest.raises(ImmutableRecord, match="append-only"):
        with project.db.write() as s:
            s.delete(s.scalar(select(AuditEvent)))
    with project.db.read() as s:
        assert s.get(DatasetVersion, ids["version"]).samples[0].split is Split.TEST
