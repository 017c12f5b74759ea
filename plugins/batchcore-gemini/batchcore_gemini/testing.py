"""An emulator of the Gemini API's batch mode on 127.0.0.1, for tests and demos.

::

    from batchcore_gemini.testing import GeminiEmulator

    with GeminiEmulator(clock=manual_clock) as emulator:
        provider = GeminiBatchProvider(config={"base_url": emulator.url,
                                               "api_key": emulator.api_key})
        ...
        emulator.advance(120)              # batches progress with the clock

It speaks the REST protocol the official ``google-genai`` SDK speaks (``genai.Client(api_key=...,
http_options={"base_url": emulator.url})`` works against it):

Paths take any of the versions :data:`API_VERSIONS` (``v1``, the SDK's default, and ``v1beta``,
the REST documentation's), written ``v1`` below.

* ``POST /v1/models/{model}:batchGenerateContent`` - create, from inline requests
  (``batch.inputConfig.requests.requests[{request, metadata: {key}}]``, body at most 20 MB) or
  an uploaded JSONL file (``batch.inputConfig.fileName``, lines ``{key, request}``);
  ``GET /v1/batches`` (newest first, ``pageSize``/``pageToken``); ``GET /v1/batches/{id}``;
  ``POST /v1/batches/{id}:cancel``; ``DELETE /v1/batches/{id}``.
* Files: the resumable upload (``POST /upload/v1/files`` with ``X-Goog-Upload-Command:
  start``, then the bytes to the ``x-goog-upload-url`` it answers, ``upload, finalize``),
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}:download?alt=media`` (generated files only,
  like the API), ``DELETE /v1/files/{id}``.
* Every call needs the API key (``x-goog-api-key`` or ``?key=``): without it 403
  ``PERMISSION_DENIED``, with another 400 ``INVALID_ARGUMENT`` (reason ``API_KEY_INVALID``), as
  Google answers; an upload URL is its own credential.
* Requests are validated strictly (:func:`batchcore_gemini._emulation.request_problem`: the
  SDK's own types with unknown fields refused, plus the API's rules on values): an inline
  request that breaks them fails the create (400 ``INVALID_ARGUMENT``, as a body the API cannot
  parse), a file line that breaks them ends ``INVALID_ARGUMENT`` in the results.
* Text in a request scripts its outcome: ``[emulator-error:UNAVAILABLE]`` (that google.rpc
  error), ``[emulator-finish:SAFETY]`` (the answer withheld for that finish reason),
  ``[emulator-block:PROHIBITED_CONTENT]`` (the prompt blocked).
* A request for JSON output (``responseMimeType: application/json``) is answered with a JSON
  instance of its ``responseSchema`` or ``responseJsonSchema`` (cut at ``maxOutputTokens``,
  finish reason ``MAX_TOKENS``); one for ``text/x.enum`` with the first value of its enum.

The queue of enqueued tokens per model, when given (``queue_cap``): a create whose requests'
prompt tokens would take its model's active batch jobs over the cap is refused with a 429
``RESOURCE_EXHAUSTED`` whose message and ``google.rpc.QuotaFailure`` speak of batch enqueued
tokens (Google documents the limit, not this answer's words).

Lifecycle, on the injected clock: ``BATCH_STATE_PENDING`` for ``pending_seconds``, then
``RUNNING`` while the requests finish one after another over ``processing_seconds``, then
``SUCCEEDED`` with the answers (inline, in shuffled order, or in a generated responses file). A
cancel ends the batch ``CANCELLED`` at once, with the answers finished by then; a batch still
unfinished ``expiry_seconds`` (48 h) after its creation ends ``EXPIRED``, with no answers (as
documented). ``fail_batch`` ends one ``FAILED``. Faults: :meth:`GeminiEmulator.inject` (any
:class:`~batchcore.testing.Fault`), :func:`error_fault` for Google's error bodies, and for the
conformance kit the named faults of :meth:`GeminiEmulator.fault` and ``lost_create``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import attrs
import orjson

from batchcore.plugin import BatchRequest
from batchcore.testing import Fault, ManualClock, Request, Response, VendorEmulator
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE
from batchcore.testing.emulation import Enqueued, QueueCap, QueueGate
from batchcore_gemini._emulation import (
    BLOCK_TRIGGER,
    ERROR_TRIGGER,
    FINISH_TRIGGER,
    EmulatedBatch,
    Reject,
    error_body,
    input_tokens,
    operation,
    queue_full_error,
    request_problem,
    rfc3339,
    write_answers,
)

__all__ = [
    "API_VERSIONS",
    "BLOCK_TRIGGER",
    "DEFAULT_API_KEY",
    "ERROR_TRIGGER",
    "FINISH_TRIGGER",
    "GeminiEmulator",
    "error_fault",
    "sandbox",
]

#: The key an emulator accepts unless given another.
DEFAULT_API_KEY = "AIzaEmulator-0123456789abcdefghijklmnopq"

_CREATE = "/{version}/models/{target}"
_BATCHES = "/{version}/batches"
_BATCH = "/{version}/batches/{target}"
_UPLOAD = "/upload/{version}/files"
_FILE = "/{version}/files/{target}"
_DOWNLOAD = "/download/{version}/files/{target}"
#: API versions served (the SDK's default is ``v1``; the REST documentation uses ``v1beta``).
API_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
_HOUR = 3600.0
_CHUNK = 1 << 16


def error_fault(
    status: int,
    rpc: str | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    details: Sequence[Any] | None = None,
) -> Fault:
    """A :class:`Fault` answering *status* with Google's error body (*rpc* defaults to the
    google.rpc status Google uses for that HTTP status)."""
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    name = rpc or names.get(status, "UNKNOWN")
    return Fault.status(
        status,
        headers=dict(headers or {}),
        body=error_body(status, name, message or f"emulated {name}", details),
    )


@attrs.define(kw_only=True)
class _File:
    id: str
    display_name: str | None
    mime_type: str
    size: int
    path: Path
    created: float
    generated: bool
    sha256: str


@attrs.define(kw_only=True)
class _Upload:
    path: Path
    size: int
    mime_type: str
    display_name: str | None
    received: int = 0


class GeminiEmulator(VendorEmulator):
    """The Gemini API's batch mode on 127.0.0.1 (see the module docstring for its behaviour).

    :attr:`url` is the API root (what ``http_options.base_url`` holds for the SDK, and the
    provider's ``base_url``). *clock* is a :class:`~batchcore.testing.ManualClock` (then
    :meth:`advance` moves it) or any ``() -> unix seconds`` callable; default: real time.
    *queue_cap*: the queue limit, a :class:`~batchcore.testing.emulation.QueueCap` (for
    example ``QueueCap(limit=3_000_000)``, Tier 1's for Gemini 2.5 Flash: enqueued tokens per
    model, counted as the answers' ``promptTokenCount``): a create that does not fit beside the
    active batch jobs is refused with a 429 ``RESOURCE_EXHAUSTED`` (``queue`` holds the cap,
    ``queue.high_water`` and ``queue.refused``). It implements the conformance kit's
    ``ContractBackend``.
    """

    WORKDIR_PREFIX = "batchcore-gemini-emulator-"
    #: The create call, as registered: where the kit's ``lost_create`` fault is injected.
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", _CREATE)
    # The SDK downloads a responses file from files/{id}:download (3.x); the /download/ root
    # serves the same (see inject_fault).
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = ("GET", _FILE)

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        api_key: str = DEFAULT_API_KEY,
        pending_seconds: float = 5.0,
        processing_seconds: float = 60.0,
        expiry_seconds: float = 48 * _HOUR,
        max_inline_bytes: int = 20_000_000,
        max_file_bytes: int = 2_000_000_000,
        page_size: int = 50,
        queue_cap: QueueCap | None = None,
        seed: int | None = 0,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(clock=clock, workdir_parent=workdir)
        self.api_key = api_key
        self.pending_seconds = pending_seconds
        self.processing_seconds = processing_seconds
        self.expiry_seconds = expiry_seconds
        self.max_inline_bytes = max_inline_bytes
        self.max_file_bytes = max_file_bytes
        self.page_size = page_size
        #: The queue of enqueued tokens per model (``queue.cap``, ``queue.high_water``,
        #: ``queue.refused``).
        self.queue = QueueGate(queue_cap)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._batches: dict[str, EmulatedBatch] = {}
        self._files: dict[str, _File] = {}
        self._uploads: dict[str, _Upload] = {}
        self._ids = itertools.count(1)
        self._created = 0
        self._register_routes()

    # -- inspection and scripting ------------------------------------------------------------

    def fault(self, kind: str) -> Fault | None:
        """The conformance kit's fault named *kind*, with Google's error body (``rate_limit``
        429 with ``retry-after: 0``, ``server_error`` 500, ``overloaded`` 503, ``unauthorized``
        401, ``reset``); None for another kind. :func:`error_fault` makes any other error."""
        retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}
        faults = {
            "rate_limit": error_fault(429, headers={"retry-after": "0"}, details=[retry_info]),
            "server_error": error_fault(500),
            "overloaded": error_fault(503, message="The model is overloaded. Please try later."),
            "unauthorized": error_fault(401),
            "reset": Fault.reset(),
        }
        return faults.get(kind)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request this emulator answers with a per-request ``INVALID_ARGUMENT`` error."""
        return BatchRequest.from_dict(
            {
                "custom_id": custom_id,
                "model": model,
                "messages": [
                    {
                        "role": "user",
                        "content": f"{ERROR_TRIGGER}INVALID_ARGUMENT] This request fails, as "
                        "asked.",
                    }
                ],
                "params": {"max_tokens": 16},
            }
        )

    def batch_count(self) -> int:
        """Batches created so far (deleted ones included): what a lost create must not double."""
        with self._lock:
            return self._created

    def batch_ids(self) -> list[str]:
        """Names (``batches/...``) of the batches that exist, oldest first."""
        with self._lock:
            return [f"batches/{b.id}" for b in self._batches.values()]

    def batch(self, name: str) -> dict[str, Any]:
        """The batch *name* (``batches/...``) as the API shows it now, as plain JSON."""
        now = self.now()
        with self._lock:
            found = self._find(name.removeprefix("batches/"))
            self._settle(found, now)
            data: dict[str, Any] = orjson.loads(orjson.dumps(operation(found, now)))
            return data

    def submitted_requests(self, name: str) -> dict[str | None, Any]:
        """The requests of batch *name*, by key, as received (inline or from its file)."""
        with self._lock:
            found = self._find(name.removeprefix("batches/"))
        config = orjson.loads(found.input_config)
        if "fileName" in config:
            file = self._files[config["fileName"].removeprefix("files/")]
            lines = [orjson.loads(line) for line in file.path.read_bytes().splitlines() if line]
            return {line.get("key"): line.get("request") for line in lines}
        items = config["requests"]["requests"]
        return {(item.get("metadata") or {}).get("key"): item["request"] for item in items}

    def file_names(self) -> list[str]:
        """Names (``files/...``) of the files that exist (uploaded and generated)."""
        with self._lock:
            return [f"files/{f.id}" for f in self._files.values()]

    def fail_batch(self, name: str, message: str = "the batch failed") -> None:
        """End the batch *name* as ``BATCH_STATE_FAILED`` with *message*."""
        with self._lock:
            self._find(name.removeprefix("batches/")).failure = message

    def inject_fault(
        self, kind: str, *, method: str = "*", route: str = "*", times: int = 1
    ) -> None:
        if kind == CORRUPT_RESULT_LINE:
            # Whichever of the two download routes the SDK in use calls gets the fault.
            self.inject("GET", _DOWNLOAD, Fault.corrupt_line(2), times=times)
        super().inject_fault(kind, method=method, route=route, times=times)

    # -- routes ------------------------------------------------------------------------------

    def _register_routes(self) -> None:
        routes: list[tuple[str, str, Callable[[Request], Response], bool]] = [
            ("POST", _CREATE, self._create, True),
            ("GET", _BATCHES, self._list, True),
            ("GET", _BATCH, self._get, True),
            ("POST", _BATCH, self._batch_action, True),
            ("DELETE", _BATCH, self._delete, True),
            ("POST", _UPLOAD, self._upload, False),
            ("GET", _FILE, self._file, True),
            ("GET", _DOWNLOAD, self._file, True),
            ("DELETE", _FILE, self._delete_file, True),
        ]
        for method, pattern, handler, keyed in routes:
            self.server.add_route(method, pattern, self._guarded(handler, keyed=keyed))

    def _guarded(
        self, handler: Callable[[Request], Response], *, keyed: bool
    ) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            try:
                version = request.path_params.get("version")
                if version not in API_VERSIONS:
                    raise Reject(404, "NOT_FOUND", f"no API version {version!r}")
                if keyed:
                    self._check_key(request)
                return handler(request)
            except Reject as reject:
                return Response.json(
                    error_body(reject.status, reject.rpc, reject.message, reject.details),
                    status=reject.status,
                )

        return serve

    def _check_key(self, request: Request) -> None:
        key = request.header("x-goog-api-key") or request.arg("key")
        if not key:
            raise Reject(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise Reject(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )

    # -- batches

    def _create(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].rpartition(":")
        if method != "batchGenerateContent":
            if method == "asyncBatchEmbedContent":
                raise Reject(501, "UNIMPLEMENTED", "embedding batches are not emulated")
            raise Reject(404, "NOT_FOUND", f"no method {method!r} on models")
        if not model.startswith("gemini-"):
            raise Reject(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version "
                f"{request.path_params['version']}, or is not supported for "
                "batchGenerateContent.",
            )
        if len(request.body) > self.max_inline_bytes:
            raise Reject(
                400,
                "INVALID_ARGUMENT",
                f"Request payload size exceeds the limit: {self.max_inline_bytes} bytes.",
            )
        body = _json_body(request)
        batch = _fields(body, {"batch"}, "").get("batch")
        spec = _fields(batch, {"model", "displayName", "inputConfig", "priority"}, "batch")
        config = _fields(spec.get("inputConfig"), {"fileName", "requests"}, "batch.inputConfig")
        if ("fileName" in config) == ("requests" in config):
            raise Reject(
                400, "INVALID_ARGUMENT", "batch.inputConfig: set exactly one of fileName, requests"
            )
        display_name = spec.get("displayName")
        if display_name is not None and not isinstance(display_name, str):
            raise Reject(400, "INVALID_ARGUMENT", "batch.displayName: must be a string")
        priority = spec.get("priority")
        workdir = self.workdir
        assert workdir is not None
        now = self.now()
        with self._lock:
            batch_id = f"emu{next(self._ids):05d}{secrets.token_hex(6)}"
            answers = workdir / f"batch-{batch_id}.answers.jsonl"
            failure: str | None = None
            if "fileName" in config:
                items, failure = self._file_items(config["fileName"])
                normalised = {"fileName": config["fileName"]}
            else:
                items = _inline_items(config["requests"])
                normalised = {"requests": {"requests": config["requests"]["requests"]}}
            tokens = sum(input_tokens(req) for _, req, problem in items if problem is None)
            if failure is None:
                self._admit(Enqueued(model=f"models/{model}", tokens=tokens, requests=len(items)))
            keys, errors = write_answers(answers, items, f"models/{model}")
            found = EmulatedBatch(
                id=batch_id,
                model=f"models/{model}",
                display_name=display_name,
                created=now,
                pending_seconds=self.pending_seconds,
                processing_seconds=self.processing_seconds,
                expiry_seconds=self.expiry_seconds,
                input_config=orjson.dumps(normalised),
                file_mode="fileName" in config,
                answers_path=answers,
                keys=keys,
                errors=errors,
                shuffle_seed=self._random.randrange(2**32),
                priority=int(priority) if priority is not None else None,
                failure=failure,
                tokens=tokens,
            )
            self._batches[batch_id] = found
            self._created += 1
            return Response.json(operation(found, now))

    def _admit(self, batch: Enqueued) -> None:
        """Refuse the create with a 429 ``RESOURCE_EXHAUSTED`` when the model's queue has no
        room for *batch* beside the active batch jobs."""
        now = self.now()
        waiting = [
            held for other in self._batches.values() if (held := other.enqueued(now)) is not None
        ]
        refusal = self.queue.admit(batch, waiting)
        if refusal is not None:
            raise queue_full_error(refusal)

    def _file_items(self, name: Any) -> tuple[list[tuple[str | None, Any, str | None]], str | None]:
        if not isinstance(name, str) or not name.startswith("files/"):
            raise Reject(400, "INVALID_ARGUMENT", "batch.inputConfig.fileName: must be files/...")
        file = self._files.get(name.removeprefix("files/"))
        if file is None or file.generated:
            raise Reject(404, "NOT_FOUND", f"{name} does not exist or is not an uploaded file")
        items: list[tuple[str | None, Any, str | None]] = []
        with open(file.path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return [], f"the input file {name}: line {number} is not valid JSON"
                if not isinstance(entry, dict) or set(entry) - {"key", "request"}:
                    items.append((None, None, f"line {number}: must be {{key, request}}"))
                    continue
                key = entry.get("key")
                items.append(
                    (
                        key if isinstance(key, str) else None,
                        entry.get("request"),
                        request_problem(entry.get("request")),
                    )
                )
        return items, None

    def _list(self, request: Request) -> Response:
        raw_size = request.arg("pageSize") or str(self.page_size)
        if not raw_size.isdigit():
            raise Reject(400, "INVALID_ARGUMENT", "pageSize: must be a positive integer")
        size = min(max(int(raw_size), 1), 1000)
        token = request.arg("pageToken") or "0"
        if not token.startswith("o") and token != "0":
            raise Reject(400, "INVALID_ARGUMENT", f"pageToken: {token!r} is not valid")
        start = int(token.lstrip("o") or 0)
        now = self.now()
        with self._lock:
            newest_first = list(reversed(self._batches.values()))
            page = newest_first[start : start + size]
            for found in page:
                self._settle(found, now)
            operations = [operation(found, now, with_input=False) for found in page]
            more = start + size < len(newest_first)
        body: dict[str, Any] = {"operations": operations}
        if more:
            body["nextPageToken"] = f"o{start + size}"
        return Response.json(body)

    def _get(self, request: Request) -> Response:
        target = request.path_params["target"]
        if ":" in target:
            raise Reject(404, "NOT_FOUND", f"no GET method for batches/{target}")
        now = self.now()
        with self._lock:
            found = self._find(target)
            self._settle(found, now)
            return Response.json(operation(found, now))

    def _batch_action(self, request: Request) -> Response:
        batch_id, _, action = request.path_params["target"].partition(":")
        if action == "delete":
            return self._remove(batch_id)
        if action != "cancel":
            raise Reject(404, "NOT_FOUND", f"no method {action!r} on batches")
        now = self.now()
        with self._lock:
            found = self._find(batch_id)
            state = found.state(now)
            if state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                raise Reject(
                    400,
                    "FAILED_PRECONDITION",
                    f"batches/{batch_id} is {state} and can no longer be cancelled.",
                )
            found.cancelled_at = now
        return Response.json({})

    def _delete(self, request: Request) -> Response:
        return self._remove(request.path_params["target"])

    def _remove(self, batch_id: str) -> Response:
        with self._lock:
            self._find(batch_id)
            # Deleting forgets the operation; it does not cancel it (google.longrunning).
            del self._batches[batch_id]
        return Response.json({})

    def _find(self, batch_id: str) -> EmulatedBatch:
        found = self._batches.get(batch_id)
        if found is None:
            raise Reject(404, "NOT_FOUND", f"Batch batches/{batch_id} not found.")
        return found

    def _settle(self, batch: EmulatedBatch, now: float) -> None:
        """Write the responses file of a file batch once it has ended with answers."""
        if not batch.file_mode or batch.responses_file is not None:
            return
        if batch.state(now) not in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"):
            return
        finished = batch.finished(now)
        if not finished:
            return
        workdir = self.workdir
        assert workdir is not None
        file_id = f"batch-{batch.id}"
        path = workdir / f"{file_id}.responses.jsonl"
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for line in batch.answer_lines(finished):
                out.write(line + b"\n")
                digest.update(line + b"\n")
        self._files[file_id] = _File(
            id=file_id,
            display_name=f"{file_id}-responses",
            mime_type="application/jsonl",
            size=path.stat().st_size,
            path=path,
            created=now,
            generated=True,
            sha256=base64.b64encode(digest.digest()).decode(),
        )
        batch.responses_file = f"files/{file_id}"

    # -- files

    def _upload(self, request: Request) -> Response:
        upload_id = request.arg("upload_id")
        if upload_id is None:
            self._check_key(request)
            return self._start_upload(request)
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise Reject(404, "NOT_FOUND", "unknown or expired upload session")
        command = {c.strip() for c in (request.header("x-goog-upload-command") or "").split(",")}
        offset = request.header("x-goog-upload-offset")
        if "upload" in command:
            if offset is None or not offset.isdigit() or int(offset) != upload.received:
                raise Reject(
                    400, "INVALID_ARGUMENT", f"X-Goog-Upload-Offset must be {upload.received}"
                )
            with open(upload.path, "ab") as out:
                out.write(request.body)
            upload.received += len(request.body)
        if "finalize" not in command:
            return Response(status=200, headers={"x-goog-upload-status": "active"})
        if upload.received != upload.size:
            raise Reject(
                400,
                "INVALID_ARGUMENT",
                f"the upload has {upload.received} bytes, not the {upload.size} announced",
            )
        now = self.now()
        data = upload.path.read_bytes()
        with self._lock:
            del self._uploads[upload_id]
            file_id = secrets.token_hex(6)
            file = _File(
                id=file_id,
                display_name=upload.display_name,
                mime_type=upload.mime_type,
                size=upload.size,
                path=upload.path,
                created=now,
                generated=False,
                sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            )
            self._files[file_id] = file
        return Response.json(
            {"file": self._file_object(file)}, headers={"x-goog-upload-status": "final"}
        )

    def _start_upload(self, request: Request) -> Response:
        if (request.header("x-goog-upload-protocol") or "").lower() != "resumable":
            raise Reject(400, "INVALID_ARGUMENT", "X-Goog-Upload-Protocol must be resumable")
        if (request.header("x-goog-upload-command") or "").lower() != "start":
            raise Reject(400, "INVALID_ARGUMENT", "X-Goog-Upload-Command must be start")
        raw_size = request.header("x-goog-upload-header-content-length") or ""
        if not raw_size.isdigit():
            raise Reject(400, "INVALID_ARGUMENT", "X-Goog-Upload-Header-Content-Length is required")
        size = int(raw_size)
        if size > self.max_file_bytes:
            raise Reject(
                400, "INVALID_ARGUMENT", f"files are limited to {self.max_file_bytes} bytes"
            )
        body = _json_body(request) if request.body else {}
        meta = _fields(body, {"file"}, "").get("file") or {}
        if not isinstance(meta, dict):
            raise Reject(400, "INVALID_ARGUMENT", "file: must be an object")
        from google.genai import types

        try:
            file = types.File.model_validate(meta)
        except ValueError as exc:
            raise Reject(400, "INVALID_ARGUMENT", f"file: {str(exc).splitlines()[0]}") from None
        mime = request.header("x-goog-upload-header-content-type") or file.mime_type
        if not mime:
            raise Reject(400, "INVALID_ARGUMENT", "the file's mime type is required")
        workdir = self.workdir
        assert workdir is not None
        upload_id = secrets.token_urlsafe(12)
        path = workdir / f"upload-{upload_id}"
        path.write_bytes(b"")
        with self._lock:
            self._uploads[upload_id] = _Upload(
                path=path, size=size, mime_type=mime, display_name=file.display_name
            )
        version = request.path_params["version"]
        url = f"{self.url}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return Response(
            status=200,
            headers={
                "x-goog-upload-url": url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": str(8 * 1024 * 1024),
            },
        )

    def _file_object(self, file: _File) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": f"files/{file.id}",
            "mimeType": file.mime_type,
            "sizeBytes": str(file.size),
            "createTime": rfc3339(file.created),
            "updateTime": rfc3339(file.created),
            "expirationTime": rfc3339(file.created + 48 * _HOUR),
            "sha256Hash": file.sha256,
            "uri": f"{self.url}/v1/files/{file.id}",
            "state": "ACTIVE",
            "source": "GENERATED" if file.generated else "UPLOADED",
        }
        if file.display_name:
            data["displayName"] = file.display_name
        if file.generated:
            data["downloadUri"] = f"{self.url}/download/v1/files/{file.id}:download?alt=media"
        return data

    def _file(self, request: Request) -> Response:
        file_id, _, action = request.path_params["target"].partition(":")
        with self._lock:
            file = self._files.get(file_id)
        if file is None:
            raise Reject(404, "NOT_FOUND", f"File files/{file_id} not found.")
        if not action:
            return Response.json(self._file_object(file))
        if action != "download":
            raise Reject(404, "NOT_FOUND", f"no method {action!r} on files")
        if not file.generated:
            raise Reject(400, "FAILED_PRECONDITION", "Only generated files can be downloaded.")
        return Response(
            status=200, body=_chunks(file.path), headers={"content-type": file.mime_type}
        )

    def _delete_file(self, request: Request) -> Response:
        file_id = request.path_params["target"]
        with self._lock:
            if self._files.pop(file_id, None) is None:
                raise Reject(404, "NOT_FOUND", f"File files/{file_id} not found.")
        return Response.json({})


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise Reject(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None


def _fields(value: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """*value*'s fields, camelCased (Google's JSON takes both spellings); 400 for any other."""
    if not isinstance(value, dict):
        raise Reject(400, "INVALID_ARGUMENT", f"{where or 'body'}: must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = "".join(
            part if index == 0 else part[:1].upper() + part[1:]
            for index, part in enumerate(key.split("_"))
        )
        if name not in allowed:
            raise Reject(
                400,
                "INVALID_ARGUMENT",
                f"Invalid JSON payload received. Unknown name {key!r} at '{where}': Cannot find "
                "field.",
            )
        out[name] = item
    return out


def _inline_items(requests: Any) -> list[tuple[str | None, Any, str | None]]:
    holder = _fields(requests, {"requests"}, "batch.inputConfig.requests")
    items = holder.get("requests")
    if not isinstance(items, list) or not items:
        raise Reject(400, "INVALID_ARGUMENT", "batch.inputConfig.requests.requests: required")
    out: list[tuple[str | None, Any, str | None]] = []
    for index, item in enumerate(items):
        where = f"batch.inputConfig.requests.requests[{index}]"
        fields = _fields(item, {"request", "metadata"}, where)
        problem = request_problem(fields.get("request"))
        if problem is not None:
            # An inline request the API cannot read fails the whole create, as a bad body.
            raise Reject(400, "INVALID_ARGUMENT", f"{where}.{problem}")
        metadata = fields.get("metadata")
        key = metadata.get("key") if isinstance(metadata, dict) else None
        out.append((key if isinstance(key, str) else None, fields["request"], None))
    return out


@contextmanager
def sandbox() -> Iterator[dict[str, str]]:
    """Run an emulator on the real clock with short durations (a batch takes about two
    seconds); yields the provider config overrides pointing at it: ``base_url``, ``api_key``."""
    key = "AIzaSandbox-" + secrets.token_hex(16)
    with GeminiEmulator(api_key=key, pending_seconds=0.5, processing_seconds=1.5) as emulator:
        yield {"base_url": emulator.url, "api_key": key}
