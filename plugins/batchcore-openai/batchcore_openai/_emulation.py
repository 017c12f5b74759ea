"""The engine of the OpenAI emulator: stored files, batch lifecycles and deterministic answers.

No HTTP here (see :mod:`batchcore_openai.testing`). A batch's state is a pure function of the
clock: it is computed on every look, so advancing a manual clock moves every batch at once.
Files live on disk and are read and written line by line, so a 50,000-request batch with a
100 MB output costs little memory.
"""

from __future__ import annotations

import hashlib
import random
import re
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from batchcore.plugin import CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, MODERATIONS, RESPONSES

__all__ = [
    "EMULATED_ENDPOINTS",
    "FAIL_MARKER",
    "EmulatedBatch",
    "StoredFile",
    "Timing",
    "answer_body",
    "iter_file_lines",
    "scan_input",
]

#: Endpoints the emulator can answer (the batch endpoint enum also lists images and videos).
EMULATED_ENDPOINTS = frozenset({CHAT_COMPLETIONS, EMBEDDINGS, RESPONSES, COMPLETIONS, MODERATIONS})

#: Put ``[emulator-fail:429]`` (any HTTP status) in a request's text to make that request fail
#: inside the batch with that status (an error-file line with a non-2xx ``response``);
#: ``[emulator-fail:some_code]`` gives an error-file line with ``error.code`` = ``some_code``;
#: ``[emulator-fail:drop]`` loses the request (no line in either file).
FAIL_MARKER = "[emulator-fail:{}]"
_MARKER = re.compile(rb"\[emulator-fail:([0-9]{3}|[a-z_]+)\]")
DROP = "drop"

_STATUS_ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("server_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    429: ("requests", "rate_limit_exceeded"),
}


@attrs.frozen(kw_only=True)
class Timing:
    """How long each phase of a batch lasts, in seconds of the emulator's clock."""

    validating: float = 60.0
    #: From ``in_progress`` until every request is done; requests finish evenly over it.
    processing: float = 600.0
    finalizing: float = 60.0
    cancelling: float = 60.0
    #: ``completion_window`` (24h); a batch not finalizing by then expires.
    window: float = 86_400.0


@attrs.define(eq=False)
class StoredFile:
    id: str
    filename: str
    purpose: str
    size: int
    created_at: int
    path: Path
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        return data


