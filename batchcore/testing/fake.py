"""FakeBatchProvider: an in-memory batch provider for testing code that drives batches.

::

    backend = FakeBackend()
    provider = FakeBatchProvider(config={"backend": backend})
    backend.script("q-7", Outcome.error(code="invalid_prompt", message="too long"))
    [payload] = provider.prepare_payloads(requests)
    handle = provider.submit(payload)
    backend.advance(3600)                      # an hour passes: the batch has completed
    results = list(provider.fetch_results(handle))

The provider half is an ordinary provider: the base class validates requests and writes the
payload file (OpenAI batch lines), ``submit`` uploads that file, vendor failures are translated
into batchcore errors and retried through ``provider.sleep``. The backend half plays the
vendor: on its :class:`~batchcore.testing.ManualClock` a batch is validating, then in_progress
(requests finish one by one), finalizing and completed; it expires after 24 hours with the
requests finished so far; it can be cancelled. Outcomes per request are scripted, faults are
queued per operation, and results come back in a shuffled (seeded, so repeatable) order.
Several providers can share one backend, as a runner resuming a job builds a new provider.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import orjson

from batchcore.classify import error_from_response
from batchcore.errors import (
    ConfigurationError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from batchcore.models import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    SAFE_CUSTOM_ID,
    BatchError,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ResultError,
    ResultStatus,
    Usage,
)
from batchcore.provider import BaseBatchProvider
from batchcore.retry import retry_call
from batchcore.testing.clock import ManualClock

__all__ = [
    "FAKE_MODEL",
    "OPERATIONS",
    "FakeAPIError",
    "FakeBackend",
    "FakeBatch",
    "FakeBatchProvider",
    "Outcome",
]

T = TypeVar("T")

#: The model the fake serves by default (any ``fake-*`` name is accepted).
FAKE_MODEL = "fake-model"

#: The calls a provider makes to the backend; ``fail_next`` takes one of them (or ``"*"``).
OPERATIONS = ("submit", "poll_status", "fetch_results", "cancel", "list_models")

_ENDPOINTS = (CHAT_COMPLETIONS, EMBEDDINGS)
_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: fixed, so runs are repeatable
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_RAW_STATES: Mapping[str, BatchState] = {
    "validating": BatchState.VALIDATING,
    "in_progress": BatchState.IN_PROGRESS,
    "finalizing": BatchState.FINALIZING,
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelling": BatchState.CANCELLING,
    "cancelled": BatchState.CANCELLED,
}
_END_KEYS = ("completed_at", "failed_at", "expired_at", "cancelled_at")


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


class FakeAPIError(Exception):
    """A failed call to the fake vendor, as a vendor SDK would raise it.

    :class:`FakeBatchProvider` translates it into a batchcore error; it never reaches the users
    of a conformant provider. ``kind`` is ``"http"`` (with a status), ``"reset"`` or
    ``"timeout"``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str = "http",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})
        self.kind = kind


def _http_error(status: int, message: str, code: str | None, **headers: str) -> FakeAPIError:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return FakeAPIError(message, status_code=status, body=body, headers=headers)


def _mask(key: str | None) -> str:
    # As vendors echo keys: enough to recognise one, never the key itself.
    if not key:
        return "<none>"
    return key[:3] + "*" * 8 + key[-2:] if len(key) >= 8 else "*" * 8


_FAULTS: Mapping[str, Callable[[str | None], FakeAPIError]] = {
    "rate_limit": lambda key: _http_error(
        429, "Rate limit reached for requests", "rate_limit_exceeded", **{"retry-after": "0"}
    ),
    "server_error": lambda key: _http_error(
        500, "The server had an error while processing your request.", None
    ),
    "overloaded": lambda key: _http_error(503, "Slow Down", "overloaded"),
    "unauthorized": lambda key: _http_error(
        401, f"Incorrect API key provided: {_mask(key)}.", "invalid_api_key"
    ),
    "quota": lambda key: _http_error(
        429, "You exceeded your current quota, please check your plan.", "insufficient_quota"
    ),
    "reset": lambda key: FakeAPIError("connection reset by peer", kind="reset"),
    "timeout": lambda key: FakeAPIError("read timed out", kind="timeout"),
}


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


