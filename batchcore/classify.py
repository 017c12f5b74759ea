"""Turning a vendor's failure into the right batchcore exception or result error, written once.

* :func:`error_from_response` - an HTTP error answer (status, body, headers). Used by the shared
  ``requests`` transport and by plugins that talk through a vendor SDK (they pass the SDK
  exception's status, body and headers here), so every provider classifies the same status the
  same way. The order of decisions follows the official SDKs: an explicit ``x-should-retry``
  header wins, then the status code, then the vendor's error code.
* :func:`transport_failure` - a call that got no complete answer (from ``requests``, ``httpx``
  or an SDK wrapping them), split into *nothing was sent* (safe to repeat) and *outcome unknown*
  (the vendor may have acted), which decides whether a create may be retried.
* :func:`result_error` - one request's failure inside a batch, with the one rule for whether
  resubmitting it can help.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from batchcore.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderPermanentError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderTransientError,
    QueueFullError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ResponseLostError,
    ResponseTimeoutError,
    UnsupportedModelError,
    redact,
)
from batchcore.retry import readable_retry_after

__all__ = [
    "QUEUE_CODES",
    "RETRYABLE_RESULT_CODES",
    "error_from_response",
    "parse_retry_after",
    "result_error",
    "should_retry_header",
    "transport_failure",
]

#: Error codes that mean "no money/quota", whatever the status says (OpenAI sends them on 429).
QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "billing_error"}
)
#: Error codes that mean "the vendor's batch queue is full": wait for room, nothing is wrong.
QUEUE_CODES = frozenset({"batch_queue_full", "queue_full", "enqueued_limit_exceeded"})
#: Error codes that mean "this model is not served here".
MODEL_CODES = frozenset({"model_not_found", "unsupported_model", "model_not_available"})

if TYPE_CHECKING:
    from batchcore.models import ResultError

_MAX_MESSAGE = 500
#: Where vendors put the id of a request, for support (OpenAI, Anthropic, Mistral, Google).
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "mistral-correlation-id", "x-goog-request-id")


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, item in headers.items():
            if key.lower() == lowered:
                return item
    return value


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after`` as seconds
    or as an HTTP date. None when absent or unreadable (``nan``, ``-inf``, not a number or a
    date); a negative wait reads as 0 and anything longer than a year (``inf``, ``1e300``) as a
    year, which is over every cap (:func:`batchcore.retry.readable_retry_after`)."""
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        found = readable_retry_after(_number(raw_ms))
        if found is not None:
            return readable_retry_after(found / 1000.0)
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return readable_retry_after(seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    current = time.time() if now is None else now
    return readable_retry_after(when.timestamp() - current)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def should_retry_header(headers: Mapping[str, str] | None) -> bool | None:
    """The server's explicit ``x-should-retry`` verdict, if it gave one."""
    value = _header(headers, "x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(message, code, request_id) from an OpenAI- or Anthropic-style error body."""
    if isinstance(body, (bytes, bytearray, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
        try:
            body = orjson.loads(text) if text.strip() else None
        except orjson.JSONDecodeError:
            return (text.strip()[:_MAX_MESSAGE] or None), None, None
    if not isinstance(body, Mapping):
        return None, None, None
    error = body.get("error", body)
    request_id = body.get("request_id")
    if isinstance(error, str):
        return error, None, request_id
    if not isinstance(error, Mapping):
        return None, None, request_id
    message = _text_of(error.get("message")) or _text_of(error.get("detail"))
    code = error.get("code") or error.get("type")
    return (
        message,
        str(code) if code is not None else None,
        request_id if isinstance(request_id, str) else None,
    )


def _text_of(value: Any) -> str | None:
    """A message as vendors spell it: a string, or a list of strings or of validation items
    (``{"loc": [...], "msg": ...}``, as FastAPI-style 422 bodies have)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for item in value[:5]:
            if isinstance(item, Mapping) and "msg" in item:
                where = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts) or None
    return str(value)


def error_from_response(
    *,
    provider: str,
    status_code: int,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    action: str | None = None,
) -> ProviderError:
    """The exception for a failed HTTP call. Never raises; never leaks *secrets*."""
    message, code, request_id = _error_fields(body)
    for name in _REQUEST_ID_HEADERS:
        request_id = request_id or _header(headers, name)
    retry_after = parse_retry_after(headers)
    text = (message or f"HTTP {status_code}")[:_MAX_MESSAGE]
    if action:
        text = f"{action}: {text}"
    secrets = tuple(secrets)
    text = redact(text, secrets)
    # Everything a vendor sent back may echo the key, not only the message.
    details: dict[str, Any] = {
        "provider": provider,
        "status_code": status_code,
        "retry_after": retry_after,
        "code": None if code is None else redact(str(code), secrets)[:_MAX_MESSAGE],
        "request_id": None if request_id is None else redact(str(request_id), secrets)[:200],
    }
    cls = _classify(status_code, code)
    verdict = should_retry_header(headers)
    if verdict is True and not issubclass(cls, ProviderTransientError):
        cls = ProviderTransientError
    elif verdict is False and issubclass(cls, ProviderTransientError):
        cls = ProviderPermanentError
    return cls(text, **details)


def _classify(status: int, code: str | None) -> type[ProviderError]:
    if code in QUEUE_CODES:
        return QueueFullError
    if code in QUOTA_CODES:
        return QuotaExceededError
    if code in MODEL_CODES:
        return UnsupportedModelError
    if status == 400 or status == 422:
        return InvalidRequestError
    if status == 401:
        return AuthenticationError
    if status == 402:
        return QuotaExceededError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 408:
        return ProviderTimeoutError
    if status == 409:
        return ProviderTransientError
    if status == 413:
        return RequestTooLargeError
    if status == 429:
        return RateLimitError
    if status in (503, 529):
        return OverloadedError
    # A gateway that timed out or lost its upstream answers for a request the vendor may have
    # carried out: the outcome is unknown, and a create is reconciled, not repeated.
    if status == 504:
        return ResponseTimeoutError
    if status == 502:
        return ResponseLostError
    if status >= 500:
        return ProviderServerError
    return ProviderPermanentError


# -- calls without a complete answer ------------------------------------------------------------

#: Exception class names (from requests, urllib3, httpx, httpx2, aiohttp, the socket layer) that
#: can only happen before the request left: connecting, resolving, waiting for a pooled
#: connection. Names, not classes, so the core imports none of those libraries.
_NOT_SENT = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ConnectTimeoutError",
        "NewConnectionError",
        "NameResolutionError",
        "ConnectionRefusedError",
        "gaierror",
        "PoolTimeout",
        "ClientConnectorError",
    }
)


def _causes(exc: BaseException) -> list[BaseException]:
    """*exc*, what it was raised from or during, and what requests/urllib3 wrap in args."""
    found: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack and len(found) < 32:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        for nested in (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *(a for a in getattr(current, "args", ()) if isinstance(a, BaseException)),
        ):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return found


def transport_failure(
    exc: BaseException,
    *,
    provider: str,
    action: str | None = None,
    secrets: Iterable[str | None] = (),
    timeout: float | None = None,
) -> ProviderError:
    """The exception for a call that got no complete HTTP answer.

    A failure while connecting is a :class:`ProviderConnectionError` (or a plain
    :class:`ProviderTimeoutError` for a connect timeout): nothing was sent. Anything later (a
    read timeout, a reset or closed connection, a body cut short) is an
    :class:`~batchcore.errors.OutcomeUnknownError` (:class:`ResponseTimeoutError` or
    :class:`ResponseLostError`). The message names the failure's type, never its text (which
    can quote a request).
    """
    chain = _causes(exc)
    names = [type(item).__name__ for item in chain]
    timed_out = any("Timeout" in name or name == "timeout" for name in names)
    kind = next((n for n in names if n not in ("APIConnectionError", "APITimeoutError")), names[0])
    if any(name in _NOT_SENT for name in names):
        what = "timed out connecting" if timed_out else "could not connect"
        cls: type[ProviderError] = ProviderTimeoutError if timed_out else ProviderConnectionError
    elif timed_out:
        after = f" after {timeout:g}s" if timeout else ""
        what = (
            f"timed out waiting for the answer{after}; the request was sent, so it may have "
            "taken effect"
        )
        cls = ResponseTimeoutError
    else:
        what = "the connection broke before the whole answer arrived; it may have taken effect"
        cls = ResponseLostError
    text = f"{what} ({kind})"
    return cls(redact(f"{action}: {text}" if action else text, secrets), provider=provider)


# -- one request's failure inside a batch -------------------------------------------------------

#: Per-request error codes, in every vendor's spelling, that resubmitting the request can cure.
#: Providers add their vendor's own words through ``BaseBatchProvider.RETRYABLE_RESULT_CODES``.
RETRYABLE_RESULT_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "rate_limit_error",
        "too_many_requests",
        "resource_exhausted",
        "server_error",
        "internal_error",
        "internal_server_error",
        "api_error",
        "overloaded",
        "overloaded_error",
        "service_unavailable",
        "unavailable",
        "timeout",
        "request_timeout",
        "deadline_exceeded",
        "batch_expired",
        "batch_cancelled",
        "job_cancelled",
        "result_missing",
    }
)

#: Codes that no resubmission can cure, whatever status they come with.
_HOPELESS_RESULT_CODES = (
    QUOTA_CODES
    | MODEL_CODES
    | frozenset(
        {
            "invalid_request_error",
            "invalid_request",
            "authentication_error",
            "invalid_api_key",
            "permission_error",
            "permission_denied",
            "not_found_error",
            "not_found",
            "request_too_large",
            "billing_error",
            "content_filter",
            "content_policy_violation",
        }
    )
)


def result_error(
    *,
    code: str | None,
    message: str | None = None,
    status_code: int | None = None,
    retryable_codes: Iterable[str] = (),
) -> ResultError:
    """The :class:`ResultError` of one request that failed inside a batch.

    Retryable when the code is a known transient one (:data:`RETRYABLE_RESULT_CODES` plus the
    vendor's *retryable_codes*); not when it is a known hopeless one (quota, auth, permission,
    not found, invalid); otherwise by the HTTP-equivalent status (408, 409, 429 and 5xx are
    retryable). Unknown code and no status: not retryable (resubmitting blindly costs money).
    """
    from batchcore.models import ResultError

    if code in _HOPELESS_RESULT_CODES:
        retryable = False
    elif code in RETRYABLE_RESULT_CODES or (code is not None and code in set(retryable_codes)):
        retryable = True
    elif status_code is not None:
        retryable = status_code in (408, 409, 429) or status_code >= 500
    else:
        retryable = False
    code_text = code or (f"http_{status_code}" if status_code is not None else "error")
    return ResultError(
        code=code_text,
        message=message or code_text,
        retryable=retryable,
        status_code=status_code,
    )
