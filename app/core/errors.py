"""The EdgeLoop exception tree.

Every error a user can meet is an :class:`EdgeLoopError` whose message says what happened
and what to do about it; the CLI and the GUI show the message, never a traceback.

    EdgeLoopError
    ├── ProjectError
    │   ├── ProjectNotFound
    │   ├── ProjectExists
    │   ├── ProjectTooNew
    │   └── DatabaseUnavailable
    ├── BlobError
    │   ├── BlobNotFound
    │   └── BlobCorrupt
    ├── AuthError
    │   ├── UnknownUser
    │   ├── BadPassword
    │   └── PermissionDenied
    ├── AuditChainBroken
    ├── ImmutableRecord
    └── InvalidInput
"""

from __future__ import annotations


class EdgeLoopError(Exception):
    """Base of every error EdgeLoop raises on purpose; ``str(err)`` is meant for the user."""


class ProjectError(EdgeLoopError):
    """The project folder or its database cannot be used."""


class ProjectNotFound(ProjectError):
    """No EdgeLoop project at the given path."""


class ProjectExists(ProjectError):
    """``init`` was asked to create a project where one already is."""


class ProjectTooNew(ProjectError):
    """The project's schema was written by a newer EdgeLoop than this one."""


class DatabaseUnavailable(ProjectError):
    """The database server or file cannot be reached or opened."""


class BlobError(EdgeLoopError):
    """A problem with the content-addressed blob store."""


class BlobWriteFailed(BlobError):
    """The blob store could not write (disk full, permissions): nothing was stored."""


class BlobNotFound(BlobError):
    """No blob with the requested sha256 is stored."""


class BlobCorrupt(BlobError):
    """A stored blob no longer hashes to its name."""


class AuthError(EdgeLoopError):
    """Who is acting could not be established, or may not do this."""


class UnknownUser(AuthError):
    """No (active) user of that name in the project."""


class BadPassword(AuthError):
    """The password does not match."""


class PermissionDenied(AuthError):
    """The acting user's role does not allow the action. The refusal is audited."""


class AuditChainBroken(EdgeLoopError):
    """The audit trail's hash chain does not verify."""


class ImmutableRecord(EdgeLoopError):
    """An attempt to change a record that is frozen (a dataset version, an audit event)."""


class InvalidInput(EdgeLoopError):
    """A value given by the user or a device is not acceptable; the message names it."""
