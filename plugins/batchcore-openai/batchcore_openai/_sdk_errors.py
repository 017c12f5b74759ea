"""Translating ``openai`` SDK exceptions into batchcore's, so no SDK type escapes a provider.

Status errors go through the core's :func:`~batchcore.classify.error_from_response` (status,
body, headers), so ``x-should-retry``, ``Retry-After``, ``insufficient_quota`` and friends are
judged exactly as for every other provider.
"""

from __future__ import annotations

from collections.abc import Iterable

import openai

from batchcore.classify import error_from_response
from batchcore.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderPermanentError,
    ProviderTimeoutError,
    redact,
)

__all__ = ["transfer_error", "translate"]


def _describe(action: str, text: str, secrets: Iterable[str]) -> str:
    return redact(f"{action}: {text}", secrets)


def translate(
    exc: openai.OpenAIError, *, provider: str, secrets: Iterable[str], action: str
) -> ProviderError:
    """The batchcore exception for an SDK exception raised while doing *action*."""
    secrets = tuple(secrets)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeoutError(
            _describe(action, "the request timed out", secrets), provider=provider
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "no response"
        return ProviderConnectionError(
            _describe(action, f"connection failed ({cause})", secrets), provider=provider
        )
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        try:
            body: object = response.content or exc.body
        except Exception:  # a streamed error body the SDK did not read
            body = exc.body
        return error_from_response(
            provider=provider,
            status_code=exc.status_code,
            body=body,
            headers=response.headers,
            secrets=secrets,
            action=action,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderPermanentError(
            _describe(action, f"unexpected response (HTTP {exc.status_code})", secrets),
            provider=provider,
            status_code=exc.status_code,
        )
    return ProviderPermanentError(
        _describe(action, f"{type(exc).__name__}: {exc}", secrets), provider=provider
    )


def transfer_error(
    exc: BaseException, *, provider: str, secrets: Iterable[str], action: str
) -> ProviderError:
    """The batchcore exception for a failure while a streamed body was being read (the SDK
    hands those through from its HTTP library untranslated): a timeout or a broken transfer,
    both worth retrying."""
    if isinstance(exc, openai.OpenAIError):
        return translate(exc, provider=provider, secrets=secrets, action=action)
    name = type(exc).__name__
    if "Timeout" in name:
        return ProviderTimeoutError(
            _describe(action, f"timed out while reading the body ({name})", tuple(secrets)),
            provider=provider,
        )
    return ProviderConnectionError(
        _describe(action, f"the body was cut short ({name})", tuple(secrets)), provider=provider
    )
