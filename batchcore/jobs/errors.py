"""What can stop a job, besides a provider's errors (:mod:`batchcore.errors`)."""

from __future__ import annotations

from batchcore.errors import BatchcoreError

__all__ = [
    "BudgetError",
    "JobAttentionError",
    "JobBusyError",
    "JobNotAttentionError",
    "JobNotFoundError",
    "JobStoppedError",
    "JoinError",
]


class JobNotFoundError(BatchcoreError, LookupError):
    """No job with that id in the store."""


class JobBusyError(BatchcoreError):
    """Another live process is driving this job."""


class JoinError(BatchcoreError):
    """Requests and their batch or results cannot be joined on custom_id. The job stops rather
    than submit (and pay for) anything whose result could not be matched."""


class JobStoppedError(BatchcoreError):
    """The driver stopped before the job ended (a step kept failing, or the vendor asked to
    wait longer than allowed). The job is kept: resume it later."""


class JobAttentionError(BatchcoreError):
    """The job needs a human decision: a create whose answer was lost may have made one of
    several batches at the vendor. Nothing was created again. ``batchcore resolve`` decides."""


class JobNotAttentionError(BatchcoreError):
    """``resolve`` was asked for a job that has no batch waiting for a decision."""


class BudgetError(BatchcoreError, ValueError):
    """A job's estimated cost could exceed its budget (or cannot be bounded): refused before
    anything is recorded or sent. The message says "budget", the bound and how it was
    computed."""
