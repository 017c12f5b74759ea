"""When to retry a failed call and how long to wait, as the official vendor SDKs do it."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs

from batchcore.errors import ProviderError

__all__ = ["RetryPolicy", "retry_call", "retry_iter"]

T = TypeVar("T")
log = logging.getLogger("batchcore.retry")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring the server's ``Retry-After``.

    Defaults match the openai/anthropic SDKs: start at 0.5 s, cap at 8 s, and never wait out a
    ``Retry-After`` longer than 120 s (the caller gets the error, with ``retry_after`` set,
    and can decide).
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 120.0
    jitter: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry *retry_number* (1-based), or None to give up."""
        if retry_number > self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after
        backoff = min(self.initial_delay * 2 ** (retry_number - 1), self.max_delay)
        return float(backoff * (1 - 0.25 * self.jitter()))


def retry_call(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    describe: str = "call",
) -> T:
    """Run *call*, retrying :class:`ProviderError`s that are ``retryable`` under *policy*.

    The one retry loop of the project: the ``requests`` transport and SDK-based plugins (which
    turn their SDK's own retries off) both go through it, so every provider backs off alike.
    """
    retry_number = 0
    while True:
        try:
            return call()
        except ProviderError as error:
            if not error.retryable:
                raise
            retry_number += 1
            delay = policy.delay(retry_number, error.retry_after)
            if delay is None:
                raise
            log.info("%s failed (%s); retry %d in %.2fs", describe, error, retry_number, delay)
            sleep(delay)


def retry_iter(
    open_stream: Callable[[], Iterator[T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    describe: str = "stream",
) -> Iterator[T]:
    """Yield from ``open_stream()``; on a retryable :class:`ProviderError` (while opening or
    midway) wait under *policy* and start over from the beginning.

    The streaming sibling of :func:`retry_call`: a download cut short is simply read again,
    so callers skip what they have already seen (results are joined on custom_id anyway).
    """
    retry_number = 0
    while True:
        try:
            yield from open_stream()
            return
        except ProviderError as error:
            if not error.retryable:
                raise
            retry_number += 1
            delay = policy.delay(retry_number, error.retry_after)
            if delay is None:
                raise
            log.info("%s failed (%s); starting over in %.2fs", describe, error, delay)
            sleep(delay)
