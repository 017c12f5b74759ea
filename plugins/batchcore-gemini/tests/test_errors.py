"""Failures of the calls: faults, retries, the lost create, and secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import MODEL

from batchcore.plugin import (
    AuthenticationError,
    BatchHandle,
    BatchRequest,
    BatchState,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.testing import Fault, ManualClock, SleepRecorder
from batchcore_gemini.provider import GeminiBatchProvider
from batchcore_gemini.testing import GeminiEmulator, error_fault

Make = Callable[..., GeminiBatchProvider]
_GET = "/{version}/batches/{target}"
_CREATE = "/{version}/models/{target}"
_LIST = "/{version}/batches"


def chat(custom_id: str) -> BatchRequest:
    return BatchRequest.from_dict(
        {"custom_id": custom_id, "model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    )


def submit(provider: GeminiBatchProvider, *ids: str) -> BatchHandle:
    [payload] = provider.prepare_payloads([chat(i) for i in ids or ("one",)])
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    stack = [error]
    while stack:
        link = stack.pop()
        if any(link is s for s in seen):
            continue
        seen.append(link)
        yield link
        stack.extend(x for x in (link.__cause__, link.__context__) if x is not None)


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected", "code"),
    [
        (error_fault(429), RateLimitError, "RESOURCE_EXHAUSTED"),
        (error_fault(500), ProviderServerError, "INTERNAL"),
        (error_fault(503), OverloadedError, "UNAVAILABLE"),
        (error_fault(504), ResponseTimeoutError, "DEADLINE_EXCEEDED"),
        (error_fault(401), AuthenticationError, "UNAUTHENTICATED"),
        (error_fault(403), PermissionDeniedError, "PERMISSION_DENIED"),
        (error_fault(404), NotFoundError, "NOT_FOUND"),
        (Fault.reset(), ProviderConnectionError, None),
    ],
)
def test_a_fault_becomes_the_cores_error_without_retries(
    make_provider: Make,
    emulator: GeminiEmulator,
    fault: Fault,
    expected: type[ProviderError],
    code: str | None,
) -> None:
    provider = make_provider(max_retries=0)
    handle = submit(provider)
    emulator.inject("GET", _GET, fault)
    before = emulator.call_count()
    with pytest.raises(expected) as caught:
        provider.poll_status(handle)
    assert emulator.call_count() - before == 1  # the SDK's own retries are off
    assert caught.value.provider == "gemini"
    assert caught.value.code == code
    assert all(type(link).__module__.startswith("batchcore") for link in chain(caught.value))


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_transient_faults_are_retried_through_the_cores_policy(
    make_provider: Make, emulator: GeminiEmulator, sleeps: SleepRecorder, status: int
) -> None:
    provider = make_provider(max_retries=2)
    handle = submit(provider)
    emulator.inject("GET", _GET, error_fault(status), times=2)
    sleeps.clear()
    assert provider.poll_status(handle).batch_id == handle.batch_id
    assert len(sleeps) == 2


def test_a_reset_connection_is_retried_for_a_read(
    make_provider: Make, emulator: GeminiEmulator, sleeps: SleepRecorder
) -> None:
    provider = make_provider(max_retries=1)
    handle = submit(provider)
    emulator.inject("GET", _GET, Fault.reset())
    assert provider.poll_status(handle).batch_id == handle.batch_id


def test_retry_info_in_the_error_details_is_the_wait(
    make_provider: Make, emulator: GeminiEmulator, sleeps: SleepRecorder
) -> None:
    provider = make_provider(max_retries=1)
    handle = submit(provider)
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    emulator.inject("GET", _GET, error_fault(429, details=[retry_info]))
    sleeps.clear()
    provider.poll_status(handle)
    assert sleeps == [7.0]
    emulator.inject("GET", _GET, error_fault(429, details=[retry_info]))
    with pytest.raises(RateLimitError) as caught:
        make_provider(max_retries=0).poll_status(handle)
    assert caught.value.retry_after == 7.0


def test_a_wrong_key_is_an_authentication_error(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider(api_key="AIza-not-the-right-key-000", max_retries=3)
    with pytest.raises(AuthenticationError) as caught:
        submit(provider)
    # Google answers a wrong key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
    assert (caught.value.status_code, caught.value.code) == (400, "API_KEY_INVALID")
    assert "API key not valid" in str(caught.value)
    assert emulator.batch_count() == 0


def test_no_key_fails_before_any_call(emulator: GeminiEmulator) -> None:
    provider = GeminiBatchProvider(config={"base_url": emulator.url})
    [payload] = provider.prepare_payloads([chat("a")])
    with pytest.raises(AuthenticationError, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        provider.submit(payload)
    payload.discard()
    assert emulator.call_count() == 0


def test_an_unknown_batch_is_not_found(provider: GeminiBatchProvider) -> None:
    handle = BatchHandle(provider="gemini", batch_id="batches/nosuchbatch", created_at=0)
    with pytest.raises(NotFoundError):
        provider.poll_status(handle)
    with pytest.raises(NotFoundError):
        provider.fetch_results(handle)


def test_a_download_cut_short_is_downloaded_again(
    make_provider: Make, emulator: GeminiEmulator, clock: ManualClock
) -> None:
    provider = make_provider(input_mode="file", max_retries=2)
    handle = submit(provider, "a", "b", "c")
    clock.advance(3600)
    emulator.inject("GET", "/{version}/files/{target}", Fault.truncate(keep_bytes=40))
    results = sorted(r.custom_id for r in provider.fetch_results(handle))
    assert results == ["a", "b", "c"]


def test_an_unreadable_answer_to_a_read_is_retried(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider(max_retries=1)
    handle = submit(provider)
    emulator.inject("GET", _GET, Fault.status(200, body=b"<html>proxy</html>"))
    assert provider.poll_status(handle).batch_id == handle.batch_id


def test_an_unreadable_answer_to_the_last_try_is_a_lost_response(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider(max_retries=0)
    handle = submit(provider)
    emulator.inject("GET", _GET, Fault.status(200, body=b"[1, 2]"))
    with pytest.raises(ResponseLostError, match="not a JSON object"):
        provider.poll_status(handle)


# -- submit safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("input_mode", ["inline", "file"])
def test_a_lost_create_leaves_exactly_one_batch(
    make_provider: Make, emulator: GeminiEmulator, clock: ManualClock, input_mode: str
) -> None:
    provider = make_provider(timeout=0.5, input_mode=input_mode)
    [payload] = provider.prepare_payloads([chat("l1"), chat("l2")])
    payload = _with_key(payload, "batchcore-job-1-abc")
    emulator.inject("POST", _CREATE, Fault.lose_response())
    handle = provider.submit(payload)
    payload.discard()
    assert emulator.batch_count() == 1
    assert emulator.batch_ids() == [handle.batch_id]
    assert handle.metadata["display_name"] == "batchcore-job-1-abc"
    clock.advance(3600)
    assert sorted(r.custom_id for r in provider.fetch_results(handle)) == ["l1", "l2"]


def test_a_create_is_never_sent_twice_for_one_key(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider()
    [payload] = provider.prepare_payloads([chat("k1")])
    payload = _with_key(payload, "batchcore-job-2-def")
    first = provider.submit(payload)
    # A second submit of the same payload (a runner resuming) adopts the batch it made.
    again = provider.submit(payload)
    payload.discard()
    assert again.batch_id == first.batch_id
    assert emulator.batch_count() == 1


def test_the_key_is_found_on_a_later_page(make_provider: Make, emulator: GeminiEmulator) -> None:
    provider = make_provider(timeout=0.5)
    provider.LIST_PAGE_SIZE = 2
    [payload] = provider.prepare_payloads([chat("p1")])
    payload = _with_key(payload, "batchcore-job-3-ghi")
    emulator.inject("POST", _CREATE, Fault.lose_response())
    handle = provider.submit(payload)
    payload.discard()
    for other in ("o1", "o2", "o3"):
        submit(provider, other)
    # The lost create's batch is now on the second page, newest first.
    again = provider.submit(
        _with_key(provider.prepare_payloads([chat("p1")])[0], "batchcore-job-3-ghi")
    )
    assert again.batch_id == handle.batch_id
    assert emulator.batch_count() == 4
    assert emulator.server.count("GET", _LIST) >= 3


def test_a_lost_create_with_no_batch_made_creates_once_more(
    make_provider: Make, emulator: GeminiEmulator, sleeps: SleepRecorder
) -> None:
    provider = make_provider(timeout=0.5)
    [payload] = provider.prepare_payloads([chat("n1")])
    # The create never reaches the API (reset before it ran): after the settle window the
    # core knows nothing was made, and creates again.
    emulator.inject("POST", _CREATE, Fault.reset())
    handle = provider.submit(payload)
    payload.discard()
    assert emulator.batch_count() == 1
    assert emulator.batch_ids() == [handle.batch_id]


# -- secrets -----------------------------------------------------------------------------------


def test_a_key_echoed_in_an_error_body_is_nowhere_in_the_exception(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider(max_retries=0)
    handle = submit(provider)
    key = emulator.api_key
    emulator.inject(
        "GET",
        _GET,
        error_fault(
            400,
            message=f"API key {key} is not valid for this project",
            details=[{"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": key}],
            headers={"x-debug-key": key},
        ),
    )
    with pytest.raises(ProviderError) as caught:
        provider.poll_status(handle)
    error = caught.value
    assert error.__cause__ is None and error.__context__ is None
    for link in chain(error):
        shown = [str(link), repr(link), repr(link.args), *map(repr, vars(link).values())]
        assert not any(key in text for text in shown)
    assert "API key [REDACTED] is not valid" in str(error)


@pytest.mark.parametrize("fault", [Fault.reset(), Fault.hang(), error_fault(503), error_fault(401)])
def test_no_exception_keeps_the_sdks_request(
    make_provider: Make, emulator: GeminiEmulator, fault: Fault
) -> None:
    provider = make_provider(max_retries=0, timeout=0.3)
    handle = submit(provider)
    emulator.inject("GET", _GET, fault)
    with pytest.raises(ProviderError) as caught:
        provider.poll_status(handle)
    for link in chain(caught.value):
        assert not type(link).__module__.startswith(("google", "httpx"))
        assert emulator.api_key not in repr(vars(link))


def _with_key(payload: Any, key: str) -> Any:
    import attrs

    return attrs.evolve(payload, idempotency_key=key)


def test_the_lost_create_is_looked_for_before_creating_again(
    make_provider: Make, emulator: GeminiEmulator
) -> None:
    provider = make_provider(timeout=0.5)
    [payload] = provider.prepare_payloads([chat("s1")])
    payload = _with_key(payload, "batchcore-job-4-jkl")
    emulator.inject("POST", _CREATE, Fault.lose_response())
    provider.submit(payload)
    payload.discard()
    order = [(c.method, c.route) for c in emulator.server.calls if c.route in (_CREATE, _LIST)]
    # The courtesy look (a key given), the create that was lost, the look that found it.
    assert order == [("GET", _LIST), ("POST", _CREATE), ("GET", _LIST)]
    assert provider.poll_status(
        BatchHandle(provider="gemini", batch_id=emulator.batch_ids()[0], created_at=0)
    ).state in (BatchState.VALIDATING, BatchState.IN_PROGRESS)
