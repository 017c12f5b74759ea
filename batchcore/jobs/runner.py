"""The job runner: hand over many requests, get exactly one result per custom_id back.

Works with any provider (first- or third-party) through the contract alone. A job moves through
the store one recorded step at a time (states: :mod:`batchcore.jobs.states`)::

    pending requests --plan--> prepared batch (intent, payload on disk)
    prepared --submit--> submitted (handle stored) --poll...--> ended (terminal status)
    ended --fetch--> results stored as they stream --settle--> done, or pending again (retry)

Each arrow is written to the store before and after its network call, so a killed process
resumes where it stopped: a prepared batch whose create may have been sent is looked for before
anything is created again (the provider's ``submit`` reconciles it through the store's
journal), a fetch restarts and stores nothing twice. Waiting follows the one rule of
:mod:`batchcore.retry`: a failed step is postponed in the store, never retried in a loop here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from batchcore.errors import (
    AmbiguousSubmitError,
    BatchcoreError,
    InvalidRequestError,
    ProviderTransientError,
    QueueFullError,
    UnsupportedOperationError,
)
from batchcore.estimate import JobCost, JobEstimate, UsageTotals, answered_by, budget_problem
from batchcore.estimate import estimate as estimate_job
from batchcore.jobs.errors import (
    BudgetError,
    JobAttentionError,
    JobBusyError,
    JobNotAttentionError,
    JobStoppedError,
    JoinError,
)
from batchcore.jobs.info import BatchInfo, JobInfo, Progress, utc
from batchcore.jobs.lease import LeaseKeeper
from batchcore.jobs.settings import JobSettings, PollSchedule
from batchcore.jobs.states import BatchRowState, JobState, RequestState
from batchcore.jobs.store import (
    BatchRow,
    Claim,
    JobRow,
    JobStore,
    answers_reusable,
    owner_token,
)
from batchcore.models import (
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    JobEvent,
    JobEventKind,
    QueueLimit,
    ResultError,
    ResultStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.registry import BatchProviderRegistry, batch_provider_registry
from batchcore.retry import RetryPolicy, Wait, readable_retry_after, reporting_waits

__all__ = [
    "BatchInfo",
    "BatchRunner",
    "JobAttentionError",
    "JobInfo",
    "JobSettings",
    "JobStoppedError",
    "PollSchedule",
]

log = logging.getLogger("batchcore.jobs")
Observer = Callable[[JobEvent], None]

_RESULT_CHUNK = 1000


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:12]


class _StoreJournal:
    """The store as the provider's submit journal for one batch row."""

    def __init__(self, store: JobStore, row: int) -> None:
        self._store = store
        self._row = row

    def staged(self, staged: Mapping[str, Any]) -> None:
        self._store.batch_staged(self._row, staged)

    def attempting(self, at: datetime) -> None:
        self._store.batch_attempting(self._row, at)

    def is_known(self, batch_id: str) -> bool:
        return self._store.knows_batch_id(batch_id)


