"""A project: a folder with ``project.json``, the database and the blob store.

    project.json   what this folder is, and where its database lives
    project.db     SQLite (default), unless the project points at PostgreSQL
    blobs/         content-addressed files (images, model artifacts, reports)
    keys/          the project's private keys, mode 0700

``init_project`` makes one; ``open_project`` opens one, upgrading an older schema and refusing
one written by a newer EdgeLoop. The ``Project`` object is the composition root that hands
the database, blob store, audit trail and clock to services.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

import app
from app.core import schema
from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database, sqlite_url
from app.core.errors import InvalidInput, ProjectError, ProjectExists, ProjectNotFound
from app.core.fsutil import atomic_write_text
from app.core.models import (
    AuditEvent, Blob, Capture, Device, LabelClass, ModelVersion, User, utcnow,
)
from app.core.users import create_first_admin

PROJECT_FILE = "project.json"
PROJECT_FORMAT = 1
SYSTEM_ACTOR = "edgeloop"
Clock = Callable[[], datetime]


@dataclass
class Project:
    """An open project: its folder, database, blob store, audit trail and clock."""

    root: Path
    id: str
    name: str
    db: Database
    blobs: BlobStore
    audit: AuditTrail
    clock: Clock

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ProjectInfo:
    """What ``edgeloop info`` shows."""

    root: Path
    id: str
    name: str
    database: str
    schema_revision: str | None
    edgeloop_version: str
    users: int
    devices: int
    captures: int
    label_classes: int
    model_versions: int
    audit_events: int
    blobs: int
    blob_bytes: int


def _check_db_url(db_url: str) -> str:
    try:
        url = make_url(db_url)
    except ArgumentError as exc:
        raise InvalidInput(
            f"--db {db_url!r} is not a database URL; use e.g. "
            "postgresql+psycopg://user@host:5432/edgeloop"
        ) from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(f"--db {db_url!r}: EdgeLoop supports SQLite and PostgreSQL only")
    return db_url


def init_project(
    path: Path,
    *,
    admin: str,
    admin_password: str | None = None,
    name: str | None = None,
    db_url: str | None = None,
    clock: Clock = utcnow,
) -> Project:
    """Create a project at ``path`` (an empty or new folder) with its first admin user."""
    root = Path(path).expanduser().resolve()
    if (root / PROJECT_FILE).exists():
        raise ProjectExists(f"{root} already holds an EdgeLoop project; open it instead")
    if root.exists() and any(root.iterdir()):
        raise ProjectExists(f"{root} is not empty; give a new or empty folder for the project")
    if db_url is not None:
        _check_db_url(db_url)
    root.mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    (root / "keys").mkdir(mode=0o700, exist_ok=True)
    meta = {
        "format": PROJECT_FORMAT,
        "id": str(uuid.uuid4()),
        "name": name or root.name,
        "created_at": clock().isoformat(),
        "created_by_version": app.__version__,
        # A server URL is kept without its password: credentials come from --db or .pgpass.
        "database": make_url(db_url).render_as_string(hide_password=True) if db_url else None,
    }
    atomic_write_text(root / PROJECT_FILE, json.dumps(meta, indent=2) + "\n")
    project = _open(root, meta, db_url, clock)
    schema.upgrade(project.db)
    create_first_admin(project.db, project.audit, admin, admin_password)
    return project


def open_project(path: Path, *, db_url: str | None = None, clock: Clock = utcnow) -> Project:
    """Open the project at ``path``, upgrading its schema if it is older than this EdgeLoop."""
    root = Path(path).expanduser().resolve()
    meta_path = root / PROJECT_FILE
    if not meta_path.is_file():
        raise ProjectNotFound(
            f"no EdgeLoop project at {root} (no {PROJECT_FILE}); "
            "create one with `edgeloop init PATH` or pass --project"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{meta_path} is damaged ({exc}); restore it from a backup") from exc
    if not isinstance(meta, dict) or meta.get("format") != PROJECT_FORMAT:
        raise ProjectError(
            f"{meta_path} has project format {meta.get('format') if isinstance(meta, dict) else '?'}"
            f"; this EdgeLoop reads format {PROJECT_FORMAT}"
        )
    project = _open(root, meta, db_url, clock)
    try:
        project.db.check_connection()
        before, after = schema.upgrade(project.db)
    except BaseException:
        project.close()
        raise
    if before is not None and before != after:
        with project.db.write() as session:
            project.audit.append(
                session, actor=SYSTEM_ACTOR, action="schema_upgraded", object_type="project",
                object_id=project.id, before={"revision": before}, after={"revision": after},
            )
    return project


def _open(root: Path, meta: dict, db_url: str | None, clock: Clock) -> Project:
    url = db_url or meta.get("database") or sqlite_url(str(root / "project.db"))
    return Project(
        root=root,
        id=str(meta.get("id", "")),
        name=str(meta.get("name", root.name)),
        db=Database(_check_db_url(url)),
        blobs=BlobStore(root / "blobs"),
        audit=AuditTrail(clock),
        clock=clock,
    )


def project_info(project: Project) -> ProjectInfo:
    """Counts and versions of an open project."""
    def count(session, model) -> int:  # type: ignore[no-untyped-def]
        return session.scalar(select(func.count()).select_from(model)) or 0

    with project.db.read() as session:
        blob_count, blob_bytes = session.execute(
            select(func.count(), func.coalesce(func.sum(Blob.size), 0))
        ).one()
        info = ProjectInfo(
            root=project.root,
            id=project.id,
            name=project.name,
            database=project.db.url.render_as_string(hide_password=True),
            schema_revision=schema.current_revision(project.db),
            edgeloop_version=app.__version__,
            users=count(session, User),
            devices=count(session, Device),
            captures=count(session, Capture),
            label_classes=count(session, LabelClass),
            model_versions=count(session, ModelVersion),
            audit_events=count(session, AuditEvent),
            blobs=int(blob_count),
            blob_bytes=int(blob_bytes),
        )
    return info


def default_admin_name() -> str:
    """The OS login name, the natural first admin of a workstation project."""
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()
