"""kill -9 of a real `batchcore run` at each phase, then `batchcore resume`: every custom_id
comes back exactly once and the emulator holds exactly one batch per payload."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SteppingClock, read_results, run_cli, start_cli, wait_for, write_requests

from batchcore.testing import Fault
from batchcore_openai.testing import OpenAIEmulator

FILES = "/v1/files"
BATCHES = "/v1/batches"
BATCH = "/v1/batches/{batch_id}"
CONTENT = "/v1/files/{file_id}/content"
POLL = ("--poll-interval", "0.02:0.05")


def stored_results(home: Path) -> int:
    path = home / "jobs.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def after_upload(emulator: OpenAIEmulator, clock: SteppingClock, home: Path) -> Callable[[], bool]:
    emulator.server.inject("POST", FILES, Fault.lose_response())
    return lambda: emulator.server.count("POST", FILES) >= 1


def after_create(emulator: OpenAIEmulator, clock: SteppingClock, home: Path) -> Callable[[], bool]:
    # The batch is created, but its handle never reaches the store: the costly moment.
    emulator.server.inject("POST", BATCHES, Fault.lose_response())
    return lambda: len(emulator.batches()) >= 1


def while_polling(emulator: OpenAIEmulator, clock: SteppingClock, home: Path) -> Callable[[], bool]:
    clock.frozen = True
    return lambda: emulator.server.count("GET", BATCH) >= 3


def while_fetching(
    emulator: OpenAIEmulator, clock: SteppingClock, home: Path
) -> Callable[[], bool]:
    emulator.server.inject("GET", CONTENT, Fault.stall(keep_bytes=1_200_000))
    return lambda: stored_results(home) >= 1000


@pytest.mark.parametrize(
    ("phase", "count", "per_batch"),
    [
        (after_upload, 30, 20),
        (after_create, 30, 20),
        (while_polling, 30, 20),
        (while_fetching, 2500, 50_000),
    ],
    ids=["after-upload", "after-create", "while-polling", "while-fetching"],
)
def test_kill_then_resume_loses_nothing_and_pays_once(
    phase: Callable[[OpenAIEmulator, SteppingClock, Path], Callable[[], bool]],
    count: int,
    per_batch: int,
    tmp_path: Path,
    home: Path,
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
    cli_env: dict[str, str],
) -> None:
    source = write_requests(tmp_path / "in.jsonl", count)
    out = tmp_path / "out.jsonl"
    reached = phase(openai_emulator, clock, home)
    proc = start_cli(
        cli_env,
        "run",
        str(source),
        "--provider",
        "openai",
        "-o",
        str(out),
        *POLL,
        "--config",
        f"max_requests_per_batch={per_batch}",
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        assert job_id.startswith("job-"), proc.stderr.read() if proc.stderr else ""
        wait_for(reached, what=phase.__name__)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait(timeout=30)
    assert proc.returncode == -9
    assert not out.exists()

    clock.frozen = False
    resumed = run_cli(cli_env, "resume", job_id, "-o", str(out), *POLL)
    assert resumed.returncode == 0, resumed.stderr

    results = read_results(out)
    ids = [r["custom_id"] for r in results]
    assert len(ids) == len(set(ids)) == count
    assert set(ids) == {f"req-{i}" for i in range(count)}
    assert all(r["status"] == "succeeded" for r in results)
    payloads = -(-count // per_batch)
    assert len(openai_emulator.batches()) == payloads
