"""Jobs through their lives against the emulator: states, counts, results of every kind, and the
partial results of jobs that timed out, were cancelled or failed."""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import requests
from conftest import EMBED_MODEL, MODEL, chat

from batchcore.plugin import (
    BatchHandle,
    BatchRequest,
    BatchResult,
    BatchState,
    ResultStatus,
)
from batchcore.testing import Fault, ManualClock
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import FAIL_MARKER, MistralEmulator


def submit(provider: MistralBatchProvider, batch: Sequence[BatchRequest]) -> BatchHandle:
    [payload] = provider.prepare_payloads(batch)
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


def results(provider: MistralBatchProvider, handle: BatchHandle) -> dict[str, BatchResult]:
    return {r.custom_id: r for r in provider.fetch_results(handle)}


@pytest.fixture
def slow(clock: ManualClock) -> Iterator[MistralEmulator]:
    """An emulator whose jobs run for four hours."""
    with MistralEmulator(clock=clock, running_seconds=4 * 3600.0) as running:
        yield running


def _provider_for(
    emulator: MistralEmulator, clock: ManualClock, **config: Any
) -> MistralBatchProvider:
    provider = MistralBatchProvider(
        config={"base_url": emulator.url, "api_key": emulator.api_key, **config}
    )
    provider.clock = clock.now
    provider.sleep = clock.sleep
    return provider


def test_a_job_goes_queued_running_success(
    provider: MistralBatchProvider, emulator: MistralEmulator, clock: ManualClock
) -> None:
    handle = submit(provider, [chat(f"r{i}") for i in range(6)])
    queued = provider.poll_status(handle)
    assert (queued.state, queued.raw_status) == (BatchState.VALIDATING, "QUEUED")
    assert queued.total == 6 and queued.completed == 0
    assert queued.expires_at is not None
    assert (queued.expires_at - handle.created_at).total_seconds() == 24 * 3600
    clock.advance(60 + 300)
    running = provider.poll_status(handle)
    assert (running.state, running.raw_status) == (BatchState.IN_PROGRESS, "RUNNING")
    assert 0 < running.completed < 6
    clock.advance(3600)
    done = provider.poll_status(handle)
    assert (done.state, done.raw_status) == (BatchState.COMPLETED, "SUCCESS")
    assert (done.total, done.completed, done.failed) == (6, 6, 0)
    assert done.ended_at is not None and done.timestamps["started_at"] < done.ended_at
    found = results(provider, handle)
    assert sorted(found) == [f"r{i}" for i in range(6)]
    assert all(r.ok and r.text == "Echo: Say hello" for r in found.values())
    assert all(r.usage is not None and r.usage.total_tokens for r in found.values())


def test_the_create_names_the_file_model_endpoint_metadata_and_timeout(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator
) -> None:
    provider = make_provider(timeout_hours=5)
    submit(provider, [chat("a")])
    [create] = emulator.created_job_requests
    assert create["model"] == MODEL
    assert create["endpoint"] == "/v1/chat/completions"
    assert create["timeout_hours"] == 5
    assert create["metadata"]["batchcore_timeout_hours"] == "5"
    assert create["metadata"]["batchcore_idempotency_key"].startswith("batchcore-")
    [file_id] = create["input_files"]
    assert "requests" not in create
    [upload] = emulator.uploads
    assert upload.fields == {"purpose": "batch"}
    assert upload.filename is not None and upload.filename.endswith(".jsonl")
    line = json.loads(emulator.file_content(file_id))
    assert line["custom_id"] == "a" and line["body"]["model"] == MODEL


def test_inline_mode_sends_the_requests_in_the_create(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    clock: ManualClock,
) -> None:
    provider = make_provider(input_mode="inline")
    handle = submit(provider, [chat("a"), chat("b")])
    [create] = emulator.created_job_requests
    assert [r["custom_id"] for r in create["requests"]] == ["a", "b"]
    assert "input_files" not in create and emulator.uploads == []
    clock.advance(3600)
    assert sorted(results(provider, handle)) == ["a", "b"]


def test_auto_mode_uploads_what_is_too_big_to_send_inline(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator
) -> None:
    provider = make_provider(input_mode="auto")
    submit(provider, [chat("small")])
    assert emulator.uploads == []
    big = provider.prepare_payloads([chat(f"b{i}") for i in range(10_000)])
    try:
        [payload] = big
        provider.submit(payload)
    finally:
        for payload in big:
            payload.discard()
    assert len(emulator.uploads) == 1
    assert "input_files" in emulator.created_job_requests[-1]


