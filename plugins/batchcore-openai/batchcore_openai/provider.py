"""The OpenAI and Azure OpenAI batch providers: the vendor half, over the official ``openai`` SDK.

The core (:class:`BaseBatchProvider`) keeps the money rules: ownership checks, reconciling a
create whose answer was lost, exactly-once results, cancelling after the end. This module makes
the vendor's calls, each through the SDK with the SDK's own retries off and retried by the core
(``self.call``); the wire format is :mod:`batchcore_openai._mapping`'s. An SDK exception is
classified by the core and the translation raised after the ``except`` block: the SDK's
exception holds the request, Authorization header included, so it must not ride along as
``__cause__`` or ``__context__``.

The SDK client is built on the first network call, so ``prepare_payloads`` works offline and
without a key.

A provider for another OpenAI-compatible Batch API subclasses :class:`OpenAIBatchProvider` and
declares its differences as class attributes: the base's (``PROVIDER_NAME``, ``DEFAULT_LIMITS``,
``SUPPORTED_MODELS``, ``CONFIG_KEYS``, ``API_KEY_ENV``, ``BASE_URL_ENV``, ``DEFAULT_BASE_URL``,
``QUEUE_LIMIT``: OpenAI's unless it says otherwise, None for a vendor with no batch queue
limit, ...) and this one's: ``SUPPORTED_ENDPOINTS``, ``PROVIDER_PARAMS_KEYS``, the completion
windows (``COMPLETION_WINDOWS``, ``DEFAULT_COMPLETION_WINDOW``,
``COMPLETION_WINDOWS_DESCRIPTION``), ``OPENAI_ACCOUNT_HEADERS``, and what the vendor refuses
that OpenAI takes (``REFUSED_MESSAGE_KEYS``, ``STRUCTURED_OUTPUT_MODELS``,
``STRICT_STRUCTURED_OUTPUT_MODELS``; parameters it refuses are ``MODEL_RULES``). The batch
metadata key of the idempotency key is :data:`batchcore_openai.IDEMPOTENCY_METADATA_KEY`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, cast

import openai

from batchcore.plugin import (
    EMBEDDINGS,
    BaseBatchProvider,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ConfigurationError,
    InvalidRequestError,
    ModelRule,
    ProviderError,
    ProviderPermanentError,
    QueueLimit,
    RequestExtensions,
    ResponseLostError,
    env_first,
    error_from_response,
    iter_line_batches,
    read_result_lines,
    read_str,
    read_str_list,
    redact,
    retry_iter,
    transport_failure,
)
from batchcore_openai import _mapping as wire
from batchcore_openai._models import MODEL_RULES

__all__ = ["AzureOpenAIBatchProvider", "OpenAIBatchProvider"]

T = TypeVar("T")
#: How much older than the attempt a batch may look (clocks differ) and still be its batch.
_CLOCK_SKEW = timedelta(minutes=10)
#: Left out of every call (the SDK would fill them from OPENAI_ORG_ID / OPENAI_PROJECT_ID) when a
#: provider sends no OpenAI account headers.
_NO_OPENAI_ACCOUNT = cast(
    Mapping[str, str], {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}
)


class OpenAIBatchProvider(BaseBatchProvider):
    """Batches on the OpenAI Batch API (``openai``), or any OpenAI-compatible service.

    Config: ``api_key`` (or ``OPENAI_API_KEY``), ``base_url`` (or ``OPENAI_BASE_URL``),
    ``organization``, ``project``, ``completion_window`` (``"24h"``, the only one OpenAI
    takes), ``timeout``, ``max_retries``, ``models`` (extra model names or patterns, e.g. for a
    local gateway), ``max_requests_per_batch``, ``max_bytes_per_batch``, ``workdir``,
    ``max_enqueued_tokens`` (the organization's batch queue limit per model; see
    ``QUEUE_LIMIT``).
    """

    PROVIDER_NAME = "openai"
    # OpenAI states "200 MB"; the decimal reading is the one that can never be too big.
    DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200_000_000)
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = wire.OPENAI_MODEL_PATTERNS
    CONFIG_KEYS = frozenset({"organization", "project", "completion_window"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("OPENAI_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.openai.com/v1"
    SANDBOX: ClassVar[str | None] = "batchcore_openai.testing:sandbox"
    # The create puts the idempotency key in the batch's metadata, which the list shows.
    IDEMPOTENT_SUBMIT = True
    RETRYABLE_RESULT_CODES = wire.RETRYABLE_RESULT_CODES
    # The unified request is OpenAI's own format: nothing to declare beyond it. Vendor-only or
    # brand-new fields go under provider_params={"openai": {...}}.
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = RequestExtensions()
    #: What OpenAI's reasoning models refuse (:mod:`batchcore_openai._models`).
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = MODEL_RULES
    #: OpenAI caps the prompt tokens enqueued per model ("batch queue limit", by usage tier).
    #: The defaults are OpenAI's published tier-1 caps (its rate-limits table: 90,000 for
    #: gpt-4o, gpt-4-turbo, o1-preview; 2,000,000 for gpt-4o-mini, o1-mini, gpt-3.5-turbo;
    #: 3,000,000 for the text-embedding models); a model the table does not name gets the
    #: smallest, so no tier-1 organization is refused. Set your tier's cap with
    #: ``max_enqueued_tokens`` (the account's Limits page shows it).
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = QueueLimit(
        measure="tokens",
        per_model=True,
        default=90_000,
        model_defaults=(
            ("gpt-4o-mini*", 2_000_000),
            ("o1-mini*", 2_000_000),
            ("gpt-3.5-turbo*", 2_000_000),
            ("text-embedding-*", 3_000_000),
        ),
    )
    #: A batch refused because the model's queue was full fails validation with this code.
    CAPACITY_ERROR_CODES: ClassVar[frozenset[str]] = wire.CAPACITY_ERROR_CODES

    #: Endpoints this provider batches.
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = wire.BATCH_ENDPOINTS
    #: ``BatchRequest.provider_params`` entries merged into the body, in this order.
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("openai",)
    #: OpenAI allows at most this many embedding inputs in one batch, across its requests.
    MAX_EMBEDDING_INPUTS: ClassVar[int] = 50_000
    #: How many pages (of how many batches) of the newest batches are searched for a key.
    IDEMPOTENCY_SEARCH_PAGES: ClassVar[int] = 5
    IDEMPOTENCY_SEARCH_PAGE_SIZE: ClassVar[int] = 100
    #: The ``completion_window`` values the API takes. Config ``completion_window`` picks one
    #: (checked when the provider is built, so a refused window is never sent), else
    #: ``DEFAULT_COMPLETION_WINDOW``. A refusal says what is accepted: the values listed, or
    #: ``COMPLETION_WINDOWS_DESCRIPTION`` when set (for a set too large to list).
    COMPLETION_WINDOWS: ClassVar[frozenset[str]] = wire.COMPLETION_WINDOWS
    DEFAULT_COMPLETION_WINDOW: ClassVar[str] = wire.DEFAULT_COMPLETION_WINDOW
    COMPLETION_WINDOWS_DESCRIPTION: ClassVar[str | None] = None
    #: Whether calls carry OpenAI's account headers (``OpenAI-Organization``, ``OpenAI-Project``:
    #: config ``organization`` / ``project``, else the SDK's ``OPENAI_ORG_ID`` /
    #: ``OPENAI_PROJECT_ID``). False for another vendor: those name an OpenAI account and are then
    #: never sent, and a set ``OPENAI_CUSTOM_HEADERS`` (which the SDK adds to every call) is
    #: warned about on the logger of the provider's own package.
    OPENAI_ACCOUNT_HEADERS: ClassVar[bool] = True
    #: Message keys OpenAI's format has and the vendor refuses (key -> why), refused offline
    #: naming ``messages[i].<key>``. OpenAI refuses none of its own.
    REFUSED_MESSAGE_KEYS: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The models (glob patterns) that take ``response_format`` ``json_schema`` at all, and
    #: with ``strict: true``; others are refused offline. None: every model (OpenAI's own
    #: models are left to the API, as its model list changes faster than a table would).
    STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = None
    STRICT_STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = None
    #: Config that changes the answers (result reuse fingerprints it besides the base URL in
    #: force): none for OpenAI; ``organization``, ``project`` and ``completion_window`` choose
    #: who pays and how long to wait, not what the model answers.
    ANSWER_CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        #: The ``completion_window`` every create of this provider sends.
        self.completion_window = wire.completion_window(
            self.config,
            accepted=self.COMPLETION_WINDOWS,
            default=self.DEFAULT_COMPLETION_WINDOW,
            described=self.COMPLETION_WINDOWS_DESCRIPTION,
        )
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "unset"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, "
            f"completion_window={self.completion_window!r}, api_key={key})"
        )

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        super().check_request(request)
        problem = wire.request_problem(
            request,
            provider=self.PROVIDER_NAME,
            endpoints=self.SUPPORTED_ENDPOINTS,
            params_keys=self.PROVIDER_PARAMS_KEYS,
            refused_message_keys=self.REFUSED_MESSAGE_KEYS,
            structured_output_models=self.STRUCTURED_OUTPUT_MODELS,
            strict_structured_output_models=self.STRICT_STRUCTURED_OUTPUT_MODELS,
        )
        if problem is not None:
            raise problem

    def encode_request(self, request: BatchRequest) -> bytes:
        return wire.encode_line(request, self.PROVIDER_PARAMS_KEYS)

    def prepare_payloads(self, requests: Iterable[BatchRequest]) -> list[BatchPayload]:
        """One file per model and endpoint, split under the request, byte and (embeddings)
        input limits. No network and no API key needed."""
        # Per-call state for payload_group; thread-local so concurrent calls cannot mix.
        self._local.embedding_buckets = {}
        try:
            return super().prepare_payloads(requests)
        finally:
            self._local.embedding_buckets = None

    def payload_group(self, request: BatchRequest) -> Hashable:
        buckets: dict[str, tuple[int, int]] | None = getattr(self._local, "embedding_buckets", None)
        if request.endpoint != EMBEDDINGS or buckets is None:
            return (request.model, request.endpoint)
        # Embedding batches also cap the inputs across all requests: start a new file (a new
        # group) when the next request would cross the cap.
        count = wire.input_count(request.body_parts()[1].get("input"))
        bucket, used = buckets.get(request.model, (0, 0))
        if used + count > self.MAX_EMBEDDING_INPUTS:
            bucket, used = bucket + 1, 0
        buckets[request.model] = (bucket, used + count)
        return (request.model, request.endpoint, bucket)

    # -- the vendor half -------------------------------------------------------------------

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        """Upload the payload file (``purpose=batch``), streamed from disk. An extra uploaded
        file costs nothing, so an upload whose answer was lost is simply repeated."""
        path = payload.path
        if path is None or not path.is_file():
            raise InvalidRequestError(
                f"the payload file {path} does not exist (was the payload discarded?)",
                provider=self.PROVIDER_NAME,
            )
        file_id = self._call("upload batch input", lambda sdk: _upload(sdk, path)).get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ResponseLostError("upload: the answer names no file", provider=self.PROVIDER_NAME)
        return {"input_file_id": file_id}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """Create the batch with the configured completion window, its metadata carrying
        *idempotency_key*. Never repeated here when the answer is lost: the core finds the
        batch by its key instead."""
        batch = self._call(
            "create batch",
            lambda sdk: sdk.batches.with_raw_response.create(
                input_file_id=str(staged.get("input_file_id")),
                endpoint=cast(Any, payload.endpoint),
                completion_window=cast(Any, self.completion_window),
                metadata={wire.IDEMPOTENCY_METADATA_KEY: idempotency_key},
            ),
            idempotent=False,
        )
        return self._handle(batch)

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The batches whose metadata carries *idempotency_key*, or that were made from the
        staged file (each upload is one payload's), among the newest ``IDEMPOTENCY_SEARCH_PAGES``
        pages, stopping at the first page with one or at batches older than *since* (less a
        margin for clock skew)."""
        not_before = None if since is None else since - _CLOCK_SKEW
        after: str | None = None
        for _ in range(self.IDEMPOTENCY_SEARCH_PAGES):
            page = self._batches_page(after)
            found = wire.batches_made_for(
                page, idempotency_key=idempotency_key, input_file_id=staged.get("input_file_id")
            )
            if found:
                yield from map(self._handle, found)
                return
            after = wire.next_page(page, not_before=not_before)
            if after is None:
                return

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        return wire.batch_status(self.PROVIDER_NAME, self._batch(handle.batch_id))

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """The output file, then the error file, streamed. A batch that failed validation ran
        nothing: each request of its input file is reported with the error of its line."""
        batch = status.raw if status.raw is not None else self._batch(handle.batch_id)
        if status.state is BatchState.FAILED:
            numbered = self._input_ids(batch, handle)
            yield from wire.failed_batch_results(numbered, status, error=self.result_error)
            return
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if file_id:
                batches = self._file_line_batches(file_id, "download results")
                try:
                    yield from read_result_lines(
                        # Flattened in C: no generator resumed per line (bench_parse.py).
                        chain.from_iterable(batches),
                        lambda entry: wire.result_from_line(
                            entry, handle.batch_id, error=self.result_error
                        ),
                        provider=self.PROVIDER_NAME,
                        batch_id=handle.batch_id,
                        source=f"file {file_id}",
                    )
                finally:
                    batches.close()  # the download's connection is released now

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str]:
        """The custom_ids of the batch's input file."""
        numbered = self._input_ids(status.raw or {}, handle)
        return (custom_id for _, custom_id in numbered)

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        batch = self._call(
            "cancel batch",
            lambda sdk: sdk.batches.with_raw_response.cancel(handle.batch_id),
            idempotent=True,  # asking twice changes nothing
        )
        return wire.batch_status(self.PROVIDER_NAME, batch)

    def close(self) -> None:
        """Close the SDK client's connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- talking through the SDK -----------------------------------------------------------

    def _build_client(self) -> openai.OpenAI:
        if self.OPENAI_ACCOUNT_HEADERS:
            # None lets the SDK read OPENAI_ORG_ID / OPENAI_PROJECT_ID, as it always does.
            account: dict[str, Any] = {
                "organization": read_str(self.config, "organization"),
                "project": read_str(self.config, "project"),
            }
        else:
            account = {"default_headers": _NO_OPENAI_ACCOUNT}
            if os.environ.get("OPENAI_CUSTOM_HEADERS"):
                logging.getLogger(type(self).__module__.partition(".")[0]).warning(
                    "OPENAI_CUSTOM_HEADERS is set: the openai SDK adds those headers to every "
                    "call, including this provider's calls to %s",
                    self.PROVIDER_NAME,
                )
        return openai.OpenAI(
            api_key=self.require_api_key(),
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # retries are the core's, the same for every provider
            **account,
        )

    def _sdk(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is not None:
                return self._client
            try:
                self._client = client = self._build_client()
                return client
            except openai.OpenAIError as exc:
                problem = redact(f"{type(exc).__name__}: {exc}", self.secrets())
        raise ConfigurationError(f"{self.PROVIDER_NAME}: cannot build the openai client: {problem}")

    def _sdk_call(self, action: str, call: Callable[[], T]) -> T:
        """*call*, with an SDK exception translated by the core's classification."""
        failure: ProviderError
        try:
            return call()
        except openai.APIStatusError as exc:
            failure = error_from_response(
                provider=self.PROVIDER_NAME,
                status_code=exc.status_code,
                body=exc.body,  # the SDK has read and parsed it
                headers=exc.response.headers,
                secrets=self.secrets(),
                action=action,
            )
        except openai.APIConnectionError as exc:  # timeouts included
            failure = self._transport_failure(exc, action)
        except openai.OpenAIError as exc:
            message = redact(f"{action}: {type(exc).__name__}: {exc}", self.secrets())
            failure = ProviderPermanentError(message, provider=self.PROVIDER_NAME)
        raise failure  # outside the except blocks: no SDK exception in the chain

    def _transport_failure(self, exc: BaseException, action: str) -> ProviderError:
        secrets, timeout = self.secrets(), self.timeout
        return transport_failure(
            exc, provider=self.PROVIDER_NAME, action=action, secrets=secrets, timeout=timeout
        )

    def _call(
        self, action: str, request: Callable[[openai.OpenAI], Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """One SDK call made ``with_raw_response``, under the core's retries, its body read as
        a JSON object. Raw JSON rather than SDK models: Azure's capitalised statuses, ISO
        timestamps and null counts are read as they are."""
        client = self._sdk()

        def once() -> dict[str, Any]:
            raw = self._sdk_call(action, lambda: request(client))
            data = wire.json_object(raw.content)
            if data is None:
                # The vendor answered 2xx, so it acted; what it said is unreadable.
                raise ResponseLostError(
                    f"{action}: the response body is not a JSON object",
                    provider=self.PROVIDER_NAME,
                    status_code=raw.status_code,
                )
            return data

        return self.call(action, once, idempotent=idempotent)

    def _handle(self, batch: Mapping[str, Any]) -> BatchHandle:
        now = datetime.fromtimestamp(self.clock(), tz=timezone.utc)
        return wire.batch_handle(self.PROVIDER_NAME, batch, now=now)

    def _batch(self, batch_id: str) -> dict[str, Any]:
        return self._call(
            "retrieve batch", lambda sdk: sdk.batches.with_raw_response.retrieve(batch_id)
        )

    def _batches_page(self, after: str | None) -> dict[str, Any]:
        """One page of the newest batches (newest first), after the batch *after*."""
        size, cursor = self.IDEMPOTENCY_SEARCH_PAGE_SIZE, after or openai.omit
        return self._call(
            "list batches", lambda sdk: sdk.batches.with_raw_response.list(limit=size, after=cursor)
        )

    def _input_ids(
        self, batch: Mapping[str, Any], handle: BatchHandle
    ) -> Iterator[tuple[int, str]]:
        """(line number, custom_id) of each request in the batch's input file."""
        file_id = batch.get("input_file_id") or handle.metadata.get("input_file_id")
        if not file_id:
            return
        batches = self._file_line_batches(file_id, "download batch input")
        try:
            for number, line in enumerate(chain.from_iterable(batches), 1):
                custom_id = wire.input_custom_id(line)
                if custom_id is not None:
                    yield number, custom_id
        finally:
            batches.close()

    def _file_line_batches(self, file_id: str, action: str) -> Generator[list[bytes], None, None]:
        """The non-blank lines of a file's content, streamed, a list per chunk received. A
        download that breaks midway is read again (under the retry policy) and resumes after
        the lines already delivered: a file's content never changes."""
        delivered = 0

        def open_stream() -> Iterator[list[bytes]]:
            nonlocal delivered
            client = self._sdk()
            response = self._sdk_call(
                action, lambda: client.files.with_streaming_response.content(file_id).__enter__()
            )
            failure: ProviderError | None = None
            seen = 0
            try:
                # Chunks as they arrive: asking the SDK for a fixed size only adds a copy.
                for lines in iter_line_batches(response.iter_bytes()):
                    seen += len(lines)
                    if seen > delivered:
                        fresh = lines[len(lines) - (seen - delivered) :]
                        delivered = seen
                        yield fresh
            except Exception as exc:  # the SDK hands its HTTP library's errors through here
                failure = self._transport_failure(exc, action)
            finally:
                response.close()
            if failure is not None:
                raise failure

        return retry_iter(
            open_stream,
            policy=self.retry_policy(),
            sleep=lambda seconds: self.sleep(seconds),
            describe=f"{self.PROVIDER_NAME} {action}",
        )


class AzureOpenAIBatchProvider(OpenAIBatchProvider):
    """Batches on Azure OpenAI (Global Batch / Data Zone Batch deployments).

    Config: ``azure_endpoint`` (or ``AZURE_OPENAI_ENDPOINT``), ``api_key`` (or
    ``AZURE_OPENAI_API_KEY``), ``deployments`` (the batch deployment names: the models this
    provider serves; a request's ``model`` is the deployment name), optionally ``api_version``
    (selects the legacy ``/openai/...?api-version=`` API; without it the v1 API is used) or
    ``base_url`` (the full API root, instead of ``azure_endpoint``), ``completion_window``
    (``"24h"``, the only one Azure takes), plus the common keys.
    """

    PROVIDER_NAME = "azure-openai"
    DEFAULT_LIMITS = BatchLimits(max_requests=100_000, max_bytes=200_000_000)
    SUPPORTED_MODELS = ()
    CONFIG_KEYS = frozenset({"azure_endpoint", "api_version", "deployments", "completion_window"})
    #: A request's ``model`` is a deployment name, which means a model only on one resource
    #: (``azure_endpoint``, when ``base_url`` does not name it); the API version selects the
    #: legacy API, whose answers may differ. ``deployments`` only lists names.
    ANSWER_CONFIG_KEYS = frozenset({"azure_endpoint", "api_version"})
    API_KEY_ENV = ("AZURE_OPENAI_API_KEY",)
    BASE_URL_ENV = ()
    DEFAULT_BASE_URL = None
    SANDBOX = "batchcore_openai.testing:azure_sandbox"
    SUPPORTED_ENDPOINTS = wire.AZURE_BATCH_ENDPOINTS
    PROVIDER_PARAMS_KEYS = ("openai", "azure-openai")
    #: Azure's global batch quota is enqueued tokens per deployment; the smallest default
    #: quota of a paid (monthly credit card) subscription is 5,000,000 (gpt-4; 30M-50M for
    #: newer models). MSDN subscriptions get 90,000 and a deployment may be configured lower:
    #: set ``max_enqueued_tokens`` then.
    QUEUE_LIMIT = QueueLimit(measure="tokens", per_model=True, default=5_000_000)

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.azure_endpoint = read_str(self.config, "azure_endpoint") or env_first(
            ("AZURE_OPENAI_ENDPOINT",)
        )
        self.api_version = read_str(self.config, "api_version")
        self.deployments = frozenset(read_str_list(self.config, "deployments"))

    def supports_model(self, model: str) -> bool:
        """The configured deployment names (exactly), plus config ``models`` patterns."""
        return model in self.deployments or super().supports_model(model)

    def _build_client(self) -> openai.OpenAI:
        key = self.require_api_key()
        if not (self.base_url or self.azure_endpoint):
            raise ConfigurationError(
                "provider 'azure-openai' needs the resource endpoint: pass "
                "config={'azure_endpoint': 'https://<resource>.openai.azure.com'} or set "
                "AZURE_OPENAI_ENDPOINT"
            )
        common: dict[str, Any] = {"api_key": key, "timeout": self.timeout, "max_retries": 0}
        if self.api_version:
            root = "base_url" if self.base_url else "azure_endpoint"
            common[root] = self.base_url or self.azure_endpoint
            return openai.AzureOpenAI(api_version=self.api_version, **common)
        base_url = self.base_url or f"{str(self.azure_endpoint).rstrip('/')}/openai/v1/"
        # Azure's key header; the SDK also sends it as a Bearer token.
        return openai.OpenAI(base_url=base_url, default_headers={"api-key": key}, **common)

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "unset"
        where = self.base_url or self.azure_endpoint
        return f"{type(self).__name__}(endpoint={where!r}, api_key={key})"


def _upload(client: openai.OpenAI, path: Path) -> Any:
    # An open file, not bytes: the SDK's HTTP client streams it from disk in chunks; a retry
    # opens it again.
    with open(path, "rb") as stream:
        return client.files.with_raw_response.create(
            file=(path.name, stream, "application/jsonl"), purpose="batch"
        )
