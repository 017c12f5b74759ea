"""MistralBatchProvider: batchcore's ``mistral`` provider, over Mistral's batch API.

Only the vendor half lives here, one small method per API call, over the core's
:class:`HttpTransport` (no SDK). The core's ``submit``/``poll_status``/``fetch_results``/
``cancel`` keep the money rules: ownership checks, reconciling a create whose answer was lost,
exactly-once results, cancel after the end. The wire formats are
:mod:`batchcore_mistral._mapping`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import orjson

from batchcore.plugin import (
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
    ProviderPermanentError,
    QueueLimit,
    RateLimitError,
    RequestExtensions,
    ResponseLostError,
    input_custom_id,
    read_int,
    read_result_lines,
    read_str,
    result_from_openai_line,
    retry_iter,
)
from batchcore_mistral import _mapping as wire
from batchcore_mistral._models import MISTRAL_MODEL_PATTERNS, MODEL_RULES

__all__ = ["MistralBatchProvider"]

JOBS_PATH = "/v1/batch/jobs"
FILES_PATH = "/v1/files"


class MistralBatchProvider(BaseBatchProvider):
    """Mistral's batch API (``/v1/batch/jobs``, ``/v1/files``).

    Config (besides the common keys ``api_key``, ``base_url``, ``timeout``, ``max_retries``,
    ``max_requests_per_batch``, ``max_bytes_per_batch``, ``models``, ``workdir``):

    * ``input_mode`` - ``file`` (default: every payload is uploaded, then named in
      ``input_files``), ``inline`` (the requests travel in the create body; payloads hold fewer
      than 10,000 requests) or ``auto`` (inline for payloads that fit, else a file);
    * ``timeout_hours`` - the job's ``timeout_hours`` (1 to 168, default 24): after it, the job
      ends ``TIMEOUT_EXCEEDED`` with what had finished;
    * ``max_enqueued_requests`` - the workspace's limit of pending requests, across all its
      jobs (``QUEUE_LIMIT``; default 1,000,000).

    ``api_key`` falls back to ``MISTRAL_API_KEY``; ``base_url`` is the API root
    (``https://api.mistral.ai``).

    Submitting is idempotent: the job's metadata carries the payload's idempotency key, and the
    list of jobs, filtered by that metadata, finds a job whose create answer was lost.
    """

    PROVIDER_NAME: ClassVar[str] = "mistral"
    #: Up to 1M requests in a batch; an uploaded file is at most 512 MB, read as 512,000,000
    #: bytes (the smaller reading, so a file is never too big).
    FILE_LIMITS: ClassVar[BatchLimits] = BatchLimits(max_requests=1_000_000, max_bytes=512_000_000)
    #: Inline batching is for "fewer than 10,000 requests" (the docs; the spec's maxItems is
    #: 10,000: the stricter reading wins). Mistral states no size for a create body; batchcore
    #: sends at most 10 MB inline.
    INLINE_LIMITS: ClassVar[BatchLimits] = BatchLimits(max_requests=9_999, max_bytes=10_000_000)
    DEFAULT_LIMITS: ClassVar[BatchLimits] = FILE_LIMITS
    #: "Max 1M pending requests per workspace" (Mistral's batch FAQ: two simultaneous 600k jobs
    #: are not allowed), all models together. A create over it is refused (see create_batch),
    #: so no job fails for capacity: ``CAPACITY_ERROR_CODES`` stays empty.
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = QueueLimit(
        measure="requests", per_model=False, default=1_000_000
    )
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = MISTRAL_MODEL_PATTERNS
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"input_mode", "timeout_hours"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("MISTRAL_API_KEY",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.mistral.ai"
    SANDBOX: ClassVar[str | None] = "batchcore_mistral.testing:sandbox"
    # The create writes the idempotency key into the job's metadata, which the list filters on.
    IDEMPOTENT_SUBMIT: ClassVar[bool] = True
    RETRYABLE_RESULT_CODES: ClassVar[frozenset[str]] = wire.RETRYABLE_RESULT_CODES
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = wire.REQUEST_EXTENSIONS
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = MODEL_RULES
    #: Endpoints this provider batches (Mistral's batch API takes more; see the README).
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = wire.BATCH_ENDPOINTS
    INPUT_MODES: ClassVar[tuple[str, ...]] = ("file", "inline", "auto")
    DEFAULT_TIMEOUT_HOURS: ClassVar[int] = 24
    #: How far the API's clock may be behind ours when looking for a job by creation time.
    CLOCK_SKEW: ClassVar[timedelta] = timedelta(minutes=10)
    #: Jobs per page when listing, and how many pages are searched for an idempotency key.
    LIST_PAGE_SIZE: ClassVar[int] = 100
    IDEMPOTENCY_SEARCH_PAGES: ClassVar[int] = 10

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        settings = self.config
        mode = read_str(settings, "input_mode") or "file"
        if mode not in self.INPUT_MODES:
            raise ConfigurationError(
                f"config 'input_mode' must be one of {', '.join(self.INPUT_MODES)}, got {mode!r}"
            )
        self.input_mode = mode
        hours = read_int(settings, "timeout_hours", self.DEFAULT_TIMEOUT_HOURS, minimum=1)
        if hours > 168:
            raise ConfigurationError(
                f"config 'timeout_hours' must be from 1 to 168 (7 days), got {hours}"
            )
        self.timeout_hours = hours
        base = self.INLINE_LIMITS if mode == "inline" else self.FILE_LIMITS
        self.limits = base.with_overrides(settings)
        if mode == "inline" and (
            self.limits.max_requests > base.max_requests or self.limits.max_bytes > base.max_bytes
        ):
            raise ConfigurationError(
                f"input_mode 'inline' sends at most {base.max_requests} requests and "
                f"{base.max_bytes} bytes per job; lower max_requests_per_batch and "
                "max_bytes_per_batch, or use input_mode 'auto'"
            )

    # -- preparing (offline) ---------------------------------------------------------------

    def encode_request(self, request: BatchRequest) -> bytes:
        """``{"custom_id": ..., "body": <chat or embeddings body>}`` as compact JSON."""
        body = wire.request_body(request, provider=self.PROVIDER_NAME)
        return wire.encode_line(request.custom_id, body)

    # payload_group / payload_model: the core's (one model and one endpoint per job).

    # -- the vendor half -------------------------------------------------------------------

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        """Upload the payload file (``purpose=batch``), streamed from disk, and return
        ``{"input_file_id": ...}``; nothing for a payload sent inline. An extra uploaded file
        costs nothing, so an upload whose answer was lost is simply repeated."""
        path = self._payload_file(payload)
        if self._sends_inline(payload):
            return {}
        answer = self.transport().upload(
            FILES_PATH,
            path,
            fields={"purpose": "batch"},
            content_type="application/jsonl",
            action="upload batch input",
        )
        file_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(file_id, str) or not file_id:
            raise ResponseLostError(
                "upload batch input: the answer names no file", provider=self.PROVIDER_NAME
            )
        return {"input_file_id": file_id}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """``POST /v1/batch/jobs``, the job's metadata carrying *idempotency_key*: from the
        staged file, or with the requests inline. Never repeated here when the answer is lost:
        the core finds the job by its key instead. A 429 refusing the job because the
        workspace's pending requests would pass their limit raises :class:`QueueFullError`."""
        if not payload.model:
            raise InvalidRequestError(
                "the payload names no model; build payloads with prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        head: dict[str, Any] = {
            "endpoint": payload.endpoint,
            "model": payload.model,
            "metadata": {
                wire.IDEMPOTENCY_METADATA_KEY: wire.metadata_value(idempotency_key),
                wire.TIMEOUT_METADATA_KEY: str(self.timeout_hours),
            },
            "timeout_hours": self.timeout_hours,
        }
        file_id = staged.get("input_file_id")
        if isinstance(file_id, str) and file_id:
            body = orjson.dumps({**head, "input_files": [file_id]})
        elif self._sends_inline(payload):
            body = self._inline_body(head, payload)
        else:
            raise InvalidRequestError(
                "the payload names no uploaded file (staged has no input_file_id); submit() "
                "uploads it before creating the job",
                provider=self.PROVIDER_NAME,
            )
        try:
            job = self.transport().request_json(
                "POST",
                JOBS_PATH,
                data=body,
                headers={"content-type": "application/json"},
                action="create batch job",
                idempotent=False,
            )
        except RateLimitError as error:
            refused = wire.queue_full(error)
            if refused is None:
                raise
        else:
            return self._handle(self._job(job, "create batch job"))
        # The workspace's pending requests would pass its limit: a wait for room, not a failure.
        raise refused

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The jobs whose metadata carries *idempotency_key* (or made from the staged file),
        newest first, created since *since* less :attr:`CLOCK_SKEW`, among the first
        ``IDEMPOTENCY_SEARCH_PAGES`` pages. The list is asked to filter on the metadata (as
        Mistral's SDK sends it, ``?<key>=<value>``) and every job it returns is checked
        again, so a list that ignored the filter can cost pages, never a wrong match."""
        http = self.transport()
        query: dict[str, Any] = {
            "page_size": self.LIST_PAGE_SIZE,
            "order_by": "-created",
            wire.IDEMPOTENCY_METADATA_KEY: wire.metadata_value(idempotency_key),
        }
        if since is not None:
            query["created_after"] = (since - self.CLOCK_SKEW).astimezone(timezone.utc).isoformat()
        for page in range(self.IDEMPOTENCY_SEARCH_PAGES):
            answer = http.request_json(
                "GET", JOBS_PATH, params={**query, "page": page}, action="list batch jobs"
            )
            data = answer.get("data") if isinstance(answer, Mapping) else None
            if not isinstance(data, list):
                raise ProviderPermanentError(
                    "list batch jobs: the answer is not a page of batch jobs",
                    provider=self.PROVIDER_NAME,
                )
            found = wire.jobs_made_for(
                data, key=idempotency_key, input_file_id=staged.get("input_file_id")
            )
            if found:
                yield from (self._handle(job) for job in found)
                return
            total = answer.get("total")
            seen = (page + 1) * self.LIST_PAGE_SIZE
            if len(data) < self.LIST_PAGE_SIZE or (isinstance(total, int) and seen >= total):
                return

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        """``GET /v1/batch/jobs/{id}``, normalised (see ``_mapping.job_status``)."""
        return wire.job_status(self.PROVIDER_NAME, self._retrieve(handle.batch_id))

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """The output file, then the error file, streamed line by line. A job that lists
        neither (an inline job whose results the API keeps with the job) is read once more
        with ``?inline=true`` for its ``outputs``. Expired and cancelled jobs give what had
        finished; the core reports the rest from :meth:`request_ids`."""
        job = status.raw if status.raw is not None else self._retrieve(handle.batch_id)
        named = (job.get("output_file"), job.get("error_file"))
        files = [file_id for file_id in named if isinstance(file_id, str) and file_id]
        batch_id = handle.batch_id

        def read(entry: Mapping[str, Any]) -> BatchResult | None:
            return result_from_openai_line(
                entry, batch_id, error=self.result_error, dialect=wire.RESULT_LINES
            )

        if not files:
            if status.state is BatchState.FAILED:
                return
            outputs = self._retrieve(batch_id, inline=True).get("outputs")
            for entry in outputs if isinstance(outputs, list) else ():
                result = read(entry) if isinstance(entry, Mapping) else None
                if result is not None:
                    yield result
            return
        for file_id in files:
            yield from read_result_lines(
                self._file_lines(file_id, "download batch results"),
                read,
                provider=self.PROVIDER_NAME,
                batch_id=batch_id,
                source=f"file {file_id}",
            )

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        """The custom_ids of the job's input files (downloaded and read line by line); None
        for an inline job, which lists no input file (the runner knows what it sent)."""
        job = status.raw or {}
        files = job.get("input_files") or handle.metadata.get("input_files") or ()
        if not files:
            return None
        return self._input_ids(list(files))

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        """``POST /v1/batch/jobs/{id}/cancel``: the job is ``CANCELLATION_REQUESTED`` until its
        running requests end. Asking twice is harmless, so the call is retried like a read."""
        job = self.transport().request_json(
            "POST",
            f"{JOBS_PATH}/{handle.batch_id}/cancel",
            action="cancel batch job",
            idempotent=True,
        )
        return wire.job_status(self.PROVIDER_NAME, self._job(job, "cancel batch job"))

    def http_headers(self, api_key: str) -> Mapping[str, str]:
        return {"authorization": f"Bearer {api_key}", "accept": "application/json"}

    # -- helpers ---------------------------------------------------------------------------

    def _payload_file(self, payload: BatchPayload) -> Path:
        path = payload.path
        if path is None or not path.is_file():
            raise InvalidRequestError(
                f"the payload file {path} does not exist (was the payload discarded?)",
                provider=self.PROVIDER_NAME,
            )
        return path

    def _sends_inline(self, payload: BatchPayload) -> bool:
        if self.input_mode == "file":
            return False
        fits = (
            payload.request_count <= self.INLINE_LIMITS.max_requests
            and payload.size_bytes <= self.INLINE_LIMITS.max_bytes
        )
        if self.input_mode == "inline" and not fits:
            raise InvalidRequestError(
                f"input_mode 'inline': a payload of {payload.request_count} requests and "
                f"{payload.size_bytes} bytes is over the inline limits "
                f"({self.INLINE_LIMITS.max_requests} requests, {self.INLINE_LIMITS.max_bytes} "
                "bytes); prepare it with this provider, or use input_mode 'auto' or 'file'",
                provider=self.PROVIDER_NAME,
            )
        return fits

    def _inline_body(self, head: Mapping[str, Any], payload: BatchPayload) -> bytes:
        """The create body with the payload file's lines as ``requests`` (each line already is
        a ``{custom_id, body}`` object: copied as bytes, not parsed)."""
        prefix = orjson.dumps({**head, "requests": []})[:-2]  # ...,"requests":[ + ]}
        with open(self._payload_file(payload), "rb") as lines:
            items = [line.rstrip(b"\r\n") for line in lines if line.strip()]
        return prefix + b",".join(items) + b"]}"

    def _job(self, job: Any, action: str) -> Mapping[str, Any]:
        if not isinstance(job, Mapping) or not isinstance(job.get("id"), str):
            raise ProviderPermanentError(
                f"{action}: the answer is not a batch job", provider=self.PROVIDER_NAME
            )
        return job

    def _retrieve(self, job_id: str, *, inline: bool = False) -> Mapping[str, Any]:
        action = "retrieve batch job"
        job = self.transport().request_json(
            "GET",
            f"{JOBS_PATH}/{job_id}",
            params={"inline": "true"} if inline else None,
            action=action,
        )
        return self._job(job, action)

    def _handle(self, job: Mapping[str, Any]) -> BatchHandle:
        now = datetime.fromtimestamp(self.clock(), tz=timezone.utc)
        return wire.job_handle(self.PROVIDER_NAME, job, now=now)

    def _input_ids(self, files: list[str]) -> Iterator[str]:
        for file_id in files:
            for line in self._file_lines(file_id, "download batch input"):
                custom_id = input_custom_id(line)
                if custom_id is not None:
                    yield custom_id

    def _file_lines(self, file_id: str, action: str) -> Iterator[bytes]:
        """The non-blank lines of ``GET /v1/files/{id}/content``, streamed. A download that
        breaks midway is opened again (under the retry policy) and resumes after the lines
        already delivered: a file's content never changes."""
        delivered = 0
        http = self.transport()

        def open_stream() -> Iterator[bytes]:
            nonlocal delivered
            # One retry policy for the stream (retry_iter), not one per opening as well.
            response = http.request(
                "GET", f"{FILES_PATH}/{file_id}/content", stream=True, action=action, retry=False
            )
            for number, line in enumerate(http.iter_jsonl(response, action=action), 1):
                if number > delivered:
                    delivered = number
                    yield line

        return retry_iter(
            open_stream,
            policy=self.retry_policy(),
            sleep=lambda seconds: self.sleep(seconds),
            describe=f"{self.PROVIDER_NAME} {action}",
        )
