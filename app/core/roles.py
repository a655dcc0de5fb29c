"""What each role may do, and the one check every service calls before acting.

Roles are enforced here, in the services, not only by disabled buttons: a refused action
raises :class:`PermissionDenied` and the refusal itself goes into the audit trail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import PermissionDenied
from app.core.models import Role, User


class Permission(str, enum.Enum):
    """An action that not every role may take."""

    VIEW = "view"
    ANNOTATE = "annotate"
    REVIEW = "review"
    MANAGE_DEVICES = "manage_devices"
    PULL = "pull"
    TRAIN = "train"
    APPROVE_MODEL = "approve_model"
    DEPLOY = "deploy"
    DELETE_DATA = "delete_data"
    MANAGE_USERS = "manage_users"
    MANAGE_SETTINGS = "manage_settings"
    EXPORT_AUDIT = "export_audit"


_ANNOTATOR = frozenset({Permission.VIEW, Permission.ANNOTATE, Permission.REVIEW})
_ENGINEER = _ANNOTATOR | {
    Permission.MANAGE_DEVICES,
    Permission.PULL,
    Permission.TRAIN,
    Permission.APPROVE_MODEL,
    Permission.DEPLOY,
    Permission.EXPORT_AUDIT,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ANNOTATOR: _ANNOTATOR,
    Role.ENGINEER: frozenset(_ENGINEER),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: the signed-in user as services see it."""

    user_id: int
    name: str
    role: Role

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user_id=user.id, name=user.name, role=user.role)

    def may(self, permission: Permission) -> bool:
        """Whether this actor's role allows ``permission`` (for enabling controls)."""
        return permission in ROLE_PERMISSIONS[self.role]


def authorize(
    db: Database, audit: AuditTrail, actor: Actor, permission: Permission, target: str
) -> None:
    """Return if ``actor`` may take ``permission`` on ``target``; else audit and refuse.

    The refusal is written in a transaction of its own, so it stays recorded although the
    caller's work is abandoned.
    """
    if actor.may(permission):
        return
    with db.write() as session:
        audit.append(
            session,
            actor=actor.name,
            action="permission_denied",
            object_type="permission",
            object_id=permission.value,
            after={"role": actor.role.value, "target": target},
        )
    raise PermissionDenied(
        f"{actor.name} is {_article(actor.role.value)} {actor.role.value} and may not "
        f"{permission.value.replace('_', ' ')} ({target}). Ask an admin for a role that allows it."
    )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
