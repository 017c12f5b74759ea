"""The batch queue: Groq documents no queue limit, so the provider declares none; should Groq
fail batches for capacity the OpenAI way (``token_limit_exceeded``), a big job run by
batchcore's runner still finishes, its refused batches resubmitted without losing attempts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from groq_support import API_KEY, MODEL, Factory, chat

from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.models import BatchRequest, BatchState
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap, input_tokens
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import GroqEmulator

PER_BATCH = 4
BATCHES = 13


def _requests(count: int = PER_BATCH * BATCHES) -> list[BatchRequest]:
    return [chat(f"q{i:03d}", f"question number {i:03d} about the weather") for i in range(count)]


def _emulated_tokens_of_one_batch(provider: GroqBatchProvider) -> int:
    [payload] = provider.prepare_payloads(_requests(PER_BATCH))
    assert payload.path is not None
    lines = payload.path.read_bytes().splitlines()
    payload.discard()
    return sum(input_tokens(orjson.loads(line)["body"]) for line in lines)


def test_groq_declares_no_queue_limit_but_knows_openais_capacity_code() -> None:
    provider = GroqBatchProvider(config={"api_key": API_KEY, "max_enqueued_tokens": 1000})
    assert GroqBatchProvider.QUEUE_LIMIT is None
    assert provider.queue_limit() is None  # nothing to hold batches back for
    assert "token_limit_exceeded" in provider.CAPACITY_ERROR_CODES


def test_the_emulator_has_no_queue_limit_unless_asked(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_requests_per_batch=PER_BATCH)
    handles = [provider.submit(p) for p in provider.prepare_payloads(_requests())]
    emulator.advance(60)
    assert {provider.poll_status(h).state for h in handles} == {BatchState.IN_PROGRESS}
    assert emulator.queue.cap is None and emulator.queue.refused == 0


def test_a_batch_over_an_emulated_cap_fails_with_openais_code(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_requests_per_batch=PER_BATCH)
    tokens = _emulated_tokens_of_one_batch(provider)
    emulator.queue.cap = QueueCap(limit=tokens)
    first, second = (
        provider.submit(p) for p in provider.prepare_payloads(_requests(2 * PER_BATCH))
    )
    emulator.advance(60)
    assert provider.poll_status(first).state is BatchState.IN_PROGRESS
    refused = provider.poll_status(second)
    assert refused.state is BatchState.FAILED
    assert [e.code for e in refused.errors] == ["token_limit_exceeded"]
    assert f"Enqueued token limit reached for {MODEL}" in (refused.errors[0].message or "")


def test_a_big_job_finishes_through_capacity_refusals_without_losing_attempts(
    tmp_path: Path, clock: ManualClock, emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_requests_per_batch=PER_BATCH)
    emulator.queue.cap = QueueCap(limit=3 * _emulated_tokens_of_one_batch(provider))
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(GroqBatchProvider)
    runner = BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        max_attempts=1,  # a request charged an attempt for capacity would fail
        poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        clock=clock.now,
        sleep=clock.sleep,
    )

    info = runner.run(provider, _requests())

    assert info.all_succeeded
    ids = Counter(result.custom_id for result in runner.results(info.id))
    assert ids == Counter(f"q{i:03d}" for i in range(PER_BATCH * BATCHES))
    assert emulator.queue.refused > 0  # the vendor refused batches: nothing held them back
    assert emulator.batch_count() == BATCHES + emulator.queue.refused
    assert "queue_full" in [event.kind for event in runner.store.events(info.id)]
