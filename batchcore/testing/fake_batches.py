"""The fake vendor's batches: how each request is scripted to end (:class:`Outcome`), a batch
as the vendor holds it (:class:`FakeBatch`), and the result each request comes back with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from batchcore.models import (
    EMBEDDINGS,
    BatchError,
    BatchRequest,
    BatchResult,
    ResultError,
    ResultStatus,
    Usage,
)

__all__ = ["FakeBatch", "Outcome", "answer", "encode_request", "validation_failure"]


def encode_request(request: BatchRequest) -> bytes:
    """One request as the fake vendor takes it: batchcore's own JSON form of the request."""
    return orjson.dumps(request.to_dict())


@attrs.frozen(kw_only=True)
class Outcome:
    """How the fake vendor answers one request. Build with :meth:`succeed`, :meth:`error` or
    :meth:`never`."""

    kind: str = attrs.field(validator=attrs.validators.in_(("succeed", "error", "never")))
    text: str | None = None
    code: str = ""
    message: str = ""
    status_code: int = 200

    @classmethod
    def succeed(cls, text: str | None = None) -> Outcome:
        """Succeed with *text* (default: ``"Fake reply to: <last user message>"``, cut to
        ``max_tokens`` words)."""
        return cls(kind="succeed", text=text)

    @classmethod
    def error(
        cls,
        code: str = "invalid_request",
        message: str = "The fake backend was told to fail this request.",
        *,
        retryable: bool = False,
        status_code: int | None = None,
    ) -> Outcome:
        """Fail inside the batch (a result with an error, not an exception). *retryable* picks
        the HTTP status the vendor reports (500 or 400); an explicit *status_code* must agree."""
        status = status_code if status_code is not None else (500 if retryable else 400)
        if _retryable_status(status) != retryable:
            raise ValueError(f"status_code {status} contradicts retryable={retryable}")
        return cls(kind="error", code=code, message=message, status_code=status)

    @classmethod
    def never(cls) -> Outcome:
        """Never finish: the request comes back expired (after 24 hours) or cancelled."""
        return cls(kind="never")


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


@attrs.define(kw_only=True, eq=False)
class FakeBatch:
    """One batch as the fake vendor holds it. Read it in tests (``requests``, ``custom_ids``,
    ``idempotency_key``); the backend moves it along."""

    batch_id: str
    endpoint: str
    requests: tuple[BatchRequest, ...]
    outcomes: Mapping[str, Outcome] = attrs.field(repr=False)
    finish_at: Mapping[str, float | None] = attrs.field(repr=False)
    created_at: float
    in_progress_at: float
    finalizing_at: float | None
    completed_at: float | None
    expires_at: float
    idempotency_key: str | None = None
    failure: BatchError | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None

    @property
    def custom_ids(self) -> tuple[str, ...]:
        return tuple(request.custom_id for request in self.requests)

    def status_at(self, now: float) -> str:
        """The vendor status word at time *now*."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.cancelling_at is not None:
            return "cancelling"
        if now < self.in_progress_at:
            return "validating"
        if self.failure is not None:
            return "failed"
        if self.completed_at is not None and now >= self.completed_at:
            return "completed"
        if now >= self.expires_at:
            return "expired"
        if self.finalizing_at is not None and now >= self.finalizing_at:
            return "finalizing"
        return "in_progress"

    def finished(self, custom_id: str, now: float) -> bool:
        """Whether the request had finished by *now* (work stops at expiry and cancellation)."""
        done = self.finish_at.get(custom_id)
        if done is None or self.failure is not None:
            return False
        cutoff = min(now, self.expires_at)
        if self.cancelling_at is not None:
            cutoff = min(cutoff, self.cancelling_at)
        return done <= cutoff


def validation_failure(requests: Sequence[BatchRequest], endpoint: str) -> BatchError | None:
    """The first problem that fails a batch at validation, if any."""
    seen: set[str] = set()
    for number, request in enumerate(requests, start=1):
        if request.endpoint != endpoint:
            return BatchError(
                code="mismatched_endpoint",
                message=f"request {number} is for {request.endpoint}, the batch for {endpoint}",
                line=number,
                param="endpoint",
            )
        if request.custom_id in seen:
            return BatchError(
                code="duplicate_custom_id",
                message=f"custom_id {request.custom_id!r} appears twice",
                line=number,
                param="custom_id",
            )
        seen.add(request.custom_id)
    return None


def answer(
    batch: FakeBatch, index: int, request: BatchRequest, status: str, now: float
) -> BatchResult:
    """The result of *request* (the *index*-th of *batch*) in a batch that ended *status*."""
    custom_id, batch_id = request.custom_id, batch.batch_id
    if not batch.finished(custom_id, now):
        state = ResultStatus.CANCELLED if status == "cancelled" else ResultStatus.EXPIRED
        return BatchResult.unfinished(custom_id, state, batch_id=batch_id)
    outcome = batch.outcomes[custom_id]
    if outcome.kind == "error":
        error = ResultError(
            code=outcome.code,
            message=outcome.message,
            retryable=_retryable_status(outcome.status_code),
            status_code=outcome.status_code,
        )
        body = {"error": {"code": outcome.code, "message": outcome.message}}
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body,
            error=error,
            batch_id=batch_id,
        )
    return _success(request, outcome, f"{batch_id}-{index}", batch_id)


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _success(
    request: BatchRequest, outcome: Outcome, response_id: str, batch_id: str
) -> BatchResult:
    """A succeeded request: deterministic text (or vectors), usage counted in words."""
    if request.endpoint == EMBEDDINGS:
        raw_input = request.params.get("input")
        inputs = list(raw_input) if isinstance(raw_input, (list, tuple)) else [raw_input]
        vectors = []
        for item in inputs:
            digest = hashlib.sha256(orjson.dumps(item)).digest()
            vectors.append([round(byte / 255.0, 6) for byte in digest[:8]])
        tokens = sum(len(str(item).split()) for item in inputs)
        return BatchResult(
            custom_id=request.custom_id,
            status=ResultStatus.SUCCEEDED,
            response={"id": response_id, "model": request.model, "embeddings": vectors},
            usage=Usage(input_tokens=tokens, total_tokens=tokens),
            batch_id=batch_id,
        )
    stop_reason = "end"
    if outcome.text is not None:
        text = outcome.text
    else:
        last_user = next(
            (_message_text(m) for m in reversed(request.messages) if m.get("role") == "user"), ""
        )
        words = f"Fake reply to: {last_user}".split()
        limit = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool) and len(words) > limit:
            words = words[:limit]
            stop_reason = "max_tokens"
        text = " ".join(words)
    prompt_tokens = sum(len(_message_text(m).split()) for m in request.messages)
    completion_tokens = len(text.split())
    return BatchResult(
        custom_id=request.custom_id,
        status=ResultStatus.SUCCEEDED,
        response={
            "id": response_id,
            "model": request.model,
            "text": text,
            "stop_reason": stop_reason,
        },
        text=text,
        usage=Usage(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
        batch_id=batch_id,
    )
