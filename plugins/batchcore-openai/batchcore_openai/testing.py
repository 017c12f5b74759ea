"""An emulator of the OpenAI Files and Batches API, for tests and demos.

It serves real HTTP on 127.0.0.1, so the official ``openai`` SDK (and this package's providers)
talk to it exactly as to the real API::

    from batchcore_openai.testing import OpenAIEmulator
    from batchcore.testing import ManualClock

    clock = ManualClock()
    with OpenAIEmulator(clock=clock) as emulator:
        client = openai.OpenAI(base_url=emulator.url + "/v1", api_key="sk-test")
        ...                       # upload a JSONL file, create a batch
        emulator.advance(3600)    # the batch moves through its lifecycle with the clock
        ...                       # retrieve it, download the output and error files

What it does, the way the API does it:

* ``POST /v1/files`` (multipart, ``purpose=batch``, ``.jsonl`` only), ``GET /v1/files``,
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (streamed from disk),
  ``DELETE /v1/files/{id}``;
* ``POST /v1/batches``, its body checked strictly against OpenAI's ``CreateBatchRequest``
  (unknown fields, types, enums; then metadata limits, an unknown or non-batch input file,
  mixed models), each refusal a 400 in OpenAI's error shape; ``GET /v1/batches`` (newest
  first, ``after`` / ``limit``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``;
* a lifecycle on the clock: ``validating`` -> ``in_progress`` (requests finish one by one, in a
  shuffled order) -> ``finalizing`` -> ``completed``; a batch whose input file breaks the rules
  (a line that is not JSON, a duplicate custom_id, a wrong url, a ``body`` its endpoint's
  request schema refuses) is ``failed`` with ``errors.data[]`` (``line``, ``param``, ``code``,
  ``message``); a batch still running at ``expires_at`` (24 h) is ``expired`` with partial
  output and ``batch_expired`` error lines; a cancel goes through ``cancelling`` to
  ``cancelled`` with partial output;
* deterministic answers (:func:`batchcore.testing.emulation.answer_body`): "Echo: <last user
  message>", cut to the token limit; structured output valid against the requested schema;
  forced tool calls; embeddings from a hash of the input; usage with cached and reasoning
  tokens where asked;
* what a model refuses when a request runs, as the API answers it: an error-file line with
  ``response.status_code`` 400 and OpenAI's error body (``max_tokens`` on a reasoning model:
  "Unsupported parameter: 'max_tokens' is not supported with this model. Use
  'max_completion_tokens' instead."; ``temperature`` other than 1 on o-series and GPT-5:
  "Unsupported value: ..."). The rules are the emulator's own table
  (:data:`REASONING_MODELS`, :func:`openai_request_rules`), written from OpenAI's documentation,
  not read from the provider; ``request_rules`` replaces them (another vendor's) or turns them
  off (None);
* per-request failures on demand: ``[emulator-fail:500]`` (any status) in a request's text gives
  an error-file line with that ``response.status_code``; ``[emulator-fail:some_code]`` an
  ``error`` line with that code; ``[emulator-fail:drop]`` loses the request;
* the vendor's queue limit, when given (``queue_cap``): a batch whose input tokens do not fit
  under the model's cap of enqueued tokens, beside the batches that have not ended, is created
  and then ``failed`` with ``errors.data[].code == "token_limit_exceeded"`` and the vendor's
  message;
* an ``x-request-id`` header on every answer;
* HTTP faults: :meth:`OpenAIEmulator.inject_fault` or ``emulator.server.inject(...)``
  (429 with ``retry-after``, 5xx, resets, hangs, truncated bodies, and ``lost_create``: the
  next batch create is carried out but its answer never arrives);
* ``azure=True``: Azure OpenAI's routes (``/openai/v1/...`` and ``/openai/...?api-version=``)
  and quirks: capitalised statuses, ISO-8601 timestamps, null ``request_counts`` while
  validating, an empty error file on success, no expiry.

Every route is also served under ``/openai/v1`` and ``/openai`` (the Azure spellings).
:func:`spec_validator` is the strict validator of OpenAI's spec the emulator checks bodies
with, for your own checks (``spec_validator().problems("CreateChatCompletionRequest", body)``).

Another OpenAI-compatible Batch API is this emulator with constructor options:
``completion_windows`` (the windows it takes, each with its length: a batch expires at the end
of its own), ``endpoints`` (the batch endpoints it takes), ``batch_list_cursors=False`` (the
batch list as ``{"object": "list", "data": [...]}``, every batch, newest first),
``echo_metadata=False`` (Batch objects without ``metadata``), ``max_requests`` / ``max_bytes``,
``request_rules`` (what the vendor refuses in a request when it runs: a
``(endpoint, body) -> Refusal | None`` function); and the class attributes ``CREATE_ROUTE``
and ``WORKDIR_PREFIX``.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import orjson

from batchcore.plugin import BatchRequest
from batchcore.testing import Fault, ManualClock, Request, Response, VendorEmulator
from batchcore.testing.emulation import (
    FAIL_MARKER,
    EmulatorStoppedError,
    Enqueued,
    FileStore,
    InputScan,
    LineError,
    Phase,
    QueueCap,
    QueueGate,
    RequestIds,
    StoredFile,
    Timing,
    scan_input,
)
from batchcore.testing.multipart import MultipartError, parse_multipart
from batchcore_openai._emulation import (
    EMULATED_ENDPOINTS,
    REASONING_MODELS,
    EmulatedBatch,
    ReasoningModels,
    Refusal,
    RequestRules,
    describe_problem,
    find_refusals,
    line_checker,
    normalise_url,
    openai_request_rules,
    queue_full_error,
    spec_validator,
    write_results,
)

__all__ = [
    "FAIL_MARKER",
    "REASONING_MODELS",
    "OpenAIEmulator",
    "QueueCap",
    "ReasoningModels",
    "Refusal",
    "RequestRules",
    "Timing",
    "UploadRecord",
    "azure_sandbox",
    "openai_request_rules",
    "sandbox",
    "spec_validator",
]

_PREFIXES = ("/v1", "/openai/v1", "/openai")
_AZURE_CREATE_ROUTE = ("POST", "/openai/v1/batches")
_LEGACY_PREFIX = "/openai"
_AZURE_STATUS = {
    "validating": "Validating",
    "in_progress": "InProgress",
    "finalizing": "Finalizing",
    "completed": "Completed",
    "failed": "Failed",
    "expired": "Expired",
    "cancelling": "Cancelling",
    "cancelled": "Cancelled",
}
_TIMESTAMPS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
_FILE_TTL = 30 * 24 * 3600  # batch files expire after 30 days by default
# OpenAI's documented metadata limits (the spec's descriptions; its schema leaves them out).
_METADATA_PAIRS, _METADATA_KEY, _METADATA_VALUE = 16, 64, 512
#: OpenAI's completion windows ("Currently only `24h` is supported") and their lengths.
_OPENAI_WINDOWS: Mapping[str, float] = MappingProxyType({"24h": 86_400.0})
#: The window the spec's ``CreateBatchRequest`` enum lists, which a create body is checked with
#: once its own window has passed this emulator's ``completion_windows``.
_SPEC_WINDOW = "24h"


def _error(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


#: Named HTTP faults: (status, body, headers), or a transport fault.
_FAULTS: dict[str, tuple[int, dict[str, Any], dict[str, str]] | Fault] = {
    "rate_limit": (
        429,
        _error(
            "Rate limit reached for requests. Please try again shortly.",
            "requests",
            "rate_limit_exceeded",
        ),
        {"retry-after": "0"},
    ),
    "insufficient_quota": (
        429,
        _error(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        {},
    ),
    "server_error": (
        500,
        _error("The server had an error while processing your request.", "server_error", None),
        {},
    ),
    "overloaded": (
        503,
        _error("Slow Down: the engine is currently overloaded.", "server_error", None),
        {},
    ),
    "unauthorized": (
        401,
        _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        {},
    ),
    "permission_denied": (
        403,
        _error(
            "Country, region, or territory not supported.",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        {},
    ),
    "not_found": (404, _error("No such object.", "invalid_request_error", None), {}),
    "bad_request": (400, _error("Invalid request.", "invalid_request_error", None), {}),
    "unprocessable": (422, _error("Unprocessable request.", "invalid_request_error", None), {}),
    "reset": Fault.reset(),
    "hang": Fault.hang(),
    "truncate": Fault.truncate(10),
}


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = _error(message, kind, code, param)


def _spec_check(schema: str, body: Any) -> None:
    """Raise OpenAI's 400 for the first thing in *body* its spec's *schema* refuses."""
    problems = spec_validator().problems(schema, body, limit=1)
    if problems:
        found = describe_problem(problems[0])
        raise _ApiError(400, found.message, code=found.code, param=found.param)


@attrs.frozen(kw_only=True)
class UploadRecord:
    """What one ``POST /files`` carried: its text fields and, per file field,
    ``(filename, content_type, size)``."""

    fields: dict[str, str]
    files: dict[str, tuple[str | None, str | None, int]]


class OpenAIEmulator(VendorEmulator):
    """The OpenAI Files and Batches API on 127.0.0.1 (see the module docs).

    OpenAI clients use ``url + "/v1"``, Azure ones ``azure_endpoint=url``.

    *clock*: a :class:`~batchcore.testing.ManualClock` (the default: time moves only with
    :meth:`advance`) or any ``() -> unix seconds`` callable such as ``time.time`` (then
    :meth:`advance` adds an offset).
    *api_key*: the only key accepted (default: any non-empty key). *max_requests* /
    *max_bytes*: the per-batch limits enforced at validation. *seed* fixes ids, request ids
    and the shuffled completion order.

    For another OpenAI-compatible API: *completion_windows* maps each ``completion_window`` a
    create may name to its length in seconds (OpenAI's: ``{"24h": 86400}``); a batch expires at
    the end of its own window, and another window gets a 400. *endpoints*: the batch endpoints
    a create may name (default: every endpoint the emulator answers); another gets a 400.
    *batch_list_cursors* False answers ``GET /batches`` with every batch, newest first, as
    ``{"object": "list", "data": [...]}`` (no ``first_id`` / ``last_id`` / ``has_more``;
    ``limit`` and ``after`` ignored). *echo_metadata* False leaves ``metadata`` out of Batch
    objects (the attribute can be changed while running). *request_rules*: what the vendor
    refuses in one request body when it runs, ``(endpoint, body) -> Refusal | None`` (default:
    OpenAI's reasoning models, :func:`openai_request_rules`; None: nothing); each refusal is an
    error-file line with HTTP 400 and the :class:`Refusal`'s error body.

    *queue_cap*: the vendor's queue limit, a :class:`~batchcore.testing.emulation.QueueCap`
    (for example ``QueueCap(limit=2_000_000)``: enqueued input tokens per model, counted as
    the answers' usage counts them). A batch that does not fit beside the batches that have
    not ended is created and then fails validation with ``token_limit_exceeded``, as OpenAI
    and Azure do it. ``queue`` (a :class:`~batchcore.testing.emulation.QueueGate`) holds the
    cap, which may be changed while running, the most ever enqueued (``queue.high_water``)
    and the number of batches refused (``queue.refused``).

    Also a ``ContractBackend`` for batchcore's conformance kit (``FAULTS``, :meth:`advance`,
    :meth:`inject_fault`, :meth:`call_count`, :meth:`batch_count`, :meth:`failing_request`).
    """

    WORKDIR_PREFIX = "batchcore-openai-emulator-"
    #: Where OpenAI clients create batches; an Azure emulator's is Azure's v1 route
    #: (``/openai/v1/batches``), so ``lost_create`` hits the route its clients call.
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", "/v1/batches")
    #: Where results are downloaded (the kit's ``corrupt_result_line``); Azure's under /openai.
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = ("GET", "/v1/files/{file_id}/content")

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        validating_seconds: float = 60.0,
        processing_seconds: float = 600.0,
        finalizing_seconds: float = 60.0,
        cancelling_seconds: float = 60.0,
        api_key: str | None = None,
        azure: bool = False,
        deployments: Collection[str] | None = None,
        max_requests: int | None = None,
        max_bytes: int = 200_000_000,
        completion_windows: Mapping[str, float] | None = None,
        endpoints: Collection[str] | None = None,
        batch_list_cursors: bool = True,
        echo_metadata: bool = True,
        queue_cap: QueueCap | None = None,
        request_rules: RequestRules | None = openai_request_rules,
        seed: int = 0,
    ) -> None:
        windows = _OPENAI_WINDOWS if completion_windows is None else completion_windows
        if not windows or any(seconds <= 0 for seconds in windows.values()):
            raise ValueError("completion_windows must map at least one window to its seconds")
        unanswered = set(endpoints or ()) - EMULATED_ENDPOINTS
        if endpoints is not None and (not endpoints or unanswered):
            raise ValueError(
                f"endpoints must be some of {sorted(EMULATED_ENDPOINTS)}, got {sorted(endpoints)}"
            )
        super().__init__(clock=clock if clock is not None else ManualClock())
        self.timing = Timing(
            validating=validating_seconds,
            processing=processing_seconds,
            finalizing=finalizing_seconds,
            cancelling=cancelling_seconds,
        )
        self._api_key = api_key
        self.azure = azure
        self.deployments = frozenset(deployments) if deployments is not None else None
        self.max_requests = max_requests or (100_000 if azure else 50_000)
        self.max_bytes = max_bytes
        self.completion_windows: Mapping[str, float] = MappingProxyType(dict(windows))
        self.endpoints = frozenset(endpoints) if endpoints is not None else EMULATED_ENDPOINTS
        self.batch_list_cursors = batch_list_cursors
        self.echo_metadata = echo_metadata
        #: What the vendor refuses in a request when it runs (None: nothing).
        self.request_rules = request_rules
        #: The queue of enqueued tokens (``queue.cap``, ``queue.high_water``, ``queue.refused``).
        self.queue = QueueGate(queue_cap)
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._files = FileStore(lambda: self.workdir, new_id=lambda: self._new_id("file-"))
        self._batches: dict[str, EmulatedBatch] = {}
        self._request_ids = RequestIds(seed)
        self.created_batch_requests: list[dict[str, Any]] = []
        self.uploads: list[UploadRecord] = []
        if azure:
            # The flavour is chosen per emulator, so its create route is this instance's.
            self.CREATE_ROUTE = _AZURE_CREATE_ROUTE  # type: ignore[misc]
            self.RESULTS_ROUTE = ("GET", "/openai/v1/files/{file_id}/content")  # type: ignore[misc]
        for prefix in _PREFIXES:
            legacy = prefix == _LEGACY_PREFIX
            for method, path, handler in (
                ("POST", "/files", self._upload),
                ("GET", "/files", self._list_files),
                ("GET", "/files/{file_id}", self._retrieve_file),
                ("DELETE", "/files/{file_id}", self._delete_file),
                ("GET", "/files/{file_id}/content", self._file_content),
                ("POST", "/batches", self._create_batch),
                ("GET", "/batches", self._list_batches),
                ("GET", "/batches/{batch_id}", self._retrieve_batch),
                ("POST", "/batches/{batch_id}/cancel", self._cancel_batch),
            ):
                self.server.add_route(method, prefix + path, self._endpoint(handler, legacy))

    # -- lifecycle (start, stop, url, now come with the base) ------------------------------

    def _on_stop(self) -> None:
        self._files.clear()

    @property
    def _root(self) -> Path | None:
        # The working directory under its former name, which tests still read.
        return self.workdir

    # -- ContractBackend (advance, inject_fault and call_count come with the base) ---------

    def fault(self, kind: str) -> Fault | None:
        """The :class:`~batchcore.testing.Fault` named *kind* (``rate_limit``,
        ``insufficient_quota``, ``server_error``, ``overloaded``, ``unauthorized``,
        ``permission_denied``, ``not_found``, ``bad_request``, ``unprocessable``, ``reset``,
        ``hang``, ``truncate``), with the API's error body and an ``x-request-id``; None for
        an unknown kind."""
        known = _FAULTS.get(kind)
        if known is None or isinstance(known, Fault):
            return known
        status, body, headers = known
        return Fault.status(
            status, headers={**headers, "x-request-id": self._request_ids()}, body=body
        )

    def batch_count(self) -> int:
        """Batches created so far."""
        with self._lock:
            return len(self._batches)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request this emulator answers with an error line (HTTP 400) inside the batch."""
        return BatchRequest.from_dict(
            {
                "custom_id": custom_id,
                "model": model,
                "messages": [{"role": "user", "content": f"{FAIL_MARKER.format(400)} please fail"}],
                "params": {"max_tokens": 16},
            }
        )

    # -- inspection ------------------------------------------------------------------------

    def batches(self) -> list[dict[str, Any]]:
        """Every batch created so far (oldest first), as the API would show it now."""
        with self._lock:
            return [self._batch_json(batch) for batch in self._batches.values()]

    def batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._batch_json(self._batches[batch_id])

    def files(self) -> list[dict[str, Any]]:
        """Every file kept (oldest first), as the API shows it."""
        return [self._file_json(stored) for stored in reversed(self._files.newest_first())]

    def file_content(self, file_id: str) -> bytes:
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.path.read_bytes()

    # -- plumbing --------------------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[Request], Response], legacy: bool
    ) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            try:
                if legacy and not request.arg("api-version"):
                    raise _ApiError(
                        404, "Resource not found", kind="invalid_request_error", code="404"
                    )
                self._authorise(request)
                response = handler(request)
            except _ApiError as error:
                response = Response.json(error.body, status=error.status)
            except EmulatorStoppedError:
                response = Response.json(
                    _error("The emulator is not running.", "server_error", None), status=503
                )
            response.headers["x-request-id"] = self._request_ids()
            return response

        return serve

    def _authorise(self, request: Request) -> None:
        offered = [request.header("api-key")]
        authorization = request.header("authorization") or ""
        if authorization.lower().startswith("bearer "):
            offered.append(authorization[7:].strip())
        keys = [key for key in offered if key]
        if not keys:
            raise _ApiError(
                401,
                "You didn't provide an API key. You need to provide your API "
                "key in an Authorization header using Bearer auth.",
            )
        if self._api_key is not None and self._api_key not in keys:
            shown = keys[0]
            masked = shown[:3] + "*" * (len(shown) - 7) + shown[-4:] if len(shown) > 8 else "***"
            raise _ApiError(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{self._rng.getrandbits(96):024x}"

    def _stamp(self, value: float | None) -> int | str | None:
        if value is None:
            return None
        if self.azure:
            moment = datetime.fromtimestamp(int(value), tz=timezone.utc)
            return moment.isoformat().replace("+00:00", "Z")
        return int(value)

    @staticmethod
    def _file_json(stored: StoredFile) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": stored.id,
            "object": "file",
            "bytes": stored.size,
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "status": "processed",
        }
        if stored.expires_at is not None:
            data["expires_at"] = stored.expires_at
        return data

    # -- files -----------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        try:
            parts = parse_multipart(request.body, request.header("content-type") or "")
        except MultipartError as exc:
            raise _ApiError(400, f"Invalid multipart/form-data body: {exc}.") from None
        fields = {part.name: part.text() for part in parts if part.filename is None}
        uploaded = {part.name: part for part in parts if part.filename is not None}
        self.uploads.append(
            UploadRecord(
                fields=fields,
                files={name: (p.filename, p.content_type, p.size) for name, p in uploaded.items()},
            )
        )
        _spec_check("CreateFileRequest", _upload_form(fields, uploaded))
        file_part = uploaded["file"]
        purpose = fields["purpose"]
        filename = file_part.filename or "upload"
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise _ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        seconds = fields.get("expires_after[seconds]")
        ttl = int(seconds) if seconds is not None else (_FILE_TTL if purpose == "batch" else None)
        created = int(self.now())
        stored = self._files.add(
            file_part.data,
            filename=filename,
            purpose=purpose,
            created_at=created,
            expires_at=created + ttl if ttl is not None else None,
        )
        return Response.json(self._file_json(stored))

    def _get_file(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise _ApiError(404, f"No such File object: {file_id}", param="id")
        return stored

    def _list_files(self, request: Request) -> Response:
        limit = self._limit(request, default=10_000, maximum=10_000)
        items = self._files.newest_first(request.arg("purpose"))
        page, has_more = self._page(items, request.arg("after"), limit)
        return Response.json(_list_page([self._file_json(f) for f in page], has_more))

    def _retrieve_file(self, request: Request) -> Response:
        return Response.json(self._file_json(self._get_file(request.path_params["file_id"])))

    def _delete_file(self, request: Request) -> Response:
        stored = self._files.delete(request.path_params["file_id"])
        if stored is None:
            raise _ApiError(
                404, f"No such File object: {request.path_params['file_id']}", param="id"
            )
        return Response.json({"id": stored.id, "object": "file", "deleted": True})

    def _file_content(self, request: Request) -> Response:
        chunks = self._files.open_stream(request.path_params["file_id"])
        if chunks is None:
            raise _ApiError(
                404, f"No such File object: {request.path_params['file_id']}", param="id"
            )
        return Response(body=chunks, headers={"content-type": "application/octet-stream"})

    # -- batches ---------------------------------------------------------------------------

    def _create_batch(self, request: Request) -> Response:
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            raise _ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        self.created_batch_requests.append(body)
        if self.azure and isinstance(body.get("endpoint"), str):
            # Azure's older spelling, "/chat/completions", names the same endpoint.
            body = {**body, "endpoint": normalise_url(body["endpoint"])}
        self._check_create(body)
        endpoint, window = body["endpoint"], body["completion_window"]
        metadata = _check_metadata(body.get("metadata"))
        stored = self._files.get(body["input_file_id"])
        if stored is None:
            raise _ApiError(
                400,
                f"Invalid 'input_file_id': {body['input_file_id']!r}. No such file.",
                param="input_file_id",
                code="invalid_file",
            )
        if stored.purpose != "batch":
            raise _ApiError(
                400,
                f"The file {stored.id} has purpose {stored.purpose!r}; "
                "batches need purpose 'batch'.",
                param="input_file_id",
            )
        # Validation reads the whole file: outside the lock, so other calls are served meanwhile.
        scan = scan_input(stored.path, line_checker(endpoint), max_requests=self.max_requests)
        if scan.model_clash is not None:
            line, other = scan.model_clash
            raise _ApiError(
                400,
                f"The input file mixes models: line {line} uses {other!r}, "
                f"earlier lines {scan.model!r}. A batch may use one model only.",
                param="input_file_id",
                code="model_mismatch",
            )
        if stored.size > self.max_bytes:
            scan.errors.append(
                LineError(
                    code="file_too_large",
                    message=f"The input file has {stored.size} bytes; the limit is "
                    f"{self.max_bytes}.",
                )
            )
        if (
            self.deployments is not None
            and scan.model is not None
            and scan.model not in self.deployments
        ):
            scan.errors.append(
                LineError(
                    code="model_not_found",
                    message=f"The deployment {scan.model!r} does not exist.",
                    param="model",
                )
            )
        refusals = (
            find_refusals(stored.path, endpoint, self.request_rules)
            if self.request_rules is not None and not scan.errors
            else {}
        )
        with self._lock:
            enqueued = self._enqueue(scan)
            batch = EmulatedBatch.create(
                batch_id=self._new_id("batch_"),
                sequence=len(self._batches) + 1,
                endpoint=endpoint,
                input_file_id=stored.id,
                input_path=stored.path,
                completion_window=window,
                window_seconds=self.completion_windows[window],
                metadata=metadata,
                scan=scan,
                created_at=self.now(),
                seed=self.seed,
                enqueued=enqueued,
                refusals=refusals,
            )
            self._batches[batch.id] = batch
            return Response.json(self._batch_json(batch))

    def _enqueue(self, scan: InputScan) -> Enqueued | None:
        """What a new batch holds in its model's queue, or None when it holds nothing: its
        input failed, or the queue has no room, which the vendor tells by failing the batch at
        validation with ``token_limit_exceeded`` (the batch is created all the same)."""
        if scan.errors:
            return None
        enqueued = Enqueued(model=scan.model, tokens=scan.tokens, requests=scan.total)
        now, expires = self.now(), not self.azure
        waiting = [
            batch.enqueued
            for batch in self._batches.values()
            if batch.enqueued is not None
            and not batch.phase(now, self.timing, expires=expires).terminal
        ]
        refusal = self.queue.admit(enqueued, waiting)
        if refusal is None:
            return enqueued
        scan.errors.append(queue_full_error(refusal, azure=self.azure))
        return None

    def _check_create(self, body: dict[str, Any]) -> None:
        """The API's 400 for a create body that OpenAI's ``CreateBatchRequest`` refuses, or that
        names a window or an endpoint this emulator does not take."""
        window = body.get("completion_window")
        if isinstance(window, str):
            if window not in self.completion_windows:
                ordered = sorted(
                    self.completion_windows, key=lambda w: (self.completion_windows[w], w)
                )
                raise _ApiError(
                    400,
                    f"Invalid value for 'completion_window': {window!r}. Supported values are: "
                    f"{_listed(ordered)}.",
                    param="completion_window",
                    code="invalid_value",
                )
            # The spec's enum holds OpenAI's window; this emulator's were checked above.
            body = {**body, "completion_window": _SPEC_WINDOW}
        _spec_check("CreateBatchRequest", body)
        endpoint = body["endpoint"]
        if endpoint not in EMULATED_ENDPOINTS:
            raise _ApiError(
                400,
                f"The emulator does not answer {endpoint} batches.",
                param="endpoint",
                code="unsupported_value",
            )
        if endpoint not in self.endpoints:
            raise _ApiError(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: "
                f"{_listed(sorted(self.endpoints))}.",
                param="endpoint",
                code="invalid_value",
            )

    def _get_batch(self, batch_id: str) -> EmulatedBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def _retrieve_batch(self, request: Request) -> Response:
        with self._lock:
            return Response.json(self._batch_json(self._get_batch(request.path_params["batch_id"])))

    def _list_batches(self, request: Request) -> Response:
        if not self.batch_list_cursors:
            with self._lock:
                data = [self._batch_json(batch) for batch in reversed(self._batches.values())]
            return Response.json({"object": "list", "data": data})
        limit = self._limit(request, default=20, maximum=100)
        with self._lock:
            items = list(reversed(self._batches.values()))
            page, has_more = self._page(items, request.arg("after"), limit)
            data = [self._batch_json(batch) for batch in page]
        return Response.json(_list_page(data, has_more))

    def _cancel_batch(self, request: Request) -> Response:
        with self._lock:
            batch = self._get_batch(request.path_params["batch_id"])
            phase = self._phase(batch)
            if phase.terminal:
                raise _ApiError(
                    400,
                    f"Cannot cancel a batch with status '{phase.stage.value}'.",
                    param="batch_id",
                )
            if batch.cancel_requested_at is None:
                batch.cancel_requested_at = self.now()
            return Response.json(self._batch_json(batch))

    @staticmethod
    def _limit(request: Request, *, default: int, maximum: int) -> int:
        raw = request.arg("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise _ApiError(
                400, f"Invalid 'limit': {raw!r}; it must be between 1 and {maximum}.", param="limit"
            )
        return int(raw)

    @staticmethod
    def _page(items: list[Any], after: str | None, limit: int) -> tuple[list[Any], bool]:
        start = 0
        if after:
            ids = [item.id for item in items]
            if after not in ids:
                raise _ApiError(
                    400, f"Invalid 'after': no object with id {after!r}.", param="after"
                )
            start = ids.index(after) + 1
        return items[start : start + limit], start + limit < len(items)

    def _phase(self, batch: EmulatedBatch) -> Phase:
        """The batch's phase now; an ended batch's result files are written on first sight."""
        phase = batch.phase(self.now(), self.timing, expires=not self.azure)
        if phase.terminal and phase.stage.value != "failed" and not batch.finished:
            self._finish(batch, phase)
        return phase

    def _finish(self, batch: EmulatedBatch, phase: Phase) -> None:
        created = int(phase.timestamps.get("finalizing_at") or self.now())
        (output_id, output_path), (error_id, error_path) = (
            self._files.reserve(),
            self._files.reserve(),
        )
        with (
            open(output_path, "wb") as output,
            open(error_path, "wb") as errors,
            tempfile.TemporaryFile(dir=output_path.parent) as scratch,
        ):
            batch.usage = write_results(
                batch, phase, output=output, errors=errors, scratch=scratch, created=created
            )
        for file_id, path, name in (
            (output_id, output_path, "output"),
            (error_id, error_path, "error"),
        ):
            if path.stat().st_size == 0 and not (name == "error" and self.azure):
                path.unlink()
                continue
            self._files.register(
                file_id,
                path,
                filename=f"{batch.id}_{name}.jsonl",
                purpose="batch_output",
                created_at=created,
                expires_at=created + _FILE_TTL,
            )
            if name == "output":
                batch.output_file_id = file_id
            else:
                batch.error_file_id = file_id
        batch.finished = True

    def _batch_json(self, batch: EmulatedBatch) -> dict[str, Any]:
        phase = self._phase(batch)
        status = phase.stage.value
        counts: dict[str, int] | None
        if status == "validating":
            counts = None if self.azure else {"total": 0, "completed": 0, "failed": 0}
        elif status == "failed":
            counts = {"total": 0, "completed": 0, "failed": 0}
        else:
            failed = batch.order.failed_among(phase.done)
            counts = {"total": batch.total, "completed": phase.done - failed, "failed": failed}
            if phase.expired:
                counts["failed"] += batch.total - phase.done
        stamps = phase.timestamps
        usage = batch.usage
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": (
                {"object": "list", "data": [error.to_json() for error in batch.errors]}
                if status == "failed"
                else None
            ),
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": _AZURE_STATUS[status] if self.azure else status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            **{name: self._stamp(stamps.get(name)) for name in _TIMESTAMPS},
            "request_counts": counts,
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.total_tokens,
            },
            **({"metadata": batch.metadata} if self.echo_metadata else {}),
        }


