"""A small but real model lineage for audit-report tests, built in a few seconds.

Through the real services: generated captures, a frozen dataset version, a one-epoch training
run (and a fine-tune of it), ONNX compression, the gate, approval as a signed release, and a
rollout to two enrolled devices. Running the rollout needs devices that answer over SSH, so
the two deployments' outcomes (one healthy, one failed) are written straight onto the rows
that ``start_rollout`` created, as ``run_rollout`` would have left them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sqlalchemy import select

from app.core.augment import AugmentConfig
from app.core.compress_service import CompressRequest, compress_model
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.gate import run_gate
from app.core.models import (
    ArtifactFormat, Deployment, DeploymentState, Device, EnrollmentState, ModelStatus,
    ModelVersion, Rollout, RolloutState,
)
from app.core.project import Project
from app.core.train_service import TrainOutcome, TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.fleet.deploy import start_rollout

SCENE_SIZE = 64  # the smallest the scene generator draws
SIZE = 32  # what the networks train on: small and quick
QUICK = TrainConfig(epochs=1, batch_size=16, lr=5e-3, patience=1,
                    augment=AugmentConfig.preset("none"))
DEVICES = ("cam-line-1", "cam-line-2")


@dataclass(frozen=True)
class Lineage:
    """What was built: the dataset ref, the approved model and its fine-tuned child."""

    dataset: str
    trained: TrainOutcome
    fine_tuned: TrainOutcome
    rollout_id: int


def build_lineage(project: Project) -> Lineage:
    """Data, two models, an approval and a rollout in ``project`` (its clock stamps them)."""
    db, blobs, audit, clock = project.db, project.blobs, project.audit, project.clock
    admin = actor_named(db, "admin")
    import_generated(db, blobs, audit, admin, 120, seed=5, size=SCENE_SIZE, clock=clock)
    summary = freeze_version(db, audit, admin, notes="first frames", clock=clock)
    cpu = torch.device("cpu")
    trained = train_model(db, blobs, audit, admin, TrainRequest(size=SIZE, config=QUICK),
                          runs_dir=project.root / "runs", clock=clock, device=cpu)
    compress_model(db, blobs, audit, admin, trained.version,
                   CompressRequest(formats=(ArtifactFormat.ONNX,)))
    run_gate(db, blobs, audit, admin, trained.version, latency_repeats=3)
    ctx = FleetContext.of(project)
    approve_model(ctx, admin, trained.version, note="first release for line 1")
    rollout_id = _roll_out(project, trained.version)
    fine_tuned = train_model(db, blobs, audit, admin,
                             TrainRequest(size=SIZE, config=QUICK, parent=trained.version),
                             runs_dir=project.root / "runs", clock=clock, device=cpu)
    return Lineage(summary.ref, trained, fine_tuned, rollout_id)


def _roll_out(project: Project, version: str) -> int:
    with project.db.write() as session:
        for number, uid in enumerate(DEVICES):
            session.add(Device(uid=uid, name=f"Line camera {number + 1}", address="127.0.0.1",
                               ssh_port=2200 + number, host_key_fingerprint=f"SHA256:fp{number}",
                               enrollment=EnrollmentState.ENROLLED, enrolled_at=project.clock()))
    rollout_id = start_rollout(FleetContext.of(project), actor_named(project.db, "admin"),
                               version, targets=list(DEVICES))
    with project.db.write() as session:
        rollout = session.get(Rollout, rollout_id)
        outcomes = {DEVICES[0]: (DeploymentState.HEALTHY, "healthy for the window"),
                    DEVICES[1]: (DeploymentState.FAILED, "self-test failed")}
        uids = dict(session.execute(select(Device.id, Device.uid)).all())
        for deployment in session.scalars(select(Deployment)
                                          .where(Deployment.rollout_id == rollout_id)):
            deployment.state, deployment.detail = outcomes[uids[deployment.device_id]]
            deployment.started_at = deployment.finished_at = project.clock()
        rollout.state, rollout.finished_at = RolloutState.HALTED, project.clock()
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        model.status = ModelStatus.DEPLOYED
    return rollout_id
