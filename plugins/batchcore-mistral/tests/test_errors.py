"""Failed calls become the core's errors (transient ones retried, permanent ones not), in
Mistral's error shapes; the API key is in no exception, wherever a server echoes it."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import chat

from batchcore.plugin import (
    AuthenticationError,
    BatchHandle,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    RequestTooLargeError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.testing import Fault, SleepRecorder
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import MistralEmulator

_GET = ("GET", "/v1/batch/jobs/{job_id}")
SECRET = "sk-mistral-very-secret-0123456789"


@pytest.fixture
def handle(provider: MistralBatchProvider) -> Iterator[BatchHandle]:
    [payload] = provider.prepare_payloads([chat("a")])
    try:
        yield provider.submit(payload)
    finally:
        payload.discard()


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("rate_limit", RateLimitError, True),
        ("capacity", RateLimitError, True),
        ("server_error", ProviderServerError, True),
        ("overloaded", OverloadedError, True),
        ("unauthorized", AuthenticationError, False),
        ("not_found", NotFoundError, False),
        ("bad_request", InvalidRequestError, False),
        ("unprocessable", InvalidRequestError, False),
        ("reset", ProviderConnectionError, True),
    ],
)
def test_faults_map_to_the_core_errors(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    handle: BatchHandle,
    kind: str,
    error: type[ProviderError],
    retryable: bool,
) -> None:
    provider = make_provider(max_retries=0)
    emulator.inject_fault(kind)
    with pytest.raises(error) as caught:
        provider.poll_status(handle)
    assert caught.value.retryable is retryable
    assert caught.value.provider == "mistral"


def test_a_rate_limit_is_retried_after_what_the_server_asks(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    handle: BatchHandle,
    sleeps: SleepRecorder,
) -> None:
    provider = make_provider(max_retries=2)
    emulator.inject(
        *_GET,
        Fault.status(
            429, headers={"retry-after": "7"}, body={"message": "Requests rate limit exceeded"}
        ),
    )
    sleeps.clear()
    assert provider.poll_status(handle).batch_id == handle.batch_id
    assert sleeps == [7.0]


def test_a_401_is_not_retried(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    handle: BatchHandle,
    sleeps: SleepRecorder,
) -> None:
    provider = make_provider(max_retries=3)
    sleeps.clear()
    before = emulator.call_count()
    emulator.inject_fault("unauthorized")
    with pytest.raises(AuthenticationError):
        provider.poll_status(handle)
    assert emulator.call_count() - before == 1 and sleeps == []


def test_a_wrong_key_is_refused_with_the_gateway_shape(emulator: MistralEmulator) -> None:
    provider = MistralBatchProvider(config={"base_url": emulator.url, "api_key": "wrong-key-123"})
    handle = BatchHandle(
        provider="mistral",
        batch_id="6f1d3a0e-0000-4000-8000-000000000001",
        created_at=datetime.now(timezone.utc),
    )
    with pytest.raises(AuthenticationError) as caught:
        provider.poll_status(handle)
    assert "Unauthorized" in str(caught.value)


def test_a_403_is_a_permission_error(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    handle: BatchHandle,
) -> None:
    emulator.inject(*_GET, Fault.status(403, body={"detail": "Forbidden"}))
    with pytest.raises(PermissionDeniedError):
        make_provider(max_retries=0).poll_status(handle)


def test_gateway_failures_are_outcome_unknown(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    handle: BatchHandle,
) -> None:
    provider = make_provider(max_retries=0)
    emulator.inject(*_GET, Fault.status(502, body={"message": "Bad gateway"}))
    with pytest.raises(ResponseLostError):
        provider.poll_status(handle)
    emulator.inject(*_GET, Fault.status(504, body={"message": "Gateway timeout"}))
    with pytest.raises(ResponseTimeoutError):
        provider.poll_status(handle)


def test_an_unknown_job_is_a_404_and_a_malformed_id_a_422(
    provider: MistralBatchProvider,
) -> None:
    now = datetime.now(timezone.utc)
    missing = BatchHandle(
        provider="mistral", batch_id="6f1d3a0e-0000-4000-8000-00000000dead", created_at=now
    )
    with pytest.raises(NotFoundError):
        provider.poll_status(missing)
    malformed = BatchHandle(provider="mistral", batch_id="not-a-uuid", created_at=now)
    with pytest.raises(InvalidRequestError) as caught:
        provider.poll_status(malformed)
    assert caught.value.status_code == 422
    assert "uuid" in str(caught.value).lower()


def test_an_upload_over_the_file_limit_is_a_413(clock: Any, tmp_path: Any) -> None:
    with MistralEmulator(clock=clock, max_file_bytes=100) as emulator:
        provider = MistralBatchProvider(
            config={"base_url": emulator.url, "api_key": emulator.api_key, "max_retries": 0}
        )
        [payload] = provider.prepare_payloads([chat("a", "x" * 200)])
        try:
            with pytest.raises(RequestTooLargeError):
                provider.submit(payload)
        finally:
            payload.discard()
        assert emulator.batch_count() == 0


def test_a_download_cut_short_resumes_where_it_stopped(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator, clock: Any
) -> None:
    provider = make_provider(max_retries=2)
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(20)])
    try:
        handle = provider.submit(payload)
    finally:
        payload.discard()
    clock.advance(3600)
    provider.poll_status(handle)
    emulator.inject("GET", "/v1/files/{file_id}/content", Fault.truncate(500))
    found = [r.custom_id for r in provider.fetch_results(handle)]
    assert sorted(found) == sorted(f"r{i}" for i in range(20))
    assert emulator.server.count("GET", "/v1/files/{file_id}/content") == 2


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    stack = [error]
    while stack:
        link = stack.pop()
        if any(link is s for s in seen):
            continue
        seen.append(link)
        yield link
        stack.extend(x for x in (link.__cause__, link.__context__) if x is not None)


def _shows(error: BaseException, secret: str) -> list[str]:
    found = []
    for link in _chain(error):
        texts = [str(link), repr(link), repr(link.args), *map(repr, vars(link).values())]
        if any(secret in text for text in texts):
            found.append(type(link).__name__)
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if secret in rendered:
        found.append("the traceback")
    return found


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"message": f"Unauthorized: key {SECRET} is not valid", "request_id": SECRET}),
        (401, {"detail": f"Bearer {SECRET} unknown"}),
        (
            400,
            {
                "object": "error",
                "message": f"bad key {SECRET}",
                "type": f"invalid_request_error {SECRET}",
                "param": None,
                "code": SECRET,
            },
        ),
        (
            422,
            {
                "detail": [
                    {"type": "value_error", "loc": ["header", "authorization"], "msg": SECRET}
                ]
            },
        ),
        (500, f"upstream said: Authorization: Bearer {SECRET}".encode()),
    ],
)
def test_a_server_echoing_the_key_shows_it_in_no_exception(
    clock: Any, status: int, body: Any
) -> None:
    with MistralEmulator(clock=clock, api_key=SECRET) as emulator:
        provider = MistralBatchProvider(
            config={"base_url": emulator.url, "api_key": SECRET, "max_retries": 0}
        )
        provider.clock = clock.now
        [payload] = provider.prepare_payloads([chat("a")])
        try:
            handle = provider.submit(payload)
        finally:
            payload.discard()
        emulator.inject(*_GET, Fault.status(status, body=body, headers={"x-echo": SECRET}))
        with pytest.raises(ProviderError) as caught:
            provider.poll_status(handle)
        assert _shows(caught.value, SECRET) == []
        # A failed create and a failed upload say nothing of the key either.
        [payload] = provider.prepare_payloads([chat("b")])
        try:
            emulator.inject("POST", "/v1/files", Fault.status(status, body=body))
            with pytest.raises(ProviderError) as upload_error:
                provider.submit(payload)
        finally:
            payload.discard()
        assert _shows(upload_error.value, SECRET) == []
        assert SECRET not in repr(provider) and SECRET not in str(provider.config)


def test_a_reset_after_the_create_was_sent_shows_no_key(clock: Any) -> None:
    with MistralEmulator(clock=clock, api_key=SECRET) as emulator:
        provider = MistralBatchProvider(
            config={"base_url": emulator.url, "api_key": SECRET, "max_retries": 0}
        )
        emulator.inject("GET", "/v1/batch/jobs/{job_id}", Fault.reset())
        handle = BatchHandle(
            provider="mistral",
            batch_id="6f1d3a0e-0000-4000-8000-000000000001",
            created_at=datetime.now(timezone.utc),
        )
        with pytest.raises(ProviderConnectionError) as caught:
            provider.poll_status(handle)
        assert _shows(caught.value, SECRET) == []


def test_no_key_fails_at_the_first_call_not_before(tmp_path: Any) -> None:
    provider = MistralBatchProvider(config={"workdir": str(tmp_path)})
    [payload] = provider.prepare_payloads([chat("a")])  # offline work needs no key
    try:
        with pytest.raises(AuthenticationError) as caught:
            provider.submit(payload)
    finally:
        payload.discard()
    assert "MISTRAL_API_KEY" in str(caught.value)
