"""The runner in-process against the emulators, through the real SDK and `requests`, on one
ManualClock: splitting, per-request failures, expiry with resubmission, cancel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OPENAI_KEY

from batchcore import BatchRequest
from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.testing import ManualClock
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import DEFAULT_API_KEY, AnthropicEmulator
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import FAIL_MARKER, OpenAIEmulator

DAY = 86_400.0


@pytest.fixture
def manual() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def runner(tmp_path: Path, manual: ManualClock) -> BatchRunner:
    return BatchRunner(
        tmp_path / "jobs.sqlite3",
        clock=manual.now,
        sleep=manual.sleep,
        poll=PollSchedule(min_interval=30, max_interval=3600, jitter=0),
        # One create at a time: the emulators seed each batch's completion order with its id,
        # and ids go to batches in the order their creates arrive.
        submit_concurrency=1,
    )


def chat(cid: str, text: str, model: str = "gpt-4o-mini") -> BatchRequest:
    return BatchRequest(
        custom_id=cid,
        model=model,
        params={"max_tokens": 16},
        messages=[{"role": "user", "content": text}],
    )


def statuses(runner: BatchRunner, job_id: str) -> dict[str, str]:
    return {r.custom_id: r.status.value for r in runner.results(job_id)}


@pytest.fixture
def openai(manual: ManualClock) -> Iterator[tuple[OpenAIEmulator, OpenAIBatchProvider]]:
    with OpenAIEmulator(clock=manual, api_key=OPENAI_KEY, processing_seconds=2 * DAY) as emu:
        provider = OpenAIBatchProvider(
            config={
                "base_url": emu.url + "/v1",
                "api_key": OPENAI_KEY,
                "max_requests_per_batch": 10,
            }
        )
        provider.sleep = manual.sleep
        yield emu, provider


def test_openai_split_fail_and_expire(
    runner: BatchRunner, openai: tuple[OpenAIEmulator, OpenAIBatchProvider]
) -> None:
    emulator, provider = openai
    requests = [chat(f"r{i}", f"question {i}") for i in range(24)]
    requests[3] = chat("r3", f"{FAIL_MARKER.format(400)} bad request")
    requests[5] = chat("r5", f"{FAIL_MARKER.format(500)} flaky")
    info = runner.run(provider, requests)
    assert info.state == "finished"
    results = statuses(runner, info.id)
    assert list(results) == [f"r{i}" for i in range(24)]
    assert results["r3"] == "errored"  # a 400 inside the batch is final at once
    assert results["r5"] == "errored"  # a 500 is retried, then final after max_attempts
    counts = Counter(results.values())
    assert counts["succeeded"] + counts["expired"] == 22
    # Processing takes two days: each round expires half-done and the rest is resubmitted.
    rounds = Counter(b.round for b in info.batches)
    assert rounds[1] == 3 and max(rounds) == 3
    assert len(emulator.batches()) == len(info.batches)
    assert all(b["status"] == "expired" for b in emulator.batches())


def test_openai_cancel_keeps_paid_results(
    runner: BatchRunner, manual: ManualClock, openai: tuple[OpenAIEmulator, OpenAIBatchProvider]
) -> None:
    emulator, provider = openai
    job_id = runner.submit(provider, [chat(f"c{i}", f"q {i}") for i in range(8)])
    manual.advance(60 + DAY / 2)  # a quarter of the work is done
    runner.cancel(job_id, provider=provider)
    info = runner.resume(job_id, provider=provider)
    assert info.state == "cancelled"
    counts = Counter(statuses(runner, job_id).values())
    assert counts["succeeded"] >= 1 and counts["cancelled"] >= 1
    assert sum(counts.values()) == 8
    assert len(emulator.batches()) == 1


@pytest.fixture
def anthropic(manual: ManualClock) -> Iterator[tuple[AnthropicEmulator, AnthropicBatchProvider]]:
    with AnthropicEmulator(clock=manual, processing_seconds=2 * DAY) as emu:
        provider = AnthropicBatchProvider(config={"base_url": emu.url, "api_key": DEFAULT_API_KEY})
        provider.sleep = manual.sleep
        provider.clock = manual.now
        yield emu, provider


def test_anthropic_mixed_models_expiry_and_retry(
    runner: BatchRunner, anthropic: tuple[AnthropicEmulator, AnthropicBatchProvider]
) -> None:
    emulator, provider = anthropic
    requests = [
        chat(f"a{i}", f"question {i}", model="claude-sonnet-4-5" if i % 2 else "claude-haiku-4-5")
        for i in range(10)
    ]
    info = runner.run(provider, requests)
    results = statuses(runner, info.id)
    assert list(results) == [f"a{i}" for i in range(10)]
    assert set(results.values()) <= {"succeeded", "expired"}
    assert Counter(b.round for b in info.batches)[1] == 1  # mixed models share one batch
    assert len(emulator.batch_ids()) == len(info.batches) == 3


def test_anthropic_cancel(
    runner: BatchRunner,
    manual: ManualClock,
    anthropic: tuple[AnthropicEmulator, AnthropicBatchProvider],
) -> None:
    _, provider = anthropic
    job_id = runner.submit(
        provider, [chat(f"k{i}", f"q {i}", model="claude-haiku-4-5") for i in range(6)]
    )
    manual.advance(DAY / 2)  # a quarter of the work is done
    runner.cancel(job_id, provider=provider)
    info = runner.resume(job_id, provider=provider)
    assert info.state == "cancelled"
    counts = Counter(statuses(runner, job_id).values())
    assert counts["succeeded"] >= 1 and counts["cancelled"] >= 1 and sum(counts.values()) == 6
