"""The provider against the emulator, over real HTTP through ``requests``: prepare, submit,
poll, fetch and cancel, expiry, the post-create 404 window and configuration."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchcore import (
    AuthenticationError,
    BatchHandle,
    BatchRequest,
    BatchState,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    ProviderTransientError,
    ResultStatus,
    UnsupportedModelError,
)
from batchcore.testing import Fault, ManualClock
from batchcore_anthropic import BatchNotVisibleYetError, ResultsNotReadyError
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import ERROR_TRIGGER, AnthropicEmulator, error_fault

MODEL = "claude-haiku-4-5"
MakeProvider = Callable[..., AnthropicBatchProvider]


def chat(custom_id: str, model: str = MODEL, **params: Any) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Hi {custom_id}"},
        ],
        params={"max_tokens": 32, **params},
    )


def submit_one(provider: AnthropicBatchProvider, requests: list[BatchRequest]) -> BatchHandle:
    [payload] = provider.prepare_payloads(requests)
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


# -- preparing -----------------------------------------------------------------------------------


def test_payload_file_is_the_create_body(
    provider: AnthropicBatchProvider, spec: Callable[[str, Any], None]
) -> None:
    payloads = provider.prepare_payloads([chat("a"), chat("b", model="claude-opus-4-1")])
    try:
        [payload] = payloads  # different models share one batch
        assert payload.model is None
        assert payload.request_count == 2
        assert payload.path is not None
        raw = payload.path.read_bytes()
        assert payload.size_bytes == len(raw)
        body = json.loads(raw)
        spec("CreateMessageBatchParams", body)
        assert [r["custom_id"] for r in body["requests"]] == ["a", "b"]
        assert body["requests"][0]["params"] == {
            "model": MODEL,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi a"}],
            "max_tokens": 32,
        }
        assert list(payload.iter_custom_ids()) == ["a", "b"]
    finally:
        for p in payloads:
            p.discard()


def test_prepare_is_offline_and_needs_no_key(emulator: AnthropicEmulator) -> None:
    offline = AnthropicBatchProvider(config={"base_url": emulator.url})
    payloads = offline.prepare_payloads([chat("a")])
    try:
        assert emulator.call_count() == 0
        with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
            offline.submit(payloads[0])
        assert emulator.call_count() == 0
    finally:
        for p in payloads:
            p.discard()


def test_key_and_base_url_come_from_the_environment(
    emulator: AnthropicEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", emulator.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    from_env = AnthropicBatchProvider()
    try:
        assert from_env.base_url == emulator.url
        handle = submit_one(from_env, [chat("a")])
        assert emulator.batch(handle.batch_id)["processing_status"] == "in_progress"
    finally:
        from_env.close()


def test_anthropic_version_is_configurable(make_provider: MakeProvider) -> None:
    provider = make_provider(anthropic_version="1999-01-01")
    [payload] = provider.prepare_payloads([chat("a")])
    with pytest.raises(InvalidRequestError, match="anthropic-version"):
        provider.submit(payload)
    payload.discard()


def test_bad_input_fails_before_any_network_call(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        provider.prepare_payloads([chat("a"), chat("b", temperature=1.7)])
    assert (caught.value.custom_id, caught.value.field) == ("b", "params.temperature")
    with pytest.raises(InvalidRequestError) as bad_id:
        provider.prepare_payloads([chat("has space")])
    assert bad_id.value.field == "custom_id"
    with pytest.raises(InvalidRequestError, match="more than once"):
        provider.prepare_payloads([chat("a"), chat("a")])
    with pytest.raises(UnsupportedModelError):
        provider.prepare_payloads([chat("a", model="gpt-4o")])
    assert emulator.call_count() == 0


def test_models_config_widens_the_accepted_models(make_provider: MakeProvider) -> None:
    provider = make_provider(models=["my-claude-proxy-*"])
    payloads = provider.prepare_payloads([chat("a", model="my-claude-proxy-large")])
    assert len(payloads) == 1
    payloads[0].discard()
    assert not provider.supports_model("gpt-4o")


def test_default_max_tokens_from_config(
    make_provider: MakeProvider, emulator: AnthropicEmulator
) -> None:
    provider = make_provider(default_max_tokens=99)
    request = BatchRequest(custom_id="a", model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    handle = submit_one(provider, [request])
    assert emulator.submitted_params(handle.batch_id)["a"]["max_tokens"] == 99
    with pytest.raises(ConfigurationError):
        make_provider(default_max_tokens=0)


def test_split_by_request_count(make_provider: MakeProvider) -> None:
    provider = make_provider(max_requests_per_batch=3)
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(7)])
    try:
        assert [p.request_count for p in payloads] == [3, 3, 1]
        for p in payloads:
            assert p.path is not None
            assert len(json.loads(p.path.read_bytes())["requests"]) == p.request_count
    finally:
        for p in payloads:
            p.discard()


def test_split_by_bytes_counts_the_whole_body(make_provider: MakeProvider) -> None:
    one = len(AnthropicBatchProvider().encode_request(chat("r0")))
    # Room for two requests, their separator and the framing, plus a slack far below one more
    # request (the writer may keep a few bytes in reserve).
    limit = len(b'{"requests":[]}') + 2 * one + 1 + 4
    provider = make_provider(max_bytes_per_batch=limit)
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(5)])
    try:
        assert [p.request_count for p in payloads] == [2, 2, 1]
        for p in payloads:
            assert p.path is not None and p.path.stat().st_size == p.size_bytes <= limit
            assert len(json.loads(p.path.read_bytes())["requests"]) == p.request_count
    finally:
        for p in payloads:
            p.discard()


def test_default_limits_are_the_documented_ones() -> None:
    limits = AnthropicBatchProvider().limits
    assert limits.max_requests == 100_000
    assert limits.max_bytes == 256_000_000


# -- the lifecycle ---------------------------------------------------------------------------------


def test_submit_poll_fetch(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator, clock: ManualClock
) -> None:
    requests = [chat(f"r{i}") for i in range(20)]
    requests.append(emulator.failing_request("bad", MODEL))
    [payload] = provider.prepare_payloads(requests)
    payload = type(payload)(**{**_fields(payload), "idempotency_key": "job-1:0"})
    handle = provider.submit(payload)
    payload.discard()
    assert handle.provider == "anthropic"
    assert handle.batch_id.startswith("msgbatch_")
    assert handle.created_at.timestamp() == clock.now()
    assert handle.metadata["idempotency_key"] == "job-1:0"
    assert handle.metadata["request_count"] == 21
    assert BatchHandle.from_dict(json.loads(json.dumps(handle.to_dict()))) == handle

    status = provider.poll_status(handle)
    assert status.state is BatchState.IN_PROGRESS
    assert (status.total, status.completed, status.failed) == (21, 0, 0)
    with pytest.raises(ResultsNotReadyError, match="in_progress"):
        provider.fetch_results(handle)

    emulator.advance(61)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED and status.is_terminal
    assert (status.total, status.completed, status.failed) == (21, 20, 1)
    assert status.ended_at is not None
    assert status.raw is not None and status.raw["request_counts"]["errored"] == 1

    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert set(results) == {r.custom_id for r in requests}
    assert results["r3"].status is ResultStatus.SUCCEEDED
    assert results["r3"].text == "This is an emulated reply to request r3."
    assert results["r3"].usage is not None and results["r3"].usage.output_tokens == 8
    usage = results["r3"].usage
    assert usage.input_tokens is not None and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + 8
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (None, None)  # no cache used
    assert results["r3"].refusal is None
    assert results["r3"].batch_id == handle.batch_id
    bad = results["bad"]
    assert bad.status is ResultStatus.ERRORED
    assert bad.error is not None and bad.error.code == "invalid_request_error"
    assert bad.error.status_code == 400
    assert not bad.retryable


@pytest.mark.parametrize(
    ("error_type", "status_code", "retryable"),
    [
        ("invalid_request_error", 400, False),
        ("authentication_error", 401, False),
        ("billing_error", 402, False),
        ("permission_error", 403, False),
        ("not_found_error", 404, False),
        ("rate_limit_error", 429, True),
        ("api_error", 500, True),
        ("overloaded_error", 529, True),
    ],
)
def test_per_request_errors_carry_their_status_and_retryability(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    error_type: str,
    status_code: int,
    retryable: bool,
) -> None:
    failing = chat("bad", user=f"{ERROR_TRIGGER}{error_type}")
    handle = submit_one(provider, [chat("ok"), failing])
    emulator.advance(61)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["ok"].ok
    error = results["bad"].error
    assert error is not None
    assert (error.code, error.status_code, error.retryable) == (error_type, status_code, retryable)
    assert results["bad"].response is not None  # the vendor's error object, kept


def test_an_unknown_processing_status_keeps_polling(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = submit_one(provider, [chat("a")])
    newer = {**emulator.batch(handle.batch_id), "processing_status": "paused"}
    emulator.inject("GET", "/v1/messages/batches/{batch_id}", Fault.status(200, body=newer))
    with caplog.at_level(logging.WARNING, logger="batchcore_anthropic"):
        status = provider.poll_status(handle)
    assert (status.state, status.raw_status, status.is_terminal) == (
        BatchState.IN_PROGRESS,
        "paused",
        False,
    )
    assert "paused" in caplog.text
    emulator.inject("GET", "/v1/messages/batches/{batch_id}", Fault.status(200, body=newer))
    with pytest.raises(ResultsNotReadyError, match="paused"):
        provider.fetch_results(handle)
    emulator.advance(61)
    assert provider.poll_status(handle).state is BatchState.COMPLETED


def test_handles_of_another_provider_are_refused_before_any_call(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    foreign = BatchHandle(provider="openai", batch_id="batch_1", created_at=0)
    for call in (provider.poll_status, provider.fetch_results, provider.cancel):
        with pytest.raises(InvalidRequestError, match="openai"):
            call(foreign)
    assert emulator.call_count() == 0


def _fields(payload: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(payload, recurse=False)


def test_results_arrive_in_shuffled_order(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    requests = [chat(f"r{i:02d}") for i in range(30)]
    handle = submit_one(provider, requests)
    emulator.advance(61)
    order = [r.custom_id for r in provider.fetch_results(handle)]
    assert sorted(order) == [r.custom_id for r in requests]
    assert order != sorted(order)


def test_expiry_keeps_finished_results(
    make_provider: MakeProvider, emulator: AnthropicEmulator
) -> None:
    emulator.processing_seconds = 48 * 3600  # only half the requests finish within 24 h
    provider = make_provider()
    handle = submit_one(provider, [chat(f"r{i}") for i in range(10)])
    emulator.advance(23 * 3600)
    assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
    emulator.advance(3600)
    status = provider.poll_status(handle)
    assert status.state is BatchState.EXPIRED
    assert (status.completed, status.failed) == (5, 5)
    results = list(provider.fetch_results(handle))
    by_status = {s: sorted(r.custom_id for r in results if r.status is s) for s in ResultStatus}
    assert by_status[ResultStatus.SUCCEEDED] == ["r0", "r1", "r2", "r3", "r4"]
    assert by_status[ResultStatus.EXPIRED] == ["r5", "r6", "r7", "r8", "r9"]
    assert all(r.retryable for r in results if r.status is ResultStatus.EXPIRED)


def test_cancel(provider: AnthropicBatchProvider, emulator: AnthropicEmulator) -> None:
    handle = submit_one(provider, [chat(f"r{i}") for i in range(4)])
    emulator.advance(31)  # two of four requests are done
    status = provider.cancel(handle)
    assert status.state is BatchState.CANCELLING
    assert not status.is_terminal
    assert "cancel_initiated_at" in status.timestamps
    assert provider.cancel(handle).state is BatchState.CANCELLING  # asking twice is fine
    emulator.advance(5)
    status = provider.poll_status(handle)
    assert status.state is BatchState.CANCELLED
    assert (status.completed, status.failed) == (2, 2)
    results = {r.custom_id: r.status for r in provider.fetch_results(handle)}
    assert results == {
        "r0": ResultStatus.SUCCEEDED,
        "r1": ResultStatus.SUCCEEDED,
        "r2": ResultStatus.CANCELLED,
        "r3": ResultStatus.CANCELLED,
    }


def test_cancel_after_the_end_returns_the_final_status(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    handle = submit_one(provider, [chat("a")])
    emulator.advance(61)
    status = provider.cancel(handle)  # the emulator answers 400: the batch has ended
    assert status.state is BatchState.COMPLETED
    assert emulator.server.count("POST", "/v1/messages/batches/{batch_id}/cancel") == 1


def test_a_refused_cancel_of_a_running_batch_still_raises(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    handle = submit_one(provider, [chat("a")])
    emulator.inject("POST", "/v1/messages/batches/{batch_id}/cancel", error_fault(400))
    with pytest.raises(InvalidRequestError):
        provider.cancel(handle)


def test_results_are_never_fetched_from_another_host(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    emulator.results_url_base = "https://results.example.invalid"
    handle = submit_one(provider, [chat("a"), chat("b")])
    emulator.advance(61)
    raw = provider.poll_status(handle).raw
    assert raw is not None
    assert raw["results_url"].startswith("https://results.example.invalid/")
    assert {r.custom_id for r in provider.fetch_results(handle)} == {"a", "b"}
    assert emulator.server.count("GET", "/v1/messages/batches/{batch_id}/results") == 1


def test_archived_results_are_a_clear_not_found(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    handle = submit_one(provider, [chat("a")])
    emulator.advance(30 * 86400)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED
    assert "archived_at" in status.timestamps
    with pytest.raises(NotFoundError, match="archived"):
        provider.fetch_results(handle)


def test_stopping_early_closes_the_stream(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    handle = submit_one(provider, [chat(f"r{i}") for i in range(50)])
    emulator.advance(61)
    stream = provider.fetch_results(handle)
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert len(list(provider.fetch_results(handle))) == 50


# -- the 404 right after create --------------------------------------------------------------------


def test_not_found_soon_after_create_is_transient(
    make_provider: MakeProvider, emulator: AnthropicEmulator, clock: ManualClock
) -> None:
    emulator.not_found_seconds = 5
    provider = make_provider()
    handle = submit_one(provider, [chat("a")])
    for call in (provider.poll_status, provider.cancel, provider.fetch_results):
        with pytest.raises(BatchNotVisibleYetError) as caught:
            call(handle)
        assert isinstance(caught.value, ProviderTransientError)
        assert caught.value.status_code == 404
    clock.advance(6)
    assert provider.poll_status(handle).state is BatchState.IN_PROGRESS


def test_not_found_after_the_grace_window_is_permanent(
    make_provider: MakeProvider, clock: ManualClock
) -> None:
    provider = make_provider(not_found_grace_seconds=30)
    ghost = BatchHandle(
        provider="anthropic",
        batch_id="msgbatch_doesnotexist",
        created_at=clock.now(),
        metadata={"submitted_at": clock.now()},
    )
    with pytest.raises(BatchNotVisibleYetError):
        provider.poll_status(ghost)
    clock.advance(29)
    with pytest.raises(BatchNotVisibleYetError):
        provider.poll_status(ghost)
    clock.advance(1)
    with pytest.raises(NotFoundError) as caught:
        provider.poll_status(ghost)
    assert not caught.value.retryable
    # A handle without the local submit time falls back to the vendor's created_at.
    old = BatchHandle(provider="anthropic", batch_id="msgbatch_old", created_at=clock.now() - 3600)
    with pytest.raises(NotFoundError):
        provider.poll_status(old)


# -- the sandbox -----------------------------------------------------------------------------------


def test_sandbox_config_reaches_a_working_emulator(tmp_path: Path) -> None:
    from batchcore_anthropic.testing import sandbox

    assert AnthropicBatchProvider.SANDBOX == "batchcore_anthropic.testing:sandbox"
    with sandbox() as overrides:
        assert set(overrides) == {"base_url", "api_key"}
        provider = AnthropicBatchProvider(config={**overrides, "workdir": str(tmp_path)})
        handle = submit_one(provider, [chat("a")])
        assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
        provider.close()


def test_results_not_ready_is_the_cores_error() -> None:
    import batchcore

    assert ResultsNotReadyError is batchcore.ResultsNotReadyError
