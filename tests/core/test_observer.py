"""The observer, the review queue it fills, and drift against the training baseline.

One small project is shared by the module: generated scenes of a station (the baseline
dataset), a tiny edge model and a tiny observer trained on them, and captures of two more
"devices": one clean, one under the lighting drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update

from app.core.augment import AugmentConfig
from app.core.dataset_import import GENERATED_EPOCH, import_generated
from app.core.datasets import freeze_version
from app.core.drift_monitor import DriftSettings, build_baseline, measure_drift
from app.core.errors import InvalidInput
from app.core.export import export_onnx
from app.core.model_store import find_model, model_info, unpack_artifact
from app.core.models import (
    Annotation, ArtifactFormat, Capture, CaptureReason, Device, DeviceDriftHour, LabelClass, ModelKind, Observation,
    ReviewItem, ReviewKind, ReviewStatus,
)
from app.core.nets import build_net
from app.core.observer import (
    active_observer, embeddings_of, import_observer, load_observer, observe_captures, softmax,
)
from app.core.project import Project, init_project
from app.core.runtimes import load_runner
from app.core.review_queue import judge, mine_disagreements, open_items, resolve_item
from app.core.roles import Actor
from app.core.scene import CLASSES, SceneGenerator
from app.core.train_service import TrainRequest, train_model
from app.core.training import TrainConfig, input_spec
from app.core.users import actor_named
from app.fleet.agent.drift_stats import DriftStatistics

SIZE = 64
QUICK = TrainConfig(epochs=3, lr=5e-3, patience=3, augment=AugmentConfig.preset("flip"))


@dataclass
class Setup:
    project: Project
    admin: Actor
    edge: str
    observer: str
    tmp: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("observer")
    project = init_project(tmp / "p", admin="admin")
    admin = actor_named(project.db, "admin")
    db, blobs, audit = project.db, project.blobs, project.audit
    import_generated(db, blobs, audit, admin, 400, seed=3, size=SIZE)
    version = freeze_version(db, audit, admin)
    runs = project.root / "runs"
    edge = train_model(db, blobs, audit, admin, TrainRequest(
        kind=ModelKind.EDGE, dataset=version.ref, size=SIZE, width=0.5, config=QUICK),
        runs_dir=runs)
    observer = train_model(db, blobs, audit, admin, TrainRequest(
        kind=ModelKind.OBSERVER, dataset=version.ref, size=SIZE, arch="edgenet", width=0.75,
        config=QUICK), runs_dir=runs)
    # Two more cameras of the same station: one clean, one whose lamp dimmed.
    import_generated(db, blobs, audit, admin, 150, seed=3, size=SIZE, device_uid="cam-clean",
                     start_index=5000)
    import_generated(db, blobs, audit, admin, 150, seed=3, size=SIZE, device_uid="cam-drift",
                     start_index=6000, scenario="lighting")
    yield Setup(project, admin, edge.version, observer.version, tmp)
    project.close()


def test_the_observer_sees_every_capture_once_with_an_embedding(setup: Setup) -> None:
    p = setup.project
    first = observe_captures(p.db, p.blobs, p.audit, setup.admin, batch_size=32)
    total = 400 + 150 + 150
    assert (first.observed, first.unreadable) == (total, 0)
    again = observe_captures(p.db, p.blobs, p.audit, setup.admin)
    assert again.observed == 0
    info = active_observer(p.db)
    assert info.version == setup.observer
    # The export with the embedding output is made once and kept.
    assert ArtifactFormat.ONNX in info.artifacts
    with p.db.read() as session:
        rows = session.execute(select(Observation.capture_id, Observation.embedding,
                                      Observation.confidence, Observation.class_id)).all()
        observed_cols = session.scalar(select(func.count(Capture.id)).where(
            Capture.observer_confidence.is_not(None)))
    assert len(rows) == total and observed_cols == total
    widths = {len(r.embedding) for r in rows}
    assert len(widths) == 1 and widths.pop() > 2 * len(CLASSES)  # pooled features, float16
    assert all(0.0 < r.confidence <= 1.0 for r in rows)


def test_batched_inference_matches_one_image_at_a_time(setup: Setup, tmp_path: Path) -> None:
    p = setup.project
    engine = load_observer(p.blobs, active_observer(p.db), tmp_path, threads=1)
    images = [s.image for s in SceneGenerator(seed=9, size=SIZE).batch(0, 12)]
    batched = engine(images)
    single = [engine([image]) for image in images]
    np.testing.assert_allclose(batched.probs, np.concatenate([s.probs for s in single]),
                               atol=1e-4)
    np.testing.assert_allclose(batched.embeddings,
                               np.concatenate([s.embeddings for s in single]), atol=1e-3)


def test_an_unreadable_capture_is_skipped_and_counted_not_fatal(setup: Setup) -> None:
    p = setup.project
    import_generated(p.db, p.blobs, p.audit, setup.admin, 3, seed=3, size=SIZE,
                     device_uid="cam-broken", start_index=9000)
    with p.db.read() as session:
        shas = list(session.scalars(select(Capture.blob_sha256).join(Device).where(
            Device.uid == "cam-broken").order_by(Capture.id)))
    path = p.blobs.path_of(shas[0])
    path.chmod(0o644)
    path.write_bytes(b"not an image at all")
    outcome = observe_captures(p.db, p.blobs, p.audit, setup.admin)
    assert (outcome.observed, outcome.unreadable) == (2, 1)


def test_judging_a_capture() -> None:
    ok, scratch, crack = 1, 2, 3
    assert judge(ok, 0.9, scratch, 0.8, ok).kind is ReviewKind.FALSE_NEGATIVE
    assert judge(scratch, 0.9, ok, 0.8, ok).kind is ReviewKind.FALSE_POSITIVE
    assert judge(scratch, 0.9, crack, 0.8, ok).kind is ReviewKind.DISAGREEMENT
    assert judge(ok, 0.5, ok, 0.95, ok).kind is ReviewKind.LOW_CONFIDENCE
    assert judge(ok, 0.95, ok, 0.95, ok) is None
    assert judge(ok, 0.95, ok, 0.95, ok, spot_check=True).kind is ReviewKind.SPOT_CHECK
    assert judge(None, None, ok, 0.9, ok) is None
    # A missed defect outranks a rejected good part, which outranks the rest; within a kind
    # a surer observer and a less sure edge model rank higher.
    fn = judge(ok, 0.99, scratch, 0.6, ok).priority
    fp = judge(scratch, 0.5, ok, 0.99, ok).priority
    dis = judge(scratch, 0.2, crack, 0.99, ok).priority
    low = judge(ok, 0.1, ok, 0.1, ok).priority
    assert fn > fp > dis > low > judge(ok, 0.9, ok, 0.9, ok, spot_check=True).priority
    assert judge(ok, 0.5, scratch, 0.9, ok).priority > judge(ok, 0.9, scratch, 0.9, ok).priority


def test_mining_queues_disagreements_once_and_a_review_resolves_them(setup: Setup) -> None:
    p = setup.project
    info = active_observer(p.db)
    with p.db.write() as session:
        ids = dict(session.execute(select(LabelClass.name, LabelClass.id)).all())
        seen = dict(session.execute(select(Observation.capture_id, Observation.class_id)
                                    .join(Capture).join(Device).where(
            Device.uid == "cam-clean", Observation.model_id == info.id)).all())
        # As a device would send them: unreviewed, with an edge prediction that contradicts
        # the observer: "ok" where it sees a defect, a scratch where it sees a good part.
        for capture_id, observed in seen.items():
            edge = ids["ok"] if observed != ids["ok"] else ids["scratch"]
            session.execute(update(Capture).where(Capture.id == capture_id).values(
                review_status=ReviewStatus.UNREVIEWED, edge_class_id=edge, edge_confidence=0.97,
                reason=CaptureReason.RANDOM_SAMPLE, model_version=setup.edge))
    defects = sum(1 for c in seen.values() if c != ids["ok"])
    first = mine_disagreements(p.db, p.audit, setup.admin, info.id, spot_check_share=0.0)
    assert first.examined == len(seen) == 150
    assert first.queued.get("false_negative", 0) == defects
    assert first.queued.get("false_positive", 0) == len(seen) - defects
    assert mine_disagreements(p.db, p.audit, setup.admin, info.id).total == 0
    queue = open_items(p.db, limit=1000)
    assert [q.priority for q in queue] == sorted((q.priority for q in queue), reverse=True)
    top = queue[0]
    resolve_item(p.db, p.audit, setup.admin, top.capture_id, "scratch")
    with p.db.read() as session:
        item = session.scalar(select(ReviewItem).where(ReviewItem.capture_id == top.capture_id))
        capture = session.get(Capture, top.capture_id)
        assert item.resolved_at is not None and capture.review_status is ReviewStatus.REVIEWED
    with pytest.raises(InvalidInput, match="not a class"):
        resolve_item(p.db, p.audit, setup.admin, queue[1].capture_id, "dent")


def _device_hours(setup: Setup, uid: str, start: int, scenario: str) -> None:
    """Hourly statistics as the real agent code computes them, over 300 frames, with the
    edge model's own confidence on each."""
    p = setup.project
    with p.db.read() as session:
        info = model_info(find_model(session, setup.edge))
    path = unpack_artifact(p.blobs, info.artifact(ArtifactFormat.TORCH), setup.tmp / uid)
    runner = load_runner("torch", path)
    samples = SceneGenerator(seed=3, size=SIZE).batch(start, 300, scenario)
    logits = runner([s.image for s in samples])
    confidence = softmax(logits).max(axis=1)
    stats = DriftStatistics(setup.tmp / f"drift-{uid}",
                            clock=lambda: GENERATED_EPOCH.timestamp() + 60)
    for sample, conf in zip(samples, confidence):
        stats.add(sample.image, float(conf), "ok", setup.edge)
    record = stats.record()
    with p.db.write() as session:
        device = session.scalar(select(Device).where(Device.uid == uid))
        session.add(DeviceDriftHour(device_id=device.id, hour=record["hour"], record=record))


