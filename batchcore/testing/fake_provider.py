"""FakeBatchProvider: an in-memory batch provider for testing code that drives batches.

::

    backend = FakeBackend()
    provider = FakeBatchProvider(config={"backend": backend})
    backend.script("q-7", Outcome.error(code="invalid_prompt", message="too long"))
    [payload] = provider.prepare_payloads(requests)
    handle = provider.submit(payload)
    backend.advance(3600)                      # an hour passes: the batch has completed
    results = list(provider.fetch_results(handle))

It is an ordinary provider that writes only the vendor half, as every provider does: the base
class validates requests, writes the payload file, keeps the money rules (ownership checks,
reconciling a lost create, exactly-once results, eager errors, cancel after the end), and the
provider talks to a :class:`~batchcore.testing.FakeBackend` in batchcore's own objects. Vendor
failures are translated with the core's helpers and retried through ``provider.sleep``, which
sleeps on the backend's clock: nothing ever waits for real time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import attrs
import orjson

from batchcore.classify import error_from_response, transport_failure
from batchcore.config import read_bool
from batchcore.errors import ConfigurationError, InvalidRequestError, ProviderError
from batchcore.models import (
    SAFE_CUSTOM_ID,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.results import read_result_lines
from batchcore.testing.fake_backend import ENDPOINTS, FAKE_MODEL, FakeBackend
from batchcore.testing.fake_batches import encode_request
from batchcore.testing.fake_errors import FakeAPIError

__all__ = ["FakeBatchProvider"]

T = TypeVar("T")


class FakeBatchProvider(BaseBatchProvider):
    """An in-memory batch provider, fully conformant, for testing code that drives batches.

    Config: ``backend`` (a :class:`FakeBackend`; default: a new one, kept in ``config`` so a
    provider rebuilt from ``config`` reaches the same batches), ``idempotent_submit`` (default
    true; false declares the provider non-idempotent, so a lost create is reconciled by request
    count and creation time, as for a vendor without idempotency keys) and the common keys.
    """

    PROVIDER_NAME: ClassVar[str] = "fake"
    DEFAULT_LIMITS: ClassVar[BatchLimits] = BatchLimits(
        max_requests=50_000, max_bytes=200 * 1024 * 1024
    )
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = (FAKE_MODEL, "fake-*")
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"backend", "idempotent_submit"})
    CUSTOM_ID_PATTERN = SAFE_CUSTOM_ID
    IDEMPOTENT_SUBMIT: ClassVar[bool] = True
    SUPPORTS_CANCEL: ClassVar[bool] = True
    #: How much earlier than the attempt a batch it made may say it was created (the vendor's
    #: clock and the client's disagree a little).
    CLOCK_SKEW: ClassVar[timedelta] = timedelta(seconds=60)

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
        if not read_bool(self.config, "idempotent_submit", True):
            # Declared on the instance, so one provider class serves both kinds of vendor.
            vars(self)["IDEMPOTENT_SUBMIT"] = False
        self.sleep = backend.clock.sleep
        self.clock = backend.clock.now

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        super().check_request(request)
        if request.endpoint not in ENDPOINTS:
            raise InvalidRequestError(
                f"request {request.custom_id!r}: the fake provider serves "
                f"{' and '.join(ENDPOINTS)}, not {request.endpoint}",
                custom_id=request.custom_id,
                field="endpoint",
                provider=self.PROVIDER_NAME,
            )

    def encode_request(self, request: BatchRequest) -> bytes:
        """The request as the fake vendor takes it; ``provider_params["fake"]`` is merged into
        its params (other providers' entries are dropped)."""
        extra = request.provider_params.get(self.PROVIDER_NAME)
        if request.provider_params:
            request = attrs.evolve(
                request, params={**request.params, **(extra or {})}, provider_params={}
            )
        return encode_request(request)

    # -- the vendor half -------------------------------------------------------------------

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        requests = self._requests_of(payload)
        key = idempotency_key if self.IDEMPOTENT_SUBMIT else None
        return self._call(
            "submit",
            lambda: self.backend.create_batch(
                requests,
                provider=self.PROVIDER_NAME,
                endpoint=payload.endpoint,
                idempotency_key=key,
                api_key=self._key(),
            ),
            idempotent=False,
        )

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterable[BatchHandle]:
        handles = self._call(
            "list_batches",
            lambda: self.backend.list_batches(provider=self.PROVIDER_NAME, api_key=self._key()),
        )
        if self.IDEMPOTENT_SUBMIT:
            return [h for h in handles if h.metadata.get("idempotency_key") == idempotency_key]
        earliest = None if since is None else since - self.CLOCK_SKEW
        return [
            h
            for h in handles
            if h.metadata.get("request_count") == payload.request_count
            and h.metadata.get("endpoint") == payload.endpoint
            and (earliest is None or h.created_at >= earliest)
        ]

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        return self._call(
            "poll_status",
            lambda: self.backend.get_status(
                handle.batch_id, provider=self.PROVIDER_NAME, api_key=self._key()
            ),
        )

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterable[BatchResult]:
        # A download of JSON lines, read by the core's one rule for lines (a garbled one raises).
        lines = self._call(
            "fetch_results",
            lambda: self.backend.read_result_lines(handle.batch_id, api_key=self._key()),
        )
        return read_result_lines(
            lines,
            BatchResult.from_dict,
            provider=self.PROVIDER_NAME,
            batch_id=handle.batch_id,
        )

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        return self._call(
            "fetch_results",
            lambda: self.backend.request_ids(handle.batch_id, api_key=self._key()),
        )

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        return self._call(
            "cancel",
            lambda: self.backend.cancel_batch(
                handle.batch_id, provider=self.PROVIDER_NAME, api_key=self._key()
            ),
        )

    # -- talking to the backend ------------------------------------------------------------

    def _key(self) -> str | None:
        return None if self.api_key is None else self.api_key.reveal()

    def _call(self, action: str, call: Callable[[], T], *, idempotent: bool = True) -> T:
        """One backend call under the core's retry rule, its failures translated."""

        def once() -> T:
            failure: ProviderError
            try:
                return call()
            except FakeAPIError as exc:
                failure = self._translate(exc, action)
            # Raised outside the except block, so the vendor exception (which a real SDK fills
            # with the request and its key) is not kept as the error's context.
            raise failure

        return self.call(action, once, idempotent=idempotent)

    def _translate(self, exc: FakeAPIError, action: str) -> ProviderError:
        if exc.status_code is None:
            return transport_failure(
                exc,
                provider=self.PROVIDER_NAME,
                action=action,
                secrets=self.secrets(),
                timeout=self.timeout,
            )
        return error_from_response(
            provider=self.PROVIDER_NAME,
            status_code=exc.status_code,
            body=exc.body,
            headers=exc.headers,
            secrets=self.secrets(),
            action=action,
        )

    def _requests_of(self, payload: BatchPayload) -> list[BatchRequest]:
        """The requests the base class wrote into *payload*'s file."""
        if payload.path is None:
            raise InvalidRequestError("the payload has no file", provider=self.PROVIDER_NAME)
        try:
            with open(payload.path, "rb") as lines:
                return [
                    BatchRequest.from_dict(orjson.loads(line)) for line in lines if line.strip()
                ]
        except FileNotFoundError:
            pass
        raise InvalidRequestError(
            f"payload file {payload.path.name} is gone; submit a payload before discarding it",
            provider=self.PROVIDER_NAME,
        )
