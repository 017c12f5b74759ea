"""What the Mistral emulator does its own way, on top of batchcore's emulation engine.

The engine (:mod:`batchcore.testing.emulation`) keeps time, files, input scans and canned
answers. Here is Mistral's part, with no HTTP (see :mod:`batchcore_mistral.testing`): its spec
(the package's ``_spec.json``) and a strict validator of it, its error bodies (the API's
``{"object": "error", ...}`` and the validation error's ``detail`` list), a job's record and
status words, the answers in Mistral's shapes, and the output and error file lines.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from batchcore.plugin import CHAT_COMPLETIONS, EMBEDDINGS
from batchcore.testing.emulation import (
    BodyChecker,
    CompletionOrder,
    Enqueued,
    FailMarker,
    InputScan,
    LineError,
    Phase,
    QueueRefusal,
    Stage,
    Timing,
    answer_body,
    phase_of,
    write_finished,
)
from batchcore.testing.openapi import SpecProblem, SpecValidator

__all__ = [
    "EMULATED_ENDPOINTS",
    "REQUEST_SCHEMAS",
    "STATUS_WORDS",
    "EmulatedJob",
    "body_checker",
    "error_body",
    "line_rules",
    "mistral_answer",
    "queue_full_body",
    "spec_document",
    "spec_validator",
    "validation_body",
    "validation_detail",
    "write_results",
]

#: The request schema of each endpoint the emulator answers.
REQUEST_SCHEMAS: Mapping[str, str] = {
    CHAT_COMPLETIONS: "ChatCompletionRequest",
    EMBEDDINGS: "EmbeddingRequest",
}
EMULATED_ENDPOINTS = frozenset(REQUEST_SCHEMAS)

#: A job's status word for each phase of the engine's lifecycle.
STATUS_WORDS: Mapping[Stage, str] = {
    Stage.VALIDATING: "QUEUED",
    Stage.IN_PROGRESS: "RUNNING",
    Stage.FINALIZING: "RUNNING",
    Stage.COMPLETED: "SUCCESS",
    Stage.FAILED: "FAILED",
    Stage.EXPIRED: "TIMEOUT_EXCEEDED",
    Stage.CANCELLING: "CANCELLATION_REQUESTED",
    Stage.CANCELLED: "CANCELLED",
}

#: An HTTP status a request is made to fail with -> the error's (type, code).
_STATUS_ERRORS: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("unauthorized", None),
    403: ("forbidden", None),
    404: ("invalid_request_error", None),
    408: ("timeout", None),
    422: ("invalid_request_error", "3001"),
    429: ("rate_limited", "1300"),
}


# -- the spec -------------------------------------------------------------------------------------


@cache
def spec_document() -> dict[str, Any]:
    """Mistral's component schemas the emulator checks against (``_spec.json``; its source,
    commit and sha256 are in its ``x-source``)."""
    text = files("batchcore_mistral").joinpath("_spec.json").read_text(encoding="utf-8")
    document: dict[str, Any] = orjson.loads(text)
    return document


@cache
def spec_validator() -> SpecValidator:
    """A strict validator of ``_spec.json``: a field the spec does not name is refused, as
    Mistral's API refuses it (``extra_forbidden``)."""
    return SpecValidator(spec_document())


@cache
def body_checker() -> BodyChecker:
    """Checks request bodies against the schema of their endpoint (:data:`REQUEST_SCHEMAS`)."""
    return BodyChecker(spec_validator(), REQUEST_SCHEMAS)


# -- error bodies ---------------------------------------------------------------------------------


def queue_full_body(refusal: QueueRefusal) -> dict[str, Any]:
    """The body of the 429 refusing a job the workspace's limit of pending requests has no
    room for. Mistral documents the limit but not this answer: the words are the emulator's,
    in Mistral's error shape."""
    return error_body(
        f"Too many pending requests in this workspace: {refusal.queued:,} {refusal.measure} "
        f"are pending and this job adds {refusal.amount:,}; the limit is {refusal.limit:,}. "
        "Try again once some batch jobs have finished.",
        "rate_limited",
    )


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """The API's error object: ``{"object": "error", "message", "type", "param", "code"}``."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


_UNEXPECTED = re.compile(r"^Additional properties are not allowed \((.+) (?:was|were) unexpected\)")
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")


def _loc(path: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in path.split(".")] if path else []


def validation_detail(
    problems: Sequence[SpecProblem], *, where: Sequence[str | int] = ("body",), value: Any = None
) -> list[dict[str, Any]]:
    """*problems* as the validation error's ``detail`` list (``{type, loc, msg, input}``, the
    spec's ``ValidationError``), each located under *where* (``["body"]``)."""
    detail: list[dict[str, Any]] = []
    for problem in problems:
        loc = [*where, *_loc(problem.path)]
        unexpected = _UNEXPECTED.match(problem.message)
        required = _REQUIRED.match(problem.message)
        if unexpected:
            for name in re.findall(r"'([^']+)'", unexpected.group(1)):
                detail.append(
                    {
                        "type": "extra_forbidden",
                        "loc": [*loc, name],
                        "msg": "Extra inputs are not permitted",
                        "input": _at(value, [*_loc(problem.path), name]),
                    }
                )
        elif required:
            detail.append(
                {
                    "type": "missing",
                    "loc": [*loc, required.group(1)],
                    "msg": "Field required",
                    "input": _at(value, _loc(problem.path)),
                }
            )
        else:
            detail.append(
                {
                    "type": "value_error",
                    "loc": loc,
                    "msg": problem.message,
                    "input": _at(value, _loc(problem.path)),
                }
            )
    return detail


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        found = (isinstance(value, Mapping) and step in value) or (
            isinstance(value, list) and isinstance(step, int) and step < len(value)
        )
        if not found:
            return None
        value = value[step]
    return value


