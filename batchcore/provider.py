"""BaseBatchProvider: the contract every batch provider implements.

Flow of one batch, every step a public method (the seed contract)::

    BatchRequest* --prepare_payloads--> [BatchPayload]   validated, converted, split; no network
    BatchPayload  --submit------------> BatchHandle      serialisable; never two batches
    BatchHandle   --poll_status-------> BatchStatus      normalised state + raw status + counts
    BatchHandle   --fetch_results-----> Iterator[BatchResult]   one per custom_id, any order
    BatchHandle   --cancel------------> BatchStatus

Each public method is written here once and keeps the money rules (validation before the
network, ownership checks, submit reconciliation, exactly-once results, cancel after the end,
eager errors); a provider writes only the vendor half, one small method per vendor call::

    encode_request(request) -> bytes           one request in the vendor's format
    upload(payload) -> staged                  optional: upload the payload file
    create_batch(payload, staged, key) -> BatchHandle
    find_batches(payload, staged, key, since)  the batches a lost create may have made
    get_status(handle) -> BatchStatus
    read_results(handle, status) -> results    streamed
    request_ids(handle, status)                optional: the batch's custom_ids
    cancel_batch(handle) -> BatchStatus

and declares what its vendor can do in class attributes (limits, models, custom_id rules,
``IDEMPOTENT_SUBMIT``, ``SUPPORTS_CANCEL``, retryable result codes). A provider that speaks
raw HTTP calls ``self.transport()`` (the core's transport, built on first use, closed by
``close()``) and names its headers in ``http_headers(api_key)``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import itertools
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import orjson

from batchcore.classify import result_error
from batchcore.config import Secret, env_first, read_float, read_int, read_str, read_str_list
from batchcore.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    ProviderError,
    ProviderPermanentError,
    ResultsNotReadyError,
    UnsupportedModelError,
    UnsupportedOperationError,
)
from batchcore.models import (
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
    QueueLimit,
    ResultError,
)
from batchcore.payloads import JSONL, PayloadFraming, PayloadWriter
from batchcore.request_rules import ModelRule, RequestExtensions, check_request_rules
from batchcore.retry import RetryPolicy, announce_wait, retry_call
from batchcore.tokens import estimate_tokens

if TYPE_CHECKING:
    from batchcore.http import HttpTransport

__all__ = ["COMMON_CONFIG_KEYS", "BaseBatchProvider", "SubmitJournal"]

log = logging.getLogger("batchcore.provider")
T = TypeVar("T")
_P = TypeVar("_P", bound="BaseBatchProvider")

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
        "max_enqueued_tokens",  # the vendor's queue cap in force, when counted in tokens
        "max_enqueued_requests",  # ... when counted in requests
    }
)


class BaseBatchProvider:
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
    * ``MAX_CUSTOM_ID_LENGTH`` - the longest custom_id the vendor takes, when it has a limit.
    * ``IDEMPOTENT_SUBMIT`` - True when ``create_batch`` attaches the idempotency key where
      ``find_batches`` finds it exactly (OpenAI batch metadata): a create whose answer was lost
      is then found by key. Otherwise ``find_batches`` matches on what the vendor echoes and
      the core refuses to guess between several candidates.
    * ``SUPPORTS_CANCEL`` - False when the vendor cannot cancel a batch.
    * ``SUBMIT_SETTLE_SECONDS`` - how long after a create a new batch may still be missing from
      the vendor's list (reconciliation waits that long before concluding there is none).
    * ``RETRYABLE_RESULT_CODES`` - the vendor's per-request error codes that resubmitting can
      cure, besides the core's :data:`batchcore.classify.RETRYABLE_RESULT_CODES`.
    * ``REQUEST_EXTENSIONS`` - what the provider understands in the unified request beyond
      OpenAI's format (extra parameters, message and content-part keys); everything else not in
      OpenAI's spec is refused offline, pointing at ``provider_params``.
    * ``MODEL_RULES`` - parameters some of its models refuse, or take only within a range
      (data: :class:`~batchcore.request_rules.ModelRule`).

    A subclass implements, for each public method, either its vendor half (above) or, for full
    control, the public method itself.
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
    MAX_CUSTOM_ID_LENGTH: ClassVar[int | None] = None
    IDEMPOTENT_SUBMIT: ClassVar[bool] = False
    SUPPORTS_CANCEL: ClassVar[bool] = True
    SUBMIT_SETTLE_SECONDS: ClassVar[float] = 60.0
    RETRYABLE_RESULT_CODES: ClassVar[frozenset[str]] = frozenset()
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = RequestExtensions()
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = ()
    #: Config keys whose values change what the vendor answers, besides the base URL (which
    #: every fingerprint includes): part of :meth:`fingerprint`.
    ANSWER_CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset()
    #: What the vendor lets wait in its queue at once (None: no cap the runner must respect).
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = None
    #: Batch error codes that mean "the queue was full", not "the requests were wrong": the
    #: batch never ran, its requests wait for capacity without losing an attempt.
    CAPACITY_ERROR_CODES: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cls = type(self)
        name = getattr(cls, "PROVIDER_NAME", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} must set PROVIDER_NAME to a non-empty string")
        missing = [
            vendor
            for public, vendor in _HALVES
            if getattr(cls, public) is getattr(BaseBatchProvider, public)
            and getattr(cls, vendor) is getattr(BaseBatchProvider, vendor)
            and not (public == "cancel" and not cls.SUPPORTS_CANCEL)
        ]
        if missing:
            raise TypeError(
                f"Can't instantiate {cls.__name__}: it implements neither "
                + ", ".join(
                    f"{vendor}() nor {public}()" for public, vendor in _HALVES if vendor in missing
                )
            )
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
        self._model_rule_cache: dict[str, tuple[ModelRule, ...]] = {}
        #: How the provider waits between retries and reads the time. Tests replace them (for
        #: example with a ManualClock's ``sleep``/``now``) so nothing waits for real time.
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.time
        self._http_transport: HttpTransport | None = None
        self._http_transport_lock = threading.Lock()
        # The queue room prepare_payloads splits by, per thread (see queue_room).
        self._split_room = threading.local()

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

    def queue_limit(self, model: str | None = None) -> tuple[QueueLimit, int] | None:
        """The vendor's queue cap in force for *model*: ``(QUEUE_LIMIT, the cap)``, the cap
        read from config (``max_enqueued_tokens`` / ``max_enqueued_requests``), else the
        declared default for that model (:meth:`QueueLimit.default_for`)."""
        limit = self.QUEUE_LIMIT
        if limit is None:
            return None
        cap = read_int(self.config, limit.config_key, limit.default_for(model), minimum=1)
        return limit, cap

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

    def _model_rules(self, model: str) -> tuple[ModelRule, ...]:
        """The ``MODEL_RULES`` that apply to *model*, matched once per model (a job uses a few
        models; the glob patterns stay off the per-request path)."""
        found = self._model_rule_cache.get(model)
        if found is None:
            found = tuple(rule for rule in self.MODEL_RULES if rule.applies_to(model))
            if len(self._model_rule_cache) < 1024:
                self._model_rule_cache[model] = found
        return found

    def check_request(self, request: BatchRequest) -> None:
        """Provider-specific validation of one request; raise before any network call.

        The default checks the type, the model, the custom_id (``MAX_CUSTOM_ID_LENGTH``,
        ``CUSTOM_ID_PATTERN``) and the unified request's rules (OpenAI's spec for the endpoint,
        plus ``REQUEST_EXTENSIONS``, and ``MODEL_RULES``). Extend it with
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
        limit = self.MAX_CUSTOM_ID_LENGTH
        if limit is not None and len(request.custom_id) > limit:
            raise InvalidRequestError(
                f"request {request.custom_id!r}: provider {self.PROVIDER_NAME!r} takes "
                f"custom_ids of at most {limit} characters ({len(request.custom_id)} given)",
                custom_id=request.custom_id,
                field="custom_id",
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
        check_request_rules(
            request,
            provider=self.PROVIDER_NAME,
            extensions=self.REQUEST_EXTENSIONS,
            model_rules=self._model_rules(request.model),
        )

    def fingerprint(self, request: BatchRequest) -> bytes:
        """What *request* asks of this provider, as 16 bytes: two requests with the same
        fingerprint get the same kind of answer, so one answer may serve both (opt-in result
        reuse, ``reuse_results=True``). This is the one definition of the fingerprint. It
        covers:

        * the provider's name, and the server it talks to (the base URL in force, from config,
          the environment or the default: another server, another answer);
        * the request's endpoint and model, and its body as the unified request holds it
          (messages and every parameter) with its ``provider_params``;
        * the values of the config keys named in ``ANSWER_CONFIG_KEYS`` (a plugin names the
          vendor-specific ones that change answers: an API version, a deployment, ...), as the
          provider uses them (:meth:`answer_config`: from the environment or a default too).

        Not the custom_id, and never the API key (it is not part of ``config``). A sandbox job's
        answers are never reused whatever their fingerprint
        (:func:`batchcore.jobs.store.answers_reusable`)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{self.PROVIDER_NAME}\0{request.endpoint}\0{request.model}\0".encode())
        digest.update(f"base_url={(self.base_url or '').rstrip('/')}\0".encode())
        digest.update(request.openai_body_json())
        if request.provider_params:
            digest.update(orjson.dumps(request.provider_params, option=orjson.OPT_SORT_KEYS))
        for key, value in sorted(self.answer_config().items()):
            digest.update(f"\0{key}={value!r}".encode())
        return digest.digest()

    def answer_config(self) -> dict[str, Any]:
        """The values of ``ANSWER_CONFIG_KEYS`` that :meth:`fingerprint` covers, as this
        provider uses them: an attribute of the same name when the provider resolved one (a
        value read from the environment or a default, like an Azure endpoint), else the
        config's value. Every declared key counts whatever its name (``default_max_tokens``
        changes answers); the API key never does (it is not kept in ``config``)."""
        found: dict[str, Any] = {}
        for key in self.ANSWER_CONFIG_KEYS - {"base_url", "api_key"}:
            resolved = getattr(self, key, None)
            plain = resolved is None or isinstance(resolved, (str, int, float, bool, tuple))
            found[key] = resolved if resolved is not None and plain else self.config.get(key)
        return found

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
        """Validate, convert and split *requests* into payloads under ``self.limits`` (and,
        inside :meth:`queue_room`, under the room it gives in the vendor's queue).

        No network. Raises :class:`InvalidRequestError` (or :class:`UnsupportedModelError`)
        for the first bad request, for duplicate custom_ids and for empty input (inside
        :meth:`queue_room`, also for a request that alone is over the configured queue cap),
        and then leaves no file behind. The caller owns the returned payloads' files
        (``payload.discard()``).
        """
        if isinstance(requests, (str, bytes, Mapping, BatchRequest)):
            raise InvalidRequestError(
                "prepare_payloads takes an iterable of BatchRequest", provider=self.PROVIDER_NAME
            )
        # Token estimates cost a walk over each request: only when the queue counts tokens.
        counts_tokens = self.QUEUE_LIMIT is not None and self.QUEUE_LIMIT.measure == "tokens"
        room_of: Callable[[str | None], int | None] | None = getattr(self._split_room, "room", None)
        caps: dict[str | None, tuple[QueueLimit, int] | None] = {}
        rooms: dict[str | None, int | None] = {}
        with PayloadWriter(
            provider=self.PROVIDER_NAME,
            limits=self.limits,
            framing=self.PAYLOAD_FRAMING,
            workdir=self.workdir,
            room_in_tokens=counts_tokens,
        ) as writer:
            for request in requests:
                self.check_request(request)
                model = self.payload_model(request)
                tokens = (
                    estimate_tokens(request, provider=self.PROVIDER_NAME).expected
                    if counts_tokens
                    else 0
                )
                room = None
                if room_of is not None:
                    if model not in rooms:
                        rooms[model] = room_of(model)
                    room = rooms[model]
                writer.add(
                    request.custom_id,
                    self.encode_request(request),
                    model=model,
                    endpoint=request.endpoint,
                    group=self.payload_group(request),
                    tokens=tokens,
                    room=room,
                )
                if counts_tokens and room_of is not None:
                    if model not in caps:
                        caps[model] = self.queue_limit(model)
                    queue = caps[model]
                    if queue is not None and tokens > queue[1]:
                        raise self._over_queue_cap(request, model, tokens, queue)
            return writer.finish()

    @contextlib.contextmanager
    def queue_room(self, room: Callable[[str | None], int | None]) -> Iterator[None]:
        """Within this block (in this thread), :meth:`prepare_payloads` also splits payloads so
        that each holds at most ``room(model)`` of the vendor queue's measure (estimated input
        tokens, or requests; None: no split by the queue), so that every batch can be admitted
        into the queue on its own, and refuses a request that alone is over the configured cap
        (:meth:`queue_limit`): it could never be admitted. The runner gives the cap in force,
        the configured one or lower (see :meth:`batchcore.jobs.JobStore.queue_cap`); a request
        over a lower room but under the configured cap gets a payload of its own."""
        previous = getattr(self._split_room, "room", None)
        self._split_room.room = room
        try:
            yield
        finally:
            self._split_room.room = previous

    def _over_queue_cap(
        self, request: BatchRequest, model: str | None, tokens: int, queue: tuple[QueueLimit, int]
    ) -> InvalidRequestError:
        declared, cap = queue
        return InvalidRequestError(
            f"request {request.custom_id!r} alone needs about {tokens:,} enqueued tokens"
            f"{f' of {model}' if model else ''}, more than the {cap:,} that "
            f"{self.PROVIDER_NAME}'s batch queue is set to hold (config "
            f"{declared.config_key}); it could never be admitted: raise {declared.config_key} "
            "to your account's queue limit for the model, or shorten the request",
            custom_id=request.custom_id,
            provider=self.PROVIDER_NAME,
        )

    # -- capability checks the core owns ---------------------------------------------------

    def check_payload(self, payload: BatchPayload) -> None:
        """Refuse a payload this provider did not prepare, before any call."""
        if not isinstance(payload, BatchPayload):
            raise InvalidRequestError(
                f"expected a BatchPayload, got {type(payload).__name__}; build payloads with "
                "prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        if payload.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"this payload was prepared by provider {payload.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )

    def check_handle(self, handle: BatchHandle) -> None:
        """Refuse a handle of another provider (or no handle at all), before any call."""
        if not isinstance(handle, BatchHandle):
            raise InvalidRequestError(
                f"expected a BatchHandle, got {type(handle).__name__}", provider=self.PROVIDER_NAME
            )
        if handle.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"batch {handle.batch_id!r} belongs to provider {handle.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )
        if not isinstance(handle.batch_id, str) or not handle.batch_id:
            raise InvalidRequestError("the handle has no batch id", provider=self.PROVIDER_NAME)

    def result_error(
        self, *, code: str | None, message: str | None = None, status_code: int | None = None
    ) -> ResultError:
        """The :class:`ResultError` for one request that failed inside a batch: the core's one
        rule for what is retryable (:func:`batchcore.classify.result_error`), fed with this
        vendor's ``RETRYABLE_RESULT_CODES``."""
        return result_error(
            code=code,
            message=message,
            status_code=status_code,
            retryable_codes=self.RETRYABLE_RESULT_CODES,
        )

    def call(self, action: str, call: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one vendor call under this provider's retry policy and sleep (see
        :mod:`batchcore.retry`). Raw-HTTP providers get this from :class:`HttpTransport`; SDK
        providers wrap each SDK call with it after translating the SDK's exceptions."""
        return retry_call(
            call,
            policy=self.retry_policy(),
            sleep=lambda seconds: self.sleep(seconds),
            describe=f"{self.PROVIDER_NAME} {action}",
            idempotent=idempotent,
        )

    # -- submit: the core's half -------------------------------------------------------------

    def submit(self, payload: BatchPayload, *, journal: SubmitJournal | None = None) -> BatchHandle:
        """Create a batch from *payload*, never two.

        Uploads (``upload``) unless ``payload.staged`` says it was done, then creates
        (``create_batch``). When the create's outcome is unknown (the request left, the answer
        was lost), or ``payload.attempted_at`` says an earlier create may have been sent, the
        batch it may have made is looked for (``find_batches``) and adopted. For a provider that
        is not ``IDEMPOTENT_SUBMIT`` the search waits out ``SUBMIT_SETTLE_SECONDS`` after the
        attempt before concluding that nothing was created; several possible batches raise
        :class:`AmbiguousSubmitError` and nothing is created. A provider that cannot search at
        all (``find_batches`` unsupported) raises it too: nothing is ever created blindly.

        *journal* (the runner's store) is told what is staged and when a create is sent, before
        it is sent, so a process killed at any instant resumes without paying twice.
        """
        self.check_payload(payload)
        journal = journal or _NoJournal()
        key = payload.idempotency_key or f"batchcore-{uuid.uuid4().hex}"
        staged: Mapping[str, Any] = payload.staged
        if payload.attempted_at is not None or (self.IDEMPOTENT_SUBMIT and payload.idempotency_key):
            found = self._reconcile(payload, key, staged, payload.attempted_at, journal)
            if found is not None:
                return found
        if not staged:
            staged = self.upload(payload)
            if staged:
                journal.staged(staged)
        creates = 0
        while True:
            started = datetime.fromtimestamp(self.clock(), tz=timezone.utc)
            journal.attempting(started)
            lost: OutcomeUnknownError | None = None
            try:
                return self.create_batch(payload, staged=staged, idempotency_key=key)
            except OutcomeUnknownError as error:
                lost = error
            creates += 1
            log.warning(
                "%s: the answer to creating a batch was lost (%s); looking for the batch it may "
                "have made before doing anything else",
                self.PROVIDER_NAME,
                lost,
            )
            found = self._reconcile(payload, key, staged, started, journal)
            if found is not None:
                return found
            if creates > self.retry_policy().max_retries:
                raise lost

    def _reconcile(
        self,
        payload: BatchPayload,
        key: str,
        staged: Mapping[str, Any],
        since: datetime | None,
        journal: SubmitJournal,
    ) -> BatchHandle | None:
        """The batch an earlier create of *payload* made, or None once it is certain there is
        none. Waits (with ``self.sleep``) until ``SUBMIT_SETTLE_SECONDS`` after *since* before
        saying none, because vendors list a new batch a few seconds late."""
        settle = -math.inf if since is None else since.timestamp() + self.SUBMIT_SETTLE_SECONDS
        announced = False
        while True:
            try:
                candidates = list(
                    self.find_batches(payload, staged=staged, idempotency_key=key, since=since)
                )
            except UnsupportedOperationError:
                if since is None:
                    return None  # only the courtesy check before a first create
                candidates = None
            if candidates is None:
                raise AmbiguousSubmitError(
                    f"creating a batch of {payload.request_count} requests may have succeeded, "
                    f"but provider {self.PROVIDER_NAME!r} cannot look for the batch it made; "
                    "check the vendor's console before submitting again",
                    provider=self.PROVIDER_NAME,
                )
            if not self.IDEMPOTENT_SUBMIT:
                candidates = [h for h in candidates if not journal.is_known(h.batch_id)]
            if len(candidates) == 1 or (self.IDEMPOTENT_SUBMIT and candidates):
                # Several batches under one key (an older client paid twice): adopt the oldest.
                adopted = min(candidates, key=lambda h: h.created_at)
                log.info(
                    "%s: adopting batch %s, created by an earlier attempt",
                    self.PROVIDER_NAME,
                    adopted.batch_id,
                )
                return adopted
            if candidates:
                ids = [h.batch_id for h in candidates]
                raise AmbiguousSubmitError(
                    f"creating a batch of {payload.request_count} requests may have succeeded "
                    f"and {len(ids)} batches at the vendor could be it ({', '.join(ids)}); "
                    "nothing was created again",
                    provider=self.PROVIDER_NAME,
                    candidates=ids,
                )
            remaining = settle - self.clock()
            if remaining <= 0:
                return None
            if not announced:
                announced = True
                announce_wait(
                    remaining,
                    reason="a create's answer was lost; the vendor lists a new batch a few "
                    "seconds late, so none is assumed made before then",
                    what=f"{self.PROVIDER_NAME} submit of {payload.request_count} requests",
                )
            self.sleep(min(remaining, _SETTLE_STEP))

    # -- fetch, cancel: the core's half --------------------------------------------------------

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        """The batch's current status (``get_status``), after checking the handle is ours."""
        self.check_handle(handle)
        return self.get_status(handle)

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        """Stream one result per custom_id of an ended batch, in any order.

        Eager: the handle, the batch's state (:class:`ResultsNotReadyError` before it ends) and
        the start of the download are checked when this is called; results then stream as the
        iterator is consumed. Each custom_id comes back once (a vendor's repeated line is
        dropped); requests the vendor's results omit are reported with
        :meth:`BatchResult.missing` when the provider can list the batch's ids
        (``request_ids``). Expired and cancelled batches return their finished results as they
        are.
        """
        self.check_handle(handle)
        status = self.get_status(handle)
        if not status.is_terminal:
            raise ResultsNotReadyError(
                f"batch {handle.batch_id} is {status.raw_status}: results can be fetched once it "
                "has ended (poll_status until is_terminal)",
                provider=self.PROVIDER_NAME,
            )
        results = iter(self.read_results(handle, status))
        first = next(results, None)  # opens the download now: its failure raises here
        return self._exactly_once(first, results, handle, status)

    def _exactly_once(
        self,
        first: BatchResult | None,
        rest: Iterator[BatchResult],
        handle: BatchHandle,
        status: BatchStatus,
    ) -> Iterator[BatchResult]:
        seen: set[str] = set()
        for result in itertools.chain(() if first is None else (first,), rest):
            if result.custom_id in seen:
                log.warning(
                    "%s: batch %s returned %r twice; keeping the first",
                    self.PROVIDER_NAME,
                    handle.batch_id,
                    result.custom_id,
                )
                continue
            seen.add(result.custom_id)
            yield result
        if status.total and len(seen) >= status.total:
            return
        ids = self.request_ids(handle, status)
        if ids is None:
            return
        try:
            for custom_id in ids:
                if custom_id not in seen:
                    seen.add(custom_id)
                    yield BatchResult.missing(custom_id, status)
        except ProviderPermanentError as error:
            # Every finished result has been yielded; a caller that knows what it sent (the
            # runner) marks the rest itself, so nothing paid for is lost by stopping here.
            log.warning(
                "%s: batch %s: cannot list its unfinished requests (%s)",
                self.PROVIDER_NAME,
                handle.batch_id,
                error,
            )

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        """Ask the vendor to cancel (``cancel_batch``); returns the status after asking.

        Cancelling a batch that has already ended returns its final status, whatever the vendor
        answers to the cancel itself. A provider that cannot cancel (``SUPPORTS_CANCEL`` false)
        raises :class:`UnsupportedOperationError`.
        """
        self.check_handle(handle)
        if not self.SUPPORTS_CANCEL:
            raise UnsupportedOperationError(
                f"provider {self.PROVIDER_NAME!r} cannot cancel batches",
                provider=self.PROVIDER_NAME,
            )
        refused: ProviderError | None = None
        try:
            return self.cancel_batch(handle)
        except ProviderError as error:
            if error.status_code not in (400, 409, 422):
                raise
            refused = error
        try:
            status: BatchStatus | None = self.get_status(handle)
        except ProviderError:
            status = None
        if status is not None and status.is_terminal:
            return status
        raise refused

    # -- the vendor half -------------------------------------------------------------------

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        """Stage the payload at the vendor before the create (upload its file); return what the
        create needs (``{"input_file_id": ...}``). Must be safe to repeat (an extra uploaded
        file costs nothing). Default: nothing to stage (the create body carries the requests).
        """
        return {}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """One create call. A provider that is ``IDEMPOTENT_SUBMIT`` attaches *idempotency_key*
        where ``find_batches`` can search it exactly. Do not retry an unknown outcome here: the
        transport raises :class:`OutcomeUnknownError` for a non-idempotent call and
        :meth:`submit` reconciles it."""
        raise NotImplementedError

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterable[BatchHandle]:
        """The batches at the vendor that an earlier create of *payload* may have made:
        exactly those carrying *idempotency_key* for an ``IDEMPOTENT_SUBMIT`` provider, else
        every batch matching what the vendor echoes (created after *since*, minus clock skew;
        the request count; the staged file). Return too many rather than too few: the core
        refuses to guess between several. Default: the vendor cannot be searched."""
        raise UnsupportedOperationError(
            f"provider {self.PROVIDER_NAME!r} cannot search its batches",
            provider=self.PROVIDER_NAME,
        )

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        """The vendor's status of the batch (one GET), normalised."""
        raise NotImplementedError

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterable[BatchResult]:
        """The results of an ended batch as the vendor returns them, streamed (a generator).
        Per-request failures are results (:meth:`result_error`), never exceptions."""
        raise NotImplementedError

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        """The custom_ids the batch was created with, when the vendor can list them (the input
        file); used to report requests its results omit. Default None: the caller (the runner)
        knows what it sent."""
        return None

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        """One cancel call; return the status the vendor answers with."""
        raise NotImplementedError

    # -- talking to the vendor over HTTP ---------------------------------------------------

    def http_headers(self, api_key: str) -> Mapping[str, str]:
        """The headers every call through :meth:`transport` carries, given the API key. Default:
        ``authorization: Bearer <key>``; a vendor that authenticates otherwise (``x-api-key``)
        or wants more headers (an API version) overrides it."""
        return {"authorization": f"Bearer {api_key}"}

    def transport(self) -> HttpTransport:
        """The core's :class:`~batchcore.http.HttpTransport` to ``base_url``, for providers that
        speak raw HTTP: built on first use (``prepare_payloads`` needs no key and imports no
        HTTP library) with :meth:`http_headers`, this provider's ``timeout``, retry policy,
        ``sleep`` and secrets; :meth:`close` closes it, and the next call builds a new one."""
        with self._http_transport_lock:
            if self._http_transport is None:
                if not self.base_url:
                    raise ConfigurationError(f"{self.PROVIDER_NAME}: no base_url configured")
                from batchcore.http import HttpTransport

                self._http_transport = HttpTransport(
                    provider=self.PROVIDER_NAME,
                    base_url=self.base_url,
                    headers=self.http_headers(self.require_api_key()),
                    timeout=self.timeout,
                    secrets=self.secrets(),
                    # Looked up at each call: tests replace provider.sleep after building.
                    sleep=lambda seconds: self.sleep(seconds),
                    retry_policy=self.retry_policy(),
                )
            return self._http_transport

    def close(self) -> None:
        """Release connections (a later call opens new ones). Safe to call twice. The base
        closes the :meth:`transport` when it was built; a provider holding other connections
        (a vendor SDK's client) closes them too and calls ``super().close()``."""
        with self._http_transport_lock:
            transport, self._http_transport = self._http_transport, None
        if transport is not None:
            transport.close()

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SubmitJournal(Protocol):
    """Where :meth:`BaseBatchProvider.submit` writes down what it is about to do, so that a
    later attempt (after a crash or a lost answer) finds the batch instead of paying twice. The
    runner's job store implements it."""

    def staged(self, staged: Mapping[str, Any]) -> None:
        """The payload is staged at the vendor (keep *staged* for the next attempt)."""

    def attempting(self, at: datetime) -> None:
        """A create is about to be sent; made durable before it is."""

    def is_known(self, batch_id: str) -> bool:
        """Whether *batch_id* is already accounted for (another payload's batch)."""


class _NoJournal:
    def staged(self, staged: Mapping[str, Any]) -> None:
        pass

    def attempting(self, at: datetime) -> None:
        pass

    def is_known(self, batch_id: str) -> bool:
        return False


#: The public method of the contract, and the vendor-half method that implements it.
_HALVES = (
    ("submit", "create_batch"),
    ("poll_status", "get_status"),
    ("fetch_results", "read_results"),
    ("cancel", "cancel_batch"),
)
_SETTLE_STEP = 5.0
