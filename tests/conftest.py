"""Core test configuration. Core tests never import anything under plugins/."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchcore.testing.postgres import TemporaryPostgres, find_server

pytest_plugins = ["pytester"]

# Taken before any test redirects the temp directory: the PostgreSQL server (run as the
# postgres user when the tests run as root) must be able to reach its directory.
SYSTEM_TEMP = tempfile.gettempdir()


@pytest.fixture(autouse=True)
def _temp_files_in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Payload files a test forgets land in its own tmp_path, not the system temp dir."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """One real PostgreSQL server for the session (each test takes a new database on it)."""
    _, why = find_server()
    if why:
        if os.environ.get("BATCHCORE_REQUIRE_POSTGRES"):
            pytest.fail(f"BATCHCORE_REQUIRE_POSTGRES is set but {why}")
        pytest.skip(f"no PostgreSQL server can be started here: {why}")
    with TemporaryPostgres(base=SYSTEM_TEMP) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store location on each backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.sqlite3")
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    return server.new_url()
