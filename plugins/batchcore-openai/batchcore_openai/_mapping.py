"""Pure functions between batchcore's neutral data and OpenAI's batch formats.

No I/O and no SDK here: requests to JSONL lines, Batch objects to :class:`BatchStatus`, and
output/error file lines to :class:`BatchResult`. Everything reads plain JSON (dicts), so the same
code serves OpenAI, Azure OpenAI (capitalised statuses, ISO timestamps, null counts) and
OpenAI-compatible services.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from batchcore.classify import QUOTA_CODES
from batchcore.models import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    ENDPOINTS,
    MODERATIONS,
    RESPONSES,
    BatchError,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ResultError,
    ResultStatus,
    Usage,
    parse_timestamp,
)

__all__ = [
    "BATCH_ENDPOINTS",
    "IDEMPOTENCY_METADATA_KEY",
    "OPENAI_MODEL_PATTERNS",
    "TIMESTAMP_FIELDS",
    "batch_state",
    "batch_status",
    "encode_line",
    "failed_batch_result",
    "first_text",
    "input_count",
    "missing_result",
    "read_timestamp",
    "result_from_line",
    "usage_of",
]

log = logging.getLogger("batchcore_openai")

#: Model names OpenAI serves, as glob patterns (families, dated snapshots and fine-tunes).
OPENAI_MODEL_PATTERNS: tuple[str, ...] = (
    "gpt-*",
    "chatgpt-*",
    "o1",
    "o1-*",
    "o3",
    "o3-*",
    "o4-*",
    "codex-*",
    "computer-use-*",
    "text-embedding-*",
    "omni-moderation-*",
    "text-moderation-*",
    "davinci-002",
    "babbage-002",
    "ft:*",
)

#: The endpoints a batch can address that batchcore requests can express.
BATCH_ENDPOINTS = frozenset({CHAT_COMPLETIONS, EMBEDDINGS, RESPONSES, COMPLETIONS, MODERATIONS})

#: The batch metadata key that carries a payload's idempotency key.
IDEMPOTENCY_METADATA_KEY = "batchcore_idempotency_key"

TIMESTAMP_FIELDS = (
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

# -- requests -> JSONL --------------------------------------------------------------------------

_LINE_START = b'{"custom_id":'
# Everything between the custom_id and the body, per endpoint, serialised once.
_LINE_MIDDLE = {
    endpoint: b',"method":"POST","url":' + orjson.dumps(endpoint) + b',"body":'
    for endpoint in ENDPOINTS
}


def encode_line(request: BatchRequest, extra: Mapping[str, Any] | None = None) -> bytes:
    """One batch input line (``custom_id, method, url, body``) without the newline.

    The request's cached body bytes are reused as they are unless *extra* (vendor-only body
    fields) must be merged in.
    """
    body = request.openai_body_json() if not extra else orjson.dumps(
        {**request.openai_body(), **extra}
    )
    return b"".join(
        (_LINE_START, orjson.dumps(request.custom_id), _LINE_MIDDLE[request.endpoint], body, b"}")
    )


def input_count(value: Any) -> int:
    """How many inputs an embeddings ``input`` holds (a string, a token array, or a list)."""
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


# -- Batch objects -> BatchStatus ---------------------------------------------------------------

_STATES = {
    "validating": BatchState.VALIDATING,
    "inprogress": BatchState.IN_PROGRESS,
    "finalizing": BatchState.FINALIZING,
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelling": BatchState.CANCELLING,
    "canceling": BatchState.CANCELLING,
    "cancelled": BatchState.CANCELLED,
    "canceled": BatchState.CANCELLED,
}
_ENDED_AT = {
    BatchState.COMPLETED: "completed_at",
    BatchState.FAILED: "failed_at",
    BatchState.EXPIRED: "expired_at",
    BatchState.CANCELLED: "cancelled_at",
}


def batch_state(raw: str) -> BatchState | None:
    """The state for a vendor status word, in any case or separator style (``in_progress``,
    ``InProgress``, ``Validating``); None for a word we do not know."""
    key = raw.lower().replace("_", "").replace("-", "").replace(" ", "")
    return _STATES.get(key)


def read_timestamp(value: Any) -> datetime | None:
    """A vendor timestamp (unix seconds or ISO-8601) as aware UTC; None when absent or
    unreadable."""
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _batch_errors(value: Any) -> tuple[BatchError, ...]:
    items = value.get("data") if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        return ()
    errors = []
    for item in items:
        if isinstance(item, Mapping):
            line = item.get("line")
            param = item.get("param")
            code = item.get("code")
            errors.append(
                BatchError(
                    code=str(code) if code is not None else None,
                    message=str(item.get("message") or ""),
                    line=_count(line),
                    param=param if isinstance(param, str) else None,
                )
            )
    return tuple(errors)


def batch_status(provider: str, batch: Mapping[str, Any]) -> BatchStatus:
    """A :class:`BatchStatus` from an OpenAI (or Azure) Batch object.

    An unknown status word maps to ``IN_PROGRESS`` (a state that keeps callers polling) and is
    logged: treating a new word as terminal could drop results.
    """
    raw_status = str(batch.get("status") or "")
    state = batch_state(raw_status)
    if state is None:
        log.warning("batch %s has unknown status %r; treating it as in progress",
                    batch.get("id"), raw_status)
        state = BatchState.IN_PROGRESS
    timestamps = {}
    for name in TIMESTAMP_FIELDS:
        parsed = read_timestamp(batch.get(name))
        if parsed is not None:
            timestamps[name] = parsed
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    ended = _ENDED_AT.get(state)
    return BatchStatus(
        provider=provider,
        batch_id=str(batch.get("id") or ""),
        state=state,
        raw_status=raw_status,
        total=_count(counts.get("total")),
        completed=_count(counts.get("completed")),
        failed=_count(counts.get("failed")),
        created_at=timestamps.get("created_at"),
        expires_at=timestamps.get("expires_at"),
        ended_at=timestamps.get(ended) if ended else None,
        timestamps=timestamps,
        errors=_batch_errors(batch.get("errors")),
        raw=batch,
    )


# -- output / error file lines -> BatchResult ----------------------------------------------------

# Error codes of a single request, or of a whole batch, that a later retry can cure.
_TRANSIENT_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "server_error",
        "internal_error",
        "timeout",
        "request_timeout",
        "service_unavailable",
        "overloaded",
        "token_limit_exceeded",
        "too_many_tasks",
        "too_many_requests",
    }
)
_CANCELLED_CODES = frozenset({"batch_cancelled", "batch_canceled", "cancelled", "canceled"})


def first_text(body: Mapping[str, Any]) -> str | None:
    """The first text output of a response body: chat ``choices[0].message.content``, legacy
    completions ``choices[0].text``, the Responses API's first ``output_text``; else None."""
    # This runs once per result line. Decoded JSON objects are dicts: the exact type test
    # comes first, as the Mapping check is an (expensive) ABC check.
    choices = body.get("choices")
    if isinstance(choices, list):
        first = choices[0] if choices else None
        if type(first) is not dict and not isinstance(first, Mapping):
            return None
        message = first.get("message")
        if type(message) is dict or isinstance(message, Mapping):
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return _first_part_text(content, ("text", "output_text"))
            return None
        text = first.get("text")
        return text if isinstance(text, str) else None
    output = body.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, Mapping) and item.get("type") == "message":
                content = item.get("content")
                if isinstance(content, list):
                    text = _first_part_text(content, ("output_text",))
                    if text is not None:
                        return text
    return None


