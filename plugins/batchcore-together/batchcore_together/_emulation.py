"""What the Together emulator does its own way, on top of batchcore's emulation engine.

The engine (:mod:`batchcore.testing.emulation`) keeps time, files, input scans, completion
order and canned answers. Here is Together's part, with no HTTP (the server is in
:mod:`batchcore_together.testing`): the schemas it checks against (``_spec.json``), the rules
of an input line, a batch's record, the batch job object, Together-shaped answers and the
output and error file lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from batchcore.plugin import CHAT_COMPLETIONS
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
from batchcore_together._models import MAX_LINE_BYTES, UNAVAILABLE_MODELS

__all__ = [
    "STATUS_WORDS",
    "EmulatedBatch",
    "body_checker",
    "describe",
    "enqueued_of",
    "iso",
    "job_object",
    "line_checker",
    "queue_full_message",
    "spec_document",
    "spec_validator",
    "together_answer",
    "validation_error",
    "write_results",
]

#: The engine's stages in Together's words: Together shows no finalizing or cancelling stage.
STATUS_WORDS: Mapping[Stage, str] = {
    Stage.VALIDATING: "VALIDATING",
    Stage.IN_PROGRESS: "IN_PROGRESS",
    Stage.FINALIZING: "IN_PROGRESS",
    Stage.CANCELLING: "IN_PROGRESS",
    Stage.COMPLETED: "COMPLETED",
    Stage.FAILED: "FAILED",
    Stage.EXPIRED: "EXPIRED",
    Stage.CANCELLED: "CANCELLED",
}

#: An HTTP status a request is made to fail with (``[emulator-fail:429]``) -> the error code
#: its error-file line carries.
_STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "model_not_found",
    408: "timeout",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


# -- the schemas ----------------------------------------------------------------------------------


@cache
def spec_document() -> dict[str, Any]:
    """The Together schemas the emulator checks against (``_spec.json``; where each comes from
    is in its ``x-sources``)."""
    text = files("batchcore_together").joinpath("_spec.json").read_text(encoding="utf-8")
    document: dict[str, Any] = orjson.loads(text)
    return document


@cache
def spec_validator() -> SpecValidator:
    """A strict validator of ``_spec.json``: a field a schema does not name is refused."""
    return SpecValidator(spec_document())


@cache
def body_checker() -> BodyChecker:
    """Checks request bodies against Together's chat completions request schema."""
    return BodyChecker(spec_validator(), {CHAT_COMPLETIONS: "ChatCompletionRequest"})


def _spelled(path: str) -> str:
    """``messages.0.content`` as ``messages[0].content``."""
    spelled = ""
    for part in path.split(".") if path else ():
        spelled += f"[{part}]" if part.isdigit() else (f".{part}" if spelled else part)
    return spelled


def describe(problem: SpecProblem, prefix: str = "") -> str:
    """A schema problem as an error message naming where it is."""
    where = _spelled(problem.path)
    where = f"{prefix}.{where}" if prefix and where else (prefix or where or "body")
    return f"{where}: {problem.message}"


# -- input lines ----------------------------------------------------------------------------------


def line_checker() -> Callable[[Mapping[str, Any]], LineError | None]:
    """The rules of one input line of a chat batch: ``custom_id`` (at most 64 characters) and a
    ``body`` Together's chat completions schema accepts, nothing else (the ``method`` field is
    for audio batches only)."""
    validator = spec_validator()
    checker = body_checker()

    def check(line: Mapping[str, Any]) -> LineError | None:
        problems = validator.problems("BatchInputLine", line, limit=1)
        if problems:
            return LineError(
                code="invalid_request",
                message=describe(problems[0]),
                param=_spelled(problems[0].path) or None,
            )
        if "method" in line:
            return LineError(
                code="invalid_request",
                message="'method' is for audio batches; chat lines take custom_id and body",
                param="method",
            )
        problems = checker.problems(CHAT_COMPLETIONS, line["body"], limit=1)
        if problems:
            return LineError(
                code="invalid_request",
                message=describe(problems[0], "body"),
                param=_spelled(f"body.{problems[0].path}".rstrip(".")),
            )
        return None

    return check


# -- batches --------------------------------------------------------------------------------------


