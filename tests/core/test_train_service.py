"""Training runs on generated data, recorded as the project keeps them: a trained edge model
beats the majority-class baseline by a wide margin; a run records its dataset version,
hyper-parameters, code version, seed and metrics; a cancelled run leaves no model version;
a fine-tune starts from its parent's weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.core.augment import AugmentConfig
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version, get_version, load_split
from app.core.errors import InvalidInput
from app.core.model_files import load_model
from app.core.models import ArtifactFormat, ModelStatus, ModelVersion, RunStatus, TrainingRun
from app.core.progress import Cancelled, CancelToken, Progress
from app.core.project import Project, init_project
from app.core.train_service import TrainOutcome, TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named

SIZE = 96
IMAGES = 1500
QUICK = TrainConfig(epochs=8, lr=5e-3, patience=8, augment=AugmentConfig.preset("flip"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, TrainOutcome]]:
    project = init_project(tmp_path_factory.mktemp("train") / "p", admin="admin")
    admin = actor_named(project.db, "admin")
    import_generated(project.db, project.blobs, project.audit, admin, IMAGES, seed=3, size=SIZE)
    freeze_version(project.db, project.audit, admin)
    outcome = train_model(project.db, project.blobs, project.audit, admin,
                          TrainRequest(size=SIZE, config=QUICK), runs_dir=project.root / "runs")
    yield project, outcome
    project.close()


def test_a_trained_edge_model_beats_the_majority_baseline_widely(trained) -> None:  # type: ignore[no-untyped-def]
    project, outcome = trained
    test = load_split(project.db, project.blobs, "inspection", "test", SIZE)
    majority = np.bincount(test.labels).max() / len(test.labels)
    assert outcome.metrics["test_accuracy"] >= majority + 0.15, (outcome.metrics, majority)


def test_the_run_and_the_candidate_are_recorded(trained) -> None:  # type: ignore[no-untyped-def]
    project, outcome = trained
    with project.db.read() as session:
        run = session.get(TrainingRun, outcome.run_id)
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == outcome.version))
        assert run.status is RunStatus.SUCCEEDED and run.finished_at is not None
        assert run.dataset_version_id == get_version(project.db, "inspection@1").id
        assert run.hyperparameters["lr"] == QUICK.lr and run.hyperparameters["size"] == SIZE
        assert run.hyperparameters["augment"]["flip"] == 0.5
        assert run.code_version.startswith("0.") and run.seed == QUICK.seed
        assert len(run.metrics["history"]) == run.metrics["epochs_run"]
        assert model.status is ModelStatus.CANDIDATE and model.training_run_id == run.id
        assert model.version == "edge-1" and model.labels[0] == "ok"
        torch_artifact = next(a for a in model.artifacts if a.format is ArtifactFormat.TORCH)
        sha = torch_artifact.blob_sha256
    loaded = load_model(project.blobs.read_bytes(sha))
    assert loaded.labels == list(get_version(project.db, "inspection").label_schema)
    assert loaded.input_spec["width"] == SIZE
    assert (project.root / "runs" / f"run-{outcome.run_id}" / "best.pt").exists()


def test_cancel_records_a_cancelled_run_and_no_model(trained) -> None:  # type: ignore[no-untyped-def]
    project, _ = trained
    admin = actor_named(project.db, "admin")
    cancel = CancelToken()

    def stop_after_first_epoch(step: Progress) -> None:
        if step.stage == "train" and step.done >= 1:
            cancel.cancel()

    with project.db.read() as session:
        before = session.scalar(select(ModelVersion.id).order_by(ModelVersion.id.desc()).limit(1))
    with pytest.raises(Cancelled):
        train_model(project.db, project.blobs, project.audit, admin,
                    TrainRequest(size=SIZE, config=TrainConfig(epochs=5)),
                    runs_dir=project.root / "runs", progress=stop_after_first_epoch,
                    cancel=cancel)
    with project.db.read() as session:
        run = session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1))
        assert run.status is RunStatus.CANCELLED and run.finished_at is not None
        newest = session.scalar(select(ModelVersion.id).order_by(ModelVersion.id.desc()).limit(1))
    assert newest == before


def test_fine_tuning_starts_from_the_parent(trained) -> None:  # type: ignore[no-untyped-def]
    project, outcome = trained
    admin = actor_named(project.db, "admin")
    tuned = train_model(project.db, project.blobs, project.audit, admin,
                        TrainRequest(size=SIZE, parent=outcome.version,
                                     config=TrainConfig(epochs=1, lr=1e-4,
                                                        augment=AugmentConfig.preset("none"))),
                        runs_dir=project.root / "runs")
    # One gentle epoch from good weights stays good; from scratch it would be near the baseline.
    assert tuned.metrics["val_accuracy"] >= outcome.metrics["val_accuracy"] - 0.05
    with project.db.read() as session:
        child = session.scalar(select(ModelVersion).where(ModelVersion.version == tuned.version))
        parent = session.scalar(select(ModelVersion).where(ModelVersion.version == outcome.version))
        assert child.parent_id == parent.id and tuned.version == "edge-2"
    with pytest.raises(InvalidInput, match="no model version 'edge-99'"):
        train_model(project.db, project.blobs, project.audit, admin,
                    TrainRequest(size=SIZE, parent="edge-99"), runs_dir=project.root / "runs")


def test_training_needs_a_frozen_version(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p", admin="admin")
    with project, pytest.raises(InvalidInput):
        train_model(project.db, project.blobs, project.audit, actor_named(project.db, "admin"),
                    TrainRequest(size=SIZE), runs_dir=project.root / "runs")
