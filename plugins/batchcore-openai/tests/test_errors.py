"""Failures of the calls themselves: every SDK exception becomes a batchcore one (classified by
the core), transient ones are retried through provider.sleep, and neither the key nor the SDK's
exception (which holds the request and its Authorization header) rides along."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest
from openai_support import API_KEY, FINISHED, chat

from batchcore.errors import (
    AuthenticationError,
    BatchcoreError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderPermanentError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.models import BatchHandle
from batchcore.testing import Fault, SleepRecorder
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

Factory = Callable[..., OpenAIBatchProvider]
RETRIEVE = "/v1/batches/{batch_id}"


@pytest.fixture
def handle(provider: OpenAIBatchProvider) -> BatchHandle:
    [payload] = provider.prepare_payloads([chat("a"), chat("b")])
    return provider.submit(payload)


def _raises(call: Callable[[], object], expected: type[ProviderError]) -> ProviderError:
    with pytest.raises(expected) as caught:
        call()
    error = caught.value
    # Only batchcore types to catch, and nothing of the SDK's chained to them.
    assert all(not cls.__module__.startswith("openai") for cls in type(error).__mro__)
    assert isinstance(error, BatchcoreError)
    assert error.__cause__ is None and error.__context__ is None
    assert error.provider == "openai"
    assert API_KEY not in f"{error} {error!r}"
    return error


@pytest.mark.parametrize(
    ("kind", "expected", "status"),
    [
        ("unauthorized", AuthenticationError, 401),
        ("permission_denied", PermissionDeniedError, 403),
        ("not_found", NotFoundError, 404),
        ("bad_request", InvalidRequestError, 400),
        ("unprocessable", InvalidRequestError, 422),
        ("insufficient_quota", QuotaExceededError, 429),
    ],
)
def test_permanent_failures_are_not_retried(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    handle: BatchHandle,
    sleeps: SleepRecorder,
    kind: str,
    expected: type[ProviderError],
    status: int,
) -> None:
    emulator.inject_fault(kind, route=RETRIEVE)
    error = _raises(lambda: provider.poll_status(handle), expected)
    assert isinstance(error, ProviderPermanentError)
    assert error.status_code == status
    assert sleeps == []
    assert emulator.server.count("GET", RETRIEVE) == 1


def test_quota_error_names_the_code(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, handle: BatchHandle
) -> None:
    emulator.inject_fault("insufficient_quota", route=RETRIEVE)
    error = _raises(lambda: provider.poll_status(handle), QuotaExceededError)
    assert error.code == "insufficient_quota"
    assert "exceeded your current quota" in str(error)


def test_rate_limit_waits_as_long_as_the_server_says(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    handle: BatchHandle,
    sleeps: SleepRecorder,
) -> None:
    emulator.server.inject("GET", RETRIEVE, Fault.status(429, headers={"retry-after": "7"}))
    emulator.server.inject(
        "GET", RETRIEVE, Fault.status(429, headers={"retry-after-ms": "250"}), calls=[2]
    )
    assert provider.poll_status(handle).batch_id == handle.batch_id
    assert sleeps == [7.0, 0.25]
    assert emulator.server.count("GET", RETRIEVE) == 3


def test_rate_limit_with_a_long_wait_is_handed_to_the_caller(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    handle: BatchHandle,
    sleeps: SleepRecorder,
) -> None:
    emulator.server.inject("GET", RETRIEVE, Fault.status(429, headers={"retry-after": "600"}))
    error = _raises(lambda: provider.poll_status(handle), RateLimitError)
    assert error.retry_after == 600.0
    assert sleeps == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(500), ProviderServerError),
        # A gateway that lost or timed out its upstream answer: the vendor may have acted.
        (Fault.status(502), ResponseLostError),
        (Fault.status(504), ResponseTimeoutError),
        (Fault.status(503), OverloadedError),
        # The request was sent, then the connection broke: outcome unknown (a read is repeated).
        (Fault.reset(), ResponseLostError),
        (Fault.truncate(15), ResponseLostError),
    ],
)
def test_transient_failures_are_retried_then_raised(
    emulator: OpenAIEmulator,
    make_provider: Factory,
    handle: BatchHandle,
    sleeps: SleepRecorder,
    fault: Fault,
    expected: type[ProviderError],
) -> None:
    provider = make_provider(max_retries=2)
    emulator.server.inject("GET", RETRIEVE, fault, times=1)
    assert provider.poll_status(handle).batch_id == handle.batch_id
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5  # backoff from 0.5 s with jitter
    sleeps.clear()
    emulator.server.inject("GET", RETRIEVE, fault, times=3)
    error = _raises(lambda: provider.poll_status(handle), expected)
    assert error.retryable
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]


def test_server_can_forbid_a_retry(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    handle: BatchHandle,
    sleeps: SleepRecorder,
) -> None:
    emulator.server.inject("GET", RETRIEVE, Fault.status(500, headers={"x-should-retry": "false"}))
    error = _raises(lambda: provider.poll_status(handle), ProviderPermanentError)
    assert error.status_code == 500 and sleeps == []


def test_timeout(
    emulator: OpenAIEmulator, make_provider: Factory, handle: BatchHandle, sleeps: SleepRecorder
) -> None:
    impatient = make_provider(timeout=0.2, max_retries=0)
    emulator.inject_fault("hang", route=RETRIEVE)
    # The request was sent and no answer came: a timeout whose outcome is unknown.
    error = _raises(lambda: impatient.poll_status(handle), ResponseTimeoutError)
    assert isinstance(error, ProviderTimeoutError)
    assert "ReadTimeout" in str(error)
    patient = make_provider(timeout=0.2, max_retries=1)
    emulator.inject_fault("hang", route=RETRIEVE)
    assert patient.poll_status(handle).batch_id == handle.batch_id
    assert len(sleeps) == 1


def test_a_download_cut_short_starts_over_without_repeating_results(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, sleeps: SleepRecorder
) -> None:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(40)])
    handle = provider.submit(payload)
    emulator.advance(FINISHED)
    emulator.server.inject("GET", "/v1/files/{file_id}/content", Fault.truncate(5000))
    results = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(40))
    assert all(r.ok for r in results)
    assert len(sleeps) == 1
    assert emulator.server.count("GET", "/v1/files/{file_id}/content") == 2


def test_a_download_that_keeps_failing_raises(
    emulator: OpenAIEmulator, make_provider: Factory
) -> None:
    provider = make_provider(max_retries=1)
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(40)])
    handle = provider.submit(payload)
    emulator.advance(FINISHED)
    emulator.server.inject("GET", "/v1/files/{file_id}/content", Fault.truncate(5000), times=5)
    with pytest.raises(ResponseLostError, match="connection broke"):
        list(provider.fetch_results(handle))
    assert emulator.server.count("GET", "/v1/files/{file_id}/content") == 2


def test_wrong_key_is_an_authentication_error_without_the_key(
    emulator: OpenAIEmulator, make_provider: Factory, handle: BatchHandle
) -> None:
    wrong = "sk-wrong-key-abcdefghijkl"
    provider = make_provider(api_key=wrong)
    with pytest.raises(AuthenticationError) as caught:
        provider.poll_status(handle)
    error = caught.value
    assert error.code == "invalid_api_key"
    for link in (error, error.__cause__):
        assert wrong not in f"{link} {link!r} {getattr(link, 'args', '')}"


def test_a_key_echoed_by_the_server_is_redacted(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, handle: BatchHandle
) -> None:
    body = {"error": {"message": f"key {API_KEY} is not allowed here", "type": "x", "code": None}}
    emulator.server.inject("GET", RETRIEVE, Fault.status(400, body=body))
    error = _raises(lambda: provider.poll_status(handle), InvalidRequestError)
    assert "[REDACTED]" in str(error)


def test_a_missing_key_fails_at_the_first_network_call(emulator: OpenAIEmulator) -> None:
    provider = OpenAIBatchProvider(config={"base_url": emulator.url + "/v1"})
    [payload] = provider.prepare_payloads([chat("a")])  # offline work needs no key
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        provider.submit(payload)
    assert emulator.call_count() == 0


def test_azure_needs_an_endpoint() -> None:
    provider = AzureOpenAIBatchProvider(config={"api_key": API_KEY, "deployments": ["d"]})
    [payload] = provider.prepare_payloads([chat("a", model="d")])
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        provider.submit(payload)


# -- a server that echoes the key ------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        link = stack.pop()
        if link is None or any(link is seen for seen in found):
            continue
        found.append(link)
        stack += [link.__cause__, link.__context__]
    return found


def _assert_key_nowhere(error: BaseException) -> None:
    chain = _chain(error)
    assert chain == [error]  # nothing chained: an SDK exception holds the Authorization header
    for link in chain:
        shown = f"{link} {link!r} {link.args!r} {vars(link)!r}"
        assert API_KEY not in shown
        assert API_KEY.encode() not in pickle.dumps(link)


def _echoing(status: int) -> Fault:
    return Fault.status(
        status,
        body={
            "error": {
                "message": f"Incorrect API key provided: {API_KEY}. You can find your key at ...",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )


@pytest.mark.parametrize(
    ("status", "expected"), [(401, AuthenticationError), (400, InvalidRequestError)]
)
def test_an_echoed_key_is_in_no_exception_of_the_chain(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    handle: BatchHandle,
    status: int,
    expected: type[ProviderError],
) -> None:
    emulator.server.inject("GET", RETRIEVE, _echoing(status))
    with pytest.raises(expected) as polled:
        provider.poll_status(handle)
    _assert_key_nowhere(polled.value)
    assert "[REDACTED]" in str(polled.value)

    [payload] = provider.prepare_payloads([chat("c")])
    emulator.server.inject("POST", "/v1/batches", _echoing(status))
    with pytest.raises(expected) as submitted:
        provider.submit(payload)
    _assert_key_nowhere(submitted.value)


@pytest.mark.parametrize("fault", [Fault.reset(), Fault.truncate(5), Fault.hang()])
def test_transport_failures_chain_nothing(
    emulator: OpenAIEmulator, make_provider: Factory, handle: BatchHandle, fault: Fault
) -> None:
    provider = make_provider(max_retries=0, timeout=0.3)
    emulator.server.inject("GET", RETRIEVE, fault)
    with pytest.raises(ProviderError) as caught:
        provider.poll_status(handle)
    _assert_key_nowhere(caught.value)
