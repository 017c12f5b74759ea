"""An emulator of Together AI's Files and Batches API on 127.0.0.1, for tests and demos.

::

    from batchcore.testing import ManualClock
    from batchcore_together.testing import TogetherEmulator

    with TogetherEmulator(clock=ManualClock()) as emulator:
        provider = TogetherBatchProvider(config={"base_url": emulator.url + "/v1",
                                                 "api_key": emulator.api_key})
        ...
        emulator.advance(3600)             # batches progress with the clock

What it does, like the API (the schemas it checks are in ``_spec.json``, each with its source):

* ``POST /v1/files/upload`` (``multipart/form-data``: ``purpose``, ``file_name``, ``file_type``,
  ``file``; checked against the upload form's schema; a file over 100 MB is refused),
  ``GET /v1/files``, ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (streamed from
  disk), ``DELETE /v1/files/{id}``;
* ``POST /v1/batches``, its body checked strictly against ``CreateBatchRequest`` (unknown
  fields, types), the input file's purpose ``batch-api``, answered ``201`` with the job
  *wrapped*, ``{"job": {...}}`` (plus ``"warning"`` when :attr:`TogetherEmulator.create_warning`
  is set); ``GET /v1/batches`` (a bare array, newest first), ``GET /v1/batches/{id}`` (the bare
  job), ``POST /v1/batches/{id}/cancel``. Batch routes answer errors as ``{"error": "..."}``,
  file routes (and authentication failures) as ``{"error": {"message", "type", "code"}}``.
* validation of the input file when the batch is created, line by line: ``custom_id`` (at most
  64 characters, unique) and a ``body`` that Together's chat completions request schema accepts
  strictly (a field it does not name, at any depth, is refused), one model per batch, at most
  50,000 lines. One bad line fails the whole batch (``FAILED`` with ``error``), as Together's
  validation does; so does a model Together lists as unavailable for batch.
* the queue limit of enqueued tokens per model, when given (``queue_cap``): a batch whose
  input tokens do not fit beside the batches that have not ended is created and then
  ``FAILED`` at validation, its ``error`` saying "Enqueued token limit reached for model ..."
  (Together documents the limit, not how a batch over it fails: the words are the emulator's);
* a lifecycle on the clock: ``VALIDATING`` -> ``IN_PROGRESS`` (``progress`` from 0 to 100 as
  requests finish one by one in a shuffled order) -> ``COMPLETED``; a batch still running when
  its window closes is ``EXPIRED``, and a cancel makes it ``CANCELLED``, each keeping what had
  finished in its output file; requests that never ran get no line at all.
* deterministic answers in Together's shape (:func:`batchcore_together._emulation.together_answer`):
  "Echo: <last user message>" cut to ``max_tokens``, structured output valid against the
  requested schema, forced tool calls, usage; per-request failures on demand:
  ``[emulator-fail:500]`` (any status) or ``[emulator-fail:some_code]`` in a request's text
  gives an error-file line ``{"custom_id", "error": {"message", "code"}}``,
  ``[emulator-fail:drop]`` loses the request.
* faults: :meth:`TogetherEmulator.inject` (any :class:`~batchcore.testing.Fault`),
  :meth:`~TogetherEmulator.fault` for the named ones with Together's error bodies, and the
  conformance kit's ``lost_create`` (the next create is carried out, its answer never comes).

Every call needs ``Authorization: Bearer <api_key>`` (401 otherwise).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson

from batchcore.plugin import CHAT_COMPLETIONS, BatchRequest
from batchcore.testing import Fault, ManualClock, Request, Response, VendorEmulator
from batchcore.testing.emulation import (
    FAIL_MARKER,
    EmulatorStoppedError,
    FileStore,
    InputScan,
    Phase,
    QueueCap,
    QueueGate,
    QueueRefusal,
    StoredFile,
    Timing,
    iter_file_lines,
    scan_input,
)
from batchcore.testing.multipart import MultipartError, parse_multipart
from batchcore_together._emulation import (
    EmulatedBatch,
    describe,
    enqueued_of,
    job_object,
    line_checker,
    spec_validator,
    validation_error,
    write_results,
)
from batchcore_together._models import MAX_LINE_BYTES, TOGETHER_LIMITS

__all__ = ["DEFAULT_API_KEY", "FAIL_MARKER", "TogetherEmulator", "sandbox"]

#: The key an emulator accepts unless given another.
DEFAULT_API_KEY = "together-emulator-0123456789abcdef"

_AUDIO_ENDPOINTS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
_INPUT_PURPOSE = "batch-api"
_OUTPUT_PURPOSE = "batch-generated"


class _ApiError(Exception):
    """An error answer; ``detail`` is the error's type (for the object-shaped bodies)."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def _error_data(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """Together's general error body (``ErrorData``)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