def validation_body(detail: list[dict[str, Any]]) -> dict[str, Any]:
    """A 422's body: the spec's ``HTTPValidationError`` (``{"detail": [...]}``) within the API's
    error object, as the API sends it (``message`` repeats the detail, ``code`` 3001)."""
    return {
        "object": "error",
        "message": detail,
        "detail": detail,
        "type": "invalid_request_error",
        "param": None,
        "code": "3001",
    }


# -- jobs -----------------------------------------------------------------------------------------


@attrs.define(eq=False)
class EmulatedJob:
    """One batch job and everything needed to replay its life from the clock."""

    id: str
    sequence: int
    endpoint: str
    model: str
    input_files: list[str]
    #: The requests, one JSONL line each (the uploaded file, or the inline requests written out).
    input_path: Path
    metadata: dict[str, str] | None
    timeout_hours: int
    created_at: float
    total: int
    #: Why the job fails as a whole (lines that are not requests): ``FAILED``.
    errors: list[LineError]
    failures: dict[int, FailMarker]
    #: input index -> the 422 ``detail`` of a request whose body the spec refuses.
    invalid: dict[int, list[dict[str, Any]]]
    order: CompletionOrder
    cancel_requested_at: float | None = None
    output_file: str | None = None
    error_file: str | None = None
    finished: bool = False
    #: What the job holds in the workspace's queue until it ends (None: it failed validation).
    enqueued: Enqueued | None = None

    @classmethod
    def create(
        cls,
        *,
        job_id: str,
        sequence: int,
        endpoint: str,
        model: str,
        input_files: list[str],
        input_path: Path,
        metadata: dict[str, str] | None,
        timeout_hours: int,
        scan: InputScan,
        invalid: dict[int, list[dict[str, Any]]],
        created_at: float,
        seed: int,
        enqueued: Enqueued | None = None,
    ) -> EmulatedJob:
        total = scan.total
        failing = set(scan.failures) | set(invalid)
        return cls(
            id=job_id,
            sequence=sequence,
            endpoint=endpoint,
            model=model,
            input_files=input_files,
            input_path=input_path,
            metadata=metadata,
            timeout_hours=timeout_hours,
            created_at=created_at,
            total=total,
            errors=scan.errors,
            failures=scan.failures,
            invalid=invalid,
            order=CompletionOrder(
                total if not scan.errors else 0, seed=f"{seed}:{job_id}", failing=failing
            ),
            enqueued=enqueued,
        )

    def phase(self, now: float, timing: Timing) -> Phase:
        """Where the job stands at *now* (its window is its ``timeout_hours``)."""
        return phase_of(
            now,
            created_at=self.created_at,
            total=self.total if not self.errors else 0,
            timing=attrs.evolve(timing, window=self.timeout_hours * 3600.0),
            invalid=bool(self.errors),
            cancel_requested_at=self.cancel_requested_at,
        )

    def line_id(self, index: int) -> str:
        """The ``id`` of the result line of the request at input index *index*."""
        digest = hashlib.blake2b(f"{self.id}:{index}".encode(), digest_size=16).digest()
        return f"batch-{self.id[:8]}-{index + 1}-{uuid.UUID(bytes=digest, version=4)}"

    def ident(self, index: int) -> str:
        """The 32-hex-digit id of the answer to the request at input index *index*."""
        return hashlib.blake2b(f"{self.id}:{index}:answer".encode(), digest_size=16).hexdigest()


# -- answers in Mistral's shapes ------------------------------------------------------------------

_NO_REASONING = (None, "none")


def mistral_answer(
    endpoint: str, body: Mapping[str, Any], ident: str, created: int
) -> dict[str, Any]:
    """The answer Mistral's endpoint would give *body*, made by the engine's deterministic
    :func:`~batchcore.testing.emulation.answer_body` and reshaped: a chat completion's message
    has ``role``, ``content``, ``tool_calls`` and ``prefix``; a reasoning request
    (``reasoning_effort`` other than ``none``, or ``prompt_mode: "reasoning"``) gets its
    content as chunks, a ``thinking`` chunk and then the ``text``; usage is ``UsageInfo``."""
    if endpoint == EMBEDDINGS:
        return _embeddings(body, ident)
    return _chat(body, ident, created)