def test_injected_drift_alerts_and_a_clean_camera_does_not(setup: Setup) -> None:
    p = setup.project
    observe_captures(p.db, p.blobs, p.audit, setup.admin)
    build_baseline(p.db, p.blobs, edge=setup.edge, observer=setup.observer)
    _device_hours(setup, "cam-clean", 20_000, "none")
    _device_hours(setup, "cam-drift", 30_000, "lighting")
    report = measure_drift(p.db, p.audit, setup.admin, since=GENERATED_EPOCH - timedelta(days=1),
                           edge=setup.edge, settings=DriftSettings(min_embeddings=40))
    drift_input = report.value("cam-drift", "psi_input")
    clean_input = report.value("cam-clean", "psi_input")
    assert drift_input is not None and drift_input.alert, drift_input
    assert clean_input is not None and not clean_input.alert, clean_input
    drift_mmd = report.value("cam-drift", "mmd_embedding")
    clean_mmd = report.value("cam-clean", "mmd_embedding")
    assert drift_mmd is not None and drift_mmd.alert, drift_mmd
    assert clean_mmd is not None and not clean_mmd.alert, clean_mmd
    assert {m.scope for m in report.alerts} <= {"cam-drift", "fleet"}
    with p.db.read() as session:
        from app.core.models import AuditEvent, DriftMeasurement
        stored = session.scalar(select(func.count(DriftMeasurement.id)).where(
            DriftMeasurement.alert.is_(True)))
        audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "drift.alert"))
    assert stored == audited == len(report.alerts)


