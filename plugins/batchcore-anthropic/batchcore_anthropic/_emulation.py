"""The emulator's model of the Message Batches API, without the HTTP server: what a create body
must look like (Anthropic's published spec, :func:`spec_validator`), how a batch's requests end
on the clock, and the objects and result lines the API returns. Used by
:mod:`batchcore_anthropic.testing`.

A request asking for structured output (``output_config.format`` of type ``json_schema``; the
deprecated ``output_format`` is not part of a batch request in the spec) is answered with a JSON
instance of its schema (:func:`batchcore.testing.emulation.schema_instance`), cut at
``max_tokens`` like any answer.

What each model refuses (sampling values, structured output) is the emulator's own table
(:data:`SAMPLING_DEPRECATED`, :data:`SAMPLING_ONE_OF`, :data:`NO_STRUCTURED_OUTPUT`), written
from Anthropic's documentation: checking what the provider sends with the provider's own table
would prove nothing. Such a request ends ``errored`` with the API's ``invalid_request_error``."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import attrs
import orjson

from batchcore.testing.emulation import Enqueued, QueueRefusal, schema_instance
from batchcore.testing.openapi import SpecProblem, SpecValidator
from batchcore_anthropic._mapping import ERROR_STATUS

__all__ = [
    "ERROR_TRIGGER",
    "NO_STRUCTURED_OUTPUT",
    "SAMPLING_DEPRECATED",
    "SAMPLING_ONE_OF",
    "STATUS_OF",
    "EmulatedBatch",
    "Item",
    "Reject",
    "batch_object",
    "error_body",
    "queue_full_message",
    "result_line",
    "rfc3339",
    "spec_document",
    "spec_validator",
    "validate_create",
]

#: ``metadata.user_id`` prefix that makes a request end ``errored`` with the type that follows.
ERROR_TRIGGER = "emulator-error:"
#: The schema of a create body in the spec.
CREATE_SCHEMA = "CreateMessageBatchParams"
#: The HTTP status the API answers with for each error type.
STATUS_OF = ERROR_STATUS


def error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The API's error object: ``{"type": "error", "error": {type, message}, "request_id"}``."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def queue_full_message(refusal: QueueRefusal) -> str:
    """The message of the 429 refusing a batch the processing queue has no room for. Anthropic
    documents the limit ("maximum batch requests in processing queue"), not this answer: the
    words are the emulator's, the error type the API's for a 429."""
    unit = "batch requests" if refusal.measure == "requests" else "input tokens"
    return (
        f"Number of {unit} in the processing queue would exceed your organization's limit of "
        f"{refusal.limit:,}: {refusal.queued:,} are waiting to be processed and this batch "
        f"adds {refusal.amount:,}. Try again once earlier batches have ended."
    )


class Reject(Exception):
    """Answer the call with the API's error body: *status*, *error_type*, *message*."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@attrs.define(kw_only=True)
class Item:
    """What the emulator keeps of one request (its full params stay on disk)."""

    custom_id: str
    model: str
    max_tokens: int
    input_tokens: int
    error: tuple[str, str] | None
    #: The answer's text when the request asks for structured output (shared by requests
    #: with the same schema), else None.
    structured: str | None = None


@attrs.define(kw_only=True)
class EmulatedBatch:
    id: str
    created: float
    processing_seconds: float
    cancel_seconds: float
    expires: float
    archived: float
    body_path: Path
    items: list[Item] = attrs.field(repr=False)
    shuffle_seed: int
    cancel_at: float | None = None
    _final: list[str] | None = attrs.field(default=None, repr=False)

    def end(self) -> float:
        end = min(self.created + self.processing_seconds, self.expires)
        if self.cancel_at is not None:
            end = min(end, self.cancel_at + self.cancel_seconds)
        return end

    def finish_time(self, index: int) -> float:
        return self.created + self.processing_seconds * (index + 1) / len(self.items)

    def enqueued(self, now: float) -> Enqueued | None:
        """What the batch holds in the organization's processing queue at *now*: its requests
        not yet processed (Anthropic counts a request "when it has yet to be successfully
        processed by the model"); None once the batch has ended. Batches mix models: no model
        is named."""
        if now >= self.end():
            return None
        waiting = [item for index, item in enumerate(self.items) if self.finish_time(index) > now]
        return Enqueued(
            model=None,
            tokens=sum(item.input_tokens for item in waiting),
            requests=len(waiting),
        )

    def outcomes(self) -> list[str]:
        """How each request ended; only meaningful once the batch has ended (then fixed, since
        an ended batch cannot be cancelled)."""
        if self._final is None:
            cutoff = self.end() if self.cancel_at is None else min(self.end(), self.cancel_at)
            unfinished = (
                "canceled"
                if self.cancel_at is not None and self.cancel_at < self.expires
                else "expired"
            )
            outcomes = []
            for index, item in enumerate(self.items):
                if self.finish_time(index) <= cutoff:
                    outcomes.append("succeeded" if item.error is None else "errored")
                else:
                    outcomes.append(unfinished)
            self._final = outcomes
        return self._final


def rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@cache
def spec_document() -> dict[str, Any]:
    """The part of Anthropic's OpenAPI document the emulator checks against (shipped as
    ``_spec.json``; where it comes from, with its sha256, is in its ``x-source``)."""
    text = files("batchcore_anthropic").joinpath("_spec.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def spec_validator() -> SpecValidator:
    """A strict validator of the spec's schemas (``CreateMessageBatchParams``,
    ``CreateMessageParams``, ``MessageBatch``, ...): unknown fields are refused, as the API
    refuses them."""
    return SpecValidator(spec_document(), strict=True)


def _invalid(message: str) -> Reject:
    return Reject(400, "invalid_request_error", message)


_EXTRA = re.compile(r"^Additional properties are not allowed \('([^']+)'")
_MISSING = re.compile(r"^'([^']+)' is a required property$")


def _spec_message(problem: SpecProblem) -> str:
    """The API's wording (``requests.0.params.seed: Extra inputs are not permitted``) for what
    the spec refuses, naming the path."""
    path = problem.path
    extra = _EXTRA.match(problem.message)
    if extra:
        return f"{_join(path, extra.group(1))}: Extra inputs are not permitted"
    missing = _MISSING.match(problem.message)
    if missing:
        return f"{_join(path, missing.group(1))}: Field required"
    return f"{path or '(body)'}: {problem.message}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_create(body: Any, max_requests: int) -> list[Item]:
    """The requests of a create body, validated as the API validates them synchronously: the
    spec's ``CreateMessageBatchParams`` (strict), then the rules of a batch it cannot say."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    requests = body.get("requests")
    if isinstance(requests, list) and len(requests) > max_requests:
        raise _invalid(
            f"requests: List should have at most {max_requests} items after "
            f"validation, not {len(requests)}"
        )
    problems = spec_validator().problems(CREATE_SCHEMA, body, limit=1)
    if problems:
        raise _invalid(_spec_message(problems[0]))
    seen: set[str] = set()
    items = []
    answers: dict[bytes, str | tuple[str, str]] = {}
    for index, entry in enumerate(body["requests"]):
        custom_id = entry["custom_id"]
        if custom_id in seen:
            raise _invalid(
                f"requests.{index}.custom_id: custom_id {custom_id!r} is used more than once; "
                "custom_ids must be unique within a batch"
            )
        seen.add(custom_id)
        items.append(_item(custom_id, entry["params"], f"requests.{index}.params", answers))
    return items


def batch_object(batch: EmulatedBatch, now: float, results_base: str) -> dict[str, Any]:
    """The ``message_batch`` object of *batch* at time *now*."""
    end = batch.end()
    ended = now >= end
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:
        for outcome in batch.outcomes():
            counts[outcome] += 1
        status = "ended"
    else:
        counts["processing"] = len(batch.items)
        status = "canceling" if batch.cancel_at is not None else "in_progress"
    results_url = f"{results_base}/v1/messages/batches/{batch.id}/results" if ended else None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": rfc3339(end) if ended else None,
        "created_at": rfc3339(batch.created),
        "expires_at": rfc3339(batch.expires),
        "archived_at": rfc3339(batch.archived) if now >= batch.archived else None,
        "cancel_initiated_at": rfc3339(batch.cancel_at),
        "results_url": results_url,
    }


def _item(
    custom_id: str,
    params: Mapping[str, Any],
    where: str,
    answers: dict[bytes, str | tuple[str, str]],
) -> Item:
    """Check what a batch refuses beyond the spec and keep what the request's result needs;
    content problems become an ``errored`` result. *answers* caches structured answers by
    schema (requests of a batch usually share one)."""
    max_tokens = params["max_tokens"]
    if max_tokens < 1:  # the spec allows 0 (cache pre-warming), a batch does not
        raise _invalid(f"{where}.max_tokens: Input should be greater than or equal to 1")
    if params.get("stream"):
        raise _invalid(f"{where}.stream: streaming is not supported in batches")
    error = _content_error(params)
    structured = None
    found = _output_schema(params)
    if found is not None:
        field, schema = found
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        if key not in answers:
            answers[key] = _structured_answer(field, schema)
        answer = answers[key]
        if isinstance(answer, str):
            structured = answer
        else:
            error = error or answer
    return Item(
        custom_id=custom_id,
        model=params["model"],
        max_tokens=max_tokens,
        input_tokens=max(1, len(orjson.dumps(params["messages"])) // 4),
        error=error,
        structured=structured,
    )


def _output_schema(params: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(field, JSON schema) of the structured output *params* ask for, if any."""
    config = params.get("output_config")
    spec = config.get("format") if isinstance(config, Mapping) else None
    if isinstance(spec, Mapping) and spec.get("type") == "json_schema":
        return "output_config.format.schema", spec.get("schema")
    return None


def _structured_answer(field: str, schema: Any) -> str | tuple[str, str]:
    """The JSON text answering *schema* (spaced, so ``max_tokens`` can cut it between words),
    or the error the API reports for a schema no value satisfies."""
    try:
        return json.dumps(schema_instance(schema))
    except ValueError as exc:
        return "invalid_request_error", f"{field}: {exc}"


def _content_error(params: Mapping[str, Any]) -> tuple[str, str] | None:
    """What the API would report for this request when it runs, or None if it succeeds."""
    metadata = params.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    if isinstance(user_id, str) and user_id.startswith(ERROR_TRIGGER):
        kind = user_id[len(ERROR_TRIGGER) :] or "api_error"
        return kind, f"emulated {kind} (requested by metadata.user_id)"
    model = params["model"]
    if not model.startswith("claude-"):
        return "not_found_error", f"model: {model}"
    messages = params["messages"]
    if not messages:
        return "invalid_request_error", "messages: at least one message is required"
    for index, message in enumerate(messages):
        if (
            not isinstance(message, Mapping)
            or message.get("role") not in ("user", "assistant")
            or "content" not in message
        ):
            return "invalid_request_error", f"messages.{index}: Input should be a valid message"
        content = message["content"]
        if content == "" or content == []:
            return "invalid_request_error", f"messages.{index}.content: must be non-empty"
    for name in ("temperature", "top_p"):
        value = params.get(name)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            return "invalid_request_error", f"{name}: must be between 0 and 1"
    return _model_error(model, params)


# -- what each model refuses ------------------------------------------------------------------
# The emulator's own knowledge of the models, written from Anthropic's documentation (not read
# from the provider's table: the emulator checks what the provider sends). Each id also stands
# for its dated snapshots (claude-opus-4-1-20250805). Models it does not name take everything.

#: Models released after Claude Opus 4.6 take temperature only at 1.0 and top_p only from 0.99
#: (the deprecation notes of Anthropic's spec; Opus 4.7 is the first, per its migration guide).
#: The API's answer: "`temperature` is deprecated for this model."
SAMPLING_DEPRECATED = (
    "claude-opus-4-7",
    "claude-mythos-preview",
    "claude-opus-4-8",
    "claude-fable-5",
    "claude-mythos-5",
    "claude-sonnet-5",
)
#: Models that refuse temperature and top_p together (the migration guides of Claude Sonnet 4.5
#: and Haiku 4.5; the same answer is reported for the others): "`temperature` and `top_p`
#: cannot both be specified for this model. Please use only one."
SAMPLING_ONE_OF = (
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
)
#: Models without structured output (``output_config.format``): it is generally available from
#: Claude Sonnet 4.5, Haiku 4.5 and Opus 4.5 on (Anthropic's structured outputs page); Opus 4.1
#: had it only as a beta. The API's wording of this refusal is not documented: the message is
#: the emulator's.
NO_STRUCTURED_OUTPUT = (
    "claude-3-*",
    "claude-opus-4",
    "claude-sonnet-4",
    "claude-opus-4-0",
    "claude-sonnet-4-0",
    "claude-opus-4-1",
)


def _named(model: str, ids: tuple[str, ...]) -> bool:
    return any(
        fnmatch.fnmatchcase(model, name) or fnmatch.fnmatchcase(model, f"{name}-2*") for name in ids
    )


def _model_error(model: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    temperature, top_p = params.get("temperature"), params.get("top_p")
    if _named(model, SAMPLING_DEPRECATED):
        if temperature is not None and temperature != 1:
            return "invalid_request_error", "`temperature` is deprecated for this model."
        if top_p is not None and top_p < 0.99:
            return "invalid_request_error", "`top_p` is deprecated for this model."
    elif _named(model, SAMPLING_ONE_OF) and temperature is not None and top_p is not None:
        return (
            "invalid_request_error",
            "`temperature` and `top_p` cannot both be specified for this model. "
            "Please use only one.",
        )
    if _output_schema(params) is not None and _named(model, NO_STRUCTURED_OUTPUT):
        return (
            "invalid_request_error",
            f"output_config.format: structured outputs are not supported by model {model}",
        )
    return None


_REPLY = "This is an emulated reply to request {custom_id}."


def result_line(batch: EmulatedBatch, index: int, outcome: str) -> bytes:
    item = batch.items[index]
    result: dict[str, Any]
    if outcome == "succeeded":
        reply = item.structured or _REPLY.format(custom_id=item.custom_id)
        words = reply.split(" ")
        stop_reason = "end_turn" if len(words) <= item.max_tokens else "max_tokens"
        words = words[: item.max_tokens]
        result = {
            "type": "succeeded",
            "message": {
                "id": f"msg_emu_{batch.id[-12:]}_{index}",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": " ".join(words), "citations": None}],
                "model": item.model,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "stop_details": None,
                "usage": {
                    "input_tokens": item.input_tokens,
                    "output_tokens": len(words),
                    "cache_creation": None,
                    "cache_creation_input_tokens": None,
                    "cache_read_input_tokens": None,
                    "inference_geo": None,
                    "output_tokens_details": None,
                    "server_tool_use": None,
                    "service_tier": "batch",
                },
                "container": None,
            },
        }
    elif outcome == "errored":
        assert item.error is not None
        kind, message = item.error
        result = {"type": "errored", "error": error_body(kind, message, f"req_emu_{index}")}
    else:
        result = {"type": outcome}
    return orjson.dumps({"custom_id": item.custom_id, "result": result}) + b"\n"