def _chat(body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    request = dict(body)
    if request.get("tool_choice") == "any":
        request["tool_choice"] = "required"  # the engine's word for "call a tool"
    if request.get("prompt_mode") == "reasoning" and request.get("reasoning_effort") is None:
        request["reasoning_effort"] = "medium"
    reasoning = request.get("reasoning_effort") not in _NO_REASONING
    answer = answer_body(CHAT_COMPLETIONS, request, ident, created)
    choices = []
    for choice in answer["choices"]:
        message = choice["message"]
        calls = message.get("tool_calls")
        content: Any = message.get("content") or ""
        if reasoning and not calls:
            content = [
                {"type": "thinking", "thinking": [{"type": "text", "text": "Considering it."}]},
                {"type": "text", "text": content},
            ]
        choices.append(
            {
                "index": choice["index"],
                "message": {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [
                        {
                            "id": ident[:9],
                            "type": "function",
                            "function": dict(call["function"]),
                            "index": number,
                        }
                        for number, call in enumerate(calls)
                    ]
                    if calls
                    else None,
                    "prefix": False,
                },
                "finish_reason": choice["finish_reason"],
            }
        )
    usage = answer["usage"]
    return {
        "id": ident,
        "object": "chat.completion",
        "model": body.get("model"),
        "usage": {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
        },
        "created": created,
        "choices": choices,
    }


def _embeddings(body: Mapping[str, Any], ident: str) -> dict[str, Any]:
    request = {"input": body.get("input"), "dimensions": body.get("output_dimension")}
    answer = answer_body(EMBEDDINGS, request, ident, 0)
    tokens = answer["usage"]["prompt_tokens"]
    return {
        "id": ident,
        "object": "list",
        "data": answer["data"],
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
    }


# -- result files ---------------------------------------------------------------------------------


def _failure_line(marker: FailMarker, custom_id: str, line_id: str) -> dict[str, Any]:
    """The error-file line of a request made to fail with ``[emulator-fail:<marker>]``."""
    status = marker.status
    if status is None:
        code = marker.code or "failed"
        return {
            "id": line_id,
            "custom_id": custom_id,
            "response": None,
            "error": {"message": f"Emulated failure: {code}.", "code": code},
        }
    kind, status_code = _STATUS_ERRORS.get(status, ("internal_server_error", None))
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "body": error_body(f"Emulated failure: HTTP {status}.", kind, status_code),
        },
        "error": None,
    }


_OUTPUT, _ERRORS = 0, 1


def write_results(
    job: EmulatedJob,
    phase: Phase,
    *,
    output: IO[bytes],
    errors: IO[bytes],
    scratch: IO[bytes],
    created: int,
) -> None:
    """Write the output and error files of an ended job, in the order its requests finished.
    Requests it never ran (it timed out or was cancelled first) have no line."""
    model = job.model

    def render(index: int, raw: bytes) -> tuple[int, bytes] | None:
        line = orjson.loads(raw)
        custom_id, line_id = line["custom_id"], job.line_id(index)
        marker = job.failures.get(index)
        detail = job.invalid.get(index)
        if marker is not None and marker.drop:
            return None
        if marker is not None:
            record, sink = _failure_line(marker, custom_id, line_id), _ERRORS
        elif detail is not None:
            response = {"status_code": 422, "body": validation_body(detail)}
            record = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
            sink = _ERRORS
        else:
            body = {"model": model, **line["body"]}
            answer = mistral_answer(job.endpoint, body, job.ident(index), created)
            response = {"status_code": 200, "body": answer}
            record = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
            sink = _OUTPUT
        return sink, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    write_finished(job.input_path, job.order, phase.done, render, (output, errors), scratch)


def line_rules(
    endpoint: str, model: str, invalid: dict[int, list[dict[str, Any]]]
) -> Callable[[Mapping[str, Any]], LineError | None]:
    """The rules of one input line of a job: ``{custom_id, body}``, nothing else, the body an
    object. A body its endpoint's schema refuses (the job's model filled in where the line has
    none) is recorded in *invalid* (by input index): that request fails alone, with a 422, as
    the endpoint would answer it; a line naming another model fails alone too."""
    checker = body_checker()
    index = -1

    def check(line: Mapping[str, Any]) -> LineError | None:
        nonlocal index
        index += 1  # called for each line in order, while no line has failed
        unknown = sorted(set(line) - {"custom_id", "body"})
        if unknown:
            return LineError(
                code="invalid_request",
                message=f"Unexpected field {unknown[0]!r} in a batch request.",
                param=unknown[0],
            )
        body = line.get("body")
        if not isinstance(body, dict):
            return LineError(
                code="invalid_request", message="'body' must be a JSON object.", param="body"
            )
        named = body.get("model")
        if named is not None and named != model:
            invalid[index] = [
                {
                    "type": "value_error",
                    "loc": ["body", "model"],
                    "msg": f"The batch job runs model {model!r}, not {named!r}.",
                    "input": named,
                }
            ]
            return None
        full = {"model": model, **body}
        problems = checker.problems(endpoint, full, limit=5)
        if problems:
            invalid[index] = validation_detail(problems, value=full)
        return None

    return check
