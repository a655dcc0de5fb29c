"""Releases in the project: signed release folders kept as blobs, ready to deploy.

A release (DESIGN.md: artifacts plus a manifest signed with ed25519) is stored as one
deterministic tar blob, the ``release`` artifact of its model version. Registering checks
the signature against the project's own signing key, so the project only ever deploys what
it signed. Deploy streams the same tar to devices (``edgeloop-agent ctl receive``).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from app.core.captures import record_blob
from app.core.errors import InvalidInput
from app.core.models import (
    ArtifactFormat, ModelArtifact, ModelKind, ModelStatus, ModelVersion,
)
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.errors import AgentError
from app.fleet.agent.manifest import Manifest, verify_release
from app.fleet.context import FleetContext
from app.fleet.signing import load_or_create_signing_key

MEDIA_TYPE = "application/x-edgeloop-release+tar"


@dataclass(frozen=True)
class StoredRelease:
    """A release ready to send: its version, model id and the tar bytes."""

    version: str
    model_id: int
    tar: bytes


def pack_release(folder: Path, manifest: Manifest) -> bytes:
    """The release folder as a tar of its manifest, signature and files, byte-for-byte
    the same for the same folder (sorted names, zero times and owners)."""
    names = sorted({"manifest.json", "manifest.sig", *manifest.files})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in names:
            data = (Path(folder) / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def register_release(ctx: FleetContext, actor: Actor, folder: Path) -> StoredRelease:
    """Verify a release folder against the project's signing key and store it."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"release {Path(folder).name}")
    key = load_or_create_signing_key(ctx.keys_dir).public_key()
    try:
        manifest = verify_release(Path(folder), [key])
    except (AgentError, OSError) as exc:
        raise InvalidInput(f"release {folder}: {exc}") from exc
    data = pack_release(folder, manifest)
    sha = ctx.blobs.put_bytes(data)
    with ctx.db.write() as session:
        record_blob(session, sha, len(data), MEDIA_TYPE)
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == manifest.version))
        if model is None:
            model = ModelVersion(version=manifest.version, kind=ModelKind.EDGE,
                                 status=ModelStatus.APPROVED, labels=list(manifest.labels),
                                 input_spec=manifest.input.to_json(),
                                 approved_by_id=actor.user_id, approved_at=ctx.clock())
            session.add(model)
            session.flush()
        artifact = next((a for a in model.artifacts if a.format is ArtifactFormat.RELEASE), None)
        if artifact is not None and artifact.blob_sha256 != sha:
            raise InvalidInput(f"release {manifest.version} is already registered with other "
                               "content; a version names one release forever")
        if artifact is None:
            model.artifacts.append(ModelArtifact(format=ArtifactFormat.RELEASE, blob_sha256=sha,
                                                 size=len(data)))
        ctx.audit.append(session, actor=actor.name, action="release.register",
                         object_type="model_version", object_id=manifest.version,
                         after={"sha256": sha, "files": sorted(manifest.files)})
        return StoredRelease(manifest.version, model.id, data)


def load_release(ctx: FleetContext, version: str) -> StoredRelease:
    """The stored release of ``version``, or an error saying how to register one."""
    with ctx.db.read() as session:
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        artifact = None if model is None else next(
            (a for a in model.artifacts if a.format is ArtifactFormat.RELEASE), None)
        if model is None or artifact is None:
            raise InvalidInput(f"no release {version!r} in this project; register a signed "
                               "release folder with `edgeloop releases add PATH`")
        return StoredRelease(version, model.id, ctx.blobs.read_bytes(artifact.blob_sha256))


def list_releases(ctx: FleetContext) -> list[tuple[str, str, int]]:
    """(version, status, size) of every registered release, newest first."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(ModelVersion.version, ModelVersion.status, ModelArtifact.size)
            .join(ModelArtifact, ModelArtifact.model_id == ModelVersion.id)
            .where(ModelArtifact.format == ArtifactFormat.RELEASE)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())).all()
    return [(v, s.value, size) for v, s, size in rows]
