"""A project with real generated captures and the people who label them, for the labeling,
conflict and schema tests.

The first captures are imported as the generator's labelled frames (reviewed, labelled by
the admin, source imported); the last ``unlabelled`` ones have their labels taken away and
are unreviewed, as captures pulled from a device are. Annotators ann and bob, engineer eng.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from app.core.dataset_import import import_generated
from app.core.models import Annotation, AuditEvent, Capture, LabelClass, ReviewStatus, Role
from app.core.project import Project
from app.core.roles import Actor
from app.core.scene import SceneGenerator
from app.core.users import actor_named, add_user
from tests.conftest import ADMIN

SIZE = 64


@dataclass
class LabelsEnv:
    project: Project
    admin: Actor
    ann: Actor
    bob: Actor
    eng: Actor
    labelled: list[int]
    """Capture ids labelled by the import (generator order)."""
    unlabelled: list[int]
    """Capture ids without a label, unreviewed (generator order)."""
    truth: dict[int, str]
    """The generator's class of each capture."""

    def class_id(self, name: str) -> int:
        with self.project.db.read() as s:
            return s.scalar(select(LabelClass.id).where(LabelClass.name == name))

    def events(self, action: str) -> list[AuditEvent]:
        with self.project.db.read() as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.seq)))


def make_env(project: Project, count: int = 12, unlabelled: int = 4) -> LabelsEnv:
    admin = actor_named(project.db, ADMIN)
    assert import_generated(project.db, project.blobs, project.audit, admin, count,
                            size=SIZE, clock=project.clock) == count
    people = {name: add_user(project.db, project.audit, admin, name, role)
              for name, role in (("ann", Role.ANNOTATOR), ("bob", Role.ANNOTATOR),
                                 ("eng", Role.ENGINEER))}
    generator = SceneGenerator(seed=0, size=SIZE)
    with project.db.write() as s:
        ids = list(s.scalars(select(Capture.id).order_by(Capture.device_capture_id)))
        bare = ids[count - unlabelled:]
        s.execute(delete(Annotation).where(Annotation.capture_id.in_(bare)))
        s.execute(update(Capture).where(Capture.id.in_(bare))
                  .values(review_status=ReviewStatus.UNREVIEWED))
    return LabelsEnv(project, admin, people["ann"], people["bob"], people["eng"],
                     ids[:count - unlabelled], bare,
                     {capture: generator.label_of(i) for i, capture in enumerate(ids)})