def iter_file_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a file, without line endings."""
    with open(path, "rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                yield stripped


@attrs.define(eq=False)
class InputScan:
    """What validating an input file found."""

    total: int = 0
    model: str | None = None
    #: (line, other model) of the first line whose model differs from the first line's.
    model_clash: tuple[int, str] | None = None
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    #: input index -> marker value, for the requests that must not succeed.
    failures: dict[int, str] = attrs.field(factory=dict)


def _line_error(
    code: str, message: str, line: int | None, param: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def scan_input(path: Path, endpoint: str, *, max_requests: int, max_errors: int = 100) -> InputScan:
    """Validate a batch input file the way the Batch API does, line by line."""
    scan = InputScan()
    seen: set[str] = set()
    normalised_endpoint = _normalise_url(endpoint)
    for number, line in enumerate(iter_file_lines(path), start=1):
        index = scan.total
        scan.total += 1
        if len(scan.errors) >= max_errors:
            continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            scan.errors.append(_line_error("invalid_json_line", "The file starts with a BOM.", 1))
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            scan.errors.append(
                _line_error("invalid_json_line", "This line is not valid JSON.", number)
            )
            continue
        if not isinstance(obj, dict):
            scan.errors.append(
                _line_error("invalid_request", "A line must be a JSON object.", number)
            )
            continue
        custom_id = obj.get("custom_id")
        body = obj.get("body")
        url = obj.get("url")
        if not isinstance(custom_id, str) or not custom_id:
            scan.errors.append(
                _line_error("invalid_request", "Missing 'custom_id'.", number, "custom_id")
            )
        elif custom_id in seen:
            scan.errors.append(
                _line_error(
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} appears more than once; custom_ids must be "
                    "unique.",
                    number,
                    "custom_id",
                )
            )
        elif obj.get("method") != "POST":
            scan.errors.append(
                _line_error("invalid_request", "'method' must be 'POST'.", number, "method")
            )
        elif not isinstance(url, str) or _normalise_url(url) != normalised_endpoint:
            scan.errors.append(
                _line_error(
                    "url_mismatch",
                    f"The line's url {url!r} does not match the batch endpoint {endpoint!r}.",
                    number,
                    "url",
                )
            )
        elif not isinstance(body, dict) or not isinstance(body.get("model"), str):
            scan.errors.append(
                _line_error(
                    "invalid_request", "'body' must be an object with a 'model'.", number, "body"
                )
            )
        else:
            model = body["model"]
            if scan.model is None:
                scan.model = model
            elif model != scan.model and scan.model_clash is None:
                scan.model_clash = (number, model)
            marker = _MARKER.search(line)
            if marker is not None:
                scan.failures[index] = marker.group(1).decode()
        if isinstance(custom_id, str):
            seen.add(custom_id)
    if scan.total == 0:
        scan.errors.append(_line_error("empty_file", "The input file contains no requests.", None))
    elif scan.total > max_requests:
        scan.errors.append(
            _line_error(
                "too_many_tasks",
                f"The batch has {scan.total} requests; the limit is {max_requests}.",
                None,
            )
        )
    return scan


def _normalise_url(url: str) -> str:
    # Azure's older samples spell endpoints without the /v1 prefix.
    return url if url.startswith("/v1/") else "/v1/" + url.lstrip("/")


@attrs.define(eq=False)
class EmulatedBatch:
    """One batch and everything needed to replay its life from the clock."""

    id: str
    sequence: int
    endpoint: str
    input_file_id: str
    input_path: Path
    completion_window: str
    metadata: dict[str, str] | None
    model: str | None
    created_at: float
    total: int
    errors: list[dict[str, Any]]
    failures: dict[int, str]
    #: input index -> position in completion order (requests finish in a shuffled order).
    rank: array[int]
    #: failed_before[k] = requests among the first k finished that do not succeed.
    failed_before: array[int]
    cancel_requested_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    finished: bool = False
    usage: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    def create(
        cls,
        *,
        batch_id: str,
        sequence: int,
        endpoint: str,
        input_file: StoredFile,
        completion_window: str,
        metadata: dict[str, str] | None,
        scan: InputScan,
        created_at: float,
        seed: int,
    ) -> EmulatedBatch:
        total = scan.total if not scan.errors else 0
        order = list(range(total))
        random.Random(f"{seed}:{batch_id}").shuffle(order)
        rank = array("l", bytes(array("l").itemsize * total))
        failed_before = array("l", bytes(array("l").itemsize * (total + 1)))
        running = 0
        for position, index in enumerate(order):
            rank[index] = position
            if index in scan.failures:
                running += 1
            failed_before[position + 1] = running
        return cls(
            id=batch_id,
            sequence=sequence,
            endpoint=endpoint,
            input_file_id=input_file.id,
            input_path=input_file.path,
            completion_window=completion_window,
            metadata=metadata,
            model=scan.model,
            created_at=created_at,
            total=total,
            errors=scan.errors,
            failures=scan.failures,
            rank=rank,
            failed_before=failed_before,
        )


@attrs.frozen(kw_only=True)
class Phase:
    """A batch as seen at one instant."""

    status: str
    timestamps: Mapping[str, float]
    #: Requests finished (by rank) when the batch stopped or now, whichever is first.
    done: int
    #: Whether unfinished requests are written to the error file as ``batch_expired``.
    expired: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "expired", "cancelled")


def phase_of(batch: EmulatedBatch, now: float, timing: Timing, *, expires: bool) -> Phase:
    """Where *batch* stands at *now*."""
    t0 = batch.created_at
    started = t0 + timing.validating
    finalizing_at = started + timing.processing
    completed_at = finalizing_at + timing.finalizing
    expiry = t0 + timing.window if expires else float("inf")
    stamps: dict[str, float] = {"created_at": t0, "expires_at": t0 + timing.window}

    def done_at(moment: float) -> int:
        if moment <= started:
            return 0
        if moment >= finalizing_at or timing.processing <= 0:
            return batch.total
        return min(int(batch.total * (moment - started) / timing.processing), batch.total)

    cancel = batch.cancel_requested_at
    if cancel is not None and now >= cancel:
        if cancel >= started and not batch.errors:
            stamps["in_progress_at"] = started
        if cancel >= finalizing_at and not batch.errors:
            stamps["finalizing_at"] = finalizing_at
        stamps["cancelling_at"] = cancel
        if now < cancel + timing.cancelling:
            return Phase(status="cancelling", timestamps=stamps, done=done_at(cancel))
        stamps["cancelled_at"] = cancel + timing.cancelling
        return Phase(status="cancelled", timestamps=stamps, done=done_at(cancel))
    if now < started:
        return Phase(status="validating", timestamps=stamps, done=0)
    if batch.errors:
        stamps["failed_at"] = started
        return Phase(status="failed", timestamps=stamps, done=0)
    stamps["in_progress_at"] = started
    if expiry < finalizing_at and now >= expiry:
        stamps["expired_at"] = expiry
        return Phase(status="expired", timestamps=stamps, done=done_at(expiry), expired=True)
    if now < finalizing_at:
        return Phase(status="in_progress", timestamps=stamps, done=done_at(now))
    stamps["finalizing_at"] = finalizing_at
    if now < completed_at:
        return Phase(status="finalizing", timestamps=stamps, done=batch.total)
    stamps["completed_at"] = completed_at
    return Phase(status="completed", timestamps=stamps, done=batch.total)


# -- deterministic answers ----------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _prompt_texts(body: Mapping[str, Any]) -> tuple[str, int]:
    """(the last user text, the number of words in the whole prompt)."""
    items = body.get("messages")
    if items is None:
        items = body.get("input")
    if items is None:
        items = body.get("prompt")
    if isinstance(items, str):
        return items, len(items.split())
    last, words = "", 0
    if isinstance(items, list):
        for item in items:
            if isinstance(item, str):
                last, words = item, words + len(item.split())
            elif isinstance(item, dict):
                text = _text_of(item.get("content"))
                words += len(text.split())
                if item.get("role", "user") == "user":
                    last = text
    return last, words


def _answer(body: Mapping[str, Any]) -> tuple[str, int, int, bool]:
    """(answer, prompt tokens, completion tokens, truncated): "Echo: <last user text>", cut to
    the request's token limit (one word = one token here)."""
    last, prompt_words = _prompt_texts(body)
    words = ["Echo:", *last.split()]
    limit = (
        body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    )
    truncated = isinstance(limit, int) and 0 < limit < len(words)
    if truncated:
        words = words[:limit]
    return " ".join(words), max(prompt_words, 1), len(words), truncated