class FakeBackend:
    """The fake vendor: batches on a :class:`ManualClock`, scripted outcomes, queued faults and
    a log of every call. Implements :class:`~batchcore.testing.ContractBackend`.

    Durations (seconds of the backend's clock) shape every batch: ``validating_seconds``, then
    ``in_progress_seconds`` over which the requests finish one by one, then
    ``finalizing_seconds``; a batch not done ``expires_after`` seconds after creation expires.
    With *api_key* set, calls presenting another key fail with HTTP 401.
    """

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
        self.limits = limits if limits is not None else FakeBatchProvider.DEFAULT_LIMITS
        self._lock = threading.RLock()
        self._batches: dict[str, FakeBatch] = {}
        self._by_key: dict[str, str] = {}
        self._scripts: list[tuple[Callable[[BatchRequest], bool], Outcome]] = []
        self._faults: list[tuple[str, str | BaseException, bool]] = []
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

    def inject_fault(self, kind: str) -> bool:
        """Make the next call (of any operation) fail with fault *kind*; False if unknown."""
        if kind not in _FAULTS:
            return False
        self.fail_next("*", kind)
        return True

    def call_count(self) -> int:
        with self._lock:
            return len(self._calls)

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
        the call (retrying it without an idempotency key creates a second batch)."""
        if operation != "*" and operation not in OPERATIONS:
            raise ValueError(f"operation must be '*' or one of {OPERATIONS}, got {operation!r}")
        if isinstance(error, str) and error not in _FAULTS:
            raise ValueError(f"unknown fault {error!r}; known: {', '.join(sorted(_FAULTS))}")
        with self._lock:
            self._faults.extend([(operation, error, after)] * times)

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
        """Batches created (an idempotent resubmission creates none)."""
        with self._lock:
            return len(self._batches)

    def batch(self, batch_id: str) -> FakeBatch:
        with self._lock:
            try:
                return self._batches[batch_id]
            except KeyError:
                raise LookupError(f"no fake batch {batch_id!r}") from None

    # -- the vendor API (what FakeBatchProvider calls) -------------------------------------

    def create_batch(
        self,
        content: bytes,
        *,
        endpoint: str,
        idempotency_key: str | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a batch from an uploaded file of OpenAI batch lines."""

        def create() -> dict[str, Any]:
            if idempotency_key is not None and idempotency_key in self._by_key:
                return self._object(self._batches[self._by_key[idempotency_key]])
            if endpoint not in _ENDPOINTS:
                raise _http_error(400, f"endpoint {endpoint!r} is not served", "invalid_endpoint")
            if not content.strip():
                raise _http_error(400, "The uploaded file is empty.", "empty_file")
            if len(content) > self.limits.max_bytes:
                raise _http_error(
                    400,
                    f"The file is {len(content)} bytes; at most {self.limits.max_bytes}.",
                    "file_too_large",
                )
            requests, failure = _parse_lines(content, endpoint)
            if len(requests) > self.limits.max_requests:
                raise _http_error(
                    400,
                    f"The file has {len(requests)} requests; at most {self.limits.max_requests}.",
                    "too_many_requests",
                )
            if failure is None and self._rejections:
                failure = self._rejections.pop(0)
            return self._object(self._new_batch(requests, endpoint, idempotency_key, failure))

        return self._serve("submit", api_key, create)

    def retrieve_batch(self, batch_id: str, *, api_key: str | None = None) -> dict[str, Any]:
        def retrieve() -> dict[str, Any]:
            batch = self._find(batch_id)
            if batch.cancelling_at is not None and batch.cancelled_at is None:
                batch.cancelled_at = self.clock.now()
            return self._object(batch)

        return self._serve("poll_status", api_key, retrieve)

    def batch_results(self, batch_id: str, *, api_key: str | None = None) -> list[dict[str, Any]]:
        """The result lines of an ended batch, shuffled."""

        def results() -> list[dict[str, Any]]:
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
            lines = [
                self._result_line(batch, index, request, status, now)
                for index, request in enumerate(batch.requests)
            ]
            random.Random(f"{self.seed}:{batch_id}:results").shuffle(lines)
            return lines

        return self._serve("fetch_results", api_key, results)

    def cancel_batch(self, batch_id: str, *, api_key: str | None = None) -> dict[str, Any]:
        """Start cancelling (``cancelling`` now, ``cancelled`` on the next poll or advance).
        Cancelling an ended batch changes nothing."""

        def cancel() -> dict[str, Any]:
            batch = self._find(batch_id)
            now = self.clock.now()
            if batch.cancelling_at is None and batch.status_at(now) not in _TERMINAL:
                batch.cancelling_at = now
            return self._object(batch)

        return self._serve("cancel", api_key, cancel)

    def list_models(self, *, api_key: str | None = None) -> list[str]:
        return self._serve("list_models", api_key, lambda: [FAKE_MODEL, "fake-small", "fake-large"])

    # -- internals -------------------------------------------------------------------------

    def _serve(self, operation: str, api_key: str | None, work: Callable[[], T]) -> T:
        """One call: logged, failed by a queued fault or a wrong key, else *work* done (and
        its answer lost when a fault was queued with ``after=True``)."""
        with self._lock:
            self._calls.append(operation)
            self._take_fault(operation, api_key, after=False)
            if self.api_key is not None and api_key != self.api_key:
                raise _FAULTS["unauthorized"](api_key)
            answer = work()
            self._take_fault(operation, api_key, after=True)
            return answer

    def _take_fault(self, operation: str, api_key: str | None, *, after: bool) -> None:
        for index, (wanted, error, when) in enumerate(self._faults):
            if when is after and wanted in ("*", operation):
                del self._faults[index]
                raise _FAULTS[error](api_key) if isinstance(error, str) else error

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
        finalizing_at: float | None = in_progress_at + self.in_progress_seconds
        completed_at: float | None = (
            in_progress_at + self.in_progress_seconds + (self.finalizing_seconds)
        )
        never_done = any(done is None for done in finish_at.values())
        if never_done or (completed_at is not None and completed_at > expires_at):
            finalizing_at = completed_at = None
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
        if idempotency_key is not None:
            self._by_key[idempotency_key] = batch_id
        return batch

    def _object(self, batch: FakeBatch) -> dict[str, Any]:
        """The batch as the vendor reports it (OpenAI's batch object)."""
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
        errors = None
        if batch.failure is not None:
            errors = {"object": "list", "data": [batch.failure.to_dict()]}
        return {
            "id": batch.batch_id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "status": status,
            **stamps,
            "request_counts": {
                "total": len(batch.requests),
                "completed": completed,
                "failed": failed,
            },
            "errors": errors,
            "metadata": {"idempotency_key": batch.idempotency_key}
            if batch.idempotency_key is not None
            else {},
        }

    def _result_line(
        self, batch: FakeBatch, index: int, request: BatchRequest, status: str, now: float
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": f"{batch.batch_id}_req_{index:06d}",
            "custom_id": request.custom_id,
            "response": None,
            "error": None,
        }
        if batch.failure is not None:
            line["error"] = {"code": batch.failure.code, "message": batch.failure.message}
            return line
        if not batch.finished(request.custom_id, now):
            code = "batch_cancelled" if status == "cancelled" else "batch_expired"
            line["error"] = {"code": code, "message": f"The batch ended ({status}) first."}
            return line
        outcome = batch.outcomes[request.custom_id]
        if outcome.kind == "error":
            body: dict[str, Any] = {
                "error": {
                    "message": outcome.message,
                    "type": "invalid_request_error",
                    "code": outcome.code,
                },
            }
        else:
            body = _response_body(request, outcome, f"{batch.batch_id}-{index}", now)
        line["response"] = {
            "status_code": outcome.status_code,
            "request_id": f"req_{batch.batch_id}_{index:06d}",
            "body": body,
        }
        return line


