"""Fixtures of the fleet tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fleet_env import FleetEnv, fleet_env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[FleetEnv]:
    """A project and two running simulated devices, not enrolled yet."""
    with fleet_env(tmp_path, count=2) as built:
        yield built
