"""Several `batchcore worker` processes on one PostgreSQL store and the OpenAI emulator: a job
of thousands of requests in 10+ batches, one worker killed with SIGKILL mid-way (and one killed
while creating a batch); the others finish it. Every custom_id comes back exactly once and the
vendor holds exactly the batches the job needed."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SteppingClock, batchcore, read_results, run_cli, wait_for, write_requests

from batchcore.jobs import JobStore
from batchcore.testing import Fault
from batchcore.testing.postgres import TemporaryPostgres, find_server
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.05:0.2")


@pytest.fixture(scope="module")
def postgres() -> Iterator[TemporaryPostgres]:
    _, why = find_server()
    if why:
        if os.environ.get("BATCHCORE_REQUIRE_POSTGRES"):
            pytest.fail(f"BATCHCORE_REQUIRE_POSTGRES is set but {why}")
        pytest.skip(f"no PostgreSQL server can be started here: {why}")
    with TemporaryPostgres(base=os.environ.get("TMPDIR") or "/tmp") as server:
        yield server


def start_worker(env: dict[str, str], home: Path, *args: str) -> subprocess.Popen[str]:
    """A worker with a home and temp dir of its own: it shares nothing but the store."""
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
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err


@pytest.fixture
def shared(
    postgres: TemporaryPostgres, cli_env: dict[str, str], tmp_path: Path
) -> tuple[dict[str, str], str]:
    url = postgres.new_url()
    return {**cli_env, "BATCHCORE_STORE": url}, url


def test_three_workers_one_killed_finish_a_big_job_exactly_once(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
) -> None:
    env, url = shared
    source = write_requests(tmp_path / "in.jsonl", 3000)
    done = run_cli(
        env,
        "submit",
        str(source),
        "--provider",
        "openai",
        *POLL,
        "--config",
        "max_requests_per_batch=250",
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert "for `batchcore worker` to drive" in done.stderr
    assert len(openai_emulator.batches()) == 0  # submit only records and prepares
    clock.frozen = True  # batches stay in progress until the victim holds some
    workers = [start_worker(env, tmp_path / f"w{n}", "--burst") for n in range(3)]

    def held_by_victim() -> bool:
        with JobStore(url, readonly=True) as store:
            return any(
                b.claimed_by and b.claimed_by.endswith(f":{workers[0].pid}")
                for b in store.batches(job_id)
            )

    wait_for(lambda: len(openai_emulator.batches()) >= 6, timeout=120, what="batches")
    wait_for(held_by_victim, timeout=120, what="a claim by the first worker")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=30)
    clock.frozen = False
    # Its claims expire after the claim lease; the others take its steps over.
    finish(workers[1:])
    out = tmp_path / "out.jsonl"
    assert run_cli(env, "results", job_id, "-o", str(out)).returncode == 0
    ids = [r["custom_id"] for r in read_results(out)]
    assert len(ids) == len(set(ids)) == 3000
    assert all(r["status"] == "succeeded" for r in read_results(out))
    assert len(openai_emulator.batches()) == 12  # exactly the batches the job needed
    status = run_cli(env, "status", job_id)
    assert "finished" in status.stdout


def test_a_worker_killed_while_creating_leaves_no_second_batch(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    openai_emulator: OpenAIEmulator,
) -> None:
    env, _ = shared
    source = write_requests(tmp_path / "in.jsonl", 40)
    done = run_cli(
        env,
        "submit",
        str(source),
        "--provider",
        "openai",
        *POLL,
        "--config",
        "max_requests_per_batch=20",
    )
    job_id = done.stdout.splitlines()[0]
    openai_emulator.server.inject("POST", "/v1/batches", Fault.lose_response())
    victim = start_worker(env, tmp_path / "victim")
    wait_for(lambda: len(openai_emulator.batches()) >= 1, what="the lost create")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    finish([start_worker(env, tmp_path / f"w{n}", "--burst") for n in range(2)])
    out = tmp_path / "out.jsonl"
    run_cli(env, "results", job_id, "-o", str(out))
    assert sorted(r["custom_id"] for r in read_results(out)) == sorted(
        f"req-{i}" for i in range(40)
    )
    assert len(openai_emulator.batches()) == 2
