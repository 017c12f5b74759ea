"""End-to-end fixtures: the real CLI and runner against the bundled vendor emulators.

These tests need the core and both first-party plugins installed (the ``e2e`` nox session).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchcore.testing.postgres import TemporaryPostgres, find_server
from batchcore_anthropic.testing import AnthropicEmulator
from batchcore_openai.testing import OpenAIEmulator

OPENAI_KEY = "sk-e2e-openai-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


class SteppingClock:
    """Emulator time that stands still while ``frozen``, and otherwise moves ``step`` seconds
    each time it is read: batches advance as fast as a client polls them, with no real waiting
    and whatever process the client runs in."""

    def __init__(self, start: float | None = None, step: float = 30.0) -> None:
        # Starts at the real time: the CLI processes read the real clock, and a batch their
        # provider looks for after a lost create must not seem to predate the attempt.
        self._now = time.time() if start is None else start
        self.step = step
        self.frozen = False
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            if not self.frozen:
                self._now += self.step
            return self._now


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """A real PostgreSQL server on loopback for the session (a new database per test:
    ``postgres_server.new_url()``)."""
    _, why = find_server()
    if why:
        if os.environ.get("BATCHCORE_REQUIRE_POSTGRES"):
            pytest.fail(f"BATCHCORE_REQUIRE_POSTGRES is set but {why}")
        pytest.skip(f"no PostgreSQL server can be started here: {why}")
    with TemporaryPostgres(base=os.environ.get("TMPDIR") or "/tmp") as server:
        yield server


@pytest.fixture
def shared(
    postgres_server: TemporaryPostgres, cli_env: dict[str, str]
) -> tuple[dict[str, str], str]:
    """The CLI's environment on a new PostgreSQL database, and that database's URL."""
    url = postgres_server.new_url()
    return {**cli_env, "BATCHCORE_STORE": url}, url


def start_worker(env: dict[str, str], home: Path, *args: str) -> subprocess.Popen[str]:
    """A ``batchcore worker`` with a home and temp dir of its own: it shares nothing but the
    store."""
    home.mkdir(parents=True, exist_ok=True)
    own = {**env, "BATCHCORE_HOME": str(home), "TMPDIR": str(home)}
    return subprocess.Popen(
        batchcore("worker", "--lease", "3", *args),
        env=own,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(workers: list[subprocess.Popen[str]]) -> None:
    """Wait for burst workers to end; each must end well."""
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err


@pytest.fixture(autouse=True)
def _working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in the test's own directory: `batchcore run` without -o writes
    JOB.results.jsonl into the working directory, which must never be the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def openai_emulator(clock: SteppingClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(clock=clock, api_key=OPENAI_KEY) as emulator:
        yield emulator


@pytest.fixture
def anthropic_emulator(clock: SteppingClock) -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli_env(home: Path, openai_emulator: OpenAIEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(
        {
            "BATCHCORE_HOME": str(home),
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_emulator.url + "/v1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def batchcore(*args: str) -> list[str]:
    """The command line of the installed CLI, run by this interpreter."""
    return [sys.executable, "-m", "batchcore.cli", *args]


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """A CLI process left running, its output piped (the job id is its first stdout line)."""
    return subprocess.Popen(
        batchcore(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        batchcore(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def write_requests(
    path: Path, count: int, *, model: str = "gpt-4o-mini", prefix: str = "req"
) -> Path:
    with open(path, "wb") as handle:
        for i in range(count):
            handle.write(
                orjson.dumps(
                    {
                        "custom_id": f"{prefix}-{i}",
                        "model": model,
                        "max_tokens": 16,
                        "messages": [
                            {"role": "user", "content": f"Question {i}: what is {i} + {i}?"}
                        ],
                    }
                )
                + b"\n"
            )
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 60, what: str = "condition"
) -> None:
    """Wait for another process to reach a point (polls; the emulators never wait on time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