class BatchRunner:
    """Runs jobs of any size on any provider, durably.

    ``store`` is a :class:`JobStore`, a path or a store URL (default: ``$BATCHCORE_STORE``,
    else ``$BATCHCORE_HOME``). ``max_attempts``, ``poll``, ``retry`` and
    ``submit_concurrency`` (how many prepared batches are uploaded and created at once; default
    4) are recorded with each job this runner creates; for a job created earlier they override
    what was recorded only when given. ``clock`` and ``sleep`` are injectable so tests run whole
    lifecycles without waiting. ``observers`` are called with every :class:`JobEvent`, as are
    plugins' ``batchcore_job_event`` hooks.
    """

    def __init__(
        self,
        store: JobStore | str | Path | None = None,
        *,
        registry: BatchProviderRegistry | None = None,
        max_attempts: int | None = None,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        observers: Sequence[Observer] = (),
        rng: Callable[[], float] = random.random,
        lease_seconds: float = 120.0,
        heartbeat: bool = True,
        me: str | None = None,
        submit_concurrency: int | None = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if submit_concurrency is not None and submit_concurrency < 1:
            raise ValueError("submit_concurrency must be at least 1")
        self.store = store if isinstance(store, JobStore) else JobStore(store, clock=clock)
        self.registry = registry or batch_provider_registry
        self._overrides: dict[str, Any] = {
            k: v
            for k, v in (
                ("max_attempts", max_attempts),
                ("poll", poll),
                ("retry", retry),
                ("submit_concurrency", submit_concurrency),
            )
            if v is not None
        }
        self.clock = clock
        self.sleep = sleep
        self.observers = list(observers)
        self.lease_seconds = lease_seconds
        self.heartbeat = heartbeat
        self._rng = rng
        #: Who this runner is in the store's leases, claims and events (``host:pid``).
        self._me = me or owner_token()
        # Payloads prepared in this process, by batch row: used before their files are read back.
        self._live_payloads: dict[int, BatchPayload] = {}
        self._settings = JobSettings(**self._overrides)
        self._observing = threading.RLock()
        #: Held around each upload and create: a worker shares one among its threads so that
        #: at most ``submit_concurrency`` of them upload at once (a driver bounds its own pool).
        self.submit_gate: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        # Costs already priced: the last known per job (events), and per fetched batch.
        self._costs: dict[str, float | None] = {}
        self._batch_costs: dict[int, float | None] = {}
        #: Final results by status that each fetched batch settled (they never change).
        self._done_counts: dict[int, dict[str, int]] = {}

    # -- public API ------------------------------------------------------------------------

    def create(
        self,
        provider: str | BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
    ) -> str:
        """Validate every request, record the job and prepare its first batches. No network
        call: the requests are read once, recorded and written into payload files in the same
        pass, and the batches to submit are recorded with them.

        *deadline* (a time, or a duration from now): when it passes, the job's open batches
        are cancelled, finished results are kept and unfinished requests end ``cancelled``
        with the code ``deadline_exceeded``; no new round starts after it. *reuse_results*:
        a request already answered successfully by an earlier job of this store (same
        provider, server, model, endpoint, body and answer-changing config: see
        :meth:`BaseBatchProvider.fingerprint`) gets that answer instead of being submitted;
        the job says how many and what they would have cost (:meth:`cost`). A sandbox job
        (``options={"sandbox": True}``) neither reuses answers nor lends its invented ones.
        *budget_usd*: refuse the job (:class:`BudgetError`, nothing recorded) when the upper
        bound of its estimated cost exceeds it; later rounds (retries) stop before they would
        cross it. Budgets need prices (``batchcore[cost]``).

        Raises :class:`~batchcore.InvalidRequestError` / ``UnsupportedModelError`` for the
        first bad request, and for duplicate custom_ids; nothing is recorded then.
        """
        instance = self._build(provider, config)
        try:
            return self._create(
                instance,
                requests,
                job_id=job_id or new_job_id(),
                options=options,
                deadline=deadline,
                reuse_results=reuse_results,
                budget_usd=budget_usd,
            )
        finally:
            if instance is not provider:
                instance.close()  # built here for this job: closed here

    def _create(
        self,
        instance: BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        job_id: str,
        options: Mapping[str, Any] | None,
        deadline: float | datetime | timedelta | None,
        reuse_results: bool,
        budget_usd: float | str | None,
    ) -> str:
        recorded = {**self._settings.to_options(), **(options or {})}
        if budget_usd is not None:
            # The whole input is estimated first: a budget refuses before anything is recorded.
            requests = list(requests)
            problem = budget_problem(estimate_job(instance, requests), budget_usd)
            if problem is not None:
                raise BudgetError(problem)
            recorded["budget_usd"] = str(budget_usd)
        if deadline is not None:
            recorded["deadline"] = _deadline(deadline, self.clock())
        if reuse_results:
            recorded["reuse_results"] = True
        reused = UsageTotals()

        def count_reused(request: BatchRequest, result: BatchResult) -> None:
            reused.add(answered_by(result, request.model), result.usage)

        payloads: list[BatchPayload] = []
        rows: list[int] = []
        try:
            # Batched: every request passed on goes into one of the batches recorded below, so
            # each is recorded with its first attempt and assigned by ranges, never one by one.
            with self.store.new_job(
                job_id,
                provider=instance.PROVIDER_NAME,
                config=instance.config,
                options=recorded,
                batched=True,
            ) as job:
                fresh = job.record(
                    requests,
                    fingerprint=instance.fingerprint,
                    reuse=reuse_results,
                    on_reuse=count_reused,
                )
                with instance.queue_room(self._queue_room(instance)):
                    payloads = _prepare_unless_all_reused(instance, fresh, job)
                for payload in payloads:
                    rows.append(self._record_batch(job.add_batch, job_id, 1, payload))
                if job.reused:
                    # Kept with the job, so its cost can say what reuse saved, in any process.
                    job.add_options({"reused": {"requests": job.reused, "usage": reused.to_dict()}})
        except BaseException:
            # Nothing was recorded (the transaction rolled back, the commit included): the
            # files go, and so do the rows' live payloads, whose row ids the store may reuse.
            for row in rows:
                self._live_payloads.pop(row, None)
            for payload in payloads:
                payload.discard()
            raise
        if reuse_results and not answers_reusable(recorded):
            detail = "a sandbox job reuses no answers (and its invented ones serve no other job)"
            self._emit(JobEventKind.NOTICE, self.info(job_id), detail=detail)
        if job.reused:
            saved = JobCost.from_totals(instance.PROVIDER_NAME, reused)
            what = (
                f"saving {_dollars(saved.cost_usd)} at batch prices"
                if saved.cost_usd is not None
                else "cost saved unknown (" + _unpriced(saved) + ")"
            )
            detail = (
                f"{job.reused} of {job.count} requests answered by earlier jobs' results, {what}"
            )
            self.store.record_event(job_id, "reused", detail, actor=self._me)
            self._emit(JobEventKind.NOTICE, self.info(job_id), detail=detail)
        return job_id

    def _record_batch(
        self,
        add_batch: Callable[..., int],
        job_id: str,
        round_number: int,
        payload: BatchPayload,
    ) -> int:
        row = add_batch(
            round_number=round_number,
            idempotency_key=f"batchcore-{job_id}-{uuid.uuid4().hex[:12]}",
            payload=_payload_record(payload),
            custom_ids=payload.iter_custom_ids(),
        )
        self._live_payloads[row] = payload
        return row

    def submit(
        self,
        provider: str | BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
    ) -> str:
        """Create a job and submit all its batches, without waiting for them. Returns the id.
        (On a shared PostgreSQL store, workers may do the submitting: see ``batchcore
        worker``.)"""
        job_id = self.create(
            provider,
            requests,
            config=config,
            job_id=job_id,
            deadline=deadline,
            reuse_results=reuse_results,
            budget_usd=budget_usd,
        )
        self.drive(
            job_id,
            provider=provider if isinstance(provider, BaseBatchProvider) else None,
            config=config,
            wait=False,
        )
        return job_id

    def run(
        self,
        provider: str | BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> JobInfo:
        """Create a job and drive it to the end. Then read :meth:`results`.

        *on_progress* is called with a :class:`~batchcore.jobs.Progress` at every step (batches
        per state, requests done and failed, cost so far when known). *deadline* and
        *reuse_results*: see :meth:`create`."""
        job_id = self.create(
            provider,
            requests,
            config=config,
            job_id=job_id,
            deadline=deadline,
            reuse_results=reuse_results,
            budget_usd=budget_usd,
        )
        return self.drive(
            job_id,
            provider=provider if isinstance(provider, BaseBatchProvider) else None,
            config=config,
            on_progress=on_progress,
        )

    def resume(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> JobInfo:
        """Continue a job from the store until it is finished (after a crash, or a submit)."""
        return self.drive(job_id, provider=provider, config=config, on_progress=on_progress)

    def cancel(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Cancel a job: ask the vendor to cancel its open batches now, and submit nothing more.

        Finished results are kept; a process driving the job sees the request and collects
        the partial results. Run :meth:`resume` (or ``batchcore wait``) to collect them here.
        """
        self.store.request_cancel(job_id)
        job = self.store.job(job_id)
        with self._provider_for(job, provider, config) as instance:
            for batch in self.store.batches(job_id, state=BatchRowState.SUBMITTED):
                with reporting_waits(functools.partial(self._report_wait, job_id, batch.batch_id)):
                    self._send_cancel(batch, instance)
        return self.info(job_id)

    def resolve(
        self,
        job_id: str,
        *,
        adopt: str | None = None,
        resubmit: bool = False,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Decide for a job that needs attention (a lost create with several candidate batches):
        *adopt* the vendor batch that is this job's, or *resubmit* when none of them is (a new
        batch is created: only say so when you are sure). Then :meth:`resume` the job."""
        if (adopt is None) == (not resubmit):
            raise ValueError("resolve takes either adopt=BATCH_ID or resubmit=True")
        job = self.store.job(job_id)
        unresolved = self.store.batches(job_id, state=BatchRowState.UNRESOLVED)
        if not unresolved:
            raise JobNotAttentionError(f"job {job_id} has no batch waiting for a decision")
        batch, more = unresolved[0], unresolved[1:]
        if adopt is not None:
            with self._provider_for(job, provider, config) as instance:
                handle = _adopted_handle(instance, adopt, batch)
                status = instance.poll_status(handle)  # proves the batch exists and is ours
            self.store.batch_submitted(batch.row, handle, self.clock())
            self.store.batch_polled(batch.row, status, None if status.is_terminal else self.clock())
            detail = f"adopted batch {adopt} for batch row {batch.row} (decided by a user)"
        else:
            self.store.batch_resubmit(batch.row)
            detail = f"batch row {batch.row} will be submitted again (decided by a user)"
        self.store.record_event(job_id, "resolved", detail, actor=self._me)
        if not more:
            self.store.set_job_state(job_id, JobState.ACTIVE)
        return self.info(job_id)

    def info(self, job_id: str) -> JobInfo:
        job = self.store.job(job_id)
        return self._info(job)

    def estimate(
        self,
        provider: str | BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        config: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> JobEstimate:
        """What *requests* would cost, offline (nothing recorded, nothing sent): requests,
        batches, estimated input tokens, the output bound, and the cost at batch prices as an
        expected value and an upper bound (see :mod:`batchcore.estimate`)."""
        instance = self._build(provider, config)
        try:
            return estimate_job(instance, requests, model=model)
        finally:
            if instance is not provider:
                instance.close()

    def cost(self, job_id: str) -> JobCost:
        """What the job's fetched results cost (every batch, every round), at batch prices and
        at standard ones, from the usage the vendor reported, priced for the model that
        answered. Prices come from genai-prices (``batchcore[cost]``); the vendor's invoice
        overrides them."""
        job = self.store.job(job_id)
        totals = UsageTotals()
        for batch in self.store.batches(job_id):
            if batch.usage:
                totals.merge(batch.usage)
        cost = JobCost.from_totals(job.provider, totals)
        reused = job.options.get("reused")
        if not isinstance(reused, Mapping) or not reused.get("requests"):
            return cost
        # Reused answers cost nothing now; what they would have cost is the saving.
        saved = JobCost.from_totals(job.provider, reused.get("usage") or {})
        return attrs.evolve(
            cost, reused_requests=int(reused["requests"]), saved_by_reuse_usd=saved.cost_usd
        )

    def jobs(self) -> list[JobInfo]:
        return [self._info(job) for job in self.store.jobs()]

    def results(self, job_id: str) -> Iterator[BatchResult]:
        """The stored result of every request, in input order. For a finished job, exactly one
        per custom_id; for an unfinished one, what has arrived so far."""
        self.store.job(job_id)
        return self.store.iter_results(job_id)

    def settings(self, job_id: str) -> JobSettings:
        """The job's recorded settings, with this runner's explicit overrides applied."""
        recorded = JobSettings.from_options(self.store.job(job_id).options)
        return attrs.evolve(recorded, **self._overrides)

    # -- driving ---------------------------------------------------------------------------

    def drive(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
        wait: bool = True,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> JobInfo:
        """Move the job forward until it is finished (or, with ``wait=False``, until every
        batch is submitted). Safe to call again after any failure. *on_progress*: see
        :meth:`run`."""
        if on_progress is not None:
            observer = self._progress_observer(job_id, on_progress)
            self.observers.append(observer)
            try:
                return self.drive(job_id, provider=provider, config=config, wait=wait)
            finally:
                self.observers.remove(observer)
        job = self.store.job(job_id)
        if job.state.is_final:
            return self._info(job)
        if job.state is JobState.ATTENTION:
            raise JobAttentionError(self._attention_message(job_id))
        # The lease first: a refused (busy) drive changes nothing of the job, not its options.
        owner = self.store.acquire(job_id, lease_seconds=self.lease_seconds, me=self._me)
        keeper = None
        if self.heartbeat:
            renewer = self.store.reopen()
            keeper = LeaseKeeper(
                lambda: renewer.renew(job_id, owner, lease_seconds=self.lease_seconds),
                interval=self.lease_seconds / 4,
            ).start()
        try:
            settings = self._apply_overrides(job)
            with self._provider_for(job, provider, config) as instance:
                if job.state is not JobState.ACTIVE:
                    self.store.set_job_state(job_id, JobState.ACTIVE)
                self._discard_orphans(job, instance)
                return self._loop(job_id, instance, settings, keeper, wait=wait)
        except JobAttentionError as error:
            self.store.set_job_state(job_id, JobState.ATTENTION, error=str(error))
            self._emit(JobEventKind.STOPPED, self.info(job_id), detail=str(error))
            raise
        except BatchcoreError as error:
            if not isinstance(error, JobBusyError):
                self.store.set_job_state(job_id, JobState.ERROR, error=str(error))
                self.store.record_event(job_id, "stopped", str(error), actor=owner)
                self._emit(JobEventKind.STOPPED, self.info(job_id), detail=str(error))
            raise
        finally:
            if keeper is not None:
                keeper.stop()
                renewer.close()
            with contextlib.suppress(BatchcoreError):
                self.store.release(job_id, owner)

    def _progress_observer(self, job_id: str, on_progress: Callable[[Progress], None]) -> Observer:
        def observe(event: JobEvent) -> None:
            if event.job_id != job_id:
                return  # another job driven by this runner
            on_progress(Progress.of(self.info(job_id), event, cost_usd=event.cost_usd))

        return observe

    def _apply_overrides(self, job: JobRow) -> JobSettings:
        recorded = JobSettings.from_options(job.options)
        settings = attrs.evolve(recorded, **self._overrides)
        changes = settings.describe_changes(recorded)
        if changes:
            self.store.set_job_options(job.id, {**job.options, **settings.to_options()})
            detail = "given again: " + "; ".join(changes)
            self.store.record_event(job.id, "options", detail, actor=self._me)
            self._emit(JobEventKind.NOTICE, self._info(job), detail=detail)
        return settings

    def _loop(
        self,
        job_id: str,
        provider: BaseBatchProvider,
        settings: JobSettings,
        keeper: LeaseKeeper | None,
        *,
        wait: bool,
    ) -> JobInfo:
        while True:
            if keeper is not None and keeper.lost.is_set():
                raise JobBusyError(
                    f"job {job_id}: another process took the job over while this one was "
                    "silent; this one stops"
                )
            job = self.store.job(job_id)
            finished = self._job_step(job, provider)
            if finished is not None:
                return finished
            job = self.store.job(job_id)
            now = self.clock()
            due = [b for b in self.store.batches(job_id) if _due(job, b, now)]
            acted = self._submit_all(
                job, [b for b in due if b.state is BatchRowState.PREPARED], provider, settings
            )
            for batch in due:
                if batch.state is not BatchRowState.PREPARED:
                    acted = self._batch_step(job, batch.row, provider, settings) or acted
            if (
                not wait
                and not self.store.has_requests(job_id, RequestState.PENDING)
                and not self.store.batches(job_id, state=BatchRowState.PREPARED)
            ):
                return self.info(job_id)
            if not acted:
                self._sleep_until_due(job_id, settings)

    def _submit_all(
        self,
        job: JobRow,
        prepared: list[BatchRow],
        provider: BaseBatchProvider,
        settings: JobSettings,
    ) -> bool:
        """Submit the due prepared batches, several at once (``submit_concurrency``): a big
        job is not held up by one upload at a time."""
        width = min(len(prepared), settings.submit_concurrency)
        if width <= 1:
            acted = False
            for batch in prepared:  # every one, not only until the first that acted
                acted = self._batch_step(job, batch.row, provider, settings) or acted
            return acted
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="batchcore-submit") as pool:
            done = list(
                pool.map(lambda b: self._batch_step(job, b.row, provider, settings), prepared)
            )
        return any(done)

    # -- steps: the one state machine, for drivers and workers alike -------------------------

    def work(self, claim: Claim, provider: BaseBatchProvider) -> None:
        """Do the step *claim* names (claimed by this runner's identity; released here). A step
        that stops its job records why on the job; it never raises to a worker."""
        try:
            job = self.store.job(claim.job_id)
            if job.state is not JobState.ACTIVE:
                return
            settings = JobSettings.from_options(job.options)
            try:
                if claim.batch_row is None:
                    self._job_step(job, provider, claimed=True)
                else:
                    self._batch_step(job, claim.batch_row, provider, settings, claimed=True)
            except JobAttentionError as error:
                self.store.set_job_state(job.id, JobState.ATTENTION, error=str(error))
                self._emit(JobEventKind.STOPPED, self.info(job.id), detail=str(error))
            except BatchcoreError as error:
                self.store.set_job_state(job.id, JobState.ERROR, error=str(error))
                self.store.record_event(job.id, "stopped", str(error), actor=self._me)
                self._emit(JobEventKind.STOPPED, self.info(job.id), detail=str(error))
        finally:
            if claim.batch_row is None:
                self.store.release_job_step(claim.job_id, self._me)
            else:
                self.store.release_batch(claim.batch_row, self._me)

    def _job_step(
        self, job: JobRow, provider: BaseBatchProvider, *, claimed: bool = False
    ) -> JobInfo | None:
        """Plan a round of the job's pending requests, or finish the job when none is left.
        Returns the finished job's info. Skipped while someone else holds the job step."""
        if not claimed and not self.store.claim_job_step(
            job.id, self._me, seconds=self.lease_seconds
        ):
            return None
        try:
            if (
                job.deadline is not None
                and not job.cancel_requested
                and self.clock() >= job.deadline
            ):
                # The deadline passed: stop like a cancel, keeping what was paid for.
                self.store.request_cancel(job.id, reason=DEADLINE)
                detail = "the job's deadline passed: open batches are cancelled, finished "
                detail += "results kept, nothing more is submitted"
                self.store.record_event(job.id, "deadline", detail, actor=self._me)
                self._emit(JobEventKind.NOTICE, self.info(job.id), detail=detail)
                job = self.store.job(job.id)
            pending = self.store.has_requests(job.id, RequestState.PENDING)
            if not pending and not self.store.has_requests(job.id, RequestState.ASSIGNED):
                final = JobState.CANCELLED if job.cancel_requested else JobState.FINISHED
                self.store.set_job_state(job.id, final)
                info = self.info(job.id)
                self._emit(JobEventKind.FINISHED, info, detail=final.value)
                return info
            if pending:
                self._plan(job, provider)
            return None
        finally:
            if not claimed:
                self.store.release_job_step(job.id, self._me)

    def _batch_step(
        self,
        job: JobRow,
        row: int,
        provider: BaseBatchProvider,
        settings: JobSettings,
        *,
        claimed: bool = False,
    ) -> bool:
        """Do the due step of batch *row* under a claim; False when someone else holds it."""
        if not claimed and not self.store.claim_batch(row, self._me, seconds=self.lease_seconds):
            return False
        try:
            batch = self.store.batch(row)  # as it is now that the claim is ours
            # A wait inside one of the step's calls (a Retry-After, a backoff) is shown too.
            report = functools.partial(self._report_wait, job.id, batch.batch_id)
            with reporting_waits(report):
                if batch.state is BatchRowState.PREPARED:
                    self._submit_one(job, batch, provider, settings)
                elif batch.state is BatchRowState.SUBMITTED:
                    if job.cancel_requested and not batch.cancel_sent:
                        self._send_cancel(batch, provider)
                    elif _due(job, batch, self.clock()):
                        self._poll_one(job, batch, provider, settings)
                elif batch.state is BatchRowState.ENDED:
                    self._fetch_one(job, batch, provider, settings)
            return True
        finally:
            if not claimed:
                self.store.release_batch(row, self._me)

    def _plan(self, job: JobRow, provider: BaseBatchProvider) -> None:
        if not self.store.has_requests(job.id, RequestState.PENDING):
            return
        if job.cancel_requested:
            error = _cancelled_error(job) or ResultError(
                code="job_cancelled",
                retryable=True,
                message="The job was cancelled before this request was submitted.",
            )
            self.store.settle_pending_as(
                job.id,
                (
                    BatchResult(custom_id=cid, status=ResultStatus.CANCELLED, error=error)
                    for cid in list(self.store.iter_pending_ids(job.id))
                ),
            )
            return
        rounds = [b.round for b in self.store.batches(job.id)]
        round_number = max(rounds, default=0) + 1
        budget = job.options.get("budget_usd")
        if budget is not None and round_number > 1 and self._over_budget(job, provider, budget):
            return
        # The requests are counted as they are read, from the one read that feeds the plan:
        # another process settling a batch meanwhile sends more requests back to pending, and
        # a count taken apart from the read would disagree with it.
        read = 0

        def pending_requests() -> Iterator[BatchRequest]:
            nonlocal read
            for request in self.store.iter_requests(job.id, state=RequestState.PENDING):
                read += 1
                yield request

        try:
            with provider.queue_room(self._queue_room(provider)):
                payloads = provider.prepare_payloads(pending_requests())
        except InvalidRequestError as error:
            # Every request was validated when the job was created: what refuses one now is
            # a setting given since (a queue cap lowered below a single request).
            raise JobStoppedError(
                f"job {job.id}: round {round_number} cannot be planned: {error}. The job is "
                f"kept: `batchcore resume {job.id}` once that is fixed"
            ) from None
        planned = sum(p.request_count for p in payloads)
        if planned != read:
            # The storm guard: a round creates exactly the batches its pending requests need.
            for payload in payloads:
                payload.discard()
            raise JoinError(
                f"job {job.id}: round {round_number} would put {planned} requests in batches "
                f"for {read} pending ones; nothing was submitted. This is a bug: please "
                "report it"
            )
        unsplit = self._over_queue_room(provider, payloads)
        if unsplit is not None:
            # Planned again, it would be abandoned again for the same reason (see _admit).
            for payload in payloads:
                payload.discard()
            raise JobStoppedError(f"job {job.id}: round {round_number}: {unsplit}")
        for payload in payloads:
            self._record_batch(
                functools.partial(self.store.add_batch, job.id), job.id, round_number, payload
            )
        if round_number > 1:
            self._emit(
                JobEventKind.RETRIED,
                self.info(job.id),
                detail=f"round {round_number}: {planned} requests resubmitted",
            )

    def _over_budget(self, job: JobRow, provider: BaseBatchProvider, budget: str) -> bool:
        """Whether a round of the job's pending requests could cross its budget (spent so far
        plus the round's upper bound); if so, they end errored (``budget_exhausted``) instead
        of being submitted, and the job says why."""
        spent = self.cost(job.id).cost_usd
        pending = list(self.store.iter_requests(job.id, state=RequestState.PENDING))
        bound = estimate_job(provider, pending).cost_usd_max
        if spent is not None and bound is not None and spent + bound <= Decimal(budget):
            return False
        why = (
            f"the budget of ${budget} would be crossed: ${spent if spent is not None else '?'} "
            f"spent, up to ${bound if bound is not None else '?'} for another round of "
            f"{len(pending)} requests"
        )
        error = ResultError(code="budget_exhausted", retryable=False, message=why.capitalize())
        self.store.settle_pending_as(
            job.id,
            (
                BatchResult(custom_id=r.custom_id, status=ResultStatus.ERRORED, error=error)
                for r in pending
            ),
        )
        self.store.record_event(job.id, "budget", why, actor=self._me)
        self._emit(JobEventKind.NOTICE, self.info(job.id), detail=why)
        return True

    def _submit_one(
        self, job: JobRow, batch: BatchRow, provider: BaseBatchProvider, settings: JobSettings
    ) -> None:
        if job.cancel_requested and batch.attempted_at is None:
            # Never submitted: its requests go back to pending, where the next plan settles
            # them as cancelled. (One whose create may have been sent is submitted, so the
            # batch it may have made is found and cancelled, not forgotten.)
            self.store.abandon_batch(job.id, batch.row)
            self._discard_live(batch.row)
            return
        # A batch whose create may already have been sent is reconciled, not admitted again.
        if batch.attempted_at is None and not self._admit(job, batch, provider, settings):
            return  # waits for room in the vendor's queue
        try:
            payload = attrs.evolve(
                self._payload_for(batch, provider),
                idempotency_key=batch.idempotency_key,
                staged=batch.staged,
                attempted_at=batch.attempted_at,
            )
            try:
                with self.submit_gate:
                    handle = _submit(provider, payload, _StoreJournal(self.store, batch.row))
            except QueueFullError as error:
                self._queue_full(job, batch, provider, settings, str(error), created=False)
                return
            except ProviderTransientError as error:
                self._postpone(job, batch, error, "submit", settings)
                return
            except AmbiguousSubmitError as error:
                self.store.batch_unresolved(batch.row, error.candidates, str(error))
                self.store.record_event(job.id, "attention", str(error), actor=self._me)
                raise JobAttentionError(self._attention_message(job.id)) from None
            self.store.batch_submitted(
                batch.row, handle, self.clock() + settings.poll.delay(0, rng=self._rng)
            )
        finally:
            self.store.unadmit(batch.row)  # no-op once submitted: then it counts as enqueued
        payload.discard()
        self._live_payloads.pop(batch.row, None)
        self._emit(
            JobEventKind.SUBMITTED,
            self.info(job.id),
            batch_id=handle.batch_id,
            detail=f"{batch.request_count} requests",
        )

    # -- the vendor's queue: admission, not failure ------------------------------------------

    def _queue(self, provider: BaseBatchProvider, model: str | None) -> _Queue | None:
        """The vendor queue a batch of *model* joins and the cap in force for it: the configured
        cap, lowered by what the vendor's refusals taught (:meth:`JobStore.queue_cap`)."""
        limit = provider.queue_limit(model)
        if limit is None:
            return None
        declared, configured = limit
        model = model if declared.per_model else None
        learned = self.store.queue_cap(provider.PROVIDER_NAME, model or "*", configured=configured)
        cap = configured if learned is None else min(configured, learned)
        return _Queue(limit=declared, configured=configured, cap=cap, model=model)

    def _queue_room(self, provider: BaseBatchProvider) -> Callable[[str | None], int | None]:
        """What :meth:`BaseBatchProvider.queue_room` splits new batches by: the cap in force."""

        def room(model: str | None) -> int | None:
            queue = self._queue(provider, model)
            return None if queue is None else queue.cap

        return room

    def _over_queue_room(
        self, provider: BaseBatchProvider, payloads: Sequence[BatchPayload]
    ) -> str | None:
        """Why a payload of several requests is over the cap in force (a provider whose own
        ``prepare_payloads`` ignores :meth:`BaseBatchProvider.queue_room`), or None."""
        for payload in payloads:
            queue = self._queue(provider, payload.model)
            if queue is None or payload.request_count < 2:
                continue
            measure = queue.limit.measure
            amount = payload.tokens if measure == "tokens" else payload.request_count
            if amount > queue.cap:
                return (
                    f"provider {provider.PROVIDER_NAME!r} prepared a batch of "
                    f"{payload.request_count} requests holding {amount:,} {measure}, more than "
                    f"the {queue.cap:,} its vendor's queue{queue.where} takes now; its "
                    "prepare_payloads must split under BaseBatchProvider.queue_room (the base "
                    "class's does). Nothing was submitted and the job is kept"
                )
        return None

    def _admit(
        self, job: JobRow, batch: BatchRow, provider: BaseBatchProvider, settings: JobSettings
    ) -> bool:
        """Whether *batch* fits in the vendor's queue now (decided in the store, for every
        process sharing it); else it waits, recorded and shown, without losing an attempt. A
        batch prepared under a bigger cap than the one in force now is planned again, split
        under it; after refusals with nothing of ours in the queue, the queue is tried again
        only once the retry policy's postponement has passed."""
        queue = self._queue(provider, batch.model)
        if queue is None:
            return True
        name, measure = provider.PROVIDER_NAME, queue.limit.measure
        mine = queue.amount(batch)
        if mine > queue.cap and batch.request_count > 1:
            self.store.abandon_batch(job.id, batch.row)  # its attempt is given back
            self._discard_live(batch.row)
            size = "" if measure == "requests" else f", {mine:,} {measure}"
            detail = (
                f"batch row {batch.row} ({batch.request_count} requests{size}) is over the "
                f"{queue.cap:,} {measure} that {name}'s queue{queue.where} takes now: its "
                "requests are planned again in smaller batches"
            )
            self.store.record_event(job.id, "queue_split", detail, actor=self._me)
            self._emit(JobEventKind.NOTICE, self.info(job.id), detail=detail)
            return False
        refusals, last = self.store.queue_refusals(name, queue.key)
        if refusals and last is not None:
            until = last + (settings.retry.postponement(refusals) or 0.0)
            if self.clock() < until:
                reason = (
                    f"waiting for room in {name}'s queue{queue.where}: it refused {refusals} "
                    "batch(es) in a row, with no batch of this store ending in between; next "
                    f"try at {utc(until):%H:%M:%S} UTC"
                )
                self.store.batch_wait(batch.row, until, reason)
                self._emit(JobEventKind.WAITING, self.info(job.id), detail=reason)
                return False
        in_flight = self.store.admit(
            batch.row,
            provider=name,
            model=queue.model,
            measure=measure,
            amount=mine,
            cap=queue.cap,
        )
        if in_flight is None:
            return True
        until = self.clock() + settings.poll.max_interval
        learned = " (learned from its refusals)" if queue.cap < queue.configured else ""
        reason = (
            f"waiting for room in {name}'s queue: {in_flight:,} {measure} enqueued"
            f"{queue.where}, this batch needs {mine:,} more, the cap is {queue.cap:,}{learned} "
            f"(config {queue.limit.config_key})"
        )
        self.store.batch_wait(batch.row, until, reason)
        self._emit(JobEventKind.WAITING, self.info(job.id), detail=reason)
        return False

    def _queue_full(
        self,
        job: JobRow,
        batch: BatchRow,
        provider: BaseBatchProvider,
        settings: JobSettings,
        why: str,
        *,
        created: bool,
    ) -> None:
        """The vendor refused *batch* for capacity: a wait, never a failed attempt. *created*:
        it was created and failed (its requests were sent back to pending already), else the
        create itself was refused and made nothing (the batch goes back through admission).

        With batches of ours in the vendor's queue, the cap in force becomes what they hold
        and the batch waits for one of them to end. With nothing of ours in it (nothing will
        end to make room), the cap becomes half the refused batch (what is planned next is
        smaller) and the queue is tried again after the retry policy's postponement for the
        refusals so far; once they are more than it allows (``max_postponements``) with no
        batch of ours ending after it ran in between, the job stops (:class:`JobStoppedError`,
        exit 3), its requests pending or prepared and never charged an attempt."""
        if not created:
            self.store.batch_not_created(batch.row)
        reason = f"the vendor's queue is full ({why})"
        until = self.clock() + settings.poll.max_interval
        queue = self._queue(provider, batch.model)
        if queue is not None:
            name, measure = provider.PROVIDER_NAME, queue.limit.measure
            mine = queue.amount(batch)
            tokens, requests = self.store.enqueued(name, queue.model, besides=batch.row)
            in_flight = tokens if measure == "tokens" else requests
            alone = in_flight == 0
            cap = in_flight if not alone else max(1, mine // 2 if batch.request_count > 1 else mine)
            streak = self.store.queue_refused(
                name, queue.key, cap=cap, configured=queue.configured, reason=why
            )
            if alone:
                delay = settings.retry.postponement(streak)
                if delay is None:
                    self.store.forget_refusals(name, queue.key)  # a resume starts afresh
                    size = f"{batch.request_count} request{'s' * (batch.request_count != 1)}"
                    if measure != "requests":
                        size += f", {mine:,} {measure}"
                    message = (
                        f"job {job.id}: {name}'s batch queue{queue.where} refused {streak} "
                        "batches in a row for capacity, the last while nothing of this store "
                        f"was in it ({size}; {why}). "
                        "Other work fills the account's queue, or its limit is below a single "
                        "batch. Nothing was charged an attempt and the job is kept: `batchcore "
                        f"resume {job.id}` once the queue has room (config "
                        f"{queue.limit.config_key} sets what batchcore keeps to)"
                    )
                    self.store.record_event(job.id, "queue_full", message, actor=self._me)
                    raise JobStoppedError(message)
                until = self.clock() + delay
                reason += (
                    f"; nothing of this store was in it: next batches hold at most {cap:,} "
                    f"{measure}, next try at {utc(until):%H:%M:%S} UTC"
                )
            else:
                reason += (
                    f"; {in_flight:,} {measure} of this store are in it: trying again after "
                    "one of them ends"
                )
        if not created:
            self.store.batch_wait(batch.row, until, reason)
        self.store.record_event(job.id, "queue_full", reason, actor=self._me)
        self._emit(JobEventKind.WAITING, self.info(job.id), detail=reason)

    def _attention_message(self, job_id: str) -> str:
        lines = []
        for batch in self.store.batches(job_id, state=BatchRowState.UNRESOLVED):
            lines.append(
                f"the create of batch row {batch.row} ({batch.request_count} requests) may have "
                f"succeeded, and vendor batches {', '.join(batch.candidates) or '(none found)'} "
                "could be it; nothing was created again"
            )
        return (
            f"job {job_id} needs a decision: "
            + "; ".join(lines)
            + f". If one of them is this job's batch: `batchcore resolve {job_id} --adopt "
            f"BATCH_ID`; if none is: `batchcore resolve {job_id} --resubmit` (creates a new "
            f"batch). Then `batchcore resume {job_id}`."
        )

    def _poll_one(
        self, job: JobRow, batch: BatchRow, provider: BaseBatchProvider, settings: JobSettings
    ) -> None:
        assert batch.handle is not None
        try:
            status = provider.poll_status(batch.handle)
        except ProviderTransientError as error:
            self._postpone(job, batch, error, "poll", settings)
            return
        next_at = (
            None
            if status.is_terminal
            else self.clock() + settings.poll.delay(batch.polls + 1, rng=self._rng)
        )
        self.store.batch_polled(batch.row, status, next_at)
        if status.is_terminal:  # it has left the vendor's queue
            refused = status.state is BatchState.FAILED and _refused_for_capacity(status, provider)
            self.store.wake_waiting(job.provider, batch.model, ran=not refused)
        previous = batch.status
        if (
            previous is None
            or status.state != previous.state
            or (status.completed, status.failed) != (previous.completed, previous.failed)
        ):
            self._emit(
                JobEventKind.STATUS_CHANGED,
                self.info(job.id),
                batch_id=batch.handle.batch_id,
                status=status,
            )

    def _fetch_one(
        self, job: JobRow, batch: BatchRow, provider: BaseBatchProvider, settings: JobSettings
    ) -> None:
        assert batch.handle is not None and batch.status is not None
        status = batch.status
        if status.state is BatchState.FAILED and _refused_for_capacity(status, provider):
            # It never ran: its requests wait for room, with their attempt given back.
            why = "; ".join(e.message or (e.code or "") for e in status.errors)
            back = self.store.requeue_batch(job.id, batch.row, f"refused for capacity: {why}")
            self._queue_full(job, batch, provider, settings, why, created=True)
            log.info("job %s: %d requests wait for queue capacity", job.id, back)
            return
        stored = 0
        strangers = 0
        chunk: list[BatchResult] = []
        usage = UsageTotals()
        cancelled = _cancelled_error(job)
        try:
            for result in provider.fetch_results(batch.handle):
                if result.usage is not None:
                    usage.add(answered_by(result, batch.model), result.usage)
                if cancelled is not None and result.status is ResultStatus.CANCELLED:
                    result = attrs.evolve(result, error=cancelled)  # the deadline's own word
                chunk.append(result)
                if len(chunk) >= _RESULT_CHUNK:
                    saved = self.store.save_results(job.id, batch.row, chunk)
                    stored += saved
                    strangers += len(chunk) - saved
                    chunk = []
        except ProviderTransientError as error:
            # What arrived is kept; the next attempt re-reads the stream and stores nothing
            # twice.
            self.store.save_results(job.id, batch.row, chunk)
            self._postpone(job, batch, error, "fetch", settings)
            return
        saved = self.store.save_results(job.id, batch.row, chunk)
        stored += saved
        strangers += len(chunk) - saved
        missing = self.store.missing_results(job.id, batch.row)
        if missing and strangers:
            # Results came back for ids this batch does not hold while some of its own are
            # missing: the vendor changed the ids. Retrying would pay again for nothing.
            raise JoinError(
                f"job {job.id}: batch {batch.handle.batch_id} returned {strangers} results "
                f"whose custom_id matches none of its requests, and {len(missing)} of its "
                f"requests (e.g. {missing[0]!r}) got none; the results cannot be joined, so "
                "nothing is resubmitted. Check the custom_ids the vendor returned."
            )
        if missing:
            self.store.save_results(
                job.id, batch.row, (BatchResult.missing(cid, batch.status) for cid in missing)
            )
        self.store.batch_usage(batch.row, usage.to_dict())
        self.store.wake_waiting(job.provider, batch.model)  # it has left the vendor's queue
        back = self.store.settle_batch(
            job.id,
            batch.row,
            max_attempts=settings.max_attempts,
            retry=not job.cancel_requested,
        )
        self._emit(
            JobEventKind.RESULTS_FETCHED,
            self.info(job.id),
            batch_id=batch.handle.batch_id,
            status=batch.status,
            detail=f"{stored} results stored",
        )
        if back:
            log.info("job %s: %d requests will be resubmitted", job.id, back)

    def _discard_live(self, row: int) -> None:
        payload = self._live_payloads.pop(row, None)
        if payload is not None:
            payload.discard()

    def _send_cancel(self, batch: BatchRow, provider: BaseBatchProvider) -> None:
        assert batch.handle is not None
        try:
            provider.cancel(batch.handle)
        except UnsupportedOperationError as error:
            log.warning("cannot cancel batch %s: %s", batch.handle.batch_id, error)
        self.store.batch_cancel_sent(batch.row)

    def _postpone(
        self,
        job: JobRow,
        batch: BatchRow,
        error: ProviderTransientError,
        step: str,
        settings: JobSettings,
    ) -> None:
        """The one rule for a step that failed transiently (see :mod:`batchcore.retry`)."""
        failures = batch.poll_failures + 1
        what = f"{step} of batch {batch.batch_id or f'row {batch.row}'}"
        asked_for = readable_retry_after(error.retry_after)  # never nan, never past a year
        delay = settings.retry.postponement(failures, asked_for)
        if delay is None:
            if asked_for is not None and asked_for > settings.retry.max_wait:
                asked = utc(self.clock() + asked_for)
                raise JobStoppedError(
                    f"{what}: the vendor asked to wait {_duration(asked_for)} "
                    f"(until {asked:%Y-%m-%d %H:%M} UTC), longer than the "
                    f"{_duration(settings.retry.max_wait)} a job waits; the job is kept: "
                    f"`batchcore resume {job.id}` after that ({error})"
                )
            raise JobStoppedError(
                f"{what} failed {failures} times in a row; the job is kept: `batchcore resume "
                f"{job.id}` once the cause is fixed (last error: {error})"
            )
        until = self.clock() + delay
        self.store.batch_step_failed(batch.row, str(error), until)
        detail = f"{what} failed ({error}); next try at {utc(until):%H:%M:%S} UTC"
        log.warning("job %s: %s", job.id, detail)
        self._emit(JobEventKind.WAITING, self.info(job.id), batch_id=batch.batch_id, detail=detail)

    def _sleep_until_due(self, job_id: str, settings: JobSettings) -> None:
        now = self.clock()
        times = [
            b.next_poll_at
            for b in self.store.batches(job_id)
            if b.state in (BatchRowState.PREPARED, BatchRowState.SUBMITTED, BatchRowState.ENDED)
            and b.next_poll_at is not None
        ]
        deadline = self.store.job(job_id).deadline
        if deadline is not None and deadline > now:
            times.append(deadline)
        wait = min(times, default=now + settings.poll.min_interval) - now
        # Sleep in bounded slices: a long postponement still checks for a cancel or a takeover.
        self.sleep(min(max(wait, 0.0), settings.poll.max_interval))

    # -- helpers ---------------------------------------------------------------------------

    def build_provider(self, name: str, config: Mapping[str, Any]) -> BaseBatchProvider:
        """A provider *name* built from *config* (a job's recorded config, plus keys from this
        process's environment), writing payload files where this runner keeps them."""
        return self._build(name, config)

    def _build(
        self, provider: str | BaseBatchProvider, config: Mapping[str, Any] | None
    ) -> BaseBatchProvider:
        if isinstance(provider, BaseBatchProvider):
            return provider
        cls = self.registry.get(provider)
        settings = dict(config or {})
        settings.setdefault("workdir", str(self._payload_dir()))
        return cls(config=settings)

    def _payload_dir(self) -> Path:
        return self.store.payload_dir

    @contextlib.contextmanager
    def _provider_for(
        self, job: JobRow, provider: BaseBatchProvider | None, config: Mapping[str, Any] | None
    ) -> Iterator[BaseBatchProvider]:
        """The job's provider: the one given (the caller closes it), or one built from the
        job's recorded config (closed here)."""
        if provider is not None:
            if job.provider != provider.PROVIDER_NAME:
                raise BatchcoreError(
                    f"job {job.id} belongs to provider {job.provider!r}, "
                    f"not {provider.PROVIDER_NAME!r}"
                )
            yield provider
            return
        built = self._build(job.provider, {**job.config, **(config or {})})
        try:
            yield built
        finally:
            built.close()

    def _payload_for(self, batch: BatchRow, provider: BaseBatchProvider) -> BatchPayload:
        live = self._live_payloads.get(batch.row)
        if live is not None:
            return live
        record = batch.payload or {}
        path, ids_path = record.get("path"), record.get("ids_path")
        if path and ids_path and Path(path).exists() and Path(ids_path).exists():
            return BatchPayload(
                provider=provider.PROVIDER_NAME,
                model=record.get("model"),
                endpoint=record["endpoint"],
                request_count=record["request_count"],
                size_bytes=record["size_bytes"],
                path=Path(path),
                ids_path=Path(ids_path),
            )
        # The payload's files are gone (a reboot cleaned them, another machine prepared them,
        # or the provider keeps payloads in memory): rebuild it from the requests the store
        # assigned to this batch.
        # Rebuilt as it was prepared: not split again under a queue cap lowered since (a batch
        # over the cap in force is planned again before it gets here, see _admit).
        with provider.queue_room(lambda model: None):
            payloads = provider.prepare_payloads(
                self.store.iter_requests(batch.job_id, batch_row=batch.row)
            )
        if len(payloads) != 1 or payloads[0].request_count != batch.request_count:
            for extra in payloads:
                extra.discard()
            raise JoinError(
                f"batch row {batch.row} of job {batch.job_id} no longer fits in one batch under "
                "the provider's current limits; restore the limits it was prepared with"
            )
        return payloads[0]

    def _discard_orphans(self, job: JobRow, provider: BaseBatchProvider) -> None:
        """Delete payload files a killed process prepared but never recorded."""
        workdir = provider.workdir
        if workdir is None or not workdir.is_dir():
            return
        keep: set[str] = set()
        for batch in self.store.batches(job.id, state=BatchRowState.PREPARED):
            record = batch.payload or {}
            keep.update(str(record.get(k)) for k in ("path", "ids_path") if record.get(k))
        keep.update(str(p.path) for p in self._live_payloads.values() if p.path)
        keep.update(str(p.ids_path) for p in self._live_payloads.values() if p.ids_path)
        prefix = f"batchcore-{provider.PROVIDER_NAME}-"
        for file in workdir.glob(prefix + "*"):
            if str(file) not in keep and self._owned_by_nobody(file):
                file.unlink(missing_ok=True)

    def _owned_by_nobody(self, file: Path) -> bool:
        # Only files older than a minute: another live job on this store may be preparing.
        try:
            return time.time() - file.stat().st_mtime > 60
        except FileNotFoundError:
            return False

    def _info(self, job: JobRow) -> JobInfo:
        rows = self.store.batches(job.id)
        counts = self._final_counts(job, rows)
        counts["pending"] = job.request_count - sum(counts.values())
        batches = tuple(
            BatchInfo(
                batch_id=b.batch_id or (b.handle.batch_id if b.handle else None),
                state=b.status.state.value if b.status else b.state.value,
                round=b.round,
                request_count=b.request_count,
                status=b.status,
                error=b.error,
                next_step_at=None if b.next_poll_at is None else utc(b.next_poll_at),
                waiting_for=b.waits_for if b.state is BatchRowState.PREPARED else None,
                candidates=b.candidates,
                cost_usd=self._batch_cost(job, b),
                **_claim_of(b),
            )
            for b in rows
        )
        return JobInfo(
            id=job.id,
            provider=job.provider,
            state=job.state.value,
            request_count=job.request_count,
            counts=counts,
            batches=batches,
            created_at=utc(job.created_at),
            updated_at=utc(job.updated_at),
            finished_at=None if job.finished_at is None else utc(job.finished_at),
            cancel_requested=job.cancel_requested,
            error=job.error,
            sandbox=bool(job.options.get("sandbox")),
            options=job.options,
            owner=job.owner,
            lease_until=None if job.lease_until is None else utc(job.lease_until),
            owner_since=None if job.owner_since is None else utc(job.owner_since),
        )

    def _final_counts(self, job: JobRow, batches: list[BatchRow]) -> dict[str, int]:
        """The job's final results by status. A fetched batch's count never changes (what it
        settled stays settled): each is read once per runner, from an index, so the info sent
        with every event costs what the new batches settled, not a count of the whole job."""
        known = self._done_counts
        fresh = [b.row for b in batches if b.state is BatchRowState.FETCHED and b.row not in known]
        found = self.store.count_done(job.id, fresh)
        for row in fresh:
            known[row] = found.get(row, {})
        counts: dict[str, int] = {}
        for by_status in [found.get(None, {}), *(known[b.row] for b in batches if b.row in known)]:
            for status, n in by_status.items():
                counts[status] = counts.get(status, 0) + n
        return counts

    def _emit(
        self,
        kind: JobEventKind,
        info: JobInfo,
        *,
        batch_id: str | None = None,
        status: BatchStatus | None = None,
        detail: str | None = None,
    ) -> None:
        event = info.event(
            kind,
            at=self.clock(),
            batch_id=batch_id,
            status=status,
            detail=detail,
            actor=self._me,
            cost_usd=self._cost_so_far(info, kind),
        )
        with self._observing:  # steps may run in several threads; observers see one at a time
            try:
                self.registry.plugin_manager.hook.batchcore_job_event(event=event)
            except Exception:
                log.exception("a batchcore_job_event hook failed")
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:
                    log.exception("job observer %r failed", observer)

    def _cost_so_far(self, info: JobInfo, kind: JobEventKind) -> float | None:
        """What the job's fetched results cost at batch prices, for its events: priced again
        only when results arrived (or first seen here), else the last known value, so a
        progress display never flickers back to "unknown". None for a sandbox job."""
        if info.sandbox:
            return None
        fresh = kind in (JobEventKind.RESULTS_FETCHED, JobEventKind.FINISHED)
        if fresh or info.id not in self._costs:
            known = None
            if any(b.cost_usd is not None for b in info.batches):  # else nothing priced yet
                spent = self.cost(info.id).cost_usd
                known = None if spent is None else float(spent)
            self._costs[info.id] = known
        return self._costs[info.id]

    def _batch_cost(self, job: JobRow, batch: BatchRow) -> float | None:
        """What one batch's fetched results cost at batch prices (priced once per batch): 0
        for a fetched batch whose results reported no usage, None before the fetch."""
        if job.options.get("sandbox"):
            return None
        if not batch.usage:
            return 0.0 if batch.state is BatchRowState.FETCHED else None
        if batch.row not in self._batch_costs:
            spent = JobCost.from_totals(job.provider, batch.usage).cost_usd
            self._batch_costs[batch.row] = None if spent is None else float(spent)
        return self._batch_costs[batch.row]

    def _report_wait(self, job_id: str, batch_id: str | None, wait: Wait) -> None:
        """A wait inside a call (a Retry-After, a backoff), shown like a postponement."""
        until = utc(self.clock() + wait.seconds)
        detail = (
            f"waiting {_duration(wait.seconds)} ({wait.reason}) until {until:%H:%M:%S} UTC: "
            f"{wait.what}" + (f" failed ({wait.error})" if wait.error else "")
        )
        self._emit(JobEventKind.WAITING, self.info(job_id), batch_id=batch_id, detail=detail)


@attrs.frozen(kw_only=True)
class _Queue:
    """A vendor queue a batch joins: the provider's declared limit, the cap from config (or
    the declared default), the cap in force, and the model it counts (None: every model)."""

    limit: QueueLimit
    configured: int
    cap: int
    model: str | None

    @property
    def key(self) -> str:
        """The queue's model as the store keys it (``"*"``: one queue for every model)."""
        return self.model or "*"

    @property
    def where(self) -> str:
        return f" for {self.model}" if self.model else ""

    def amount(self, batch: BatchRow) -> int:
        """What *batch* holds in this queue (estimated tokens, or requests)."""
        return (batch.tokens or 0) if self.limit.measure == "tokens" else batch.request_count


def _claim_of(batch: BatchRow) -> dict[str, Any]:
    """Who holds *batch* now (a live claim), for status displays."""
    if batch.claimed_by is None or (batch.claim_until or 0) < time.time():
        return {}
    since = None if batch.claimed_at is None else utc(batch.claimed_at)
    return {"claimed_by": batch.claimed_by, "claimed_since": since}


#: Why a job was cancelled when its deadline passed (``jobs.cancel_reason``).
DEADLINE = "deadline"


def _cancelled_error(job: JobRow) -> ResultError | None:
    """The error unfinished requests of a job stopped by its deadline carry."""
    if job.cancel_reason != DEADLINE:
        return None
    return ResultError(
        code="deadline_exceeded",
        retryable=True,
        message="The job's deadline passed before this request ran.",
    )


def _refused_for_capacity(status: BatchStatus, provider: BaseBatchProvider) -> bool:
    codes = {e.code for e in status.errors}
    return bool(codes) and codes <= provider.CAPACITY_ERROR_CODES


def _prepare_unless_all_reused(
    provider: BaseBatchProvider, requests: Iterator[BatchRequest], job: Any
) -> list[BatchPayload]:
    try:
        return provider.prepare_payloads(requests)
    except InvalidRequestError:
        if job.count and job.reused == job.count:
            return []  # every request was answered before: nothing to send
        raise


def _deadline(value: float | datetime | timedelta, now: float) -> float:
    """A deadline as seconds on the jobs' clock."""
    if isinstance(value, timedelta):
        return now + value.total_seconds()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a deadline datetime must be timezone-aware")
        return value.timestamp()
    return float(value)


def _due(job: JobRow, batch: BatchRow, now: float) -> bool:
    """Whether *batch* has a step to do now."""
    if batch.state is BatchRowState.SUBMITTED and job.cancel_requested and not batch.cancel_sent:
        return True
    if batch.state not in (BatchRowState.PREPARED, BatchRowState.SUBMITTED, BatchRowState.ENDED):
        return False
    return batch.next_poll_at is None or batch.next_poll_at <= now


def _submit(provider: BaseBatchProvider, payload: BatchPayload, journal: _StoreJournal) -> Any:
    """``provider.submit`` with the store as its journal. A provider that replaced ``submit``
    with the seed signature (no journal) is called the old way."""
    if "journal" in inspect.signature(type(provider).submit).parameters:
        return provider.submit(payload, journal=journal)
    return provider.submit(payload)


def _adopted_handle(provider: BaseBatchProvider, batch_id: str, batch: BatchRow) -> Any:
    from batchcore.models import BatchHandle

    if batch_id not in batch.candidates:
        log.warning(
            "adopting %s, which was not among the candidates %s",
            batch_id,
            ", ".join(batch.candidates),
        )
    return BatchHandle(
        provider=provider.PROVIDER_NAME,
        batch_id=batch_id,
        created_at=batch.attempted_at or time.time(),
        metadata={"idempotency_key": batch.idempotency_key, "adopted": True},
    )


def _payload_record(payload: BatchPayload) -> dict[str, Any]:
    return {
        "model": payload.model,
        "endpoint": payload.endpoint,
        "request_count": payload.request_count,
        "size_bytes": payload.size_bytes,
        "tokens": payload.tokens,
        "path": None if payload.path is None else str(payload.path),
        "ids_path": None if payload.ids_path is None else str(payload.ids_path),
    }


def _dollars(amount: Decimal) -> str:
    """Dollars readable at any size: cents for a real bill, six decimals for a small one."""
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.6f}"


def _unpriced(cost: JobCost) -> str:
    return cost.pricing_error or "no price known for " + (
        ", ".join(cost.unknown_prices) or "the models that answered"
    )


def _duration(seconds: float) -> str:
    if seconds >= 86_400 * 2:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"  # a few minutes are counted exactly (a Retry-After of 100 s)
