"""A model version's artifacts in the project: found by name, stored as blobs, unpacked to files.

Every format of a model version is one blob (``ModelArtifact``): the torch checkpoint, an
ONNX file, an OpenVINO IR packed as one tar (``app.core.export.pack_ir``), or a signed
release tar. Runtimes want files, so :func:`unpack_artifact` writes a blob back out into a
scratch folder, and :func:`runnable_formats` says which formats of a version can be run and
compared (a release runs through the ONNX model it carries, which is what devices run).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.captures import record_blob
from app.core.errors import InvalidInput
from app.core.export import unpack_ir
from app.core.fsutil import sha256_file
from app.core.models import ArtifactFormat, ModelArtifact, ModelStatus, ModelVersion
from app.core.roles import Actor

MEDIA_TYPES = {
    ArtifactFormat.TORCH: "application/x-edgeloop-checkpoint",
    ArtifactFormat.ONNX: "application/onnx",
    ArtifactFormat.ONNX_INT8: "application/onnx",
    ArtifactFormat.OPENVINO: "application/x-openvino-ir+tar",
    ArtifactFormat.OPENVINO_INT8: "application/x-openvino-ir+tar",
}
FILE_NAMES = {
    ArtifactFormat.TORCH: "model.pt",
    ArtifactFormat.ONNX: "model.onnx",
    ArtifactFormat.ONNX_INT8: "model.int8.onnx",
}
# Versions whose artifacts are settled: what was approved or shipped must not change under it.
FROZEN_STATUSES = (ModelStatus.APPROVED, ModelStatus.DEPLOYED, ModelStatus.RETIRED)


@dataclass(frozen=True)
class ArtifactRef:
    """One stored artifact: its format, blob and size."""

    format: ArtifactFormat
    sha256: str
    size: int
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ModelInfo:
    """A model version as the services need it, detached from any session."""

    id: int
    version: str
    status: ModelStatus
    labels: list[str]
    input_spec: dict[str, Any]
    training_run_id: int | None
    artifacts: dict[ArtifactFormat, ArtifactRef]

    def artifact(self, format: ArtifactFormat) -> ArtifactRef:
        found = self.artifacts.get(format)
        if found is None:
            have = ", ".join(f.value for f in self.artifacts) or "none"
            raise InvalidInput(f"model {self.version} has no {format.value} artifact (it has: "
                               f"{have}); run `edgeloop compress {self.version}` first")
        return found


def find_model(session: Session, version: str) -> ModelVersion:
    """The model version named ``version``, or an error that says where to look."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise InvalidInput(f"no model version {version!r} in this project; "
                           "`edgeloop models list` shows them")
    return row


def model_info(row: ModelVersion) -> ModelInfo:
    """A detached copy of ``row`` and its artifacts."""
    return ModelInfo(row.id, row.version, row.status, list(row.labels), dict(row.input_spec),
                     row.training_run_id,
                     {a.format: ArtifactRef(a.format, a.blob_sha256, a.size, dict(a.metrics or {}))
                      for a in row.artifacts})


def check_mutable(row: ModelVersion, what: str) -> None:
    """Refuse to change the artifacts of a version that was approved or shipped."""
    if row.status in FROZEN_STATUSES:
        raise InvalidInput(f"model {row.version} is {row.status.value}: its artifacts are "
                           f"settled, so it cannot {what}; train or prune a new version")


def store_artifact(session: Session, blobs: BlobStore, audit: AuditTrail, actor: Actor,
                   row: ModelVersion, format: ArtifactFormat, data: bytes,
                   metrics: dict[str, Any] | None = None) -> ArtifactRef:
    """Store ``data`` as the ``format`` artifact of ``row``, replacing an older one."""
    sha = blobs.put_bytes(data)
    record_blob(session, sha, len(data), MEDIA_TYPES.get(format, "application/octet-stream"))
    existing = next((a for a in row.artifacts if a.format is format), None)
    before = None if existing is None else {"sha256": existing.blob_sha256}
    if existing is None:
        existing = ModelArtifact(format=format, blob_sha256=sha, size=len(data),
                                 metrics=metrics or {})
        row.artifacts.append(existing)
    else:
        existing.blob_sha256, existing.size, existing.metrics = sha, len(data), metrics or {}
    audit.append(session, actor=actor.name, action="model.artifact", object_type="model_version",
                 object_id=row.version, before=before,
                 after={"format": format.value, "sha256": sha, "size": len(data)})
    return ArtifactRef(format, sha, len(data), metrics or {})


def unpack_artifact(blobs: BlobStore, ref: ArtifactRef, folder: Path) -> Path:
    """Write artifact ``ref`` into ``folder`` as the file(s) its runtime opens; return the
    path to hand to :func:`app.core.runtimes.load_runner`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = blobs.read_bytes(ref.sha256)
    if ref.format in FILE_NAMES:
        path = folder / FILE_NAMES[ref.format]
        path.write_bytes(data)
        return path
    if ref.format in (ArtifactFormat.OPENVINO, ArtifactFormat.OPENVINO_INT8):
        return unpack_ir(data, folder / ref.format.value, f"{ref.format.value} artifact")
    if ref.format is ArtifactFormat.RELEASE:
        return release_onnx(data, folder / "release")
    raise InvalidInput(f"artifact format {ref.format.value} cannot be unpacked")


def release_onnx(data: bytes, folder: Path) -> Path:
    """The ONNX model a packed release runs on ONNX Runtime, checked against its manifest.

    The release's signature was checked when it was registered; here the file's sha256 is
    checked against the manifest, so a damaged blob is refused rather than evaluated.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            manifest = json.loads(_member(archive, "manifest.json"))
            name = manifest["artifacts"]["onnxruntime"]
            expected = manifest["files"][name]["sha256"]
            content = _member(archive, name)
    except (tarfile.TarError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"the stored release is not a readable release tar ({exc}); "
                           "register it again with `edgeloop releases add`") from exc
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(content)
    if sha256_file(path) != expected:
        raise InvalidInput(f"the stored release's {name} does not match its manifest; "
                           "register the release again")
    return path


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    member = archive.getmember(name)
    extracted = archive.extractfile(member) if member.isfile() else None
    if extracted is None:
        raise KeyError(name)
    return extracted.read()


def deployed_model(session: Session, kind: Any) -> ModelVersion | None:
    """The newest model version of ``kind`` that is DEPLOYED: what the fleet runs."""
    return session.scalar(select(ModelVersion).where(
        ModelVersion.kind == kind, ModelVersion.status == ModelStatus.DEPLOYED)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))

