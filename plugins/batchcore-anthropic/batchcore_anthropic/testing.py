"""An emulator of Anthropic's Message Batches API on 127.0.0.1, for tests and demos.

::

    from batchcore_anthropic.testing import AnthropicEmulator

    with AnthropicEmulator(clock=manual_clock) as emulator:
        provider = AnthropicBatchProvider(config={"base_url": emulator.url,
                                                  "api_key": emulator.api_key})
        ...
        emulator.advance(120)              # batches progress with the clock

What it does, like the API:

* ``POST /v1/messages/batches`` (create), ``GET /v1/messages/batches`` (list, newest first,
  ``limit``/``after_id``/``before_id``), ``GET .../{id}`` (retrieve), ``POST .../{id}/cancel``,
  ``DELETE .../{id}`` (only once ended), ``GET .../{id}/results`` (JSONL, streamed, in shuffled
  order, only once ended; 404 once archived after 29 days).
* Every call needs ``x-api-key`` (401 ``authentication_error`` without it or with another key)
  and ``anthropic-version`` (400 without it); every answer carries a ``request-id`` header.
* Every create body is checked against Anthropic's published spec (the package's
  ``_spec.json``, :func:`spec_validator`), strictly: a body the spec refuses, at any depth, is a
  400 ``invalid_request_error`` naming the path. On top of the spec, as a batch does: duplicate
  custom_ids, ``max_tokens`` < 1 and ``stream: true`` are 400s, more than 100,000
  requests too; a body over 256 MB is a 413 ``request_too_large``.
* As in the API, what the schema cannot say is checked when a request runs: such requests end
  as ``errored`` results (``invalid_request_error``) rather than failing the create. The
  emulator errors: empty ``messages``, a role other than ``user``/``assistant``, empty text,
  models not named ``claude-*`` (``not_found_error``), and what a model refuses, from the
  emulator's own table (``_emulation``, written from Anthropic's documentation, not read from
  the provider): ``temperature`` other than 1.0 or ``top_p`` below 0.99 on models released
  after Claude Opus 4.6 ("`temperature` is deprecated for this model."), ``temperature`` and
  ``top_p`` together on Claude Opus 4.1 to Sonnet 4.6, and ``output_config.format`` on models
  without structured output (Claude 3.x, Opus 4, Sonnet 4, Opus 4.1).
* A request whose ``metadata.user_id`` is ``"emulator-error:<error_type>"`` ends ``errored``
  with that error type (``invalid_request_error``, ``overloaded_error``, ``api_error``, ...):
  the way to script per-request failures.
* A request for structured output (``output_config.format`` with a JSON schema) is answered
  with a JSON instance of the schema (cut at ``max_tokens`` like any answer, as the API would
  cut it); a schema no value satisfies ends the request ``errored``.

The processing queue, when given (``queue_cap``): a create whose requests would take the
requests not yet processed, across every batch, over the cap is refused with a 429
``rate_limit_error`` whose message speaks of the processing queue (Anthropic documents the
limit, not this answer's words); a request leaves the queue once it is processed.

Lifecycle, on the injected clock: a batch's requests finish one after another, evenly over
``processing_seconds``; ``request_counts`` stay ``processing`` until the batch ends (as the API
reports them). The batch ends when all requests are done, at ``expires_at`` (created + 24 h;
unfinished requests are ``expired``), or ``cancel_seconds`` after a cancel (``canceling`` in
between; requests unfinished when the cancel arrived are ``canceled``). With
``not_found_seconds`` > 0 a new batch answers 404 for that long, like the API's propagation
delay. Faults: :meth:`AnthropicEmulator.inject` (any :class:`~batchcore.testing.Fault`) and
:func:`error_fault` for the API's error bodies; for the conformance kit, the named faults of
:meth:`AnthropicEmulator.fault` and ``lost_create`` (the next create is carried out, its answer
never arrives: ``Fault.lose_response()`` on :attr:`AnthropicEmulator.CREATE_ROUTE`).

Memory: each batch keeps its create body on disk and a few fields per request, so a
100,000-request batch is fine.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import orjson

from batchcore.plugin import BatchRequest
from batchcore.testing import Fault, ManualClock, Request, Response, VendorEmulator
from batchcore.testing.emulation import Enqueued, QueueCap, QueueGate
from batchcore_anthropic._emulation import (
    ERROR_TRIGGER,
    STATUS_OF,
    EmulatedBatch,
    Item,
    Reject,
    batch_object,
    error_body,
    queue_full_message,
    result_line,
    spec_validator,
    validate_create,
)

__all__ = [
    "DEFAULT_API_KEY",
    "ERROR_TRIGGER",
    "AnthropicEmulator",
    "error_body",
    "error_fault",
    "sandbox",
    "spec_validator",
]

#: The key an emulator accepts unless given another.
DEFAULT_API_KEY = "sk-ant-emulator-0123456789abcdef"
#: ``anthropic-version`` values the API knows.
KNOWN_VERSIONS = frozenset({"2023-06-01", "2023-01-01"})

_BATCHES = "/v1/messages/batches"
_ONE = "/v1/messages/batches/{batch_id}"
_CANCEL = "/v1/messages/batches/{batch_id}/cancel"
_RESULTS = "/v1/messages/batches/{batch_id}/results"
_DAY = 86_400.0


def error_fault(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Fault:
    """A :class:`Fault` answering *status* with Anthropic's error body (``error_type`` defaults
    to the API's type for that status)."""
    kind = error_type or next((t for t, s in STATUS_OF.items() if s == status), "api_error")
    return Fault.status(
        status,
        headers={"request-id": "req_emulated_fault", **(headers or {})},
        body=error_body(kind, message or f"emulated {kind}", "req_emulated_fault"),
    )


