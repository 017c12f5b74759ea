"""The wire format of Mistral's batch API, both directions, as pure functions.

No I/O here. Out: a unified request (OpenAI's chat-completions or embeddings format) becomes
the body of Mistral's ``/v1/chat/completions`` or ``/v1/embeddings`` and one batch input line,
``{"custom_id": ..., "body": {...}}``; what Mistral cannot take is refused with the field at
fault. In: a batch job object becomes a :class:`BatchStatus` or a :class:`BatchHandle`, and a
line of the output or error file (or an inline output) is read by the core as an OpenAI batch
line (:func:`batchcore.plugin.result_from_openai_line`) with Mistral's differences
(:data:`RESULT_LINES`). Whether a failed request is worth resubmitting is never decided here:
the caller's ``result_error`` (the core's one rule) decides.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NoReturn

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    BatchError,
    BatchHandle,
    BatchRequest,
    BatchState,
    BatchStatus,
    InvalidRequestError,
    OpenAILineDialect,
    QueueFullError,
    RateLimitError,
    RequestExtensions,
    ResponseLostError,
    parse_timestamp,
)

__all__ = [
    "API_ENDPOINTS",
    "BATCH_ENDPOINTS",
    "IDEMPOTENCY_METADATA_KEY",
    "REQUEST_EXTENSIONS",
    "RESULT_LINES",
    "RETRYABLE_RESULT_CODES",
    "TIMEOUT_METADATA_KEY",
    "encode_line",
    "error_fields",
    "generation_error",
    "job_handle",
    "job_key",
    "job_state",
    "job_status",
    "jobs_made_for",
    "metadata_value",
    "queue_full",
    "request_body",
]

log = logging.getLogger("batchcore_mistral")

#: The endpoints this provider batches: those a unified request can express.
BATCH_ENDPOINTS = frozenset({CHAT_COMPLETIONS, EMBEDDINGS})
#: Every endpoint Mistral's batch API takes (``ApiEndpoint`` in its spec).
API_ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/fim/completions",
    "/v1/moderations",
    "/v1/chat/moderations",
    "/v1/ocr",
    "/v1/classifications",
    "/v1/chat/classifications",
    "/v1/conversations",
    "/v1/audio/transcriptions",
)

#: The job metadata key carrying a payload's idempotency key (keys: 1 to 32 characters).
IDEMPOTENCY_METADATA_KEY = "batchcore_idempotency_key"
#: The job metadata key carrying the job's ``timeout_hours`` (the job object does not show it).
TIMEOUT_METADATA_KEY = "batchcore_timeout_hours"
_METADATA_VALUE_MAX = 512

#: What the conversion takes beyond OpenAI's request format: an assistant message's ``prefix``
#: and a tool message's ``name``; Mistral's own content parts (a document by URL, references,
#: a thinking block), passed on as they are.
REQUEST_EXTENSIONS = RequestExtensions(
    message_keys=frozenset({"prefix", "name"}),
    part_types=frozenset({"document_url", "reference", "thinking"}),
)

#: Mistral's per-request error words that resubmitting can cure, besides the core's table: its
#: rate limit, its capacity limit for a service tier, and an answer the model ended with an
#: error (``finish_reason: "error"``).
RETRYABLE_RESULT_CODES = frozenset(
    {"rate_limited", "service_tier_capacity_exceeded", "generation_error"}
)


#: How a refused job create speaks of the workspace's limit of pending requests. Mistral
#: documents the limit ("1M pending requests per workspace") but not the refusal's words, so a
#: 429 on a create whose message speaks of pending requests or of a queue is read as that
#: refusal; any other 429 (its rate limit, a service tier's capacity) stays a rate limit.
_QUEUE_WORDS = re.compile(r"\bpending\b|\bqueue", re.IGNORECASE)


def queue_full(error: RateLimitError) -> QueueFullError | None:
    """The :class:`QueueFullError` a 429 on a job create means, or None for an ordinary rate
    limit."""
    if isinstance(error, QueueFullError):
        return error
    if error.status_code != 429 or not _QUEUE_WORDS.search(error.message):
        return None
    return QueueFullError(
        error.message,
        provider=error.provider,
        status_code=error.status_code,
        retry_after=error.retry_after,
        code=error.code,
        request_id=error.request_id,
    )


# -- unified request -> Mistral body ------------------------------------------------------------

#: Chat parameters Mistral takes under the same name, with the same meaning.
_CHAT_SAME = frozenset(
    {
        "max_tokens",
        "temperature",
        "stop",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_cache_key",
        "metadata",
    }
)
#: OpenAI chat parameters Mistral has no equivalent for, and why.
_CHAT_REFUSED = {
    "user": "Mistral's chat API has no end-user field",
    "safety_identifier": "Mistral's chat API has no end-user field",
    "logit_bias": "Mistral takes no logit bias",
    "logprobs": "Mistral returns no log probabilities",
    "top_logprobs": "Mistral returns no log probabilities",
    "modalities": "Mistral answers in text only",
    "audio": "Mistral answers in text only",
    "store": "Mistral does not store completions",
    "stream_options": "a batch does not stream",
    "verbosity": "Mistral has no verbosity setting",
    "web_search_options": "Mistral searches the web through a tool: pass tools=[{'type': "
    "'web_search'}] under provider_params",
    "functions": "the deprecated functions are tools in Mistral's API: use tools",
    "function_call": "the deprecated function_call is tool_choice in Mistral's API",
    "moderation": "Mistral moderates through guardrails",
    "prompt_cache_options": "Mistral caches prompts by prompt_cache_key only",
    "prompt_cache_retention": "Mistral caches prompts by prompt_cache_key only",
}
#: Each role's keys in Mistral's spec (``SystemMessage``, ``UserMessage``, ...).
_MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_ALL_PARTS = frozenset(
    {"text", "image_url", "input_audio", "file", "document_url", "reference", "thinking"}
)
#: The content parts each role takes (``SystemMessageContentChunks``, ``ContentChunk``).
_ROLE_PARTS = {
    "system": frozenset({"text", "thinking"}),
    "user": _ALL_PARTS,
    "assistant": _ALL_PARTS,
    "tool": _ALL_PARTS,
}
#: Keys of Mistral's own part types, which travel unchanged.
_OWN_PART_KEYS = {
    "document_url": frozenset({"type", "document_url", "document_name"}),
    "reference": frozenset({"type", "reference_ids"}),
    "thinking": frozenset({"type", "thinking", "signature", "closed"}),
}
_WHY_NOT_KEY = {
    "name": "Mistral's messages have no name, except a tool message's",
    "refusal": "Mistral's assistant messages have no refusal",
    "audio": "Mistral's assistant messages carry no audio",
    "function_call": "the deprecated function_call is tool_calls in Mistral's API",
}
_NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


class _Refusal(Exception):
    """What the conversion cannot do: the field at fault and why."""

    def __init__(self, field: str, problem: str, *, hatch: bool = False) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem
        self.hatch = hatch


def _refuse(field: str, problem: str, *, hatch: bool = False) -> NoReturn:
    raise _Refusal(field, problem, hatch=hatch)


def request_body(
    request: BatchRequest, *, provider: str, params_key: str = "mistral"
) -> dict[str, Any]:
    """The Mistral request body for *request*, ``provider_params[params_key]`` merged in last.

    Raises :class:`InvalidRequestError` naming the custom_id and the field Mistral cannot take.
    """
    try:
        if request.endpoint == CHAT_COMPLETIONS:
            body = _chat_body(request)
        elif request.endpoint == EMBEDDINGS:
            body = _embeddings_body(request)
        else:
            _refuse(
                "endpoint",
                f"this provider batches {' and '.join(sorted(BATCH_ENDPOINTS))}, not "
                f"{request.endpoint} (Mistral's batch API also takes "
                f"{', '.join(e for e in API_ENDPOINTS if e not in BATCH_ENDPOINTS)}, which "
                "batchcore requests cannot express)",
            )
        extra = request.provider_params.get(params_key) if request.provider_params else None
        if extra:
            if "model" in extra:
                _refuse(
                    f"provider_params.{params_key}.model",
                    "the model is the request's own field (a batch runs one model)",
                )
            body.update(extra)
    except _Refusal as caught:
        refusal = caught
    else:
        return body
    # Raised after the except block: the conversion's own exception stays out of the chain.
    message = f"request {request.custom_id!r}: {refusal.field}: {refusal.problem}"
    if refusal.hatch:
        name = refusal.field.rsplit(".", 1)[-1]
        message += (
            f"; leave {name!r} out (Mistral-only fields go under "
            f"provider_params={{{params_key!r}: {{...}}}}, which passes through unchecked)"
        )
    raise InvalidRequestError(
        message, custom_id=request.custom_id, field=refusal.field, provider=provider
    )


def _chat_body(request: BatchRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(i, m) for i, m in enumerate(request.body_parts()[0])],
    }
    params = request.body_parts()[1]
    for key, value in params.items():
        where = f"params.{key}"
        if value is None:
            continue  # OpenAI's "the default": Mistral's default is the same choice
        if key in _CHAT_SAME:
            body[key] = value
        elif key == "max_completion_tokens":
            other = params.get("max_tokens")
            if other is not None and other != value:
                _refuse(where, f"max_tokens is {other}: Mistral has one token limit, max_tokens")
            body["max_tokens"] = value
        elif key == "seed":
            if value < 0:
                _refuse(where, f"Mistral's random_seed is 0 or more, got {value}")
            body["random_seed"] = value
        elif key == "top_p":
            if value <= 0:
                _refuse(where, f"Mistral takes top_p above 0 (up to 1), got {value}")
            body["top_p"] = value
        elif key == "stream":
            if value:
                _refuse(where, "a batch does not stream; leave stream out")
        elif key == "response_format":
            body["response_format"] = _response_format(value)
        elif key == "tools":
            body["tools"] = [_tool(i, tool) for i, tool in enumerate(value)]
        elif key == "tool_choice":
            body["tool_choice"] = _tool_choice(value)
        elif key == "prediction":
            body["prediction"] = _prediction(value)
        elif key == "service_tier":
            if value != "auto":
                _refuse(
                    where,
                    f"Mistral's service tiers are 'auto' and 'standard_only', not {value!r}",
                    hatch=True,
                )
            body["service_tier"] = value
        else:
            why = _CHAT_REFUSED.get(key, "Mistral has no equivalent")
            _refuse(where, why, hatch=True)
    return body


def _message(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    where = f"messages[{index}]"
    role = message["role"]
    if role == "function":
        _refuse(f"{where}.role", "the deprecated function role is a tool message in Mistral's API")
    if role == "developer":
        role = "system"  # OpenAI's newer name for the system message
    keys = _MESSAGE_KEYS[role]
    out: dict[str, Any] = {"role": role}
    for key, value in message.items():
        if key == "role" or (value is None and key != "content"):
            continue
        if key not in keys:
            _refuse(f"{where}.{key}", _WHY_NOT_KEY.get(key, f"a {role} message has no {key!r}"))
        if key == "content":
            out["content"] = _content(where, role, value)
        elif key == "tool_calls":
            out["tool_calls"] = [
                _tool_call(f"{where}.tool_calls[{i}]", c) for i, c in enumerate(value)
            ]
        else:
            out[key] = value
    if role == "assistant" and not out.get("content") and not out.get("tool_calls"):
        _refuse(f"{where}.content", "Mistral needs an assistant message's content or tool_calls")
    if role != "assistant" and "content" not in out:
        out["content"] = ""
    return out


def _content(where: str, role: str, content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    allowed = _ROLE_PARTS[role]
    return [_part(f"{where}.content[{i}]", allowed, part) for i, part in enumerate(content)]


def _part(where: str, allowed: frozenset[str], part: Mapping[str, Any]) -> Any:
    kind = part.get("type")
    if kind not in allowed:
        if kind == "refusal":
            _refuse(f"{where}.type", "Mistral's messages have no refusal part")
        _refuse(f"{where}.type", f"Mistral takes {', '.join(sorted(allowed))} parts here")
    extra = [k for k, v in part.items() if v is not None and k not in _part_keys(kind)]
    if extra:
        _refuse(f"{where}.{extra[0]}", f"Mistral's {kind} part has no {extra[0]!r}")
    if kind == "text":
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part["image_url"]
        if isinstance(image, str):
            return {"type": "image_url", "image_url": image}
        unknown = sorted(set(image) - {"url", "detail"})
        if unknown:
            _refuse(f"{where}.image_url.{unknown[0]}", f"Mistral's image_url has no {unknown[0]!r}")
        return {"type": "image_url", "image_url": {k: v for k, v in image.items() if v is not None}}
    if kind == "input_audio":
        audio = part["input_audio"]
        data = audio.get("data") if isinstance(audio, Mapping) else audio
        if not isinstance(data, str):
            _refuse(f"{where}.input_audio.data", "Mistral takes audio as base64 text")
        # Mistral reads the format from the audio itself; it has no field for it.
        return {"type": "input_audio", "input_audio": data}
    if kind == "file":
        file = part["file"]
        given = sorted(k for k, v in file.items() if v is not None and k != "file_id")
        if given or not file.get("file_id"):
            _refuse(
                f"{where}.file.{given[0] if given else 'file_id'}",
                "Mistral takes a file by the id of an upload to its Files API (file_id); a "
                "document by URL is a document_url part",
            )
        return {"type": "file", "file_id": file["file_id"]}
    return dict(part)  # Mistral's own part types travel unchanged


def _part_keys(kind: str) -> frozenset[str]:
    own = _OWN_PART_KEYS.get(kind)
    return own if own is not None else frozenset({"type", kind})


def _tool_call(where: str, call: Mapping[str, Any]) -> dict[str, Any]:
    if call.get("type", "function") != "function":
        _refuse(f"{where}.type", f"Mistral's tool calls are function calls, not {call['type']!r}")
    unknown = sorted(set(call) - {"id", "type", "function"})
    if unknown:
        _refuse(f"{where}.{unknown[0]}", f"Mistral's tool calls have no {unknown[0]!r}")
    function = call.get("function")
    if not isinstance(function, Mapping) or set(function) - {"name", "arguments"}:
        _refuse(f"{where}.function", "a function call is {name, arguments}")
    out: dict[str, Any] = {"type": "function", "function": dict(function)}
    if call.get("id") is not None:
        out["id"] = call["id"]
    return out


def _response_format(value: Any) -> dict[str, Any]:
    where = "params.response_format"
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        _refuse(f"{where}.type", "Mistral's formats are text, json_object and json_schema")
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        _refuse(f"{where}.json_schema", "json_schema needs its name and schema")
    unknown = sorted(set(spec) - {"name", "description", "schema", "strict"})
    if unknown:
        _refuse(f"{where}.json_schema.{unknown[0]}", f"Mistral's json_schema has no {unknown[0]!r}")
    if not isinstance(spec.get("schema"), Mapping):
        _refuse(f"{where}.json_schema.schema", "Mistral needs the JSON schema itself")
    return {"type": "json_schema", "json_schema": {k: v for k, v in spec.items() if v is not None}}


def _tool(index: int, tool: Any) -> dict[str, Any]:
    where = f"params.tools[{index}]"
    if not isinstance(tool, Mapping):
        _refuse(where, "a tool is an object")
    if tool.get("type") != "function":
        _refuse(f"{where}.type", f"Mistral's tools are functions, not {tool.get('type')!r}")
    unknown = sorted(set(tool) - {"type", "function"})
    if unknown:
        _refuse(f"{where}.{unknown[0]}", f"Mistral's tools have no {unknown[0]!r}")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        _refuse(f"{where}.function", "a function tool needs its function")
    unknown = sorted(set(function) - {"name", "description", "parameters", "strict"})
    if unknown:
        _refuse(f"{where}.function.{unknown[0]}", f"Mistral's functions have no {unknown[0]!r}")
    out = {k: v for k, v in function.items() if v is not None}
    # A function without parameters takes no arguments; Mistral wants that said.
    out.setdefault("parameters", dict(_NO_PARAMETERS))
    return {"type": "function", "function": out}


def _tool_choice(value: Any) -> Any:
    if isinstance(value, str):
        return value  # none, auto, required: Mistral's words too
    function = value.get("function") if isinstance(value, Mapping) else None
    if (
        value.get("type") == "function"
        and set(value) == {"type", "function"}
        and isinstance(function, Mapping)
        and set(function) == {"name"}
    ):
        return {"type": "function", "function": {"name": function["name"]}}
    _refuse("params.tool_choice", "Mistral's tool_choice is none, auto, required or one function")


def _prediction(value: Any) -> dict[str, Any]:
    content = value.get("content") if isinstance(value, Mapping) else None
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        if len(texts) != len(content):
            _refuse("params.prediction.content", "Mistral predicts from text only")
        content = "".join(texts)
    if value.get("type", "content") != "content" or not isinstance(content, str):
        _refuse("params.prediction", "Mistral's prediction is {type: content, content: text}")
    return {"type": "content", "content": content}


def _embeddings_body(request: BatchRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model}
    for key, value in request.body_parts()[1].items():
        where = f"params.{key}"
        if value is None:
            continue
        if key == "input":
            texts = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(text, str) for text in texts):
                _refuse(where, "Mistral embeds text, not token ids")
            body["input"] = value if isinstance(value, str) else texts
        elif key == "dimensions":
            body["output_dimension"] = value
        elif key == "encoding_format":
            body["encoding_format"] = value
        else:
            why = "Mistral's embeddings API has no end-user field" if key == "user" else None
            _refuse(where, why or "Mistral has no equivalent", hatch=True)
    return body


_LINE_START = b'{"custom_id":'
_LINE_BODY = b',"body":'


def encode_line(custom_id: str, body: Mapping[str, Any]) -> bytes:
    """One batch input line, ``{"custom_id": ..., "body": {...}}``, without the newline."""
    return b"".join((_LINE_START, orjson.dumps(custom_id), _LINE_BODY, orjson.dumps(body), b"}"))


# -- batch jobs -> BatchStatus, BatchHandle -----------------------------------------------------

_STATES = {
    "QUEUED": BatchState.VALIDATING,
    "RUNNING": BatchState.IN_PROGRESS,
    "SUCCESS": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "TIMEOUT_EXCEEDED": BatchState.EXPIRED,
    "CANCELLATION_REQUESTED": BatchState.CANCELLING,
    "CANCELLED": BatchState.CANCELLED,
}


def job_state(raw: str) -> BatchState | None:
    """The state for a job status word (any case); None for a word we do not know."""
    return _STATES.get(raw.strip().upper())


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def _timestamp(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return None


def metadata_value(key: str) -> str:
    """How *key* is written into job metadata (values are 1 to 512 characters): itself, or its
    sha256 when longer."""
    if 0 < len(key) <= _METADATA_VALUE_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def job_key(job: Mapping[str, Any]) -> Any:
    """The idempotency key (as written by :func:`metadata_value`) a job's metadata carries."""
    metadata = job.get("metadata")
    return metadata.get(IDEMPOTENCY_METADATA_KEY) if isinstance(metadata, Mapping) else None


