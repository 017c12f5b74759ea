"""The OpenAI and Azure OpenAI batch providers, over the official ``openai`` SDK.

Every HTTP call goes through the SDK with its own retries off; failures are translated into
batchcore exceptions and retried by the core's ``retry_call`` under ``self.retry_policy()`` and
``self.sleep``, like every other provider. The SDK client is built on the first network call,
so ``prepare_payloads`` works offline and without a key.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast

import openai
import orjson

from batchcore.config import env_first, read_str, read_str_list
from batchcore.errors import (
    ConfigurationError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderPermanentError,
)
from batchcore.jsonl import iter_lines
from batchcore.models import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ResultStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.retry import retry_call, retry_iter
from batchcore_openai._mapping import (
    BATCH_ENDPOINTS,
    IDEMPOTENCY_METADATA_KEY,
    OPENAI_MODEL_PATTERNS,
    batch_status,
    encode_line,
    failed_batch_result,
    input_count,
    missing_result,
    read_timestamp,
    result_from_line,
)
from batchcore_openai._sdk_errors import transfer_error, translate

__all__ = ["AzureOpenAIBatchProvider", "OpenAIBatchProvider"]

log = logging.getLogger("batchcore_openai")
T = TypeVar("T")

_DOWNLOAD_CHUNK = 1 << 20


class OpenAIBatchProvider(BaseBatchProvider):
    """Batches on the OpenAI Batch API (``openai``), or any OpenAI-compatible service.

    Config: ``api_key`` (or ``OPENAI_API_KEY``), ``base_url`` (or ``OPENAI_BASE_URL``),
    ``organization``, ``project``, ``timeout``, ``max_retries``, ``models`` (extra model names
    or patterns, e.g. for Groq or a local gateway), ``max_requests_per_batch``,
    ``max_bytes_per_batch``, ``workdir``.
    """

    PROVIDER_NAME = "openai"
    # OpenAI states "200 MB"; the decimal reading is the one that can never be too big.
    DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200_000_000)
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = OPENAI_MODEL_PATTERNS
    CONFIG_KEYS = frozenset({"organization", "project"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("OPENAI_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.openai.com/v1"
    SANDBOX: ClassVar[str | None] = "batchcore_openai.testing:sandbox"

    #: Endpoints this provider batches.
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = BATCH_ENDPOINTS
    #: ``BatchRequest.provider_params`` entries merged into the body, in this order.
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("openai",)
    #: OpenAI allows at most this many embedding inputs in one batch, across its requests.
    MAX_EMBEDDING_INPUTS: ClassVar[int] = 50_000
    #: How many pages (of how many batches) of the most recent batches a submit searches for
    #: its idempotency key.
    IDEMPOTENCY_SEARCH_PAGES: ClassVar[int] = 5
    IDEMPOTENCY_SEARCH_PAGE_SIZE: ClassVar[int] = 100

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._local = threading.local()

    # -- the SDK client --------------------------------------------------------------------

    def _build_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.require_api_key(),
            base_url=self.base_url,
            # None lets the SDK read OPENAI_ORG_ID / OPENAI_PROJECT_ID, as it always does.
            organization=read_str(self.config, "organization"),
            project=read_str(self.config, "project"),
            timeout=self.timeout,
            max_retries=0,  # retries are batchcore's (retry_call), the same for every provider
        )

    def _sdk(self) -> openai.OpenAI:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    try:
                        self._client = self._build_client()
                    except (openai.OpenAIError, ValueError) as exc:
                        if isinstance(exc, ConfigurationError):
                            raise
                        raise ConfigurationError(
                            f"provider {self.PROVIDER_NAME!r}: cannot build the openai client: "
                            f"{exc}"
                        ) from exc
                client = self._client
        return client

    def close(self) -> None:
        """Close the SDK client's connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> OpenAIBatchProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, action: str, call: Callable[[openai.OpenAI], T], *, retry: bool = True) -> T:
        """Run one SDK call; SDK exceptions become batchcore ones, transient ones are retried."""
        client = self._sdk()

        def once() -> T:
            try:
                return call(client)
            except openai.OpenAIError as exc:
                raise translate(
                    exc, provider=self.PROVIDER_NAME, secrets=self.secrets(), action=action
                ) from exc

        if not retry:
            return once()
        return retry_call(
            once, policy=self.retry_policy(), sleep=self.sleep,
            describe=f"{self.PROVIDER_NAME} {action}",
        )

    def _json(
        self, action: str, call: Callable[[openai.OpenAI], Any], *, retry: bool = True
    ) -> dict[str, Any]:
        """An SDK call made ``with_raw_response``, its body read as a JSON object.

        Raw JSON rather than SDK models: Azure's capitalised statuses, ISO timestamps and null
        counts are read as they are, and an unreadable body is retried like a reset.
        """

        def parsed(client: openai.OpenAI) -> dict[str, Any]:
            return _json_object(call(client).content, action, self.PROVIDER_NAME)

        return self._call(action, parsed, retry=retry)

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        super().check_request(request)
        if request.endpoint not in self.SUPPORTED_ENDPOINTS:
            raise InvalidRequestError(
                f"request {request.custom_id!r}: provider {self.PROVIDER_NAME!r} does not batch "
                f"{request.endpoint}; use one of {', '.join(sorted(self.SUPPORTED_ENDPOINTS))}",
                custom_id=request.custom_id, field="endpoint", provider=self.PROVIDER_NAME,
            )
        if request.params.get("stream"):
            raise InvalidRequestError(
                f"request {request.custom_id!r}: batches cannot stream; drop params['stream']",
                custom_id=request.custom_id, field="params.stream", provider=self.PROVIDER_NAME,
            )
        for key in self.PROVIDER_PARAMS_KEYS if request.provider_params else ():
            extra = request.provider_params.get(key)
            if extra is None:
                continue
            if not isinstance(extra, Mapping):
                raise InvalidRequestError(
                    f"request {request.custom_id!r}: provider_params[{key!r}] must be an object",
                    custom_id=request.custom_id, field=f"provider_params.{key}",
                    provider=self.PROVIDER_NAME,
                )
            clash = sorted({"model", "messages"} & set(extra))
            if clash:
                raise InvalidRequestError(
                    f"request {request.custom_id!r}: provider_params[{key!r}] must not set "
                    f"{', '.join(clash)}; use the request's own fields",
                    custom_id=request.custom_id, field=f"provider_params.{key}",
                    provider=self.PROVIDER_NAME,
                )
        if request.endpoint == EMBEDDINGS:
            inputs = input_count(request.params.get("input"))
            if inputs > self.MAX_EMBEDDING_INPUTS:
                raise InvalidRequestError(
                    f"request {request.custom_id!r} has {inputs} embedding inputs; a batch "
                    f"holds at most {self.MAX_EMBEDDING_INPUTS}",
                    custom_id=request.custom_id, field="params.input",
                    provider=self.PROVIDER_NAME,
                )

    def encode_request(self, request: BatchRequest) -> bytes:
        if not request.provider_params:
            return encode_line(request)
        extra: dict[str, Any] = {}
        for key in self.PROVIDER_PARAMS_KEYS:
            extra.update(request.provider_params.get(key) or {})
        return encode_line(request, extra)

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
        group = (request.model, request.endpoint)
        buckets: dict[str, tuple[int, int]] | None = getattr(
            self._local, "embedding_buckets", None
        )
        if request.endpoint != EMBEDDINGS or buckets is None:
            return group
        # Embedding batches also cap the inputs across all requests: start a new file (a new
        # group) when the next request would cross the cap.
        count = input_count(request.params.get("input"))
        bucket, used = buckets.get(request.model, (0, 0))
        if used + count > self.MAX_EMBEDDING_INPUTS:
            bucket, used = bucket + 1, 0
        buckets[request.model] = (bucket, used + count)
        return (*group, bucket)

    # -- submit ----------------------------------------------------------------------------

    def submit(self, payload: BatchPayload) -> BatchHandle:
        """Upload the payload file (streamed from disk) and create its batch.

        The batch's metadata carries an idempotency key. With ``payload.idempotency_key`` set, a
        batch already created for it (by an earlier submit whose answer was lost) is found among
        recent batches and returned instead of creating a second one; a create that failed in
        transit is checked the same way before it is retried.
        """
        path = self._payload_path(payload)
        key = payload.idempotency_key or uuid.uuid4().hex
        if payload.idempotency_key:
            found = self._find_batch(key)
            if found is not None:
                log.info("batch %s already exists for idempotency key %s", found.get("id"), key)
                return self._handle(found, key)
        uploaded = self._json("upload batch input", lambda client: _upload(client, path))
        file_id = uploaded.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ProviderConnectionError(
                "upload batch input: the response has no file id", provider=self.PROVIDER_NAME
            )
        return self._handle(self._create_batch(file_id, payload.endpoint, key), key)

    def _payload_path(self, payload: BatchPayload) -> Path:
        if not isinstance(payload, BatchPayload):
            raise InvalidRequestError(
                f"submit takes a BatchPayload from prepare_payloads, got {type(payload).__name__}",
                provider=self.PROVIDER_NAME,
            )
        if payload.provider != self.PROVIDER_NAME:
            raise InvalidRequestError(
                f"this payload was prepared for provider {payload.provider!r}, not "
                f"{self.PROVIDER_NAME!r}",
                provider=self.PROVIDER_NAME,
            )
        if payload.path is None or not payload.path.is_file():
            raise InvalidRequestError(
                f"the payload file {payload.path} does not exist (was the payload discarded?)",
                provider=self.PROVIDER_NAME,
            )
        return payload.path

    def _create_batch(self, file_id: str, endpoint: str, key: str) -> dict[str, Any]:
        attempts = 0

        def create(client: openai.OpenAI) -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # The failed attempt may have created the batch before its answer was lost.
                found = self._find_batch(key, retry=False)
                if found is not None:
                    return found
            raw = client.batches.with_raw_response.create(
                input_file_id=file_id,
                endpoint=cast(Any, endpoint),
                completion_window="24h",
                metadata={IDEMPOTENCY_METADATA_KEY: key},
            )
            return _json_object(raw.content, "create batch", self.PROVIDER_NAME)

        return self._call("create batch", create)

    def _find_batch(self, key: str, *, retry: bool = True) -> dict[str, Any] | None:
        """The most recent batch whose metadata carries *key*, searching a bounded number of
        pages of the newest batches."""
        after: str | None = None
        for _ in range(self.IDEMPOTENCY_SEARCH_PAGES):
            query: dict[str, Any] = {"limit": self.IDEMPOTENCY_SEARCH_PAGE_SIZE}
            if after is not None:
                query["after"] = after

            def list_page(client: openai.OpenAI, query: dict[str, Any] = query) -> Any:
                return client.batches.with_raw_response.list(**query)

            page = self._json("list batches", list_page, retry=retry)
            data = page.get("data")
            if not isinstance(data, list) or not data:
                return None
            for batch in data:
                metadata = batch.get("metadata") if isinstance(batch, Mapping) else None
                if isinstance(metadata, Mapping) and metadata.get(IDEMPOTENCY_METADATA_KEY) == key:
                    return dict(batch)
            last = page.get("last_id") or (data[-1].get("id") if isinstance(data[-1], Mapping)
                                           else None)
            if not page.get("has_more") or not isinstance(last, str):
                return None
            after = last
        return None

    def _handle(self, batch: Mapping[str, Any], key: str) -> BatchHandle:
        batch_id = batch.get("id")
        if not isinstance(batch_id, str) or not batch_id:
            raise ProviderConnectionError(
                "create batch: the response has no batch id", provider=self.PROVIDER_NAME
            )
        created = read_timestamp(batch.get("created_at"))
        metadata = {
            "input_file_id": batch.get("input_file_id"),
            "endpoint": batch.get("endpoint"),
            "idempotency_key": key,
        }
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=batch_id,
            created_at=created or datetime.fromtimestamp(self.clock(), tz=timezone.utc),
            metadata={k: v for k, v in metadata.items() if v is not None},
        )

    # -- status and cancel -----------------------------------------------------------------

    def _batch_id(self, handle: BatchHandle) -> str:
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
        return handle.batch_id

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._json(
            "retrieve batch", lambda client: client.batches.with_raw_response.retrieve(batch_id)
        )

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        return batch_status(self.PROVIDER_NAME, self._retrieve(self._batch_id(handle)))

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        """Ask for cancellation (the batch goes through ``cancelling``). Cancelling a batch that
        has already ended returns its final status."""
        batch_id = self._batch_id(handle)
        try:
            batch = self._json(
                "cancel batch", lambda client: client.batches.with_raw_response.cancel(batch_id)
            )
        except ProviderError as error:
            if error.status_code not in (400, 409):
                raise
            try:
                status = batch_status(self.PROVIDER_NAME, self._retrieve(batch_id))
            except ProviderError:
                raise error from error.__cause__
            if not status.is_terminal:
                raise
            return status
        return batch_status(self.PROVIDER_NAME, batch)

    # -- results ---------------------------------------------------------------------------

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        """Stream the results of an ended batch: the output file, then the error file.

        A request the files do not mention (an expired or cancelled batch, or a line the vendor
        lost) is looked up in the input file and reported as expired, cancelled or missing; a
        batch that failed validation reports each request with its line's error. Every
        custom_id comes back exactly once. Raises :class:`InvalidRequestError` while the batch
        has not ended.
        """
        batch_id = self._batch_id(handle)
        batch = self._retrieve(batch_id)
        status = batch_status(self.PROVIDER_NAME, batch)
        if not status.is_terminal:
            raise InvalidRequestError(
                f"batch {batch_id!r} is {status.raw_status}: results can be fetched once it has "
                "ended (poll_status until is_terminal)",
                provider=self.PROVIDER_NAME,
            )
        input_file_id = batch.get("input_file_id") or handle.metadata.get("input_file_id")
        seen: set[str] = set()
        if status.state is BatchState.FAILED:
            yield from self._failed_results(input_file_id, status, seen)
            return
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not isinstance(file_id, str) or not file_id:
                continue
            for _, line in self._file_lines(file_id, "download results"):
                result = _result(line, batch_id)
                if result is None or result.custom_id in seen:
                    continue
                seen.add(result.custom_id)
                yield result
        if status.total is not None and len(seen) >= status.total:
            return
        # The files do not account for every request: the input file names the rest.
        if status.state is BatchState.EXPIRED:
            def rest(cid: str) -> BatchResult:
                return BatchResult.unfinished(cid, ResultStatus.EXPIRED, batch_id=batch_id)
        elif status.state is BatchState.CANCELLED:
            def rest(cid: str) -> BatchResult:
                return BatchResult.unfinished(cid, ResultStatus.CANCELLED, batch_id=batch_id)
        else:
            def rest(cid: str) -> BatchResult:
                return missing_result(cid, batch_id)
        try:
            for _, custom_id in self._input_custom_ids(input_file_id):
                if custom_id not in seen:
                    seen.add(custom_id)
                    yield rest(custom_id)
        except ProviderPermanentError as error:
            # Some accounts may not be allowed to read input files back. Every finished result
            # has been yielded; the caller (the runner) knows which requests it sent and marks
            # the rest itself, so stopping here loses nothing that was paid for.
            log.warning("%s: batch %s: cannot list its unfinished requests (%s); %d results "
                        "returned", self.PROVIDER_NAME, batch_id, error, len(seen))

    def _failed_results(
        self, input_file_id: Any, status: BatchStatus, seen: set[str]
    ) -> Iterator[BatchResult]:
        by_line = {error.line: error for error in status.errors if error.line is not None}
        for number, custom_id in self._input_custom_ids(input_file_id):
            if custom_id not in seen:
                seen.add(custom_id)
                yield failed_batch_result(
                    custom_id, by_line.get(number), status.errors, status.batch_id
                )

    def _input_custom_ids(self, file_id: Any) -> Iterator[tuple[int, str]]:
        """(line number, custom_id) of each request in the batch's input file."""
        if not isinstance(file_id, str) or not file_id:
            raise ProviderConnectionError(
                "the batch names no input file, so its unfinished requests cannot be listed",
                provider=self.PROVIDER_NAME,
            )
        for number, line in self._file_lines(file_id, "download batch input"):
            try:
                custom_id = orjson.loads(line).get("custom_id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(custom_id, str) and custom_id:
                yield number, custom_id

    def _file_lines(self, file_id: str, action: str) -> Iterator[tuple[int, bytes]]:
        """(line number, line) for the non-blank lines of a file's content, streamed. A transfer
        that breaks midway starts over from line 1 (under the retry policy); callers skip the
        custom_ids they have already seen."""

        def open_stream() -> Iterator[tuple[int, bytes]]:
            response = self._call(
                action,
                lambda client: client.files.with_streaming_response.content(file_id).__enter__(),
            )
            try:
                yield from enumerate(iter_lines(self._chunks(response, action)), start=1)
            finally:
                response.close()

        return retry_iter(open_stream, policy=self.retry_policy(),
                          sleep=lambda seconds: self.sleep(seconds),
                          describe=f"{self.PROVIDER_NAME} {action}")

    def _chunks(self, response: Any, action: str) -> Iterator[bytes]:
        chunks = response.iter_bytes(_DOWNLOAD_CHUNK)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:  # the SDK hands its HTTP library's errors through here
                raise transfer_error(
                    exc, provider=self.PROVIDER_NAME, secrets=self.secrets(), action=action
                ) from exc
            yield chunk


class AzureOpenAIBatchProvider(OpenAIBatchProvider):
    """Batches on Azure OpenAI (Global Batch / Data Zone Batch deployments).

    Config: ``azure_endpoint`` (or ``AZURE_OPENAI_ENDPOINT``), ``api_key`` (or
    ``AZURE_OPENAI_API_KEY``), ``deployments`` (the batch deployment names: the models this
    provider serves; a request's ``model`` is the deployment name), optionally ``api_version``
    (selects the legacy ``/openai/...?api-version=`` API; without it the v1 API is used) or
    ``base_url`` (the full API root, instead of ``azure_endpoint``), plus the common keys.
    """

    PROVIDER_NAME = "azure-openai"
    DEFAULT_LIMITS = BatchLimits(max_requests=100_000, max_bytes=200_000_000)
    SUPPORTED_MODELS = ()
    CONFIG_KEYS = frozenset({"azure_endpoint", "api_version", "deployments"})
    API_KEY_ENV = ("AZURE_OPENAI_API_KEY",)
    BASE_URL_ENV = ()
    DEFAULT_BASE_URL = None
    SANDBOX = "batchcore_openai.testing:azure_sandbox"
    SUPPORTED_ENDPOINTS = frozenset({CHAT_COMPLETIONS, RESPONSES})
    PROVIDER_PARAMS_KEYS = ("openai", "azure-openai")

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
        if self.api_version:
            if self.base_url:
                return openai.AzureOpenAI(
                    base_url=self.base_url, api_version=self.api_version, api_key=key,
                    timeout=self.timeout, max_retries=0,
                )
            return openai.AzureOpenAI(
                azure_endpoint=cast(str, self.azure_endpoint), api_version=self.api_version,
                api_key=key, timeout=self.timeout, max_retries=0,
            )
        base_url = self.base_url or f"{cast(str, self.azure_endpoint).rstrip('/')}/openai/v1/"
        return openai.OpenAI(
            base_url=base_url,
            api_key=key,
            default_headers={"api-key": key},  # Azure's key header; the SDK also sends Bearer
            timeout=self.timeout,
            max_retries=0,
        )

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "unset"
        where = self.base_url or self.azure_endpoint
        return f"{type(self).__name__}(endpoint={where!r}, api_key={key})"


def _upload(client: openai.OpenAI, path: Path) -> Any:
    # An open file, not bytes: the SDK's HTTP client streams it from disk in chunks (and
    # rewinds it when a retry sends it again).
    with open(path, "rb") as stream:
        return client.files.with_raw_response.create(
            file=(path.name, stream, "application/jsonl"), purpose="batch"
        )


def _json_object(content: bytes, action: str, provider: str) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ProviderConnectionError(
            f"{action}: the response body is not a JSON object", provider=provider
        )
    return data


def _result(line: bytes, batch_id: str) -> BatchResult | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.warning("batch %s: skipping a result line that is not JSON", batch_id)
        return None
    if not isinstance(obj, dict):
        return None
    result = result_from_line(obj, batch_id)
    if result is None:
        log.warning("batch %s: skipping a result line without a custom_id", batch_id)
    return result
