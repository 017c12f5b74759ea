"""BaseBatchProvider: the contract every batch provider implements.

Flow of one batch, every step a method::

    BatchRequest* --prepare_payloads--> [BatchPayload]   validated, converted, split; no network
    BatchPayload  --submit------------> BatchHandle      serialisable
    BatchHandle   --poll_status-------> BatchStatus      normalised state + raw status + counts
    BatchHandle   --fetch_results-----> Iterator[BatchResult]   one per custom_id, any order
    BatchHandle   --cancel------------> BatchStatus

A provider that uploads files only writes :meth:`BaseBatchProvider.encode_request` (one request
to vendor bytes); validation, splitting under limits and duplicate detection are done here once.
"""

from __future__ import annotations

import abc
import fnmatch
import re
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from batchcore.config import Secret, env_first, read_float, read_int, read_str, read_str_list
from batchcore.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    UnsupportedModelError,
)
from batchcore.models import (
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
)
from batchcore.payloads import JSONL, PayloadFraming, PayloadWriter
from batchcore.retry import RetryPolicy

__all__ = ["COMMON_CONFIG_KEYS", "BaseBatchProvider"]

#: Config keys every provider understands.
COMMON_CONFIG_KEYS = frozenset(
    {
        "api_key",  # falls back to the vendor's usual environment variable
        "base_url",  # what the vendor SDK means by it; falls back to its environment variable
        "timeout",  # seconds per HTTP call
        "max_retries",  # retries of one HTTP call on transient failures
        "max_requests_per_batch",  # override of the provider's request limit
        "max_bytes_per_batch",  # override of the provider's size limit
        "models",  # extra model names or glob patterns this provider should accept
        "workdir",  # where payload files are written (default: the system temp dir)
    }
)


