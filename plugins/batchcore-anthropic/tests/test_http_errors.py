"""HTTP failures, injected into the emulator and seen through ``requests``: what is retried, how
long the provider waits (recorded, never slept), what each status becomes, and that the API key
never shows in an error."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from batchcore import (
    AuthenticationError,
    BatchHandle,
    BatchRequest,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
)
from batchcore.testing import Fault, ManualClock
from batchcore_anthropic import BatchNotVisibleYetError
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator, error_fault

MODEL = "claude-haiku-4-5"
CREATE = ("POST", "/v1/messages/batches")
RETRIEVE = ("GET", "/v1/messages/batches/{batch_id}")
RESULTS = ("GET", "/v1/messages/batches/{batch_id}/results")
MakeProvider = Callable[..., AnthropicBatchProvider]


def chat(custom_id: str) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model=MODEL,
        messages=[{"role": "user", "content": f"Hi {custom_id}"}],
        params={"max_tokens": 16},
    )


def submit(provider: AnthropicBatchProvider, count: int = 1) -> BatchHandle:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(count)])
    try:
        return provider.submit(payload)
    finally:
        payload.discard()


@pytest.fixture
def handle(provider: AnthropicBatchProvider, clock: ManualClock) -> BatchHandle:
    created = submit(provider, 3)
    clock.advance(120)  # past the post-create 404 window, and ended
    return created


# -- transient: retried, with the server's wait or the backoff ----------------------------------


def test_429_with_retry_after_waits_as_asked(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator, sleeps: list[float]
) -> None:
    emulator.inject(*CREATE, error_fault(429, headers={"retry-after": "7"}))
    submit(provider)
    assert sleeps == [7.0]
    assert emulator.server.count(*CREATE) == 2
    assert len(emulator.batch_ids()) == 1


def test_429_without_retry_after_backs_off(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator, sleeps: list[float]
) -> None:
    emulator.inject(*CREATE, error_fault(429), times=2)
    submit(provider)
    assert len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


def test_429_that_persists_surfaces_as_rate_limit(
    make_provider: MakeProvider, emulator: AnthropicEmulator, sleeps: list[float]
) -> None:
    provider = make_provider(max_retries=1)
    emulator.inject(*CREATE, error_fault(429, headers={"retry-after": "2"}), times=5)
    with pytest.raises(RateLimitError) as caught:
        submit(provider)
    assert caught.value.retry_after == 2.0
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_error"
    assert caught.value.request_id == "req_emulated_fault"
    assert sleeps == [2.0]
    assert emulator.server.count(*CREATE) == 2
    assert emulator.batch_ids() == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(error_fault(500), ProviderServerError, id="500 api_error"),
        pytest.param(error_fault(504), ProviderTimeoutError, id="504 timeout_error"),
        pytest.param(error_fault(529), OverloadedError, id="529 overloaded_error"),
        pytest.param(error_fault(503, "overloaded_error"), OverloadedError, id="503"),
        pytest.param(Fault.reset(), ProviderConnectionError, id="connection reset"),
        pytest.param(Fault.truncate(12), ProviderConnectionError, id="truncated body"),
    ],
)
def test_transient_failures_are_retried_then_raised(
    make_provider: MakeProvider,
    emulator: AnthropicEmulator,
    handle: BatchHandle,
    sleeps: list[float],
    fault: Fault,
    error: type[ProviderError],
) -> None:
    provider = make_provider()
    emulator.inject(*RETRIEVE, fault)
    assert provider.poll_status(handle).batch_id == handle.batch_id  # retried once, then fine
    assert len(sleeps) == 1
    assert emulator.server.count(*RETRIEVE) == 2

    once = make_provider(max_retries=0)
    emulator.inject(*RETRIEVE, fault)
    with pytest.raises(error) as caught:
        once.poll_status(handle)
    assert caught.value.retryable
    assert caught.value.provider == "anthropic"


def test_timeout_of_a_hanging_call(
    make_provider: MakeProvider, emulator: AnthropicEmulator, handle: BatchHandle
) -> None:
    provider = make_provider(timeout=0.2, max_retries=0)
    emulator.inject(*RETRIEVE, Fault.hang())
    with pytest.raises(ProviderTimeoutError, match="timed out"):
        provider.poll_status(handle)
    patient = make_provider(timeout=0.2, max_retries=1)
    emulator.inject(*RETRIEVE, Fault.hang())
    assert patient.poll_status(handle).batch_id == handle.batch_id


def test_results_cut_short_raise_and_can_be_fetched_again(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator, clock: ManualClock
) -> None:
    handle = submit(provider, 40)
    clock.advance(120)
    emulator.inject(*RESULTS, Fault.truncate(3000))
    received: list[str] = []

    def consume() -> None:
        received.extend(result.custom_id for result in provider.fetch_results(handle))

    with pytest.raises(ProviderConnectionError, match="cut short"):
        consume()
    assert len(received) < 40  # a cut raises: it never passes for a shorter, complete list
    assert len({r.custom_id for r in provider.fetch_results(handle)}) == 40


def test_results_download_is_retried_before_streaming(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    handle: BatchHandle,
    sleeps: list[float],
) -> None:
    emulator.inject(*RESULTS, error_fault(529))
    assert len(list(provider.fetch_results(handle))) == 3
    assert len(sleeps) == 1


def test_should_retry_header_wins(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    handle: BatchHandle,
    sleeps: list[float],
) -> None:
    emulator.inject(*RETRIEVE, error_fault(500, headers={"x-should-retry": "false"}))
    with pytest.raises(ProviderError) as caught:
        provider.poll_status(handle)
    assert not caught.value.retryable
    assert sleeps == []


# -- permanent: raised at once, with the specific subclass ----------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "error"),
    [
        (400, "invalid_request_error", InvalidRequestError),
        (401, "authentication_error", AuthenticationError),
        (402, "billing_error", QuotaExceededError),
        (403, "permission_error", PermissionDeniedError),
        (404, "not_found_error", NotFoundError),
        (413, "request_too_large", RequestTooLargeError),
    ],
)
def test_permanent_statuses(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    handle: BatchHandle,
    sleeps: list[float],
    status: int,
    error_type: str,
    error: type[ProviderError],
) -> None:
    emulator.inject(*RETRIEVE, error_fault(status, error_type, "it cannot work"))
    with pytest.raises(error) as caught:
        provider.poll_status(handle)
    assert type(caught.value) is error
    assert not caught.value.retryable
    assert (caught.value.status_code, caught.value.code) == (status, error_type)
    assert "it cannot work" in str(caught.value)
    assert sleeps == []
    assert emulator.server.count(*RETRIEVE) == 1


def test_real_413_for_an_oversized_body(
    make_provider: MakeProvider, emulator: AnthropicEmulator
) -> None:
    emulator.max_body_bytes = 200
    provider = make_provider()
    with pytest.raises(RequestTooLargeError):
        submit(provider, 5)
    assert emulator.batch_ids() == []


def chain(error: BaseException) -> list[BaseException]:
    """*error* and everything reachable through ``__cause__`` and ``__context__``."""
    found: list[BaseException] = []
    stack = [error]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return found


def assert_secret_unreachable(error: BaseException, secret: str) -> None:
    """Not in the message, repr, args, attributes or pickle of *error* or of any exception
    it was raised from or during."""
    for item in chain(error):
        for text in (str(item), repr(item), repr(item.args), repr(vars(item))):
            assert secret not in text, f"{type(item).__name__} shows the key"
        assert secret.encode() not in pickle.dumps(item), f"{type(item).__name__} pickles it"
        assert secret not in repr(pickle.loads(pickle.dumps(item)))


def test_wrong_key_is_an_authentication_error_without_the_key(
    make_provider: MakeProvider, emulator: AnthropicEmulator
) -> None:
    wrong = "sk-ant-api03-WRONG-KEY-that-must-never-print-0000"
    provider = make_provider(api_key=wrong)
    with pytest.raises(AuthenticationError) as caught:
        submit(provider)
    assert_secret_unreachable(caught.value, wrong)
    assert wrong not in repr(provider)


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (400, InvalidRequestError)]
)
@pytest.mark.parametrize("route", [CREATE, RETRIEVE], ids=["create", "retrieve"])
def test_a_key_echoed_by_the_server_is_in_no_exception(
    make_provider: MakeProvider,
    emulator: AnthropicEmulator,
    handle: BatchHandle,
    status: int,
    error: type[ProviderError],
    route: tuple[str, str],
) -> None:
    key = emulator.api_key
    provider = make_provider()
    emulator.inject(*route, error_fault(status, message=f"the key {key} cannot do this"))
    call = (lambda: submit(provider)) if route == CREATE else (lambda: provider.poll_status(handle))
    with pytest.raises(error) as caught:
        call()
    assert "[REDACTED]" in str(caught.value)
    assert_secret_unreachable(caught.value, key)


def test_a_key_echoed_in_the_404_of_a_new_batch_is_in_no_exception(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    # The grace window turns the 404 into another exception: the 404 must not ride along.
    key = emulator.api_key
    fresh = submit(provider)
    emulator.inject(*RETRIEVE, error_fault(404, message=f"no batch for {key}"))
    with pytest.raises(BatchNotVisibleYetError) as caught:
        provider.poll_status(fresh)
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert_secret_unreachable(caught.value, key)


def test_secrets_echoed_by_the_server_are_redacted(
    provider: AnthropicBatchProvider, emulator: AnthropicEmulator, handle: BatchHandle
) -> None:
    key = emulator.api_key
    emulator.inject(*RETRIEVE, error_fault(400, message=f"your key {key} is odd"))
    with pytest.raises(InvalidRequestError) as caught:
        provider.poll_status(handle)
    assert key not in str(caught.value) and key not in repr(caught.value)
    assert "[REDACTED]" in str(caught.value)


def test_no_secret_in_transport_errors(
    make_provider: MakeProvider, emulator: AnthropicEmulator, handle: BatchHandle
) -> None:
    provider = make_provider(max_retries=0, timeout=0.2)
    for fault in (Fault.reset(), Fault.hang()):
        emulator.inject(*RETRIEVE, fault)
        with pytest.raises(ProviderError) as caught:
            provider.poll_status(handle)
        assert emulator.api_key not in str(caught.value) + repr(caught.value)
