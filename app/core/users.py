"""Local users: adding them, listing them, and checking a password at sign-in.

Passwords are kept only as salted scrypt hashes (``hashlib.scrypt``, memory-hard), in the
self-describing form ``scrypt$n$r$p$salt$hash`` so the cost can be raised later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from sqlalchemy import func, select

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import BadPassword, InvalidInput, UnknownUser
from app.core.models import Role, User
from app.core.roles import Actor, Permission, authorize

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` in the ``scrypt$n$r$p$salt$hash`` form."""
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` hashes to ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def check_user_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"user name {name!r} is not allowed: use 1-64 letters, digits, '_', '.', '@' or '-'"
        )
    return name


def count_users(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def create_first_admin(
    db: Database, audit: AuditTrail, name: str, password: str | None = None
) -> Actor:
    """Create the project's first user, an admin. Only allowed while there are no users."""
    check_user_name(name)
    with db.write() as session:
        if session.scalar(select(func.count()).select_from(User)):
            raise InvalidInput("the project already has users; an admin adds the next ones")
        user = User(
            name=name, role=Role.ADMIN,
            password_hash=hash_password(password) if password else None,
        )
        session.add(user)
        session.flush()
        audit.append(
            session, actor=name, action="user_added", object_type="user", object_id=name,
            after={"role": Role.ADMIN.value, "first_admin": True},
        )
        return Actor.of(user)


def add_user(
    db: Database,
    audit: AuditTrail,
    actor: Actor,
    name: str,
    role: Role,
    password: str | None = None,
    full_name: str = "",
) -> Actor:
    """Add a user; only roles with MANAGE_USERS may."""
    check_user_name(name)
    authorize(db, audit, actor, Permission.MANAGE_USERS, f"add user {name}")
    with db.write() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise InvalidInput(f"a user named {name!r} already exists; pick another name")
        user = User(
            name=name, role=role, full_name=full_name,
            password_hash=hash_password(password) if password else None,
        )
        session.add(user)
        session.flush()
        audit.append(
            session, actor=actor.name, action="user_added", object_type="user", object_id=name,
            after={"role": role.value, "full_name": full_name},
        )
        return Actor.of(user)


def set_role(db: Database, audit: AuditTrail, actor: Actor, name: str, role: Role) -> None:
    """Change a user's role; only roles with MANAGE_USERS may."""
    authorize(db, audit, actor, Permission.MANAGE_USERS, f"change role of {name}")
    with db.write() as session:
        user = _get_user(session, name)
        before = user.role.value
        user.role = role
        audit.append(
            session, actor=actor.name, action="role_changed", object_type="user", object_id=name,
            before={"role": before}, after={"role": role.value},
        )


def list_users(db: Database) -> list[User]:
    with db.read() as session:
        return list(session.scalars(select(User).order_by(User.name)))


def actor_named(db: Database, name: str) -> Actor:
    """The active user called ``name``, as an :class:`Actor` (for the CLI's ``--user``)."""
    with db.read() as session:
        return Actor.of(_get_user(session, name))


def authenticate(db: Database, audit: AuditTrail, name: str, password: str) -> Actor:
    """Sign-in: return the actor if the password matches; failures are audited."""
    with db.read() as session:
        user = _get_user(session, name)
        ok = user.password_hash is not None and password_matches(password, user.password_hash)
    if not ok:
        with db.write() as session:
            audit.append(
                session, actor=name, action="sign_in_failed", object_type="user", object_id=name
            )
        raise BadPassword(f"wrong password for {name}")
    return Actor.of(user)


def _get_user(session, name: str) -> User:  # type: ignore[no-untyped-def]
    user = session.scalar(select(User).where(User.name == name, User.active.is_(True)))
    if user is None:
        raise UnknownUser(
            f"no active user named {name!r} in this project; `edgeloop users list` shows them"
        )
    return user
