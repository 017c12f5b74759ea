"""The processing queue: Anthropic caps the batch requests waiting to be processed, across all
models (100,000 at its lowest tier). The provider declares the cap, the emulator refuses a
create over it with a 429 that speaks of the processing queue, the provider reads that 429 as
a full queue (and any other 429 as a rate limit), and a big job run by batchcore's runner
waits for room instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchcore.jobs import BatchRunner, JobInfo, PollSchedule
from batchcore.plugin import BatchRequest, QueueFullError, QueueLimit, RateLimitError
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator, error_fault

PER_BATCH = 4
BATCHES = 13
MODEL = "claude-sonnet-4-5"

Factory = Callable[..., AnthropicBatchProvider]


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


def _queue(requests: int) -> QueueCap:
    return QueueCap(limit=requests, measure="requests", per_model=False)


def _run(
    tmp_path: Path,
    clock: ManualClock,
    provider: AnthropicBatchProvider,
    options: dict[str, Any] | None = None,
) -> tuple[BatchRunner, JobInfo]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(AnthropicBatchProvider)
    runner = BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        max_attempts=1,  # a request charged an attempt for capacity would fail
        poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        clock=clock.now,
        sleep=clock.sleep,
    )
    job_id = runner.create(provider, _requests(), options=options)
    return runner, runner.drive(job_id, provider=provider)


def _each_once(runner: BatchRunner, info: JobInfo) -> None:
    assert info.all_succeeded
    ids = Counter(result.custom_id for result in runner.results(info.id))
    assert ids == Counter(f"q{i:03d}" for i in range(PER_BATCH * BATCHES))


def test_the_provider_declares_the_lowest_tiers_processing_queue() -> None:
    provider = AnthropicBatchProvider(config={"api_key": "k"})
    declared = QueueLimit(measure="requests", per_model=False, default=100_000)
    assert provider.queue_limit() == (declared, 100_000)
    raised = AnthropicBatchProvider(config={"api_key": "k", "max_enqueued_requests": 200_000})
    assert raised.queue_limit() == (declared, 200_000)
    assert frozenset() == provider.CAPACITY_ERROR_CODES  # refused at create, never failed


def test_a_create_over_the_queue_is_refused_as_a_full_queue(
    emulator: AnthropicEmulator, make_provider: Factory, clock: ManualClock
) -> None:
    emulator.queue.cap = _queue(2 * PER_BATCH)
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_retries=0)
    first, second, third = provider.prepare_payloads(_requests(3 * PER_BATCH))
    provider.submit(first)
    provider.submit(second)
    with pytest.raises(QueueFullError, match="processing queue") as refused:
        provider.submit(third)
    assert refused.value.status_code == 429 and refused.value.code == "rate_limit_error"
    assert emulator.batch_count() == 2  # the refused batch was never created
    assert (emulator.queue.refused, emulator.queue.high_water) == (1, 2 * PER_BATCH)

    # A request leaves the queue once processed: half of each batch is done half-way.
    clock.advance(emulator.processing_seconds / 2)
    provider.submit(third)
    assert emulator.batch_count() == 3


def test_a_rate_limit_on_create_stays_a_rate_limit(
    emulator: AnthropicEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_retries=0)
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    emulator.inject(
        "POST",
        "/v1/messages/batches",
        error_fault(
            429, message="Number of request tokens has exceeded your per-minute rate limit"
        ),
    )
    with pytest.raises(RateLimitError) as refused:
        provider.submit(payload)
    assert not isinstance(refused.value, QueueFullError)


def test_a_big_job_is_admitted_three_batches_at_a_time_and_never_refused(
    tmp_path: Path, clock: ManualClock, emulator: AnthropicEmulator, make_provider: Factory
) -> None:
    emulator.queue.cap = _queue(3 * PER_BATCH)
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_enqueued_requests=3 * PER_BATCH)

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)
    assert emulator.batch_count() == BATCHES
    assert emulator.queue.refused == 0
    assert emulator.queue.high_water == 3 * PER_BATCH  # three at a time, no more
    assert "queue_full" not in [event.kind for event in runner.store.events(info.id)]


def test_a_queue_declared_too_big_is_learned_from_the_refusals(
    tmp_path: Path, clock: ManualClock, emulator: AnthropicEmulator, make_provider: Factory
) -> None:
    emulator.queue.cap = _queue(3 * PER_BATCH)
    provider = make_provider(
        max_requests_per_batch=PER_BATCH, max_enqueued_requests=100 * PER_BATCH
    )

    # One create at a time. A batch refused at create keeps the time of its attempt, so the
    # next submit of it first looks for a batch that attempt may have made; a Message Batch is
    # only recognised by its size and time, so a batch another submit is creating at that
    # instant, of the same size, could be taken for it.
    runner, info = _run(tmp_path, clock, provider, {"submit_concurrency": 1})

    _each_once(runner, info)  # with max_attempts=1: no refusal cost an attempt
    assert emulator.queue.refused > 0
    assert emulator.batch_count() == BATCHES  # refused creates make no batch
    assert "queue_full" in [event.kind for event in runner.store.events(info.id)]
    learned = runner.store.queue_cap(provider.PROVIDER_NAME, "*")
    assert learned is not None and learned <= 3 * PER_BATCH
