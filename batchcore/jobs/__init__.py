"""Durable jobs: the runner and its SQLite store."""

from batchcore.jobs.runner import BatchInfo, BatchRunner, JobInfo, PollSchedule
from batchcore.jobs.store import (
    HOME_ENV,
    JobBusyError,
    JobNotFoundError,
    JobStore,
    default_store_path,
)

__all__ = [
    "HOME_ENV",
    "BatchInfo",
    "BatchRunner",
    "JobBusyError",
    "JobInfo",
    "JobNotFoundError",
    "JobStore",
    "PollSchedule",
    "default_store_path",
]
