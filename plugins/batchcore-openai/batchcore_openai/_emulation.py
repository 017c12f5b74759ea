"""What the OpenAI emulator does its own way, on top of batchcore's emulation engine.

The engine (:mod:`batchcore.testing.emulation`) keeps time, files, input scans and canned
answers. Here is OpenAI's part, with no HTTP (see :mod:`batchcore_openai.testing`): the input
line rules (``custom_id, method, url, body``, the body checked against OpenAI's spec, shipped
as ``_spec.json``), a batch's record, the output and error file lines, and OpenAI's wording of
what a spec check found.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from batchcore.plugin import CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, MODERATIONS, RESPONSES
from batchcore.testing.emulation import (
    BodyChecker,
    CompletionOrder,
    Enqueued,
    FailMarker,
    InputScan,
    LineError,
    Phase,
    QueueRefusal,
    Timing,
    UsageTotals,
    answer_body,
    iter_file_lines,
    phase_of,
    request_id,
    unfinished,
    write_finished,
)
from batchcore.testing.openapi import SpecProblem, SpecValidator

__all__ = [
    "EMULATED_ENDPOINTS",
    "EXPIRED_MESSAGE",
    "QUEUE_FULL_CODE",
    "REASONING_MODELS",
    "REQUEST_SCHEMAS",
    "EmulatedBatch",
    "Refusal",
    "RequestRules",
    "SpecError",
    "body_checker",
    "describe_problem",
    "find_refusals",
    "line_checker",
    "normalise_url",
    "openai_request_rules",
    "queue_full_error",
    "spec_validator",
    "write_results",
]

#: The request schema of each endpoint the emulator answers (the batch endpoint enum also
#: lists images and videos, which it does not).
REQUEST_SCHEMAS: Mapping[str, str] = {
    CHAT_COMPLETIONS: "CreateChatCompletionRequest",
    EMBEDDINGS: "CreateEmbeddingRequest",
    RESPONSES: "CreateResponse",
    COMPLETIONS: "CreateCompletionRequest",
    MODERATIONS: "CreateModerationRequest",
}
EMULATED_ENDPOINTS = frozenset(REQUEST_SCHEMAS)
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
#: The batch error code of a batch refused because the model's queue of enqueued tokens was
#: full (OpenAI's and Azure's spelling).
QUEUE_FULL_CODE = "token_limit_exceeded"

#: An HTTP status a request is made to fail with -> the error's (type, code).
_STATUS_ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("server_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    429: ("requests", "rate_limit_exceeded"),
}


# -- the spec -------------------------------------------------------------------------------------


@cache
def spec_document() -> dict[str, Any]:
    """OpenAI's component schemas the emulator checks against (``_spec.json``; its source,
    commit and sha256 are in its ``x-source``)."""
    text = files("batchcore_openai").joinpath("_spec.json").read_text(encoding="utf-8")
    document: dict[str, Any] = orjson.loads(text)
    return document


@cache
def spec_validator() -> SpecValidator:
    """A strict validator of ``_spec.json``: unknown fields are refused, as the API does."""
    return SpecValidator(spec_document())


@cache
def body_checker() -> BodyChecker:
    """Checks request bodies against the schema of their endpoint (:data:`REQUEST_SCHEMAS`)."""
    return BodyChecker(spec_validator(), REQUEST_SCHEMAS)


@attrs.frozen(kw_only=True)
class SpecError:
    """A spec check's finding as the API words it."""

    message: str
    code: str
    param: str | None


_UNEXPECTED = re.compile(r"^Additional properties are not allowed \('([^']+)'")
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")
_TYPE = re.compile(r"^(.*) is not of type (.*)$", re.DOTALL)
_ENUM = re.compile(r"^(.*) is not one of \[(.*)\]$", re.DOTALL)
_BOUND = re.compile(r"^(.*) is (greater|less) than (?:or equal to )?the (maximum|minimum) of (.*)$")


def _param(path: str, prefix: str = "") -> str:
    """``messages.0.content`` as the API spells it: ``messages[0].content``."""
    spelled = ""
    for part in path.split(".") if path else ():
        spelled += f"[{part}]" if part.isdigit() else (f".{part}" if spelled else part)
    return f"{prefix}.{spelled}" if prefix and spelled else (prefix or spelled)


