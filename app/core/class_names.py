"""Class names to label classes: the active schema, and the names models still report.

A person names only *active* classes (:func:`active_class_ids`): a label saved with a retired
class or an old name is refused, so every new label speaks the current schema.

A model is different: a device running last month's edge model keeps reporting the names it
was trained with, and an observer's label mapping does too. :func:`prediction_class_ids`
resolves those through ``label_class_aliases``, which a rename fills with the old name and a
merge with the merged class's name, so a prediction of a renamed or merged class lands on the
class it means now instead of bringing the old name back as a class of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.core.models import LabelClass, LabelClassAlias


def active_class_ids(session: Session) -> dict[str, int]:
    """Name -> id of every class of the active label schema, in schema order."""
    return dict(session.execute(
        select(LabelClass.name, LabelClass.id).where(LabelClass.retired.is_(False))
        .order_by(LabelClass.position, LabelClass.id)).all())


def prediction_class_ids(session: Session, names: Iterable[str] | None = None) -> dict[str, int]:
    """Name -> class id for names a model reports: an alias wins over a class row of that
    name (a merged class keeps its row, retired, and its name now means the class it was
    merged into). ``names`` limits the answer (names not found are left out); None: all."""
    wanted = None if names is None else sorted(set(names))
    classes = select(LabelClass.name, LabelClass.id)
    aliases = select(LabelClassAlias.name, LabelClassAlias.class_id)
    if wanted is not None:
        if not wanted:
            return {}
        classes = classes.where(LabelClass.name.in_(wanted))
        aliases = aliases.where(LabelClassAlias.name.in_(wanted))
    found = dict(session.execute(classes).all())
    found.update(session.execute(aliases).all())
    return found


def require_active_class(session: Session, name: str, classes: dict[str, int] | None = None) -> int:
    """The id of active class ``name``; :class:`InvalidInput` naming the classes otherwise
    (and, for an old name, the class it became)."""
    classes = active_class_ids(session) if classes is None else classes
    if name in classes:
        return classes[name]
    became = session.scalar(select(LabelClass.name).join(
        LabelClassAlias, LabelClassAlias.class_id == LabelClass.id)
        .where(LabelClassAlias.name == name))
    hint = (f"; {name!r} is now called {became!r}" if became is not None else
            "; its classes are: " + (", ".join(classes) or "none yet (add one with "
                                     "`edgeloop classes add`)"))
    raise InvalidInput(f"{name!r} is not a class of this project's label schema{hint}")
