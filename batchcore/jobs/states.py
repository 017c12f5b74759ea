"""The states of jobs, batches and requests in the job store, and the only ways they change.

This docstring is the one transition table: the store's SQL and the runner spell states only
through these enums, and no transition happens that is not listed here.

Jobs::

    (created) ----------------------------------------------------> ACTIVE
    ACTIVE ----(every request has a final result)------------------> FINISHED
    ACTIVE ----(every request final, cancel or deadline)-----------> CANCELLED
    ACTIVE ----(a provider/network error stopped the driver)-------> ERROR  --resume--> ACTIVE
    ACTIVE ----(a create may have made one of several batches)-----> ATTENTION
    ATTENTION --(``batchcore resolve``: adopt a batch, or resubmit)--> ACTIVE

Batches (one row per vendor batch the job needs)::

    (planned: a round of pending requests) --------------------> PREPARED
    PREPARED --submit--> SUBMITTED --poll (terminal)--> ENDED --fetch + settle--> FETCHED
    PREPARED --(cancel requested before submit)--> ABANDONED
    PREPARED --(ambiguous create)--> UNRESOLVED --resolve adopt--> SUBMITTED
                                               --resolve resubmit--> PREPARED
    ENDED --(failed, refused for the vendor's queue capacity: it never ran)--> FETCHED
            (capacity requeue: its requests go back to PENDING without an attempt)

A PREPARED row may carry ``attempted_at``: a create was sent and its answer not recorded, so the
next submit looks for that batch before creating one. A PREPARED row waiting for room in the
vendor's queue, or a step postponed after a transient failure, keeps its state (only its next
step's time moves).

Requests::

    (recorded) ----------------------------------------------------> PENDING
    (recorded, reuse asked, same fingerprint answered before) ------> DONE (succeeded, reused)
    PENDING --(planned into a batch; one attempt counted)-----------> ASSIGNED
    ASSIGNED --(result final: success, permanent failure, attempts used up, job cancelled)
                                                                 --> DONE
    ASSIGNED --(retryable failure, attempts left)-------------------> PENDING
    ASSIGNED --(batch abandoned before submit; the attempt is given back)--> PENDING
    ASSIGNED --(batch refused for capacity; the attempt is given back)----> PENDING
    PENDING --(job cancelled, or its deadline passed)---------------> DONE (cancelled)
    PENDING --(another round would cross the job's budget)----------> DONE (errored,
                                                                          budget_exhausted)
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
