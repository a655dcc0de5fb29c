"""Editing the label schema: add, rename and merge classes, keeping every label consistent.

Each change needs Permission.TRAIN (engineers and admins): the schema is what datasets are
frozen with and models are trained on, so it belongs to whoever freezes and trains. Each is
one transaction with one audit event (``label_class.create``, ``label_class.rename``,
``label_class.merge``).

**Rename** changes the class row's name in place. Labels point at the row, so every label,
current or old, follows at once; a frozen dataset version keeps its own names (it records the
class id of each name of its label schema), so an old version still loads with the names it
was frozen with. The old name is kept as an alias: a device still running a model that says
"scratch" has its predictions land on the renamed class instead of bringing "scratch" back.

**Merge** A into B: annotations are never edited, so every current annotation that gives A
(as its class or a box's class) is superseded by a new one that says B instead. The new one
keeps the original's author and source (the judgement is theirs: they said A, and A now means
B), points at the original (``replaces_id``), and is dated now; who merged, and when, is the
audit event. The captures' predictions of A (the edge model's, the observer's, and stored
observations) are re-pointed to B in place: they are not anyone's label but the mapping of a
model's output to the schema, which the merge changes; the device's own words stay in each
capture's sidecar metadata. A is retired (kept, so old dataset versions resolve) and its name
becomes an alias of B, as are the aliases A had.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, AnnotationBox, Capture, LabelClass, LabelClassAlias, Observation, utcnow,
)
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
DEFAULT_COLOR = "#808080"


@dataclass(frozen=True)
class ClassInfo:
    """A class of the schema as the class list shows it."""

    id: int
    name: str
    position: int
    color: str
    retired: bool
    aliases: tuple[str, ...]
    labels: int
    """Current annotations giving this class (as the class or a box's class)."""


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge changed."""

    merged: str
    into: str
    annotations_restated: int
    edge_predictions: int
    observer_predictions: int
    observations: int


def list_classes(db: Database, include_retired: bool = True) -> list[ClassInfo]:
    """The classes in schema order, retired ones last, with aliases and current label counts."""
    with db.read() as session:
        query = select(LabelClass).order_by(LabelClass.retired, LabelClass.position,
                                            LabelClass.id)
        if not include_retired:
            query = query.where(LabelClass.retired.is_(False))
        classes = list(session.scalars(query))
        aliases: dict[int, list[str]] = {}
        for name, class_id in session.execute(select(LabelClassAlias.name,
                                                     LabelClassAlias.class_id)
                                              .order_by(LabelClassAlias.name)):
            aliases.setdefault(class_id, []).append(name)
        counts = _current_label_counts(session)
    return [ClassInfo(c.id, c.name, c.position, c.color, c.retired,
                      tuple(aliases.get(c.id, ())), counts.get(c.id, 0)) for c in classes]


def add_class(db: Database, audit: AuditTrail, actor: Actor, name: str, *,
              color: str | None = None, clock: Clock = utcnow) -> int:
    """Add a class at the end of the schema; return its id."""
    authorize(db, audit, actor, Permission.TRAIN, f"add label class {name!r}")
    _check_name(name)
    if color is not None and not _COLOR.match(color):
        raise InvalidInput(f"colour {color!r} is not #RRGGBB (e.g. #d03030)")
    with db.write() as session:
        _refuse_taken(session, name)
        top = session.scalar(select(func.max(LabelClass.position)))
        label = LabelClass(name=name, position=0 if top is None else top + 1,
                           color=color or DEFAULT_COLOR, created_at=clock())
        session.add(label)
        session.flush()
        audit.append(session, actor=actor.name, action="label_class.create",
                     object_type="label_class", object_id=name,
                     after={"source": "schema editing", "position": label.position,
                            "color": label.color})
        return label.id


def rename_class(db: Database, audit: AuditTrail, actor: Actor, old: str, new: str, *,
                 clock: Clock = utcnow) -> None:
    """Rename active class ``old`` to ``new``; ``old`` stays an alias (module docstring)."""
    authorize(db, audit, actor, Permission.TRAIN, f"rename label class {old!r}")
    _check_name(new)
    with db.write() as session:
        label = _active(session, old)
        if new == old:
            raise InvalidInput(f"class {old!r} is already called that")
        # Renaming back to an old name of this very class takes the name back from its alias.
        session.execute(delete(LabelClassAlias).where(LabelClassAlias.name == new,
                                                      LabelClassAlias.class_id == label.id))
        _refuse_taken(session, new)
        session.add(LabelClassAlias(name=old, class_id=label.id, created_at=clock()))
        label.name = new
        session.flush()
        audit.append(session, actor=actor.name, action="label_class.rename",
                     object_type="label_class", object_id=str(label.id),
                     before={"name": old}, after={"name": new})


def merge_classes(db: Database, audit: AuditTrail, actor: Actor, merged: str, into: str, *,
                  clock: Clock = utcnow) -> MergeOutcome:
    """Merge active class ``merged`` into active class ``into`` (see the module docstring)."""
    authorize(db, audit, actor, Permission.TRAIN, f"merge label class {merged!r} into {into!r}")
    now = clock()
    with db.write() as session:
        source, target = _active(session, merged), _active(session, into)
        if source.id == target.id:
            raise InvalidInput(f"cannot merge class {merged!r} into itself")
        restated = _restate_annotations(session, source.id, target.id, now)
        edge = _repoint(session, Capture.edge_class_id, source.id, target.id)
        observer = _repoint(session, Capture.observer_class_id, source.id, target.id)
        observations = session.execute(
            update(Observation).where(Observation.class_id == source.id)
            .values(class_id=target.id).execution_options(synchronize_session=False)).rowcount
        session.execute(update(LabelClassAlias).where(LabelClassAlias.class_id == source.id)
                        .values(class_id=target.id).execution_options(synchronize_session=False))
        session.add(LabelClassAlias(name=source.name, class_id=target.id, created_at=now))
        source.retired = True
        session.flush()
        outcome = MergeOutcome(merged, into, restated, edge, observer, observations)
        audit.append(session, actor=actor.name, action="label_class.merge",
                     object_type="label_class", object_id=str(source.id),
                     before={"name": merged, "retired": False},
                     after={"into": into, "retired": True, "annotations_restated": restated,
                            "edge_predictions": edge, "observer_predictions": observer,
                            "observations": observations})
    return outcome


def _restate_annotations(session: Session, source: int, target: int, now: datetime) -> int:
    """Supersede each current annotation naming ``source`` with one naming ``target``."""
    with_box = select(AnnotationBox.annotation_id).where(AnnotationBox.class_id == source)
    old = list(session.scalars(
        select(Annotation).where(Annotation.superseded.is_(False),
                                 or_(Annotation.class_id == source, Annotation.id.in_(with_box)))
        .order_by(Annotation.id)))
    if not old:
        return 0
    boxes: dict[int, list[AnnotationBox]] = {}
    for box in session.scalars(select(AnnotationBox).where(
            AnnotationBox.annotation_id.in_([a.id for a in old])).order_by(AnnotationBox.id)):
        boxes.setdefault(box.annotation_id, []).append(box)
    swap = {source: target}
    new = [Annotation(capture_id=a.capture_id, class_id=swap.get(a.class_id, a.class_id),
                      author_id=a.author_id, source=a.source, created_at=now,
                      replaces_id=a.id, resolves_conflict=a.resolves_conflict) for a in old]
    for annotation in old:
        annotation.superseded = True
    session.add_all(new)
    session.flush()
    rows = [{"annotation_id": fresh.id, "class_id": swap.get(b.class_id, b.class_id),
             "x": b.x, "y": b.y, "width": b.width, "height": b.height}
            for stale, fresh in zip(old, new) for b in boxes.get(stale.id, [])]
    if rows:
        session.execute(insert(AnnotationBox), rows)
    return len(new)


def _repoint(session: Session, column, source: int, target: int) -> int:  # type: ignore[no-untyped-def]
    return session.execute(update(Capture).where(column == source)
                           .values({column: target})
                           .execution_options(synchronize_session=False)).rowcount


def _current_label_counts(session: Session) -> dict[int, int]:
    counts: dict[int, int] = dict(session.execute(
        select(Annotation.class_id, func.count()).where(Annotation.superseded.is_(False),
                                                        Annotation.class_id.is_not(None))
        .group_by(Annotation.class_id)).all())
    # Boxes-only labels count for their boxes' classes (once per annotation).
    for class_id, n in session.execute(
            select(AnnotationBox.class_id, func.count(func.distinct(Annotation.id)))
            .join(Annotation, Annotation.id == AnnotationBox.annotation_id)
            .where(Annotation.superseded.is_(False), Annotation.class_id.is_(None))
            .group_by(AnnotationBox.class_id)):
        counts[class_id] = counts.get(class_id, 0) + n
    return counts


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"class name {name!r} is not allowed: use 1-64 letters, digits, "
                           "spaces, '_', '.' or '-', starting with a letter or digit")


def _active(session: Session, name: str) -> LabelClass:
    label = session.scalar(select(LabelClass).where(LabelClass.name == name))
    if label is None or label.retired:
        active = session.scalars(select(LabelClass.name).where(LabelClass.retired.is_(False))
                                 .order_by(LabelClass.position, LabelClass.id))
        state = "retired" if label is not None else "not a class of this project"
        raise InvalidInput(f"{name!r} is {state}; the active classes are: "
                           + (", ".join(active) or "none"))
    return label


def _refuse_taken(session: Session, name: str) -> None:
    label = session.scalar(select(LabelClass).where(LabelClass.name == name))
    if label is not None:
        raise InvalidInput(f"there is already a{' retired' if label.retired else ''} class "
                           f"called {name!r}; choose another name")
    owner = session.scalar(select(LabelClass.name).join(
        LabelClassAlias, LabelClassAlias.class_id == LabelClass.id)
        .where(LabelClassAlias.name == name))
    if owner is not None:
        raise InvalidInput(f"{name!r} still means class {owner!r} (an old name that devices "
                           "may report); choose another name")