def _listed(values: Iterable[str]) -> str:
    """Accepted values as a refusal lists them: all of a few, the ends of many."""
    shown = [repr(value) for value in values]
    return ", ".join(shown if len(shown) <= 6 else [*shown[:3], "...", shown[-1]])


def _list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _upload_form(fields: dict[str, str], uploaded: dict[str, Any]) -> dict[str, Any]:
    """An upload's form as the JSON ``CreateFileRequest`` describes (``expires_after[...]``
    fields nested, the seconds read as a number, each file as its name)."""
    form: dict[str, Any] = dict.fromkeys(uploaded, "<binary>")
    for name, value in fields.items():
        if name.startswith("expires_after[") and name.endswith("]"):
            key = name[len("expires_after[") : -1]
            form.setdefault("expires_after", {})[key] = (
                int(value) if key == "seconds" and value.isdigit() else value
            )
        else:
            form[name] = value
    return form


def _check_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > _METADATA_PAIRS:
        raise _ApiError(
            400,
            f"Invalid 'metadata': at most {_METADATA_PAIRS} pairs, got {len(value)}.",
            param="metadata",
            code="invalid_value",
        )
    for key, item in value.items():
        if len(key) > _METADATA_KEY or len(item) > _METADATA_VALUE:
            raise _ApiError(
                400,
                f"Invalid 'metadata': keys are at most {_METADATA_KEY} characters and values "
                f"at most {_METADATA_VALUE}.",
                param=f"metadata.{key}",
                code="invalid_value",
            )
    return dict(value)


