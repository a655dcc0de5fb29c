"""Comparing two versions' stored scores: directions, the shared format, the lineage."""

from __future__ import annotations

from datetime import datetime, timezone

from app.core.model_comparison import Outcome, compare_models
from app.core.model_registry import FormatMetrics, ModelDetails
from app.core.models import ArtifactFormat, ModelKind, ModelStatus


def scored(format: ArtifactFormat, accuracy: float, p50: float, size: int,
           recall: dict[str, float], dataset: str = "inspection@1") -> FormatMetrics:
    """An artifact's metrics JSON in the shape the evaluation service stores."""
    return FormatMetrics(format, "FP32", "ONNX Runtime", size, "0" * 64, {
        "loads": True, "size": size, "accuracy": accuracy, "count": 50, "dataset": dataset,
        "labels": list(recall), "latency_p50_ms": p50, "latency_p99_ms": 2 * p50,
        "per_class": {name: {"precision": 0.9, "recall": r, "support": 10}
                      for name, r in recall.items()}})


def version(name: str, formats: list[FormatMetrics], parent: str | None = None,
            dataset: str = "inspection@1") -> ModelDetails:
    return ModelDetails(name, ModelKind.EDGE, ModelStatus.CANDIDATE, parent, 1, dataset,
                        ["ok", "crack"], {}, {}, tuple(formats), None,
                        datetime(2026, 11, 1, tzinfo=timezone.utc), None, None)


def test_higher_scores_and_lower_costs_are_better() -> None:
    new = version("edge-2", [
        scored(ArtifactFormat.TORCH, 0.90, 9.0, 4000, {"ok": 0.9, "crack": 0.9}),
        scored(ArtifactFormat.ONNX, 0.90, 1.0, 3000, {"ok": 0.95, "crack": 0.8})],
        parent="edge-1", dataset="inspection@2")
    old = version("edge-1", [
        scored(ArtifactFormat.ONNX, 0.85, 1.5, 3000, {"ok": 0.9, "crack": 0.85})])
    comparison = compare_models(new, old)
    assert comparison.first_format is comparison.second_format is ArtifactFormat.ONNX
    accuracy = comparison.metric("accuracy")
    assert accuracy.difference is not None and abs(accuracy.difference - 0.05) < 1e-9
    assert accuracy.outcome is Outcome.BETTER
    assert comparison.metric("recall: crack").outcome is Outcome.WORSE
    assert comparison.metric("latency p50").outcome is Outcome.BETTER  # 1.0 ms < 1.5 ms
    assert comparison.metric("size").outcome is Outcome.SAME
    assert comparison.metric("test images").outcome is Outcome.UNKNOWN  # no better direction
    assert comparison.fact("trained on").differs and comparison.fact("parent").first == "edge-1"
    assert not comparison.fact("kind").differs


def test_without_a_shared_format_each_version_shows_its_own_best() -> None:
    new = version("edge-2", [scored(ArtifactFormat.ONNX_INT8, 0.8, 1.0, 1000, {"ok": 1.0})])
    old = version("edge-1", [scored(ArtifactFormat.TORCH, 0.9, 9.0, 4000, {"ok": 1.0,
                                                                          "crack": 0.5})])
    comparison = compare_models(new, old, ArtifactFormat.ONNX)  # not scored for either
    assert (comparison.first_format, comparison.second_format) == (ArtifactFormat.ONNX_INT8,
                                                                   ArtifactFormat.TORCH)
    missing = comparison.metric("recall: crack")
    assert (missing.first, missing.second, missing.outcome) == (None, 0.5, Outcome.UNKNOWN)
    assert comparison.fact("scores of").first == "onnx_int8 on inspection@1"