def describe_problem(problem: SpecProblem, *, prefix: str = "") -> SpecError:
    """*problem* worded as OpenAI's 400s word it (``Unrecognized request argument supplied``,
    ``Missing required parameter``, ``Invalid type for``, ...); *prefix* goes before the
    parameter's path (``body`` for a batch input line)."""
    text = problem.message
    if found := _UNEXPECTED.match(text):
        name = _param(f"{problem.path}.{found[1]}" if problem.path else found[1], prefix)
        return SpecError(
            message=f"Unrecognized request argument supplied: {name}",
            code="unknown_parameter",
            param=name,
        )
    if found := _REQUIRED.match(text):
        name = _param(f"{problem.path}.{found[1]}" if problem.path else found[1], prefix)
        return SpecError(
            message=f"Missing required parameter: '{name}'.",
            code="missing_required_parameter",
            param=name,
        )
    param = _param(problem.path, prefix)
    if (found := _TYPE.match(text)) and found[2] == "'null'":
        # A nullable field whose value fits neither branch: the validator names the null one.
        return SpecError(
            message=f"Invalid value for '{param}': {found[1]}.", code="invalid_value", param=param
        )
    if found:
        return SpecError(
            message=f"Invalid type for '{param}': expected {found[2]}, but got {found[1]} instead.",
            code="invalid_type",
            param=param,
        )
    if found := _ENUM.match(text):
        return SpecError(
            message=f"Invalid value for '{param}': {found[1]}. Supported values are: {found[2]}.",
            code="invalid_value",
            param=param,
        )
    if found := _BOUND.match(text):
        above = found[2] == "greater"
        return SpecError(
            message=f"Invalid '{param}': {'above maximum' if above else 'below minimum'} "
            f"value. Expected a value {'<=' if above else '>='} {found[4]}, but got "
            f"{found[1]} instead.",
            code="number_above_max_value" if above else "number_below_min_value",
            param=param,
        )
    return SpecError(
        message=f"Invalid '{param or 'body'}': {text}", code="invalid_value", param=param
    )


# -- input lines ----------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """An endpoint with the ``/v1`` prefix (Azure's older samples leave it out)."""
    return url if url.startswith("/v1/") else "/v1/" + url.lstrip("/")


def line_checker(endpoint: str) -> Callable[[Mapping[str, Any]], LineError | None]:
    """The rules of one input line of a batch for *endpoint*: ``method`` POST, the batch's
    ``url``, and a ``body`` that OpenAI's request schema for it accepts."""
    checker = body_checker()

    def check(line: Mapping[str, Any]) -> LineError | None:
        url, body = line.get("url"), line.get("body")
        unknown = sorted(set(line) - {"custom_id", "method", "url", "body"})
        if unknown:
            return LineError(
                code="invalid_request",
                message=f"Unrecognized field in the input line: {unknown[0]}.",
                param=unknown[0],
            )
        if line.get("method") != "POST":
            return LineError(
                code="invalid_request", message="'method' must be 'POST'.", param="method"
            )
        if not isinstance(url, str) or normalise_url(url) != endpoint:
            return LineError(
                code="url_mismatch",
                message=f"The line's url {url!r} does not match the batch endpoint {endpoint!r}.",
                param="url",
            )
        if not isinstance(body, dict):
            return LineError(
                code="invalid_request", message="'body' must be a JSON object.", param="body"
            )
        problems = checker.problems(endpoint, body, limit=1)
        if not problems:
            return None
        error = describe_problem(problems[0], prefix="body")
        return LineError(code="invalid_request", message=error.message, param=error.param)

    return check


# -- what a model refuses when a request runs ----------------------------------------------------


@attrs.frozen(kw_only=True)
class Refusal:
    """The API's answer to a request it refuses when the request runs: an error-file line with
    ``response.status_code`` 400 and OpenAI's error body (*message*, *kind* as its ``type``,
    *param*, *code*)."""

    message: str
    param: str | None
    code: str | None
    kind: str = "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


#: What a vendor refuses in one request body when it runs: ``(endpoint, body) -> Refusal`` or
#: None. An emulator option, so each OpenAI-compatible vendor brings its own.
RequestRules = Callable[[str, Mapping[str, Any]], Refusal | None]


@attrs.frozen(kw_only=True)
class ReasoningModels:
    """Reasoning models that refuse parameters other models take: their names (glob patterns,
    dated snapshots included), the parameters refused whatever their value, and those taken
    only at their default value."""

    patterns: tuple[str, ...]
    refused: tuple[str, ...]
    defaults_only: Mapping[str, float]


_DEFAULTS = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}

