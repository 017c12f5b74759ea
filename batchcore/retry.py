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
``(1 + max_retries) * (1 + max_postponements)``.

**Every wait longer than** :data:`VISIBLE_WAIT` **seconds is shown** with the time it ends: a
postponement as the runner's ``WAITING`` event, and a sleep inside one call (a ``Retry-After``
of up to 120 s, a long backoff) too: :func:`retry_call` / :func:`retry_iter` tell the wait
reporter that :func:`reporting_waits` installs for the current context (the runner installs one
around each step, so the CLI's progress line and ``on_progress`` see it). :func:`announce_wait`
is that one rule; code that sleeps on its own calls it as well.

``Retry-After`` values are read by :func:`readable_retry_after`: a value that is not a number
(``nan``, ``-inf``) is no answer at all, a negative one is 0, and anything longer than
:data:`LONGEST_RETRY_AFTER` (``inf``, ``1e300``) is that long: over every cap, never a crash.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import random
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

import attrs

from batchcore.errors import OutcomeUnknownError, ProviderError

__all__ = [
    "LONGEST_RETRY_AFTER",
    "VISIBLE_WAIT",
    "RetryPolicy",
    "Wait",
    "announce_wait",
    "capped_growth",
    "readable_retry_after",
    "reporting_waits",
    "retry_call",
    "retry_iter",
]

T = TypeVar("T")
log = logging.getLogger("batchcore.retry")

#: Waits longer than this many seconds are reported (shown in progress output), not only logged.
VISIBLE_WAIT = 3.0
#: The longest ``Retry-After`` taken literally (a year): longer is read as this, over every cap.
LONGEST_RETRY_AFTER = 366 * 86_400.0


def readable_retry_after(seconds: float | None) -> float | None:
    """A server's requested wait as batchcore reads it: None when absent or not a number
    (``nan``, ``-inf``), 0 for a negative wait, at most :data:`LONGEST_RETRY_AFTER`."""
    if seconds is None or math.isnan(seconds) or seconds == -math.inf:
        return None
    return min(max(float(seconds), 0.0), LONGEST_RETRY_AFTER)


def capped_growth(start: float, factor: float, steps: int, cap: float) -> float:
    """``min(start * factor ** steps, cap)``, without ever computing a power that overflows (a
    batch polled for days, a policy with a huge retry count)."""
    steps = max(steps, 0)
    if factor > 1:
        # Growth stops at the step that reaches the cap; later steps are never computed.
        within = 0 < start < cap
        steps = min(steps, math.ceil(math.log(cap / start, factor))) if within else 0
    return min(start * factor**steps, cap)


@attrs.frozen(kw_only=True)
class Wait:
    """A wait about to happen inside a call: *seconds* long, because of *reason* (``"vendor
    asked: Retry-After"`` or ``"backing off"``), in *what* (the call), after *error*."""

    seconds: float
    reason: str
    what: str
    error: str | None = None


_reporter: contextvars.ContextVar[Callable[[Wait], None] | None] = contextvars.ContextVar(
    "batchcore_wait_reporter", default=None
)


@contextlib.contextmanager
def reporting_waits(report: Callable[[Wait], None]) -> Iterator[None]:
    """Within this block (this thread or task), waits longer than :data:`VISIBLE_WAIT` are
    passed to *report* before they are slept."""
    token = _reporter.set(report)
    try:
        yield
    finally:
        _reporter.reset(token)


def announce_wait(seconds: float, *, reason: str, what: str, error: str | None = None) -> None:
    """Say that a wait of *seconds* is about to be slept: logged, and reported to the current
    wait reporter when it is longer than :data:`VISIBLE_WAIT` (the one rule for which waits are
    shown). A failing reporter never stops the call."""
    log.info("%s: waiting %.2fs (%s)%s", what, seconds, reason, f" after: {error}" if error else "")
    if seconds <= VISIBLE_WAIT:
        return
    report = _reporter.get()
    if report is None:
        return
    try:
        report(Wait(seconds=seconds, reason=reason, what=what, error=error))
    except Exception:
        log.exception("a wait reporter failed")


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
        retry_after = readable_retry_after(retry_after)
        if retry_after is not None:
            return None if retry_after > self.max_retry_after else retry_after
        backoff = capped_growth(self.initial_delay, 2.0, retry_number - 1, self.max_delay)
        return float(backoff * (1 - 0.25 * self.jitter()))

    def postponement(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to postpone a job step after its *failures*-th transient failure in a row,
        or None when the job should stop instead (too many failures, or a ``Retry-After``
        longer than ``max_wait``)."""
        if failures > self.max_postponements:
            return None
        retry_after = readable_retry_after(retry_after)
        if retry_after is not None and retry_after > self.max_wait:
            return None
        backoff = capped_growth(self.first_postponement, 2.0, failures - 1, self.max_postponement)
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
            _announce(delay, error, f"{describe} (retry {retry_number})")
        sleep(delay)


def retry_iter(
    open_stream: Callable[[], Iterator[T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    describe: str = "stream",
) -> Generator[T, None, None]:
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
            _announce(delay, error, f"{describe} (starting over)")
        sleep(delay)


def _announce(delay: float, error: ProviderError, what: str) -> None:
    asked = readable_retry_after(error.retry_after) is not None
    reason = "vendor asked: Retry-After" if asked else "backing off"
    announce_wait(delay, reason=reason, what=what, error=str(error))
