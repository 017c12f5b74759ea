"""An emulator of Mistral's files and batch jobs API on 127.0.0.1, for tests and demos.

::

    from batchcore.testing import ManualClock
    from batchcore_mistral.testing import MistralEmulator

    with MistralEmulator(clock=ManualClock()) as emulator:
        provider = MistralBatchProvider(config={"base_url": emulator.url,
                                                "api_key": emulator.api_key})
        ...
        emulator.advance(3600)             # jobs progress with the clock

What it does, like the API:

* ``POST /v1/files`` (multipart: ``file``, ``purpose``, ``expiry``, ``visibility``; the form is
  checked against the spec's ``MultiPartBodyParams``), ``GET /v1/files``,
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (streamed), ``DELETE /v1/files/{id}``;
* ``POST /v1/batch/jobs``, its body checked strictly against the spec's
  ``CreateBatchJobRequest`` (a field the spec does not name, a wrong type, a metadata key over
  32 characters, more than 10,000 inline requests: a 422 with the validation ``detail``), then
  as the API does: ``input_files`` or ``requests`` (one of them), a ``model``, files that exist
  with purpose ``batch``, at most ``max_requests`` requests; ``GET /v1/batch/jobs`` (newest
  first, ``page``/``page_size``, filtered by ``status``, ``model``, ``created_after`` and
  metadata, sent as the spec's form style does it: one query parameter per metadata key),
  ``GET /v1/batch/jobs/{id}`` (``?inline=true`` adds the results as ``outputs``),
  ``POST /v1/batch/jobs/{id}/cancel``;
* every input line is ``{custom_id, body}``; each body is checked against its endpoint's schema
  (``ChatCompletionRequest``, ``EmbeddingRequest``) strictly, the job's model filled in where a
  line has none: a body the spec refuses fails that request alone (a 422 line in the error
  file); a line that is not a request (not JSON, no custom_id, a repeated custom_id, fields
  other than ``custom_id`` and ``body``) fails the job (``FAILED``, with ``errors``);
* a lifecycle on the clock: ``QUEUED`` -> ``RUNNING`` (requests finish one by one, in a
  shuffled order) -> ``SUCCESS``; a job still running ``timeout_hours`` after its creation
  ends ``TIMEOUT_EXCEEDED`` with what had finished; a cancel goes through
  ``CANCELLATION_REQUESTED`` to ``CANCELLED``, keeping what had finished; the output file
  holds the answers, the error file the failures;
* deterministic answers (the engine's :func:`~batchcore.testing.emulation.answer_body`, in
  Mistral's shapes): "Echo: <last user message>" cut to ``max_tokens``, structured output valid
  against the requested schema, forced tool calls (``tool_choice`` ``any``/``required`` or a
  named function), a ``thinking`` chunk before the text for reasoning requests, embeddings from
  a hash of the input;
* per-request failures on demand: ``[emulator-fail:429]`` (any status) in a request's text gives
  an error line with that ``status_code``; ``[emulator-fail:some_code]`` an error line whose
  ``error.code`` is ``some_code``; ``[emulator-fail:drop]`` loses the request;
* the workspace's limit of pending requests, when given (``queue_cap``): a job create that
  would take the requests of the jobs that have not ended over it is refused with a 429 in
  Mistral's error shape (Mistral documents the limit, not the refusal's words: the message
  speaks of "pending requests");
* ``Authorization: Bearer <key>`` on every call (401 without it); a ``mistral-correlation-id``
  header on every answer; a job or file id that is not a UUID is a 422, an unknown one a 404;
* HTTP faults: :meth:`MistralEmulator.inject_fault` (``rate_limit``, ``capacity``,
  ``server_error``, ``overloaded``, ``unauthorized``, ``not_found``, ``bad_request``,
  ``unprocessable``, ``reset``, ``hang``, ``truncate``, and ``lost_create``: the next job
  create is carried out but its answer never arrives) or ``emulator.server.inject(...)``.

With ``result_files=False`` an ended job names no output or error file: its results are only
in ``outputs`` (``?inline=true``), as the API keeps the results of inline jobs.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

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
    Phase,
    QueueCap,
    QueueGate,
    RequestIds,
    Stage,
    StoredFile,
    Timing,
    iter_file_lines,
    scan_input,
)
from batchcore.testing.multipart import FormPart, MultipartError, parse_multipart
from batchcore_mistral._emulation import (
    EMULATED_ENDPOINTS,
    STATUS_WORDS,
    EmulatedJob,
    error_body,
    line_rules,
    queue_full_body,
    spec_validator,
    validation_body,
    validation_detail,
    write_results,
)

__all__ = [
    "DEFAULT_API_KEY",
    "FAIL_MARKER",
    "MistralEmulator",
    "QueueCap",
    "UploadRecord",
    "sandbox",
]

#: The key an emulator accepts unless given another.
DEFAULT_API_KEY = "mistral-emulator-0123456789abcdef"

_FILES = "/v1/files"
_FILE = "/v1/files/{file_id}"
_CONTENT = "/v1/files/{file_id}/content"
_JOBS = "/v1/batch/jobs"
_JOB = "/v1/batch/jobs/{job_id}"
_CANCEL = "/v1/batch/jobs/{job_id}/cancel"
#: Query parameters of the job list; any other parameter filters on a metadata key.
_LIST_PARAMS = frozenset(
    {
        "page",
        "page_size",
        "model",
        "agent_id",
        "created_after",
        "created_by_me",
        "status",
        "order_by",
    }
)
_DEFAULT_TIMEOUT_HOURS = 24

#: Named HTTP faults: (status, body, headers), or a transport fault.
_FAULTS: dict[str, tuple[int, dict[str, Any], dict[str, str]] | Fault] = {
    "rate_limit": (
        429,
        error_body("Requests rate limit exceeded", "rate_limited", "1300"),
        {"retry-after": "0"},
    ),
    "capacity": (
        429,
        error_body(
            "Service tier capacity exceeded for this model.",
            "service_tier_capacity_exceeded",
            "3505",
        ),
        {},
    ),
    "server_error": (500, error_body("Internal server error", "internal_server_error"), {}),
    "overloaded": (503, error_body("Service unavailable", "service_unavailable"), {}),
    "unauthorized": (401, {"message": "Unauthorized"}, {}),
    "not_found": (404, error_body("Not found", "invalid_request_error"), {}),
    "bad_request": (400, error_body("Invalid request", "invalid_request_error"), {}),
    "unprocessable": (
        422,
        validation_body(
            [{"type": "value_error", "loc": ["body"], "msg": "Invalid body", "input": None}]
        ),
        {},
    ),
    "reset": Fault.reset(),
    "hang": Fault.hang(),
    "truncate": Fault.truncate(10),
}


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _invalid(detail: list[dict[str, Any]]) -> _ApiError:
    return _ApiError(422, validation_body(detail))


def _bad(status: int, message: str, kind: str = "invalid_request_error") -> _ApiError:
    return _ApiError(status, error_body(message, kind))


def _check(schema: str, body: Any, where: tuple[str, ...] = ("body",)) -> None:
    """A 422 for what *body* breaks in the spec's *schema*, if anything."""
    problems = spec_validator().problems(schema, body, limit=5)
    if problems:
        raise _invalid(validation_detail(problems, where=where, value=body))


