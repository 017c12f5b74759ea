"""How a job is driven: its poll schedule, attempts and retry rule, recorded with the job."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from batchcore.retry import RetryPolicy, capped_growth, readable_retry_after

__all__ = ["JobSettings", "PollSchedule"]


@attrs.frozen(kw_only=True)
class PollSchedule:
    """How often to poll a batch: from ``min_interval``, growing by ``factor`` per poll up to
    ``max_interval``, with ``jitter`` (a fraction) so many jobs do not poll in lockstep. A
    server's ``retry_after`` is always respected."""

    min_interval: float = 5.0
    max_interval: float = 60.0
    factor: float = 1.5
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("poll intervals need 0 < min_interval <= max_interval")

    def delay(
        self, polls: int, retry_after: float | None = None, rng: Callable[[], float] = random.random
    ) -> float:
        # Capped before it is computed: a batch polled for days (Groq's 7-day windows) must
        # not overflow a float.
        base = capped_growth(self.min_interval, self.factor, polls, self.max_interval)
        base *= 1 + self.jitter * (2 * rng() - 1)
        return max(base, readable_retry_after(retry_after) or 0.0)

    def to_dict(self) -> dict[str, float]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class JobSettings:
    """A job's options that shape how it is driven. Recorded with the job when it is created
    and used by every later ``resume``/``wait``; given again, an option overrides what was
    recorded (and the job says so)."""

    max_attempts: int = 3
    poll: PollSchedule = attrs.field(factory=PollSchedule)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    #: How many prepared batches are uploaded and created at once.
    submit_concurrency: int = 4

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def to_options(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "poll": self.poll.to_dict(),
            "retry": self.retry.to_dict(),
            "submit_concurrency": self.submit_concurrency,
        }

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> JobSettings:
        poll = options.get("poll")
        retry = options.get("retry")
        return cls(
            max_attempts=int(options.get("max_attempts") or 3),
            poll=PollSchedule(**poll) if isinstance(poll, Mapping) else PollSchedule(),
            retry=RetryPolicy(**retry) if isinstance(retry, Mapping) else RetryPolicy(),
            submit_concurrency=int(options.get("submit_concurrency") or 4),
        )

    def describe_changes(self, recorded: JobSettings) -> list[str]:
        changes = []
        if self.max_attempts != recorded.max_attempts:
            changes.append(f"max attempts {recorded.max_attempts} -> {self.max_attempts}")
        if self.poll != recorded.poll:
            changes.append(
                f"poll interval {recorded.poll.min_interval:g}:{recorded.poll.max_interval:g}"
                f" -> {self.poll.min_interval:g}:{self.poll.max_interval:g}"
            )
        if self.retry != recorded.retry:
            changes.append("retry policy changed")
        if self.submit_concurrency != recorded.submit_concurrency:
            changes.append(
                f"submit concurrency {recorded.submit_concurrency} -> {self.submit_concurrency}"
            )
        return changes
