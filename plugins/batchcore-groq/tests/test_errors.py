"""Errors through the core: Groq's failures become batchcore's, retried when waiting can help,
and the API key never shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from groq_support import API_KEY, FINISHED, Factory, chat

from batchcore.errors import (
    AuthenticationError,
    BatchcoreError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.models import BatchHandle, ResultStatus
from batchcore.testing import Fault, SleepRecorder
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator

RETRIEVE = API_PATH + "/batches/{batch_id}"

CALL_FAULTS = [
    ("rate_limit", RateLimitError, 429, True),
    ("server_error", ProviderServerError, 500, True),
    ("overloaded", OverloadedError, 503, True),
    ("unauthorized", AuthenticationError, 401, False),
    ("permission_denied", PermissionDeniedError, 403, False),
]


@pytest.fixture
def submitted(emulator: GroqEmulator, make_provider: Factory) -> BatchHandle:
    provider = make_provider()
    [payload] = provider.prepare_payloads([chat("a")])
    return provider.submit(payload)


@pytest.mark.parametrize(("kind", "error", "status", "transient"), CALL_FAULTS)
def test_each_failure_is_classified_by_the_core(
    emulator: GroqEmulator,
    make_provider: Factory,
    submitted: BatchHandle,
    kind: str,
    error: type[ProviderError],
    status: int,
    transient: bool,
) -> None:
    provider = make_provider(max_retries=0)
    emulator.inject_fault(kind)
    with pytest.raises(error) as caught:
        provider.poll_status(submitted)
    assert caught.value.retryable is transient
    assert caught.value.status_code == status
    assert caught.value.provider == "groq"
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize(("kind", "error", "status", "transient"), CALL_FAULTS)
def test_transient_failures_are_retried_and_permanent_ones_are_not(
    emulator: GroqEmulator,
    make_provider: Factory,
    sleeps: SleepRecorder,
    submitted: BatchHandle,
    kind: str,
    error: type[ProviderError],
    status: int,
    transient: bool,
) -> None:
    provider = make_provider(max_retries=2)
    emulator.inject_fault(kind)
    sleeps.clear()
    before = emulator.server.count("GET", RETRIEVE)
    if transient:
        assert provider.poll_status(submitted).batch_id == submitted.batch_id
        assert emulator.server.count("GET", RETRIEVE) - before == 2
        assert len(sleeps) == 1
    else:
        with pytest.raises(error):
            provider.poll_status(submitted)
        assert emulator.server.count("GET", RETRIEVE) - before == 1
        assert sleeps == []


def test_retry_after_is_honoured(
    emulator: GroqEmulator, make_provider: Factory, sleeps: SleepRecorder, submitted: BatchHandle
) -> None:
    provider = make_provider(max_retries=1)
    emulator.server.inject("GET", RETRIEVE, Fault.status(429, headers={"retry-after": "7"}))
    sleeps.clear()
    provider.poll_status(submitted)
    assert sleeps == [7.0]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(502), ResponseLostError),
        (Fault.status(504), ResponseTimeoutError),
        (Fault.reset(), ProviderConnectionError),
    ],
)
def test_gateway_failures_and_resets_are_transient(
    emulator: GroqEmulator,
    make_provider: Factory,
    submitted: BatchHandle,
    fault: Fault,
    error: type[ProviderError],
) -> None:
    emulator.server.inject("GET", RETRIEVE, fault)
    with pytest.raises(error) as caught:
        make_provider(max_retries=0).poll_status(submitted)
    assert caught.value.retryable
    emulator.server.inject("GET", RETRIEVE, fault)
    assert make_provider(max_retries=1).poll_status(submitted).batch_id == submitted.batch_id


@pytest.mark.parametrize(
    ("marker", "status", "retryable"),
    [("429", 429, True), ("500", 500, True), ("503", 503, True), ("400", 400, False)],
)
def test_failed_requests_inside_a_batch_are_results(
    emulator: GroqEmulator, make_provider: Factory, marker: str, status: int, retryable: bool
) -> None:
    provider = make_provider()
    [payload] = provider.prepare_payloads(
        [chat("ok"), chat("bad", f"[emulator-fail:{marker}] please fail")]
    )
    handle = provider.submit(payload)
    emulator.advance(FINISHED)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["ok"].status is ResultStatus.SUCCEEDED
    bad = results["bad"]
    assert bad.status is ResultStatus.ERRORED and bad.error is not None
    assert bad.error.status_code == status
    assert bad.retryable is retryable


# -- the key never shows ---------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        stack.extend(x for x in (current.__cause__, current.__context__) if x is not None)


def _batchcore_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What batchcore logged (the HTTP libraries' own debug logs echo what the server sent)."""
    return "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("batchcore")
    )


def _assert_hidden(error: BaseException) -> None:
    for link in _chain(error):
        assert isinstance(link, BatchcoreError), f"a vendor exception is chained: {link!r}"
        shown = [str(link), repr(link), repr(link.args), *map(repr, vars(link).values())]
        assert not any(API_KEY in text for text in shown), shown


ECHOING = {
    "error": {
        "message": f"Invalid API Key: {API_KEY}",
        "type": "invalid_request_error",
        "code": f"invalid_api_key:{API_KEY}",
    },
    "request_id": f"req_{API_KEY}",
}


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(401, body=ECHOING, headers={"x-request-id": API_KEY}),
        Fault.status(500, body=ECHOING),
        Fault.status(400, body=f"bad key {API_KEY}".encode()),
        Fault.reset(),
    ],
)
def test_the_key_never_shows_in_an_error(
    emulator: GroqEmulator,
    make_provider: Factory,
    submitted: BatchHandle,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    emulator.server.inject("GET", RETRIEVE, fault)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        make_provider(max_retries=0).poll_status(submitted)
    _assert_hidden(caught.value)
    assert API_KEY not in _batchcore_logs(caplog)


def test_the_key_never_shows_when_a_create_is_lost(
    emulator: GroqEmulator, make_provider: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider(timeout=0.5, max_retries=0)
    [payload] = provider.prepare_payloads([chat("a")])
    emulator.inject_fault("lost_create")
    emulator.server.inject("GET", API_PATH + "/batches", Fault.status(500, body=ECHOING))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        provider.submit(payload)
    _assert_hidden(caught.value)
    assert API_KEY not in _batchcore_logs(caplog)
    assert emulator.batch_count() == 1  # the lost create's batch; nothing sent again


def test_the_key_never_shows_in_the_provider_or_its_handles(
    emulator: GroqEmulator, make_provider: Factory, submitted: BatchHandle
) -> None:
    provider = make_provider()
    assert API_KEY not in repr(provider) and API_KEY not in str(provider.api_key)
    assert API_KEY not in repr(submitted.to_dict())
    status = provider.poll_status(submitted)
    assert API_KEY not in repr(status) and API_KEY not in repr(status.to_dict())


def test_a_wrong_key_is_an_authentication_error_without_the_key(
    emulator: GroqEmulator, submitted: BatchHandle
) -> None:
    wrong = "gsk_wrong_key_000000000000"
    provider = GroqBatchProvider(
        config={"base_url": emulator.url + API_PATH, "api_key": wrong, "max_retries": 0}
    )
    with pytest.raises(AuthenticationError) as caught:
        provider.poll_status(submitted)
    assert not caught.value.retryable
    for link in _chain(caught.value):
        assert wrong not in str(link) and wrong not in repr(vars(link))
    provider.close()
