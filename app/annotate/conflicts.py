"""Conflicts between annotators, their resolution, and agreement per annotator.

A capture is **in conflict** when the current labels of two or more people disagree: a
different class, or boxes that do not pair up class by class at IoU >= 0.5 (the rule is
:mod:`app.core.label_agreement`, shared with the dataset freeze, which leaves conflicted
captures out). :func:`find_conflicts` lists them with each person's label.

**Resolving** is an engineer's job: :func:`resolve_conflict` needs Permission.TRAIN, the
permission that freezes datasets and trains on them, since the resolution decides what the
next dataset says (annotators may label, but not overrule each other). It records the final
label as a new annotation by the engineer that supersedes every current annotation of the
capture, marked ``resolves_conflict``, and audits ``annotation.resolve_conflict`` with the
labels it overruled.

**Agreement** (:func:`agreement_by_annotator`) counts, for each person, the captures they and
at least one other person labelled, and the share where their label agreed with every other
person's. Each person's newest label of a capture counts, superseded or not (a resolved
conflict was still a disagreement); an engineer's resolutions do not count, as they are not an
independent opinion. Cohen's kappa is given for each pair of people on the *class* alone
(boxes have no categories to count chance agreement over); it is None where it is undefined
(both always chose one and the same class).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.annotations import BoxDraft, LabelDraft, record_label
from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.label_agreement import AuthorLabel, conflicts, labels_agree, newest_by_author
from app.core.models import AnnotationSource, Capture, Device, LabelClass, User, utcnow
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ConflictingLabel:
    """One person's current label in a conflict."""

    author: str
    annotation_id: int
    source: AnnotationSource
    created_at: datetime
    label: LabelDraft


@dataclass(frozen=True)
class Conflict:
    """A capture whose current labels disagree, with each person's label (oldest first)."""

    capture_id: int
    device_uid: str
    device_capture_id: str
    blob_sha256: str
    labels: tuple[ConflictingLabel, ...]


@dataclass(frozen=True)
class AnnotatorAgreement:
    """How often one person agreed with the others on captures several people labelled."""

    annotator: str
    captures: int
    agreed: int

    @property
    def share(self) -> float:
        return self.agreed / self.captures if self.captures else 0.0


@dataclass(frozen=True)
class PairAgreement:
    """Two people on the captures both labelled: agreement (class and boxes) and Cohen's
    kappa on the class."""

    first: str
    second: str
    captures: int
    agreed: int
    kappa: float | None

    @property
    def share(self) -> float:
        return self.agreed / self.captures if self.captures else 0.0


@dataclass(frozen=True)
class AgreementReport:
    """Agreement per annotator (by name) and per pair of annotators."""

    annotators: tuple[AnnotatorAgreement, ...]
    pairs: tuple[PairAgreement, ...]


def find_conflicts(db: Database, limit: int | None = None) -> list[Conflict]:
    """Captures in conflict, by capture id, each with every person's current label."""
    with db.read() as session:
        found = conflicts(session)
        ids = sorted(found)[:limit] if limit is not None else sorted(found)
        if not ids:
            return []
        names = _Names.load(session)
        captures = {row[0]: row[1:] for row in session.execute(
            select(Capture.id, Device.uid, Capture.device_capture_id, Capture.blob_sha256)
            .join(Device, Device.id == Capture.device_id).where(Capture.id.in_(ids)))}
    return [Conflict(capture_id, *captures[capture_id],
                     labels=tuple(ConflictingLabel(names.user(label.author_id),
                                                   label.annotation_id, label.source,
                                                   label.created_at, names.draft(label))
                                  for label in found[capture_id]))
            for capture_id in ids]


def resolve_conflict(db: Database, audit: AuditTrail, actor: Actor, capture_id: int,
                     draft: LabelDraft, *, clock: Clock = utcnow,
                     image_size: tuple[int, int] | None = None) -> int:
    """Record the engineer's final label of a conflicted capture; return its annotation id.

    It supersedes every current annotation of the capture (see the module docstring). Needs
    TRAIN. A capture not in conflict is refused: label it as usual instead.
    """
    authorize(db, audit, actor, Permission.TRAIN, f"resolve the label conflict of capture "
                                                  f"{capture_id}")
    with db.write() as session:
        if session.get(Capture, capture_id) is None:
            raise InvalidInput(f"no capture {capture_id} in this project")
        found = conflicts(session, [capture_id]).get(capture_id)
        if found is None:
            raise InvalidInput(f"capture {capture_id} is not in conflict (its current labels "
                               "agree, or only one person labelled it): label it with "
                               "`edgeloop labels set` instead")
        names = _Names.load(session)
        overruled = {names.user(label.author_id): names.class_name(label.class_id)
                     for label in found}
        return record_label(session, audit, actor, capture_id, draft,
                            source=AnnotationSource.HUMAN, now=clock(), image_size=image_size,
                            supersede_all=True, resolves_conflict=True,
                            action="annotation.resolve_conflict",
                            audit_before={"labels": overruled})


def agreement_by_annotator(db: Database) -> AgreementReport:
    """Agreement per annotator and per pair (see the module docstring), by name."""
    with db.read() as session:
        by_capture = newest_by_author(session, current_only=False)
        names = _Names.load(session)
    captures: Counter[int] = Counter()
    agreed: Counter[int] = Counter()
    pairs: dict[tuple[int, int], list[tuple[AuthorLabel, AuthorLabel]]] = defaultdict(list)
    for labels in by_capture.values():
        for label in labels:
            captures[label.author_id] += 1
            if all(labels_agree(label, other) for other in labels if other is not label):
                agreed[label.author_id] += 1
        for x, y in combinations(sorted(labels, key=lambda lab: names.user(lab.author_id)), 2):
            pairs[(x.author_id, y.author_id)].append((x, y))
    annotators = sorted((AnnotatorAgreement(names.user(a), captures[a], agreed[a])
                         for a in captures), key=lambda r: r.annotator)
    pair_rows = sorted((PairAgreement(names.user(a), names.user(b), len(both),
                                      sum(labels_agree(x, y) for x, y in both),
                                      cohen_kappa([(x.class_id, y.class_id) for x, y in both]))
                        for (a, b), both in pairs.items()),
                       key=lambda r: (r.first, r.second))
    return AgreementReport(tuple(annotators), tuple(pair_rows))


def cohen_kappa(pairs: list[tuple[object, object]]) -> float | None:
    """Cohen's kappa of two raters' categories; None when chance agreement is certain."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class _Names:
    users: dict[int, str]
    classes: dict[int, str]

    @classmethod
    def load(cls, session: Session) -> _Names:
        return cls(dict(session.execute(select(User.id, User.name)).all()),
                   dict(session.execute(select(LabelClass.id, LabelClass.name)).all()))

    def user(self, user_id: int) -> str:
        return self.users.get(user_id, f"user {user_id}")

    def class_name(self, class_id: int | None) -> str | None:
        return None if class_id is None else self.classes.get(class_id, "?")

    def draft(self, label: AuthorLabel) -> LabelDraft:
        return LabelDraft(self.class_name(label.class_id),
                          tuple(BoxDraft(self.classes.get(c, "?"), x, y, w, h)
                                for c, x, y, w, h in label.boxes))
