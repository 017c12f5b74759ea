"""The vendor's batch queue: OpenAI and Azure cap the prompt tokens enqueued per model. The
provider declares the cap, the emulator enforces one the way the vendor does (the batch is
created, then fails validation with ``token_limit_exceeded``), and a big job run by batchcore's
runner waits for room instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai_support import API_KEY, MODEL, chat

from batchcore.jobs import BatchRunner, JobInfo, PollSchedule
from batchcore.models import BatchRequest, BatchState
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock, SleepRecorder
from batchcore.testing.emulation import QueueCap, input_tokens
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

PER_BATCH = 4
BATCHES = 13
DEPLOYMENT = "batch-gpt4o"


def _requests(model: str = MODEL, count: int = PER_BATCH * BATCHES) -> list[BatchRequest]:
    # Texts of one length: every batch holds the same tokens.
    return [
        chat(f"q{i:03d}", f"question number {i:03d} about the weather", model=model)
        for i in range(count)
    ]


def _one_batch(provider: OpenAIBatchProvider, model: str) -> tuple[int, int]:
    """The input tokens of one batch of the job: (the runner's estimate, as the payload carries
    it; what the emulator counts, as its answers' usage counts them)."""
    [payload] = provider.prepare_payloads(_requests(model, PER_BATCH))
    assert payload.path is not None
    lines = payload.path.read_bytes().splitlines()
    emulated = sum(input_tokens(orjson.loads(line)["body"]) for line in lines)
    payload.discard()
    return payload.tokens, emulated


@pytest.fixture
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def queue_emulator(clock: ManualClock, flavour: str) -> Iterator[OpenAIEmulator]:
    azure = flavour == "azure"
    with OpenAIEmulator(
        clock=clock, api_key=API_KEY, azure=azure, deployments=[DEPLOYMENT] if azure else None
    ) as running:
        yield running


@pytest.fixture
def build(
    queue_emulator: OpenAIEmulator, flavour: str, clock: ManualClock
) -> Iterator[Callable[..., OpenAIBatchProvider]]:
    built: list[OpenAIBatchProvider] = []

    def make(**config: Any) -> OpenAIBatchProvider:
        provider: OpenAIBatchProvider
        if flavour == "azure":
            provider = AzureOpenAIBatchProvider(
                config={
                    "azure_endpoint": queue_emulator.url,
                    "api_key": API_KEY,
                    "deployments": [DEPLOYMENT],
                    **config,
                }
            )
        else:
            provider = OpenAIBatchProvider(
                config={"base_url": queue_emulator.url + "/v1", "api_key": API_KEY, **config}
            )
        provider.sleep, provider.clock = SleepRecorder(clock), clock.now
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()


def _model(flavour: str) -> str:
    return DEPLOYMENT if flavour == "azure" else MODEL


def _run(
    tmp_path: Path, clock: ManualClock, provider: OpenAIBatchProvider, model: str
) -> tuple[BatchRunner, JobInfo]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(type(provider))
    runner = BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        max_attempts=1,  # a request charged an attempt for capacity would fail
        poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        clock=clock.now,
        sleep=clock.sleep,
    )
    return runner, runner.run(provider, _requests(model))


def _each_once(runner: BatchRunner, info: JobInfo) -> None:
    ids = [result.custom_id for result in runner.results(info.id)]
    assert Counter(ids) == Counter(f"q{i:03d}" for i in range(PER_BATCH * BATCHES))
    assert info.all_succeeded


# -- what the providers declare -------------------------------------------------------------


def test_openai_declares_its_tier_1_queue_limit_per_model() -> None:
    provider = OpenAIBatchProvider(config={"api_key": API_KEY})
    declared = provider.QUEUE_LIMIT
    assert declared is not None and declared.per_model and declared.measure == "tokens"
    # OpenAI's published tier-1 caps: a small model is not held to a big one's cap.
    assert provider.queue_limit("gpt-4o") == (declared, 90_000)
    assert provider.queue_limit("gpt-4o-2024-08-06") == (declared, 90_000)
    assert provider.queue_limit("gpt-4o-mini") == (declared, 2_000_000)
    assert provider.queue_limit("gpt-4o-mini-2024-07-18") == (declared, 2_000_000)
    assert provider.queue_limit("text-embedding-3-small") == (declared, 3_000_000)
    assert provider.queue_limit("a-model-the-table-does-not-name") == (declared, 90_000)
    assert provider.queue_limit() == (declared, 90_000)
    # The configured cap wins for every model.
    raised = OpenAIBatchProvider(config={"api_key": API_KEY, "max_enqueued_tokens": 5_000_000})
    assert raised.queue_limit("gpt-4o") == (declared, 5_000_000)
    assert raised.queue_limit("gpt-4o-mini") == (declared, 5_000_000)
    assert frozenset({"token_limit_exceeded"}) == provider.CAPACITY_ERROR_CODES


def test_azure_declares_its_quota_of_enqueued_tokens_per_deployment() -> None:
    provider = AzureOpenAIBatchProvider(config={"api_key": API_KEY, "deployments": ["d"]})
    limit = provider.queue_limit()
    assert limit is not None and limit[0].per_model and limit[1] == 5_000_000
    assert frozenset({"token_limit_exceeded"}) == provider.CAPACITY_ERROR_CODES


def test_payloads_carry_the_runners_estimate_of_their_tokens() -> None:
    provider = OpenAIBatchProvider(config={"api_key": API_KEY})
    estimate, emulated = _one_batch(provider, MODEL)
    assert estimate >= emulated > 0


