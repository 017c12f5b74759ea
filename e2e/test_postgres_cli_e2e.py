"""The command line against a shared PostgreSQL store and the OpenAI emulator, as a team uses
it: `run` drives its own job; `wait` only watches while a worker drives (no API key, no lease);
`cancel` from a machine without a key is carried out by the workers; `results` from anywhere.
And one driver per job, really: a second `resume` is refused while the first is alive inside a
long stalled download, and takes over only once the first is dead, saying so in the job's
events."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

from conftest import (
    SteppingClock,
    read_results,
    run_cli,
    start_cli,
    start_worker,
    wait_for,
    write_requests,
)

from batchcore.jobs import JobStore
from batchcore.testing import Fault
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.05:0.2")
CONTENT = "/v1/files/{file_id}/content"


def keyless(env: dict[str, str]) -> dict[str, str]:
    """The same environment on a machine with no API key."""
    return {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}


def submit(env: dict[str, str], source: Path, per_batch: int) -> str:
    done = run_cli(
        env,
        "submit",
        str(source),
        "--provider",
        "openai",
        *POLL,
        "--config",
        f"max_requests_per_batch={per_batch}",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0]


def test_run_drives_its_own_job_and_results_reads_it_from_anywhere(
    tmp_path: Path, shared: tuple[dict[str, str], str], openai_emulator: OpenAIEmulator
) -> None:
    env, _ = shared
    source = write_requests(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    done = run_cli(
        env,
        "run",
        str(source),
        "--provider",
        "openai",
        "-o",
        str(out),
        *POLL,
        "--config",
        "max_requests_per_batch=12",
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert [r["custom_id"] for r in read_results(out)] == [f"req-{i}" for i in range(30)]
    assert len(openai_emulator.batches()) == 3
    again = tmp_path / "again.jsonl"
    read = run_cli(keyless(env), "results", job_id, "-o", str(again))
    assert read.returncode == 0, read.stderr
    assert again.read_bytes() == out.read_bytes()
    (job,) = json.loads(run_cli(keyless(env), "jobs", "--json").stdout)
    assert (job["id"], job["state"], job["owner"]) == (job_id, "finished", None)


def test_wait_watches_while_a_worker_drives_without_key_or_lease(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
) -> None:
    env, url = shared
    job_id = submit(env, write_requests(tmp_path / "in.jsonl", 40), per_batch=15)
    out = tmp_path / "out.jsonl"
    watcher = start_cli(keyless(env), "wait", job_id, "-o", str(out), *POLL)
    assert watcher.stderr is not None
    first = watcher.stderr.readline()
    assert f"job {job_id}: watching it in" in first and "no API key needed" in first
    with JobStore(url, readonly=True) as store:
        assert store.job(job_id).owner is None  # watching holds nothing
    clock.frozen = True  # batches stay in progress while the worker holds the job
    worker = start_worker(env, tmp_path / "w1", "--burst")
    wait_for(lambda: len(openai_emulator.batches()) == 3, what="the worker's batches")
    assert watcher.poll() is None  # still watching
    clock.frozen = False
    _, rest = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, first + rest
    assert f"40 results written to {out}" in rest and "finished" in rest
    assert [r["custom_id"] for r in read_results(out)] == [f"req-{i}" for i in range(40)]
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    with JobStore(url, readonly=True) as store:
        assert store.job(job_id).owner is None
        kinds = [e.kind for e in store.events(job_id)]
    assert "takeover" not in kinds
    assert len(openai_emulator.batches()) == 3


def test_cancel_without_a_key_is_carried_out_by_the_workers(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
) -> None:
    env, _ = shared
    clock.frozen = True  # the batches stay in progress until cancelled
    job_id = submit(env, write_requests(tmp_path / "in.jsonl", 30), per_batch=15)
    worker = start_worker(env, tmp_path / "w1")
    try:
        wait_for(lambda: len(openai_emulator.batches()) == 2, what="the job's batches")
        done = run_cli(keyless(env), "cancel", job_id)
        assert done.returncode == 0, done.stderr
        assert "recorded" in done.stderr and "workers driving it cancel" in done.stderr
        # Time moves again only once the worker has sent both cancels: a batch whose clock ran
        # first would answer some requests, which the vendor keeps (and bills) on a cancel.
        wait_for(
            lambda: {b["status"] for b in openai_emulator.batches()} <= {"cancelling", "cancelled"},
            what="the worker's cancels",
        )
        clock.frozen = False
        out = tmp_path / "out.jsonl"
        waited = run_cli(keyless(env), "wait", job_id, "-o", str(out), *POLL)
        assert waited.returncode == 1, waited.stderr  # finished, not every request succeeded
        assert "cancelled" in waited.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    assert {b["status"] for b in openai_emulator.batches()} <= {"cancelled", "cancelling"}
    results = read_results(out)
    assert sorted(r["custom_id"] for r in results) == sorted(f"req-{i}" for i in range(30))
    assert {r["status"] for r in results} == {"cancelled"}
    listed = run_cli(keyless(env), "results", job_id)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 30
    assert len(openai_emulator.batches()) == 2


def test_one_driver_per_job_through_a_stalled_download(
    tmp_path: Path, shared: tuple[dict[str, str], str], openai_emulator: OpenAIEmulator
) -> None:
    """A driver stuck in one long download keeps its 2-second lease by its heartbeat: a second
    `resume` is refused (exit 5) long after the lease would have run out. Only when the first
    is killed does a `resume` take over, and the takeover is a job event."""
    env, url = shared
    job_id = submit(env, write_requests(tmp_path / "in.jsonl", 20), per_batch=100)
    openai_emulator.server.inject("GET", CONTENT, Fault.stall(keep_bytes=100))
    first = start_cli(env, "resume", job_id, "--lease", "2", *POLL)
    try:
        wait_for(lambda: openai_emulator.server.count("GET", CONTENT) >= 1, what="the download")

        def lease_until() -> float:
            with JobStore(url, readonly=True) as store:
                return store.job(job_id).lease_until or 0.0

        stalled_at = lease_until()
        # Two whole leases later the first still holds the job: renewed while stalled.
        wait_for(lambda: lease_until() >= stalled_at + 4, what="lease renewals")
        second = run_cli(env, "resume", job_id, *POLL)
        assert second.returncode == 5, second.stderr
        assert "another process" in second.stderr and str(first.pid) in second.stderr
        assert first.poll() is None
        with JobStore(url, readonly=True) as store:
            assert "takeover" not in [e.kind for e in store.events(job_id)]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    out = tmp_path / "out.jsonl"
    third = run_cli(env, "resume", job_id, "-o", str(out), *POLL)
    assert third.returncode == 0, third.stderr
    assert sorted(r["custom_id"] for r in read_results(out)) == sorted(
        f"req-{i}" for i in range(20)
    )
    assert len(openai_emulator.batches()) == 1
    with JobStore(url, readonly=True) as store:
        takeovers = [e for e in store.events(job_id) if e.kind == "takeover"]
    (takeover,) = takeovers
    victim = f"{socket.gethostname()}:{first.pid}"
    # Dead on this host, and by then silent past its short lease too: either reason is true.
    assert takeover.detail in (
        f"took over from {victim}: it is no longer running",
        f"took over from {victim}: its lease ran out",
    )
    assert takeover.actor is not None and takeover.actor != victim
