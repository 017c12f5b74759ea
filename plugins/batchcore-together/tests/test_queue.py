"""Together's queue of enqueued tokens per model (30B): the provider declares it, the emulator
enforces one (a batch over it is created, then fails validation with an error that speaks of
the enqueued token limit), the provider reads that error as a capacity refusal, and a big job
run by batchcore's runner waits for room instead of failing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from together_support import MODEL, MakeProvider, chat

from batchcore import BatchRequest, BatchState
from batchcore.jobs import BatchRunner, JobInfo, PollSchedule
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap, input_tokens
from batchcore_together._mapping import batch_status
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator

PER_BATCH = 4
BATCHES = 13


def _requests(count: int = PER_BATCH * BATCHES, model: str = MODEL) -> list[BatchRequest]:
    # Texts of one length: every batch holds the same tokens.
    return [
        chat(f"q{i:03d}", f"question number {i:03d} about the weather", model=model)
        for i in range(count)
    ]


def _one_batch(provider: TogetherBatchProvider) -> tuple[int, int]:
    """The input tokens of one batch of the job: (the runner's estimate; what the emulator
    counts, as its answers' usage counts them)."""
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    assert payload.path is not None
    lines = payload.path.read_bytes().splitlines()
    emulated = sum(input_tokens(orjson.loads(line)["body"]) for line in lines)
    payload.discard()
    return payload.tokens, emulated


def _run(
    tmp_path: Path, clock: ManualClock, provider: TogetherBatchProvider
) -> tuple[BatchRunner, JobInfo]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(TogetherBatchProvider)
    runner = BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        max_attempts=1,  # a request charged an attempt for capacity would fail
        poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        clock=clock.now,
        sleep=clock.sleep,
    )
    return runner, runner.run(provider, _requests())


def _each_once(runner: BatchRunner, info: JobInfo) -> None:
    assert info.all_succeeded
    ids = Counter(result.custom_id for result in runner.results(info.id))
    assert ids == Counter(f"q{i:03d}" for i in range(PER_BATCH * BATCHES))


def test_a_failed_batch_that_speaks_of_the_queue_is_a_capacity_refusal() -> None:
    refused = batch_status(
        {"id": "b1", "status": "FAILED", "error": "Enqueued token limit reached for model m"},
        total=4,
    )
    assert [e.code for e in refused.errors] == ["enqueued_limit_exceeded"]
    assert {"enqueued_limit_exceeded"} == TogetherBatchProvider.CAPACITY_ERROR_CODES
    other = batch_status({"id": "b2", "status": "FAILED", "error": "line 3: bad JSON"}, total=4)
    assert [e.code for e in other.errors] == [None]


def test_a_batch_over_the_cap_is_created_then_fails_validation(
    emulator: TogetherEmulator, make_provider: MakeProvider
) -> None:
    provider = make_provider(max_requests_per_batch=PER_BATCH)
    _, tokens = _one_batch(provider)
    emulator.queue.cap = QueueCap(limit=2 * tokens)
    handles = [provider.submit(p) for p in provider.prepare_payloads(_requests(3 * PER_BATCH))]
    [other_model] = provider.prepare_payloads(
        _requests(PER_BATCH, "Qwen/Qwen2.5-7B-Instruct-Turbo")
    )
    handles.append(provider.submit(other_model))  # another model's queue has room
    assert emulator.batch_count() == 4

    emulator.advance(30)  # validation ends
    statuses = [provider.poll_status(h) for h in handles]
    assert [s.state for s in statuses] == [
        BatchState.IN_PROGRESS,
        BatchState.IN_PROGRESS,
        BatchState.FAILED,
        BatchState.IN_PROGRESS,
    ]
    [error] = statuses[2].errors
    assert error.code == "enqueued_limit_exceeded"
    assert f"Enqueued token limit reached for model {MODEL}" in (error.message or "")
    assert emulator.queue.refused == 1 and emulator.queue.high_water == 2 * tokens


def test_a_big_job_is_admitted_three_batches_at_a_time_and_never_refused(
    tmp_path: Path, clock: ManualClock, emulator: TogetherEmulator, make_provider: MakeProvider
) -> None:
    estimate, emulated = _one_batch(make_provider(max_requests_per_batch=PER_BATCH))
    # The runner's estimate never counts fewer tokens than the vendor does, so a job kept
    # under the declared cap by the estimate stays under the vendor's.
    assert estimate >= emulated
    emulator.queue.cap = QueueCap(limit=3 * emulated)  # the vendor takes 3 batches
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_enqueued_tokens=3 * estimate)

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)
    assert emulator.batch_count() == BATCHES
    assert emulator.queue.refused == 0
    assert emulator.queue.high_water == 3 * emulated  # three at a time, no more
    assert "queue_full" not in [event.kind for event in runner.store.events(info.id)]


def test_a_cap_declared_too_high_is_learned_from_the_refusals(
    tmp_path: Path, clock: ManualClock, emulator: TogetherEmulator, make_provider: MakeProvider
) -> None:
    estimate, emulated = _one_batch(make_provider(max_requests_per_batch=PER_BATCH))
    emulator.queue.cap = QueueCap(limit=3 * emulated)
    # The account's real cap is lower than the one declared: the vendor refuses batches.
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_enqueued_tokens=100 * estimate)

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)  # with max_attempts=1: no refusal cost an attempt
    assert emulator.queue.refused > 0
    assert emulator.batch_count() == BATCHES + emulator.queue.refused
    assert "queue_full" in [event.kind for event in runner.store.events(info.id)]
    learned = runner.store.queue_cap(provider.PROVIDER_NAME, MODEL)
    assert learned is not None and learned < 100 * estimate