# -- the emulator's queue -------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["openai", "azure"], indirect=True)
def test_a_batch_over_the_cap_is_created_then_fails_validation(
    queue_emulator: OpenAIEmulator,
    build: Callable[..., OpenAIBatchProvider],
    flavour: str,
) -> None:
    provider = build()
    model = _model(flavour)
    _, tokens = _one_batch(provider, model)
    queue_emulator.queue.cap = QueueCap(limit=2 * tokens)
    handles = []
    for start in range(0, 3 * PER_BATCH, PER_BATCH):
        [payload] = provider.prepare_payloads(
            _requests(model, 3 * PER_BATCH)[start : start + PER_BATCH]
        )
        handles.append(provider.submit(payload))
    assert queue_emulator.batch_count() == 3  # the vendor creates the third batch all the same
    first, _, third = (provider.poll_status(h) for h in handles)
    assert first.state is BatchState.VALIDATING and third.state is BatchState.VALIDATING

    queue_emulator.advance(60)  # validation ends
    statuses = [provider.poll_status(h) for h in handles]
    assert [s.state for s in statuses] == [
        BatchState.IN_PROGRESS,
        BatchState.IN_PROGRESS,
        BatchState.FAILED,
    ]
    [error] = statuses[2].errors
    assert error.code == "token_limit_exceeded"
    assert f"{2 * tokens:,}" in (error.message or "")
    if flavour == "azure":
        assert f"for the deployment '{model}'" in (error.message or "")
    else:
        assert f"Enqueued token limit reached for {model}" in (error.message or "")
    assert (statuses[2].total, statuses[2].completed, statuses[2].failed) == (0, 0, 0)
    assert queue_emulator.queue.refused == 1
    assert queue_emulator.queue.high_water == 2 * tokens


@pytest.mark.parametrize("flavour", ["openai"], indirect=True)
def test_room_comes_back_when_a_batch_ends_and_models_queue_apart(
    queue_emulator: OpenAIEmulator, build: Callable[..., OpenAIBatchProvider]
) -> None:
    provider = build()
    _, tokens = _one_batch(provider, MODEL)
    queue_emulator.queue.cap = QueueCap(limit=tokens)

    def submit(model: str, offset: int) -> Any:
        requests = _requests(model, offset + PER_BATCH)[offset:]
        [payload] = provider.prepare_payloads(requests)
        return provider.submit(payload)

    held = submit(MODEL, 0)
    other_model = submit("gpt-4.1-mini", 0)  # its own queue
    queue_emulator.advance(3600)  # both have ended
    assert provider.poll_status(held).state is BatchState.COMPLETED
    assert provider.poll_status(other_model).state is BatchState.COMPLETED
    after = submit(MODEL, PER_BATCH)  # the first one's room is free again
    queue_emulator.advance(3600)
    assert provider.poll_status(after).state is BatchState.COMPLETED
    assert queue_emulator.queue.refused == 0


# -- a big job through the runner -------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["openai", "azure"], indirect=True)
def test_a_big_job_is_admitted_three_batches_at_a_time_and_never_refused(
    tmp_path: Path,
    clock: ManualClock,
    queue_emulator: OpenAIEmulator,
    build: Callable[..., OpenAIBatchProvider],
    flavour: str,
) -> None:
    model = _model(flavour)
    probe = build(max_requests_per_batch=PER_BATCH)
    estimate, emulated = _one_batch(probe, model)
    # The runner's estimate never counts fewer tokens than the vendor does, so a job kept
    # under the declared cap by the estimate stays under the vendor's.
    assert estimate >= emulated
    queue_emulator.queue.cap = QueueCap(limit=3 * emulated)  # the vendor takes 3 batches
    provider = build(max_requests_per_batch=PER_BATCH, max_enqueued_tokens=3 * estimate)

    runner, info = _run(tmp_path, clock, provider, model)

    _each_once(runner, info)
    assert queue_emulator.batch_count() == BATCHES  # none refused, none sent twice
    assert queue_emulator.queue.refused == 0
    assert queue_emulator.queue.high_water == 3 * emulated  # three at a time, no more
    kinds = [event.kind for event in runner.store.events(info.id)]
    assert "queue_full" not in kinds


@pytest.mark.parametrize("flavour", ["openai", "azure"], indirect=True)
def test_a_cap_declared_too_high_is_learned_from_the_refusals(
    tmp_path: Path,
    clock: ManualClock,
    queue_emulator: OpenAIEmulator,
    build: Callable[..., OpenAIBatchProvider],
    flavour: str,
) -> None:
    model = _model(flavour)
    probe = build(max_requests_per_batch=PER_BATCH)
    estimate, emulated = _one_batch(probe, model)
    queue_emulator.queue.cap = QueueCap(limit=3 * emulated)
    # The account's real cap is lower than the one declared: the vendor refuses batches.
    provider = build(max_requests_per_batch=PER_BATCH, max_enqueued_tokens=100 * estimate)

    runner, info = _run(tmp_path, clock, provider, model)

    _each_once(runner, info)  # with max_attempts=1: no refusal cost an attempt
    assert queue_emulator.queue.refused > 0
    assert queue_emulator.batch_count() == BATCHES + queue_emulator.queue.refused
    kinds = [event.kind for event in runner.store.events(info.id)]
    assert "queue_full" in kinds
    learned = runner.store.queue_cap(provider.PROVIDER_NAME, model)
    assert learned is not None and learned < 100 * estimate
