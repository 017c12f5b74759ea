"""Turning a vendor's HTTP failure into the right batchcore exception, written once.

Used by the shared ``requests`` transport and by plugins that talk through a vendor SDK (they
pass the SDK exception's status, body and headers here), so every provider classifies the same
status the same way. The order of decisions follows the official SDKs: an explicit
``x-should-retry`` header wins, then the status code, then the vendor's error code.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from batchcore.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderPermanentError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderTransientError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    UnsupportedModelError,
    redact,
)

__all__ = ["error_from_response", "parse_retry_after", "should_retry_header"]

#: Error codes that mean "no money/quota", whatever the status says (OpenAI sends them on 429).
QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "billing_error"}
)
#: Error codes that mean "this model is not served here".
MODEL_CODES = frozenset({"model_not_found", "unsupported_model", "model_not_available"})

_MAX_MESSAGE = 500


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
    or as an HTTP date. None when absent or unreadable; negative waits read as 0."""
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


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
    message = error.get("message")
    code = error.get("code") or error.get("type")
    return (
        str(message) if message is not None else None,
        str(code) if code is not None else None,
        request_id if isinstance(request_id, str) else None,
    )


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
    request_id = request_id or _header(headers, "x-request-id") or _header(headers, "request-id")
    retry_after = parse_retry_after(headers)
    text = (message or f"HTTP {status_code}")[:_MAX_MESSAGE]
    if action:
        text = f"{action}: {text}"
    text = redact(text, secrets)
    details: dict[str, Any] = {
        "provider": provider,
        "status_code": status_code,
        "retry_after": retry_after,
        "code": code,
        "request_id": request_id,
    }
    cls = _classify(status_code, code)
    verdict = should_retry_header(headers)
    if verdict is True and not issubclass(cls, ProviderTransientError):
        cls = ProviderTransientError
    elif verdict is False and issubclass(cls, ProviderTransientError):
        cls = ProviderPermanentError
    return cls(text, **details)


def _classify(status: int, code: str | None) -> type[ProviderError]:
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
    if status == 504:
        return ProviderTimeoutError
    if status >= 500:
        return ProviderServerError
    return ProviderPermanentError
