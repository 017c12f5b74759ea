"""The job runner: hand over many requests, get exactly one result per custom_id back.

Works with any provider (first- or third-party) through the contract alone. A job moves through
the store one recorded step at a time::

    pending requests --plan--> prepared batch (intent, payload on disk)
    prepared --submit--> submitted (handle stored) --poll...--> ended (terminal status)
    ended --fetch--> results stored as they stream --settle--> done, or pending again (retry)

Each arrow is written to the store before and after its network call, so a killed process
resumes where it stopped: a prepared batch is re-submitted with the same idempotency key (the
provider finds the batch it already created), a fetch restarts and stores nothing twice.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import attrs

from batchcore.errors import BatchcoreError, ProviderTransientError, UnsupportedOperationError
from batchcore.jobs.store import BatchRow, JobRow, JobStore
from batchcore.models import (
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    JobEvent,
    JobEventKind,
    ResultError,
    ResultStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.registry import BatchProviderRegistry, batch_provider_registry

__all__ = ["BatchInfo", "BatchRunner", "JobInfo", "PollSchedule"]

log = logging.getLogger("batchcore.jobs")
T = TypeVar("T")
Observer = Callable[[JobEvent], None]

_RESULT_CHUNK = 1000
_TRANSIENT_ATTEMPTS = 6


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
        base = min(self.min_interval * self.factor ** max(polls, 0), self.max_interval)
        base *= 1 + self.jitter * (2 * rng() - 1)
        return max(base, retry_after or 0.0)


@attrs.frozen(kw_only=True)
class BatchInfo:
    """One vendor batch of a job."""

    batch_id: str | None
    state: str
    round: int
    request_count: int
    status: BatchStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "state": self.state,
            "round": self.round,
            "request_count": self.request_count,
            "status": None if self.status is None else self.status.to_dict(),
        }


@attrs.frozen(kw_only=True)
class JobInfo:
    """Where a job stands. ``counts`` has final results by status plus ``pending`` (requests
    without a final result yet)."""

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

    @property
    def finished(self) -> bool:
        return self.state in ("finished", "cancelled")

    @property
    def succeeded(self) -> int:
        return self.counts.get(ResultStatus.SUCCEEDED.value, 0)

    @property
    def all_succeeded(self) -> bool:
        return self.finished and self.succeeded == self.request_count

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "state": self.state,
            "request_count": self.request_count,
            "counts": dict(self.counts),
            "batches": [b.to_dict() for b in self.batches],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "cancel_requested": self.cancel_requested,
            "error": self.error,
        }


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:12]


class BatchRunner:
    """Runs jobs of any size on any provider, durably.

    ``store`` is a :class:`JobStore` or a path (default: ``$BATCHCORE_HOME``). ``clock`` and
    ``sleep`` are injectable so tests run whole lifecycles without waiting. ``observers`` are
    called with every :class:`JobEvent`, as are plugins' ``batchcore_job_event`` hooks.
    """

    def __init__(
        self,
        store: JobStore | str | Path | None = None,
        *,
        registry: BatchProviderRegistry | None = None,
        max_attempts: int = 3,
        poll: PollSchedule | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        observers: Sequence[Observer] = (),
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store if isinstance(store, JobStore) else JobStore(store, clock=clock)
        self.registry = registry or batch_provider_registry
        self.max_attempts = max_attempts
        self.poll = poll or PollSchedule()
        self.clock = clock
        self.sleep = sleep
        self.observers = list(observers)
        self._rng = rng
        # Payloads prepared in this process, by batch row: used before their files are read back.
        self._live_payloads: dict[int, BatchPayload] = {}

    # -- public API ------------------------------------------------------------------------

    def create(
        self,
        provider: str | BaseBatchProvider,
        requests: Iterable[BatchRequest],
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Validate every request, record the job and prepare its first batches. No network
        call: the requests are read once, recorded and written into payload files in the same
        pass, and the batches to submit are recorded with them.

        Raises :class:`~batchcore.InvalidRequestError` / ``UnsupportedModelError`` for the
        first bad request, and for duplicate custom_ids; nothing is recorded then.
        """
        instance = self._build(provider, config)
        job_id = job_id or new_job_id()
        with self.store.new_job(
            job_id,
            provider=instance.PROVIDER_NAME,
            config=instance.config,
            options={"max_attempts": self.max_attempts, **(options or {})},
        ) as job:
            payloads = instance.prepare_payloads(job.record(requests))
            try:
                for payload in payloads:
                    self._record_batch(job.add_batch, job_id, 1, payload)
            except BaseException:
                for payload in payloads:
                    payload.discard()
                raise
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
    ) -> str:
        """Create a job and submit all its batches, without waiting for them. Returns the id."""
        job_id = self.create(provider, requests, config=config, job_id=job_id)
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
    ) -> JobInfo:
        """Create a job and drive it to the end. Then read :meth:`results`."""
        job_id = self.create(provider, requests, config=config, job_id=job_id)
        return self.drive(
            job_id,
            provider=provider if isinstance(provider, BaseBatchProvider) else None,
            config=config,
        )

    def resume(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Continue a job from the store until it is finished (after a crash, or a submit)."""
        return self.drive(job_id, provider=provider, config=config)

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
        instance = self._provider_for(job, provider, config)
        for batch in self.store.batches(job_id, state="submitted"):
            self._send_cancel(batch, instance)
        return self.info(job_id)

    def info(self, job_id: str) -> JobInfo:
        job = self.store.job(job_id)
        return self._info(job)

    def jobs(self) -> list[JobInfo]:
        return [self._info(job) for job in self.store.jobs()]

    def results(self, job_id: str) -> Iterator[BatchResult]:
        """The stored result of every request, in input order. For a finished job, exactly one
        per custom_id; for an unfinished one, what has arrived so far."""
        self.store.job(job_id)
        return self.store.iter_results(job_id)

    # -- driving ---------------------------------------------------------------------------

    def drive(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> JobInfo:
        """Move the job forward until it is finished (or, with ``wait=False``, until every
        batch is submitted). Safe to call again after any failure."""
        job = self.store.job(job_id)
        if job.state in ("finished", "cancelled"):
            return self._info(job)
        instance = self._provider_for(job, provider, config)
        owner = self.store.acquire(job_id)
        try:
            if job.state != "active":
                self.store.set_job_state(job_id, "active")
            self._discard_orphans(job, instance)
            return self._loop(job_id, instance, owner, wait=wait)
        except BatchcoreError as error:
            self.store.set_job_state(job_id, "error", error=str(error))
            raise
        finally:
            self.store.release(job_id, owner)

    def _loop(self, job_id: str, provider: BaseBatchProvider, owner: str, *, wait: bool) -> JobInfo:
        last_renew = time.time()
        while True:
            if time.time() - last_renew > 30:
                self.store.renew(job_id, owner)
                last_renew = time.time()
            job = self.store.job(job_id)
            self._plan(job, provider)
            self._submit_prepared(job, provider)
            if job.cancel_requested:
                for batch in self.store.batches(job_id, state="submitted"):
                    if not batch.cancel_sent:
                        self._send_cancel(batch, provider)
            self._fetch_ended(job, provider)
            counts = self.store.count_requests(job_id)
            if not counts.get("pending") and not counts.get("assigned"):
                final = "cancelled" if job.cancel_requested else "finished"
                self.store.set_job_state(job_id, final)
                info = self.info(job_id)
                self._emit(JobEventKind.FINISHED, info, detail=final)
                return info
            if (
                not wait
                and not counts.get("pending")
                and not self.store.batches(job_id, state="prepared")
            ):
                return self.info(job_id)
            if not self._poll_due(job, provider):
                self._sleep_until_due(job_id)

    def _plan(self, job: JobRow, provider: BaseBatchProvider) -> None:
        counts = self.store.count_requests(job.id)
        if not counts.get("pending"):
            return
        if job.cancel_requested:
            self.store.settle_pending_as(
                job.id,
                (
                    BatchResult(
                        custom_id=cid,
                        status=ResultStatus.CANCELLED,
                        error=ResultError(
                            code="job_cancelled",
                            retryable=True,
                            message="The job was cancelled before this request was submitted.",
                        ),
                    )
                    for cid in list(self.store.iter_pending_ids(job.id))
                ),
            )
            return
        rounds = [b.round for b in self.store.batches(job.id)]
        round_number = max(rounds, default=0) + 1
        payloads = provider.prepare_payloads(self.store.iter_requests(job.id, state="pending"))
        for payload in payloads:
            self._record_batch(
                functools.partial(self.store.add_batch, job.id), job.id, round_number, payload
            )
        if round_number > 1:
            self._emit(
                JobEventKind.RETRIED,
                self.info(job.id),
                detail=f"round {round_number}: {sum(p.request_count for p in payloads)} "
                "requests resubmitted",
            )

    def _submit_prepared(self, job: JobRow, provider: BaseBatchProvider) -> None:
        for batch in self.store.batches(job.id, state="prepared"):
            if job.cancel_requested:
                # Never submitted: its requests go back to pending, where the next plan settles
                # them as cancelled.
                self.store.abandon_batch(job.id, batch.row)
                self._discard_live(batch.row)
                continue
            payload = attrs.evolve(
                self._payload_for(batch, provider), idempotency_key=batch.idempotency_key
            )
            handle = self._patiently(functools.partial(provider.submit, payload), "submit")
            now = self.clock()
            self.store.batch_submitted(batch.row, handle, now + self.poll.delay(0, rng=self._rng))
            payload.discard()
            self._live_payloads.pop(batch.row, None)
            self._emit(
                JobEventKind.SUBMITTED,
                self.info(job.id),
                batch_id=handle.batch_id,
                detail=f"{batch.request_count} requests",
            )

    def _poll_due(self, job: JobRow, provider: BaseBatchProvider) -> bool:
        """Poll every batch whose time has come. Returns whether anything was due."""
        now = self.clock()
        due = [
            b
            for b in self.store.batches(job.id, state="submitted")
            if b.next_poll_at is None or b.next_poll_at <= now
        ]
        for batch in due:
            assert batch.handle is not None
            try:
                status = provider.poll_status(batch.handle)
            except ProviderTransientError as error:
                self._postpone(batch, error)
                continue
            next_at = (
                None
                if status.is_terminal
                else self.clock() + self.poll.delay(batch.polls + 1, rng=self._rng)
            )
            self.store.batch_polled(batch.row, status, next_at)
            previous = batch.status.state if batch.status else None
            if status.state != previous or (status.completed, status.failed) != (
                (batch.status.completed, batch.status.failed) if batch.status else (None, None)
            ):
                self._emit(
                    JobEventKind.STATUS_CHANGED,
                    self.info(job.id),
                    batch_id=batch.handle.batch_id,
                    status=status,
                )
        return bool(due)

    def _fetch_ended(self, job: JobRow, provider: BaseBatchProvider) -> None:
        now = self.clock()
        for batch in self.store.batches(job.id, state="ended"):
            if batch.next_poll_at is not None and batch.next_poll_at > now:
                continue
            assert batch.handle is not None and batch.status is not None
            stored = 0
            chunk: list[BatchResult] = []
            try:
                for result in provider.fetch_results(batch.handle):
                    chunk.append(result)
                    if len(chunk) >= _RESULT_CHUNK:
                        stored += self.store.save_results(job.id, batch.row, chunk)
                        chunk = []
            except ProviderTransientError as error:
                # What arrived is kept; the next attempt re-reads the stream and stores
                # nothing twice.
                self.store.save_results(job.id, batch.row, chunk)
                self._postpone(batch, error)
                continue
            stored += self.store.save_results(job.id, batch.row, chunk)
            missing = self.store.missing_results(job.id, batch.row)
            if missing:
                self.store.save_results(
                    job.id, batch.row, (_missing_result(cid, batch.status) for cid in missing)
                )
            back = self.store.settle_batch(
                job.id, batch.row, max_attempts=self.max_attempts, retry=not job.cancel_requested
            )
            info = self.info(job.id)
            self._emit(
                JobEventKind.RESULTS_FETCHED,
                info,
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

    def _postpone(self, batch: BatchRow, error: ProviderTransientError) -> None:
        delay = self.poll.delay(batch.poll_failures + 1, error.retry_after, rng=self._rng)
        log.warning("batch row %d: %s; trying again in %.1fs", batch.row, error, delay)
        self.store.batch_poll_failed(batch.row, str(error), self.clock() + delay)

    def _sleep_until_due(self, job_id: str) -> None:
        now = self.clock()
        times = [
            b.next_poll_at
            for b in self.store.batches(job_id)
            if b.state in ("submitted", "ended") and b.next_poll_at is not None
        ]
        wait = min(times, default=now + self.poll.min_interval) - now
        self.sleep(min(max(wait, 0.0), self.poll.max_interval))

    def _patiently(self, call: Callable[[], T], what: str) -> T:
        """Retry a call through transient failures that outlast the provider's own retries."""
        attempt = 0
        while True:
            try:
                return call()
            except ProviderTransientError as error:
                attempt += 1
                if attempt >= _TRANSIENT_ATTEMPTS:
                    raise
                delay = self.poll.delay(attempt, error.retry_after, rng=self._rng)
                log.warning("%s failed (%s); trying again in %.1fs", what, error, delay)
                self.sleep(delay)

    # -- helpers ---------------------------------------------------------------------------

    def _build(
        self, provider: str | BaseBatchProvider, config: Mapping[str, Any] | None
    ) -> BaseBatchProvider:
        if isinstance(provider, BaseBatchProvider):
            return provider
        cls = self.registry.get(provider)
        settings = dict(config or {})
        settings.setdefault("workdir", str(self.store.path.parent / "payloads"))
        return cls(config=settings)

    def _provider_for(
        self, job: JobRow, provider: BaseBatchProvider | None, config: Mapping[str, Any] | None
    ) -> BaseBatchProvider:
        if provider is not None:
            if job.provider != provider.PROVIDER_NAME:
                raise BatchcoreError(
                    f"job {job.id} belongs to provider {job.provider!r}, "
                    f"not {provider.PROVIDER_NAME!r}"
                )
            return provider
        return self._build(job.provider, {**job.config, **(config or {})})

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
        # The payload's files are gone (a reboot cleaned them, or the provider keeps payloads
        # in memory): rebuild it from the requests the store assigned to this batch.
        payloads = provider.prepare_payloads(
            self.store.iter_requests(batch.job_id, batch_row=batch.row)
        )
        if len(payloads) != 1:
            for extra in payloads:
                extra.discard()
            raise BatchcoreError(
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
        for batch in self.store.batches(job.id, state="prepared"):
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
        counts: dict[str, int] = dict(self.store.count_results(job.id))
        requests = self.store.count_requests(job.id)
        counts["pending"] = requests.get("pending", 0) + requests.get("assigned", 0)
        batches = tuple(
            BatchInfo(
                batch_id=b.handle.batch_id if b.handle else None,
                state=b.status.state.value if b.status else b.state,
                round=b.round,
                request_count=b.request_count,
                status=b.status,
            )
            for b in self.store.batches(job.id)
        )
        return JobInfo(
            id=job.id,
            provider=job.provider,
            state=job.state,
            request_count=job.request_count,
            counts=counts,
            batches=batches,
            created_at=_utc(job.created_at),
            updated_at=_utc(job.updated_at),
            finished_at=None if job.finished_at is None else _utc(job.finished_at),
            cancel_requested=job.cancel_requested,
            error=job.error,
        )

    def _emit(
        self,
        kind: JobEventKind,
        info: JobInfo,
        *,
        batch_id: str | None = None,
        status: BatchStatus | None = None,
        detail: str | None = None,
    ) -> None:
        event = JobEvent(
            kind=kind,
            job_id=info.id,
            provider=info.provider,
            at=self.clock(),
            batch_id=batch_id,
            status=status,
            counts=info.counts,
            detail=detail,
        )
        try:
            self.registry.plugin_manager.hook.batchcore_job_event(event=event)
        except Exception:
            log.exception("a batchcore_job_event hook failed")
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("job observer %r failed", observer)


def _payload_record(payload: BatchPayload) -> dict[str, Any]:
    return {
        "model": payload.model,
        "endpoint": payload.endpoint,
        "request_count": payload.request_count,
        "size_bytes": payload.size_bytes,
        "path": None if payload.path is None else str(payload.path),
        "ids_path": None if payload.ids_path is None else str(payload.ids_path),
    }


def _missing_result(custom_id: str, status: BatchStatus) -> BatchResult:
    """The result of a request the provider returned nothing for."""
    if status.state is BatchState.EXPIRED:
        return BatchResult.unfinished(custom_id, ResultStatus.EXPIRED, batch_id=status.batch_id)
    if status.state is BatchState.CANCELLED:
        return BatchResult.unfinished(custom_id, ResultStatus.CANCELLED, batch_id=status.batch_id)
    if status.state is BatchState.FAILED:
        reasons = "; ".join(
            f"{e.code + ': ' if e.code else ''}{e.message}"
            + (f" (line {e.line})" if e.line else "")
            for e in status.errors
        )
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            batch_id=status.batch_id,
            error=ResultError(
                code="batch_failed",
                retryable=False,
                message=f"The batch failed: {reasons or 'no reason given'}",
            ),
        )
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.ERRORED,
        batch_id=status.batch_id,
        error=ResultError(
            code="missing_result",
            retryable=True,
            message="The provider returned no result for this request.",
        ),
    )