def _parse_lines(content: bytes, endpoint: str) -> tuple[list[BatchRequest], BatchError | None]:
    """The requests of an uploaded file, and the first problem that fails the batch."""
    requests: list[BatchRequest] = []
    seen: set[str] = set()
    failure: BatchError | None = None
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
            request = BatchRequest.from_openai_line(obj)
        except (orjson.JSONDecodeError, InvalidRequestError) as exc:
            failure = failure or BatchError(code="invalid_line", message=str(exc), line=number)
            continue
        if request.endpoint != endpoint:
            failure = failure or BatchError(
                code="mismatched_endpoint",
                message=f"line {number} is for {request.endpoint}, the batch for {endpoint}",
                line=number,
                param="url",
            )
        if request.custom_id in seen:
            failure = failure or BatchError(
                code="duplicate_custom_id",
                message=f"custom_id {request.custom_id!r} appears twice",
                line=number,
                param="custom_id",
            )
            continue
        seen.add(request.custom_id)
        requests.append(request)
    return requests, failure


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _response_body(
    request: BatchRequest, outcome: Outcome, response_id: str, now: float
) -> dict[str, Any]:
    if request.endpoint == EMBEDDINGS:
        raw_input = request.params.get("input")
        inputs = raw_input if isinstance(raw_input, list) else [raw_input]
        data = []
        for index, item in enumerate(inputs):
            digest = hashlib.sha256(orjson.dumps(item)).digest()
            vector = [round(byte / 255.0, 6) for byte in digest[:8]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(str(item).split()) for item in inputs)
        return {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    prompt = [_message_text(m) for m in request.messages]
    finish_reason = "stop"
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
            finish_reason = "length"
        text = " ".join(words)
    prompt_tokens = sum(len(part.split()) for part in prompt)
    completion_tokens = len(text.split())
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": int(now),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# -- the provider ----------------------------------------------------------------------------


class FakeBatchProvider(BaseBatchProvider):
    """An in-memory batch provider, fully conformant, for testing code that drives batches.

    Config: ``backend`` (a :class:`FakeBackend`; default: a new one, kept in ``config`` so a
    provider rebuilt from ``config`` reaches the same batches) and the common keys. Retries
    sleep on the backend's clock, so nothing ever waits for real time.
    """

    PROVIDER_NAME: ClassVar[str] = "fake"
    DEFAULT_LIMITS: ClassVar[BatchLimits] = BatchLimits(
        max_requests=50_000, max_bytes=200 * 1024 * 1024
    )
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = (FAKE_MODEL, "fake-*")
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"backend"})
    CUSTOM_ID_PATTERN = SAFE_CUSTOM_ID

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        backend = self.config.get("backend")
        if backend is None:
            backend = FakeBackend()
        elif not isinstance(backend, FakeBackend):
            raise ConfigurationError(
                f"config 'backend' must be a FakeBackend, got {type(backend).__name__}"
            )
        self.backend: FakeBackend = backend
        self.config = {**self.config, "backend": backend}
        self.sleep = backend.clock.sleep
        self.clock = backend.clock.now

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        super().check_request(request)
        if request.endpoint not in _ENDPOINTS:
            raise InvalidRequestError(
                f"request {request.custom_id!r}: the fake provider serves "
                f"{' and '.join(_ENDPOINTS)}, not {request.endpoint}",
                custom_id=request.custom_id,
                field="endpoint",
                provider=self.PROVIDER_NAME,
            )

    def encode_request(self, request: BatchRequest) -> bytes:
        """An OpenAI batch line; ``provider_params["fake"]`` is merged into the body."""
        extra = request.provider_params.get(self.PROVIDER_NAME)
        body = (
            orjson.dumps({**request.openai_body(), **extra})
            if extra
            else request.openai_body_json()
        )
        return (
            b'{"custom_id":'
            + orjson.dumps(request.custom_id)
            + b',"method":"POST","url":'
            + orjson.dumps(request.endpoint)
            + b',"body":'
            + body
            + b"}"
        )

    # -- the network half ------------------------------------------------------------------

    def submit(self, payload: BatchPayload) -> BatchHandle:
        if payload.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"this payload was prepared by provider {payload.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )
        content = self._payload_bytes(payload)
        obj = self._call(
            "submit",
            lambda: self.backend.create_batch(
                content,
                endpoint=payload.endpoint,
                idempotency_key=payload.idempotency_key,
                api_key=self._key(),
            ),
        )
        metadata: dict[str, Any] = {"endpoint": obj["endpoint"]}
        if payload.idempotency_key is not None:
            metadata["idempotency_key"] = payload.idempotency_key
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=obj["id"],
            created_at=obj["created_at"],
            metadata=metadata,
        )

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        self._check_handle(handle)
        obj = self._call(
            "poll_status", lambda: self.backend.retrieve_batch(handle.batch_id, api_key=self._key())
        )
        return self._status(obj)

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        self._check_handle(handle)
        lines = self._call(
            "fetch_results",
            lambda: self.backend.batch_results(handle.batch_id, api_key=self._key()),
        )
        return (self._result(line, handle.batch_id) for line in lines)

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        self._check_handle(handle)
        obj = self._call(
            "cancel", lambda: self.backend.cancel_batch(handle.batch_id, api_key=self._key())
        )
        return self._status(obj)

    # -- vendor to batchcore ---------------------------------------------------------------

    def _key(self) -> str | None:
        return None if self.api_key is None else self.api_key.reveal()

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        def once() -> T:
            try:
                return call()
            except FakeAPIError as exc:
                raise self._translate(exc, operation) from exc

        return retry_call(
            once, policy=self.retry_policy(), sleep=self.sleep, describe=f"fake {operation}"
        )

    def _translate(self, exc: FakeAPIError, operation: str) -> ProviderError:
        if exc.kind == "reset":
            return ProviderConnectionError(
                f"{operation}: connection reset by the fake backend", provider=self.PROVIDER_NAME
            )
        if exc.kind == "timeout" or exc.status_code is None:
            return ProviderTimeoutError(
                f"{operation}: the fake backend did not answer in time",
                provider=self.PROVIDER_NAME,
            )
        return error_from_response(
            provider=self.PROVIDER_NAME,
            status_code=exc.status_code,
            body=exc.body,
            headers=exc.headers,
            secrets=self.secrets(),
            action=operation,
        )

    def _check_handle(self, handle: BatchHandle) -> None:
        if handle.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"handle {handle.batch_id!r} belongs to provider {handle.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )

    def _payload_bytes(self, payload: BatchPayload) -> bytes:
        if payload.path is not None:
            try:
                return payload.path.read_bytes()
            except FileNotFoundError:
                raise InvalidRequestError(
                    f"payload file {payload.path.name} is gone; submit a payload before "
                    "discarding it",
                    provider=self.PROVIDER_NAME,
                ) from None
        raise InvalidRequestError("the payload has no file", provider=self.PROVIDER_NAME)

    def _status(self, obj: Mapping[str, Any]) -> BatchStatus:
        counts = obj["request_counts"]
        errors = obj.get("errors") or {}
        timestamps = {
            key: value for key, value in obj.items() if key.endswith("_at") and value is not None
        }
        return BatchStatus(
            provider=self.PROVIDER_NAME,
            batch_id=obj["id"],
            state=_RAW_STATES[obj["status"]],
            raw_status=obj["status"],
            total=counts["total"],
            completed=counts["completed"],
            failed=counts["failed"],
            created_at=obj["created_at"],
            expires_at=obj["expires_at"],
            ended_at=next((obj[key] for key in _END_KEYS if obj.get(key) is not None), None),
            timestamps=timestamps,
            errors=tuple(BatchError.from_dict(error) for error in errors.get("data", ())),
            raw=obj,
        )

    def _result(self, line: Mapping[str, Any], batch_id: str) -> BatchResult:
        custom_id = line["custom_id"]
        response = line.get("response")
        if response is None:
            error = line.get("error") or {}
            code = error.get("code") or "unknown_error"
            if code in ("batch_expired", "batch_cancelled"):
                state = ResultStatus.EXPIRED if code == "batch_expired" else ResultStatus.CANCELLED
                return BatchResult.unfinished(custom_id, state, batch_id=batch_id)
            return BatchResult(
                custom_id=custom_id,
                status=ResultStatus.ERRORED,
                error=ResultError(code=code, message=error.get("message") or "", retryable=False),
                batch_id=batch_id,
            )
        status_code = response["status_code"]
        body = response.get("body") or {}
        if status_code >= 300:
            detail = body.get("error") or {}
            return BatchResult(
                custom_id=custom_id,
                status=ResultStatus.ERRORED,
                response=body,
                error=ResultError(
                    code=detail.get("code") or f"http_{status_code}",
                    message=detail.get("message") or "",
                    retryable=_retryable_status(status_code),
                    status_code=status_code,
                ),
                batch_id=batch_id,
            )
        usage = body.get("usage") or {}
        choices = body.get("choices") or ()
        content = choices[0].get("message", {}).get("content") if choices else None
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.SUCCEEDED,
            response=body,
            text=content if isinstance(content, str) else None,
            usage=Usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
            ),
            batch_id=batch_id,
        )
