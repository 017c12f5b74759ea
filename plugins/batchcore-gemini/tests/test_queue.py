"""The queue of enqueued tokens: Gemini caps the tokens of the active batch jobs per model. The
provider declares the cap, the emulator refuses a create over it with a 429
``RESOURCE_EXHAUSTED`` that speaks of batch enqueued tokens, the provider reads that refusal as
a full queue (and any other 429 as a rate limit), and a big job run by batchcore's runner waits
for room instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import MODEL

from batchcore.jobs import BatchRunner, JobInfo, PollSchedule
from batchcore.plugin import BatchRequest, QueueFullError, QueueLimit, RateLimitError
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap
from batchcore_gemini._emulation import input_tokens
from batchcore_gemini._mapping import speaks_of_queue
from batchcore_gemini.provider import GeminiBatchProvider
from batchcore_gemini.testing import GeminiEmulator, error_fault

PER_BATCH = 4
BATCHES = 13

Factory = Callable[..., GeminiBatchProvider]


def _requests(count: int = PER_BATCH * BATCHES, model: str = MODEL) -> list[BatchRequest]:
    # Texts of one length: every batch holds the same tokens.
    return [
        BatchRequest.from_dict(
            {
                "custom_id": f"q{i:03d}",
                "model": model,
                "messages": [
                    {"role": "user", "content": f"question number {i:03d} about the weather"}
                ],
                "params": {"max_tokens": 16},
            }
        )
        for i in range(count)
    ]


def _one_batch(provider: GeminiBatchProvider) -> tuple[int, int]:
    """The input tokens of one batch of the job: (the runner's estimate; what the emulator
    counts, as its answers' ``promptTokenCount`` counts them)."""
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    assert payload.path is not None
    lines = payload.path.read_bytes().splitlines()
    emulated = sum(input_tokens(orjson.loads(line)["request"]) for line in lines)
    payload.discard()
    return payload.tokens, emulated


def _run(
    tmp_path: Path, clock: ManualClock, provider: GeminiBatchProvider
) -> tuple[BatchRunner, JobInfo]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(GeminiBatchProvider)
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


def test_the_provider_declares_the_smallest_tier_1_queue() -> None:
    provider = GeminiBatchProvider(config={"api_key": "k"})
    declared = QueueLimit(measure="tokens", per_model=True, default=2_000_000)
    assert provider.queue_limit() == (declared, 2_000_000)
    raised = GeminiBatchProvider(config={"api_key": "k", "max_enqueued_tokens": 3_000_000})
    assert raised.queue_limit() == (declared, 3_000_000)
    assert frozenset() == provider.CAPACITY_ERROR_CODES  # refused at create, never failed


def test_a_quota_error_is_about_the_queue_only_when_it_says_so() -> None:
    generic = "You exceeded your current quota, please check your plan and billing details."
    assert not speaks_of_queue({"code": 429, "message": generic})
    per_minute = {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute"}],
    }
    assert not speaks_of_queue({"code": 429, "message": generic, "details": [per_minute]})
    enqueued = {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": "BatchEnqueuedTokensPerModelPerTier"}],
    }
    assert speaks_of_queue({"code": 429, "message": generic, "details": [enqueued]})
    assert speaks_of_queue({"code": 429, "message": "Batch enqueued tokens limit exceeded"})


def test_a_create_over_the_queue_is_refused_as_a_full_queue(
    emulator: GeminiEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_retries=0)
    _, tokens = _one_batch(provider)
    emulator.queue.cap = QueueCap(limit=2 * tokens)
    first, second, third = provider.prepare_payloads(_requests(3 * PER_BATCH))
    provider.submit(first)
    provider.submit(second)
    with pytest.raises(QueueFullError, match="enqueued tokens") as refused:
        provider.submit(third)
    assert refused.value.status_code == 429 and refused.value.code == "RESOURCE_EXHAUSTED"
    assert emulator.batch_count() == 2  # the refused batch was never created
    assert (emulator.queue.refused, emulator.queue.high_water) == (1, 2 * tokens)
    [other_model] = provider.prepare_payloads(_requests(PER_BATCH, "gemini-2.5-pro"))
    provider.submit(other_model)  # another model's queue has room

    emulator.advance(3600)  # the batches have ended: their tokens leave the queue
    provider.submit(third)
    assert emulator.batch_count() == 4


def test_another_resource_exhausted_on_create_stays_a_rate_limit(
    emulator: GeminiEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_retries=0)
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    emulator.inject(
        "POST",
        "/{version}/models/{target}",
        error_fault(429, message="You exceeded your current quota, please check your plan."),
    )
    with pytest.raises(RateLimitError) as refused:
        provider.submit(payload)
    assert not isinstance(refused.value, QueueFullError)


def test_a_big_job_is_admitted_three_batches_at_a_time_and_never_refused(
    tmp_path: Path, clock: ManualClock, emulator: GeminiEmulator, make_provider: Factory
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
    tmp_path: Path, clock: ManualClock, emulator: GeminiEmulator, make_provider: Factory
) -> None:
    estimate, emulated = _one_batch(make_provider(max_requests_per_batch=PER_BATCH))
    emulator.queue.cap = QueueCap(limit=3 * emulated)
    # The project's real cap is lower than the one declared: the vendor refuses creates.
    provider = make_provider(max_requests_per_batch=PER_BATCH, max_enqueued_tokens=100 * estimate)

    runner, info = _run(tmp_path, clock, provider)

    _each_once(runner, info)  # with max_attempts=1: no refusal cost an attempt
    assert emulator.queue.refused > 0
    assert emulator.batch_count() == BATCHES  # refused creates make no batch
    assert "queue_full" in [event.kind for event in runner.store.events(info.id)]
    learned = runner.store.queue_cap(provider.PROVIDER_NAME, MODEL)
    assert learned is not None and learned < 100 * estimate
