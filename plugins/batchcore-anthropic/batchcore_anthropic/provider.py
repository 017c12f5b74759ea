"""AnthropicBatchProvider: batchcore's ``anthropic`` provider, over the Message Batches API.

Every HTTP call goes through the core's shared transport (retries, ``Retry-After``,
``x-should-retry``, error classification and redaction are written there once).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import orjson

from batchcore.config import read_float, read_int, read_str
from batchcore.errors import (
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    ProviderConnectionError,
    ProviderPermanentError,
)
from batchcore.http import HttpTransport
from batchcore.models import (
    SAFE_CUSTOM_ID,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
)
from batchcore.payloads import JSON_ARRAY_FIELD
from batchcore.provider import BaseBatchProvider
from batchcore_anthropic._mapping import encode_item, message_params
from batchcore_anthropic._responses import batch_result, batch_status
from batchcore_anthropic.errors import BatchNotVisibleYetError, ResultsNotReadyError

__all__ = ["AnthropicBatchProvider"]

T = TypeVar("T")

BATCHES_PATH = "/v1/messages/batches"


class AnthropicBatchProvider(BaseBatchProvider):
    """Anthropic's Message Batches API.

    Config (besides the common keys ``api_key``, ``base_url``, ``timeout``, ``max_retries``,
    ``max_requests_per_batch``, ``max_bytes_per_batch``, ``models``, ``workdir``):

    * ``anthropic_version`` - the ``anthropic-version`` header (default ``2023-06-01``);
    * ``default_max_tokens`` - ``max_tokens`` for requests that set none (Anthropic requires it;
      without a default such a request is an :class:`InvalidRequestError`);
    * ``not_found_grace_seconds`` - how long after submitting a 404 is taken for the API's
      propagation delay and raised as the transient :class:`BatchNotVisibleYetError`
      (default 60).

    ``api_key`` falls back to ``ANTHROPIC_API_KEY`` and ``base_url`` to ``ANTHROPIC_BASE_URL``
    (the API root, as for the official SDK: ``https://api.anthropic.com``).
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
    # The payload file is the create body itself, {"requests": [...]}, uploaded as it is.
    PAYLOAD_FRAMING = JSON_ARRAY_FIELD("requests")
    SANDBOX: ClassVar[str | None] = "batchcore_anthropic.testing:sandbox"

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
        self._http: HttpTransport | None = None

    # -- preparing (offline) ---------------------------------------------------------------

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

    # -- the network half ------------------------------------------------------------------

    def submit(self, payload: BatchPayload) -> BatchHandle:
        """Create a Message Batch; the payload file (the create body) is streamed from disk.

        Not idempotent: Anthropic batches carry no metadata, so a batch created earlier for the
        same ``payload.idempotency_key`` cannot be found, and a create whose answer is lost (a
        timeout or reset after the API received the body) may leave a batch behind that a retry
        duplicates. The key is kept in ``handle.metadata["idempotency_key"]``.
        """
        if payload.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"this payload was prepared by provider {payload.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )
        if payload.path is None:
            raise InvalidRequestError(
                "the payload has no file; build payloads with prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        http = self._transport()
        submitted_at = self.clock()
        with open(payload.path, "rb") as body:
            batch = http.request_json(
                "POST",
                BATCHES_PATH,
                data=body,
                headers={"content-type": "application/json"},
                action="create message batch",
            )
        batch = self._batch_object(batch, "create message batch")
        metadata: dict[str, Any] = {
            "request_count": payload.request_count,
            "submitted_at": submitted_at,
        }
        if payload.idempotency_key is not None:
            metadata["idempotency_key"] = payload.idempotency_key
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=batch["id"],
            created_at=batch.get("created_at") or submitted_at,
            metadata=metadata,
        )

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        """The batch's status (``GET /v1/messages/batches/{id}``); see :func:`batch_state`
        in ``_responses`` for how ``ended`` splits into completed, expired and cancelled."""
        return batch_status(self._retrieve(handle))

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        """Stream the results of an ended batch, one per request, in the API's (random) order.

        Always downloads from ``{base_url}/v1/messages/batches/{id}/results``: a ``results_url``
        naming another host is never followed with our key. Raises
        :class:`ResultsNotReadyError` before the batch has ended, and
        :class:`~batchcore.NotFoundError` once its results are archived (29 days after
        creation). The check and the download start when this is called; results stream as
        the iterator is consumed.
        """
        batch = self._retrieve(handle)
        batch_id = handle.batch_id
        if batch.get("processing_status") != "ended":
            raise ResultsNotReadyError(
                f"batch {batch_id} is {batch.get('processing_status')}: results exist only once "
                "it has ended; poll until then",
                provider=self.PROVIDER_NAME,
            )
        if batch.get("archived_at"):
            raise NotFoundError(
                f"the results of batch {batch_id} were archived at {batch['archived_at']} and "
                "can no longer be downloaded (Anthropic keeps them 29 days)",
                provider=self.PROVIDER_NAME,
                status_code=None,
                code="archived",
            )
        http = self._transport()
        action = "download message batch results"
        response = self._within_grace(
            handle,
            lambda: http.request(
                "GET", f"{BATCHES_PATH}/{batch_id}/results", stream=True, action=action
            ),
        )
        return self._results(http.iter_jsonl(response, action=action), batch_id)

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        """Ask Anthropic to cancel; the batch is ``canceling`` until in-flight requests end.

        Cancelling a batch that has already ended returns its final status: there is nothing
        left to stop, whatever the API answers to the cancel itself.
        """
        http = self._transport()
        try:
            batch = self._within_grace(
                handle,
                lambda: http.request_json(
                    "POST",
                    f"{BATCHES_PATH}/{handle.batch_id}/cancel",
                    action="cancel message batch",
                ),
            )
        except InvalidRequestError:
            ended = self._retrieve(handle)
            if ended.get("processing_status") != "ended":
                raise
            return batch_status(ended)
        return batch_status(self._batch_object(batch, "cancel message batch"))

    def close(self) -> None:
        """Close the HTTP session (a new one opens on the next call)."""
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- helpers ---------------------------------------------------------------------------

    def _transport(self) -> HttpTransport:
        if self._http is None:
            if not self.base_url:
                raise ConfigurationError("anthropic: no base_url configured")
            key = self.require_api_key()
            self._http = HttpTransport(
                provider=self.PROVIDER_NAME,
                base_url=self.base_url,
                headers={"x-api-key": key, "anthropic-version": self.anthropic_version},
                timeout=self.timeout,
                secrets=self.secrets(),
                sleep=lambda seconds: self.sleep(seconds),
                retry_policy=self.retry_policy(),
            )
        return self._http

    def _retrieve(self, handle: BatchHandle) -> Mapping[str, Any]:
        http = self._transport()
        action = "retrieve message batch"
        batch = self._within_grace(
            handle,
            lambda: http.request_json("GET", f"{BATCHES_PATH}/{handle.batch_id}", action=action),
        )
        return self._batch_object(batch, action)

    def _within_grace(self, handle: BatchHandle, call: Callable[[], T]) -> T:
        """Run *call*; a 404 soon after submitting is the API's propagation delay: transient."""
        try:
            return call()
        except NotFoundError as error:
            submitted = handle.metadata.get("submitted_at")
            started = (
                float(submitted)
                if isinstance(submitted, (int, float)) and not isinstance(submitted, bool)
                else handle.created_at.timestamp()
            )
            elapsed = self.clock() - started
            if elapsed >= self.not_found_grace_seconds:
                raise
            raise BatchNotVisibleYetError(
                f"batch {handle.batch_id} not found {max(elapsed, 0):.0f}s after it was "
                "created; new batches take a few seconds to become visible, retry shortly",
                provider=self.PROVIDER_NAME,
                status_code=error.status_code,
                code=error.code,
                request_id=error.request_id,
            ) from error

    def _batch_object(self, batch: Any, action: str) -> Mapping[str, Any]:
        if (
            not isinstance(batch, Mapping)
            or not isinstance(batch.get("id"), str)
            or batch.get("processing_status") not in ("in_progress", "canceling", "ended")
        ):
            raise ProviderPermanentError(
                f"{action}: the answer is not a message_batch object",
                provider=self.PROVIDER_NAME,
            )
        return batch

    def _results(self, lines: Iterator[bytes], batch_id: str) -> Iterator[BatchResult]:
        try:
            for number, line in enumerate(lines, start=1):
                try:
                    result = batch_result(orjson.loads(line), batch_id=batch_id)
                except orjson.JSONDecodeError:
                    raise ProviderConnectionError(
                        f"results of batch {batch_id}: line {number} is not valid JSON",
                        provider=self.PROVIDER_NAME,
                    ) from None
                except ValueError as exc:
                    raise ProviderPermanentError(
                        f"results of batch {batch_id}: line {number}: {exc}",
                        provider=self.PROVIDER_NAME,
                    ) from None
                yield result
        finally:
            # Closing the line stream closes the HTTP response, also when the caller stops early.
            close = getattr(lines, "close", None)
            if close is not None:
                close()
