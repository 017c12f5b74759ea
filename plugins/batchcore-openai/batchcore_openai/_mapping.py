"""The wire format of the OpenAI Batch API, both directions, as pure functions.

No I/O and no SDK here: requests to JSONL lines, Batch objects to :class:`BatchStatus`, and
output/error file lines to :class:`BatchResult`. Everything reads plain JSON (dicts), so the same
code serves OpenAI, Azure OpenAI (capitalised statuses, ISO timestamps, null counts) and
OpenAI-compatible services. Whether a failed request is worth resubmitting is never decided
here: the caller's ``result_error`` (the core's one rule) decides.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    MODERATIONS,
    RESPONSES,
    BatchError,
    BatchHandle,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ConfigurationError,
    InvalidRequestError,
    ResponseLostError,
    ResultError,
    ResultStatus,
    Usage,
    parse_timestamp,
)
from batchcore_openai import IDEMPOTENCY_METADATA_KEY

__all__ = [
    "AZURE_BATCH_ENDPOINTS",
    "BATCH_ENDPOINTS",
    "CAPACITY_ERROR_CODES",
    "COMPLETION_WINDOWS",
    "DEFAULT_COMPLETION_WINDOW",
    "IDEMPOTENCY_METADATA_KEY",
    "OPENAI_MODEL_PATTERNS",
    "RETRYABLE_RESULT_CODES",
    "TIMESTAMP_FIELDS",
    "ResultErrorBuilder",
    "answer_parts",
    "batch_handle",
    "batch_key",
    "batch_state",
    "batch_status",
    "batches_made_for",
    "completion_window",
    "encode_line",
    "failed_batch_results",
    "input_count",
    "input_custom_id",
    "json_object",
    "next_page",
    "read_result_line",
    "read_timestamp",
    "request_problem",
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
#: The endpoints Azure OpenAI batches.
AZURE_BATCH_ENDPOINTS = frozenset({CHAT_COMPLETIONS, RESPONSES})

#: The ``completion_window`` values OpenAI and Azure OpenAI take ("Currently only `24h` is
#: supported": ``CreateBatchRequest`` in OpenAI's spec), and the one a batch gets by default.
COMPLETION_WINDOWS = frozenset({"24h"})
DEFAULT_COMPLETION_WINDOW = "24h"

_CANCELLED_CODES = frozenset({"batch_cancelled", "batch_canceled", "cancelled", "canceled"})

#: The batch error code of a batch that never ran because the model's queue of enqueued tokens
#: was full (OpenAI and Azure: "Enqueued token limit reached for <model> ...").
CAPACITY_ERROR_CODES = frozenset({"token_limit_exceeded"})
#: OpenAI's own per-request and batch-level codes that resubmitting can cure, besides the core's
#: table: the per-model queue of enqueued tokens was full (it drains as other batches end), and
#: the other spellings of a cancellation.
RETRYABLE_RESULT_CODES = CAPACITY_ERROR_CODES | _CANCELLED_CODES

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


class ResultErrorBuilder(Protocol):
    """:meth:`BaseBatchProvider.result_error`: the core's rule for a request's failure."""

    def __call__(
        self, *, code: str | None, message: str | None = None, status_code: int | None = None
    ) -> ResultError: ...


# -- requests -> JSONL --------------------------------------------------------------------------

_LINE_START = b'{"custom_id":'
# Everything between the custom_id and the body, per endpoint, serialised once.
_LINE_MIDDLE = {
    endpoint: b',"method":"POST","url":' + orjson.dumps(endpoint) + b',"body":'
    for endpoint in BATCH_ENDPOINTS
}


def encode_line(request: BatchRequest, params_keys: tuple[str, ...] = ()) -> bytes:
    """One batch input line (``custom_id, method, url, body``) without the newline.

    The ``provider_params`` entries named by *params_keys* are merged into the body, in that
    order; without any, the request's cached body bytes are reused as they are.
    """
    extra: dict[str, Any] = {}
    for key in params_keys if request.provider_params else ():
        extra.update(request.provider_params.get(key) or {})
    body = orjson.dumps({**request.openai_body(), **extra}) if extra else request.openai_body_json()
    return b"".join(
        (_LINE_START, orjson.dumps(request.custom_id), _LINE_MIDDLE[request.endpoint], body, b"}")
    )


def request_problem(
    request: BatchRequest,
    *,
    provider: str,
    endpoints: frozenset[str],
    params_keys: tuple[str, ...],
) -> InvalidRequestError | None:
    """Why the Batch API would refuse *request* (naming the field at fault), or None."""

    def refuse(field: str, problem: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"request {request.custom_id!r}: {problem}",
            custom_id=request.custom_id,
            field=field,
            provider=provider,
        )

    if request.endpoint not in endpoints:
        choices = ", ".join(sorted(endpoints))
        return refuse("endpoint", f"this provider does not batch {request.endpoint}; use {choices}")
    if request.params.get("stream"):
        return refuse("params.stream", "batches cannot stream; drop params['stream']")
    for key in params_keys if request.provider_params else ():
        clash = sorted({"model", "messages"} & set(request.provider_params.get(key) or ()))
        if clash:
            return refuse(
                f"provider_params.{key}",
                f"provider_params[{key!r}] must not set {', '.join(clash)}; use the request's "
                "own fields",
            )
    return None


def completion_window(
    config: Mapping[str, Any], *, accepted: Collection[str], default: str, described: str | None
) -> str:
    """Config ``completion_window`` (else *default*), checked offline against *accepted*:
    :class:`ConfigurationError` for another value, telling what is accepted (*described*, else
    the values listed), so a window the API refuses is never sent."""
    value = config.get("completion_window", default)
    if isinstance(value, str) and value in accepted:
        return value
    wanted = described or " or ".join(map(repr, sorted(accepted)))
    raise ConfigurationError(f"config 'completion_window' must be {wanted}, got {value!r}")


def input_count(value: Any) -> int:
    """How many inputs an embeddings ``input`` holds (a string, a token array, or a list)."""
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


# -- Batch objects and list pages -> BatchStatus, BatchHandle ------------------------------------

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
    return tuple(
        BatchError(
            code=None if item.get("code") is None else str(item["code"]),
            message=str(item.get("message") or ""),
            line=_count(item.get("line")),
            param=item["param"] if isinstance(item.get("param"), str) else None,
        )
        for item in items
        if isinstance(item, Mapping)
    )


def batch_status(provider: str, batch: Mapping[str, Any]) -> BatchStatus:
    """A :class:`BatchStatus` from an OpenAI (or Azure) Batch object.

    An unknown status word maps to ``IN_PROGRESS`` (a state that keeps callers polling) and is
    logged: treating a new word as terminal could drop results.
    """
    raw_status = str(batch.get("status") or "")
    state = batch_state(raw_status)
    if state is None:
        log.warning(
            "batch %s has unknown status %r; treating it as in progress",
            batch.get("id"),
            raw_status,
        )
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


def batch_key(batch: Mapping[str, Any]) -> Any:
    """The idempotency key a Batch object's metadata carries, if any."""
    metadata = batch.get("metadata")
    return metadata.get(IDEMPOTENCY_METADATA_KEY) if isinstance(metadata, Mapping) else None


