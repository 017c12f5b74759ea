"""When to retry a failed call and how long to wait, as the official vendor SDKs do it."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

__all__ = ["RetryPolicy"]


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
        return backoff * (1 - 0.25 * self.jitter())