def iso(moment: float) -> str:
    """A unix time as Together writes it: ISO-8601 in UTC, ``Z``-suffixed."""
    return datetime.fromtimestamp(int(moment), tz=timezone.utc).isoformat().replace("+00:00", "Z")


@attrs.define(eq=False)
class EmulatedBatch:
    """One batch job and everything needed to replay its life from the clock."""

    id: str
    sequence: int
    user_id: str
    input_file_id: str
    input_path: Path
    file_size: int
    endpoint: str
    model: str | None
    created_at: float
    total: int
    #: Why the batch fails at validation (a malformed line, a model Together does not batch),
    #: or None.
    error: str | None
    failures: dict[int, FailMarker]
    order: CompletionOrder
    cancel_requested_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    finished: bool = False
    #: What the batch holds in its model's queue until it ends (None: it failed validation).
    enqueued: Enqueued | None = None

    @classmethod
    def create(
        cls,
        *,
        batch_id: str,
        sequence: int,
        user_id: str,
        input_file_id: str,
        input_path: Path,
        endpoint: str,
        scan: InputScan,
        created_at: float,
        seed: int,
        refusal: QueueRefusal | None = None,
    ) -> EmulatedBatch:
        """A new batch; *refusal* says the model's queue had no room for it (it then fails
        validation, as a batch Together will not run does)."""
        error = validation_error(scan)
        if error is None and refusal is not None:
            error = queue_full_message(refusal)
        total = scan.total if error is None else 0
        return cls(
            id=batch_id,
            sequence=sequence,
            user_id=user_id,
            input_file_id=input_file_id,
            input_path=input_path,
            file_size=input_path.stat().st_size,
            endpoint=endpoint,
            model=scan.model,
            created_at=created_at,
            total=total,
            error=error,
            failures=scan.failures,
            order=CompletionOrder(total, seed=f"{seed}:{batch_id}", failing=scan.failures),
            enqueued=None if error is not None else enqueued_of(scan),
        )

    def phase(self, now: float, timing: Timing) -> Phase:
        return phase_of(
            now,
            created_at=self.created_at,
            total=self.total,
            timing=timing,
            invalid=self.error is not None,
            cancel_requested_at=self.cancel_requested_at,
        )

    def ident(self, index: int) -> str:
        """The id suffix of the answer to the request at input index *index*."""
        return f"{self.sequence:06x}{index:018x}"


def enqueued_of(scan: InputScan) -> Enqueued:
    """What a batch of the scanned input holds in its model's queue."""
    return Enqueued(model=scan.model, tokens=scan.tokens, requests=scan.total)


def queue_full_message(refusal: QueueRefusal) -> str:
    """The ``error`` of a batch its model's queue had no room for. Together documents the
    limit ("up to 30B tokens enqueued per model"), not this error: the words are the
    emulator's."""
    unit, model = refusal.measure, refusal.model or "this model"
    return (
        f"Enqueued {unit.rstrip('s')} limit reached for model {model}: {refusal.queued:,} "
        f"{unit} are enqueued and this batch needs {refusal.amount:,}; the limit is "
        f"{refusal.limit:,}. Try again once some batches have completed."
    )


def validation_error(scan: InputScan) -> str | None:
    """The ``error`` of a batch that fails validation: Together fails the whole batch for one
    malformed line, and for a model it does not batch."""
    if scan.errors:
        first = scan.errors[0]
        where = f"line {first.line}: " if first.line is not None else ""
        more = f" (and {len(scan.errors) - 1} more)" if len(scan.errors) > 1 else ""
        return f"{where}{first.message}{more}"
    if scan.model_clash is not None:
        line, other = scan.model_clash
        return f"line {line}: model {other!r} differs from the batch's model {scan.model!r}"
    if scan.model in UNAVAILABLE_MODELS:
        return f"model {scan.model!r} is not available for batch inference"
    return None


