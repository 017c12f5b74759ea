"""FakeBackend: an in-memory batch vendor on a clock tests move by hand.

It plays the vendor for :class:`~batchcore.testing.FakeBatchProvider`, in batchcore's own
objects: it takes :class:`~batchcore.models.BatchRequest`\\ s and answers with handles, statuses
and results. On its :class:`~batchcore.testing.ManualClock` a batch is validating, then
in_progress (requests finish one by one), finalizing and completed; it expires after 24 hours
with the requests finished so far; it can be cancelled. Outcomes per request are scripted
(:class:`Outcome`), failures of calls are queued per operation (before the work, or after it
with the answer lost), and results come back in a shuffled (seeded, so repeatable) order.
Several providers can share one backend, as a runner resuming a job builds a new provider.

Failed calls raise what :mod:`batchcore.testing.fake_errors` defines, as a vendor SDK raises its
own exceptions; the provider translates them with the core's helpers, as every SDK-based
provider does.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

import attrs
import orjson

from batchcore.models import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    BatchError,
    BatchHandle,
    BatchLimits,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
)
from batchcore.testing.clock import ManualClock
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE, FAULT_KINDS, LOST_CREATE
from batchcore.testing.fake_batches import (
    FakeBatch,
    Outcome,
    answer,
    encode_request,
    validation_failure,
)
from batchcore.testing.fake_errors import FAIL_KINDS, fault_error, http_error

__all__ = [
    "ENDPOINTS",
    "FAKE_MODEL",
    "FAKE_MODELS",
    "OPERATIONS",
    "FakeBackend",
    "FakeBatch",
    "Outcome",
]

T = TypeVar("T")

#: The model the fake serves by default (any ``fake-*`` name is accepted).
FAKE_MODEL = "fake-model"
#: What :meth:`FakeBackend.list_models` answers.
FAKE_MODELS = (FAKE_MODEL, "fake-small", "fake-large")

#: The calls a provider makes to the backend; ``fail_next`` takes one of them (or ``"*"``).
OPERATIONS = ("submit", "list_batches", "poll_status", "fetch_results", "cancel", "list_models")

#: The endpoints the fake vendor serves.
ENDPOINTS = (CHAT_COMPLETIONS, EMBEDDINGS)

_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: fixed, so runs are repeatable
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_STATES: Mapping[str, BatchState] = {
    "validating": BatchState.VALIDATING,
    "in_progress": BatchState.IN_PROGRESS,
    "finalizing": BatchState.FINALIZING,
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelling": BatchState.CANCELLING,
    "cancelled": BatchState.CANCELLED,
}

# -- the fake vendor -------------------------------------------------------------------------


@attrs.frozen
class _QueuedFailure:
    operation: str  # one of OPERATIONS, or "*"
    error: str | BaseException  # a FAIL_KINDS name, or an exception raised as it is
    after: bool  # fail after doing the work (the answer is lost)


class FakeBackend:
    """The fake vendor: batches on a :class:`ManualClock`, scripted outcomes, queued faults and
    a log of every call. Implements :class:`~batchcore.testing.ContractBackend`.

    Durations (seconds of the backend's clock) shape every batch: ``validating_seconds``, then
    ``in_progress_seconds`` over which the requests finish one by one, then
    ``finalizing_seconds``; a batch not done ``expires_after`` seconds after creation expires.
    With *api_key* set, calls presenting another key fail with HTTP 401.
    """

    FAULTS: ClassVar[frozenset[str]] = frozenset({*FAULT_KINDS, LOST_CREATE, CORRUPT_RESULT_LINE})

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        seed: int = 0,
        api_key: str | None = None,
        validating_seconds: float = 30.0,
        in_progress_seconds: float = 600.0,
        finalizing_seconds: float = 30.0,
        expires_after: float = 24 * 3600.0,
        limits: BatchLimits | None = None,
        queue_requests: int | None = None,
        queue_refusal: str = "create",
    ) -> None:
        """*queue_requests*: how many requests may wait in the vendor's queue at once (batches
        not ended); a batch that would cross it is refused, at create with a 429 whose code is
        ``batch_queue_full`` (*queue_refusal* ``"create"``, as Anthropic does) or by failing
        validation with ``token_limit_exceeded`` (``"validate"``, as OpenAI does)."""
        for name, value in (
            ("validating_seconds", validating_seconds),
            ("in_progress_seconds", in_progress_seconds),
            ("finalizing_seconds", finalizing_seconds),
            ("expires_after", expires_after),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.clock = clock if clock is not None else ManualClock(start=_START)
        self.seed = seed
        self.api_key = api_key
        self.validating_seconds = validating_seconds
        self.in_progress_seconds = in_progress_seconds
        self.finalizing_seconds = finalizing_seconds
        self.expires_after = expires_after
        self.limits = (
            limits
            if limits is not None
            else BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
        )
        if queue_refusal not in ("create", "validate"):
            raise ValueError("queue_refusal is 'create' or 'validate'")
        self.queue_requests = queue_requests
        self.queue_refusal = queue_refusal
        #: The most requests that were ever in the queue at once (for tests of admission).
        self.queue_high_water = 0
        self._lock = threading.RLock()
        self._batches: dict[str, FakeBatch] = {}
        self._scripts: list[tuple[Callable[[BatchRequest], bool], Outcome]] = []
        self._failures: list[_QueuedFailure] = []
        self._rejections: list[BatchError] = []
        self._calls: list[str] = []
        self._corrupt_downloads = 0

    def __repr__(self) -> str:
        return f"FakeBackend(batches={len(self._batches)}, now={self.clock.now():.0f})"

    # -- the ContractBackend protocol ------------------------------------------------------

    def now(self) -> float:
        """The backend's time (its clock's)."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the clock forward; batches being cancelled become cancelled."""
        with self._lock:
            now = self.clock.advance(seconds)
            for batch in self._batches.values():
                if batch.cancelling_at is not None and batch.cancelled_at is None:
                    batch.cancelled_at = now

    def inject_fault(self, kind: str) -> None:
        """Make the next call (of any operation) fail with fault *kind*; ``lost_create`` is
        :meth:`lose_next_create`. ValueError for a kind not in ``FAULTS``."""
        if kind not in self.FAULTS:
            raise ValueError(
                f"FakeBackend cannot inject fault {kind!r}; it can inject "
                f"{', '.join(sorted(self.FAULTS))}"
            )
        if kind == LOST_CREATE:
            self.lose_next_create()
        elif kind == CORRUPT_RESULT_LINE:
            with self._lock:
                self._corrupt_downloads += 1
        else:
            self.fail_next("*", kind)

    def call_count(self) -> int:
        with self._lock:
            return len(self._calls)

    def batch_count(self) -> int:
        """Batches created so far."""
        with self._lock:
            return len(self._batches)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request scripted to come back as a per-request error."""
        self.script(custom_id, Outcome.error())
        return BatchRequest.from_dict(
            {
                "custom_id": custom_id,
                "model": model,
                "messages": [{"role": "user", "content": "Please fail."}],
                "params": {"max_tokens": 16},
            }
        )

    # -- scripting -------------------------------------------------------------------------

    def script(
        self,
        match: str | Iterable[str] | Callable[[BatchRequest], bool],
        outcome: Outcome,
    ) -> None:
        """Answer the requests *match* selects (a custom_id, several, or a predicate on the
        request) with *outcome*, in batches submitted from now on. The latest matching script
        wins; unscripted requests succeed."""
        if isinstance(match, str):
            wanted = match
            matcher: Callable[[BatchRequest], bool] = lambda r: r.custom_id == wanted  # noqa: E731
        elif callable(match):
            matcher = match
        else:
            ids = frozenset(match)
            matcher = lambda r: r.custom_id in ids  # noqa: E731
        with self._lock:
            self._scripts.append((matcher, outcome))

    def fail_next(
        self,
        operation: str = "*",
        error: str | BaseException = "server_error",
        *,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Make the next *times* calls of *operation* (one of :data:`OPERATIONS`, or ``"*"``
        for any) fail. *error* is a fault kind (``"rate_limit"``, ``"server_error"``,
        ``"overloaded"``, ``"unauthorized"``, ``"quota"``, ``"reset"``, ``"timeout"``) that the
        provider translates like a vendor failure, or an exception raised as it is.

        With *after*, the backend does the work first and the answer is lost: a ``submit``
        failing so has created its batch, as when a connection drops after a vendor accepted
        the call (``reset`` and ``timeout`` then leave the outcome unknown to the provider,
        which looks for the batch instead of creating another)."""
        if operation != "*" and operation not in OPERATIONS:
            raise ValueError(f"operation must be '*' or one of {OPERATIONS}, got {operation!r}")
        if isinstance(error, str) and error not in FAIL_KINDS:
            raise ValueError(f"unknown fault {error!r}; known: {', '.join(sorted(FAIL_KINDS))}")
        with self._lock:
            self._failures.extend([_QueuedFailure(operation, error, after)] * times)

    def lose_next_create(self) -> None:
        """Carry out the next batch create but lose its answer: the provider gets an
        :class:`~batchcore.errors.OutcomeUnknownError` (a read timeout) and the batch exists."""
        self.fail_next("submit", "timeout", after=True)

    def reject_next_batch(
        self, code: str = "invalid_file", message: str = "The fake backend rejected the batch."
    ) -> None:
        """Make the next submitted batch fail validation (it ends ``failed`` with this error)."""
        with self._lock:
            self._rejections.append(BatchError(code=code, message=message))

    # -- inspection ------------------------------------------------------------------------

    @property
    def calls(self) -> list[str]:
        """Every call received, by operation name, in order."""
        with self._lock:
            return list(self._calls)

    @property
    def batches(self) -> dict[str, FakeBatch]:
        """The batches created so far, by id."""
        with self._lock:
            return dict(self._batches)

    @property
    def submitted_count(self) -> int:
        """Batches created (a submit that adopts an earlier batch creates none)."""
        return self.batch_count()

    def batch(self, batch_id: str) -> FakeBatch:
        with self._lock:
            try:
                return self._batches[batch_id]
            except KeyError:
                raise LookupError(f"no fake batch {batch_id!r}") from None

    # -- the vendor API (what FakeBatchProvider calls) -------------------------------------

    def create_batch(
        self,
        requests: Sequence[BatchRequest],
        *,
        provider: str,
        endpoint: str,
        idempotency_key: str | None = None,
        api_key: str | None = None,
    ) -> BatchHandle:
        """Create a batch of *requests*, remembering *idempotency_key* (the provider finds the
        batch by it later). The vendor refuses what breaks its limits (HTTP 400); a batch with
        a duplicate custom_id or a request for another endpoint is created and fails
        validation, as vendors do."""

        def create() -> BatchHandle:
            if endpoint not in ENDPOINTS:
                raise http_error(400, f"endpoint {endpoint!r} is not served", "invalid_endpoint")
            if not requests:
                raise http_error(400, "The batch has no requests.", "empty_batch")
            if len(requests) > self.limits.max_requests:
                raise http_error(
                    400,
                    f"The batch has {len(requests)} requests; at most {self.limits.max_requests}.",
                    "too_many_requests",
                )
            size = sum(len(encode_request(request)) + 1 for request in requests)
            if size > self.limits.max_bytes:
                raise http_error(
                    400,
                    f"The batch is {size} bytes; at most {self.limits.max_bytes}.",
                    "batch_too_large",
                )
            failure = validation_failure(requests, endpoint)
            if failure is None and self._rejections:
                failure = self._rejections.pop(0)
            queued = self._queued()
            if self.queue_requests is not None and queued + len(requests) > self.queue_requests:
                if self.queue_refusal == "create":
                    raise http_error(
                        429,
                        f"The batch queue is full: {queued} requests waiting, at most "
                        f"{self.queue_requests}.",
                        "batch_queue_full",
                    )
                failure = failure or BatchError(
                    code="token_limit_exceeded",
                    message="Enqueued token limit reached for this model.",
                )
            batch = self._new_batch(requests, endpoint, idempotency_key, failure)
            if failure is None:
                self.queue_high_water = max(self.queue_high_water, queued + len(requests))
            return _handle(batch, provider)

        return self._serve("submit", api_key, create)

    def _queued(self) -> int:
        """Requests of batches that have not ended (what the vendor's queue holds)."""
        now = self.clock.now()
        return sum(
            len(batch.requests)
            for batch in self._batches.values()
            if batch.status_at(now) not in ("completed", "failed", "expired", "cancelled")
        )

    def list_batches(self, *, provider: str, api_key: str | None = None) -> list[BatchHandle]:
        """Every batch, newest first, each handle's metadata holding what the vendor echoes:
        ``endpoint``, ``request_count`` and the ``idempotency_key`` it was created with."""

        def listing() -> list[BatchHandle]:
            return [_handle(batch, provider) for batch in reversed(self._batches.values())]

        return self._serve("list_batches", api_key, listing)

    def get_status(
        self, batch_id: str, *, provider: str, api_key: str | None = None
    ) -> BatchStatus:
        def retrieve() -> BatchStatus:
            batch = self._find(batch_id)
            if batch.cancelling_at is not None and batch.cancelled_at is None:
                batch.cancelled_at = self.clock.now()
            return self._status(batch, provider)

        return self._serve("poll_status", api_key, retrieve)

    def read_results(self, batch_id: str, *, api_key: str | None = None) -> list[BatchResult]:
        """The results of an ended batch, shuffled: one per request, except for a batch that
        failed validation, which has none."""
        return self._serve("fetch_results", api_key, lambda: self._results(batch_id))

    def read_result_lines(self, batch_id: str, *, api_key: str | None = None) -> list[bytes]:
        """:meth:`read_results` as a vendor's download: one JSON line per result
        (``BatchResult.to_dict()``). After ``inject_fault("corrupt_result_line")`` the second
        line of the next download is cut in half, as a download garbled on the way."""

        def lines() -> list[bytes]:
            out = [orjson.dumps(result.to_dict()) for result in self._results(batch_id)]
            if self._corrupt_downloads and out:
                self._corrupt_downloads -= 1
                index = min(1, len(out) - 1)
                out[index] = out[index][: len(out[index]) // 2]
            return out

        return self._serve("fetch_results", api_key, lines)

    def _results(self, batch_id: str) -> list[BatchResult]:
        batch = self._find(batch_id)
        now = self.clock.now()
        status = batch.status_at(now)
        if status not in _TERMINAL:
            raise http_error(
                409,
                f"batch {batch_id!r} has not ended (status {status}); fetch results once it has",
                "batch_not_ended",
                **{"x-should-retry": "false"},
            )
        if batch.failure is not None:
            return []  # a batch that failed validation ran nothing
        out = [
            answer(batch, index, request, status, now)
            for index, request in enumerate(batch.requests)
        ]
        random.Random(f"{self.seed}:{batch_id}:results").shuffle(out)
        return out

    def request_ids(self, batch_id: str, *, api_key: str | None = None) -> list[str]:
        """The custom_ids a batch was created with (its input, as a vendor keeps it)."""

        def ids() -> list[str]:
            return list(self._find(batch_id).custom_ids)

        return self._serve("fetch_results", api_key, ids)

    def cancel_batch(
        self, batch_id: str, *, provider: str, api_key: str | None = None
    ) -> BatchStatus:
        """Start cancelling (``cancelling`` now, ``cancelled`` on the next poll or advance).
        A batch that has ended cannot be cancelled (HTTP 409)."""

        def cancel() -> BatchStatus:
            batch = self._find(batch_id)
            now = self.clock.now()
            status = batch.status_at(now)
            if status in _TERMINAL:
                raise http_error(
                    409,
                    f"batch {batch_id!r} has already ended ({status}) and cannot be cancelled",
                    "batch_ended",
                    **{"x-should-retry": "false"},
                )
            if batch.cancelling_at is None:
                batch.cancelling_at = now
            return self._status(batch, provider)

        return self._serve("cancel", api_key, cancel)

    def list_models(self, *, api_key: str | None = None) -> list[str]:
        return self._serve("list_models", api_key, lambda: list(FAKE_MODELS))

    # -- internals -------------------------------------------------------------------------

    def _serve(self, operation: str, api_key: str | None, work: Callable[[], T]) -> T:
        """One call: logged, failed by a queued fault or a wrong key, else *work* done (and
        its answer lost when a fault was queued with ``after=True``)."""
        with self._lock:
            self._calls.append(operation)
            self._take_failure(operation, api_key, after=False)
            if self.api_key is not None and api_key != self.api_key:
                raise fault_error("unauthorized", api_key, sent=True)
            answer = work()
            self._take_failure(operation, api_key, after=True)
            return answer

    def _take_failure(self, operation: str, api_key: str | None, *, after: bool) -> None:
        for index, queued in enumerate(self._failures):
            if queued.after is after and queued.operation in ("*", operation):
                del self._failures[index]
                if isinstance(queued.error, str):
                    raise fault_error(queued.error, api_key, sent=after)
                raise queued.error

    def _find(self, batch_id: str) -> FakeBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise http_error(404, f"No batch found with id {batch_id!r}.", "not_found")
        return batch

    def _outcome(self, request: BatchRequest) -> Outcome:
        for matcher, outcome in reversed(self._scripts):
            if matcher(request):
                return outcome
        return Outcome.succeed()

    def _new_batch(
        self,
        requests: Sequence[BatchRequest],
        endpoint: str,
        idempotency_key: str | None,
        failure: BatchError | None,
    ) -> FakeBatch:
        batch_id = f"fakebatch_{len(self._batches) + 1:06d}"
        now = self.clock.now()
        in_progress_at = now + self.validating_seconds
        outcomes = {request.custom_id: self._outcome(request) for request in requests}
        # Requests finish one by one over the in_progress window, in a seeded random order.
        order = list(range(len(requests)))
        random.Random(f"{self.seed}:{batch_id}:order").shuffle(order)
        step = self.in_progress_seconds / max(len(requests), 1)
        finish_at: dict[str, float | None] = {}
        for position, request in zip(order, requests, strict=True):
            never = outcomes[request.custom_id].kind == "never"
            finish_at[request.custom_id] = None if never else in_progress_at + step * (position + 1)
        expires_at = now + self.expires_after
        finalizing_at: float | None = None
        completed_at: float | None = None
        done_at = in_progress_at + self.in_progress_seconds + self.finalizing_seconds
        if done_at <= expires_at and all(done is not None for done in finish_at.values()):
            finalizing_at = in_progress_at + self.in_progress_seconds
            completed_at = done_at
        batch = FakeBatch(
            batch_id=batch_id,
            endpoint=endpoint,
            requests=tuple(requests),
            outcomes=outcomes,
            finish_at=finish_at,
            created_at=now,
            in_progress_at=in_progress_at,
            finalizing_at=finalizing_at,
            completed_at=completed_at,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
            failure=failure,
        )
        self._batches[batch_id] = batch
        return batch

    def _status(self, batch: FakeBatch, provider: str) -> BatchStatus:
        now = self.clock.now()
        status = batch.status_at(now)
        reached = now if batch.cancelling_at is None else min(now, batch.cancelling_at)
        stamps: dict[str, float | None] = {
            "created_at": batch.created_at,
            "expires_at": batch.expires_at,
            "in_progress_at": None,
            "finalizing_at": None,
            "completed_at": batch.completed_at if status == "completed" else None,
            "failed_at": None,
            "expired_at": batch.expires_at if status == "expired" else None,
            "cancelling_at": batch.cancelling_at,
            "cancelled_at": batch.cancelled_at,
        }
        if batch.in_progress_at <= reached:
            key = "failed_at" if batch.failure is not None else "in_progress_at"
            stamps[key] = batch.in_progress_at
        if batch.finalizing_at is not None and batch.finalizing_at <= reached:
            stamps["finalizing_at"] = batch.finalizing_at
        completed = failed = 0
        for request in batch.requests:
            if batch.finished(request.custom_id, now):
                if batch.outcomes[request.custom_id].kind == "error":
                    failed += 1
                else:
                    completed += 1
        ended = next(
            (
                stamps[key]
                for key in ("completed_at", "failed_at", "expired_at", "cancelled_at")
                if stamps[key] is not None
            ),
            None,
        )
        return BatchStatus(
            provider=provider,
            batch_id=batch.batch_id,
            state=_STATES[status],
            raw_status=status,
            total=len(batch.requests),
            completed=completed,
            failed=failed,
            created_at=batch.created_at,
            expires_at=batch.expires_at,
            ended_at=ended if status in _TERMINAL else None,
            timestamps={key: value for key, value in stamps.items() if value is not None},
            errors=() if batch.failure is None else (batch.failure,),
        )


def _handle(batch: FakeBatch, provider: str) -> BatchHandle:
    metadata: dict[str, Any] = {"endpoint": batch.endpoint, "request_count": len(batch.requests)}
    if batch.idempotency_key is not None:
        metadata["idempotency_key"] = batch.idempotency_key
    return BatchHandle(
        provider=provider,
        batch_id=batch.batch_id,
        created_at=datetime.fromtimestamp(batch.created_at, tz=timezone.utc),
        metadata=metadata,
    )