class BaseBatchProvider(abc.ABC):
    """Abstract base of every batch provider. Build one as ``cls(config={...})``.

    Class attributes a subclass sets:

    * ``PROVIDER_NAME`` - the registry name (``"openai"``).
    * ``DEFAULT_LIMITS`` - requests and bytes per batch; overridable in config.
    * ``SUPPORTED_MODELS`` - glob patterns of model names served (``("gpt-*", "o3*")``); config
      key ``models`` adds more (``"*"`` accepts any).
    * ``CONFIG_KEYS`` - provider-specific config keys, besides :data:`COMMON_CONFIG_KEYS`.
    * ``API_KEY_ENV`` / ``BASE_URL_ENV`` - environment variables read when config lacks a value.
    * ``CUSTOM_ID_PATTERN`` - a regex custom_ids must match, when the vendor restricts them.
    * ``PAYLOAD_FRAMING`` - how encoded requests are joined into a payload file.
    """

    PROVIDER_NAME: ClassVar[str]
    DEFAULT_LIMITS: ClassVar[BatchLimits] = BatchLimits(
        max_requests=50_000, max_bytes=200 * 1024 * 1024
    )
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = ("*",)
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset()
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ()
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ()
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    DEFAULT_TIMEOUT: ClassVar[float] = 60.0
    DEFAULT_MAX_RETRIES: ClassVar[int] = 2
    CUSTOM_ID_PATTERN: ClassVar[re.Pattern[str] | None] = None
    PAYLOAD_FRAMING: ClassVar[PayloadFraming] = JSONL
    #: ``"module:callable"`` of an offline emulator of the vendor, or None. The callable takes
    #: no arguments and returns a context manager yielding config overrides (``base_url``,
    #: ``api_key``) that point this provider at the running emulator. The CLI uses it when no
    #: API key is configured.
    SANDBOX: ClassVar[str | None] = None

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        name = getattr(type(self), "PROVIDER_NAME", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__} must set PROVIDER_NAME to a non-empty string")
        if config is not None and not isinstance(config, Mapping):
            raise ConfigurationError(f"config must be a mapping, got {type(config).__name__}")
        settings = dict(config or {})
        known = COMMON_CONFIG_KEYS | self.CONFIG_KEYS
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown config key(s) for provider {name!r}: {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        raw_key = settings.pop("api_key", None)
        if isinstance(raw_key, Secret):
            self._api_key: Secret | None = raw_key
        else:
            key_text = read_str({"api_key": raw_key}, "api_key") or env_first(self.API_KEY_ENV)
            self._api_key = Secret(key_text) if key_text else None
        self.config: Mapping[str, Any] = settings
        self.base_url: str | None = (
            read_str(settings, "base_url") or env_first(self.BASE_URL_ENV) or self.DEFAULT_BASE_URL
        )
        self.timeout = read_float(settings, "timeout", self.DEFAULT_TIMEOUT, minimum=0.001)
        self.max_retries = read_int(settings, "max_retries", self.DEFAULT_MAX_RETRIES)
        self.limits = self.DEFAULT_LIMITS.with_overrides(settings)
        workdir = settings.get("workdir")
        self.workdir: Path | None = None if workdir is None else Path(workdir)
        self._extra_models = read_str_list(settings, "models")
        self._model_verdicts: dict[str, bool] = {}
        #: How the provider waits between retries and reads the time. Tests replace them (for
        #: example with a ManualClock's ``sleep``/``now``) so nothing waits for real time.
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.time

    # -- configuration ---------------------------------------------------------------------

    @property
    def api_key(self) -> Secret | None:
        """The API key from config or the environment, wrapped so it never prints."""
        return self._api_key

    def require_api_key(self) -> str:
        """The API key's value, or :class:`AuthenticationError` saying where to put one."""
        if self._api_key is None:
            where = " or ".join(self.API_KEY_ENV) if self.API_KEY_ENV else "no variable"
            raise AuthenticationError(
                f"no API key: pass config={{'api_key': ...}} or set {where}",
                provider=self.PROVIDER_NAME,
            )
        return self._api_key.reveal()

    def retry_policy(self) -> RetryPolicy:
        """The backoff policy for this provider's HTTP calls (``max_retries`` from config)."""
        return RetryPolicy(max_retries=self.max_retries)

    def secrets(self) -> tuple[str, ...]:
        """Values that must be scrubbed from anything this provider reports."""
        return () if self._api_key is None else (self._api_key.reveal(),)

    def __repr__(self) -> str:
        key = "set" if self._api_key is not None else "unset"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    # -- models ----------------------------------------------------------------------------

    def supports_model(self, model: str) -> bool:
        """Whether this provider serves *model* (its patterns plus config ``models``)."""
        known = self._model_verdicts.get(model)
        if known is not None:
            return known
        if not isinstance(model, str) or not model:
            return False
        patterns = self.SUPPORTED_MODELS + self._extra_models
        verdict = any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)
        if len(self._model_verdicts) < 1024:  # a batch uses few models; bound it anyway
            self._model_verdicts[model] = verdict
        return verdict

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        """Provider-specific validation of one request; raise before any network call.

        The default checks the type, the model and ``CUSTOM_ID_PATTERN``. Extend it with
        ``super().check_request(request)``.
        """
        if not isinstance(request, BatchRequest):
            raise InvalidRequestError(
                f"expected a BatchRequest, got {type(request).__name__}; build one with "
                "BatchRequest(...) or BatchRequest.from_json(...)",
                provider=self.PROVIDER_NAME,
            )
        if not self.supports_model(request.model):
            raise UnsupportedModelError(
                f"request {request.custom_id!r}: provider {self.PROVIDER_NAME!r} does not serve "
                f"model {request.model!r} (add it with config models=[...] if it should)",
                model=request.model,
                custom_id=request.custom_id,
                field="model",
                provider=self.PROVIDER_NAME,
            )
        pattern = self.CUSTOM_ID_PATTERN
        if pattern is not None and not pattern.match(request.custom_id):
            raise InvalidRequestError(
                f"request {request.custom_id!r}: provider {self.PROVIDER_NAME!r} requires "
                f"custom_ids matching {pattern.pattern}",
                custom_id=request.custom_id,
                field="custom_id",
                provider=self.PROVIDER_NAME,
            )

    def encode_request(self, request: BatchRequest) -> bytes:
        """One request in the vendor's payload format (one JSONL line without the newline).

        Providers that write payload files implement this; the default
        :meth:`prepare_payloads` does the rest. Others override :meth:`prepare_payloads`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement encode_request() or prepare_payloads()"
        )

    def payload_group(self, request: BatchRequest) -> Hashable:
        """Requests with different groups never share a payload. Default: model and endpoint."""
        return (request.model, request.endpoint)

    def payload_model(self, request: BatchRequest) -> str | None:
        """The model recorded on the payload holding *request* (None for mixed-model batches)."""
        return request.model

    def prepare_payloads(self, requests: Iterable[BatchRequest]) -> list[BatchPayload]:
        """Validate, convert and split *requests* into payloads under ``self.limits``.

        No network. Raises :class:`InvalidRequestError` (or :class:`UnsupportedModelError`)
        for the first bad request, for duplicate custom_ids and for empty input, and then leaves
        no file behind. The caller owns the returned payloads' files (``payload.discard()``).
        """
        if isinstance(requests, (str, bytes, Mapping, BatchRequest)):
            raise InvalidRequestError(
                "prepare_payloads takes an iterable of BatchRequest", provider=self.PROVIDER_NAME
            )
        with PayloadWriter(
            provider=self.PROVIDER_NAME,
            limits=self.limits,
            framing=self.PAYLOAD_FRAMING,
            workdir=self.workdir,
        ) as writer:
            for request in requests:
                self.check_request(request)
                writer.add(
                    request.custom_id,
                    self.encode_request(request),
                    model=self.payload_model(request),
                    endpoint=request.endpoint,
                    group=self.payload_group(request),
                )
            return writer.finish()

    # -- the network half ------------------------------------------------------------------

    @abc.abstractmethod
    def submit(self, payload: BatchPayload) -> BatchHandle:
        """Create a batch from *payload*. With ``payload.idempotency_key`` set, a provider that
        can find a batch already created for that key returns its handle instead of paying
        twice. Raises :class:`~batchcore.ProviderError` subclasses on failure."""

    @abc.abstractmethod
    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        """The batch's current status."""

    @abc.abstractmethod
    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        """Stream one result per custom_id, in any order. For an expired or cancelled batch,
        finished results come back as they are and unfinished requests as expired/cancelled."""

    @abc.abstractmethod
    def cancel(self, handle: BatchHandle) -> BatchStatus:
        """Ask the vendor to cancel; returns the status after asking. Providers that cannot
        cancel raise :class:`~batchcore.UnsupportedOperationError`."""
