"""Reading and writing the project settings table (one JSON value per key), audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.models import ProjectSetting


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    """The value stored under ``key``, or ``default``."""
    row = session.get(ProjectSetting, key)
    return default if row is None else row.value


def put_setting(session: Session, audit: AuditTrail, actor: str, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` and audit the change (old and new value)."""
    row = session.get(ProjectSetting, key)
    before = None if row is None else row.value
    if row is None:
        session.add(ProjectSetting(key=key, value=value))
    else:
        row.value = value
    audit.append(session, actor=actor, action="settings.change", object_type="setting",
                 object_id=key, before={"value": before}, after={"value": value})
