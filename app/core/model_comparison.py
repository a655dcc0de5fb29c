"""Two model versions side by side: their stored scores, the differences, and their lineage.

Works on :class:`~app.core.model_registry.ModelDetails` (what the evaluation service stored),
never on models: comparing runs nothing. Scores are compared format against format (the same
format when both have one scored, else each version's own best) and say whether the first
version is better or worse on each: higher accuracy, precision and recall are better, lower
latency and size are better. Scores measured on different test splits are still listed, and
the lineage shows the splits differ, so nobody mistakes them for a like-for-like comparison.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.core.model_registry import FormatMetrics, ModelDetails
from app.core.models import ArtifactFormat


class Outcome(str, enum.Enum):
    """How the first version does on one metric, against the second."""

    BETTER = "better"
    WORSE = "worse"
    SAME = "same"
    UNKNOWN = "unknown"  # a value is missing, or the metric has no better direction


@dataclass(frozen=True)
class MetricDifference:
    """One metric of both versions; ``difference`` is first minus second.

    ``digits`` is the precision the metric is read at: a difference that rounds to zero
    there is the same, so a latency 0.004 ms lower is no "better".
    """

    name: str
    first: float | None
    second: float | None
    unit: str = ""
    higher_is_better: bool | None = True  # None: neither direction is better (a count)
    digits: int = 3

    @property
    def difference(self) -> float | None:
        if self.first is None or self.second is None:
            return None
        return self.first - self.second

    @property
    def outcome(self) -> Outcome:
        difference = self.difference
        if difference is None or self.higher_is_better is None:
            return Outcome.UNKNOWN
        if round(difference, self.digits) == 0:
            return Outcome.SAME
        return Outcome.BETTER if (difference > 0) == self.higher_is_better else Outcome.WORSE


@dataclass(frozen=True)
class LineageDifference:
    """One fact of both versions' history (trained on, parent, ...)."""

    name: str
    first: str
    second: str

    @property
    def differs(self) -> bool:
        return self.first != self.second


@dataclass(frozen=True)
class ModelComparison:
    """``first`` against ``second``: scores of ``first_format`` on the test split of
    ``first_dataset`` against ``second_format`` on ``second_dataset``."""

    first: str
    second: str
    first_format: ArtifactFormat | None
    second_format: ArtifactFormat | None
    first_dataset: str | None
    second_dataset: str | None
    metrics: tuple[MetricDifference, ...]
    lineage: tuple[LineageDifference, ...]

    @property
    def same_test_split(self) -> bool:
        """Whether both were scored on the same test split (else the numbers only hint)."""
        return self.first_dataset is not None and self.first_dataset == self.second_dataset

    def metric(self, name: str) -> MetricDifference:
        return next(m for m in self.metrics if m.name == name)

    def fact(self, name: str) -> LineageDifference:
        return next(f for f in self.lineage if f.name == name)


def common_formats(first: ModelDetails, second: ModelDetails) -> list[ArtifactFormat]:
    """Formats scored for both versions, best to compare first."""
    theirs = {f.format for f in second.scored_formats}
    return [f.format for f in first.scored_formats if f.format in theirs]


def compare_models(first: ModelDetails, second: ModelDetails,
                   format: ArtifactFormat | None = None) -> ModelComparison:
    """Compare the stored scores of ``first`` and ``second`` in ``format`` (default: the best
    format both have scored; when they share none, each one's own best)."""
    shared = common_formats(first, second)
    if format is not None and format in shared:
        ours, theirs = first.format(format), second.format(format)
    elif shared:
        ours, theirs = first.format(shared[0]), second.format(shared[0])
    else:
        ours = next(iter(first.scored_formats), None)
        theirs = next(iter(second.scored_formats), None)
    return ModelComparison(
        first.version, second.version, None if ours is None else ours.format,
        None if theirs is None else theirs.format, None if ours is None else ours.dataset,
        None if theirs is None else theirs.dataset, _metrics(ours, theirs),
        _lineage(first, second, ours, theirs))


def _metrics(ours: FormatMetrics | None,
             theirs: FormatMetrics | None) -> tuple[MetricDifference, ...]:
    if ours is None and theirs is None:
        return ()

    def value(f: FormatMetrics | None, attribute: str) -> float | None:
        return None if f is None else getattr(f, attribute)

    rows = [MetricDifference("accuracy", value(ours, "accuracy"), value(theirs, "accuracy"))]
    our_classes = {} if ours is None else ours.per_class
    their_classes = {} if theirs is None else theirs.per_class
    labels = list(our_classes) + [n for n in their_classes if n not in our_classes]
    for measure in ("recall", "precision"):
        for label in labels:
            mine, other = our_classes.get(label), their_classes.get(label)
            rows.append(MetricDifference(
                f"{measure}: {label}", None if mine is None else getattr(mine, measure),
                None if other is None else getattr(other, measure)))
    rows += [
        MetricDifference("latency p50", value(ours, "latency_p50_ms"),
                         value(theirs, "latency_p50_ms"), "ms", False, digits=2),
        MetricDifference("latency p99", value(ours, "latency_p99_ms"),
                         value(theirs, "latency_p99_ms"), "ms", False, digits=2),
        MetricDifference("size", None if ours is None else ours.size / 1e6,
                         None if theirs is None else theirs.size / 1e6, "MB",
                         higher_is_better=False),
        MetricDifference("test images", _count(ours), _count(theirs), higher_is_better=None,
                         digits=0),
    ]
    return tuple(rows)


def _count(f: FormatMetrics | None) -> float | None:
    return None if f is None or f.count is None else float(f.count)


def _lineage(first: ModelDetails, second: ModelDetails, ours: FormatMetrics | None,
             theirs: FormatMetrics | None) -> tuple[LineageDifference, ...]:
    def text(value: object) -> str:
        return "-" if value is None or value == "" else str(value)

    def scored(f: FormatMetrics | None) -> str:
        return "-" if f is None else f"{f.format.value} on {text(f.dataset)}"

    return (
        LineageDifference("kind", first.kind.value, second.kind.value),
        LineageDifference("status", first.status.value, second.status.value),
        LineageDifference("trained on", text(first.dataset), text(second.dataset)),
        LineageDifference("parent", text(first.parent), text(second.parent)),
        LineageDifference("training run", text(first.training_run), text(second.training_run)),
        LineageDifference("scores of", scored(ours), scored(theirs)),
        LineageDifference("created (UTC)", first.created_at.strftime("%Y-%m-%d %H:%M"),
                          second.created_at.strftime("%Y-%m-%d %H:%M")),
    )

