"""The emulator's model of the Gemini batch API, without the HTTP server: what a
``GenerateContentRequest`` must look like, how a batch's requests end on the clock, and the
objects and answers the API returns. Used by :mod:`batchcore_gemini.testing`.

Requests are checked against the official SDK's own types (``google.genai.types.Content``,
``GenerationConfig``, ``Tool``, ``ToolConfig``, ``SafetySetting``: pydantic models that refuse
unknown fields), after the top-level fields of a ``GenerateContentRequest``, plus the fields the
SDK itself refuses to send to the Developer API (Vertex AI only) and a few rules the API enforces
on values (one data field per part, schemas without references, ...).

A request for JSON output is answered with a JSON instance of its schema (``responseSchema``,
Gemini's OpenAPI-style schema, or ``responseJsonSchema``, a JSON Schema; made by
:func:`batchcore.testing.emulation.schema_instance`); one for ``text/x.enum`` with the first
value of its enum.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import orjson

from batchcore.testing.emulation import Enqueued, QueueRefusal, schema_instance
from batchcore_gemini._mapping import RPC_CODES

__all__ = [
    "BATCH_TYPE",
    "BLOCK_TRIGGER",
    "ERROR_TRIGGER",
    "FINISH_TRIGGER",
    "EmulatedBatch",
    "Reject",
    "answer",
    "error_body",
    "input_tokens",
    "operation",
    "queue_full_error",
    "request_problem",
    "rfc3339",
    "write_answers",
]

#: Text that makes a request end with that google.rpc error: ``[emulator-error:UNAVAILABLE]``.
ERROR_TRIGGER = "[emulator-error:"
#: Text that makes the answer stop with that finish reason: ``[emulator-finish:SAFETY]``.
FINISH_TRIGGER = "[emulator-finish:"
#: Text that makes the prompt blocked for that reason: ``[emulator-block:PROHIBITED_CONTENT]``.
BLOCK_TRIGGER = "[emulator-block:"
_TRIGGER = re.compile(r"\[emulator-(error|finish|block):([A-Z_]+)\]")

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"


class Reject(Exception):
    """Answer the call with Google's error body: HTTP *status*, the rpc status name, *message*."""

    def __init__(
        self, status: int, rpc: str, message: str, details: Sequence[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.rpc = rpc
        self.message = message
        self.details = list(details or ())


def error_body(
    status: int, rpc: str, message: str, details: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Google's error object: ``{"error": {"code", "message", "status", "details"}}``."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc}
    if details:
        error["details"] = list(details)
    return {"error": error}


#: The quota a refusal for the queue names in its ``google.rpc.QuotaFailure``, in the shape of
#: Google's quota errors (the metric's name is the emulator's: Google documents the limit,
#: "Batch enqueued tokens" per model, not this answer).
QUEUE_QUOTA_METRIC = "generativelanguage.googleapis.com/batch_enqueued_tokens"
QUEUE_QUOTA_ID = "BatchEnqueuedTokensPerModelPerProject"


def queue_full_error(refusal: QueueRefusal) -> Reject:
    """The 429 ``RESOURCE_EXHAUSTED`` refusing a batch its model's queue has no room for."""
    model = refusal.model or "this model"
    return Reject(
        429,
        "RESOURCE_EXHAUSTED",
        f"Batch enqueued {refusal.measure} limit exceeded for {model}: {refusal.queued:,} "
        f"{refusal.measure} are enqueued across your active batch jobs and this batch needs "
        f"{refusal.amount:,}; the limit is {refusal.limit:,}. Try again once some batch jobs "
        "have finished.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": QUEUE_QUOTA_METRIC,
                        "quotaId": QUEUE_QUOTA_ID,
                        "quotaDimensions": {"model": model.removeprefix("models/")},
                        "quotaValue": str(refusal.limit),
                    }
                ],
            }
        ],
    )


