"""Vendor failures become the core's errors (through its one classification), transient ones
are retried under the retry policy, and the API key shows nowhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from together_support import MakeProvider, chat

from batchcore import (
    AuthenticationError,
    BatchHandle,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderServerError,
    ProviderTransientError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.testing import Fault, SleepRecorder
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator

RETRIEVE = ("GET", "/v1/batches/{batch_id}")
CREATE = ("POST", "/v1/batches")
UPLOAD = ("POST", "/v1/files/upload")
CONTENT = ("GET", "/v1/files/{file_id}/content")


def submitted(provider: TogetherBatchProvider, count: int = 1) -> BatchHandle:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(count)])
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        link = stack.pop()
        if link is None or any(link is s for s in seen):
            continue
        seen.append(link)
        yield link
        stack.extend([link.__cause__, link.__context__])


def assert_no_secret(error: BaseException, secret: str) -> None:
    for link in chain(error):
        texts = [str(link), repr(link), repr(link.args)]
        texts += [repr(value) for value in vars(link).values()]
        assert not any(secret in text for text in texts), f"{type(link).__name__} shows the key"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", RateLimitError),
        ("server_error", ProviderServerError),
        ("overloaded", OverloadedError),
        ("gateway_timeout", ResponseTimeoutError),
    ],
)
def test_transient_failures_are_retried(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    sleeps: SleepRecorder,
    kind: str,
    expected: type[ProviderError],
) -> None:
    handle = submitted(provider)
    emulator.inject_fault(kind)
    assert provider.poll_status(handle).raw_status == "VALIDATING"  # the retry succeeded
    assert len(sleeps) == 1
    emulator.inject("GET", RETRIEVE[1], emulator.fault(kind) or Fault.reset(), times=10)
    with pytest.raises(expected) as caught:
        provider.poll_status(handle)
    assert caught.value.retryable
    assert isinstance(caught.value, ProviderTransientError)
    assert caught.value.provider == "together"


def test_a_rate_limit_waits_as_long_as_retry_after_says(
    provider: TogetherBatchProvider, emulator: TogetherEmulator, sleeps: SleepRecorder
) -> None:
    handle = submitted(provider)
    emulator.inject(
        *RETRIEVE, Fault.status(429, headers={"retry-after": "7"}, body={"error": "slow down"})
    )
    provider.poll_status(handle)
    assert sleeps == [7.0]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
    ],
)
def test_permanent_failures_are_not_retried(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    sleeps: SleepRecorder,
    status: int,
    expected: type[ProviderError],
) -> None:
    handle = submitted(provider)
    calls = emulator.call_count()
    emulator.inject(*RETRIEVE, Fault.status(status, body={"error": f"refused with {status}"}))
    with pytest.raises(expected, match=f"refused with {status}") as caught:
        provider.poll_status(handle)
    assert not caught.value.retryable
    assert caught.value.status_code == status
    assert emulator.call_count() == calls + 1
    assert not sleeps


def test_the_batch_routes_string_errors_are_read(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    with pytest.raises(NotFoundError, match="not found") as caught:
        provider.poll_status(
            BatchHandle(provider="together", batch_id="no-such-batch", created_at=0)
        )
    assert caught.value.status_code == 404


def test_a_refused_upload_is_an_invalid_request(
    make_provider: MakeProvider, emulator: TogetherEmulator
) -> None:
    emulator.max_file_bytes = 10
    with pytest.raises(InvalidRequestError, match="limited to 10 bytes"):
        submitted(make_provider())
    assert emulator.batch_count() == 0


def test_a_reset_upload_is_retried(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    emulator.inject(*UPLOAD, Fault.reset())
    handle = submitted(provider, 2)
    assert emulator.server.count(*UPLOAD) == 2  # an upload is safe to repeat
    assert emulator.batch_ids() == [handle.batch_id]


def test_a_download_cut_short_raises_rather_than_ending_quietly(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    handle = submitted(provider, 50)
    emulator.advance(3600)
    emulator.inject(*CONTENT, Fault.truncate(300))
    with pytest.raises(ProviderTransientError):
        list(provider.fetch_results(handle))
    assert len(list(provider.fetch_results(handle))) == 50  # fetching again cures it


def test_without_a_key_nothing_is_sent(emulator: TogetherEmulator) -> None:
    provider = TogetherBatchProvider(config={"base_url": emulator.url + "/v1"})
    [payload] = provider.prepare_payloads([chat("r")])  # preparing needs no key
    with pytest.raises(AuthenticationError, match="TOGETHER_API_KEY"):
        provider.submit(payload)
    payload.discard()
    assert emulator.call_count() == 0


def test_a_wrong_key_is_an_authentication_error(emulator: TogetherEmulator) -> None:
    provider = TogetherBatchProvider(
        config={"base_url": emulator.url + "/v1", "api_key": "together-wrong-key-000"}
    )
    with pytest.raises(AuthenticationError, match="Invalid API key"):
        submitted(provider)
    provider.close()


def test_a_handle_of_another_provider_is_refused_before_any_call(
    provider: TogetherBatchProvider, emulator: TogetherEmulator
) -> None:
    foreign = BatchHandle(provider="openai", batch_id="batch_1", created_at=0)
    with pytest.raises(InvalidRequestError, match="belongs to provider 'openai'"):
        provider.poll_status(foreign)
    assert emulator.call_count() == 0


# -- the key never shows ---------------------------------------------------------------------------


def _echo_401(key: str) -> dict[str, object]:
    return {"error": {"message": f"Invalid API key {key}", "type": "auth", "code": key}}


def _echo_400_string(key: str) -> dict[str, object]:
    return {"error": f"bad request from key {key}"}


def _echo_400_request_id(key: str) -> dict[str, object]:
    return {"error": {"message": f"no: {key}", "type": "x"}, "request_id": key}


@pytest.mark.parametrize(
    ("route", "status", "body"),
    [
        (RETRIEVE, 401, _echo_401),
        (CREATE, 400, _echo_400_string),
        (UPLOAD, 400, _echo_400_request_id),
    ],
)
def test_a_server_echoing_the_key_never_shows_it(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    route: tuple[str, str],
    status: int,
    body: Callable[[str], dict[str, object]],
) -> None:
    provider = make_provider()
    secret = emulator.api_key
    handle = submitted(provider) if route == RETRIEVE else None
    emulator.inject(
        *route, Fault.status(status, headers={"x-request-id": secret}, body=body(secret))
    )
    call = (lambda: provider.poll_status(handle)) if handle else (lambda: submitted(provider))
    with pytest.raises(ProviderError) as caught:
        call()
    assert caught.value.status_code == status
    assert_no_secret(caught.value, secret)


def test_a_connection_failure_never_shows_the_key(emulator: TogetherEmulator) -> None:
    secret = "together-secret-key-0123456789"
    provider = TogetherBatchProvider(
        config={"base_url": "http://127.0.0.1:9/v1", "api_key": secret, "max_retries": 0}
    )
    with pytest.raises(ProviderError) as caught:
        provider.poll_status(BatchHandle(provider="together", batch_id="b", created_at=0))
    assert_no_secret(caught.value, secret)
    assert secret not in repr(provider)


def test_a_garbled_results_line_raises_and_a_new_download_is_whole(
    emulator: TogetherEmulator, provider: TogetherBatchProvider
) -> None:
    handle = submitted(provider, count=4)
    emulator.advance(2 * 3600)
    emulator.inject_fault(CORRUPT_RESULT_LINE)
    delivered = []
    with pytest.raises(ResponseLostError, match=r"line 2 of file \S+ is not valid JSON"):
        delivered.extend(provider.fetch_results(handle))
    assert len(delivered) == 1  # never skipped: the line's request would be paid for twice
    again = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in again) == ["r0", "r1", "r2", "r3"]
    assert all(r.ok for r in again)
