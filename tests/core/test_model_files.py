"""The torch checkpoint of a model version: pruned networks come back at their pruned shapes,
and a truncated or foreign file is refused with a clear error, never unpickled as code."""

from __future__ import annotations

import io

import pytest
import torch
import torch_pruning as tp

from app.core.errors import InvalidInput
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.nets import EdgeNet, count_parameters

LABELS = ["ok", "scratch", "crack"]


def _pruned(ratio: float) -> EdgeNet:
    torch.manual_seed(0)
    model = EdgeNet(len(LABELS))
    tp.pruner.MagnitudePruner(model, torch.zeros(1, 3, 48, 48),
                              importance=tp.importance.MagnitudeImportance(p=1),
                              pruning_ratio=ratio, ignored_layers=[model.head]).step()
    return model.eval()


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_a_checkpoint_rebuilds_the_same_network(ratio: float) -> None:
    model = _pruned(ratio) if ratio else EdgeNet(len(LABELS)).eval()
    x = torch.randn(2, 3, 48, 48)
    data = dump_model(ModelFile(model, "edgenet", LABELS, {"width": 48}, pruned=ratio > 0))
    back = load_model(data)
    assert count_parameters(back.model) == count_parameters(model)
    assert torch.allclose(back.model(x), model(x), atol=1e-6)
    assert back.labels == LABELS and back.input_spec == {"width": 48}
    if ratio:
        assert count_parameters(back.model) < count_parameters(EdgeNet(len(LABELS))) * 0.5


def test_truncated_and_foreign_files_are_refused() -> None:
    data = dump_model(ModelFile(EdgeNet(3), "edgenet", LABELS, {}))
    with pytest.raises(InvalidInput, match="edge-7 checkpoint is not a readable"):
        load_model(data[: len(data) // 2], "edge-7 checkpoint")
    foreign = io.BytesIO()
    torch.save(EdgeNet(3), foreign)  # a pickled module: code, not data
    with pytest.raises(InvalidInput, match="not a readable"):
        load_model(foreign.getvalue())
    other = io.BytesIO()
    torch.save({"format": 99}, other)
    with pytest.raises(InvalidInput, match="unknown checkpoint format"):
        load_model(other.getvalue())