def _uuid_param(request: Request, name: str) -> str:
    value = request.path_params[name]
    try:
        uuid.UUID(value)
    except ValueError:
        raise _invalid(
            [
                {
                    "type": "uuid_parsing",
                    "loc": ["path", name],
                    "msg": "Input should be a valid UUID",
                    "input": value,
                }
            ]
        ) from None
    return value


@attrs.frozen(kw_only=True)
class UploadRecord:
    """What one ``POST /v1/files`` carried: its text fields and its file's name, content type
    and size."""

    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    size: int


class MistralEmulator(VendorEmulator):
    """Mistral's files and batch jobs API on 127.0.0.1 (see the module docs).

    :attr:`url` is the API root (a provider's ``base_url``). *clock*: a
    :class:`~batchcore.testing.ManualClock` (the default: time moves only with
    :meth:`advance`) or any ``() -> unix seconds`` callable such as ``time.time`` (then
    :meth:`advance` adds an offset). *api_key*: the key accepted. *max_requests* and
    *max_file_bytes*: the limits of a job and an upload. *queue_cap*: the workspace's limit of
    pending requests, a :class:`~batchcore.testing.emulation.QueueCap` (Mistral's is
    ``QueueCap(limit=1_000_000, measure="requests", per_model=False)``): a create that would
    take the requests of the jobs not ended over it is refused with a 429 (``queue`` holds the
    cap, ``queue.high_water`` and ``queue.refused``). *seed* fixes ids and the shuffled
    completion order. It is a ``ContractBackend`` for batchcore's conformance kit (``FAULTS``,
    :meth:`advance`, :meth:`inject_fault`, :meth:`call_count`, :meth:`batch_count`,
    :meth:`failing_request`).
    """

    WORKDIR_PREFIX = "batchcore-mistral-emulator-"
    #: The job create, as registered: where ``lost_create`` is injected.
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", _JOBS)
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = ("GET", _CONTENT)

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        api_key: str = DEFAULT_API_KEY,
        queued_seconds: float = 60.0,
        running_seconds: float = 600.0,
        finishing_seconds: float = 30.0,
        cancelling_seconds: float = 30.0,
        max_requests: int = 1_000_000,
        max_file_bytes: int = 512_000_000,
        result_files: bool = True,
        queue_cap: QueueCap | None = None,
        seed: int = 0,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(
            clock=clock if clock is not None else ManualClock(), workdir_parent=workdir
        )
        self.api_key = api_key
        self.timing = Timing(
            validating=queued_seconds,
            processing=running_seconds,
            finalizing=finishing_seconds,
            cancelling=cancelling_seconds,
        )
        self.max_requests = max_requests
        self.max_file_bytes = max_file_bytes
        self.result_files = result_files
        #: The workspace's queue of pending requests (``queue.cap``, ``queue.high_water``,
        #: ``queue.refused``).
        self.queue = QueueGate(queue_cap)
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._files = FileStore(lambda: self.workdir, new_id=self._new_id)
        self._jobs: dict[str, EmulatedJob] = {}
        self._correlation_ids = RequestIds(seed, prefix="")
        #: Every job create body received (parsed), in order.
        self.created_job_requests: list[dict[str, Any]] = []
        #: Every upload received, in order.
        self.uploads: list[UploadRecord] = []
        #: Every list query received (its parameters), in order.
        self.list_queries: list[dict[str, list[str]]] = []
        self.server.unknown_route = self._unknown_route
        for method, pattern, handler in (
            ("POST", _FILES, self._upload),
            ("GET", _FILES, self._list_files),
            ("GET", _FILE, self._retrieve_file),
            ("DELETE", _FILE, self._delete_file),
            ("GET", _CONTENT, self._file_content),
            ("POST", _JOBS, self._create_job),
            ("GET", _JOBS, self._list_jobs),
            ("GET", _JOB, self._retrieve_job),
            ("POST", _CANCEL, self._cancel_job),
        ):
            self.server.add_route(method, pattern, self._endpoint(handler))

    def _on_stop(self) -> None:
        self._files.clear()
        with self._lock:
            self._jobs.clear()

    # -- ContractBackend (advance, inject_fault and call_count come with the base) ---------

    def fault(self, kind: str) -> Fault | None:
        """The :class:`~batchcore.testing.Fault` named *kind* (see the module docs) with the
        API's error body; None for an unknown kind."""
        known = _FAULTS.get(kind)
        if known is None or isinstance(known, Fault):
            return known
        status, body, headers = known
        correlation = self._correlation_ids()
        if status == 401:
            body = {**body, "request_id": correlation}
        return Fault.status(
            status, headers={**headers, "mistral-correlation-id": correlation}, body=body
        )

    def batch_count(self) -> int:
        """Jobs created so far."""
        with self._lock:
            return len(self._jobs)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest:
        """A request this emulator answers with an error line (HTTP 400) inside the job."""
        return BatchRequest.from_dict(
            {
                "custom_id": custom_id,
                "model": model,
                "messages": [{"role": "user", "content": f"{FAIL_MARKER.format(400)} please fail"}],
                "params": {"max_tokens": 16},
            }
        )

    # -- inspection ------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Every job created so far (oldest first), as the API would show it now."""
        with self._lock:
            return [self._job_json(job) for job in self._jobs.values()]

    def job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self._job_json(self._jobs[job_id])

    def job_lines(self, job_id: str) -> list[dict[str, Any]]:
        """The requests of a job (``{custom_id, body}``), as received."""
        with self._lock:
            path = self._jobs[job_id].input_path
        return [orjson.loads(line) for line in iter_file_lines(path)]

    def invalid_requests(self, job_id: str) -> dict[int, list[dict[str, Any]]]:
        """Input index -> the 422 ``detail`` of each request of a job the spec refused."""
        with self._lock:
            return dict(self._jobs[job_id].invalid)

    def file_content(self, file_id: str) -> bytes:
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.path.read_bytes()

    # -- plumbing --------------------------------------------------------------------------

    def _new_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _endpoint(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            correlation = self._correlation_ids()
            try:
                self._authorise(request, correlation)
                response = handler(request)
            except _ApiError as error:
                response = Response.json(error.body, status=error.status)
            except EmulatorStoppedError:
                response = Response.json(
                    error_body("The emulator is not running.", "service_unavailable"), status=503
                )
            response.headers["mistral-correlation-id"] = correlation
            return response

        return serve

    def _authorise(self, request: Request, correlation: str) -> None:
        scheme, _, key = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            key.strip().encode(), self.api_key.encode()
        ):
            raise _ApiError(401, {"message": "Unauthorized", "request_id": correlation})

    def _unknown_route(self, status: int, message: str) -> Response:
        # FastAPI's own answers for a path or a method it does not serve.
        detail = "Not Found" if status == 404 else "Method Not Allowed"
        return Response.json({"detail": detail}, status=status)

    def _json_body(self, request: Request) -> Any:
        try:
            return request.json()
        except orjson.JSONDecodeError:
            raise _invalid(
                [
                    {
                        "type": "json_invalid",
                        "loc": ["body", 0],
                        "msg": "JSON decode error",
                        "input": {},
                    }
                ]
            ) from None

    # -- files -----------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        content_type = request.header("content-type") or ""
        if content_type.startswith("application/x-www-form-urlencoded"):
            # A form without a file part: its fields are read, and the file is found missing.
            pairs = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            parts = [
                FormPart(
                    name=name,
                    filename=None,
                    content_type=None,
                    headers={},
                    data=memoryview(value.encode()),
                )
                for name, value in pairs
            ]
        else:
            try:
                parts = parse_multipart(request.body, content_type)
            except MultipartError as exc:
                raise _bad(400, f"Invalid multipart body: {exc}") from None
        fields = {
            p.name: bytes(p.data).decode("utf-8", "replace") for p in parts if p.filename is None
        }
        uploads = [p for p in parts if p.filename is not None]
        form: dict[str, Any] = dict(fields)
        if "expiry" in form and form["expiry"].lstrip("-").isdigit():
            form["expiry"] = int(form["expiry"])
        for part in uploads:
            form[part.name] = "<binary>"
        _check("MultiPartBodyParams", form)
        file_part = next((p for p in uploads if p.name == "file"), None)
        if file_part is None:
            raise _invalid(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "file"],
                        "msg": "Value error, Expected UploadFile, received: <class 'str'>",
                        "input": fields.get("file"),
                    }
                ]
            )
        self.uploads.append(
            UploadRecord(
                fields=fields,
                filename=file_part.filename,
                content_type=file_part.content_type,
                size=len(file_part.data),
            )
        )
        if len(file_part.data) > self.max_file_bytes:
            raise _bad(413, f"The file is larger than the maximum of {self.max_file_bytes} bytes.")
        created = int(self.now())
        expiry = form.get("expiry")
        stored = self._files.add(
            file_part.data,
            filename=file_part.filename or "upload",
            purpose=form.get("purpose", "fine-tune"),
            created_at=created,
            expires_at=created + expiry * 3600 if isinstance(expiry, int) else None,
        )
        return Response.json(self._file_json(stored))

    def _file_json(self, stored: StoredFile) -> dict[str, Any]:
        if stored.purpose != "batch":
            sample_type, source = "instruct", "upload"
        elif stored.filename.endswith("_error.jsonl"):
            sample_type, source = "batch_error", "mistral"
        elif stored.filename.endswith("_output.jsonl"):
            sample_type, source = "batch_result", "mistral"
        else:
            sample_type, source = "batch_request", "upload"
        return {
            "id": stored.id,
            "object": "file",
            "bytes": stored.size,
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "sample_type": sample_type,
            "num_lines": sum(1 for _ in iter_file_lines(stored.path)),
            "mimetype": "application/jsonl" if stored.filename.endswith(".jsonl") else None,
            "source": source,
            "signature": None,
            "expires_at": stored.expires_at,
            "visibility": "workspace",
        }

    def _get_file(self, request: Request) -> StoredFile:
        file_id = _uuid_param(request, "file_id")
        stored = self._files.get(file_id)
        if stored is None:
            raise _bad(404, f"File {file_id} not found")
        return stored

    def _list_files(self, request: Request) -> Response:
        purpose = request.arg("purpose")
        data = [self._file_json(f) for f in self._files.newest_first(purpose)]
        return Response.json({"data": data, "object": "list", "total": len(data)})

    def _retrieve_file(self, request: Request) -> Response:
        return Response.json({**self._file_json(self._get_file(request)), "deleted": False})

    def _delete_file(self, request: Request) -> Response:
        stored = self._get_file(request)
        self._files.delete(stored.id)
        return Response.json({"id": stored.id, "object": "file", "deleted": True})

    def _file_content(self, request: Request) -> Response:
        stored = self._get_file(request)
        chunks = self._files.open_stream(stored.id)
        if chunks is None:
            raise _bad(404, f"File {stored.id} not found")
        return Response(body=chunks, headers={"content-type": "application/octet-stream"})

    # -- jobs ------------------------------------------------------------------------------

    def _create_job(self, request: Request) -> Response:
        body = self._json_body(request)
        if isinstance(body, dict):
            self.created_job_requests.append(body)
        _check("CreateBatchJobRequest", body)
        files, inline = body.get("input_files"), body.get("requests")
        if (files is None) == (inline is None):
            raise _invalid(
                [
                    {
                        "type": "value_error",
                        "loc": ["body"],
                        "msg": "Value error, exactly one of input_files and requests is needed",
                        "input": None,
                    }
                ]
            )
        endpoint, model = body["endpoint"], body.get("model")
        if not model:
            raise _bad(400, "A batch job needs a model (agents are not emulated).")
        if endpoint not in EMULATED_ENDPOINTS:
            raise _bad(400, f"The emulator does not answer {endpoint} batches.")
        workdir = self.workdir
        if workdir is None:
            raise EmulatorStoppedError("the emulator is not running")
        if inline is not None:
            path = Path(tempfile.mkstemp(dir=workdir, suffix=".jsonl")[1])
            with open(path, "wb") as out:
                for item in inline:
                    out.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
            files = []
        else:
            path = self._input_path(files, workdir)
        invalid: dict[int, list[dict[str, Any]]] = {}
        # Reading the input happens outside the lock: other calls are served meanwhile.
        scan = scan_input(
            path, line_rules(endpoint, model, invalid), max_requests=self.max_requests
        )
        if any(error.code == "too_many_tasks" for error in scan.errors):
            raise _bad(400, f"A batch job takes at most {self.max_requests} requests.")
        if scan.errors:
            invalid.clear()
        with self._lock:
            enqueued = self._enqueue(scan, model)
            job = EmulatedJob.create(
                job_id=self._new_id(),
                sequence=len(self._jobs) + 1,
                endpoint=endpoint,
                model=model,
                input_files=list(files),
                input_path=path,
                metadata=body.get("metadata"),
                timeout_hours=body.get("timeout_hours", _DEFAULT_TIMEOUT_HOURS),
                scan=scan,
                invalid=invalid,
                created_at=self.now(),
                seed=self.seed,
                enqueued=enqueued,
            )
            self._jobs[job.id] = job
            return Response.json(self._job_json(job))

    def _enqueue(self, scan: InputScan, model: str) -> Enqueued | None:
        """What a new job holds in the queue (None: its input failed and it never runs), or a
        429 when the queue has no room for it: the job is not created."""
        if scan.errors:
            return None
        enqueued = Enqueued(model=model, tokens=scan.tokens, requests=scan.total)
        now = self.now()
        waiting = [
            job.enqueued
            for job in self._jobs.values()
            if job.enqueued is not None and not job.phase(now, self.timing).terminal
        ]
        refusal = self.queue.admit(enqueued, waiting)
        if refusal is not None:
            raise _ApiError(429, queue_full_body(refusal))
        return enqueued

    def _input_path(self, file_ids: list[str], workdir: Path) -> Path:
        found: list[StoredFile] = []
        for file_id in file_ids:
            stored = self._files.get(file_id)
            if stored is None:
                raise _bad(404, f"File {file_id} not found")
            if stored.purpose != "batch":
                raise _bad(400, f"File {file_id} has purpose {stored.purpose!r}, not 'batch'.")
            found.append(stored)
        if len(found) == 1:
            return found[0].path
        path = Path(tempfile.mkstemp(dir=workdir, suffix=".jsonl")[1])
        with open(path, "wb") as out:
            for stored in found:
                for line in iter_file_lines(stored.path):
                    out.write(line + b"\n")
        return path

    def _get_job(self, request: Request) -> EmulatedJob:
        job_id = _uuid_param(request, "job_id")
        job = self._jobs.get(job_id)
        if job is None:
            raise _bad(404, f"Batch job {job_id} not found")
        return job

    def _retrieve_job(self, request: Request) -> Response:
        inline = (request.arg("inline") or "").lower() in ("true", "1")
        with self._lock:
            job = self._get_job(request)
            return Response.json(self._job_json(job, outputs=inline))

    def _list_jobs(self, request: Request) -> Response:
        self.list_queries.append({k: list(v) for k, v in request.query.items()})
        page = self._int_arg(request, "page", 0, minimum=0)
        size = self._int_arg(request, "page_size", 100, minimum=1)
        statuses = request.query.get("status") or []
        unknown = [s for s in statuses if s not in STATUS_WORDS.values()]
        if unknown:
            raise _invalid(
                [
                    {
                        "type": "enum",
                        "loc": ["query", "status", statuses.index(unknown[0])],
                        "msg": "Input should be one of the BatchJobStatus values",
                        "input": unknown[0],
                    }
                ]
            )
        order = request.arg("order_by", "-created")
        if order not in ("created", "-created"):
            raise _invalid(
                [
                    {
                        "type": "enum",
                        "loc": ["query", "order_by"],
                        "msg": "Input should be 'created' or '-created'",
                        "input": order,
                    }
                ]
            )
        after = self._time_arg(request, "created_after")
        model = request.arg("model")
        wanted = {k: v[0] for k, v in request.query.items() if k not in _LIST_PARAMS and v}
        with self._lock:
            jobs = [self._job_json(job) for job in self._jobs.values()]
        matching = [
            job
            for job in jobs
            if (not statuses or job["status"] in statuses)
            and (model is None or job["model"] == model)
            and (after is None or job["created_at"] >= after)
            and all((job["metadata"] or {}).get(k) == v for k, v in wanted.items())
        ]
        if order == "-created":
            matching.reverse()
        data = matching[page * size : (page + 1) * size]
        return Response.json({"data": data, "object": "list", "total": len(matching)})

    @staticmethod
    def _int_arg(request: Request, name: str, default: int, *, minimum: int) -> int:
        raw = request.arg(name)
        if raw is None:
            return default
        if not raw.lstrip("-").isdigit() or int(raw) < minimum:
            raise _invalid(
                [
                    {
                        "type": "int_parsing",
                        "loc": ["query", name],
                        "msg": f"Input should be an integer of at least {minimum}",
                        "input": raw,
                    }
                ]
            )
        return int(raw)

    @staticmethod
    def _time_arg(request: Request, name: str) -> float | None:
        raw = request.arg(name)
        if raw is None:
            return None
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(
                [
                    {
                        "type": "datetime_from_date_parsing",
                        "loc": ["query", name],
                        "msg": "Input should be a valid datetime",
                        "input": raw,
                    }
                ]
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()

    def _cancel_job(self, request: Request) -> Response:
        with self._lock:
            job = self._get_job(request)
            phase = self._phase(job)
            if phase.terminal:
                raise _bad(
                    400,
                    f"Batch job {job.id} is {STATUS_WORDS[phase.stage]} and cannot be cancelled.",
                )
            if job.cancel_requested_at is None:
                job.cancel_requested_at = self.now()
            return Response.json(self._job_json(job))

    def _phase(self, job: EmulatedJob) -> Phase:
        """The job's phase now; an ended job's result files are written on first sight."""
        phase = job.phase(self.now(), self.timing)
        if phase.terminal and phase.stage is not Stage.FAILED and not job.finished:
            self._finish(job, phase)
        return phase

    def _finish(self, job: EmulatedJob, phase: Phase) -> None:
        stamps = phase.timestamps
        ended = next(
            (
                stamps[name]
                for name in ("finalizing_at", "expired_at", "cancelling_at")
                if name in stamps
            ),
            self.now(),
        )
        created = int(ended)
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
                job, phase, output=output, errors=errors, scratch=scratch, created=created
            )
        for file_id, path, name in (
            (output_id, output_path, "output"),
            (error_id, error_path, "error"),
        ):
            if path.stat().st_size == 0:
                path.unlink()
                continue
            self._files.register(
                file_id,
                path,
                filename=f"{job.id}_{name}.jsonl",
                purpose="batch",
                created_at=created,
            )
            if name == "output":
                job.output_file = file_id
            else:
                job.error_file = file_id
        job.finished = True

    def _outputs(self, job: EmulatedJob) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for file_id in (job.output_file, job.error_file):
            stored = self._files.get(file_id) if file_id else None
            if stored is not None:
                lines.extend(orjson.loads(line) for line in iter_file_lines(stored.path))
        return lines

    def _job_json(self, job: EmulatedJob, *, outputs: bool = False) -> dict[str, Any]:
        phase = self._phase(job)
        failed = job.order.failed_among(phase.done)
        stamps = phase.timestamps
        ended = next(
            (
                stamps[name]
                for name in ("completed_at", "failed_at", "expired_at", "cancelled_at")
                if name in stamps
            ),
            None,
        )
        errors = [{"message": error.message, "count": 1} for error in job.errors]
        show_files = self.result_files
        return {
            "id": job.id,
            "object": "batch",
            "input_files": job.input_files,
            "metadata": job.metadata,
            "endpoint": job.endpoint,
            "model": job.model,
            "agent_id": None,
            "output_file": job.output_file if show_files else None,
            "error_file": job.error_file if show_files else None,
            "errors": errors,
            "outputs": self._outputs(job) if outputs and phase.terminal else None,
            "status": STATUS_WORDS[phase.stage],
            "created_at": int(job.created_at),
            "total_requests": job.total if not job.errors else 0,
            "completed_requests": phase.done,
            "succeeded_requests": phase.done - failed,
            "failed_requests": failed,
            "started_at": int(stamps["in_progress_at"]) if "in_progress_at" in stamps else None,
            "completed_at": int(ended) if ended is not None else None,
        }


# -- the sandbox (the CLI runs on it when asked to) ---------------------------------------------


@contextlib.contextmanager
def sandbox(*, clock: ManualClock | Callable[[], float] | None = None) -> Iterator[dict[str, Any]]:
    """Run an emulator on the real clock (or *clock*), where a job ends within a few seconds,
    and yield the ``mistral`` provider config that points at it (``base_url``, ``api_key``)."""
    key = "mistral-sandbox-" + secrets.token_hex(16)
    with MistralEmulator(
        clock=clock or time.time,
        api_key=key,
        queued_seconds=0.5,
        running_seconds=2.0,
        finishing_seconds=0.5,
        cancelling_seconds=0.5,
    ) as emulator:
        yield {"base_url": emulator.url, "api_key": key}
