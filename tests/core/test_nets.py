"""Networks start from weights their seed alone decides, so a recorded run can be repeated."""

from __future__ import annotations

import pytest
import torch

from app.core.nets import build_net


def test_a_seeded_network_ignores_earlier_random_draws_and_leaves_them_alone() -> None:
    first = build_net("edgenet", 5, seed=7)
    torch.rand(1000)  # whatever ran before in the process
    before = torch.random.get_rng_state()
    second = build_net("edgenet", 5, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    other = build_net("edgenet", 5, seed=8)
    assert not torch.equal(other.head.weight, first.head.weight)


def test_an_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'"):
        build_net("resnet9", 5, seed=1)