def _timeout_hours(job: Mapping[str, Any]) -> int | None:
    metadata = job.get("metadata")
    raw = metadata.get(TIMEOUT_METADATA_KEY) if isinstance(metadata, Mapping) else None
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def job_status(provider: str, job: Mapping[str, Any]) -> BatchStatus:
    """A :class:`BatchStatus` from a batch job object.

    An unknown status word maps to ``IN_PROGRESS`` (a state that keeps callers polling) and is
    logged: treating a new word as terminal could lose results. ``completed`` counts the
    requests that succeeded (``succeeded_requests``), ``failed`` those that failed.
    """
    raw_status = str(job.get("status") or "")
    state = job_state(raw_status)
    if state is None:
        log.warning(
            "batch job %s has unknown status %r; treating it as running", job.get("id"), raw_status
        )
        state = BatchState.IN_PROGRESS
    timestamps: dict[str, datetime] = {}
    for name in ("created_at", "started_at", "completed_at"):
        stamp = _timestamp(job.get(name))
        if stamp is not None:
            timestamps[name] = stamp
    created = timestamps.get("created_at")
    hours = _timeout_hours(job)
    expires = created + timedelta(hours=hours) if created is not None and hours else None
    if expires is not None:
        timestamps["expires_at"] = expires
    return BatchStatus(
        provider=provider,
        batch_id=str(job.get("id") or ""),
        state=state,
        raw_status=raw_status,
        total=_int(job.get("total_requests")),
        completed=_int(job.get("succeeded_requests")),
        failed=_int(job.get("failed_requests")),
        created_at=created,
        expires_at=expires,
        ended_at=timestamps.get("completed_at") if state.is_terminal else None,
        timestamps=timestamps,
        errors=_job_errors(job.get("errors")),
        raw=job,
    )