def _first_part_text(parts: list[Any], kinds: tuple[str, ...]) -> str | None:
    for part in parts:
        if isinstance(part, Mapping) and part.get("type") in kinds:
            text = part.get("text")
            if isinstance(text, str):
                return text
    return None


def usage_of(body: Mapping[str, Any]) -> Usage | None:
    """Token usage in neutral names (``prompt/completion`` and ``input/output`` spellings)."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    # This runs once per result line: plain lookups and exact type checks keep it cheap.
    prompt = usage.get("input_tokens")
    if prompt is None:
        prompt = usage.get("prompt_tokens")
    output = usage.get("output_tokens")
    if output is None:
        output = usage.get("completion_tokens")
    total = usage.get("total_tokens")
    return Usage(
        input_tokens=prompt if prompt.__class__ is int else None,
        output_tokens=output if output.__class__ is int else None,
        total_tokens=total if total.__class__ is int else None,
    )


def _error_fields(value: Any) -> tuple[str | None, str]:
    """(code, message) from an error object or string."""
    if isinstance(value, Mapping):
        inner = value.get("error", value)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            return (str(code) if code else None), str(inner.get("message") or "")
        if isinstance(inner, str):
            return None, inner
    if isinstance(value, str):
        return None, value
    return None, ""


def _http_error_retryable(status: int, code: str | None) -> bool:
    if code in QUOTA_CODES:
        return False
    return status in (408, 409, 429) or status >= 500


def result_from_line(line: Mapping[str, Any], batch_id: str | None = None) -> BatchResult | None:
    """The result in one output or error file line, or None for a line without a custom_id.

    * a 2xx ``response`` -> succeeded, with ``text`` and ``usage``;
    * a non-2xx ``response.status_code`` -> errored, retryable for 408/409/429/5xx;
    * an ``error`` object -> expired for ``batch_expired``, cancelled for a cancellation code,
      otherwise errored.
    """
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None
    response = line.get("response")
    # Exact dict tests first, as in first_text: this runs once per result line.
    if type(response) is dict or isinstance(response, Mapping):
        body = response.get("body")
        status = response.get("status_code")
        if type(body) is dict or isinstance(body, Mapping):
            if not isinstance(status, int):
                status = 500 if "error" in body else 200
            if 200 <= status < 300:
                return BatchResult(
                    custom_id=custom_id,
                    status=ResultStatus.SUCCEEDED,
                    response=body,
                    text=first_text(body),
                    usage=usage_of(body),
                    batch_id=batch_id,
                )
        elif not isinstance(status, int):
            status = 500
        code, message = _error_fields(body)
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body if isinstance(body, Mapping) else None,
            error=ResultError(
                code=code or f"http_{status}",
                message=message or f"HTTP {status}",
                retryable=_http_error_retryable(status, code),
                status_code=status,
            ),
            batch_id=batch_id,
        )
    code, message = _error_fields(line.get("error"))
    code = code or "unknown_error"
    if code == "batch_expired":
        status_kind = ResultStatus.EXPIRED
    elif code in _CANCELLED_CODES:
        status_kind = ResultStatus.CANCELLED
    else:
        status_kind = ResultStatus.ERRORED
    return BatchResult(
        custom_id=custom_id,
        status=status_kind,
        error=ResultError(
            code=code,
            message=message or code,
            retryable=status_kind is not ResultStatus.ERRORED or code in _TRANSIENT_CODES,
        ),
        batch_id=batch_id,
    )


def missing_result(custom_id: str, batch_id: str | None = None) -> BatchResult:
    """A request of a completed batch that neither result file mentions."""
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.ERRORED,
        error=ResultError(
            code="result_missing",
            message="The batch ended without a result for this request.",
            retryable=True,
        ),
        batch_id=batch_id,
    )


def failed_batch_result(
    custom_id: str,
    line_error: BatchError | None,
    errors: tuple[BatchError, ...],
    batch_id: str | None = None,
) -> BatchResult:
    """A request of a batch that failed validation and never ran.

    A request whose own input line was at fault (*line_error*) cannot succeed unchanged. The
    others were never tried: they are retryable, except when the batch failed for a reason
    that would fail them again (a bad model, for instance).
    """
    if line_error is not None:
        error = ResultError(
            code=line_error.code or "invalid_request",
            message=line_error.message or "The input line was rejected.",
            retryable=False,
        )
    else:
        general = next((e for e in errors if e.line is None), None)
        if general is not None:
            code = general.code or "batch_failed"
            error = ResultError(
                code=code,
                message=general.message or "The batch failed.",
                retryable=code in _TRANSIENT_CODES,
            )
        else:
            error = ResultError(
                code="batch_failed",
                message="The batch failed because of other requests in it; this one never ran.",
                retryable=True,
            )
    return BatchResult(
        custom_id=custom_id, status=ResultStatus.ERRORED, error=error, batch_id=batch_id
    )
