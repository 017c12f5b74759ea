"""Durable jobs: the runner and its store."""

from batchcore.jobs.errors import (
    BudgetError,
    JobAttentionError,
    JobBusyError,
    JobNotFoundError,
    JobStoppedError,
    JoinError,
)
from batchcore.jobs.info import BatchInfo, JobInfo, Progress
from batchcore.jobs.runner import BatchRunner
from batchcore.jobs.settings import JobSettings, PollSchedule
from batchcore.jobs.states import BatchRowState, JobState, RequestState
from batchcore.jobs.store import HOME_ENV, STORE_ENV, JobStore, default_store_path

__all__ = [
    "HOME_ENV",
    "STORE_ENV",
    "BatchInfo",
    "BatchRowState",
    "BatchRunner",
    "BudgetError",
    "JobAttentionError",
    "JobBusyError",
    "JobInfo",
    "JobNotFoundError",
    "JobSettings",
    "JobState",
    "JobStoppedError",
    "JobStore",
    "JoinError",
    "PollSchedule",
    "Progress",
    "RequestState",
    "default_store_path",
]