def batch_handle(provider: str, batch: Mapping[str, Any], *, now: datetime) -> BatchHandle:
    """The handle of a Batch object (*now* when it has no readable ``created_at``).
    :class:`ResponseLostError` when it names no batch: the vendor answered, but not usably."""
    batch_id = batch.get("id")
    if not isinstance(batch_id, str) or not batch_id:
        raise ResponseLostError("the answer names no batch id", provider=provider)
    metadata = {
        "input_file_id": batch.get("input_file_id"),
        "endpoint": batch.get("endpoint"),
        "idempotency_key": batch_key(batch),
    }
    return BatchHandle(
        provider=provider,
        batch_id=batch_id,
        created_at=read_timestamp(batch.get("created_at")) or now,
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def json_object(content: bytes) -> dict[str, Any] | None:
    """A response body read as a JSON object; None when it is not one."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def batches_made_for(
    page: Mapping[str, Any], *, idempotency_key: str, input_file_id: Any
) -> list[Mapping[str, Any]]:
    """The batches of a list page whose metadata carries *idempotency_key*, or that were made
    from the file *input_file_id* (an upload belongs to one payload)."""
    data = page.get("data")
    return [
        batch
        for batch in (data if isinstance(data, list) else ())
        if isinstance(batch, Mapping)
        and (
            idempotency_key == batch_key(batch)
            or (input_file_id and batch.get("input_file_id") == input_file_id)
        )
    ]


def next_page(page: Mapping[str, Any], *, not_before: datetime | None) -> str | None:
    """The cursor of the list page after *page* (newest first), or None when there is none or
    its batches are all older than *not_before*."""
    data = page.get("data")
    last = data[-1] if isinstance(data, list) and data else None
    if not isinstance(last, Mapping) or not page.get("has_more"):
        return None
    created = read_timestamp(last.get("created_at"))
    if not_before is not None and created is not None and created < not_before:
        return None
    cursor = page.get("last_id") or last.get("id")
    return cursor if isinstance(cursor, str) and cursor else None


# -- response bodies -> text, refusal, usage ----------------------------------------------------


def answer_parts(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(text, refusal)`` of a response body.

    *text* joins every text part of the answer in order, as the SDK's ``output_text`` does: a
    chat ``choices[0].message.content`` (a string or its ``text`` parts), legacy completions'
    ``choices[0].text``, or every ``output_text`` of every message item of a Responses result.
    Other choices (``n`` > 1) are alternative answers and stay in the response. *refusal* is
    the model's refusal (``message.refusal``, or ``refusal`` parts); None when absent.
    """
    # This runs once per result line. Decoded JSON objects are dicts: the exact type test
    # comes first, as the Mapping check is an (expensive) ABC check.
    choices = body.get("choices")
    if isinstance(choices, list):
        first = choices[0] if choices else None
        if type(first) is not dict and not isinstance(first, Mapping):
            return None, None
        message = first.get("message")
        if type(message) is not dict and not isinstance(message, Mapping):
            text = first.get("text")
            return (text if isinstance(text, str) else None), None
        refusal = message.get("refusal")
        refusal = refusal if isinstance(refusal, str) and refusal else None
        content = message.get("content")
        if isinstance(content, str):
            return content, refusal
        if isinstance(content, list):
            text, part_refusal = _joined_parts(content, ("text", "output_text"))
            return text, refusal or part_refusal
        return None, refusal
    output = body.get("output")
    if isinstance(output, list):
        parts = [
            part
            for item in output
            if isinstance(item, Mapping) and item.get("type") == "message"
            for part in (item.get("content") or ())
        ]
        return _joined_parts(parts, ("output_text",))
    return None, None


def _joined_parts(parts: Any, text_kinds: tuple[str, ...]) -> tuple[str | None, str | None]:
    texts: list[str] = []
    refusals: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in text_kinds and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            refusals.append(part["refusal"])
    return ("".join(texts) if texts else None), ("".join(refusals) if refusals else None)


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def usage_of(body: Mapping[str, Any]) -> Usage | None:
    """Token usage in neutral names, from the chat spelling (``prompt_tokens``,
    ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``)
    or the Responses one (``input_tokens``, ``input_tokens_details``, ...)."""
    usage = body.get("usage")
    if type(usage) is not dict:
        return None
    # This runs once per result line: plain lookups and exact type checks keep it cheap.
    if "input_tokens" in usage:
        prompt, output = usage.get("input_tokens"), usage.get("output_tokens")
        prompt_details = usage.get("input_tokens_details")
        output_details = usage.get("output_tokens_details")
    else:
        prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
        prompt_details = usage.get("prompt_tokens_details")
        output_details = usage.get("completion_tokens_details")
    if type(prompt_details) is not dict:
        prompt_details = {}
    if type(output_details) is not dict:
        output_details = {}
    return Usage(
        input_tokens=_int(prompt),
        output_tokens=_int(output),
        total_tokens=_int(usage.get("total_tokens")),
        cache_read_tokens=_int(prompt_details.get("cached_tokens")),
        cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=_int(output_details.get("reasoning_tokens")),
    )


# -- output / error file lines -> BatchResult ----------------------------------------------------


def _error_fields(value: Any) -> tuple[str | None, str | None]:
    """(code, message) from an error object or string."""
    if isinstance(value, Mapping):
        inner = value.get("error", value)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            return (str(code) if code else None), (str(inner.get("message") or "") or None)
        value = inner
    return None, (value or None) if isinstance(value, str) else None


def read_result_line(
    line: bytes, batch_id: str, *, error: ResultErrorBuilder
) -> BatchResult | None:
    """The result in one raw output or error file line; None (logged) for a line that is not
    a JSON object with a custom_id."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    result = result_from_line(obj, batch_id, error=error) if isinstance(obj, dict) else None
    if result is None:
        log.warning("batch %s: skipping a result line without a custom_id", batch_id)
    return result


def input_custom_id(line: bytes) -> str | None:
    """The custom_id of one raw input file line, if it has one."""
    try:
        custom_id = orjson.loads(line).get("custom_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return custom_id if isinstance(custom_id, str) and custom_id else None


def result_from_line(
    line: Mapping[str, Any], batch_id: str | None, *, error: ResultErrorBuilder
) -> BatchResult | None:
    """The result in one output or error file line, or None for a line without a custom_id.

    * a 2xx ``response`` -> succeeded, with ``text``, ``refusal`` and ``usage`` (a refusal is
      still a success: the request ran and was billed); except a Responses result whose
      ``status`` is ``incomplete``, which is errored (``response_incomplete``, see
      :func:`_answer`);
    * a non-2xx ``response.status_code`` -> errored, with that status;
    * an ``error`` object -> expired for ``batch_expired``, cancelled for a cancellation code,
      otherwise errored.
    """
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None
    response = line.get("response")
    # Exact dict tests first, as in answer_parts: this runs once per result line.
    if type(response) is dict or isinstance(response, Mapping):
        body = response.get("body")
        status = response.get("status_code")
        if type(body) is dict or isinstance(body, Mapping):
            if not isinstance(status, int):
                status = 500 if "error" in body else 200
            if 200 <= status < 300:
                return _answer(custom_id, body, batch_id, error)
        elif not isinstance(status, int):
            status = 500
        code, message = _error_fields(body)
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body if isinstance(body, Mapping) else None,
            error=error(code=code, message=message or f"HTTP {status}", status_code=status),
            batch_id=batch_id,
        )
    code, message = _error_fields(line.get("error"))
    if code == "batch_expired":
        kind = ResultStatus.EXPIRED
    elif code in _CANCELLED_CODES:
        kind = ResultStatus.CANCELLED
    else:
        kind = ResultStatus.ERRORED
    return BatchResult(
        custom_id=custom_id,
        status=kind,
        error=error(code=code, message=message),
        batch_id=batch_id,
    )


def _answer(
    custom_id: str, body: Mapping[str, Any], batch_id: str | None, error: ResultErrorBuilder
) -> BatchResult:
    """A 2xx answer. A Responses result with ``status: incomplete`` (cut short by
    ``max_output_tokens`` or a content filter) is reported as errored, code
    ``response_incomplete``, so a truncated answer is never taken for a whole one; it keeps
    its partial text and usage (they were billed) and is not retryable, as the same request
    would stop at the same place again."""
    text, refusal = answer_parts(body)
    failure: ResultError | None = None
    if body.get("status") == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        failure = error(
            code="response_incomplete",
            message=f"The response is incomplete ({reason or 'no reason given'}).",
        )
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.SUCCEEDED if failure is None else ResultStatus.ERRORED,
        response=body,
        text=text,
        usage=usage_of(body),
        error=failure,
        batch_id=batch_id,
        refusal=refusal,
    )


def failed_batch_results(
    numbered_ids: Iterable[tuple[int, str]], status: BatchStatus, *, error: ResultErrorBuilder
) -> Iterator[BatchResult]:
    """The results of a batch that failed validation and ran nothing, from its input file's
    ``(line number, custom_id)`` pairs.

    A request carries the error of its own input line when that line was at fault, else the
    batch's own reason (an error without a line, such as a full token queue), else the core's
    rule for a request its failed batch never ran (:meth:`BatchResult.missing`).
    """
    by_line = {e.line: e for e in status.errors if e.line is not None}
    general = next((e for e in status.errors if e.line is None), None)
    for number, custom_id in numbered_ids:
        reason = by_line.get(number, general)
        if reason is None:
            yield BatchResult.missing(custom_id, status)
            continue
        yield BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            error=error(code=reason.code or "invalid_request", message=reason.message or None),
            batch_id=status.batch_id,
        )
