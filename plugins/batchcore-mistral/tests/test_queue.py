"""The workspace's limit of pending requests (1M): the provider declares it, the emulator
refuses a job create over it with a 429, the provider reads that 429 as a full queue (and any
other 429 as a rate limit), and a big job run by batchcore's runner waits for room instead of
failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MODEL

from batchcore.jobs import BatchRunner, JobInfo, PollSchedule
from batchcore.plugin import BatchRequest, QueueFullError, RateLimitError
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import MistralEmulator

PER_BATCH = 4
BATCHES = 13

Factory = Callable[..., MistralBatchProvider]


def _requests(count: int = PER_BATCH * BATCHES, model: str = MODEL) -> list[BatchRequest]:
    return [
        BatchRequest.from_dict(
            {
                "custom_id": f"q{i:03d}",
                "model": model,
                "messages": [{"role": "user", "content": f"question number {i:03d}"}],
                "params": {"max_tokens": 16},
            }
        )
        for i in range(count)
    ]


def _workspace_cap(requests: int) -> QueueCap:
    return QueueCap(limit=requests, measure="requests", per_model=False)


def _run(
    tmp_path: Path, clock: ManualClock, provider: MistralBatchProvider
) -> tuple[BatchRunner, JobInfo]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(MistralBatchProvider)
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


def test_a_create_over_the_limit_is_refused_as_a_full_queue(
    emulator: MistralEmulator, make_provider: Factory
) -> None:
    emulator.queue.cap = _workspace_cap(2 * PER_BATCH)
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_retries=0)
    # The workspace's queue holds every model's jobs.
    first, second = provider.prepare_payloads(_requests(2 * PER_BATCH))
    provider.submit(first)
    [other_model] = provider.prepare_payloads(_requests(PER_BATCH, "open-mistral-nemo"))
    provider.submit(second)
    with pytest.raises(QueueFullError, match="pending requests") as refused:
        provider.submit(other_model)
    assert refused.value.status_code == 429 and refused.value.retryable
    assert emulator.batch_count() == 2  # the refused job was never created
    assert (emulator.queue.refused, emulator.queue.high_water) == (1, 2 * PER_BATCH)

    emulator.advance(3600)  # both jobs end: their requests leave the queue
    provider.submit(other_model)
    assert emulator.batch_count() == 3


def test_another_429_on_create_stays_a_rate_limit(
    emulator: MistralEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_retries=0)
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    emulator.inject_fault("capacity", method="POST", route="/v1/batch/jobs")
    with pytest.raises(RateLimitError) as refused:
        provider.submit(payload)
    assert not isinstance(refused.value, QueueFullError)


def test_a_big_job_is_admitted_three_jobs_at_a_time_and_never_refused(
    tmp_path: Path, clock: ManualClock, emulator: MistralEmulator, make_provider: Factory
) -> None:
    emulator.queue.cap = _workspace_cap(3 * PER_BATCH)
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_enqueued_requests=3 * PER_BATCH)

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)
    assert emulator.batch_count() == BATCHES
    assert emulator.queue.refused == 0
    assert emulator.queue.high_water == 3 * PER_BATCH  # three at a time, no more
    assert "queue_full" not in [event.kind for event in runner.store.events(info.id)]


def test_a_limit_declared_too_high_is_learned_from_the_refusals(
    tmp_path: Path, clock: ManualClock, emulator: MistralEmulator, make_provider: Factory
) -> None:
    emulator.queue.cap = _workspace_cap(3 * PER_BATCH)
    provider = make_provider(
        max_requests_per_batch=PER_BATCH, max_enqueued_requests=100 * PER_BATCH
    )

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)  # with max_attempts=1: no refusal cost an attempt
    assert emulator.queue.refused > 0
    assert emulator.batch_count() == BATCHES  # refused creates make no job
    assert "queue_full" in [event.kind for event in runner.store.events(info.id)]
    learned = runner.store.queue_cap(provider.PROVIDER_NAME, "*")
    assert learned is not None and learned <= 3 * PER_BATCH