def test_inline_mode_splits_under_ten_thousand(tmp_path: Any) -> None:
    provider = MistralBatchProvider(config={"input_mode": "inline", "workdir": str(tmp_path)})
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(10_000)])
    try:
        assert sorted(p.request_count for p in payloads) == [1, 9_999]
    finally:
        for payload in payloads:
            payload.discard()


def test_timeout_exceeded_keeps_finished_results_and_expires_the_rest(
    slow: MistralEmulator, clock: ManualClock
) -> None:
    provider = _provider_for(slow, clock, timeout_hours=1)
    handle = submit(provider, [chat(f"r{i}") for i in range(8)])
    clock.advance(2 * 3600)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.EXPIRED, "TIMEOUT_EXCEEDED")
    found = results(provider, handle)
    assert sorted(found) == [f"r{i}" for i in range(8)]
    finished = [r for r in found.values() if r.ok]
    expired = [r for r in found.values() if r.status is ResultStatus.EXPIRED]
    assert finished and expired and len(finished) + len(expired) == 8
    assert len(finished) == status.completed
    assert all(r.retryable and r.error.code == "batch_expired" for r in expired)


def test_a_cancelled_job_returns_what_finished_and_the_rest_cancelled(
    slow: MistralEmulator, clock: ManualClock
) -> None:
    provider = _provider_for(slow, clock)
    handle = submit(provider, [chat(f"r{i}") for i in range(8)])
    clock.advance(60 + 2 * 3600)  # half of them are done
    asked = provider.cancel(handle)
    assert (asked.state, asked.raw_status) == (BatchState.CANCELLING, "CANCELLATION_REQUESTED")
    clock.advance(60)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.CANCELLED, "CANCELLED")
    found = results(provider, handle)
    kinds = sorted(r.status.value for r in found.values())
    assert kinds == ["cancelled"] * 4 + ["succeeded"] * 4
    assert all(r.retryable for r in found.values() if not r.ok)


def test_a_failed_job_reports_each_request_not_retryable(
    provider: MistralBatchProvider, emulator: MistralEmulator, clock: ManualClock
) -> None:
    # A file the provider would never write: its second line is not a request.
    headers = {"authorization": f"Bearer {emulator.api_key}"}
    content = b'{"custom_id": "a", "body": {"messages": []}}\n{"custom_id": "b", "oops": 1}\n'
    upload = requests.post(
        f"{emulator.url}/v1/files",
        headers=headers,
        files={"file": ("in.jsonl", content)},
        data={"purpose": "batch"},
        timeout=10,
    ).json()
    job = requests.post(
        f"{emulator.url}/v1/batch/jobs",
        headers=headers,
        json={"input_files": [upload["id"]], "model": MODEL, "endpoint": "/v1/chat/completions"},
        timeout=10,
    ).json()
    handle = BatchHandle(provider="mistral", batch_id=job["id"], created_at=job["created_at"])
    clock.advance(120)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.FAILED, "FAILED")
    assert status.errors and "oops" in status.errors[0].message
    found = results(provider, handle)
    assert sorted(found) == ["a", "b"]  # read back from the input file
    for result in found.values():
        assert result.error.code == "batch_failed" and not result.retryable


def test_per_request_failures_are_results(
    provider: MistralBatchProvider, clock: ManualClock
) -> None:
    batch = [
        chat("ok"),
        chat("busy", f"{FAIL_MARKER.format(503)} x"),
        chat("throttled", f"{FAIL_MARKER.format(429)} x"),
        chat("invalid", f"{FAIL_MARKER.format(400)} x"),
        chat("coded", f"{FAIL_MARKER.format('internal_error')} x"),
        chat("lost", f"{FAIL_MARKER.format('drop')} x"),
    ]
    handle = submit(provider, batch)
    clock.advance(3600)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED
    assert (status.completed, status.failed) == (1, 5)
    found = results(provider, handle)
    assert found["ok"].ok
    assert (found["busy"].error.status_code, found["busy"].retryable) == (503, True)
    assert (found["throttled"].error.code, found["throttled"].retryable) == ("rate_limited", True)
    assert (found["invalid"].error.status_code, found["invalid"].retryable) == (400, False)
    assert (found["coded"].error.code, found["coded"].retryable) == ("internal_error", True)
    assert (found["lost"].error.code, found["lost"].retryable) == ("result_missing", True)


