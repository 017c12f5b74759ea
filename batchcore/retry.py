"""When to retry a failed call and how long to wait: the one rule of the project.

Two layers, and only two, ever retry:

1. **A call** (one HTTP request of a provider) is tried at most ``1 + max_retries`` times in a
   row by :func:`retry_call` / :func:`retry_iter`, backing off from ``initial_delay`` to
   ``max_delay`` seconds with jitter, or waiting what the server asked (``Retry-After``) when that
   is at most ``max_retry_after`` (120 s, as the official SDKs do). A longer ``Retry-After`` is not
   slept through: the error is raised at once with ``retry_after`` set. A call whose outcome is
   unknown (:class:`~batchcore.errors.OutcomeUnknownError`) is retried only when repeating it is
   harmless (``idempotent=True``); a create that is not idempotent is reconciled by the provider
   instead (:meth:`~batchcore.provider.BaseBatchProvider.submit`).
2. **A step of a job** (submit, poll, fetch of one batch) whose call still fails transiently is
   not retried in a loop by the runner: it is postponed *in the store*, by ``first_postponement``
   seconds doubling up to ``max_postponement`` (30 s, 1, 2, 4, 8 min, then 15 min), or by the
   server's ``Retry-After`` when that is longer, and the job moves on with its other batches.
   After ``max_postponements`` postponements in a row of the same step (about an hour of
   failures with the defaults), or when a server asks to wait longer than ``max_wait`` (an
   hour), the job stops (exit 3, the job is kept) and says when to resume.

So the most calls one step can make before the job stops is
``(1 + max_retries) * (1 + max_postponements)``, and every wait longer than a few seconds is a
postponement that the progress output shows with the time it ends.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs

from batchcore.errors import OutcomeUnknownError, ProviderError

__all__ = ["RetryPolicy", "retry_call", "retry_iter"]

T = TypeVar("T")
log = logging.getLogger("batchcore.retry")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """The retry rule for calls (``max_retries`` ... ``max_retry_after``) and for job steps
    (``max_postponements``, ``max_wait``); see the module docstring for how they combine.

    Call defaults match the openai/anthropic SDKs: start at 0.5 s, cap at 8 s, and never sleep
    through a ``Retry-After`` longer than 120 s.
    """

    max_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    initial_delay: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_delay: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))
    max_postponements: int = attrs.field(default=8, validator=attrs.validators.ge(0))
    first_postponement: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    max_postponement: float = attrs.field(default=900.0, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=3600.0, validator=attrs.validators.ge(0))
    jitter: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before retry *retry_number* (1-based) of one call, or None to stop
        retrying and raise."""
        if retry_number > self.max_retries:
            return None
        if retry_after is not None:
            return None if retry_after > self.max_retry_after else retry_after
        backoff = min(self.initial_delay * 2 ** (retry_number - 1), self.max_delay)
        return float(backoff * (1 - 0.25 * self.jitter()))

    def postponement(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to postpone a job step after its *failures*-th transient failure in a row,
        or None when the job should stop instead (too many failures, or a ``Retry-After``
        longer than ``max_wait``)."""
        if failures > self.max_postponements:
            return None
        if retry_after is not None and retry_after > self.max_wait:
            return None
        backoff = min(self.first_postponement * 2 ** max(failures - 1, 0), self.max_postponement)
        return float(max(backoff, retry_after or 0.0))

    def to_dict(self) -> dict[str, float]:
        return {
            "max_retries": self.max_retries,
            "max_postponements": self.max_postponements,
            "first_postponement": self.first_postponement,
            "max_postponement": self.max_postponement,
            "max_wait": self.max_wait,
        }


def _retryable(error: ProviderError, idempotent: bool) -> bool:
    if not error.retryable:
        return False
    return idempotent or not isinstance(error, OutcomeUnknownError)


def retry_call(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    describe: str = "call",
    idempotent: bool = True,
) -> T:
    """Run *call*, retrying retryable :class:`ProviderError`\\ s under *policy*.

    With ``idempotent=False`` an :class:`~batchcore.errors.OutcomeUnknownError` is raised at
    once: the call may have taken effect, and repeating it could do it twice.
    """
    retry_number = 0
    while True:
        try:
            return call()
        except ProviderError as error:
            if not _retryable(error, idempotent):
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

    The streaming sibling of :func:`retry_call` (for reads, which are always idempotent): a
    download cut short is simply read again, so callers skip what they have already seen
    (results are joined on custom_id anyway).
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
