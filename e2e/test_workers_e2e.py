"""Several `batchcore worker` processes on one PostgreSQL store and the OpenAI emulator: a job
of thousands of requests in 10+ batches, one worker killed with SIGKILL mid-way (and one killed
while creating a batch); the others finish it. Every custom_id comes back exactly once and the
vendor holds exactly the batches the job needed."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from conftest import (
    SteppingClock,
    finish,
    read_results,
    run_cli,
    start_worker,
    wait_for,
    write_requests,
)

from batchcore.jobs import JobStore
from batchcore.testing import Fault
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.05:0.2")


def test_three_workers_one_killed_finish_a_big_job_exactly_once(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    home: Path,
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
    # The submitter's payload files are its own scratch: the workers (other homes, other
    # machines) rebuild every payload from the store.
    payloads = home / "payloads"
    assert list(payloads.glob("batchcore-openai-*")), "submit wrote no payload files here"
    shutil.rmtree(payloads)
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
