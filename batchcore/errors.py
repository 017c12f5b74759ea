"""The exception hierarchy.

Everything batchcore raises derives from :class:`BatchcoreError`. Failures of a call to a vendor
derive from :class:`ProviderError` and are split by what a caller should do next:
:class:`ProviderTransientError` (wait and retry the same call) or :class:`ProviderPermanentError`
(retrying the same call cannot help). Failures of a single request *inside* a batch are not
exceptions at all: they come back as :class:`batchcore.models.BatchResult` data.

Exceptions pickle (a runner may send them between processes) and never carry secrets: messages
built from vendor responses pass through :func:`redact` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BatchcoreError",
    "ConfigurationError",
    "DuplicateProviderError",
    "InvalidRequestError",
    "NotFoundError",
    "OutcomeUnknownError",
    "OverloadedError",
    "PermissionDeniedError",
    "PluginLoadError",
    "PluginLoadWarning",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderPermanentError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "ProviderTransientError",
    "QueueFullError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResponseLostError",
    "ResponseTimeoutError",
    "ResultsNotReadyError",
    "StoreError",
    "UnsupportedModelError",
    "UnsupportedOperationError",
    "redact",
]

_REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return *text* with every non-trivial secret in *secrets* replaced by ``[REDACTED]``."""
    for secret in secrets:
        # Very short "secrets" (test keys like "x") would shred ordinary text and protect nothing.
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class BatchcoreError(Exception):
    """Root of every exception batchcore raises on purpose."""


class ConfigurationError(BatchcoreError, ValueError):
    """A provider or runner was given configuration it cannot use (unknown key, bad value)."""


