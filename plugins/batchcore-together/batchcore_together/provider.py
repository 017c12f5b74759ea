"""TogetherBatchProvider: batchcore's ``together`` provider, over Together AI's Batch API.

Only the vendor half lives here, one small method per API call, over the core's
:class:`HttpTransport` (no SDK). The core's ``submit``/``poll_status``/``fetch_results``/
``cancel`` keep the money rules: ownership checks, reconciling a create whose answer was lost,
exactly-once results, cancel after the end. The wire formats are in
:mod:`batchcore_together._mapping`; the facts about models and limits in
:mod:`batchcore_together._models`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    BaseBatchProvider,
    BatchHandle,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchStatus,
    InvalidRequestError,
    ModelRule,
    ProviderPermanentError,
    QueueLimit,
    RequestExtensions,
    ResponseLostError,
    UnsupportedModelError,
    UnsupportedOperationError,
    input_custom_id,
    read_int,
    read_result_lines,
    read_str_list,
    result_from_openai_line,
)
from batchcore_together._mapping import (
    CAPACITY_ERROR_CODES as QUEUE_FULL_CODES,
)
from batchcore_together._mapping import (
    REQUEST_EXTENSIONS,
    RESULT_LINES,
    batch_status,
    chat_body,
    encode_line,
    job_created_at,
    unwrap_job,
)
from batchcore_together._models import (
    BATCH_MODEL_PATTERNS,
    ENQUEUED_TOKENS_PER_MODEL,
    MAX_CUSTOM_ID_LENGTH,
    MAX_LINE_BYTES,
    TOGETHER_LIMITS,
    UNAVAILABLE_MODELS,
)

__all__ = ["TogetherBatchProvider"]

log = logging.getLogger("batchcore_together")

_BATCHES = "batches"
_UPLOAD = "files/upload"
#: The file purpose of batch input files.
FILE_PURPOSE = "batch-api"


class TogetherBatchProvider(BaseBatchProvider):
    """Together AI's Batch API (``https://api.together.xyz/v1``).

    Config (besides the common keys ``api_key``, ``base_url``, ``timeout``, ``max_retries``,
    ``max_requests_per_batch``, ``max_bytes_per_batch``, ``models``, ``workdir``):

    * ``max_line_bytes`` - the size a request's line must stay under (default 10,000,000);
    * ``max_enqueued_tokens`` - Together's queue of enqueued tokens per model
      (``QUEUE_LIMIT``; default 30 billion).

    ``api_key`` falls back to ``TOGETHER_API_KEY``, ``base_url`` to ``TOGETHER_BASE_URL`` (the
    API root with its version, as for the official SDK: ``https://api.together.xyz/v1``).

    Submitting is not idempotent (a batch job carries no key or metadata): the payload's file is
    uploaded first (``upload``, its id kept in ``payload.staged``), and a create whose answer was
    lost is reconciled by the core through :meth:`find_batches`, which finds the one batch made
    from that upload.
    """

    PROVIDER_NAME: ClassVar[str] = "together"
    DEFAULT_LIMITS: ClassVar[BatchLimits] = TOGETHER_LIMITS
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = BATCH_MODEL_PATTERNS
    #: Serverless models Together does not batch (refused unless config ``models`` names one).
    UNAVAILABLE_MODELS: ClassVar[frozenset[str]] = UNAVAILABLE_MODELS
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"max_line_bytes"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("TOGETHER_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("TOGETHER_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.together.xyz/v1"
    MAX_CUSTOM_ID_LENGTH: ClassVar[int | None] = MAX_CUSTOM_ID_LENGTH
    SANDBOX: ClassVar[str | None] = "batchcore_together.testing:sandbox"
    IDEMPOTENT_SUBMIT: ClassVar[bool] = False
    SUPPORTS_CANCEL: ClassVar[bool] = True
    # Together does not say how soon a new batch is listed; wait a minute after a lost create
    # before concluding that it made nothing.
    SUBMIT_SETTLE_SECONDS: ClassVar[float] = 60.0
    #: What the conversion takes beyond OpenAI's request format (video and audio URL parts).
    REQUEST_EXTENSIONS: ClassVar[RequestExtensions] = REQUEST_EXTENSIONS
    # No model refuses a parameter in a way Together documents; conversion refuses the rest.
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = ()
    DEFAULT_MAX_LINE_BYTES: ClassVar[int] = MAX_LINE_BYTES
    #: "Up to 30B tokens enqueued per model at any time" (the batch overview; one figure, no
    #: tiers).
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = QueueLimit(
        measure="tokens", per_model=True, default=ENQUEUED_TOKENS_PER_MODEL
    )
    #: A batch whose failure speaks of the model's queue never ran (see ``_mapping``).
    CAPACITY_ERROR_CODES: ClassVar[frozenset[str]] = QUEUE_FULL_CODES

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        settings = self.config
        self.max_line_bytes = read_int(
            settings, "max_line_bytes", self.DEFAULT_MAX_LINE_BYTES, minimum=1
        )
        # Only an exact name re-admits a model Together lists as unavailable for batch.
        self._named_models = frozenset(read_str_list(settings, "models"))

    # -- models and requests (offline) -----------------------------------------------------

    def supports_model(self, model: str) -> bool:
        if model in self.UNAVAILABLE_MODELS and model not in self._named_models:
            return False
        return super().supports_model(model)

    def check_request(self, request: BatchRequest) -> None:
        if (
            isinstance(request, BatchRequest)
            and request.model in self.UNAVAILABLE_MODELS
            and request.model not in self._named_models
        ):
            raise UnsupportedModelError(
                f"request {request.custom_id!r}: Together lists model {request.model!r} as not "
                "available for batch processing (its batches fail); if Together has since "
                f"added it, name it in config models=[{request.model!r}]",
                model=request.model,
                custom_id=request.custom_id,
                field="model",
                provider=self.PROVIDER_NAME,
            )
        super().check_request(request)

    def encode_request(self, request: BatchRequest) -> bytes:
        """``{"custom_id": ..., "body": <chat completions body>}`` as compact JSON."""
        line = encode_line(request.custom_id, chat_body(request))
        if len(line) + 1 >= self.max_line_bytes:
            raise InvalidRequestError(
                f"request {request.custom_id!r}: its line is {len(line) + 1} bytes and Together "
                f"takes lines under {self.max_line_bytes} (inline base64 media is the usual "
                "cause: reference images by URL instead)",
                custom_id=request.custom_id,
                field="messages",
                provider=self.PROVIDER_NAME,
            )
        return line

    # -- the vendor half -------------------------------------------------------------------

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        """``POST /files/upload`` (purpose ``batch-api``), the file streamed from disk. An
        upload changes nothing but adds a file, so it is retried like a read."""
        if payload.path is None:
            raise InvalidRequestError(
                "the payload has no file; build payloads with prepare_payloads()",
                provider=self.PROVIDER_NAME,
            )
        filename = payload.path.name if payload.path.suffix == ".jsonl" else "batch.jsonl"
        answer = self.transport().upload(
            _UPLOAD,
            payload.path,
            fields={"purpose": FILE_PURPOSE, "file_name": filename, "file_type": "jsonl"},
            filename=filename,
            content_type="application/jsonl",
            action="upload batch input file",
        )
        file_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(file_id, str) or not file_id:
            raise ResponseLostError(
                "upload batch input file: the answer names no file id",
                provider=self.PROVIDER_NAME,
            )
        return {"input_file_id": file_id}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """``POST /batches`` with the uploaded file. Never repeated after an unknown outcome:
        the transport raises :class:`~batchcore.OutcomeUnknownError` and the core reconciles.
        The answer is wrapped (``{"job": {...}, "warning": ...}``); a warning is logged and kept
        on the handle's metadata."""
        file_id = staged.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequestError(
                "the payload has no uploaded file to create a batch from (staged has no "
                "input_file_id)",
                provider=self.PROVIDER_NAME,
            )
        answer = self.transport().request_json(
            "POST",
            _BATCHES,
            json_body={"endpoint": CHAT_COMPLETIONS, "input_file_id": file_id},
            action="create batch",
            idempotent=False,
        )
        job, warning = unwrap_job(answer)
        if job is None or not isinstance(job.get("id"), str) or not job.get("id"):
            # Together answered, so it acted: it says it made no batch.
            raise ProviderPermanentError(
                "create batch: Together created no batch"
                + (f": {warning}" if warning else " (its answer names no job)"),
                provider=self.PROVIDER_NAME,
            )
        if warning:
            log.warning("together: batch %s was created with a warning: %s", job["id"], warning)
        return self._handle(job, payload, file_id=file_id, warning=warning)

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterator[BatchHandle]:
        """The batches made from this payload's upload: every listed batch whose
        ``input_file_id`` is the file :meth:`upload` staged. An upload belongs to one payload,
        so no other batch can match; without a staged file nothing can be recognised."""
        file_id = staged.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise UnsupportedOperationError(
                "together: a batch can only be recognised by the file it was made from, and "
                "this payload has no uploaded file on record",
                provider=self.PROVIDER_NAME,
            )
        answer = self.transport().request_json("GET", _BATCHES, action="list batches")
        jobs = answer.get("data") if isinstance(answer, Mapping) else answer
        if not isinstance(jobs, list):
            raise ProviderPermanentError(
                "list batches: the answer is not a list of batch jobs",
                provider=self.PROVIDER_NAME,
            )
        for item in jobs:
            job, _ = unwrap_job(item)
            if job is None or job.get("input_file_id") != file_id:
                continue
            if isinstance(job.get("id"), str) and job["id"]:
                yield self._handle(job, payload, file_id=file_id, warning=None)

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        """``GET /batches/{id}``, returned bare (not wrapped as create's answer is)."""
        answer = self.transport().request_json(
            "GET", f"{_BATCHES}/{handle.batch_id}", action="retrieve batch"
        )
        return self._status(answer, handle, "retrieve batch")

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        """Stream the output file, then the error file: a completed batch can hold failures,
        and an expired or cancelled one keeps what finished in its output file."""
        job = status.raw or {}
        for field in ("output_file_id", "error_file_id"):
            file_id = job.get(field)
            if isinstance(file_id, str) and file_id:
                yield from self._file_results(file_id, handle.batch_id)

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        """The custom_ids of the batch's input file, read back from Together, so requests its
        result files leave out (not run before the batch expired or was cancelled) are
        reported."""
        file_id = (status.raw or {}).get("input_file_id") or handle.metadata.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            return None
        return self._input_ids(file_id)

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        """``POST /batches/{id}/cancel``; asking twice is harmless, so it is retried like a
        read."""
        answer = self.transport().request_json(
            "POST",
            f"{_BATCHES}/{handle.batch_id}/cancel",
            action="cancel batch",
            idempotent=True,
        )
        return self._status(answer, handle, "cancel batch")

    # -- helpers ---------------------------------------------------------------------------

    def _handle(
        self,
        job: Mapping[str, Any],
        payload: BatchPayload,
        *,
        file_id: str,
        warning: str | None,
    ) -> BatchHandle:
        metadata: dict[str, Any] = {
            "input_file_id": file_id,
            "request_count": payload.request_count,
            "endpoint": job.get("endpoint") or CHAT_COMPLETIONS,
        }
        if payload.model is not None:
            metadata["model"] = payload.model
        if warning:
            metadata["warning"] = warning
        created = job_created_at(job)
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=str(job["id"]),
            created_at=created or self.clock(),
            metadata=metadata,
        )

    def _status(self, answer: Any, handle: BatchHandle, action: str) -> BatchStatus:
        job, warning = unwrap_job(answer)
        if job is None or not isinstance(job.get("id"), str):
            raise ProviderPermanentError(
                f"{action}: the answer is not a batch job", provider=self.PROVIDER_NAME
            )
        if warning:
            log.warning("together: batch %s: %s", job["id"], warning)
        total = handle.metadata.get("request_count")
        return batch_status(job, total=total if isinstance(total, int) else None)

    def _lines(self, file_id: str, action: str) -> Iterator[bytes]:
        http = self.transport()
        response = http.request("GET", f"files/{file_id}/content", stream=True, action=action)
        lines = http.iter_jsonl(response, action=action)
        try:
            yield from lines
        finally:
            # Closing the lines closes the response, also when the caller stops early.
            close = getattr(lines, "close", None)
            if close is not None:
                close()

    def _file_results(self, file_id: str, batch_id: str) -> Iterator[BatchResult]:
        return read_result_lines(
            self._lines(file_id, f"download results file {file_id}"),
            lambda line: result_from_openai_line(
                line, batch_id, error=self.result_error, dialect=RESULT_LINES
            ),
            provider=self.PROVIDER_NAME,
            batch_id=batch_id,
            source=f"file {file_id}",
        )

    def _input_ids(self, file_id: str) -> Iterator[str]:
        for line in self._lines(file_id, f"read input file {file_id}"):
            custom_id = input_custom_id(line)
            if custom_id is not None:
                yield custom_id
