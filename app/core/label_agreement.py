"""When two people's labels of one capture agree, and which captures are in conflict.

Two labels agree when they give the same class (or both none) and the same boxes: for each
box class, as many boxes on both sides, paired one to one so that every pair overlaps by at
least :data:`IOU_THRESHOLD` (intersection over union). The pairing is a maximum bipartite
matching, not a greedy one, so the answer never depends on the order boxes were drawn in.

A capture is *in conflict* when people's current labels of it disagree: each author's newest
non-superseded annotation, compared pairwise (the rule is not transitive, so every pair).
One person's own annotations never conflict with each other: their newest is their label.

This lives in app.core because freezing a dataset must leave conflicted captures out
(:func:`app.core.datasets.freeze_version`); app.annotate.conflicts lists and resolves them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.models import Annotation, AnnotationBox, AnnotationSource

IOU_THRESHOLD = 0.5
_IN_CHUNK = 500

Box = tuple[int, float, float, float, float]
"""(class id, x, y, width, height) in pixels of the capture image."""


@dataclass(frozen=True)
class AuthorLabel:
    """One author's label of one capture, as the agreement rule reads it."""

    annotation_id: int
    capture_id: int
    author_id: int
    class_id: int | None
    boxes: tuple[Box, ...]
    source: AnnotationSource
    created_at: datetime


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, width, height) boxes; 0 for empty ones."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = min(ax + aw, bx + bw) - max(ax, bx)
    inter_h = min(ay + ah, by + bh) - max(ay, by)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def boxes_agree(a: Iterable[Box], b: Iterable[Box], threshold: float = IOU_THRESHOLD) -> bool:
    """Whether two box sets pair up one to one, class by class, at IoU >= ``threshold``."""
    by_class_a: dict[int, list[Box]] = defaultdict(list)
    by_class_b: dict[int, list[Box]] = defaultdict(list)
    for box in a:
        by_class_a[box[0]].append(box)
    for box in b:
        by_class_b[box[0]].append(box)
    if by_class_a.keys() != by_class_b.keys():
        return False
    for class_id, left in by_class_a.items():
        right = by_class_b[class_id]
        if len(left) != len(right):
            return False
        edges = [[j for j, r in enumerate(right) if iou(l[1:], r[1:]) >= threshold]
                 for l in left]
        if _matching_size(edges, len(right)) != len(left):
            return False
    return True


def labels_agree(a: AuthorLabel, b: AuthorLabel, threshold: float = IOU_THRESHOLD) -> bool:
    """Same class (or both none) and agreeing boxes (see the module docstring)."""
    return a.class_id == b.class_id and boxes_agree(a.boxes, b.boxes, threshold)


def all_agree(labels: Sequence[AuthorLabel], threshold: float = IOU_THRESHOLD) -> bool:
    """Whether every pair of ``labels`` agrees."""
    return all(labels_agree(x, y, threshold) for x, y in combinations(labels, 2))


def conflicts(session: Session, capture_ids: Iterable[int] | None = None,
              threshold: float = IOU_THRESHOLD) -> dict[int, list[AuthorLabel]]:
    """Captures in conflict (of ``capture_ids``, or all), each with its authors' current
    labels, oldest first."""
    labels = newest_by_author(session, current_only=True, capture_ids=capture_ids)
    return {capture: found for capture, found in labels.items()
            if not all_agree(found, threshold)}


def newest_by_author(session: Session, *, current_only: bool,
                     capture_ids: Iterable[int] | None = None) -> dict[int, list[AuthorLabel]]:
    """Each author's newest annotation of each capture labelled by two or more authors.

    ``current_only``: only non-superseded annotations (what is in force now); otherwise every
    annotation but conflict resolutions (what each person said, even if since resolved).
    Lists are oldest first.
    """
    keep = (Annotation.superseded.is_(False) if current_only
            else Annotation.resolves_conflict.is_(False))
    shared = (select(Annotation.capture_id).where(keep).group_by(Annotation.capture_id)
              .having(func.count(func.distinct(Annotation.author_id)) > 1))
    if capture_ids is None:
        candidates = list(session.scalars(shared))
    else:
        wanted = sorted(set(capture_ids))
        candidates = []
        for start in range(0, len(wanted), _IN_CHUNK):
            candidates.extend(session.scalars(shared.where(
                Annotation.capture_id.in_(wanted[start:start + _IN_CHUNK]))))
    newest: dict[tuple[int, int], tuple] = {}
    for start in range(0, len(candidates), _IN_CHUNK):
        for row in session.execute(
                select(Annotation.id, Annotation.capture_id, Annotation.author_id,
                       Annotation.class_id, Annotation.source, Annotation.created_at)
                .where(keep, Annotation.capture_id.in_(candidates[start:start + _IN_CHUNK]))
                .order_by(Annotation.created_at, Annotation.id)):
            newest[(row[1], row[2])] = tuple(row)  # later rows replace earlier ones
    boxes: dict[int, list[Box]] = defaultdict(list)
    chosen = sorted(row[0] for row in newest.values())
    for start in range(0, len(chosen), _IN_CHUNK):
        for annotation_id, *box in session.execute(
                select(AnnotationBox.annotation_id, AnnotationBox.class_id, AnnotationBox.x,
                       AnnotationBox.y, AnnotationBox.width, AnnotationBox.height)
                .where(AnnotationBox.annotation_id.in_(chosen[start:start + _IN_CHUNK]))
                .order_by(AnnotationBox.id)):
            boxes[annotation_id].append(tuple(box))  # type: ignore[arg-type]
    result: dict[int, list[AuthorLabel]] = defaultdict(list)
    for annotation_id, capture_id, author_id, class_id, source, created_at in sorted(
            newest.values(), key=lambda r: (r[5], r[0])):
        result[capture_id].append(AuthorLabel(annotation_id, capture_id, author_id, class_id,
                                              tuple(boxes.get(annotation_id, ())), source,
                                              created_at))
    return {capture: found for capture, found in result.items() if len(found) > 1}


def _matching_size(edges: list[list[int]], right_count: int) -> int:
    """Size of a maximum matching of a bipartite graph (Kuhn's augmenting paths); ``edges[i]``
    lists the right-hand nodes left node ``i`` may pair with. Box counts are small."""
    owner = [-1] * right_count

    def augment(i: int, seen: list[bool]) -> bool:
        for j in edges[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] == -1 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, [False] * right_count) for i in range(len(edges)))
