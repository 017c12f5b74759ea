"""What a failed call to the fake vendor raises, as a vendor SDK raises its own exceptions.

An HTTP error answer is a :class:`FakeAPIError` (status, body, headers); a call that got no
complete answer is a :class:`FakeTransportError`, named as httpx names the failure, so the
core's :func:`~batchcore.classify.transport_failure` tells *nothing was sent* from *the outcome
is unknown* exactly as it does for a real SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "FAIL_KINDS",
    "ConnectError",
    "ConnectTimeout",
    "FakeAPIError",
    "FakeTransportError",
    "ReadTimeout",
    "RemoteProtocolError",
    "fault_error",
    "http_error",
]


class FakeAPIError(Exception):
    """A failed call to the fake vendor, as a vendor SDK raises it: an HTTP error answer with
    ``status_code``, ``body`` and ``headers``. :class:`FakeBatchProvider` translates it into a
    batchcore error; it never reaches the users of a conformant provider."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})


class FakeTransportError(FakeAPIError):
    """A call that got no complete answer. The subclasses carry the names httpx gives these
    failures, so :func:`batchcore.classify.transport_failure` tells *nothing was sent* from
    *the outcome is unknown* exactly as it does for a real SDK."""


class ConnectError(FakeTransportError):
    """The connection failed: nothing was sent."""


class ConnectTimeout(FakeTransportError):
    """Connecting timed out: nothing was sent."""


class ReadTimeout(FakeTransportError):
    """The request was sent and its answer did not come in time."""


class RemoteProtocolError(FakeTransportError):
    """The request was sent and the connection broke before the answer."""


def http_error(status: int, message: str, code: str | None, **headers: str) -> FakeAPIError:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return FakeAPIError(message, status_code=status, body=body, headers=headers)


def _mask(key: str | None) -> str:
    # As vendors echo keys: enough to recognise one, never the key itself.
    if not key:
        return "<none>"
    return key[:3] + "*" * 8 + key[-2:] if len(key) >= 8 else "*" * 8


def fault_error(kind: str, api_key: str | None, *, sent: bool) -> FakeAPIError:
    """The exception a call failing with fault *kind* raises; *sent*: whether the vendor had
    received the request (the transport faults then leave its outcome unknown)."""
    if kind == "rate_limit":
        return http_error(
            429, "Rate limit reached for requests", "rate_limit_exceeded", **{"retry-after": "0"}
        )
    if kind == "server_error":
        return http_error(500, "The server had an error while processing your request.", None)
    if kind == "overloaded":
        return http_error(503, "Slow Down", "overloaded")
    if kind == "unauthorized":
        return http_error(401, f"Incorrect API key provided: {_mask(api_key)}.", "invalid_api_key")
    if kind == "quota":
        return http_error(
            429, "You exceeded your current quota, please check your plan.", "insufficient_quota"
        )
    if kind == "reset":
        return (
            RemoteProtocolError("connection reset by peer")
            if sent
            else ConnectError("connection reset by peer")
        )
    if kind == "timeout":
        return ReadTimeout("read timed out") if sent else ConnectTimeout("connect timed out")
    raise AssertionError(f"unknown fault {kind!r}")


#: The fault kinds ``fail_next`` takes by name.
FAIL_KINDS = (
    "rate_limit",
    "server_error",
    "overloaded",
    "unauthorized",
    "quota",
    "reset",
    "timeout",
)