def test_reviewed_labels_turning_against_the_edge_model_is_concept_drift(setup: Setup) -> None:
    """cam-drift's captures are reviewed (imported labels). Say the edge model agreed with the
    first half and got the second half wrong: the disagreement rate jumps in the window."""
    p = setup.project
    with p.db.write() as session:
        rows = session.execute(select(Capture.id, Capture.captured_at, Annotation.class_id)
                               .join(Device).join(Annotation, Annotation.capture_id == Capture.id)
                               .where(Device.uid == "cam-drift", Annotation.superseded.is_(False))
                               .order_by(Capture.captured_at)).all()
        other = dict(session.execute(select(LabelClass.id, LabelClass.id)).all())
        ids = sorted(other)
        middle = rows[len(rows) // 2].captured_at
        for capture_id, at, label in rows:
            wrong = ids[(ids.index(label) + 1) % len(ids)]
            session.execute(update(Capture).where(Capture.id == capture_id).values(
                model_version=setup.edge, edge_class_id=label if at < middle else wrong))
    report = measure_drift(p.db, p.audit, setup.admin, since=middle, edge=setup.edge,
                           until=middle + timedelta(days=30))
    concept = report.value("cam-drift", "label_disagreement")
    assert concept is not None and concept.alert, concept
    assert concept.value == 1.0 and concept.details["reference"] == 0.0
    assert report.value("generator", "label_disagreement") is None  # no edge predictions


def test_measuring_without_a_baseline_says_how_to_build_one(setup: Setup) -> None:
    p = setup.project
    with pytest.raises(InvalidInput, match="edgeloop drift baseline"):
        measure_drift(p.db, p.audit, setup.admin, since=GENERATED_EPOCH, edge=setup.observer)


def test_a_users_onnx_observer_is_imported_with_its_label_mapping(setup: Setup,
                                                                  tmp_path: Path) -> None:
    p = setup.project
    net = build_net("edgenet", 3, seed=4, width=0.5)
    path = export_onnx(net, tmp_path / "theirs.onnx", SIZE, SIZE)
    with pytest.raises(InvalidInput, match="lacks: dent"):
        import_observer(p.db, p.blobs, p.audit, setup.admin, path,
                        labels=["ok", "dent", ""], input_spec=input_spec(SIZE))
    with pytest.raises(InvalidInput, match="label mapping has 2"):
        import_observer(p.db, p.blobs, p.audit, setup.admin, path,
                        labels=["ok", "scratch"], input_spec=input_spec(SIZE))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InvalidInput, match="truncated.onnx"):
        import_observer(p.db, p.blobs, p.audit, setup.admin, truncated,
                        labels=["ok", "scratch", ""], input_spec=input_spec(SIZE))
    info = import_observer(p.db, p.blobs, p.audit, setup.admin, path,
                           labels=["ok", "scratch", ""], input_spec=input_spec(SIZE),
                           version="theirs-1")
    outcome = observe_captures(p.db, p.blobs, p.audit, setup.admin, observer="theirs-1",
                               limit=50)
    assert outcome.observed == 50
    with p.db.read() as session:
        rows = session.execute(select(Observation.class_id, Observation.embedding).where(
            Observation.model_id == info.id)).all()
        names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    # No embedding output: the three probabilities stand in for it.
    assert {len(embeddings_of(r.embedding, 3)) for r in rows} == {1}
    assert {names.get(r.class_id) for r in rows} <= {"ok", "scratch", None}
