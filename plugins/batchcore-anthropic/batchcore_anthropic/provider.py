"""AnthropicBatchProvider: batchcore's ``anthropic`` provider, over the Message Batches API.

Only the vendor half lives here, one small method per API call, over the core's
:class:`HttpTransport`. The core's ``submit``/``poll_status``/``fetch_results``/``cancel`` keep
the money rules: ownership checks, reconciling a create whose answer was lost, exactly-once
results, cancel after the end. The wire formats are in :mod:`batchcore_anthropic._mapping`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from batchcore.plugin import (
    JSON_ARRAY_FIELD,
    SAFE_CUSTOM_ID,
    BaseBatchProvider,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
    InvalidRequestError,
    NotFoundError,
    ProviderPermanentError,
    QueueLimit,
    RateLimitError,
    RequestExtensions,
    UnsupportedOperationError,
    read_float,
    read_int,
    read_result_lines,
    read_str,
)
from batchcore_anthropic._mapping import (
    REQUEST_EXTENSIONS,
    batch_created_at,
    batch_result,
    batch_status,
    encode_item,
    message_params,
    queue_full,
    request_total,
)
from batchcore_anthropic._models import model_problem
from batchcore_anthropic.errors import BatchNotVisibleYetError

__all__ = ["AnthropicBatchProvider"]

T = TypeVar("T")

BATCHES_PATH = "/v1/messages/batches"


class AnthropicBatchProvider(BaseBatchProvider):
    """Anthropic's Message Batches API.

    Config (besides the common keys ``api_key``, ``base_url``, ``timeout``, ``max_retries``,
    ``max_requests_per_batch``, ``max_bytes_per_batch``, ``models``, ``workdir``):

    * ``anthropic_version`` - the ``anthropic-version`` header (default ``2023-06-01``);
    * ``default_max_tokens`` - ``max_tokens`` for requests that set none (Anthropic requires
      it), capped at the model's maximum; without it, the model's maximum output (for a model
      the capability table does not know, such a request is an :class:`InvalidRequestError`);
    * ``not_found_grace_seconds`` - how long after submitting a 404 is taken for the API's
      propagation delay and raised as the transient :class:`BatchNotVisibleYetError`
      (default 60).
    * ``max_enqueued_requests`` - the organization's limit of batch requests in the processing
      queue (``QUEUE_LIMIT``; default 100,000).

    ``api_key`` falls back to ``ANTHROPIC_API_KEY`` and ``base_url`` to ``ANTHROPIC_BASE_URL``
    (the API root, as for the official SDK: ``https://api.anthropic.com``).

    Submitting is not idempotent (a Message Batch carries no key or metadata), so a create
    whose answer was lost is reconciled by the core through :meth:`find_batches`.
    """

    PROVIDER_NAME: ClassVar[str] = "anthropic"
    # 256 MB counted in decimal megabytes: the smaller reading, so a batch never meets a 413.
    DEFAULT_LIMITS: ClassVar[BatchLimits] = BatchLimits(max_requests=100_000, max_bytes=256_000_000)
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = ("claude-*",)
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"anthropic_version", "default_max_tokens", "not_found_grace_seconds"}
    )
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("ANTHROPIC_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.anthropic.com"
    CUSTOM_ID_PATTERN = SAFE_CUSTOM_ID
    #: What the conversion takes beyond OpenAI's request format (``cache_control``, ...).
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = REQUEST_EXTENSIONS
    # What each model refuses (sampling values, max_tokens, structured output) is judged by
    # check_request from the table in _models, which also judges models it does not name by
    # their version: glob patterns (MODEL_RULES) cannot.
    #: Config that changes the answers (result reuse fingerprints it): the API version the
    #: requests are read under, and the max_tokens given to requests that set none. The
    #: provider sends no beta headers, so no other config changes an answer.
    ANSWER_CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"anthropic_version", "default_max_tokens"}
    )
    # The payload file is the create body itself, {"requests": [...]}, uploaded as it is.
    PAYLOAD_FRAMING = JSON_ARRAY_FIELD("requests")
    SANDBOX: ClassVar[str | None] = "batchcore_anthropic.testing:sandbox"
    IDEMPOTENT_SUBMIT: ClassVar[bool] = False
    # A new batch can be missing from the list (and answer 404) for a few seconds; wait as long
    # as the 404 grace window before concluding that a lost create made nothing.
    SUBMIT_SETTLE_SECONDS: ClassVar[float] = 60.0
    #: How far the API's clock may be behind ours: a batch created up to this long before the
    #: create was sent (by our clock) is still a candidate when looking for it.
    CLOCK_SKEW_SECONDS: ClassVar[float] = 600.0
    #: Batches per page when listing (the API allows 1 to 1000).
    LIST_PAGE_SIZE: ClassVar[int] = 100
    #: "Maximum batch requests in processing queue", shared across all models: 100,000 at the
    #: lowest tier Anthropic has published (Tier 1; its newer tiers start at 200,000). A create
    #: over it is refused with a 429 (see create_batch), so no batch fails for capacity:
    #: ``CAPACITY_ERROR_CODES`` stays empty.
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = QueueLimit(
        measure="requests", per_model=False, default=100_000
    )

    DEFAULT_ANTHROPIC_VERSION: ClassVar[str] = "2023-06-01"
    DEFAULT_NOT_FOUND_GRACE_SECONDS: ClassVar[float] = 60.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        settings = self.config
        self.anthropic_version: str = (
            read_str(settings, "anthropic_version") or self.DEFAULT_ANTHROPIC_VERSION
        )
        self.default_max_tokens: int | None = (
            read_int(settings, "default_max_tokens", 0, minimum=1) or None
        )
        self.not_found_grace_seconds: float = read_float(
            settings, "not_found_grace_seconds", self.DEFAULT_NOT_FOUND_GRACE_SECONDS
        )

    # -- preparing (offline) ---------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        """The core's checks, then what the request's model refuses (``_models``)."""
        super().check_request(request)
        problem = model_problem(request)
        if problem is not None:
            field, message = problem
            raise InvalidRequestError(
                f"request {request.custom_id!r}: {field}: {message}",
                custom_id=request.custom_id,
                field=field,
                provider=self.PROVIDER_NAME,
            )

    def encode_request(self, request: BatchRequest) -> bytes:
        """``{"custom_id": ..., "params": <Messages API body>}`` as compact JSON."""
        return encode_item(
            request.custom_id,
            message_params(request, default_max_tokens=self.default_max_tokens),
        )

    def payload_group(self, request: BatchRequest) -> Hashable:
        # Requests of different models share a batch.
        return self.PROVIDER_NAME

    def payload_model(self, request: BatchRequest) -> str | None:
        return None

    # -- the vendor half -------------------------------------------------------------------

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """``POST /v1/messages/batches`` with the payload file (the create body) streamed from
        disk. Never repeated after an unknown outcome: the transport raises
        :class:`~batchcore.OutcomeUnknownError` and the core reconciles. A 429 whose message
        speaks of the processing queue raises :class:`~batchcore.QueueFullError`."""
        if payload.path is None:
            raise InvalidRequestError(
                "the payload has no file; build payloads with prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        http = self.transport()
        submitted_at = self.clock()
        try:
            with open(payload.path, "rb") as body:
                batch = http.request_json(
                    "POST",
                    BATCHES_PATH,
                    data=body,
                    headers={"content-type": "application/json"},
                    action="create message batch",
                    idempotent=False,
                )
        except RateLimitError as error:
            refused = queue_full(error)
            if refused is None:
                raise
        else:
            return self._handle(
                self._batch_object(batch, "create message batch"),
                submitted_at=submitted_at,
                idempotency_key=idempotency_key,
            )
        # The processing queue has no room: a wait for capacity, not a failure.
        raise refused

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The batches a create of *payload* sent at *since* may have made: every batch listed
        (newest first) created no earlier than *since* minus :attr:`CLOCK_SKEW_SECONDS` whose
        request count equals the payload's, ended or not. A Message Batch echoes nothing else
        of its create body, so the core refuses to guess when there are several."""
        if since is None:
            # Without the time of the attempt, a batch of the same size could be anyone's.
            raise UnsupportedOperationError(
                "anthropic: a batch can only be looked for from the time it was created",
                provider=self.PROVIDER_NAME,
            )
        cutoff = since - timedelta(seconds=self.CLOCK_SKEW_SECONDS)
        http = self.transport()
        params: dict[str, Any] = {"limit": self.LIST_PAGE_SIZE}
        while True:
            page = http.request_json(
                "GET", BATCHES_PATH, params=params, action="list message batches"
            )
            data = page.get("data") if isinstance(page, Mapping) else None
            if not isinstance(data, list):
                raise ProviderPermanentError(
                    "list message batches: the answer is not a page of message_batch objects",
                    provider=self.PROVIDER_NAME,
                )
            for batch in data:
                batch = self._batch_object(batch, "list message batches")
                created = batch_created_at(batch)
                if created is not None and created < cutoff:
                    return  # newest first: everything after this is older still
                if request_total(batch) == payload.request_count:
                    yield self._handle(
                        batch, submitted_at=since.timestamp(), idempotency_key=idempotency_key
                    )
            last_id = page.get("last_id")
            if not page.get("has_more") or not isinstance(last_id, str) or not data:
                return
            if last_id == params.get("after_id"):
                return  # a page that does not move on would loop forever
            params = {"limit": self.LIST_PAGE_SIZE, "after_id": last_id}

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        """``GET /v1/messages/batches/{id}``; see :func:`~batchcore_anthropic._mapping.batch_state`
        for how ``ended`` splits into completed, expired and cancelled."""
        return batch_status(self._retrieve(handle))

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """Stream ``{base_url}/v1/messages/batches/{id}/results``, in the API's (random) order.

        Always from the configured host: a ``results_url`` naming another host is never
        followed with our key. Results are archived 29 days after creation; asking later is a
        :class:`~batchcore.NotFoundError` that says so.
        """
        batch_id = handle.batch_id
        archived = status.timestamps.get("archived_at")
        if archived is not None:
            raise NotFoundError(
                f"the results of batch {batch_id} were archived at {archived.isoformat()} and "
                "can no longer be downloaded (Anthropic keeps them 29 days)",
                provider=self.PROVIDER_NAME,
                code="archived",
            )
        http = self.transport()
        action = "download message batch results"
        response = self._within_grace(
            handle,
            lambda: http.request(
                "GET", f"{BATCHES_PATH}/{batch_id}/results", stream=True, action=action
            ),
        )
        # The core reads the lines (and closes the stream, also when the caller stops early).
        yield from read_result_lines(
            http.iter_jsonl(response, action=action),
            lambda entry: self._result(entry, batch_id),
            provider=self.PROVIDER_NAME,
            batch_id=batch_id,
        )

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        """``POST /v1/messages/batches/{id}/cancel``; the batch is ``canceling`` until its
        in-flight requests end. Asking twice is harmless, so the call is retried like a read."""
        http = self.transport()
        action = "cancel message batch"
        batch = self._within_grace(
            handle,
            lambda: http.request_json(
                "POST", f"{BATCHES_PATH}/{handle.batch_id}/cancel", action=action, idempotent=True
            ),
        )
        return batch_status(self._batch_object(batch, action))

    def http_headers(self, api_key: str) -> Mapping[str, str]:
        return {"x-api-key": api_key, "anthropic-version": self.anthropic_version}

    # -- helpers ---------------------------------------------------------------------------

    def _handle(
        self, batch: Mapping[str, Any], *, submitted_at: float, idempotency_key: str
    ) -> BatchHandle:
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=batch["id"],
            created_at=batch.get("created_at") or submitted_at,
            metadata={
                "request_count": request_total(batch),
                # Our clock's time of the create: the 404 grace window counts from it.
                "submitted_at": submitted_at,
                "idempotency_key": idempotency_key,
            },
        )

    def _retrieve(self, handle: BatchHandle) -> Mapping[str, Any]:
        http = self.transport()
        action = "retrieve message batch"
        batch = self._within_grace(
            handle,
            lambda: http.request_json("GET", f"{BATCHES_PATH}/{handle.batch_id}", action=action),
        )
        return self._batch_object(batch, action)

    def _within_grace(self, handle: BatchHandle, call: Callable[[], T]) -> T:
        """Run *call*; a 404 soon after submitting is the API's propagation delay: transient."""
        missing: NotFoundError | None = None
        try:
            return call()
        except NotFoundError as error:
            missing = error
        submitted = handle.metadata.get("submitted_at")
        started = (
            float(submitted)
            if isinstance(submitted, (int, float)) and not isinstance(submitted, bool)
            else handle.created_at.timestamp()
        )
        elapsed = self.clock() - started
        if elapsed >= self.not_found_grace_seconds:
            raise missing
        # Raised outside the except block, so the 404 does not ride along as __context__.
        raise BatchNotVisibleYetError(
            f"batch {handle.batch_id} not found {max(elapsed, 0):.0f}s after it was "
            "created; new batches take a few seconds to become visible, retry shortly",
            provider=self.PROVIDER_NAME,
            status_code=missing.status_code,
            code=missing.code,
            request_id=missing.request_id,
        )

    def _batch_object(self, batch: Any, action: str) -> Mapping[str, Any]:
        if not isinstance(batch, Mapping) or not isinstance(batch.get("id"), str):
            raise ProviderPermanentError(
                f"{action}: the answer is not a message_batch object",
                provider=self.PROVIDER_NAME,
            )
        return batch

    def _result(self, entry: Mapping[str, Any], batch_id: str) -> BatchResult | None:
        """The result of one decoded line; None (skipped by the core) for one without a
        custom_id; :class:`ProviderPermanentError` for one the API's format cannot explain."""
        if not isinstance(entry.get("custom_id"), str):
            return None
        problem = "not a result"
        try:
            return batch_result(entry, result_error=self.result_error, batch_id=batch_id)
        except ValueError as exc:
            problem = str(exc)
        raise ProviderPermanentError(
            f"results of batch {batch_id}: {problem}", provider=self.PROVIDER_NAME
        )
