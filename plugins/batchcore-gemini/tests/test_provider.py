"""The provider against the emulator: both input modes, the lifecycle, results, cancel and
delete, configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MODEL

from batchcore.plugin import (
    BatchHandle,
    BatchLimits,
    BatchRequest,
    BatchState,
    ConfigurationError,
    RequestTooLargeError,
    ResponseLostError,
    ResultsNotReadyError,
    ResultStatus,
)
from batchcore.testing import ManualClock
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE
from batchcore_gemini.provider import GeminiBatchProvider, _inline_body_bytes
from batchcore_gemini.testing import BLOCK_TRIGGER, ERROR_TRIGGER, FINISH_TRIGGER, GeminiEmulator

Make = Callable[..., GeminiBatchProvider]


def chat(custom_id: str, text: str = "Hello", **params: Any) -> BatchRequest:
    return BatchRequest.from_dict(
        {
            "custom_id": custom_id,
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "params": params,
        }
    )


def submit(provider: GeminiBatchProvider, requests: list[BatchRequest]) -> BatchHandle:
    [payload] = provider.prepare_payloads(requests)
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


def run(
    provider: GeminiBatchProvider, clock: ManualClock, requests: list[BatchRequest]
) -> tuple[BatchHandle, dict[str, Any]]:
    handle = submit(provider, requests)
    clock.advance(3600)
    assert provider.poll_status(handle).state is BatchState.COMPLETED
    return handle, {r.custom_id: r for r in provider.fetch_results(handle)}


# -- the two input modes -----------------------------------------------------------------------


def test_a_small_batch_travels_inline(
    provider: GeminiBatchProvider, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    requests = [chat("a", "Hi", max_tokens=64), chat("b", "Hello there")]
    handle, results = run(provider, clock, requests)
    assert handle.batch_id.startswith("batches/")
    assert emulator.file_names() == []  # nothing uploaded
    sent = emulator.submitted_requests(handle.batch_id)
    assert sent == {
        "a": {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "generationConfig": {"maxOutputTokens": 64},
        },
        "b": {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]},
    }
    assert results["a"].text == "Emulated answer 1 to: Hi"
    assert results["b"].ok and results["b"].usage.input_tokens >= 1


def test_a_file_batch_uploads_jsonl_and_downloads_the_responses(
    make_provider: Make, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    provider = make_provider(input_mode="file")
    requests = [chat(f"r{i}", f"question {i}") for i in range(5)]
    handle, results = run(provider, clock, requests)
    uploaded = [name for name in emulator.file_names() if not name.startswith("files/batch-")]
    assert len(uploaded) == 1
    assert set(emulator.submitted_requests(handle.batch_id)) == {f"r{i}" for i in range(5)}
    assert sorted(results) == [f"r{i}" for i in range(5)]
    assert all(r.ok and r.text for r in results.values())
    # Fetching again reads the same file again.
    again = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert again == results


def test_a_garbled_line_of_the_responses_file_raises_and_a_new_download_is_whole(
    make_provider: Make, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    provider = make_provider(input_mode="file")
    handle = submit(provider, [chat(f"r{i}", f"question {i}") for i in range(4)])
    clock.advance(3600)
    emulator.inject_fault(CORRUPT_RESULT_LINE)
    delivered = []
    with pytest.raises(ResponseLostError, match=r"line 2 of files/\S+ is not valid JSON"):
        delivered.extend(provider.fetch_results(handle))
    assert len(delivered) == 1  # never skipped: the line's request would be paid for twice
    again = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in again) == ["r0", "r1", "r2", "r3"]


class _SmallInline(GeminiBatchProvider):
    INLINE_LIMITS = BatchLimits(max_requests=1_000_000, max_bytes=1_500)


def test_auto_mode_switches_to_a_file_past_the_inline_limit(
    emulator: GeminiEmulator, clock: ManualClock
) -> None:
    provider = _SmallInline(config={"base_url": emulator.url, "api_key": emulator.api_key})
    provider.clock = clock.now
    small = submit(provider, [chat("s1")])
    large = submit(provider, [chat(f"l{i}", "x" * 100) for i in range(10)])
    small_input = emulator.batch(small.batch_id)["metadata"]["inputConfig"]
    large_input = emulator.batch(large.batch_id)["metadata"]["inputConfig"]
    assert "requests" in small_input
    assert large_input["fileName"].startswith("files/")
    provider.close()


def test_forced_inline_refuses_a_body_over_the_limit_before_any_call(
    emulator: GeminiEmulator, clock: ManualClock
) -> None:
    provider = _SmallInline(
        config={"base_url": emulator.url, "api_key": emulator.api_key, "input_mode": "inline"}
    )
    # 1,200 bytes of UTF-8 in the payload file; 3,600 once the SDK escapes them.
    [payload] = provider.prepare_payloads([chat(f"l{i}", "é" * 200) for i in range(3)])
    assert payload.size_bytes < 1_500
    calls = emulator.call_count()
    with pytest.raises(RequestTooLargeError, match="inline"):
        provider.submit(payload)
    payload.discard()
    assert emulator.call_count() == calls
    assert emulator.batch_count() == 0


def test_input_mode_sets_the_split_limits() -> None:
    inline = GeminiBatchProvider(config={"input_mode": "inline"})
    assert inline.limits == GeminiBatchProvider.INLINE_LIMITS
    auto = GeminiBatchProvider(config={"max_bytes_per_batch": 5_000_000})
    assert auto.limits.max_bytes == 5_000_000
    with pytest.raises(ConfigurationError, match="input_mode"):
        GeminiBatchProvider(config={"input_mode": "stream"})


def test_the_inline_size_estimate_bounds_what_the_sdk_sends(tmp_path: Any) -> None:
    provider = GeminiBatchProvider(config={"workdir": str(tmp_path)})
    requests = [
        chat("a", "Ünïcødé, текст: 漢字 🚀 " * 50, temperature=0.5),
        chat("b", 'quotes " and \\ backslashes, commas: colons' * 20),
    ]
    [payload] = provider.prepare_payloads(requests)
    assert payload.path is not None
    body = {
        "batch": {
            "displayName": "batchcore-key",
            "inputConfig": {"requests": {"requests": provider._inline_requests(payload)}},
        }
    }
    sent = len(json.dumps(body).encode())  # what the SDK's json.dumps writes
    measured = _inline_body_bytes(payload.path, 20_000_000)
    assert sent <= measured < sent + 128
    # Measuring stops once over the limit; a file over it is not read at all.
    assert 1_000 < _inline_body_bytes(payload.path, 1_000) < measured
    assert _inline_body_bytes(payload.path, 10) == payload.size_bytes
    payload.discard()


# -- the lifecycle -----------------------------------------------------------------------------


def test_states_and_counts_through_the_lifecycle(
    provider: GeminiBatchProvider, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    handle = submit(provider, [chat(f"c{i}") for i in range(4)])
    pending = provider.poll_status(handle)
    assert (pending.state, pending.raw_status) == (BatchState.VALIDATING, "BATCH_STATE_PENDING")
    assert pending.total == 4
    with pytest.raises(ResultsNotReadyError):
        provider.fetch_results(handle)
    clock.advance(5 + 30)
    running = provider.poll_status(handle)
    assert (running.state, running.raw_status) == (BatchState.IN_PROGRESS, "BATCH_STATE_RUNNING")
    assert running.completed == 2 and running.pending == 2
    clock.advance(60)
    done = provider.poll_status(handle)
    assert (done.state, done.completed, done.failed) == (BatchState.COMPLETED, 4, 0)
    assert done.ended_at is not None and done.created_at is not None
    assert done.expires_at is not None and done.expires_at > done.created_at


def test_per_request_failures_and_refusals_through_the_whole_stack(
    provider: GeminiBatchProvider, clock: ManualClock
) -> None:
    requests = [
        chat("busy", f"{ERROR_TRIGGER}UNAVAILABLE] please"),
        chat("bad", f"{ERROR_TRIGGER}INVALID_ARGUMENT] please"),
        chat("unsafe", f"{FINISH_TRIGGER}SAFETY] please"),
        chat("blocked", f"{BLOCK_TRIGGER}PROHIBITED_CONTENT] please"),
        chat("fine"),
    ]
    _, results = run(provider, clock, requests)
    assert results["busy"].status is ResultStatus.ERRORED and results["busy"].retryable
    assert results["busy"].error.code == "unavailable"
    assert results["bad"].status is ResultStatus.ERRORED and not results["bad"].retryable
    assert results["unsafe"].ok and results["unsafe"].refusal is not None
    assert "SAFETY" in results["unsafe"].refusal
    assert "HARM_CATEGORY_DANGEROUS_CONTENT" in results["unsafe"].refusal
    assert results["blocked"].ok and "PROHIBITED_CONTENT" in (results["blocked"].refusal or "")
    assert results["fine"].ok and results["fine"].refusal is None


def test_structured_output_tools_and_thinking_reach_the_model(
    provider: GeminiBatchProvider, clock: ManualClock
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "lookup", "parameters": schema}}
    requests = [
        chat(
            "json",
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        ),
        chat("call", tools=[tool], tool_choice="required"),
        BatchRequest.from_dict(
            {
                "custom_id": "think",
                "model": MODEL,
                "messages": [{"role": "user", "content": "Think"}],
                "provider_params": {
                    "gemini": {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
                },
            }
        ),
    ]
    _, results = run(provider, clock, requests)
    answer = json.loads(results["json"].text)  # an instance of the schema
    assert list(answer) == ["city", "days"]
    assert isinstance(answer["city"], str) and type(answer["days"]) is int
    parts = results["call"].response["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "lookup", "args": {}}}]
    assert results["call"].text is None
    think = results["think"]
    assert think.text is not None and "Thinking" not in think.text
    answer_tokens = think.response["usageMetadata"]["candidatesTokenCount"]
    assert think.usage.reasoning_tokens == think.response["usageMetadata"]["thoughtsTokenCount"]
    assert think.usage.output_tokens == think.usage.reasoning_tokens + answer_tokens


def test_an_expired_inline_batch_reports_every_request_expired(
    make_provider: Make, clock: ManualClock
) -> None:
    with GeminiEmulator(clock=clock, processing_seconds=72 * 3600) as slow:
        provider = make_provider(base_url=slow.url, api_key=slow.api_key)
        handle = submit(provider, [chat("e1"), chat("e2")])
        clock.advance(48 * 3600)
        status = provider.poll_status(handle)
        assert status.state is BatchState.EXPIRED
        results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert sorted(results) == ["e1", "e2"]
    for got in results.values():
        assert got.status is ResultStatus.EXPIRED and got.retryable
        assert got.error is not None and got.error.code == "batch_expired"


def test_an_expired_file_batch_leaves_its_requests_to_the_runner(
    make_provider: Make, clock: ManualClock
) -> None:
    with GeminiEmulator(clock=clock, processing_seconds=72 * 3600) as slow:
        provider = make_provider(base_url=slow.url, api_key=slow.api_key, input_mode="file")
        handle = submit(provider, [chat("e1"), chat("e2")])
        clock.advance(48 * 3600)
        assert provider.poll_status(handle).state is BatchState.EXPIRED
        # No results, and an uploaded file cannot be read back: the runner marks them.
        assert list(provider.fetch_results(handle)) == []


def test_a_failed_batch_carries_its_error(
    provider: GeminiBatchProvider, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    handle = submit(provider, [chat("f1")])
    emulator.fail_batch(handle.batch_id, "the input could not be read")
    status = provider.poll_status(handle)
    assert status.state is BatchState.FAILED
    assert [(e.code, e.message) for e in status.errors] == [
        ("INVALID_ARGUMENT", "the input could not be read")
    ]
    [result] = provider.fetch_results(handle)
    assert result.error is not None and result.error.code == "batch_failed"
    assert "the input could not be read" in result.error.message


def test_a_cancelled_batch_returns_its_finished_answers(
    provider: GeminiBatchProvider, clock: ManualClock
) -> None:
    handle = submit(provider, [chat(f"x{i}") for i in range(4)])
    clock.advance(5 + 30)  # half of them answered
    status = provider.cancel(handle)
    assert status.state is BatchState.CANCELLED
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert sorted(results) == ["x0", "x1", "x2", "x3"]
    assert sum(r.ok for r in results.values()) == 2
    unfinished = [r for r in results.values() if not r.ok]
    assert all(r.status is ResultStatus.CANCELLED and r.retryable for r in unfinished)
    # Cancelling again returns the final status.
    assert provider.cancel(handle).state is BatchState.CANCELLED


def test_delete_removes_the_batch_and_is_idempotent(
    provider: GeminiBatchProvider, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    handle, _ = run(provider, clock, [chat("d1")])
    provider.delete_batch(handle)
    assert emulator.batch_ids() == []
    provider.delete_batch(handle)  # already gone: not an error
    assert emulator.batch_count() == 1


def test_handles_survive_json_and_work_with_a_new_provider(
    make_provider: Make, clock: ManualClock
) -> None:
    handle = submit(make_provider(), [chat("h1")])
    stored = BatchHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
    assert stored.metadata["display_name"]
    assert stored.metadata["model"] == f"models/{MODEL}"
    clock.advance(3600)
    fresh = make_provider()
    assert [r.custom_id for r in fresh.fetch_results(stored)] == ["h1"]


def test_a_handle_that_is_no_batch_name_is_refused_before_any_call(
    provider: GeminiBatchProvider, emulator: GeminiEmulator
) -> None:
    handle = BatchHandle(provider="gemini", batch_id="batches/../files/x", created_at=0)
    calls = emulator.call_count()
    with pytest.raises(Exception, match="not the name of a Gemini batch"):
        provider.poll_status(handle)
    assert emulator.call_count() == calls


# -- configuration -----------------------------------------------------------------------------


def test_the_api_key_comes_from_the_environment_in_the_sdks_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-000000")
    assert GeminiBatchProvider().require_api_key() == "gemini-key-000000"
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-000000")
    assert GeminiBatchProvider().require_api_key() == "google-key-000000"
    assert GeminiBatchProvider(config={"api_key": "config-key-0000"}).require_api_key() == (
        "config-key-0000"
    )


def test_the_base_url_from_config_or_the_sdks_variable(
    monkeypatch: pytest.MonkeyPatch, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    assert GeminiBatchProvider().base_url == "https://generativelanguage.googleapis.com/"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.url)
    monkeypatch.setenv("GEMINI_API_KEY", emulator.api_key)
    provider = GeminiBatchProvider()
    provider.clock = clock.now
    handle = submit(provider, [chat("env")])
    assert emulator.batch_ids() == [handle.batch_id]
    provider.close()


def test_api_version_is_passed_to_the_sdk(make_provider: Make, emulator: GeminiEmulator) -> None:
    submit(make_provider(api_version="v1alpha"), [chat("alpha")])
    paths = [call.path for call in emulator.server.calls]
    assert "/v1alpha/models/gemini-2.5-flash:batchGenerateContent" in paths
    before = len(paths)
    submit(make_provider(), [chat("default")])
    # The SDK's own default otherwise (v1 since google-genai 3, v1beta before).
    created = [c.path for c in emulator.server.calls[before:] if c.method == "POST"]
    assert created in (
        ["/v1/models/gemini-2.5-flash:batchGenerateContent"],
        ["/v1beta/models/gemini-2.5-flash:batchGenerateContent"],
    )


def test_a_closed_provider_opens_a_new_client(
    provider: GeminiBatchProvider, clock: ManualClock
) -> None:
    handle = submit(provider, [chat("c")])
    provider.close()
    provider.close()
    assert provider.poll_status(handle).batch_id == handle.batch_id


def test_prepare_works_offline_without_a_key() -> None:
    provider = GeminiBatchProvider()
    [payload] = provider.prepare_payloads([chat("offline")])
    assert payload.path is not None
    line = json.loads(payload.path.read_text())
    assert line == {
        "key": "offline",
        "request": {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]},
    }
    payload.discard()


def test_importing_the_package_imports_no_sdk() -> None:
    code = (
        "import sys, batchcore_gemini, batchcore_gemini.plugin; "
        "print(any(m == 'google' or m.startswith('google.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import batchcore_gemini

    assert batchcore_gemini.GeminiBatchProvider is GeminiBatchProvider
    with pytest.raises(AttributeError):
        batchcore_gemini.NoSuchThing  # noqa: B018
