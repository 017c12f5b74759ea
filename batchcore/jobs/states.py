"""The states of jobs, batches and requests in the job store, and the only ways they change.

Jobs::

    ACTIVE ----(every request has a final result)------------------> FINISHED
    ACTIVE ----(every request final, cancel was requested)----------> CANCELLED
    ACTIVE ----(a provider/network error stopped the driver)--------> ERROR  --resume--> ACTIVE
    ACTIVE ----(a create may have made one of several batches)------> ATTENTION
    ATTENTION --(``batchcore resolve``: adopt a batch, or resubmit)--> ACTIVE

Batches (one row per vendor batch the job needs)::

    PREPARED --submit--> SUBMITTED --poll (terminal)--> ENDED --fetch + settle--> FETCHED
    PREPARED --(cancel requested before submit)--> ABANDONED
    PREPARED --(ambiguous create)--> UNRESOLVED --resolve adopt--> SUBMITTED
                                               --resolve resubmit--> PREPARED

A PREPARED row may carry ``attempted_at``: a create was sent and its answer not recorded, so the
next submit looks for that batch before creating one.

Requests::

    PENDING --(planned into a batch; one attempt counted)--> ASSIGNED
    ASSIGNED --(result final: success, permanent failure, attempts used up)--> DONE
    ASSIGNED --(retryable failure, attempts left)--> PENDING
    ASSIGNED --(batch abandoned before submit; the attempt is given back)--> PENDING
    PENDING --(job cancelled)--> DONE (cancelled)
"""

from __future__ import annotations

import enum

__all__ = ["BatchRowState", "JobState", "RequestState"]


class _State(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)


class JobState(_State):
    ACTIVE = "active"
    ERROR = "error"
    ATTENTION = "attention"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.FINISHED, JobState.CANCELLED)


class BatchRowState(_State):
    PREPARED = "prepared"
    SUBMITTED = "submitted"
    ENDED = "ended"
    FETCHED = "fetched"
    ABANDONED = "abandoned"
    UNRESOLVED = "unresolved"


class RequestState(_State):
    PENDING = "pending"
    ASSIGNED = "assigned"
    DONE = "done"