def _job_errors(value: Any) -> tuple[BatchError, ...]:
    errors = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        count = _int(item.get("count"))
        message = str(item.get("message") or "")
        if count is not None and count > 1:
            message = f"{message} ({count} times)"
        errors.append(BatchError(code=None, message=message))
    return tuple(errors)


def job_handle(provider: str, job: Mapping[str, Any], *, now: datetime) -> BatchHandle:
    """The handle of a batch job object (*now* when it has no readable ``created_at``).
    :class:`ResponseLostError` when it names no job: the vendor answered, but not usably."""
    job_id = job.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise ResponseLostError("the answer names no batch job", provider=provider)
    metadata = {
        "endpoint": job.get("endpoint"),
        "model": job.get("model"),
        "input_files": list(job.get("input_files") or ()),
        "idempotency_key": job_key(job),
        "timeout_hours": _timeout_hours(job),
    }
    return BatchHandle(
        provider=provider,
        batch_id=job_id,
        created_at=_timestamp(job.get("created_at")) or now,
        metadata={key: value for key, value in metadata.items() if value not in (None, [])},
    )


def jobs_made_for(jobs: Iterable[Any], *, key: str, input_file_id: Any) -> list[Mapping[str, Any]]:
    """The jobs whose metadata carries the idempotency *key* (as :func:`metadata_value` writes
    it), or that were made from the uploaded file *input_file_id* (an upload belongs to one
    payload). Exact: a list that ignored the metadata filter changes nothing."""
    written = metadata_value(key)
    return [
        job
        for job in jobs
        if isinstance(job, Mapping)
        and (
            job_key(job) == written
            or (input_file_id and input_file_id in (job.get("input_files") or ()))
        )
    ]


