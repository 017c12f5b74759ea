"""FakeBackend: an in-memory batch vendor on a clock tests move by hand.

It plays the vendor for :class:`~batchcore.testing.FakeBatchProvider`, in batchcore's own
objects: it takes :class:`~batchcore.models.BatchRequest`\\ s and answers with handles, statuses
and results. On its :class:`~batchcore.testing.ManualClock` a batch is validating, then
in_progress (requests finish one by one), finalizing and completed; it expires after 24 hours
with the requests finished so far; it can be cancelled. Outcomes per request are scripted,
failures of calls are queued per operation (before the work, or after it with the answer lost),
and results come back in a shuffled (seeded, so repeatable) order. Several providers can share
one backend, as a runner resuming a job builds a new provider.

Failed calls raise :class:`FakeAPIError` (an HTTP error answer) or a :class:`FakeTransportError`
(no complete answer), as a vendor SDK raises its own exceptions; the provider translates them
with the core's helpers, as every SDK-based provider does.
"""

from __future__ import annotations

import hashlib
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
    ResultError,
    ResultStatus,
    Usage,
)
from batchcore.testing.clock import ManualClock
from batchcore.testing.contract_backend import FAULT_KINDS, LOST_CREATE

__all__ = [
    "FAKE_MODEL",
    "FAKE_MODELS",
    "OPERATIONS",
    "ConnectError",
    "ConnectTimeout",
    "FakeAPIError",
    "FakeBackend",
    "FakeBatch",
    "FakeTransportError",
    "Outcome",
    "ReadTimeout",
    "RemoteProtocolError",
    "encode_request",
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


def encode_request(request: BatchRequest) -> bytes:
    """One request as the fake vendor takes it: batchcore's own JSON form of the request."""
    return orjson.dumps(request.to_dict())


# -- scripted outcomes -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Outcome:
    """How the fake vendor answers one request. Build with :meth:`succeed`, :meth:`error` or
    :meth:`never`."""

    kind: str = attrs.field(validator=attrs.validators.in_(("succeed", "error", "never")))
    text: str | None = None
    code: str = ""
    message: str = ""
    status_code: int = 200

    @classmethod
    def succeed(cls, text: str | None = None) -> Outcome:
        """Succeed with *text* (default: ``"Fake reply to: <last user message>"``, cut to
        ``max_tokens`` words)."""
        return cls(kind="succeed", text=text)

    @classmethod
    def error(
        cls,
        code: str = "invalid_request",
        message: str = "The fake backend was told to fail this request.",
        *,
        retryable: bool = False,
        status_code: int | None = None,
    ) -> Outcome:
        """Fail inside the batch (a result with an error, not an exception). *retryable* picks
        the HTTP status the vendor reports (500 or 400); an explicit *status_code* must agree."""
        status = status_code if status_code is not None else (500 if retryable else 400)
        if _retryable_status(status) != retryable:
            raise ValueError(f"status_code {status} contradicts retryable={retryable}")
        return cls(kind="error", code=code, message=message, status_code=status)

    @classmethod
    def never(cls) -> Outcome:
        """Never finish: the request comes back expired (after 24 hours) or cancelled."""
        return cls(kind="never")


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


# -- what failed calls raise -----------------------------------------------------------------


class FakeAPIError(Exception):
    """A failed call to the fake vendor, as a vendor SDK raises it: an HTTP error answer with
    ``status_code``, ``body`` and ``headers``. :class:`FakeBatchProvider` translates it into a
    batchcore error; it never reaches the users of a conformant provider."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})


class FakeTransportError(FakeAPIError):
    """A call that got no complete answer. The subclasses carry the names httpx gives these
    failures, so :func:`batchcore.classify.transport_failure` tells *nothing was sent* from
    *the outcome is unknown* exactly as it does for a real SDK."""


class ConnectError(FakeTransportError):
    """The connection failed: nothing was sent."""


class ConnectTimeout(FakeTransportError):
    """Connecting timed out: nothing was sent."""


class ReadTimeout(FakeTransportError):
    """The request was sent and its answer did not come in time."""


class RemoteProtocolError(FakeTransportError):
    """The request was sent and the connection broke before the answer."""


def _http_error(status: int, message: str, code: str | None, **headers: str) -> FakeAPIError:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return FakeAPIError(message, status_code=status, body=body, headers=headers)


def _mask(key: str | None) -> str:
    # As vendors echo keys: enough to recognise one, never the key itself.
    if not key:
        return "<none>"
    return key[:3] + "*" * 8 + key[-2:] if len(key) >= 8 else "*" * 8


def _fault(kind: str, api_key: str | None, *, sent: bool) -> FakeAPIError:
    """The exception a call failing with fault *kind* raises; *sent*: whether the vendor had
    received the request (the transport faults then leave its outcome unknown)."""
    if kind == "rate_limit":
        return _http_error(
            429, "Rate limit reached for requests", "rate_limit_exceeded", **{"retry-after": "0"}
        )
    if kind == "server_error":
        return _http_error(500, "The server had an error while processing your request.", None)
    if kind == "overloaded":
        return _http_error(503, "Slow Down", "overloaded")
    if kind == "unauthorized":
        return _http_error(401, f"Incorrect API key provided: {_mask(api_key)}.", "invalid_api_key")
    if kind == "quota":
        return _http_error(
            429, "You exceeded your current quota, please check your plan.", "insufficient_quota"
        )
    if kind == "reset":
        return (
            RemoteProtocolError("connection reset by peer")
            if sent
            else ConnectError("connection reset by peer")
        )
    if kind == "timeout":
        return ReadTimeout("read timed out") if sent else ConnectTimeout("connect timed out")
    raise AssertionError(f"unknown fault {kind!r}")


#: The fault kinds ``fail_next`` takes by name.
FAIL_KINDS = (
    "rate_limit",
    "server_error",
    "overloaded",
    "unauthorized",
    "quota",
    "reset",
    "timeout",
)


# -- the fake vendor -------------------------------------------------------------------------


@attrs.define(kw_only=True, eq=False)
class FakeBatch:
    """One batch as the fake vendor holds it. Read it in tests (``requests``, ``custom_ids``,
    ``idempotency_key``); the backend moves it along."""

    batch_id: str
    endpoint: str
    requests: tuple[BatchRequest, ...]
    outcomes: Mapping[str, Outcome] = attrs.field(repr=False)
    finish_at: Mapping[str, float | None] = attrs.field(repr=False)
    created_at: float
    in_progress_at: float
    finalizing_at: float | None
    completed_at: float | None
    expires_at: float
    idempotency_key: str | None = None
    failure: BatchError | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None

    @property
    def custom_ids(self) -> tuple[str, ...]:
        return tuple(request.custom_id for request in self.requests)

    def status_at(self, now: float) -> str:
        """The vendor status word at time *now*."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.cancelling_at is not None:
            return "cancelling"
        if now < self.in_progress_at:
            return "validating"
        if self.failure is not None:
            return "failed"
        if self.completed_at is not None and now >= self.completed_at:
            return "completed"
        if now >= self.expires_at:
            return "expired"
        if self.finalizing_at is not None and now >= self.finalizing_at:
            return "finalizing"
        return "in_progress"

    def finished(self, custom_id: str, now: float) -> bool:
        """Whether the request had finished by *now* (work stops at expiry and cancellation)."""
        done = self.finish_at.get(custom_id)
        if done is None or self.failure is not None:
            return False
        cutoff = min(now, self.expires_at)
        if self.cancelling_at is not None:
            cutoff = min(cutoff, self.cancelling_at)
        return done <= cutoff


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

    FAULTS: ClassVar[frozenset[str]] = frozenset({*FAULT_KINDS, LOST_CREATE})

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
    ) -> None:
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
        self._lock = threading.RLock()
        self._batches: dict[str, FakeBatch] = {}
        self._scripts: list[tuple[Callable[[BatchRequest], bool], Outcome]] = []
        self._failures: list[_QueuedFailure] = []
        self._rejections: list[BatchError] = []
        self._calls: list[str] = []

    def __repr__(self) -> str:
        return f"FakeBackend(batches={len(self._batches)}, now={self.clock.now():.0f})"

    # -- the ContractBackend protocol ------------------------------------------------------

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
                f"FakeBackend cannot inject fault {kind!r}; it can: {', '.join(sorted(self.FAULTS))}"
            )
        if kind == LOST_CREATE:
            self.lose_next_create()
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
                raise _http_error(400, f"endpoint {endpoint!r} is not served", "invalid_endpoint")
            if not requests:
                raise _http_error(400, "The batch has no requests.", "empty_batch")
            if len(requests) > self.limits.max_requests:
                raise _http_error(
                    400,
                    f"The batch has {len(requests)} requests; at most {self.limits.max_requests}.",
                    "too_many_requests",
                )
            size = sum(len(encode_request(request)) + 1 for request in requests)
            if size > self.limits.max_bytes:
                raise _http_error(
                    400,
                    f"The batch is {size} bytes; at most {self.limits.max_bytes}.",
                    "batch_too_large",
                )
            failure = _validation_failure(requests, endpoint)
            if failure is None and self._rejections:
                failure = self._rejections.pop(0)
            batch = self._new_batch(requests, endpoint, idempotency_key, failure)
            return _handle(batch, provider)

        return self._serve("submit", api_key, create)

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

        def results() -> list[BatchResult]:
            batch = self._find(batch_id)
            now = self.clock.now()
            status = batch.status_at(now)
            if status not in _TERMINAL:
                raise _http_error(
                    409,
                    f"batch {batch_id!r} has not ended (status {status}); fetch results "
                    "once it has",
                    "batch_not_ended",
                    **{"x-should-retry": "false"},
                )
            if batch.failure is not None:
                return []  # a batch that failed validation ran nothing
            out = [
                self._result(batch, index, request, status, now)
                for index, request in enumerate(batch.requests)
            ]
            random.Random(f"{self.seed}:{batch_id}:results").shuffle(out)
            return out

        return self._serve("fetch_results", api_key, results)

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
                raise _http_error(
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
                raise _fault("unauthorized", api_key, sent=True)
            answer = work()
            self._take_failure(operation, api_key, after=True)
            return answer

    def _take_failure(self, operation: str, api_key: str | None, *, after: bool) -> None:
        for index, queued in enumerate(self._failures):
            if queued.after is after and queued.operation in ("*", operation):
                del self._failures[index]
                if isinstance(queued.error, str):
                    raise _fault(queued.error, api_key, sent=after)
                raise queued.error

    def _find(self, batch_id: str) -> FakeBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _http_error(404, f"No batch found with id {batch_id!r}.", "not_found")
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

    def _result(
        self, batch: FakeBatch, index: int, request: BatchRequest, status: str, now: float
    ) -> BatchResult:
        custom_id, batch_id = request.custom_id, batch.batch_id
        if not batch.finished(custom_id, now):
            state = ResultStatus.CANCELLED if status == "cancelled" else ResultStatus.EXPIRED
            return BatchResult.unfinished(custom_id, state, batch_id=batch_id)
        outcome = batch.outcomes[custom_id]
        if outcome.kind == "error":
            error = ResultError(
                code=outcome.code,
                message=outcome.message,
                retryable=_retryable_status(outcome.status_code),
                status_code=outcome.status_code,
            )
            body = {"error": {"code": outcome.code, "message": outcome.message}}
            return BatchResult(
                custom_id=custom_id,
                status=ResultStatus.ERRORED,
                response=body,
                error=error,
                batch_id=batch_id,
            )
        return _success(request, outcome, f"{batch_id}-{index}", batch_id)


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


def _validation_failure(requests: Sequence[BatchRequest], endpoint: str) -> BatchError | None:
    """The first problem that fails a batch at validation, if any."""
    seen: set[str] = set()
    for number, request in enumerate(requests, start=1):
        if request.endpoint != endpoint:
            return BatchError(
                code="mismatched_endpoint",
                message=f"request {number} is for {request.endpoint}, the batch for {endpoint}",
                line=number,
                param="endpoint",
            )
        if request.custom_id in seen:
            return BatchError(
                code="duplicate_custom_id",
                message=f"custom_id {request.custom_id!r} appears twice",
                line=number,
                param="custom_id",
            )
        seen.add(request.custom_id)
    return None


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _success(
    request: BatchRequest, outcome: Outcome, response_id: str, batch_id: str
) -> BatchResult:
    """A succeeded request: deterministic text (or vectors), usage counted in words."""
    if request.endpoint == EMBEDDINGS:
        raw_input = request.params.get("input")
        inputs = list(raw_input) if isinstance(raw_input, (list, tuple)) else [raw_input]
        vectors = []
        for item in inputs:
            digest = hashlib.sha256(orjson.dumps(item)).digest()
            vectors.append([round(byte / 255.0, 6) for byte in digest[:8]])
        tokens = sum(len(str(item).split()) for item in inputs)
        return BatchResult(
            custom_id=request.custom_id,
            status=ResultStatus.SUCCEEDED,
            response={"id": response_id, "model": request.model, "embeddings": vectors},
            usage=Usage(input_tokens=tokens, total_tokens=tokens),
            batch_id=batch_id,
        )
    stop_reason = "end"
    if outcome.text is not None:
        text = outcome.text
    else:
        last_user = next(
            (_message_text(m) for m in reversed(request.messages) if m.get("role") == "user"), ""
        )
        words = f"Fake reply to: {last_user}".split()
        limit = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool) and len(words) > limit:
            words = words[:limit]
            stop_reason = "max_tokens"
        text = " ".join(words)
    prompt_tokens = sum(len(_message_text(m).split()) for m in request.messages)
    completion_tokens = len(text.split())
    return BatchResult(
        custom_id=request.custom_id,
        status=ResultStatus.SUCCEEDED,
        response={
            "id": response_id,
            "model": request.model,
            "text": text,
            "stop_reason": stop_reason,
        },
        text=text,
        usage=Usage(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
        batch_id=batch_id,
    )
