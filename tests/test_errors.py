"""The exception taxonomy, its pickling, redaction, and how HTTP failures are classified."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

import batchcore
from batchcore import errors
from batchcore.classify import error_from_response, parse_retry_after, should_retry_header
from batchcore.retry import RetryPolicy, retry_call, retry_iter

TRANSIENT = [
    errors.RateLimitError,
    errors.ProviderServerError,
    errors.OverloadedError,
    errors.ProviderTimeoutError,
    errors.ProviderConnectionError,
]
PERMANENT = [
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.NotFoundError,
    errors.QuotaExceededError,
    errors.InvalidRequestError,
    errors.RequestTooLargeError,
    errors.UnsupportedModelError,
    errors.UnsupportedOperationError,
]


def test_every_error_is_exported_from_the_package() -> None:
    for name in errors.__all__:
        if name != "redact":
            assert getattr(batchcore, name) is getattr(errors, name)


@pytest.mark.parametrize("cls", TRANSIENT)
def test_transient_errors_are_retryable(cls: type[errors.ProviderError]) -> None:
    assert issubclass(cls, errors.ProviderTransientError)
    assert cls("x").retryable


@pytest.mark.parametrize("cls", PERMANENT)
def test_permanent_errors_are_not_retryable(cls: type[errors.ProviderError]) -> None:
    assert issubclass(cls, errors.ProviderPermanentError)
    assert not cls("x").retryable


def test_registry_errors() -> None:
    assert issubclass(errors.ProviderNotFoundError, LookupError)
    assert issubclass(errors.ProviderNotFoundError, errors.BatchcoreError)
    assert issubclass(errors.PluginLoadWarning, UserWarning)
    assert issubclass(errors.InvalidRequestError, ValueError)


@pytest.mark.parametrize("cls", TRANSIENT + PERMANENT + [errors.ProviderError])
def test_provider_errors_pickle_with_their_details(cls: type[errors.ProviderError]) -> None:
    error = cls(
        "went wrong",
        provider="openai",
        status_code=429,
        retry_after=1.5,
        code="c",
        request_id="req_1",
    )
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert (
        again.message,
        again.provider,
        again.status_code,
        again.retry_after,
        again.code,
        again.request_id,
    ) == ("went wrong", "openai", 429, 1.5, "c", "req_1")
    assert str(again) == str(error) == "[openai] went wrong (HTTP 429)"


def test_invalid_request_and_unsupported_model_pickle_their_fields() -> None:
    error = errors.UnsupportedModelError(
        "no", model="m", custom_id="c", field="model", provider="p"
    )
    again = pickle.loads(pickle.dumps(error))
    assert (again.model, again.custom_id, again.field, again.provider) == ("m", "c", "model", "p")


@pytest.mark.parametrize("cls", [errors.DuplicateProviderError, errors.ProviderNotFoundError])
def test_registry_errors_pickle(cls: type[Exception]) -> None:
    error = cls("message", name="x")  # type: ignore[call-arg]
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == "message" and again.name == "x"  # type: ignore[attr-defined]


def test_redact() -> None:
    key = "sk-proj-abcdefghijklmnop"
    assert errors.redact(f"bad key {key}!", [key, None]) == "bad key [REDACTED]!"
    assert errors.redact("short x stays", ["x"]) == "short x stays"


# -- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            400,
            {"error": {"message": "bad", "type": "invalid_request_error"}},
            errors.InvalidRequestError,
        ),
        (401, {"error": {"message": "no"}}, errors.AuthenticationError),
        (
            402,
            {"type": "error", "error": {"type": "billing_error", "message": "pay"}},
            errors.QuotaExceededError,
        ),
        (403, None, errors.PermissionDeniedError),
        (404, None, errors.NotFoundError),
        (404, {"error": {"code": "model_not_found", "message": "m"}}, errors.UnsupportedModelError),
        (408, None, errors.ProviderTimeoutError),
        (409, None, errors.ProviderTransientError),
        (413, "<html>too large</html>", errors.RequestTooLargeError),
        (422, None, errors.InvalidRequestError),
        (429, {"error": {"code": "rate_limit_exceeded", "message": "slow"}}, errors.RateLimitError),
        (
            429,
            {"error": {"code": "insufficient_quota", "message": "You exceeded your current quota"}},
            errors.QuotaExceededError,
        ),
        (500, None, errors.ProviderServerError),
        (502, None, errors.ResponseLostError),
        (503, None, errors.OverloadedError),
        (504, None, errors.ResponseTimeoutError),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            errors.OverloadedError,
        ),
        (418, None, errors.ProviderPermanentError),
    ],
)
def test_error_from_response_classifies(status: int, body: object, cls: type) -> None:
    error = error_from_response(provider="p", status_code=status, body=body)
    assert type(error) is cls
    assert error.status_code == status and error.provider == "p"


def test_error_from_response_reads_message_code_and_request_id() -> None:
    error = error_from_response(
        provider="anthropic",
        status_code=429,
        action="create batch",
        body=b'{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"},'
        b'"request_id":"req_9"}',
        headers={"Retry-After": "7"},
    )
    assert str(error) == "[anthropic] create batch: Slow down (HTTP 429)"
    assert (error.code, error.request_id, error.retry_after) == ("rate_limit_error", "req_9", 7.0)


def test_x_should_retry_overrides_the_status() -> None:
    forced = error_from_response(provider="p", status_code=400, headers={"x-should-retry": "true"})
    assert forced.retryable
    refused = error_from_response(
        provider="p", status_code=503, headers={"x-should-retry": "false"}
    )
    assert not refused.retryable
    assert should_retry_header({}) is None


def test_error_from_response_never_leaks_secrets() -> None:
    key = "sk-live-0123456789abcdef"
    error = error_from_response(
        provider="p",
        status_code=401,
        secrets=[key],
        body={"error": {"message": f"Incorrect API key provided: {key}"}},
    )
    assert key not in str(error) and key not in repr(error)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now.timestamp()) == 30.0


# -- retry policy ------------------------------------------------------------------------------


def test_retry_policy_backs_off_exponentially_with_a_cap() -> None:
    policy = RetryPolicy(max_retries=6, jitter=lambda: 0.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, None]
    jittered = RetryPolicy(max_retries=1, jitter=lambda: 1.0)
    assert jittered.delay(1) == 0.375


def test_retry_policy_honours_retry_after_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.delay(1, retry_after=12.0) == 12.0
    assert policy.delay(1, retry_after=121.0) is None


def test_retry_call_retries_transient_errors_only() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [
        errors.RateLimitError("x", retry_after=2.0),
        errors.ProviderServerError("y"),
        "done",
    ]

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(max_retries=2, jitter=lambda: 0.0)
    assert retry_call(call, policy=policy, sleep=sleeps.append) == "done"
    assert sleeps == [2.0, 1.0]

    def permanent() -> str:
        raise errors.AuthenticationError("no")

    with pytest.raises(errors.AuthenticationError):
        retry_call(permanent, policy=policy, sleep=sleeps.append)
    assert sleeps == [2.0, 1.0]


def test_retry_call_gives_up_after_max_retries() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise errors.ProviderConnectionError("reset")

    with pytest.raises(errors.ProviderConnectionError):
        retry_call(call, policy=RetryPolicy(max_retries=2), sleep=lambda _: None)
    assert len(calls) == 3


def test_retry_iter_starts_a_broken_stream_over() -> None:
    attempts: list[int] = []

    def open_stream():  # type: ignore[no-untyped-def]
        attempts.append(1)
        yield "a"
        if len(attempts) < 3:
            raise errors.ProviderConnectionError("cut short")
        yield "b"

    sleeps: list[float] = []
    got = list(
        retry_iter(
            open_stream, policy=RetryPolicy(max_retries=2, jitter=lambda: 0.0), sleep=sleeps.append
        )
    )
    assert got == ["a", "a", "a", "b"]
    assert sleeps == [0.5, 1.0]


def test_retry_iter_does_not_retry_permanent_errors() -> None:
    def open_stream():  # type: ignore[no-untyped-def]
        yield 1
        raise errors.NotFoundError("gone")

    with pytest.raises(errors.NotFoundError):
        list(retry_iter(open_stream, policy=RetryPolicy(), sleep=lambda _: None))
