"""What the runner reports about a job and its batches (``status``, ``jobs``, events)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from batchcore.jobs.states import JobState
from batchcore.models import BatchStatus, JobEvent, JobEventKind, ResultStatus

__all__ = ["WAITING_FOR_CAPACITY", "BatchInfo", "JobInfo", "Progress", "utc"]

#: What a batch waiting for room in the vendor's queue waits for (``BatchInfo.waiting_for``).
WAITING_FOR_CAPACITY = "capacity"


@attrs.frozen(kw_only=True)
class BatchInfo:
    """One vendor batch of a job. ``cost_usd``: what its fetched results cost at batch prices
    (None until they are fetched, when a price is unknown, or for a sandbox job)."""

    batch_id: str | None
    state: str
    round: int
    request_count: int
    status: BatchStatus | None = None
    error: str | None = None
    next_step_at: datetime | None = None
    candidates: tuple[str, ...] = ()
    claimed_by: str | None = None
    claimed_since: datetime | None = None
    cost_usd: float | None = None
    #: What a batch not submitted yet waits for: ``"capacity"`` (room in the vendor's queue;
    #: why, in ``error``), or None. ``next_step_at`` says when it tries again at the latest.
    waiting_for: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "state": self.state,
            "round": self.round,
            "request_count": self.request_count,
            "status": None if self.status is None else self.status.to_dict(),
            "error": self.error,
            "next_step_at": None if self.next_step_at is None else self.next_step_at.isoformat(),
            "candidates": list(self.candidates),
            "claimed_by": self.claimed_by,
            "claimed_since": None if self.claimed_since is None else self.claimed_since.isoformat(),
            "cost_usd": self.cost_usd,
            "waiting_for": self.waiting_for,
        }


@attrs.frozen(kw_only=True)
class JobInfo:
    """Where a job stands. ``counts`` has final results by status plus ``pending`` (requests
    without a final result yet). ``sandbox`` is true for a job run on a provider's offline
    emulator (its results are not real answers)."""

    id: str
    provider: str
    state: str
    request_count: int
    counts: Mapping[str, int]
    batches: tuple[BatchInfo, ...]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    cancel_requested: bool
    error: str | None
    sandbox: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)
    owner: str | None = None
    lease_until: datetime | None = None
    #: Since when ``owner`` drives the job.
    owner_since: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in (JobState.FINISHED.value, JobState.CANCELLED.value)

    @property
    def succeeded(self) -> int:
        return self.counts.get(ResultStatus.SUCCEEDED.value, 0)

    @property
    def all_succeeded(self) -> bool:
        return self.finished and self.succeeded == self.request_count

    @property
    def waiting(self) -> int:
        """Batches waiting for room in the vendor's queue (prepared, not yet admitted)."""
        return sum(1 for b in self.batches if b.waiting_for == WAITING_FOR_CAPACITY)

    @property
    def waiting_reason(self) -> str | None:
        """Why the job's batches wait for the vendor's queue (the latest batch's reason)."""
        reasons = [b.error for b in self.batches if b.waiting_for == WAITING_FOR_CAPACITY]
        return reasons[-1] if reasons else None

    def event(
        self,
        kind: JobEventKind,
        *,
        at: float,
        batch_id: str | None = None,
        status: BatchStatus | None = None,
        detail: str | None = None,
        actor: str | None = None,
        cost_usd: float | None = None,
    ) -> JobEvent:
        """The :class:`JobEvent` of *kind* about this job, with its counts, at *at* (seconds)."""
        return JobEvent(
            kind=kind,
            job_id=self.id,
            provider=self.provider,
            at=at,
            batch_id=batch_id,
            status=status,
            counts=self.counts,
            detail=detail,
            actor=actor,
            cost_usd=cost_usd,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "state": self.state,
            "sandbox": self.sandbox,
            "request_count": self.request_count,
            "counts": dict(self.counts),
            "waiting": self.waiting,
            "batches": [b.to_dict() for b in self.batches],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "cancel_requested": self.cancel_requested,
            "error": self.error,
            "options": dict(self.options),
            "owner": self.owner,
            "lease_until": None if self.lease_until is None else self.lease_until.isoformat(),
            "owner_since": None if self.owner_since is None else self.owner_since.isoformat(),
        }


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@attrs.frozen(kw_only=True)
class Progress:
    """Where a job stands at one of its events, for progress displays and callbacks.

    ``batches`` counts the job's batches by state (``submitted``, ``in_progress``,
    ``completed``, ...; a prepared batch waiting for room in the vendor's queue counts as
    ``waiting``, not ``prepared``); ``waiting`` is how many wait so and ``waiting_reason``
    why (the vendor's queue holds what they need, or refused them). ``succeeded`` /
    ``failed`` / ``pending`` count its requests (failed: errored, expired or cancelled,
    final); ``cost_usd`` is what its fetched results cost at
    batch prices, when known (the last known value between fetches: it never goes back to
    None once known). ``event`` is what just happened.
    """

    job_id: str
    state: str
    requests: int
    succeeded: int
    failed: int
    pending: int
    batches: Mapping[str, int]
    event: JobEvent
    cost_usd: float | None = None
    waiting: int = 0
    waiting_reason: str | None = None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @classmethod
    def of(cls, info: JobInfo, event: JobEvent, cost_usd: float | None = None) -> Progress:
        states: dict[str, int] = {}
        for batch in info.batches:
            state = "waiting" if batch.waiting_for == WAITING_FOR_CAPACITY else batch.state
            states[state] = states.get(state, 0) + 1
        succeeded = info.counts.get(ResultStatus.SUCCEEDED.value, 0)
        pending = info.counts.get("pending", 0)
        return cls(
            job_id=info.id,
            state=info.state,
            requests=info.request_count,
            succeeded=succeeded,
            failed=sum(v for k, v in info.counts.items() if k not in ("succeeded", "pending")),
            pending=pending,
            batches=states,
            event=event,
            cost_usd=cost_usd,
            waiting=info.waiting,
            waiting_reason=info.waiting_reason,
        )
