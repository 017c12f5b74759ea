"""The wire format of the OpenAI Batch API, both directions, as pure functions.

No I/O and no SDK here: requests to JSONL lines, Batch objects to :class:`BatchStatus`, and
output/error file lines to :class:`BatchResult`. Everything reads plain JSON (dicts), so the same
code serves OpenAI, Azure OpenAI (capitalised statuses, ISO timestamps, null counts) and
OpenAI-compatible services. Output and error file lines are read by the core
(:func:`batchcore.plugin.result_from_openai_line`: OpenAI's line format is every
OpenAI-compatible vendor's too). Whether a failed request is worth resubmitting is never decided
here: the caller's ``result_error`` (the core's one rule) decides.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    MODERATIONS,
    OPENAI_CANCELLED_CODES,
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
    ResultErrorBuilder,
    ResultStatus,
    input_custom_id,
    openai_answer_parts,
    openai_usage,
    parse_timestamp,
    result_from_openai_line,
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

_CANCELLED_CODES = OPENAI_CANCELLED_CODES

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
    refused_message_keys: Mapping[str, str] | None = None,
    structured_output_models: tuple[str, ...] | None = None,
    strict_structured_output_models: tuple[str, ...] | None = None,
) -> InvalidRequestError | None:
    """Why the Batch API would refuse *request* (naming the field at fault), or None.

    Beyond what every OpenAI-compatible Batch API refuses (another endpoint, ``stream``,
    ``provider_params`` that set ``model`` or ``messages``), a vendor's differences:
    *refused_message_keys* (message key -> why the vendor refuses it), and the models (glob
    patterns) that take ``response_format`` ``json_schema`` at all
    (*structured_output_models*) and with ``strict: true``
    (*strict_structured_output_models*); None: every model.
    """

    def refuse(field: str, problem: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"request {request.custom_id!r}: {field}: {problem}",
            custom_id=request.custom_id,
            field=field,
            provider=provider,
        )

    if request.endpoint not in endpoints:
        choices = ", ".join(sorted(endpoints))
        return refuse("endpoint", f"this provider does not batch {request.endpoint}; use {choices}")
    messages, params = request.body_parts()
    if params.get("stream"):
        return refuse("params.stream", "batches cannot stream; drop params['stream']")
    for key in params_keys if request.provider_params else ():
        clash = sorted({"model", "messages"} & set(request.provider_params.get(key) or ()))
        if clash:
            return refuse(
                f"provider_params.{key}",
                f"provider_params[{key!r}] must not set {', '.join(clash)}; use the request's "
                "own fields",
            )
    if refused_message_keys:
        for index, message in enumerate(messages):
            for key, why in refused_message_keys.items():
                if message.get(key) is not None:
                    return refuse(f"messages[{index}].{key}", f"{why}; leave it out")
    schema = _json_schema_format(params.get("response_format"))
    if schema is not None:
        strict = schema.get("strict") is True
        allowed = strict_structured_output_models if strict else structured_output_models
        if allowed is not None and not _matches(request.model, allowed):
            hatch = (
                f"or send it anyway under provider_params={{{params_keys[-1]!r}: "
                "{'response_format': ...}}, which is not checked"
            )
            if strict:
                return refuse(
                    "params.response_format.json_schema.strict",
                    f"model {request.model!r} has no strict structured output (json_schema with "
                    f"strict: true) on {provider}; models that have it: {', '.join(allowed)}; "
                    f"set strict to false for best-effort output where the model has that, {hatch}",
                )
            return refuse(
                "params.response_format",
                f"model {request.model!r} has no structured output (json_schema) on "
                f"{provider}; models that have it: {', '.join(allowed)}; use "
                f"response_format json_object for any JSON, {hatch}",
            )
    return None


def _json_schema_format(value: Any) -> Mapping[str, Any] | None:
    """The ``json_schema`` object of a ``response_format`` asking for one, else None."""
    if not isinstance(value, Mapping) or value.get("type") != "json_schema":
        return None
    schema = value.get("json_schema")
    return schema if isinstance(schema, Mapping) else {}


def _matches(model: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)


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


# -- output / error file lines -> BatchResult ----------------------------------------------------

# The core reads OpenAI's output and error lines (the lingua franca of batch results): these
# names are the core's reader and its parts, for this plugin's callers.
answer_parts = openai_answer_parts
usage_of = openai_usage
result_from_line = result_from_openai_line


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