class AnthropicEmulator(VendorEmulator):
    """The Message Batches API on 127.0.0.1 (see the module docstring for its behaviour).

    :attr:`url` is the API root (what ``ANTHROPIC_BASE_URL`` holds).
    *clock* is a :class:`~batchcore.testing.ManualClock` (then :meth:`advance` moves it) or any
    ``() -> unix seconds`` callable (then :meth:`advance` adds an offset); default: real time.
    *workdir*: where to keep the emulator's files (in a temporary directory made inside it);
    default: the system's temporary directory. *queue_cap*: the organization's limit of batch
    requests in the processing queue, a :class:`~batchcore.testing.emulation.QueueCap`
    (Anthropic's lowest tier: ``QueueCap(limit=100_000, measure="requests",
    per_model=False)``): a create whose requests do not fit beside the requests of other
    batches not yet processed is refused with a 429 ``rate_limit_error`` that speaks of the
    processing queue (``queue`` holds the cap, ``queue.high_water`` and ``queue.refused``).
    It implements the conformance kit's ``ContractBackend``.
    """

    WORKDIR_PREFIX = "batchcore-anthropic-emulator-"
    #: The create call, as registered: where the kit's ``lost_create`` fault is injected.
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", _BATCHES)
    #: Where results are downloaded (the kit's ``corrupt_result_line``).
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = ("GET", _RESULTS)

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        api_key: str = DEFAULT_API_KEY,
        processing_seconds: float = 60.0,
        cancel_seconds: float = 5.0,
        expiry_seconds: float = _DAY,
        retention_seconds: float = 29 * _DAY,
        not_found_seconds: float = 0.0,
        max_requests: int = 100_000,
        max_body_bytes: int = 256_000_000,
        queue_cap: QueueCap | None = None,
        seed: int | None = 0,
        results_url_base: str | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(clock=clock, workdir_parent=workdir)
        self.api_key = api_key
        self.processing_seconds = processing_seconds
        self.cancel_seconds = cancel_seconds
        self.expiry_seconds = expiry_seconds
        self.retention_seconds = retention_seconds
        self.not_found_seconds = not_found_seconds
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        #: The organization's processing queue (``queue.cap``, ``queue.high_water``,
        #: ``queue.refused``).
        self.queue = QueueGate(queue_cap)
        #: Where ``results_url`` points (the emulator's own URL by default); set it to another
        #: host to check that a client does not follow it.
        self.results_url_base = results_url_base
        self._random = random.Random(seed)
        self._batches: dict[str, EmulatedBatch] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._created = 0
        self._register_routes()

    # -- faults, inspection (time, lifecycle, fault injection: see the base) ---------------

    def fault(self, kind: str) -> Fault | None:
        """The conformance kit's fault named *kind* with the API's error body (``rate_limit``,
        ``server_error``, ``overloaded``, ``unauthorized``, ``reset``); None for another kind;
        :func:`error_fault` makes any other error."""
        faults = {
            "rate_limit": error_fault(429, headers={"retry-after": "0"}),
            "server_error": error_fault(500),
            "overloaded": error_fault(529),
            "unauthorized": error_fault(401),
            "reset": Fault.reset(),
        }
        return faults.get(kind)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request this emulator ends as ``errored`` (``invalid_request_error``)."""
        return BatchRequest.from_dict(
            {
                "custom_id": custom_id,
                "model": model,
                "messages": [{"role": "user", "content": "This request fails, as asked."}],
                "params": {"max_tokens": 16, "user": f"{ERROR_TRIGGER}invalid_request_error"},
            }
        )

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The ``message_batch`` object of *batch_id* as the API would show it now."""
        with self._lock:
            found = self._batches.get(batch_id)
            if found is None:
                raise KeyError(batch_id)
            return self._batch_object(found, self.now())

    def batch_count(self) -> int:
        """Batches created so far (deleted ones included): what a lost create must not double."""
        with self._lock:
            return self._created

    def batch_ids(self) -> list[str]:
        """Ids of the batches that exist (not deleted), oldest first."""
        with self._lock:
            return list(self._batches)

    def submitted_params(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """The params of every request of *batch_id*, by custom_id, as received."""
        with self._lock:
            found = self._batches[batch_id]
        body = orjson.loads(found.body_path.read_bytes())
        return {item["custom_id"]: item["params"] for item in body["requests"]}

    # -- routes ----------------------------------------------------------------------------

    def _register_routes(self) -> None:
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("POST", _BATCHES, self._create),
            ("GET", _BATCHES, self._list),
            ("GET", _ONE, self._retrieve),
            ("DELETE", _ONE, self._delete),
            ("POST", _CANCEL, self._cancel),
            ("GET", _RESULTS, self._results),
        ]
        for method, pattern, handler in routes:
            self.server.add_route(method, pattern, self._guarded(handler))

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            request_id = f"req_emu_{secrets.token_hex(8)}"
            try:
                self._check_headers(request)
                response = handler(request)
            except Reject as reject:
                response = Response.json(
                    error_body(reject.error_type, reject.message, request_id),
                    status=reject.status,
                )
            except Exception as exc:  # an emulator bug shows as the API's 500, not a hang
                response = Response.json(
                    error_body(
                        "api_error", f"emulator error: {type(exc).__name__}: {exc}", request_id
                    ),
                    status=500,
                )
            # Every answer carries the header, as the API's do (support asks for it).
            response.headers["request-id"] = request_id
            return response

        return serve

    def _check_headers(self, request: Request) -> None:
        key = request.header("x-api-key")
        if not key:
            raise Reject(401, "authentication_error", "x-api-key header is required")
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise Reject(401, "authentication_error", "invalid x-api-key")
        version = request.header("anthropic-version")
        if not version:
            raise Reject(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in KNOWN_VERSIONS:
            raise Reject(
                400,
                "invalid_request_error",
                f"anthropic-version: {version!r} is not a valid version",
            )

    def _create(self, request: Request) -> Response:
        if len(request.body) > self.max_body_bytes:
            raise Reject(
                413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
            )
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise Reject(
                400, "invalid_request_error", "The request body is not valid JSON."
            ) from None
        items = validate_create(body, self.max_requests)
        workdir = self.workdir
        assert workdir is not None
        now = self.now()
        with self._lock:
            self._admit(items, now)
            batch_id = f"msgbatch_emu{next(self._ids):06d}{secrets.token_hex(6)}"
            path = workdir / f"{batch_id}.json"
            path.write_bytes(request.body)
            batch = EmulatedBatch(
                id=batch_id,
                created=now,
                processing_seconds=self.processing_seconds,
                cancel_seconds=self.cancel_seconds,
                expires=now + self.expiry_seconds,
                archived=now + self.retention_seconds,
                body_path=path,
                items=items,
                shuffle_seed=self._random.randrange(2**32),
            )
            self._batches[batch_id] = batch
            self._created += 1
            return Response.json(self._batch_object(batch, now))

    def _admit(self, items: list[Item], now: float) -> None:
        """Refuse the create with a 429 when the processing queue has no room for *items*
        beside the requests of other batches not yet processed."""
        batch = Enqueued(
            model=None, tokens=sum(item.input_tokens for item in items), requests=len(items)
        )
        waiting = [
            held for other in self._batches.values() if (held := other.enqueued(now)) is not None
        ]
        refusal = self.queue.admit(batch, waiting)
        if refusal is not None:
            raise Reject(429, "rate_limit_error", queue_full_message(refusal))

    def _list(self, request: Request) -> Response:
        raw_limit = request.arg("limit", "20") or "20"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise Reject(400, "invalid_request_error", "limit: must be an integer from 1 to 1000")
        limit = int(raw_limit)
        after, before = request.arg("after_id"), request.arg("before_id")
        now = self.now()
        with self._lock:
            newest_first = list(reversed(self._batches.values()))
            ids = [b.id for b in newest_first]
            if after is not None:
                if after not in ids:
                    raise Reject(400, "invalid_request_error", f"after_id: unknown id {after!r}")
                window = newest_first[ids.index(after) + 1 :]
                page, has_more = window[:limit], len(window) > limit
            elif before is not None:
                if before not in ids:
                    raise Reject(400, "invalid_request_error", f"before_id: unknown id {before!r}")
                window = newest_first[: ids.index(before)]
                page, has_more = window[-limit:], len(window) > limit
            else:
                page, has_more = newest_first[:limit], len(newest_first) > limit
            data = [self._batch_object(b, now) for b in page]
        return Response.json(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def _retrieve(self, request: Request) -> Response:
        now = self.now()
        with self._lock:
            batch = self._visible(request.path_params["batch_id"], now)
            return Response.json(self._batch_object(batch, now))

    def _cancel(self, request: Request) -> Response:
        now = self.now()
        with self._lock:
            batch = self._visible(request.path_params["batch_id"], now)
            if now >= batch.end():
                raise Reject(
                    400,
                    "invalid_request_error",
                    f"Message Batch {batch.id} has already ended and cannot be canceled.",
                )
            if batch.cancel_at is None:
                batch.cancel_at = now
            return Response.json(self._batch_object(batch, now))

    def _delete(self, request: Request) -> Response:
        now = self.now()
        with self._lock:
            batch = self._visible(request.path_params["batch_id"], now)
            if now < batch.end():
                raise Reject(
                    400,
                    "invalid_request_error",
                    f"Message Batch {batch.id} is still processing; cancel it and wait for it "
                    "to end before deleting it.",
                )
            del self._batches[batch.id]
            batch.body_path.unlink(missing_ok=True)
        return Response.json({"id": batch.id, "type": "message_batch_deleted"})

    def _results(self, request: Request) -> Response:
        now = self.now()
        with self._lock:
            batch = self._visible(request.path_params["batch_id"], now)
            if now < batch.end():
                raise Reject(
                    400,
                    "invalid_request_error",
                    f"Message Batch {batch.id} has not yet ended processing; results are "
                    "available once it has ended.",
                )
            if now >= batch.archived:
                raise Reject(
                    404,
                    "not_found_error",
                    f"The results of Message Batch {batch.id} have been archived.",
                )
        outcomes = batch.outcomes()
        order = list(range(len(batch.items)))
        random.Random(batch.shuffle_seed).shuffle(order)
        return Response(
            status=200,
            body=(result_line(batch, index, outcomes[index]) for index in order),
            headers={"content-type": "application/x-jsonl"},
        )

    # -- state -----------------------------------------------------------------------------

    def _batch_object(self, batch: EmulatedBatch, now: float) -> dict[str, Any]:
        return batch_object(batch, now, self.results_url_base or self.url)

    def _visible(self, batch_id: str, now: float) -> EmulatedBatch:
        batch = self._batches.get(batch_id)
        if batch is None or now < batch.created + self.not_found_seconds:
            raise Reject(404, "not_found_error", f"Message Batch {batch_id!r} not found.")
        return batch


@contextmanager
def sandbox() -> Iterator[dict[str, str]]:
    """Run an emulator with the real clock and short durations (a batch takes about two
    seconds); yields the provider config overrides pointing at it: ``base_url``, ``api_key``."""
    key = "sk-ant-sandbox-" + secrets.token_hex(16)
    with AnthropicEmulator(api_key=key, processing_seconds=2.0, cancel_seconds=0.5) as emulator:
        yield {"base_url": emulator.url, "api_key": key}