# -- result lines -> BatchResult ----------------------------------------------------------------


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:500]


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of a Mistral error: the API's ``{object: "error", message, type, code}``,
    a validation error's ``{detail: [{loc, msg, type}]}``, the gateway's ``{message}`` or
    ``{detail: "..."}``, or a line's ``error`` object or text."""
    if isinstance(body, str):
        return None, body or None
    if not isinstance(body, Mapping):
        return None, None
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
        first = detail[0]
        where = ".".join(str(part) for part in first.get("loc") or ())
        kind = first.get("type")
        said = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return (str(kind) if kind else "validation_error"), said
    # The API's ``type`` is a word (``rate_limited``); its ``code`` a number ("1300").
    code = body.get("type")
    if code is None or code == "":
        code = body.get("code")
    text: Any = body.get("message")
    if text is None:
        text = detail
    return (str(code) if code not in (None, "") else None), (
        _short(text) if text not in (None, "") else None
    )


def generation_error(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """An answer whose first choice stopped with ``finish_reason: error`` (the model failed
    midway): errored, ``generation_error``, keeping what it produced; None otherwise."""
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(first, Mapping) and first.get("finish_reason") == "error":
        return "generation_error", "The model stopped with an error."
    return None


#: Mistral's output and error lines are OpenAI's (``custom_id``, ``response: {status_code,
#: body}``, ``error``), read by the core; these are its differences: its error bodies, and a
#: generation that failed midway.
RESULT_LINES = OpenAILineDialect(error_fields=error_fields, answer_failure=generation_error)