#: The named faults: (status, message, type, code, headers), or a transport fault.
_FAULTS: dict[str, tuple[int, str, str, str | None, dict[str, str]] | Fault] = {
    "rate_limit": (
        429,
        "You have reached the rate limit for this endpoint; please retry shortly.",
        "rate_limit_exceeded",
        "rate_limit_exceeded",
        {"retry-after": "0"},
    ),
    "server_error": (500, "Internal server error.", "server_error", None, {}),
    "overloaded": (
        503,
        "The server is overloaded; please retry shortly.",
        "service_unavailable",
        "service_unavailable",
        {},
    ),
    "unauthorized": (
        401,
        "Invalid API key provided.",
        "invalid_request_error",
        "invalid_api_key",
        {},
    ),
    "forbidden": (403, "Access denied.", "invalid_request_error", "permission_denied", {}),
    "not_found": (404, "Not found.", "invalid_request_error", None, {}),
    "bad_request": (400, "Invalid request.", "invalid_request_error", None, {}),
    "gateway_timeout": (504, "Gateway timeout.", "server_error", None, {}),
    "reset": Fault.reset(),
    "hang": Fault.hang(),
    "truncate": Fault.truncate(10),
}


class TogetherEmulator(VendorEmulator):
    """Together's Files and Batches API on 127.0.0.1 (see the module docs).

    Clients use ``url + "/v1"`` as their base URL. *clock*: a
    :class:`~batchcore.testing.ManualClock` (the default: time moves only with :meth:`advance`)
    or any ``() -> unix seconds`` callable such as ``time.time`` (then :meth:`advance` adds an
    offset). *api_key*: the only key accepted. The ``*_seconds`` durations shape the lifecycle;
    *window_seconds* is when a running batch expires. *seed* fixes ids and the shuffled
    completion order. *queue_cap*: the queue limit, a
    :class:`~batchcore.testing.emulation.QueueCap` (Together's is ``QueueCap(limit=30 *
    10**9)``, enqueued tokens per model, counted as the answers' usage counts them): a batch
    that does not fit beside the batches not ended is created and fails validation, its
    ``error`` speaking of the enqueued token limit (``queue`` holds the cap,
    ``queue.high_water`` and ``queue.refused``). *workdir*: where the emulator keeps its
    files (in a temporary directory made inside it; default: the system's temporary
    directory).

    Also a ``ContractBackend`` for batchcore's conformance kit (``FAULTS``, :meth:`advance`,
    :meth:`inject_fault`, :meth:`call_count`, :meth:`batch_count`, :meth:`failing_request`).
    """

    WORKDIR_PREFIX = "batchcore-together-emulator-"
    #: The create call, as registered: where the kit's ``lost_create`` fault is injected.
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", "/v1/batches")
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = ("GET", "/v1/files/{file_id}/content")

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        api_key: str = DEFAULT_API_KEY,
        validating_seconds: float = 30.0,
        processing_seconds: float = 600.0,
        finalizing_seconds: float = 30.0,
        cancelling_seconds: float = 0.0,
        window_seconds: float = 86_400.0,
        max_requests: int = TOGETHER_LIMITS.max_requests,
        max_file_bytes: int = TOGETHER_LIMITS.max_bytes,
        max_line_bytes: int = MAX_LINE_BYTES,
        queue_cap: QueueCap | None = None,
        seed: int = 0,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(
            clock=clock if clock is not None else ManualClock(), workdir_parent=workdir
        )
        self.api_key = api_key
        self.timing = Timing(
            validating=validating_seconds,
            processing=processing_seconds,
            finalizing=finalizing_seconds,
            cancelling=cancelling_seconds,
            window=window_seconds,
        )
        self.max_requests = max_requests
        self.max_file_bytes = max_file_bytes
        self.max_line_bytes = max_line_bytes
        #: The queue of enqueued tokens per model (``queue.cap``, ``queue.high_water``,
        #: ``queue.refused``).
        self.queue = QueueGate(queue_cap)
        self.seed = seed
        #: A warning the next creates answer with (``{"job": ..., "warning": ...}``), or None.
        self.create_warning: str | None = None
        #: Every create body received, in order (refused ones included).
        self.created_batch_requests: list[dict[str, Any]] = []
        #: Every upload received: its text fields and its file's name and size.
        self.uploads: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._files = FileStore(lambda: self.workdir, new_id=lambda: "file-" + self._uuid())
        self._batches: dict[str, EmulatedBatch] = {}
        self._created = 0
        self.server.unknown_route = lambda status, message: Response.json(
            _error_data(message, "invalid_request_error", "unknown_url"), status=status
        )
        for method, pattern, handler, batch_route in (
            ("POST", "/v1/files/upload", self._upload, False),
            ("GET", "/v1/files", self._list_files, False),
            ("GET", "/v1/files/{file_id}", self._retrieve_file, False),
            ("DELETE", "/v1/files/{file_id}", self._delete_file, False),
            ("GET", "/v1/files/{file_id}/content", self._file_content, False),
            ("POST", "/v1/batches", self._create_batch, True),
            ("GET", "/v1/batches", self._list_batches, True),
            ("GET", "/v1/batches/{batch_id}", self._retrieve_batch, True),
            ("POST", "/v1/batches/{batch_id}/cancel", self._cancel_batch, True),
        ):
            self.server.add_route(method, pattern, self._endpoint(handler, batch_route))

    # -- the conformance kit's backend (advance, inject_fault, call_count: see the base) -------

    def fault(self, kind: str) -> Fault | None:
        """The fault named *kind* with Together's error body: ``rate_limit`` (429, retry-after
        0), ``server_error`` (500), ``overloaded`` (503), ``unauthorized`` (401), ``forbidden``
        (403), ``not_found`` (404), ``bad_request`` (400), ``gateway_timeout`` (504), ``reset``,
        ``hang``, ``truncate``; None for another kind."""
        known = _FAULTS.get(kind)
        if known is None or isinstance(known, Fault):
            return known
        status, message, error_type, code, headers = known
        return Fault.status(status, headers=headers, body=_error_data(message, error_type, code))

    def batch_count(self) -> int:
        """Batches created so far: what a lost create must not double."""
        with self._lock:
            return self._created

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request this emulator answers with an error-file line (code ``invalid_request``)."""
        return BatchRequest(
            custom_id=custom_id,
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": "This request fails, as asked "
                    + FAIL_MARKER.format("invalid_request"),
                }
            ],
            params={"max_tokens": 16},
        )

    # -- inspection ------------------------------------------------------------------------

    def batch_ids(self) -> list[str]:
        """The ids of the batches created, oldest first."""
        with self._lock:
            return list(self._batches)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch job *batch_id* as the API shows it now (KeyError for an unknown id)."""
        with self._lock:
            found = self._batches[batch_id]
            return job_object(found, self._phase(found), self.timing)

    def file_content(self, file_id: str) -> bytes:
        """The content of a stored file (KeyError for an unknown id)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.path.read_bytes()

    def submitted_bodies(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """The chat bodies of batch *batch_id*, by custom_id, as received."""
        with self._lock:
            found = self._batches[batch_id]
        lines = (orjson.loads(line) for line in iter_file_lines(found.input_path))
        return {line["custom_id"]: line["body"] for line in lines}

    def file_ids(self, purpose: str | None = None) -> list[str]:
        """The ids of the stored files (with *purpose*, when given), newest first."""
        return [stored.id for stored in self._files.newest_first(purpose)]

    # -- plumbing --------------------------------------------------------------------------

    def _on_stop(self) -> None:
        self._files.clear()

    def _uuid(self) -> str:
        with self._lock:
            value = f"{self._rng.getrandbits(128):032x}"
        return f"{value[:8]}-{value[8:12]}-4{value[13:16]}-a{value[17:20]}-{value[20:]}"

    def _endpoint(
        self, handler: Callable[[Request], Response], batch_route: bool
    ) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            try:
                self._authorise(request)
                return handler(request)
            except _ApiError as error:
                if batch_route and error.status != 401:
                    return Response.json({"error": error.message}, status=error.status)
                return Response.json(_error_data(error.message, error.kind), status=error.status)
            except EmulatorStoppedError:
                return Response.json(
                    _error_data("The emulator is not running.", "server_error"), status=503
                )

        return serve

    def _authorise(self, request: Request) -> None:
        authorization = request.header("authorization") or ""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _ApiError(401, "No API key provided: send Authorization: Bearer <key>.")
        if not secrets.compare_digest(key.strip().encode(), self.api_key.encode()):
            raise _ApiError(
                401,
                "Invalid API key provided. You can find your API key at "
                "https://api.together.xyz/settings/api-keys.",
            )

    # -- files -----------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        try:
            parts = parse_multipart(request.body, request.header("content-type") or "")
        except MultipartError as exc:
            raise _ApiError(400, f"Invalid multipart/form-data body: {exc}.") from None
        form = {part.name: part for part in parts}
        fields = {
            name: bytes(part.data).decode("utf-8", "replace")
            for name, part in form.items()
            if part.filename is None
        }
        uploaded = form.get("file")
        self.uploads.append(
            {
                "fields": fields,
                "filename": None if uploaded is None else uploaded.filename,
                "size": None if uploaded is None else len(uploaded.data),
            }
        )
        problems = spec_validator().problems(
            "FileUploadForm", {**fields, **({"file": "<binary>"} if uploaded else {})}, limit=1
        )
        if problems:
            raise _ApiError(400, describe(problems[0]))
        assert uploaded is not None
        if uploaded.filename is None:
            raise _ApiError(400, "file: must be a file part (with a filename).")
        if len(uploaded.data) > self.max_file_bytes:
            raise _ApiError(
                400,
                f"file: {len(uploaded.data)} bytes; files for the batch API are limited to "
                f"{self.max_file_bytes} bytes.",
            )
        stored = self._files.add(
            uploaded.data,
            filename=fields["file_name"],
            purpose=fields["purpose"],
            created_at=int(self.now()),
        )
        return Response.json(self._file_object(stored, fields.get("file_type", "jsonl")))

    def _file_object(self, stored: StoredFile, file_type: str = "jsonl") -> dict[str, Any]:
        lines = sum(1 for _ in iter_file_lines(stored.path))
        return {
            "id": stored.id,
            "object": "file",
            "created_at": stored.created_at,
            "filename": stored.filename,
            "bytes": stored.size,
            "purpose": stored.purpose,
            "Processed": True,
            "FileType": file_type,
            "LineCount": lines,
        }

    def _stored(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise _ApiError(404, f"File {file_id!r} not found.")
        return stored

    def _list_files(self, request: Request) -> Response:
        data = [self._file_object(stored) for stored in self._files.newest_first()]
        return Response.json({"object": "list", "data": data})

    def _retrieve_file(self, request: Request) -> Response:
        return Response.json(self._file_object(self._stored(request.path_params["file_id"])))

    def _delete_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if self._files.delete(file_id) is None:
            raise _ApiError(404, f"File {file_id!r} not found.")
        return Response.json({"id": file_id, "deleted": True})

    def _file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        chunks = self._files.open_stream(file_id)
        if chunks is None:
            raise _ApiError(404, f"File {file_id!r} not found.")
        return Response(body=chunks, headers={"content-type": "application/octet-stream"})

    # -- batches ---------------------------------------------------------------------------

    def _create_batch(self, request: Request) -> Response:
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            raise _ApiError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        self.created_batch_requests.append(body)
        problems = spec_validator().problems("CreateBatchRequest", body, limit=1)
        if problems:
            raise _ApiError(400, describe(problems[0]))
        endpoint = body["endpoint"]
        if endpoint in _AUDIO_ENDPOINTS:
            raise _ApiError(400, f"The emulator does not answer {endpoint} batches.")
        if endpoint != CHAT_COMPLETIONS:
            raise _ApiError(400, f"Unsupported endpoint {endpoint!r}.")
        stored = self._files.get(body["input_file_id"])
        if stored is None:
            raise _ApiError(400, f"Input file {body['input_file_id']!r} not found.")
        if stored.purpose != _INPUT_PURPOSE:
            raise _ApiError(
                400,
                f"File {stored.id} has purpose {stored.purpose!r}; batch input files need "
                f"purpose {_INPUT_PURPOSE!r}.",
            )
        # Validation reads the whole file: outside the lock, so other calls are served meanwhile.
        scan = scan_input(stored.path, line_checker(), max_requests=self.max_requests)
        with self._lock:
            refusal = self._queue_refusal(scan)
            self._created += 1
            batch = EmulatedBatch.create(
                batch_id=self._uuid(),
                sequence=self._created,
                user_id="user_emulator",
                input_file_id=stored.id,
                input_path=stored.path,
                endpoint=endpoint,
                scan=scan,
                created_at=self.now(),
                seed=self.seed,
                refusal=refusal,
            )
            self._batches[batch.id] = batch
            answer: dict[str, Any] = {"job": job_object(batch, self._phase(batch), self.timing)}
        if self.create_warning is not None:
            answer["warning"] = self.create_warning
        return Response.json(answer, status=201)

    def _queue_refusal(self, scan: InputScan) -> QueueRefusal | None:
        """Why the model's queue has no room for a batch of *scan* (it is created all the same,
        and fails validation), or None: room, or an input that fails anyway."""
        if validation_error(scan) is not None:
            return None
        now = self.now()
        waiting = [
            batch.enqueued
            for batch in self._batches.values()
            if batch.enqueued is not None and not batch.phase(now, self.timing).terminal
        ]
        return self.queue.admit(enqueued_of(scan), waiting)

    def _get_batch(self, batch_id: str) -> EmulatedBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _ApiError(404, f"Batch job {batch_id!r} not found.")
        return batch

    def _list_batches(self, request: Request) -> Response:
        with self._lock:
            data = [
                job_object(batch, self._phase(batch), self.timing)
                for batch in reversed(self._batches.values())
            ]
        return Response.json(data)

    def _retrieve_batch(self, request: Request) -> Response:
        with self._lock:
            batch = self._get_batch(request.path_params["batch_id"])
            return Response.json(job_object(batch, self._phase(batch), self.timing))

    def _cancel_batch(self, request: Request) -> Response:
        with self._lock:
            batch = self._get_batch(request.path_params["batch_id"])
            phase = self._phase(batch)
            if phase.terminal:
                status = job_object(batch, phase, self.timing)["status"]
                raise _ApiError(400, f"Batch job {batch.id} is {status} and cannot be cancelled.")
            if batch.cancel_requested_at is None:
                batch.cancel_requested_at = self.now()
            return Response.json(job_object(batch, self._phase(batch), self.timing))

    def _phase(self, batch: EmulatedBatch) -> Phase:
        """The batch's phase now; an ended batch's result files are written on first sight."""
        phase = batch.phase(self.now(), self.timing)
        if phase.terminal and batch.error is None and not batch.finished:
            self._finish(batch, phase)
        return phase

    def _finish(self, batch: EmulatedBatch, phase: Phase) -> None:
        created = int(self.now())
        (output_id, output_path), (error_id, error_path) = (
            self._files.reserve(),
            self._files.reserve(),
        )
        with (
            open(output_path, "wb") as output,
            open(error_path, "wb") as errors,
            tempfile.TemporaryFile(dir=output_path.parent) as scratch,
        ):
            write_results(
                batch,
                phase,
                output=output,
                errors=errors,
                scratch=scratch,
                created=created,
                max_line_bytes=self.max_line_bytes,
            )
        for file_id, path, name in (
            (output_id, output_path, "output"),
            (error_id, error_path, "errors"),
        ):
            if path.stat().st_size == 0:
                path.unlink()
                continue
            self._files.register(
                file_id,
                path,
                filename=f"{batch.id}_{name}.jsonl",
                purpose=_OUTPUT_PURPOSE,
                created_at=created,
            )
            if name == "output":
                batch.output_file_id = file_id
            else:
                batch.error_file_id = file_id
        batch.finished = True


# -- the sandbox (the CLI runs on it with --sandbox) ------------------------------------------


@contextlib.contextmanager
def sandbox(*, clock: ManualClock | Callable[[], float] | None = None) -> Iterator[dict[str, Any]]:
    """Run an emulator on the real clock (or *clock*) where a batch ends within a few seconds,
    and yield the ``together`` provider config that points at it (``base_url``, ``api_key``)."""
    key = "together-sandbox-" + secrets.token_hex(16)
    with TogetherEmulator(
        clock=clock or time.time,
        api_key=key,
        validating_seconds=0.5,
        processing_seconds=2.0,
        finalizing_seconds=0.5,
        cancelling_seconds=0.0,
    ) as emulator:
        yield {"base_url": emulator.url + "/v1", "api_key": key}
