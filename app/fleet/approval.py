"""Approving a model version that passed the gate: it becomes a signed release, ready to deploy.

Only an engineer or an admin may approve, and only a version whose stored gate verdict
passed. Approval builds the release from exactly the artifacts the gate judged as shipped
(ONNX Runtime: INT8 if made, else FP32; OpenVINO likewise), with a self-test image from the
gate's test split, signs the manifest with the project's key, registers it like
``edgeloop releases add`` does, and marks the version approved. All of it is audited.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from app.core.errors import InvalidInput
from app.core.gate import SHIPPED
from app.core.model_store import ModelInfo, find_model, model_info, unpack_artifact
from app.core.models import ArtifactFormat, ModelStatus
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.manifest import InputSpec
from app.fleet.context import FleetContext
from app.fleet.release_build import build_release
from app.fleet.releases import StoredRelease, register_release
from app.fleet.signing import load_or_create_signing_key


def approve_model(ctx: FleetContext, actor: Actor, version: str, *,
                  selftest_image: np.ndarray | None = None,
                  note: str = "") -> StoredRelease:
    """Turn the gate-passed ``version`` into a registered, signed release and approve it."""
    authorize(ctx.db, ctx.audit, actor, Permission.APPROVE_MODEL, f"approve model {version}")
    with ctx.db.read() as session:
        row = find_model(session, version)
        if row.status is not ModelStatus.GATE_PASSED:
            hint = ("run `edgeloop models gate` first" if row.status in
                    (ModelStatus.CANDIDATE, ModelStatus.GATE_FAILED) else "it is past approval")
            raise InvalidInput(f"model {version} is {row.status.value}, not gate_passed: {hint}")
        info = model_info(row)
        dataset = (row.gate_verdict or {}).get("dataset")
    shipped = {runtime: next((f for f in formats if f in info.artifacts), None)
               for runtime, formats in SHIPPED.items()}
    if shipped["onnxruntime"] is None:
        raise InvalidInput(f"model {version} has no ONNX artifact to ship; compress it first")
    image = selftest_image if selftest_image is not None else _selftest_image(ctx, dataset, info)
    with tempfile.TemporaryDirectory(prefix="edgeloop-approve-") as scratch:
        folder = Path(scratch)
        files = {runtime: unpack_artifact(ctx.blobs, info.artifact(fmt), folder / runtime)
                 for runtime, fmt in shipped.items() if fmt is not None}
        build_release(folder / "release", version=version, labels=info.labels,
                      input_spec=InputSpec.from_json(info.input_spec), artifacts=files,
                      selftest_image=image, signing_key=load_or_create_signing_key(ctx.keys_dir),
                      extra={"formats": {r: f.value for r, f in shipped.items() if f}})
        release = register_release(ctx, actor, folder / "release")
    with ctx.db.write() as session:
        row = find_model(session, version)
        row.status, row.approved_by_id, row.approved_at = (ModelStatus.APPROVED, actor.user_id,
                                                           ctx.clock())
        ctx.audit.append(session, actor=actor.name, action="model.approve",
                         object_type="model_version", object_id=version,
                         before={"status": ModelStatus.GATE_PASSED.value},
                         after={"status": ModelStatus.APPROVED.value, "note": note[:500],
                                "shipped": {r: f.value for r, f in shipped.items() if f},
                                "release_sha256": next(a.blob_sha256 for a in row.artifacts
                                                       if a.format is ArtifactFormat.RELEASE)})
    return release


def _selftest_image(ctx: FleetContext, dataset: str | None, info: ModelInfo) -> np.ndarray:
    """The first test image of the gate's dataset, at full stored resolution."""
    from app.core.datasets import load_split

    if dataset is None:
        raise InvalidInput("the gate verdict names no dataset; run the gate again")
    size = int(info.input_spec["height"])
    split = load_split(ctx.db, ctx.blobs, dataset, "test", size)
    if len(split) == 0:
        raise InvalidInput(f"dataset {dataset} has no test image for the release's self-test")
    return split.images[0]
