"""The OpenAI and Azure OpenAI batch providers: the vendor half, over the official ``openai`` SDK.

The core (:class:`BaseBatchProvider`) keeps the money rules: ownership checks, reconciling a
create whose answer was lost, exactly-once results, cancelling after the end. This module makes
the vendor's calls, each through the SDK with the SDK's own retries off and retried by the core
(``self.call``). An SDK exception is classified by the core and the translation raised after
the ``except`` block: the SDK's exception holds the request, Authorization header included, so
it must not ride along as ``__cause__`` or ``__context__``.

The SDK client is built on the first network call, so ``prepare_payloads`` works offline and
without a key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import openai
import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
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
    ProviderError,
    ProviderPermanentError,
    ResponseLostError,
    env_first,
    error_from_response,
    iter_lines,
    read_str,
    read_str_list,
    redact,
    retry_iter,
    transport_failure,
)
from batchcore_openai._mapping import (
    BATCH_ENDPOINTS,
    IDEMPOTENCY_METADATA_KEY,
    OPENAI_MODEL_PATTERNS,
    RETRYABLE_RESULT_CODES,
    batch_status,
    encode_line,
    failed_batch_result,
    input_count,
    read_timestamp,
    result_from_line,
)

__all__ = ["AzureOpenAIBatchProvider", "OpenAIBatchProvider"]

log = logging.getLogger("batchcore_openai")
T = TypeVar("T")

_DOWNLOAD_CHUNK = 1 << 20
#: How much older than the attempt a batch may look (clocks differ) and still be its batch.
_CLOCK_SKEW = timedelta(minutes=10)


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
    # The create puts the idempotency key in the batch's metadata, which the list shows.
    IDEMPOTENT_SUBMIT = True
    RETRYABLE_RESULT_CODES = RETRYABLE_RESULT_CODES

    #: Endpoints this provider batches.
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = BATCH_ENDPOINTS
    #: ``BatchRequest.provider_params`` entries merged into the body, in this order.
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("openai",)
    #: OpenAI allows at most this many embedding inputs in one batch, across its requests.
    MAX_EMBEDDING_INPUTS: ClassVar[int] = 50_000
    #: How many pages (of how many batches) of the newest batches are searched for a key.
    IDEMPOTENCY_SEARCH_PAGES: ClassVar[int] = 5
    IDEMPOTENCY_SEARCH_PAGE_SIZE: ClassVar[int] = 100

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._local = threading.local()

    # -- preparing -------------------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        super().check_request(request)
        cid = request.custom_id

        def refuse(message: str, field: str) -> InvalidRequestError:
            return InvalidRequestError(
                f"request {cid!r}: {message}", custom_id=cid, field=field, provider=self.PROVIDER_NAME
            )

        if request.endpoint not in self.SUPPORTED_ENDPOINTS:
            raise refuse(
                f"provider {self.PROVIDER_NAME!r} does not batch {request.endpoint}; use one of "
                + ", ".join(sorted(self.SUPPORTED_ENDPOINTS)),
                "endpoint",
            )
        if request.params.get("stream"):
            raise refuse("batches cannot stream; drop params['stream']", "params.stream")
        for key in self.PROVIDER_PARAMS_KEYS if request.provider_params else ():
            extra = request.provider_params.get(key)
            clash = sorted({"model", "messages"} & set(extra or ()))
            if clash:
                raise refuse(
                    f"provider_params[{key!r}] must not set {', '.join(clash)}; use the "
                    "request's own fields",
                    f"provider_params.{key}",
                )
        if request.endpoint == EMBEDDINGS:
            inputs = input_count(request.params.get("input"))
            if inputs > self.MAX_EMBEDDING_INPUTS:
                raise refuse(
                    f"{inputs} embedding inputs; a batch holds at most "
                    f"{self.MAX_EMBEDDING_INPUTS}",
                    "params.input",
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
        uploaded = self._call("upload batch input", lambda sdk: _upload(sdk, path))
        return {"input_file_id": self._field(uploaded, "id", "upload batch input")}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """Create the batch, its metadata carrying *idempotency_key*. Never repeated here when
        the answer is lost: the core finds the batch by its key instead."""
        file_id = staged.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequestError(
                "the staged payload names no input_file_id", provider=self.PROVIDER_NAME
            )
        batch = self._call(
            "create batch",
            lambda sdk: sdk.batches.with_raw_response.create(
                input_file_id=file_id,
                endpoint=cast(Any, payload.endpoint),
                completion_window="24h",
                metadata={IDEMPOTENCY_METADATA_KEY: idempotency_key},
            ),
            idempotent=False,
        )
        return self._handle(batch, "create batch")

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The batches whose metadata carries *idempotency_key*, among the newest
        ``IDEMPOTENCY_SEARCH_PAGES`` pages (newest first), stopping at the first page with one or
        at batches older than *since* (less a margin for clock skew)."""
        oldest = None if since is None else since - _CLOCK_SKEW
        after: str | None = None
        size = self.IDEMPOTENCY_SEARCH_PAGE_SIZE
        for _ in range(self.IDEMPOTENCY_SEARCH_PAGES):
            cursor = after or openai.omit
            page = self._call(
                "list batches",
                lambda sdk: sdk.batches.with_raw_response.list(limit=size, after=cursor),
            )
            data = page.get("data")
            batches = [b for b in data if isinstance(b, Mapping)] if isinstance(data, list) else []
            found = [b for b in batches if _idempotency_key(b) == idempotency_key]
            if found:
                yield from (self._handle(batch, "list batches") for batch in found)
                return
            last = batches[-1] if batches else None
            if last is None or not page.get("has_more"):
                return
            created = read_timestamp(last.get("created_at"))
            if oldest is not None and created is not None and created < oldest:
                return
            after = str(page.get("last_id") or last.get("id"))

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        return batch_status(self.PROVIDER_NAME, self._batch(handle.batch_id))

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """The output file, then the error file, streamed. A batch that failed validation ran
        nothing: each request of its input file is reported with the error of its line."""
        batch = status.raw if status.raw is not None else self._batch(handle.batch_id)
        if status.state is BatchState.FAILED:
            by_line = {error.line: error for error in status.errors if error.line is not None}
            for number, custom_id in self._input_ids(batch, handle):
                yield failed_batch_result(
                    custom_id, by_line.get(number), status, error=self.result_error
                )
            return
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if isinstance(file_id, str) and file_id:
                for _, line in self._file_lines(file_id, "download results"):
                    result = self._result(line, handle.batch_id)
                    if result is not None:
                        yield result

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str]:
        """The custom_ids of the batch's input file."""
        batch = status.raw if status.raw is not None else {}
        return (custom_id for _, custom_id in self._input_ids(batch, handle))

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        batch = self._call(
            "cancel batch",
            lambda sdk: sdk.batches.with_raw_response.cancel(handle.batch_id),
            idempotent=True,  # asking twice changes nothing
        )
        return batch_status(self.PROVIDER_NAME, batch)

    def close(self) -> None:
        """Close the SDK client's connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- talking through the SDK -----------------------------------------------------------

    def _build_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.require_api_key(),
            base_url=self.base_url,
            # None lets the SDK read OPENAI_ORG_ID / OPENAI_PROJECT_ID, as it always does.
            organization=read_str(self.config, "organization"),
            project=read_str(self.config, "project"),
            timeout=self.timeout,
            max_retries=0,  # retries are the core's, the same for every provider
        )

    def _sdk(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is not None:
                return self._client
            problem = ""
            try:
                self._client = client = self._build_client()
                return client
            except openai.OpenAIError as exc:
                problem = redact(f"{type(exc).__name__}: {exc}", self.secrets())
        raise ConfigurationError(
            f"provider {self.PROVIDER_NAME!r}: cannot build the openai client: {problem}"
        )

    def _sdk_call(self, action: str, call: Callable[[], T]) -> T:
        """*call*, with an SDK exception translated by the core's classification."""
        failure: ProviderError
        try:
            return call()
        except openai.APIStatusError as exc:
            try:
                body: object = exc.response.content
            except Exception:  # a streamed error body the SDK did not read
                body = exc.body
            failure = error_from_response(
                provider=self.PROVIDER_NAME,
                status_code=exc.status_code,
                body=body,
                headers=exc.response.headers,
                secrets=self.secrets(),
                action=action,
            )
        except openai.APIConnectionError as exc:  # timeouts included
            failure = self._transport_failure(exc, action)
        except openai.OpenAIError as exc:
            failure = ProviderPermanentError(
                redact(f"{action}: {type(exc).__name__}: {exc}", self.secrets()),
                provider=self.PROVIDER_NAME,
            )
        raise failure  # outside the except blocks: no SDK exception in the chain

    def _transport_failure(self, exc: BaseException, action: str) -> ProviderError:
        return transport_failure(
            exc,
            provider=self.PROVIDER_NAME,
            action=action,
            secrets=self.secrets(),
            timeout=self.timeout,
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
            try:
                data = orjson.loads(raw.content)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):
                # The vendor answered 2xx, so it acted; what it said is unreadable.
                raise ResponseLostError(
                    f"{action}: the response body is not a JSON object",
                    provider=self.PROVIDER_NAME,
                    status_code=raw.status_code,
                )
            return data

        return self.call(action, once, idempotent=idempotent)

    def _field(self, obj: Mapping[str, Any], name: str, action: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            raise ResponseLostError(
                f"{action}: the answer has no {name}", provider=self.PROVIDER_NAME
            )
        return value

    def _handle(self, batch: Mapping[str, Any], action: str) -> BatchHandle:
        metadata = {
            "input_file_id": batch.get("input_file_id"),
            "endpoint": batch.get("endpoint"),
            "idempotency_key": _idempotency_key(batch),
        }
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=self._field(batch, "id", action),
            created_at=read_timestamp(batch.get("created_at"))
            or datetime.fromtimestamp(self.clock(), tz=timezone.utc),
            metadata={key: value for key, value in metadata.items() if value is not None},
        )

    def _batch(self, batch_id: str) -> dict[str, Any]:
        return self._call(
            "retrieve batch", lambda sdk: sdk.batches.with_raw_response.retrieve(batch_id)
        )

    def _result(self, line: bytes, batch_id: str) -> BatchResult | None:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        result = (
            result_from_line(obj, batch_id, error=self.result_error)
            if isinstance(obj, dict)
            else None
        )
        if result is None:
            log.warning("batch %s: skipping a result line without a custom_id", batch_id)
        return result

    def _input_ids(
        self, batch: Mapping[str, Any], handle: BatchHandle
    ) -> Iterator[tuple[int, str]]:
        """(line number, custom_id) of each request in the batch's input file."""
        file_id = batch.get("input_file_id") or handle.metadata.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            log.warning("batch %s names no input file", handle.batch_id)
            return
        for number, line in self._file_lines(file_id, "download batch input"):
            try:
                custom_id = orjson.loads(line).get("custom_id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(custom_id, str) and custom_id:
                yield number, custom_id

    def _file_lines(self, file_id: str, action: str) -> Iterator[tuple[int, bytes]]:
        """(line number, line) for the non-blank lines of a file's content, streamed. A
        download that breaks midway is read again (under the retry policy) and resumes after
        the lines already delivered: a file's content never changes."""
        delivered = 0

        def open_stream() -> Iterator[tuple[int, bytes]]:
            nonlocal delivered
            client = self._sdk()
            response = self._sdk_call(
                action, lambda: client.files.with_streaming_response.content(file_id).__enter__()
            )
            try:
                for number, line in enumerate(iter_lines(self._chunks(response, action)), 1):
                    if number > delivered:
                        delivered = number
                        yield number, line
            finally:
                response.close()

        return retry_iter(
            open_stream,
            policy=self.retry_policy(),
            sleep=lambda seconds: self.sleep(seconds),
            describe=f"{self.PROVIDER_NAME} {action}",
        )

    def _chunks(self, response: Any, action: str) -> Iterator[bytes]:
        chunks = response.iter_bytes(_DOWNLOAD_CHUNK)
        while True:
            failure: ProviderError | None = None
            try:
                chunk: bytes = next(chunks)
            except StopIteration:
                return
            except Exception as exc:  # the SDK hands its HTTP library's errors through here
                failure = self._transport_failure(exc, action)
            if failure is not None:
                raise failure
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
        common: dict[str, Any] = {"api_key": key, "timeout": self.timeout, "max_retries": 0}
        if self.api_version and self.base_url:
            return openai.AzureOpenAI(
                base_url=self.base_url, api_version=self.api_version, **common
            )
        if self.api_version:
            return openai.AzureOpenAI(
                azure_endpoint=cast(str, self.azure_endpoint), api_version=self.api_version, **common
            )
        base_url = self.base_url or f"{cast(str, self.azure_endpoint).rstrip('/')}/openai/v1/"
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


def _idempotency_key(batch: Mapping[str, Any]) -> Any:
    metadata = batch.get("metadata")
    return metadata.get(IDEMPOTENCY_METADATA_KEY) if isinstance(metadata, Mapping) else None