def test_answers_of_every_kind(provider: MistralBatchProvider, clock: ManualClock) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["name", "year"],
    }
    tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    batch = [
        chat(
            "typed",
            "A wine",
            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
        ),
        chat("tool", "Weather in Paris?", tools=[tool], tool_choice="required"),
        chat("think", "Why is the sky blue", reasoning_effort="high", max_tokens=100),
        chat("cut", "one two three four five six", max_tokens=3),
    ]
    handle = submit(provider, batch)
    clock.advance(3600)
    found = results(provider, handle)
    typed = json.loads(found["typed"].text)
    assert set(typed) == {"name", "year"} and isinstance(typed["year"], int)
    call = found["tool"].response["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "weather"
    assert set(json.loads(call["function"]["arguments"])) == {"city"}
    # Mistral answers a tool call with empty content: the text is that, empty.
    assert found["tool"].text == "" and found["tool"].ok
    thought = found["think"].response["choices"][0]["message"]["content"]
    assert [chunk["type"] for chunk in thought] == ["thinking", "text"]
    assert found["think"].text == "Echo: Why is the sky blue"
    assert found["cut"].response["choices"][0]["finish_reason"] == "length"
    assert found["cut"].ok and found["cut"].text == "Echo: one two"


def test_embeddings(provider: MistralBatchProvider, clock: ManualClock) -> None:
    batch = [
        BatchRequest.from_dict(
            {
                "custom_id": f"e{i}",
                "model": EMBED_MODEL,
                "endpoint": "/v1/embeddings",
                "params": {"input": ["hello world", "bye"], "dimensions": 4},
            }
        )
        for i in range(2)
    ]
    handle = submit(provider, batch)
    clock.advance(3600)
    found = results(provider, handle)
    data = found["e0"].response["data"]
    assert len(data) == 2 and len(data[0]["embedding"]) == 4
    assert found["e0"].usage.input_tokens == 3 and found["e0"].text is None


def test_results_kept_with_the_job_are_read_from_outputs(clock: ManualClock) -> None:
    with MistralEmulator(clock=clock, result_files=False) as emulator:
        provider = _provider_for(emulator, clock, input_mode="inline")
        handle = submit(provider, [chat("a"), chat("b", f"{FAIL_MARKER.format(500)} x")])
        clock.advance(3600)
        status = provider.poll_status(handle)
        assert status.raw.get("output_file") is None
        found = results(provider, handle)
    assert found["a"].ok and found["a"].text == "Echo: Say hello"
    assert found["b"].error.status_code == 500 and found["b"].retryable


def test_an_unknown_status_keeps_polling(
    provider: MistralBatchProvider, emulator: MistralEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    handle = submit(provider, [chat("a")])
    job = {**emulator.job(handle.batch_id), "status": "PAUSED"}
    emulator.inject("GET", "/v1/batch/jobs/{job_id}", Fault.status(200, body=job))
    with caplog.at_level(logging.WARNING):
        status = provider.poll_status(handle)
    assert status.state is BatchState.IN_PROGRESS and not status.is_terminal
    assert status.raw_status == "PAUSED" and "PAUSED" in caplog.text


def test_results_stream_with_flat_memory(
    provider: MistralBatchProvider, emulator: MistralEmulator, clock: ManualClock
) -> None:
    padding = "word " * 150  # each answer echoes it: about 1 KB per result line
    handle = submit(
        provider, [chat(f"r{i}", f"{padding}{i}", max_tokens=400) for i in range(8_000)]
    )
    clock.advance(3600)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED
    size = len(emulator.file_content(status.raw["output_file"]))
    assert size > 8_000_000
    tracemalloc.start()
    try:
        count = sum(1 for result in provider.fetch_results(handle) if result.ok)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8_000
    assert peak < size / 3, f"fetching {size} bytes of results peaked at {peak} bytes"


def test_the_first_result_comes_before_the_last_is_downloaded(
    provider: MistralBatchProvider, emulator: MistralEmulator, clock: ManualClock
) -> None:
    handle = submit(provider, [chat(f"r{i}") for i in range(3)])
    clock.advance(3600)
    stream = provider.fetch_results(handle)
    first = next(stream)
    assert first.ok
    # What remains comes from the same open download: the file can go meanwhile.
    output_file = provider.poll_status(handle).raw["output_file"]
    assert output_file
    rest = list(stream)
    assert len(rest) == 2