def rfc3339(seconds: float) -> str:
    """A timestamp as Google writes it (UTC, nanoseconds)."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


# -- what a request must look like --------------------------------------------------------------

#: Top-level fields of a ``GenerateContentRequest`` (those the SDK writes for the Developer API).
REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "store",
    }
)
#: Fields the SDK refuses to send to the Developer API ("only supported in Vertex AI").
_VERTEX_ONLY = frozenset(
    {
        "routingConfig",
        "modelSelectionConfig",
        "audioTimestamp",
        "modelArmorConfig",
        "retrieval",
        "enterpriseWebSearch",
        "parallelAiSearch",
        "exaAiSearch",
        "partialArgs",
        "willContinue",
        "method",
    }
)
_PART_DATA = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "toolCall",
        "toolResponse",
    }
)
_SNAKE = re.compile(r"_([a-z])")


def _camel(key: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every object entry under *node*, keys camelCased."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            name = _camel(key)
            where = f"{path}.{name}" if path else name
            yield where, name, value
            yield from _walk(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")


def request_problem(request: Any) -> str | None:
    """Why *request* is not a ``GenerateContentRequest`` the Developer API accepts, or None.

    Shape first (the SDK's types, strictly), then the rules on values the API enforces.
    """
    from google.genai import types

    if not isinstance(request, Mapping):
        return "request: must be a GenerateContentRequest object"
    fields = {_camel(key): value for key, value in request.items()}
    for key in fields:
        if key not in REQUEST_FIELDS:
            return f"request: Unknown name {key!r}: Cannot find field."
    checks: list[tuple[str, Any, Any]] = [
        ("systemInstruction", types.Content, fields.get("systemInstruction")),
        ("toolConfig", types.ToolConfig, fields.get("toolConfig")),
        ("generationConfig", types.GenerationConfig, fields.get("generationConfig")),
    ]
    for name, kind in (("contents", types.Content), ("tools", types.Tool)):
        items = fields.get(name)
        if items is not None and not isinstance(items, list):
            return f"request.{name}: must be a list"
        checks.extend((f"{name}[{i}]", kind, item) for i, item in enumerate(items or ()))
    settings = fields.get("safetySettings")
    if settings is not None and not isinstance(settings, list):
        return "request.safetySettings: must be a list"
    checks.extend(
        (f"safetySettings[{i}]", types.SafetySetting, s) for i, s in enumerate(settings or ())
    )
    for where, kind, value in checks:
        if value is None:
            continue
        try:
            kind.model_validate(value)
        except ValueError as exc:
            first = str(exc).splitlines()[1:2]
            return f"request.{where}: invalid {kind.__name__}: {' '.join(first).strip()}"
    for where, key, value in _walk(fields, ""):
        if key in _VERTEX_ONLY:
            return f"request.{where}: is only supported on Vertex AI, not the Gemini API"
        if key in ("ref", "$ref", "defs", "$defs") and ".responseSchema" in f".{where}":
            return f"request.{where}: the Gemini API's schemas have no references"
        if key == "additionalProperties" and value not in (None, False):
            return f"request.{where}: additionalProperties is only supported on Vertex AI"
    return _value_problem(fields)


def _value_problem(fields: Mapping[str, Any]) -> str | None:
    contents = fields.get("contents")
    if not isinstance(contents, list) or not contents:
        return "request.contents: must not be empty"
    for index, content in enumerate(contents):
        role = content.get("role")
        if role not in (None, "user", "model"):
            return f"request.contents[{index}].role: must be 'user' or 'model', not {role!r}"
        problem = _parts_problem(content.get("parts"), f"request.contents[{index}].parts")
        if problem:
            return problem
    system = fields.get("systemInstruction")
    if system is not None:
        problem = _parts_problem(system.get("parts"), "request.systemInstruction.parts")
        if problem:
            return problem
    config = fields.get("generationConfig") or {}
    config = {_camel(k): v for k, v in config.items()}
    count = config.get("candidateCount")
    if count is not None and not 1 <= count <= 8:
        return "request.generationConfig.candidateCount: must be between 1 and 8"
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        return "request.generationConfig.temperature: must be between 0 and 2"
    top_p = config.get("topP")
    if top_p is not None and not 0 <= top_p <= 1:
        return "request.generationConfig.topP: must be between 0 and 1"
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and max_tokens < 1:
        return "request.generationConfig.maxOutputTokens: must be positive"
    if config.get("responseSchema") is not None and config.get("responseMimeType") not in (
        "application/json",
        "text/x.enum",
    ):
        return "request.generationConfig.responseSchema: needs responseMimeType application/json"
    if config.get("responseJsonSchema") is not None:
        if config.get("responseSchema") is not None:
            return (
                "request.generationConfig: responseSchema and responseJsonSchema cannot both be set"
            )
        if config.get("responseMimeType") != "application/json":
            return (
                "request.generationConfig.responseJsonSchema: needs responseMimeType "
                "application/json"
            )
    return _tools_problem(fields)


def _parts_problem(parts: Any, where: str) -> str | None:
    if not isinstance(parts, list) or not parts:
        return f"{where}: must not be empty"
    for index, part in enumerate(parts):
        present = [key for key in map(_camel, part) if key in _PART_DATA]
        if len(present) != 1:
            return f"{where}[{index}]: a part holds exactly one kind of data, not {present}"
        blob = part.get("inlineData") or part.get("inline_data")
        if blob is not None:
            try:
                base64.b64decode(blob.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                return f"{where}[{index}].inlineData.data: is not valid base64"
            if not blob.get("mimeType") and not blob.get("mime_type"):
                return f"{where}[{index}].inlineData.mimeType: is required"
    return None


def _tools_problem(fields: Mapping[str, Any]) -> str | None:
    names: set[str] = set()
    for index, tool in enumerate(fields.get("tools") or ()):
        for number, function in enumerate(tool.get("functionDeclarations") or ()):
            where = f"request.tools[{index}].functionDeclarations[{number}]"
            name = function.get("name")
            if not isinstance(name, str) or not re.match(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$", name):
                return f"{where}.name: invalid function name {name!r}"
            names.add(name)
            parameters = function.get("parameters")
            if parameters is not None and not parameters.get("properties"):
                return f"{where}.parameters.properties: should be non-empty for OBJECT type"
    calling = (fields.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        if calling.get("mode") not in ("ANY", "VALIDATED"):
            return (
                "request.toolConfig.functionCallingConfig.allowedFunctionNames: only with mode "
                "ANY or VALIDATED"
            )
        unknown = [name for name in allowed if name not in names]
        if unknown:
            return f"request.toolConfig: allowedFunctionNames {unknown} are not declared"
    return None


# -- answers -----------------------------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p["text"] for p in parts or () if isinstance(p, Mapping) and "text" in p]


#: Gemini's schema keywords that count (stored as int64: JSON strings are allowed).
_COUNTS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)
#: Gemini's formats that are only hints about a number's width or an enum's spelling.
_WIDTH_FORMATS = frozenset({"enum", "int32", "int64", "float", "double"})


def json_schema_of(schema: Any) -> Any:
    """Gemini's ``Schema`` (``responseSchema``: upper-case types, ``nullable``) as the JSON
    Schema it stands for, for :func:`schema_instance`."""
    if isinstance(schema, list):
        return [json_schema_of(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for raw_key, value in schema.items():
        key = _camel(raw_key)
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key in _COUNTS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        elif key == "format" and value in _WIDTH_FORMATS:
            continue
        elif key in ("properties", "items", "anyOf"):
            if isinstance(value, Mapping) and key == "properties":
                out[key] = {name: json_schema_of(sub) for name, sub in value.items()}
            else:
                out[key] = json_schema_of(value)
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _json_answer(config: Mapping[str, Any]) -> str:
    """The text of an answer constrained to JSON; ValueError for a schema no value fits."""
    if config.get("responseJsonSchema") is not None:
        value = schema_instance(config["responseJsonSchema"])
    elif isinstance(config.get("responseSchema"), Mapping):
        value = schema_instance(json_schema_of(config["responseSchema"]))
    else:
        value = {"answer": "emulated"}
    return orjson.dumps(value).decode()


def _prompt_text(contents: Any) -> str:
    return " ".join(text for content in contents or () for text in _texts(content))


def _token_count(prompt: str) -> int:
    # About four characters a token, as Gemini's documentation puts it.
    return max(1, len(prompt) // 4)


def input_tokens(request: Any) -> int:
    """The prompt tokens :func:`answer` reports for *request* (``promptTokenCount``): what the
    batch holds in its model's queue of enqueued tokens."""
    if not isinstance(request, Mapping):
        return 1
    fields = {_camel(k): v for k, v in request.items()}
    contents = fields.get("contents")
    return _token_count(_prompt_text(contents if isinstance(contents, list) else ()))


def answer(request: Mapping[str, Any], model: str, index: int) -> dict[str, Any]:
    """The emulated outcome of one request: ``{"response": ...}`` or ``{"error": ...}``
    (a google.rpc.Status). Deterministic, so repeated fetches agree."""
    fields = {_camel(k): v for k, v in request.items()}
    problem = _value_problem(fields) if "contents" in fields else "request.contents: required"
    if problem:
        return {"error": {"code": 3, "message": problem}}
    prompt = _prompt_text(fields["contents"])
    trigger = _TRIGGER.search(prompt)
    if trigger is not None and trigger.group(1) == "error":
        status = trigger.group(2)
        code = next((n for n, name in RPC_CODES.items() if name == status), 2)
        return {"error": {"code": code, "message": f"emulated {status} for this request"}}
    config = {_camel(k): v for k, v in (fields.get("generationConfig") or {}).items()}
    prompt_tokens = _token_count(prompt)
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if fields.get("cachedContent"):
        usage["cachedContentTokenCount"] = prompt_tokens // 2
    response: dict[str, Any] = {
        "modelVersion": model.removeprefix("models/"),
        "responseId": hashlib.sha256(f"{index}:{prompt}".encode()).hexdigest()[:22],
    }
    if trigger is not None and trigger.group(1) == "block":
        response["promptFeedback"] = {"blockReason": trigger.group(2)}
        usage["totalTokenCount"] = prompt_tokens
        response["usageMetadata"] = usage
        return {"response": response}
    candidates = []
    output_tokens = thought_tokens = 0
    for number in range(int(config.get("candidateCount") or 1)):
        try:
            parts, finish, tokens = _candidate_parts(fields, config, prompt, trigger, number)
        except ValueError as exc:  # a response schema no value satisfies
            return {"error": {"code": 3, "message": f"request.generationConfig: {exc}"}}
        candidate: dict[str, Any] = {"index": number, "finishReason": finish}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish == "SAFETY":
            candidate["safetyRatings"] = [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
            ]
        candidates.append(candidate)
        output_tokens += tokens
        if any(p.get("thought") for p in parts):
            thought_tokens += 7
    response["candidates"] = candidates
    usage["candidatesTokenCount"] = output_tokens
    if thought_tokens:
        usage["thoughtsTokenCount"] = thought_tokens
    usage["totalTokenCount"] = prompt_tokens + output_tokens + thought_tokens
    response["usageMetadata"] = usage
    return {"response": response}


def _candidate_parts(
    fields: Mapping[str, Any],
    config: Mapping[str, Any],
    prompt: str,
    trigger: re.Match[str] | None,
    number: int,
) -> tuple[list[dict[str, Any]], str, int]:
    if trigger is not None and trigger.group(1) == "finish":
        return [], trigger.group(2), 0
    parts: list[dict[str, Any]] = []
    thinking = config.get("thinkingConfig") or {}
    if thinking.get("includeThoughts") or thinking.get("include_thoughts"):
        parts.append({"text": "Thinking it over.", "thought": True})
    calling = (fields.get("toolConfig") or {}).get("functionCallingConfig") or {}
    declared = [
        f["name"]
        for tool in fields.get("tools") or ()
        for f in tool.get("functionDeclarations") or ()
    ]
    if calling.get("mode") == "ANY" and declared:
        name = (calling.get("allowedFunctionNames") or declared)[0]
        parts.append({"functionCall": {"name": name, "args": {}}})
        return parts, "STOP", 5
    mime = config.get("responseMimeType")
    limit = config.get("maxOutputTokens")
    if mime == "application/json":
        text = _json_answer(config)
        tokens, finish = max(1, len(text) // 4), "STOP"
        if isinstance(limit, int) and tokens > limit:  # cut short, like any answer
            text, tokens, finish = text[: limit * 4], limit, "MAX_TOKENS"
        parts.append({"text": text})
        return parts, finish, tokens
    schema = config.get("responseSchema")
    if mime == "text/x.enum" and isinstance(schema, Mapping) and schema.get("enum"):
        return [*parts, {"text": str(schema["enum"][0])}], "STOP", 1
    words = f"Emulated answer {number + 1} to: {prompt[:80]}".split()
    finish = "STOP"
    if isinstance(limit, int) and len(words) > limit:
        words, finish = words[:limit], "MAX_TOKENS"
    # Two text parts: a client must join every text part of the answer, in order.
    half = max(1, len(words) // 2)
    parts.append({"text": " ".join(words[:half])})
    if words[half:]:
        parts.append({"text": " " + " ".join(words[half:])})
    return parts, finish, len(words)


# -- batches -------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class EmulatedBatch:
    """One batch. Its requests' answers are computed at create (in input order) and kept on
    disk, one JSON line each; requests finish one after another, evenly over
    ``processing_seconds`` after ``pending_seconds``."""

    id: str
    model: str
    display_name: str | None
    created: float
    pending_seconds: float
    processing_seconds: float
    expiry_seconds: float
    input_config: bytes = attrs.field(repr=False)  # the inputConfig as received, JSON
    file_mode: bool
    answers_path: Path
    keys: list[str | None] = attrs.field(repr=False)
    errors: list[bool] = attrs.field(repr=False)  # per request: answered with an error
    shuffle_seed: int
    priority: int | None = None
    cancelled_at: float | None = None
    failure: str | None = None
    deleted: bool = False
    responses_file: str | None = None
    #: The input tokens of its requests (:func:`input_tokens`).
    tokens: int = 0

    @property
    def total(self) -> int:
        return len(self.keys)

    def _start(self) -> float:
        return self.created + self.pending_seconds

    def _done(self) -> float:
        return self._start() + self.processing_seconds

    def finished_by(self, moment: float) -> int:
        if moment < self._start():
            return 0
        if self.processing_seconds <= 0 or moment >= self._done():
            return self.total
        return min(int((moment - self._start()) / self.processing_seconds * self.total), self.total)

    def state(self, now: float) -> str:
        if self.failure is not None:
            return "BATCH_STATE_FAILED"
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return "BATCH_STATE_CANCELLED"
        expires = self.created + self.expiry_seconds
        if now >= expires and self._done() > expires:
            return "BATCH_STATE_EXPIRED"
        if now >= self._done():
            return "BATCH_STATE_SUCCEEDED"
        if now >= self._start():
            return "BATCH_STATE_RUNNING"
        return "BATCH_STATE_PENDING"

    def enqueued(self, now: float) -> Enqueued | None:
        """What the batch holds in its model's queue at *now*: its requests' tokens while it
        is active (pending or running), None once it has ended."""
        if self.state(now) not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            return None
        return Enqueued(model=self.model, tokens=self.tokens, requests=self.total)

    def ended_at(self, now: float) -> float | None:
        state = self.state(now)
        if state == "BATCH_STATE_CANCELLED":
            return self.cancelled_at
        if state == "BATCH_STATE_EXPIRED":
            return self.created + self.expiry_seconds
        if state == "BATCH_STATE_SUCCEEDED":
            return self._done()
        if state == "BATCH_STATE_FAILED":
            return self.created
        return None

    def finished(self, now: float) -> int:
        """Requests answered by *now* (a cancel stops the count; an expired batch has none)."""
        state = self.state(now)
        if state in ("BATCH_STATE_FAILED", "BATCH_STATE_EXPIRED"):
            return 0
        if state == "BATCH_STATE_CANCELLED":
            assert self.cancelled_at is not None
            return self.finished_by(self.cancelled_at)
        return self.finished_by(now)

    def answer_lines(self, count: int) -> Iterator[bytes]:
        """The first *count* answers, one JSON line each, in the shuffled order the API uses."""
        with open(self.answers_path, "rb") as lines:
            chosen = [line.rstrip(b"\n") for _, line in zip(range(count), lines, strict=False)]
        random.Random(self.shuffle_seed).shuffle(chosen)
        return iter(chosen)


def write_answers(
    path: Path, requests: Iterable[tuple[str | None, Any, str | None]], model: str
) -> tuple[list[str | None], list[bool]]:
    """Compute and store every request's answer as a responses-file line, from ``(key,
    request, problem)`` (a request with a problem is answered INVALID_ARGUMENT); return the
    keys and which requests errored."""
    keys: list[str | None] = []
    errors: list[bool] = []
    with open(path, "wb") as out:
        for index, (key, request, problem) in enumerate(requests):
            if problem is None:
                outcome = answer(request, model, index)
            else:
                outcome = {"error": {"code": 3, "message": problem}}
            line: dict[str, Any] = {}
            if key is not None:
                line["key"] = key
            line.update(outcome)
            out.write(orjson.dumps(line) + b"\n")
            keys.append(key)
            errors.append("error" in outcome)
    return keys, errors


def _inline_entry(line: bytes) -> bytes:
    """A responses-file line as an inline response: ``{response|error, metadata: {key}}``."""
    entry = orjson.loads(line)
    key = entry.pop("key", None)
    if key is not None:
        entry["metadata"] = {"key": key}
    return orjson.dumps(entry)


def operation(batch: EmulatedBatch, now: float, *, with_input: bool = True) -> dict[str, Any]:
    """The batch as the API shows it: a long-running operation ``batches/...``."""
    state = batch.state(now)
    finished = batch.finished(now)
    failed = sum(batch.errors[:finished]) if finished else 0
    name = f"batches/{batch.id}"
    stats = {
        "requestCount": str(batch.total),
        "successfulRequestCount": str(finished - failed),
        "failedRequestCount": str(failed),
        "pendingRequestCount": str(batch.total - finished),
    }
    ended = batch.ended_at(now)
    metadata: dict[str, Any] = {
        "@type": BATCH_TYPE,
        "model": batch.model,
        "displayName": batch.display_name,
        "createTime": rfc3339(batch.created),
        "updateTime": rfc3339(ended if ended is not None else max(batch.created, now)),
        "batchStats": stats,
        "state": state,
        "name": name,
    }
    if batch.display_name is None:
        del metadata["displayName"]
    if with_input:
        metadata["inputConfig"] = orjson.Fragment(batch.input_config)
    if batch.priority is not None:
        metadata["priority"] = str(batch.priority)
    if ended is not None:
        metadata["endTime"] = rfc3339(ended)
    done = state in (
        "BATCH_STATE_SUCCEEDED",
        "BATCH_STATE_FAILED",
        "BATCH_STATE_CANCELLED",
        "BATCH_STATE_EXPIRED",
    )
    body: dict[str, Any] = {"name": name, "metadata": metadata, "done": done}
    output: dict[str, Any] | None = None
    if done and finished and state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"):
        if batch.file_mode:
            output = {"responsesFile": batch.responses_file}
        else:
            entries = b",".join(_inline_entry(line) for line in batch.answer_lines(finished))
            output = {
                "inlinedResponses": {"inlinedResponses": orjson.Fragment(b"[" + entries + b"]")}
            }
    if output is not None:
        metadata["output"] = output
        body["response"] = {"@type": OUTPUT_TYPE, **output}
    if state == "BATCH_STATE_FAILED":
        body["error"] = {"code": 3, "message": batch.failure or "the batch failed"}
    return body