#: OpenAI's reasoning models as the API answers chat completions for them: the emulator's own
#: table, written from OpenAI's documentation (not read from the provider, whose offline check
#: it exists to test). Sources: OpenAI's OpenAPI spec (``max_tokens`` "is not compatible with
#: o-series models"); the API's answers as reported against the official SDKs
#: (openai-python #2072: "Unsupported parameter: 'max_tokens' is not supported with this model.
#: Use 'max_completion_tokens' instead."; "Unsupported value: 'temperature' does not support
#: 0.2 with this model. Only the default (1) value is supported."); the GPT-5 guide (GPT-5.1
#: and later take sampling parameters at reasoning effort ``none``, so for them only
#: ``max_tokens`` is refused).
REASONING_MODELS: tuple[ReasoningModels, ...] = (
    ReasoningModels(
        patterns=(
            "o1",
            "o1-*",
            "o3",
            "o3-*",
            "o4-mini",
            "o4-mini-*",
            "gpt-5",
            "gpt-5-2*",
            "gpt-5-mini*",
            "gpt-5-nano*",
            "gpt-5-pro*",
            "gpt-5-codex*",
        ),
        refused=("max_tokens",),
        defaults_only=_DEFAULTS,
    ),
    ReasoningModels(patterns=("gpt-5.*",), refused=("max_tokens",), defaults_only={}),
)


def openai_request_rules(endpoint: str, body: Mapping[str, Any]) -> Refusal | None:
    """What OpenAI refuses in a chat completions *body* for its model (:data:`REASONING_MODELS`),
    worded as the API words it; None for anything else."""
    model = body.get("model")
    if endpoint != CHAT_COMPLETIONS or not isinstance(model, str):
        return None
    for family in _reasoning_families(model):
        for param in family.refused:
            if body.get(param) is not None:
                hint = " Use 'max_completion_tokens' instead." if param == "max_tokens" else ""
                return Refusal(
                    message=f"Unsupported parameter: '{param}' is not supported with this "
                    f"model.{hint}",
                    param=param,
                    code="unsupported_parameter",
                )
        for param, default in family.defaults_only.items():
            value = body.get(param)
            if value is not None and value != default:
                return Refusal(
                    message=f"Unsupported value: '{param}' does not support {value!r} with this "
                    f"model. Only the default ({default:g}) value is supported.",
                    param=param,
                    code="unsupported_value",
                )
    return None


@lru_cache(maxsize=256)
def _reasoning_families(model: str) -> tuple[ReasoningModels, ...]:
    # Once per model name: a batch has one model and many requests.
    return tuple(
        family
        for family in REASONING_MODELS
        if any(fnmatch.fnmatchcase(model, pattern) for pattern in family.patterns)
    )


def find_refusals(path: Path, endpoint: str, rules: RequestRules) -> dict[int, Refusal]:
    """Input index -> what *rules* refuse, for the lines of a valid input file."""
    found: dict[int, Refusal] = {}
    for index, line in enumerate(iter_file_lines(path)):
        body = orjson.loads(line).get("body")
        if isinstance(body, dict):
            refusal = rules(endpoint, body)
            if refusal is not None:
                found[index] = refusal
    return found


# -- the queue ----------------------------------------------------------------------------------


def queue_full_error(refusal: QueueRefusal, *, azure: bool) -> LineError:
    """The batch error of a batch refused for the queue, as each vendor words it: OpenAI's
    "Enqueued token limit reached for gpt-4o-mini in organization org-... Limit: 2,000,000
    enqueued tokens. ...", Azure's "The number of enqueued tokens has surpassed the configured
    limit of 30K for the deployment '...'. ..." (the wording of real failed batches)."""
    unit, model = refusal.measure, refusal.model or "this model"
    if azure:
        message = (
            f"The number of enqueued {unit} has surpassed the configured limit of "
            f"{refusal.limit:,} for the deployment '{model}'. Please either increase the limit "
            "or try again once the current jobs have finished."
        )
    else:
        message = (
            f"Enqueued {unit.rstrip('s')} limit reached for {model} in organization "
            f"org-emulator. Limit: {refusal.limit:,} enqueued {unit}. Please try again once "
            "some in_progress batches have been completed."
        )
    return LineError(code=QUEUE_FULL_CODE, message=message)


# -- batches --------------------------------------------------------------------------------------


