"""The provider against the emulator over real HTTP: upload, create, poll, fetch, cancel, and
the ends a batch can come to."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator

import attrs
import pytest
from together_support import MODEL, MakeProvider, assert_valid, chat

from batchcore import (
    BatchHandle,
    BatchState,
    ProviderPermanentError,
    ResultsNotReadyError,
    ResultStatus,
)
from batchcore.testing import Fault, ManualClock
from batchcore.testing.emulation import FAIL_MARKER
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator, sandbox

RETRIEVE = ("GET", "/v1/batches/{batch_id}")
CREATE = ("POST", "/v1/batches")


def submit(provider: TogetherBatchProvider, count: int = 3, prefix: str = "r") -> BatchHandle:
    [payload] = provider.prepare_payloads([chat(f"{prefix}{i}") for i in range(count)])
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


def test_submit_uploads_then_creates(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 3)
    [upload] = emulator.uploads
    assert upload["fields"]["purpose"] == "batch-api"
    assert upload["fields"]["file_type"] == "jsonl"
    assert upload["fields"]["file_name"].endswith(".jsonl")
    [create] = emulator.created_batch_requests
    assert create == {
        "endpoint": "/v1/chat/completions",
        "input_file_id": handle.metadata["input_file_id"],
    }
    assert_valid("CreateBatchRequest", create)
    assert emulator.file_content(create["input_file_id"]).count(b"\n") == 3
    assert handle.metadata["request_count"] == 3
    assert handle.metadata["model"] == MODEL
    assert "warning" not in handle.metadata
    assert BatchHandle.from_dict(json.loads(json.dumps(handle.to_dict()))) == handle


def test_a_create_warning_is_logged_and_kept_on_the_handle(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.create_warning = "completion_window is fixed at 24h"
    with caplog.at_level(logging.WARNING, logger="batchcore_together"):
        handle = submit(provider, 2)
    assert handle.metadata["warning"] == "completion_window is fixed at 24h"
    assert "completion_window is fixed at 24h" in caplog.text
    assert handle.batch_id in caplog.text


def test_a_create_that_made_no_job_says_why(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    emulator.inject(
        *CREATE,
        Fault.status(201, body={"job": None, "warning": "insufficient balance for batch"}),
    )
    with pytest.raises(ProviderPermanentError, match="insufficient balance for batch"):
        submit(provider, 1)
    assert emulator.batch_count() == 0


def test_poll_reads_progress_and_ends_completed(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 4)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status, status.total) == (
        BatchState.VALIDATING,
        "VALIDATING",
        4,
    )
    emulator.advance(30 + 300)
    status = provider.poll_status(handle)
    assert status.state is BatchState.IN_PROGRESS
    assert status.raw is not None and status.raw["progress"] == 50.0
    emulator.advance(400)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED
    assert status.ended_at is not None
    assert status.expires_at is not None and status.created_at is not None


def test_both_files_are_read_and_order_is_not_trusted(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    good = [chat(f"ok{i}") for i in range(12)]
    bad = [
        chat("rate", f"busy {FAIL_MARKER.format('429')}"),
        chat("invalid", f"bad {FAIL_MARKER.format('invalid_request')}"),
    ]
    [payload] = provider.prepare_payloads([*good, *bad])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(3600)
    job = emulator.batch(handle.batch_id)
    assert job["output_file_id"] and job["error_file_id"]
    results = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in results) == sorted(r.custom_id for r in [*good, *bad])
    by_id = {r.custom_id: r for r in results}
    assert all(by_id[r.custom_id].ok for r in good)
    assert by_id["ok3"].text == "Echo: Hi ok3"
    assert by_id["rate"].error is not None and by_id["rate"].error.code == "rate_limit_exceeded"
    assert by_id["rate"].retryable
    assert by_id["invalid"].error is not None and not by_id["invalid"].retryable
    assert [r.custom_id for r in results][:12] != [r.custom_id for r in good]


def test_results_stream_and_can_be_read_again(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 2_000)
    emulator.advance(3600)
    stream = provider.fetch_results(handle)
    assert isinstance(stream, Generator)
    first = [next(stream) for _ in range(5)]
    stream.close()  # stopping early closes the download
    again = list(provider.fetch_results(handle))
    assert len(again) == 2_000 == len({r.custom_id for r in again})
    assert all(r.ok for r in again)
    assert {r.custom_id for r in first} <= {r.custom_id for r in again}


def test_results_before_the_end_are_not_ready(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 1)
    with pytest.raises(ResultsNotReadyError, match="VALIDATING"):
        provider.fetch_results(handle)


def test_an_expired_batch_returns_what_finished_and_the_rest_expired(
    clock: ManualClock,
) -> None:
    with TogetherEmulator(clock=clock, processing_seconds=1000, window_seconds=500) as emulator:
        provider = TogetherBatchProvider(
            config={"base_url": emulator.url + "/v1", "api_key": emulator.api_key}
        )
        handle = submit(provider, 10)
        emulator.advance(600)
        status = provider.poll_status(handle)
        assert (status.state, status.raw_status) == (BatchState.EXPIRED, "EXPIRED")
        results = {r.custom_id: r for r in provider.fetch_results(handle)}
        provider.close()
    assert len(results) == 10
    finished = [r for r in results.values() if r.ok]
    expired = [r for r in results.values() if r.status is ResultStatus.EXPIRED]
    assert finished and expired and len(finished) + len(expired) == 10
    assert all(r.retryable for r in expired)


def test_a_cancelled_batch_returns_what_finished_and_the_rest_cancelled(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 10)
    emulator.advance(30 + 300)  # about half done
    status = provider.cancel(handle)
    assert (status.state, status.raw_status) == (BatchState.CANCELLED, "CANCELLED")
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert len(results) == 10
    statuses = {r.status for r in results.values()}
    assert statuses == {ResultStatus.SUCCEEDED, ResultStatus.CANCELLED}
    assert all(r.retryable for r in results.values() if r.status is ResultStatus.CANCELLED)


def test_cancelling_an_ended_batch_returns_its_final_status(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 2)
    emulator.advance(3600)
    assert provider.cancel(handle).state is BatchState.COMPLETED


def test_a_batch_failing_validation_reports_why(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    # provider_params pass unchecked; Together's validation refuses the unknown field.
    typo = attrs.evolve(chat("typo"), provider_params={"together": {"top_kk": 5}})
    [payload] = provider.prepare_payloads([chat("fine"), typo])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(60)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.FAILED, "FAILED")
    [reason] = status.errors
    assert "top_kk" in reason.message and "line 2" in reason.message
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert set(results) == {"fine", "typo"}
    for result in results.values():
        assert result.error is not None
        assert result.error.code == "batch_failed"
        assert "top_kk" in result.error.message
        assert not result.retryable  # the batch would fail the same way again


def test_a_request_missing_from_the_results_is_reported(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    [payload] = provider.prepare_payloads(
        [chat("kept"), chat("lost", f"x {FAIL_MARKER.format('drop')}")]
    )
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(3600)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["kept"].ok
    assert results["lost"].error is not None
    assert results["lost"].error.code == "result_missing"
    assert results["lost"].retryable


def test_an_unknown_status_keeps_polling(
    provider: TogetherBatchProvider, emulator: TogetherEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    handle = submit(provider, 1)
    queued = {**emulator.batch(handle.batch_id), "status": "QUEUED"}
    emulator.inject(*RETRIEVE, Fault.status(200, body=queued), times=2)
    with caplog.at_level(logging.WARNING, logger="batchcore_together"):
        status = provider.poll_status(handle)
        assert (status.state, status.raw_status) == (BatchState.IN_PROGRESS, "QUEUED")
        with pytest.raises(ResultsNotReadyError):
            provider.fetch_results(handle)
    assert "QUEUED" in caplog.text
    emulator.advance(3600)
    assert provider.poll_status(handle).state is BatchState.COMPLETED


def test_a_wrapped_retrieve_answer_is_read_too(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submit(provider, 1)
    wrapped = {"job": emulator.batch(handle.batch_id), "warning": "slow queue"}
    emulator.inject(*RETRIEVE, Fault.status(200, body=wrapped))
    assert provider.poll_status(handle).raw_status == "VALIDATING"


def test_a_line_over_together_s_size_fails_alone(clock: ManualClock) -> None:
    with TogetherEmulator(clock=clock, max_line_bytes=400) as emulator:
        provider = TogetherBatchProvider(
            config={"base_url": emulator.url + "/v1", "api_key": emulator.api_key}
        )
        [payload] = provider.prepare_payloads([chat("short"), chat("long", "words " * 100)])
        handle = provider.submit(payload)
        payload.discard()
        emulator.advance(3600)
        results = {r.custom_id: r for r in provider.fetch_results(handle)}
        provider.close()
    assert results["short"].ok
    assert results["long"].error is not None
    assert results["long"].error.message == "error reading input file"


def test_key_and_base_url_come_from_the_environment(
    emulator: TogetherEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", emulator.api_key)
    monkeypatch.setenv("TOGETHER_BASE_URL", emulator.url + "/v1")
    provider = TogetherBatchProvider()
    assert provider.base_url == emulator.url + "/v1"
    handle = submit(provider, 1)
    assert provider.poll_status(handle).state is BatchState.VALIDATING
    provider.close()
    assert TogetherBatchProvider(config={"api_key": "k"}).base_url == emulator.url + "/v1"


def test_the_default_base_url_is_together_s() -> None:
    assert TogetherBatchProvider(config={"api_key": "k"}).base_url == "https://api.together.xyz/v1"


def test_the_sandbox_runs_a_batch(clock: ManualClock) -> None:
    with sandbox(clock=clock) as config:
        provider = TogetherBatchProvider(config=config)
        provider.clock = clock.now
        handle = submit(provider, 3)
        clock.advance(10)
        results = list(provider.fetch_results(handle))
        provider.close()
    assert sorted(r.custom_id for r in results) == ["r0", "r1", "r2"]
    assert all(r.ok for r in results)


def test_provider_as_context_manager_closes(make_provider: MakeProvider) -> None:
    with make_provider() as provider:
        submit(provider, 1)
    provider.close()  # twice is fine
