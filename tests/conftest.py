"""Fixtures every test area shares: projects on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.core.project import Project, init_project
from tests.support.postgres import PostgresServer, find_bin_dir, start_postgres

ADMIN = "admin"


class FakeClock:
    """A clock tests move by hand; each call advances one millisecond so events order."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """A test that leaves a thread running fails (STYLE.md)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leftover:
        thread.join(timeout=5)
    still = [f"{t.name} ({type(t).__name__})" for t in leftover if t.is_alive()]
    assert not still, f"test left threads running: {still}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; skipped only where none is installed,
    and never in CI (EDGELOOP_REQUIRE_POSTGRES=1), where a missing server fails."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("EDGELOOP_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (EDGELOOP_REQUIRE_POSTGRES=1) but not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = start_postgres(bin_dir)
    yield server
    server.stop()


_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for the project's own SQLite file, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{next(_db_counter)}_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def project(tmp_path: Path, db_url: str | None, clock: FakeClock) -> Iterator[Project]:
    """A fresh project with one admin, on SQLite and on PostgreSQL."""
    p = init_project(tmp_path / "project", admin=ADMIN, db_url=db_url, clock=clock)
    yield p
    p.close()


@pytest.fixture
def sqlite_project(tmp_path: Path, clock: FakeClock) -> Iterator[Project]:
    """A fresh SQLite project, for tests about SQLite itself or the file layout."""
    p = init_project(tmp_path / "project", admin=ADMIN, clock=clock)
    yield p
    p.close()
