"""Fixtures of the installer tests: the agent's PyInstaller bundle, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.agent_bundle import agent_bundle


@pytest.fixture(scope="session")
def agent_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's one-folder bundle (program: ``<folder>/edgeloop-agent``), built by
    installers/build.py, which has already run its ``--selfcheck`` once.

    EDGELOOP_BUNDLE_CACHE names a folder to keep it in across sessions (rebuilt only when
    app/ or installers/ changed); by default it is built under the session's temp folder."""
    cache = os.environ.get("EDGELOOP_BUNDLE_CACHE")
    root = Path(cache) if cache else tmp_path_factory.mktemp("agent-bundle")
    return agent_bundle(root)
