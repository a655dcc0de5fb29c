"""Roles are enforced by the services, and every refusal lands in the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.errors import BadPassword, InvalidInput, PermissionDenied, UnknownUser
from app.core.models import AuditEvent, Role
from app.core.project import Project
from app.core.roles import ROLE_PERMISSIONS, Permission, authorize
from app.core.users import actor_named, add_user, authenticate, set_role
from tests.conftest import ADMIN


def _denials(project: Project) -> list[AuditEvent]:
    with project.db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == "permission_denied")))


@pytest.fixture
def people(project: Project):  # type: ignore[no-untyped-def]
    admin = actor_named(project.db, ADMIN)
    ann = add_user(project.db, project.audit, admin, "ann", Role.ANNOTATOR, "annotate-me")
    eng = add_user(project.db, project.audit, admin, "eng", Role.ENGINEER, "engineer-me")
    return admin, ann, eng


@pytest.mark.parametrize("permission", [Permission.APPROVE_MODEL, Permission.DEPLOY])
def test_annotator_cannot_approve_or_deploy(project: Project, people, permission) -> None:  # type: ignore[no-untyped-def]
    _, ann, _ = people
    with pytest.raises(PermissionDenied, match="ann is an annotator and may not"):
        authorize(project.db, project.audit, ann, permission, "model edge-2")
    [denial] = _denials(project)
    assert denial.actor == "ann" and denial.object_id == permission.value
    assert denial.after == {"role": "annotator", "target": "model edge-2"}


def test_engineer_cannot_manage_users_and_nothing_is_written(project: Project, people) -> None:  # type: ignore[no-untyped-def]
    _, _, eng = people
    with pytest.raises(PermissionDenied, match="manage users"):
        add_user(project.db, project.audit, eng, "mallory", Role.ADMIN, "password1")
    with pytest.raises(PermissionDenied):
        set_role(project.db, project.audit, eng, "eng", Role.ADMIN)
    with pytest.raises(UnknownUser):
        actor_named(project.db, "mallory")
    assert actor_named(project.db, "eng").role is Role.ENGINEER
    assert len(_denials(project)) == 2
    with project.db.read() as s:
        assert project.audit.verify(s).ok


def test_admin_may_everything_engineer_may_deploy(project: Project, people) -> None:  # type: ignore[no-untyped-def]
    admin, _, eng = people
    for permission in Permission:
        authorize(project.db, project.audit, admin, permission, "x")
    authorize(project.db, project.audit, eng, Permission.DEPLOY, "x")
    assert Permission.MANAGE_USERS not in ROLE_PERMISSIONS[Role.ENGINEER]
    assert _denials(project) == []


def test_sign_in_checks_the_hashed_password(project: Project, people) -> None:  # type: ignore[no-untyped-def]
    assert authenticate(project.db, project.audit, "ann", "annotate-me").role is Role.ANNOTATOR
    with pytest.raises(BadPassword):
        authenticate(project.db, project.audit, "ann", "wrong-password")
    with project.db.read() as s:
        from app.core.models import User

        stored = s.scalar(select(User.password_hash).where(User.name == "ann"))
        failed = s.scalars(select(AuditEvent).where(AuditEvent.action == "sign_in_failed")).all()
    assert "annotate-me" not in stored and stored.startswith("scrypt$")
    assert [e.actor for e in failed] == ["ann"]


def test_bad_user_names_and_short_passwords_are_refused(project: Project, people) -> None:  # type: ignore[no-untyped-def]
    admin, _, _ = people
    with pytest.raises(InvalidInput, match="not allowed"):
        add_user(project.db, project.audit, admin, "../evil", Role.ANNOTATOR)
    with pytest.raises(InvalidInput, match="at least 8"):
        add_user(project.db, project.audit, admin, "shorty", Role.ANNOTATOR, "abc")
    with pytest.raises(InvalidInput, match="already exists"):
        add_user(project.db, project.audit, admin, "ann", Role.ANNOTATOR)