@attrs.define(eq=False)
class EmulatedBatch:
    """One batch and everything needed to replay its life from the clock."""

    id: str
    sequence: int
    endpoint: str
    input_file_id: str
    input_path: Path
    completion_window: str
    #: The length of the batch's completion window: it expires that long after its creation.
    window_seconds: float
    metadata: dict[str, str] | None
    model: str | None
    created_at: float
    total: int
    errors: list[LineError]
    failures: dict[int, FailMarker]
    order: CompletionOrder
    cancel_requested_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    finished: bool = False
    usage: UsageTotals = attrs.field(factory=UsageTotals)
    #: What the batch holds in the model's queue until it ends (None: refused or invalid).
    enqueued: Enqueued | None = None
    #: Input index -> the API's refusal of that request when it runs.
    refusals: dict[int, Refusal] = attrs.field(factory=dict)

    @classmethod
    def create(
        cls,
        *,
        batch_id: str,
        sequence: int,
        endpoint: str,
        input_file_id: str,
        input_path: Path,
        completion_window: str,
        window_seconds: float,
        metadata: dict[str, str] | None,
        scan: InputScan,
        created_at: float,
        seed: int,
        enqueued: Enqueued | None = None,
        refusals: dict[int, Refusal] | None = None,
    ) -> EmulatedBatch:
        total = scan.total if not scan.errors else 0
        refused = refusals or {}
        return cls(
            id=batch_id,
            sequence=sequence,
            endpoint=endpoint,
            input_file_id=input_file_id,
            input_path=input_path,
            completion_window=completion_window,
            window_seconds=window_seconds,
            metadata=metadata,
            model=scan.model,
            created_at=created_at,
            total=total,
            errors=scan.errors,
            failures=scan.failures,
            order=CompletionOrder(
                total, seed=f"{seed}:{batch_id}", failing=scan.failures.keys() | refused.keys()
            ),
            enqueued=enqueued,
            refusals=refused,
        )

    def phase(self, now: float, timing: Timing, *, expires: bool) -> Phase:
        """Where the batch stands at *now* (its own window instead of *timing*'s)."""
        return phase_of(
            now,
            created_at=self.created_at,
            total=self.total,
            timing=attrs.evolve(timing, window=self.window_seconds),
            invalid=bool(self.errors),
            cancel_requested_at=self.cancel_requested_at,
            expires=expires,
        )

    def ident(self, index: int) -> str:
        """The id suffix of the request at input index *index*."""
        return f"{self.sequence:06x}{index:018x}"


def _failure_line(marker: FailMarker, custom_id: str, ident: str) -> dict[str, Any]:
    """The error-file line of a request made to fail with ``[emulator-fail:<marker>]``."""
    status = marker.status
    if status is None:
        code = marker.code or "failed"
        return _error_line(code, f"Emulated failure: {code}.", custom_id, ident)
    kind, code = _STATUS_ERRORS.get(status, ("server_error", "server_error"))
    return {
        "id": f"batch_req_{ident}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": request_id(ident),
            "body": {
                "error": {
                    "message": f"Emulated failure: HTTP {status}.",
                    "type": kind,
                    "param": None,
                    "code": code,
                }
            },
        },
        "error": None,
    }


def _refusal_line(refusal: Refusal, custom_id: str, ident: str) -> dict[str, Any]:
    """The error-file line of a request the API refused when it ran (HTTP 400)."""
    return {
        "id": f"batch_req_{ident}",
        "custom_id": custom_id,
        "response": {"status_code": 400, "request_id": request_id(ident), "body": refusal.body()},
        "error": None,
    }


def _error_line(code: str, message: str, custom_id: str, ident: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{ident}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


_OUTPUT, _ERRORS = 0, 1


def write_results(
    batch: EmulatedBatch,
    phase: Phase,
    *,
    output: IO[bytes],
    errors: IO[bytes],
    scratch: IO[bytes],
    created: int,
) -> UsageTotals:
    """Write the output and error files of an ended batch; returns its token usage.

    Finished requests are written in the order they finished (not the input order);
    unfinished ones of an expired batch become ``batch_expired`` error lines.
    """
    usage = UsageTotals()

    def render(index: int, line: bytes) -> tuple[int, bytes] | None:
        request = orjson.loads(line)
        custom_id, ident = request["custom_id"], batch.ident(index)
        marker = batch.failures.get(index)
        if marker is not None and marker.drop:
            return None
        refusal = batch.refusals.get(index)
        if marker is not None:
            record, sink = _failure_line(marker, custom_id, ident), _ERRORS
        elif refusal is not None:
            record, sink = _refusal_line(refusal, custom_id, ident), _ERRORS
        else:
            body = answer_body(batch.endpoint, request["body"], ident, created)
            usage.add(body)
            response = {"status_code": 200, "request_id": request_id(ident), "body": body}
            record = {
                "id": f"batch_req_{ident}",
                "custom_id": custom_id,
                "response": response,
                "error": None,
            }
            sink = _OUTPUT
        return sink, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    write_finished(batch.input_path, batch.order, phase.done, render, (output, errors), scratch)
    if phase.expired:
        for index, line in unfinished(batch.input_path, batch.order, phase.done):
            custom_id = orjson.loads(line)["custom_id"]
            record = _error_line("batch_expired", EXPIRED_MESSAGE, custom_id, batch.ident(index))
            errors.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    return usage