def _embedding(text: str, dimensions: int) -> list[float]:
    digest = hashlib.blake2b(text.encode(), digest_size=64).digest()
    return [round(digest[i % 64] / 127.5 - 1.0, 6) for i in range(dimensions)]


def answer_body(endpoint: str, body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    """The response body a real endpoint would give *body*, deterministically."""
    model = body.get("model")
    if endpoint == EMBEDDINGS:
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        requested = body.get("dimensions")
        dims = requested if isinstance(requested, int) and requested > 0 else 8
        texts = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in inputs]
        tokens = max(sum(len(t.split()) for t in texts), 1)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _embedding(t, dims)}
                for i, t in enumerate(texts)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    if endpoint == MODERATIONS:
        return {
            "id": f"modr-{ident}",
            "model": model,
            "results": [
                {
                    "flagged": False,
                    "categories": {},
                    "category_scores": {},
                    "category_applied_input_types": {},
                }
            ],
        }
    text, prompt_tokens, completion_tokens, truncated = _answer(body)
    if endpoint == RESPONSES:
        return {
            "id": f"resp_{ident}",
            "object": "response",
            "created_at": created,
            "status": "incomplete" if truncated else "completed",
            "model": model,
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{ident}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
            "instructions": None,
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "usage": {
                "input_tokens": prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    finish = "length" if truncated else "stop"
    if endpoint == COMPLETIONS:
        return {
            "id": f"cmpl-{ident}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
        "service_tier": "default",
    }


def failure_line(marker: str, custom_id: str, ident: str) -> dict[str, Any]:
    """The error-file line of a request made to fail with ``[emulator-fail:<marker>]``."""
    if marker.isdigit():
        status = int(marker)
        kind, code = _STATUS_ERRORS.get(status, ("server_error", "server_error"))
        return {
            "id": f"batch_req_{ident}",
            "custom_id": custom_id,
            "response": {
                "status_code": status,
                "request_id": f"req_{ident}",
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
    return error_line(marker, f"Emulated failure: {marker}.", custom_id, ident)


def error_line(code: str, message: str, custom_id: str, ident: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{ident}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


def write_results(
    batch: EmulatedBatch,
    phase: Phase,
    *,
    output: IO[bytes],
    errors: IO[bytes],
    scratch: IO[bytes],
    created: int,
) -> dict[str, int]:
    """Write the output and error files of an ended batch; returns the batch's token usage.

    Finished requests are written in the order they finished (not the input order);
    unfinished ones of an expired batch become ``batch_expired`` error lines.
    """
    done = phase.done
    itemsize = array("q").itemsize
    offsets = array("q", bytes(itemsize * done))
    lengths = array("q", bytes(itemsize * done))
    kinds = bytearray(done)  # 0: no line, 1: output file, 2: error file
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for index, line in enumerate(iter_file_lines(batch.input_path)):
        position = batch.rank[index]
        ident = f"{batch.sequence:06x}{index:018x}"
        if position >= done:
            continue
        request = orjson.loads(line)
        custom_id = request["custom_id"]
        marker = batch.failures.get(index)
        if marker == DROP:
            continue
        if marker is not None:
            record, kind = failure_line(marker, custom_id, ident), 2
        else:
            body = answer_body(batch.endpoint, request["body"], ident, created)
            counts = body.get("usage") or {}
            usage["input_tokens"] += counts.get("input_tokens", counts.get("prompt_tokens", 0))
            usage["output_tokens"] += counts.get(
                "output_tokens", counts.get("completion_tokens", 0)
            )
            usage["total_tokens"] += counts.get("total_tokens", 0)
            record = {
                "id": f"batch_req_{ident}",
                "custom_id": custom_id,
                "response": {"status_code": 200, "request_id": f"req_{ident}", "body": body},
                "error": None,
            }
            kind = 1
        data = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        offsets[position] = scratch.tell()
        lengths[position] = len(data)
        kinds[position] = kind
        scratch.write(data)
    scratch.flush()
    for position in range(done):
        kind = kinds[position]
        if kind:
            scratch.seek(offsets[position])
            (output if kind == 1 else errors).write(scratch.read(lengths[position]))
    if phase.expired and done < batch.total:
        for index, line in enumerate(iter_file_lines(batch.input_path)):
            if batch.rank[index] >= done:
                custom_id = orjson.loads(line)["custom_id"]
                ident = f"{batch.sequence:06x}{index:018x}"
                errors.write(
                    orjson.dumps(
                        error_line("batch_expired", EXPIRED_MESSAGE, custom_id, ident),
                        option=orjson.OPT_APPEND_NEWLINE,
                    )
                )
    return usage