def job_object(batch: EmulatedBatch, phase: Phase, timing: Timing) -> dict[str, Any]:
    """The batch job as Together shows it at *phase* (fields it has no value for are left
    out, as optional fields are)."""
    stage = phase.stage
    if stage is Stage.VALIDATING or batch.total == 0:
        progress = 100.0 if stage.terminal and stage is not Stage.FAILED else 0.0
    else:
        progress = round(100.0 * phase.done / batch.total, 2)
    job: dict[str, Any] = {
        "id": batch.id,
        "user_id": batch.user_id,
        "input_file_id": batch.input_file_id,
        "file_size_bytes": batch.file_size,
        "status": STATUS_WORDS[stage],
        "job_deadline": iso(batch.created_at + timing.window),
        "created_at": iso(batch.created_at),
        "endpoint": batch.endpoint,
        "progress": progress,
    }
    if batch.model is not None:
        job["model_id"] = batch.model
    if batch.output_file_id is not None:
        job["output_file_id"] = batch.output_file_id
    if batch.error_file_id is not None:
        job["error_file_id"] = batch.error_file_id
    if stage is Stage.FAILED and batch.error is not None:
        job["error"] = batch.error
    ended = next(
        (
            phase.timestamps[name]
            for name in ("completed_at", "failed_at", "expired_at", "cancelled_at")
            if name in phase.timestamps
        ),
        None,
    )
    if stage.terminal and ended is not None:
        job["completed_at"] = iso(ended)
    return job


# -- answers and result lines ---------------------------------------------------------------------


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(
                part["text"]
                for part in content or ()
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return ""


def together_answer(body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    """The chat completion Together would give *body*: the engine's deterministic answer
    ("Echo: ...", structured output valid against the requested schema, forced tool calls),
    in Together's shape (tool calls carry an ``index``, usage has ``cached_tokens`` at its top,
    a reasoning request gets a separate ``reasoning`` text)."""
    answer = answer_body(CHAT_COMPLETIONS, body, ident, created)
    choices = []
    for choice in answer["choices"]:
        source = choice["message"]
        message: dict[str, Any] = {"role": "assistant", "content": source.get("content")}
        if source.get("tool_calls"):
            message["tool_calls"] = [
                {"index": index, **call} for index, call in enumerate(source["tool_calls"])
            ]
        if body.get("reasoning_effort") is not None:
            message["reasoning"] = f"Thinking about: {_last_user_text(body)}"
        choices.append(
            {
                "index": choice["index"],
                "finish_reason": choice["finish_reason"],
                "message": message,
                "logprobs": None,
            }
        )
    usage = answer["usage"]
    return {
        "id": f"{ident}-together",
        "object": "chat.completion",
        "created": answer["created"],
        "model": answer["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
        },
    }


def _error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "error": {"message": message, "code": code}}


def _failure(marker: FailMarker, custom_id: str) -> dict[str, Any]:
    status = marker.status
    if status is not None:
        code = _STATUS_CODES.get(status, "server_error")
        return _error_line(custom_id, code, f"Emulated failure: HTTP {status}.")
    code = marker.code or "failed"
    return _error_line(custom_id, code, f"Emulated failure: {code}.")


_OUTPUT, _ERRORS = 0, 1


def write_results(
    batch: EmulatedBatch,
    phase: Phase,
    *,
    output: IO[bytes],
    errors: IO[bytes],
    scratch: IO[bytes],
    created: int,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> None:
    """Write the output and error files of an ended batch, in the order its requests finished.

    A request marked ``[emulator-fail:...]`` gets an error line (``drop``: no line at all); a
    line of ``max_line_bytes`` or more fails as Together's do ("error reading input file").
    Requests an expired or cancelled batch never ran get no line: the client learns of them
    from the input file.
    """

    def render(index: int, line: bytes) -> tuple[int, bytes] | None:
        request = orjson.loads(line)
        custom_id = request["custom_id"]
        marker = batch.failures.get(index)
        if marker is not None and marker.drop:
            return None
        if len(line) + 1 >= max_line_bytes:
            record, sink = (
                _error_line(custom_id, "invalid_request", "error reading input file"),
                _ERRORS,
            )
        elif marker is not None:
            record, sink = _failure(marker, custom_id), _ERRORS
        else:
            answer = together_answer(request["body"], batch.ident(index), created)
            record = {"custom_id": custom_id, "response": {"status_code": 200, "body": answer}}
            sink = _OUTPUT
        return sink, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    write_finished(batch.input_path, batch.order, phase.done, render, (output, errors), scratch)