class ProviderError(BatchcoreError):
    """A call to a batch provider failed.

    ``provider`` is the provider name, ``status_code`` the HTTP status when there was a response,
    ``retry_after`` the server's requested wait in seconds when it gave one, ``code`` the vendor's
    machine-readable error code or type, and ``request_id`` the vendor's request id for support.
    """

    #: Whether retrying the same call later can succeed. Subclasses fix it.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.code = code
        self.request_id = request_id

    def _details(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "code": self.code,
            "request_id": self.request_id,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes are lost by Exception's default pickling, which only replays args.
        return (_rebuild_provider_error, (type(self), self.message, self._details()))

    def __str__(self) -> str:
        prefix = f"[{self.provider}] " if self.provider else ""
        suffix = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{prefix}{self.message}{suffix}"

    def __repr__(self) -> str:
        details = ", ".join(f"{k}={v!r}" for k, v in self._details().items() if v is not None)
        return f"{type(self).__name__}({self.message!r}{', ' if details else ''}{details})"


def _rebuild_provider_error(
    cls: type[ProviderError], message: str, details: dict[str, Any]
) -> ProviderError:
    return cls(message, **details)


class ProviderTransientError(ProviderError):
    """The call may succeed if retried later: rate limits, timeouts, overload, 5xx, resets."""

    retryable = True


class ProviderPermanentError(ProviderError):
    """Retrying the same call cannot help: bad key, bad request, unsupported model, no quota."""

    retryable = False


# Transient


class RateLimitError(ProviderTransientError):
    """HTTP 429 that a wait can cure. ``retry_after`` says how long, when the vendor said."""


class QueueFullError(RateLimitError):
    """The vendor refused a create because its batch queue for this account (or model) is
    full: a wait for capacity, not a failure of the requests. The runner keeps the batch
    prepared and submits it when earlier batches end, without counting an attempt."""


class ProviderServerError(ProviderTransientError):
    """HTTP 5xx from the vendor."""


class OverloadedError(ProviderServerError):
    """The vendor is overloaded (Anthropic 529, OpenAI 503 "Slow Down")."""


class ProviderTimeoutError(ProviderTransientError):
    """The call timed out (client side, or HTTP 408/504)."""


class ProviderConnectionError(ProviderTransientError):
    """The connection failed. Raised as such (not as :class:`OutcomeUnknownError`), nothing
    was sent: the call is safe to repeat whatever it does."""


class OutcomeUnknownError(ProviderTransientError):
    """The call was sent, but no complete answer came back (a read timeout, a connection
    reset or closed after sending, a body cut short): the vendor may have done what was asked.

    Retrying is safe for reads and for calls the vendor deduplicates; a create that is not
    idempotent is reconciled instead (see :meth:`BaseBatchProvider.submit`), never repeated
    blindly.
    """


class ResponseTimeoutError(OutcomeUnknownError, ProviderTimeoutError):
    """The request was sent and the answer did not arrive in time."""


class ResponseLostError(OutcomeUnknownError, ProviderConnectionError):
    """The request was sent and the connection broke before the whole answer arrived."""


# Permanent


class AuthenticationError(ProviderPermanentError):
    """The API key is missing, malformed or revoked (HTTP 401)."""


class PermissionDeniedError(ProviderPermanentError):
    """The key is valid but not allowed to do this (HTTP 403: region, workspace, model access)."""


class NotFoundError(ProviderPermanentError):
    """The batch, file or route does not exist (HTTP 404)."""


class QuotaExceededError(ProviderPermanentError):
    """Billing or quota stops the call until a human acts (OpenAI ``insufficient_quota``,
    Anthropic 402 ``billing_error`` or a spend-cap 429 without ``retry-after``)."""


class InvalidRequestError(ProviderPermanentError, ValueError):
    """The input is invalid: found by batchcore before any network call, or reported by the vendor
    (HTTP 400/422). Local validation errors name the ``custom_id`` and field at fault."""

    def __init__(
        self,
        message: str,
        *,
        custom_id: str | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.custom_id = custom_id
        self.field = field

    def _details(self) -> dict[str, Any]:
        return {**super()._details(), "custom_id": self.custom_id, "field": self.field}


class RequestTooLargeError(InvalidRequestError):
    """The request body exceeds what the vendor accepts (HTTP 413)."""


class UnsupportedModelError(InvalidRequestError):
    """The provider does not serve this model; raised by ``prepare_payloads`` before any network
    call, or mapped from the vendor's "model not found" answer."""

    def __init__(self, message: str, *, model: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.model = model

    def _details(self) -> dict[str, Any]:
        return {**super()._details(), "model": self.model}


class UnsupportedOperationError(ProviderPermanentError):
    """The provider does not offer this operation (for example, cancelling a batch)."""


class ResultsNotReadyError(ProviderPermanentError):
    """``fetch_results`` was called before the batch ended. Poll until ``is_terminal``."""


class AmbiguousSubmitError(ProviderPermanentError):
    """A create whose answer was lost may have made a batch, and more than one batch at the
    vendor could be it. Nothing was created again. ``candidates`` holds their batch ids; a
    human decides (``batchcore resolve``)."""

    def __init__(self, message: str, *, candidates: Iterable[str] = (), **details: Any) -> None:
        super().__init__(message, **details)
        self.candidates = tuple(candidates)

    def _details(self) -> dict[str, Any]:
        return {**super()._details(), "candidates": self.candidates}


# The job store


class StoreError(BatchcoreError):
    """The job store is unavailable or damaged: it cannot be opened or created, is read-only,
    the disk is full, or the file is not a store. ``where`` names the store (a path or a URL
    without its password); the message says the cause. Nothing already recorded is lost: once
    the cause is fixed, ``batchcore resume JOB`` continues."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_store_error, (type(self), str(self), self.where))


def _rebuild_store_error(cls: type[StoreError], message: str, where: str) -> StoreError:
    return cls(message, where=where)


# Registry


class ProviderNotFoundError(BatchcoreError, LookupError):
    """No provider of that name is installed. The message lists what is installed and any plugin
    that failed to load."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_with_name, (type(self), str(self), self.name))


class DuplicateProviderError(BatchcoreError):
    """Two providers claim the same name. The message names both sources."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_with_name, (type(self), str(self), self.name))


def _rebuild_with_name(cls: type[Any], message: str, name: str) -> Any:
    return cls(message, name=name)


class PluginLoadError(BatchcoreError):
    """A plugin could not be loaded: its import failed, a hook is misspelled, a hook returned
    something that is not a provider, or its provider class is broken."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and was skipped; the other providers keep working."""
