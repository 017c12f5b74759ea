"""GeminiBatchProvider: batchcore's ``gemini`` provider, over the official ``google-genai`` SDK.

Only the vendor half lives here, one small method per API call. The core's
``submit``/``poll_status``/``fetch_results``/``cancel`` keep the money rules: ownership checks,
reconciling a create whose answer was lost, exactly-once results, cancel after the end. The wire
formats are :mod:`batchcore_gemini._mapping`'s.

Every call goes through the SDK (it owns authentication, the base URL, the API version and the
REST paths' prefixes, and would own Vertex AI's) with its own retries off, retried by the core
(``self.call``). An SDK exception is classified by the core and the translation raised after the
``except`` block: the SDK's exception holds the HTTP request, API key header included, so it must
not ride along as ``__cause__`` or ``__context__``.

The SDK's typed batch objects leave out what a batch runner needs (``batchStats``, the batch's
``error``, response fields newer than the SDK), so batch calls read the API's JSON through the
SDK's API client (``Client._api_client.request``, the call every SDK module makes); files go
through the public ``files.upload`` (the resumable protocol) and ``files.download``.

The SDK client is built on the first network call, so ``prepare_payloads`` works offline and
without a key.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar
from urllib.parse import urlencode

import attrs
import orjson
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from batchcore.plugin import (
    AuthenticationError,
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
    NotFoundError,
    ProviderError,
    ProviderPermanentError,
    QueueFullError,
    QueueLimit,
    RequestExtensions,
    RequestTooLargeError,
    ResponseLostError,
    error_from_response,
    iter_lines,
    read_result_lines,
    read_str,
    redact,
    transport_failure,
)
from batchcore_gemini import _mapping as wire

__all__ = ["GeminiBatchProvider"]

T = TypeVar("T")
log = logging.getLogger("batchcore_gemini")

_CHUNK = 1 << 20
#: The action of a batch create, in error messages (and where a quota refusal means a full queue).
_CREATE = "create batch"
_BATCH_NAME = re.compile(r"^batches/[A-Za-z0-9_.~-]+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP libraries' transport failures the SDK lets through (httpx2 since SDK 3, httpx
    before; requests and google-auth on Vertex AI's mTLS path), whichever are installed."""
    found: list[type[BaseException]] = []
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "RequestException"),
        ("google.auth.exceptions", "TransportError"),
    ):
        try:
            imported = __import__(module, fromlist=[name])
        except ImportError:
            continue
        error = getattr(imported, name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


class GeminiBatchProvider(BaseBatchProvider):
    """The Gemini API's batch mode (``models/{model}:batchGenerateContent``).

    Config (besides the common keys ``api_key``, ``base_url``, ``timeout``, ``max_retries``,
    ``max_requests_per_batch``, ``max_bytes_per_batch``, ``models``, ``workdir``):

    * ``input_mode`` - ``auto`` (default: inline requests when the create body fits in 20 MB,
      else an uploaded JSONL file), ``inline`` or ``file``;
    * ``api_version`` - the API version the SDK calls (default: the SDK's).
    * ``max_enqueued_tokens`` - the project's queue of enqueued tokens per model
      (``QUEUE_LIMIT``; default 2,000,000).

    ``api_key`` falls back to ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY`` (the SDK's order);
    ``base_url`` to ``GOOGLE_GEMINI_BASE_URL``, then the API's root, as for the SDK's
    ``http_options.base_url``.

    The idempotency key of a payload is the batch's ``displayName``, which the list of batches
    shows: a create whose answer was lost is found by it (``IDEMPOTENT_SUBMIT``).
    """

    PROVIDER_NAME: ClassVar[str] = "gemini"
    #: Inline requests: the create body must stay under 20 MB (read as 20,000,000 bytes, the
    #: smaller reading). No request count is documented; the bytes bind first.
    INLINE_LIMITS: ClassVar[BatchLimits] = BatchLimits(max_requests=1_000_000, max_bytes=20_000_000)
    #: An uploaded JSONL file: at most 2 GB (read as 2,000,000,000 bytes).
    FILE_LIMITS: ClassVar[BatchLimits] = BatchLimits(
        max_requests=1_000_000, max_bytes=2_000_000_000
    )
    DEFAULT_LIMITS: ClassVar[BatchLimits] = FILE_LIMITS
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = ("gemini-*", "models/gemini-*")
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"input_mode", "api_version"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("GOOGLE_GEMINI_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://generativelanguage.googleapis.com/"
    SANDBOX: ClassVar[str | None] = "batchcore_gemini.testing:sandbox"
    # The create puts the idempotency key in the batch's displayName, which the list shows.
    IDEMPOTENT_SUBMIT: ClassVar[bool] = True
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = RequestExtensions(params=frozenset({"top_k"}))
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = (
        ModelRule(
            models=("*",),
            param="n",
            minimum=1,
            maximum=8,
            reason="takes n (Gemini's candidateCount) from 1 to 8",
        ),
    )
    #: "Batch enqueued tokens" per model (the rate limits page, Batch API): at Tier 1, the
    #: lowest paid tier, 3,000,000 for Gemini 2.5 Flash and 3 Flash Preview, 5,000,000 for 2.5
    #: Pro, 10,000,000 for the Flash-Lite models, 2,000,000 for Gemini 3 Pro Image Preview:
    #: the default is that smallest one. A create over it is refused with a 429 (see
    #: create_batch), so no batch fails for capacity: ``CAPACITY_ERROR_CODES`` stays empty.
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = QueueLimit(
        measure="tokens", per_model=True, default=2_000_000
    )
    #: Batches per page when listing, and how many pages are searched for a displayName.
    LIST_PAGE_SIZE: ClassVar[int] = 100
    IDEMPOTENCY_SEARCH_PAGES: ClassVar[int] = 20
    INPUT_MODES: ClassVar[tuple[str, ...]] = ("auto", "inline", "file")

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        mode = read_str(self.config, "input_mode") or "auto"
        if mode not in self.INPUT_MODES:
            raise ConfigurationError(
                f"config 'input_mode' must be one of {', '.join(self.INPUT_MODES)}, got {mode!r}"
            )
        self.input_mode = mode
        self.api_version = read_str(self.config, "api_version")
        base = self.INLINE_LIMITS if mode == "inline" else self.FILE_LIMITS
        self.limits = base.with_overrides(self.config)
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()

    # -- preparing (offline) -----------------------------------------------------------------

    def encode_request(self, request: BatchRequest) -> bytes:
        """``{"key": custom_id, "request": <GenerateContentRequest>}`` as compact JSON: a line
        of the input file, and (re-wrapped) an inline request."""
        return wire.encode_line(request.custom_id, wire.generate_content_request(request))

    def payload_group(self, request: BatchRequest) -> Hashable:
        # One model per batch, however it is spelled (models/gemini-x is gemini-x).
        return (wire.model_name(request.model), request.endpoint)

    def payload_model(self, request: BatchRequest) -> str | None:
        return wire.model_name(request.model)

    # -- the vendor half ---------------------------------------------------------------------

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        """Nothing for a payload sent inline; else upload its file (the resumable protocol,
        streamed from disk) and return ``{"file_name": "files/..."}``. An extra uploaded file
        costs nothing (the API deletes it after 48 hours), so an upload whose answer was lost
        is simply repeated."""
        path = self._payload_file(payload)
        if self._sends_inline(payload, path):
            return {}
        label = payload.idempotency_key or path.name
        uploaded = self._sdk_call(
            "upload batch input",
            lambda client: client.files.upload(
                file=str(path), config={"mime_type": "jsonl", "display_name": label}
            ),
        )
        name = uploaded.name
        if not isinstance(name, str) or not name:
            raise ResponseLostError(
                "upload batch input: the answer names no file", provider=self.PROVIDER_NAME
            )
        return {"file_name": name}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """One create, the batch's ``displayName`` carrying *idempotency_key*: from the staged
        file, or with the requests inline. Never repeated here when the answer is lost: the core
        finds the batch by its key instead. A 429 ``RESOURCE_EXHAUSTED`` that speaks of the
        model's enqueued tokens raises :class:`QueueFullError`."""
        file_name = staged.get("file_name")
        if isinstance(file_name, str) and file_name:
            input_config: dict[str, Any] = {"fileName": file_name}
        else:
            input_config = {"requests": {"requests": self._inline_requests(payload)}}
        model = payload.model
        if not model:
            raise InvalidRequestError(
                "the payload names no model; build payloads with prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        body = {"batch": {"displayName": idempotency_key, "inputConfig": input_config}}
        operation = self._json(
            "post", self._create_path(model), body, action=_CREATE, idempotent=False
        )
        return self._handle(operation)

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The batches whose ``displayName`` is exactly *idempotency_key*, among the first
        ``IDEMPOTENCY_SEARCH_PAGES`` pages of the list, stopping after the first page with one
        (the list's order is not documented, so the time of the attempt cannot cut it short)."""
        token: str | None = None
        for _ in range(self.IDEMPOTENCY_SEARCH_PAGES):
            query: dict[str, Any] = {"pageSize": self.LIST_PAGE_SIZE}
            if token:
                query["pageToken"] = token
            page = self._json("get", self._list_path(query), action="list batches")
            operations = page.get("operations") or []
            if not isinstance(operations, list):
                raise ProviderPermanentError(
                    "list batches: the answer is not a page of batches",
                    provider=self.PROVIDER_NAME,
                )
            found = [
                op
                for op in operations
                if isinstance(op, Mapping) and wire.display_name(op) == idempotency_key
            ]
            if found:
                yield from map(self._handle, found)
                return
            next_token = page.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token or next_token == token:
                return
            token = next_token

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        """The batch's operation, normalised (:func:`~batchcore_gemini._mapping.batch_status`)."""
        return wire.batch_status(self._operation(handle))

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """The inline responses of the batch, or the lines of its responses file (downloaded to
        a temporary file, then read line by line: memory stays flat). An expired batch has no
        results; nor has a failed one."""
        operation = status.raw if status.raw is not None else self._operation(handle)
        batch_id = handle.batch_id
        inline = wire.inlined_responses(operation)
        if inline is not None:
            for number, entry in enumerate(inline, start=1):
                result = self._result(entry, batch_id)
                if result is None:
                    log.warning(
                        "gemini: batch %s: inline response %d is not the result of a request "
                        "(no key); skipped",
                        batch_id,
                        number,
                    )
                    continue
                yield result
            return
        name = wire.responses_file(operation)
        if name is None:
            return
        yield from read_result_lines(
            self._download(name),
            lambda entry: self._result(entry, batch_id),
            provider=self.PROVIDER_NAME,
            batch_id=batch_id,
            source=name,
        )

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        """The keys of an inline batch's requests, from the input the API shows with the batch;
        None for a file batch (an uploaded file cannot be downloaded back): the runner, which
        knows what it sent, reports those."""
        return None if status.raw is None else wire.inline_request_keys(status.raw)

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        """``POST batches/{id}:cancel``, then the batch's status; one the API still shows
        pending or running is reported ``CANCELLING`` (the cancel was accepted). Asking twice is
        harmless, so the call is retried like a read."""
        path = self._batch_path(handle)
        self._json("post", f"{path}:cancel", {}, action="cancel batch", idempotent=True)
        status = self.get_status(handle)
        if not status.is_terminal:
            status = attrs.evolve(status, state=BatchState.CANCELLING)
        return status

    def delete_batch(self, handle: BatchHandle) -> None:
        """Delete the batch at the API (``DELETE batches/{id}``): it and its results are gone,
        so fetch them first. Deleting does not cancel a running batch. A batch that no longer
        exists is not an error (a repeated delete finds nothing)."""
        self.check_handle(handle)
        path = self._batch_path(handle)
        try:
            self._json("delete", path, action="delete batch", idempotent=True)
        except NotFoundError:
            log.info("gemini: batch %s was already deleted", handle.batch_id)

    def close(self) -> None:
        """Close the SDK client's connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        super().close()

    # -- inline or file ----------------------------------------------------------------------

    def _payload_file(self, payload: BatchPayload) -> Path:
        path = payload.path
        if path is None or not path.is_file():
            raise InvalidRequestError(
                f"the payload file {path} does not exist (was the payload discarded?)",
                provider=self.PROVIDER_NAME,
            )
        return path

    def _sends_inline(self, payload: BatchPayload, path: Path) -> bool:
        if self.input_mode == "file":
            return False
        size = _inline_body_bytes(path, self.INLINE_LIMITS.max_bytes)
        fits = size <= self.INLINE_LIMITS.max_bytes
        if self.input_mode == "inline" and not fits:
            raise RequestTooLargeError(
                f"input_mode 'inline': this payload makes a create body of at least {size} "
                f"bytes, over Gemini's {self.INLINE_LIMITS.max_bytes}-byte limit for inline "
                "requests (the SDK writes non-ASCII text as \\uXXXX escapes); "
                "use input_mode 'auto' or 'file', or a smaller max_bytes_per_batch",
                provider=self.PROVIDER_NAME,
            )
        return fits

    def _inline_requests(self, payload: BatchPayload) -> list[dict[str, Any]]:
        """The payload file's lines as inline requests: ``{request, metadata: {key}}``."""
        requests: list[dict[str, Any]] = []
        with open(self._payload_file(payload), "rb") as lines:
            for line in lines:
                if line.strip():
                    item = orjson.loads(line)
                    requests.append({"request": item["request"], "metadata": {"key": item["key"]}})
        return requests

    # -- talking through the SDK -------------------------------------------------------------

    def _build_client(self) -> genai.Client:
        options = genai_types.HttpOptions(
            base_url=self.base_url,
            # The SDK takes milliseconds.
            timeout=max(1, round(self.timeout * 1000)),
            # Retries are the core's, the same for every provider.
            retry_options=genai_types.HttpRetryOptions(attempts=1),
        )
        if self.api_version:
            options.api_version = self.api_version
        return genai.Client(vertexai=False, api_key=self.require_api_key(), http_options=options)

    def _sdk(self) -> genai.Client:
        with self._client_lock:
            if self._client is not None:
                return self._client
            try:
                self._client = client = self._build_client()
                return client
            except ValueError as exc:
                problem = redact(f"{type(exc).__name__}: {exc}", self.secrets())
        raise ConfigurationError(
            f"{self.PROVIDER_NAME}: cannot build the google-genai client: {problem}"
        )

    def _sdk_call(
        self, action: str, call: Callable[[genai.Client], T], *, idempotent: bool = True
    ) -> T:
        """*call* on the SDK client under the core's retries, its exceptions translated."""
        client = self._sdk()
        return self.call(
            action, lambda: self._translated(action, lambda: call(client)), idempotent=idempotent
        )

    def _translated(self, action: str, call: Callable[[], T]) -> T:
        """*call*, with an SDK exception turned into the core's classification, raised outside
        the ``except`` block so that nothing of the SDK's (its request, with the key) is kept."""
        failure: ProviderError
        try:
            return call()
        except genai_errors.APIError as exc:
            failure = self._status_error(exc, action)
        except _TRANSPORT_ERRORS as exc:
            failure = transport_failure(
                exc,
                provider=self.PROVIDER_NAME,
                action=action,
                secrets=self.secrets(),
                timeout=self.timeout,
            )
        except Exception as exc:  # the SDK's own checks (ValueError, KeyError, ...)
            message = redact(f"{action}: {type(exc).__name__}: {exc}", self.secrets())
            failure = ProviderPermanentError(message, provider=self.PROVIDER_NAME)
        raise failure

    def _status_error(self, exc: genai_errors.APIError, action: str) -> ProviderError:
        details = exc.details
        error = details.get("error", details) if isinstance(details, Mapping) else {}
        error = error if isinstance(error, Mapping) else {}
        response = getattr(exc, "response", None)
        raw_headers = getattr(response, "headers", None)
        headers = {str(k): str(v) for k, v in raw_headers.items()} if raw_headers else {}
        delay = _retry_delay(error)
        if delay is not None and not any(k.lower() == "retry-after" for k in headers):
            headers["retry-after"] = delay
        message = exc.message if isinstance(exc.message, str) else error.get("message")
        status = exc.status if isinstance(exc.status, str) else wire.rpc_status(error)
        failure = error_from_response(
            provider=self.PROVIDER_NAME,
            status_code=exc.code if isinstance(exc.code, int) else 500,
            body={"error": {"message": message, "code": status}},
            headers=headers,
            secrets=self.secrets(),
            action=action,
        )
        if action == _CREATE and failure.status_code == 429 and wire.speaks_of_queue(error):
            # The model's queue of enqueued tokens is full: a wait for room, not a failure.
            return QueueFullError(
                failure.message,
                provider=self.PROVIDER_NAME,
                status_code=failure.status_code,
                retry_after=failure.retry_after,
                code=failure.code,
                request_id=failure.request_id,
            )
        if _reason(error) == "API_KEY_INVALID":
            # Google answers a wrong key with 400 INVALID_ARGUMENT; it is an authentication
            # failure, and retrying or changing the request cannot help.
            return AuthenticationError(
                failure.message,
                provider=self.PROVIDER_NAME,
                status_code=failure.status_code,
                code="API_KEY_INVALID",
                request_id=failure.request_id,
            )
        return failure

    def _json(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        action: str,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One REST call through the SDK's API client, its answer read as a JSON object."""
        request = api_request(self._sdk())

        def once() -> dict[str, Any]:
            response = self._translated(action, lambda: request(method, path, dict(body or {})))
            try:
                data = orjson.loads(response.body or "{}")
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):
                # The API answered 200, so it acted; what it said is unreadable.
                raise ResponseLostError(
                    f"{action}: the answer is not a JSON object", provider=self.PROVIDER_NAME
                )
            return data

        return self.call(action, once, idempotent=idempotent)

    def _download(self, name: str) -> Iterator[bytes]:
        """The lines of file *name*, downloaded first to a temporary file (a download cut short
        is downloaded again, whole)."""

        def fetch(client: genai.Client) -> IO[bytes]:
            spool = tempfile.TemporaryFile(dir=self.workdir)  # noqa: SIM115 - returned open
            try:
                client.files.download(file=name, destination=spool)
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return spool

        spool = self._sdk_call("download batch results", fetch)
        with spool:
            yield from iter_lines(iter(lambda: spool.read(_CHUNK), b""))

    # -- the API's paths (what a Vertex AI variant would change) ------------------------------

    def _create_path(self, model: str) -> str:
        return f"{wire.model_resource(model)}:batchGenerateContent"

    def _list_path(self, query: Mapping[str, Any]) -> str:
        return f"batches?{urlencode(query)}"

    def _batch_path(self, handle: BatchHandle) -> str:
        name = (
            handle.batch_id
            if handle.batch_id.startswith("batches/")
            else f"batches/{handle.batch_id}"
        )
        if not _BATCH_NAME.match(name):
            raise InvalidRequestError(
                f"{handle.batch_id!r} is not the name of a Gemini batch (batches/...)",
                provider=self.PROVIDER_NAME,
            )
        return name

    # -- helpers -----------------------------------------------------------------------------

    def _operation(self, handle: BatchHandle) -> dict[str, Any]:
        return self._json("get", self._batch_path(handle), action="retrieve batch")

    def _handle(self, operation: Mapping[str, Any]) -> BatchHandle:
        name = operation.get("name")
        if not isinstance(name, str) or not name:
            raise ResponseLostError(
                "the answer is not a batch (it has no name)", provider=self.PROVIDER_NAME
            )
        metadata = operation.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        created = wire.batch_created_at(operation) or self.clock()
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=name,
            created_at=created,
            metadata={
                "model": metadata.get("model"),
                "display_name": wire.display_name(operation),
            },
        )

    def _result(self, entry: Any, batch_id: str) -> BatchResult | None:
        """The result of one entry; None for one that is no request's result (no key, or
        neither a response nor an error): nothing to join it to, so it is skipped (and logged)
        while every other result is still delivered."""
        try:
            return wire.batch_result(entry, result_error=self.result_error, batch_id=batch_id)
        except ValueError:
            return None


#: The google-genai releases this provider is tested with (the pin in its pyproject): batch calls
#: go through the SDK's private ``Client._api_client.request``, which a release may change.
SUPPORTED_GENAI = ">=2.34,<4"


def api_request(client: genai.Client) -> Callable[..., Any]:
    """The SDK's own call of a REST method (``Client._api_client.request(method, path, body)``,
    what every SDK module calls). Not public: a release without it raises
    :class:`ConfigurationError` naming the releases this provider supports, instead of failing
    each call with an ``AttributeError``."""
    request: Callable[..., Any] | None = getattr(
        getattr(client, "_api_client", None), "request", None
    )
    if not callable(request):
        found = getattr(genai, "__version__", "of unknown version")
        raise ConfigurationError(
            f"gemini: google-genai {found} has no Client._api_client.request, which "
            f"batchcore-gemini calls to read batches; install google-genai{SUPPORTED_GENAI}"
        )
    return request


def _inline_body_bytes(path: Path, limit: int) -> int:
    """How many bytes the inline create body for the payload file *path* takes as the SDK
    writes it (``json.dumps``: a space after each ``,`` and ``:``, non-ASCII text as ``\\uXXXX``
    escapes, each line wrapped as ``{request, metadata: {key}}``), or a number over *limit*
    as soon as it is certain to exceed it. A file already over *limit* needs no measuring:
    the body only grows."""
    size = path.stat().st_size
    if size > limit:
        return size
    body = {"batch": {"displayName": "k" * 128, "inputConfig": {"requests": {"requests": []}}}}
    total = len(json.dumps(body))
    with open(path, "rb") as lines:
        for number, line in enumerate(filter(bytes.strip, lines)):
            item = orjson.loads(line)
            entry = {"request": item["request"], "metadata": {"key": item["key"]}}
            total += len(json.dumps(entry)) + (2 if number else 0)
            if total > limit:
                break
    return total


def _retry_delay(error: Mapping[str, Any]) -> str | None:
    """Seconds from a ``google.rpc.RetryInfo`` in the error's details (``"retryDelay": "34s"``)."""
    for detail in error.get("details") or ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            found = _DURATION.match(str(detail.get("retryDelay", "")))
            if found:
                return found.group(1)
    return None


def _reason(error: Mapping[str, Any]) -> str | None:
    """The ``reason`` of a ``google.rpc.ErrorInfo`` in the error's details."""
    for detail in error.get("details") or ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            reason = detail.get("reason")
            return reason if isinstance(reason, str) else None
    return None