# -- sandboxes (the CLI runs on these when no API key is configured) ----------------------------


def _sandbox_emulator(
    key: str, *, azure: bool, clock: ManualClock | Callable[[], float] | None
) -> OpenAIEmulator:
    # Short phases: a demo batch ends within a few seconds of the (by default real) clock.
    return OpenAIEmulator(
        clock=clock or time.time,
        api_key=key,
        azure=azure,
        validating_seconds=0.5,
        processing_seconds=2.0,
        finalizing_seconds=0.5,
        cancelling_seconds=0.5,
    )


@contextlib.contextmanager
def sandbox(*, clock: ManualClock | Callable[[], float] | None = None) -> Iterator[dict[str, Any]]:
    """Run an emulator on the real clock (or *clock*), where a batch ends within a few
    seconds, and yield the ``openai`` provider config that points at it."""
    key = "sk-sandbox-" + secrets.token_hex(16)
    with _sandbox_emulator(key, azure=False, clock=clock) as emulator:
        yield {"base_url": emulator.url + "/v1", "api_key": key}


@contextlib.contextmanager
def azure_sandbox(
    *, clock: ManualClock | Callable[[], float] | None = None
) -> Iterator[dict[str, Any]]:
    """Like :func:`sandbox`, for the ``azure-openai`` provider: an Azure-flavoured emulator
    that accepts any deployment name."""
    key = "sandbox-" + secrets.token_hex(16)
    with _sandbox_emulator(key, azure=True, clock=clock) as emulator:
        yield {"base_url": emulator.url + "/openai/v1/", "api_key": key, "models": ["*"]}
