"""Reading a batch's results, written once for every provider.

* :func:`decode_result_line` - one line of a results download as a JSON object. A line that is
  not one (cut short, garbled) raises :class:`ResponseLostError`: the download went wrong and
  fetching it again can cure it. It is never skipped: a skipped line's request would come back
  missing, be resubmitted and be paid for twice.
* :func:`read_result_lines` - every line of a download through a vendor's reader of one decoded
  line. A line that is JSON but names no request (the reader returns None) is logged and skipped:
  there is nothing to join it to.
* :func:`input_custom_id` - the custom_id of a line of a batch's input file, read back to report
  the requests its results leave out.
* :func:`result_from_openai_line` - OpenAI's batch output and error lines (``custom_id``,
  ``response: {status_code, body}``, ``error``), the format OpenAI-compatible vendors (Groq,
  Mistral, Together) write too, as a :class:`BatchResult`; a vendor's differences are an
  :class:`OpenAILineDialect`. :func:`openai_answer_parts`, :func:`openai_usage` and
  :func:`openai_error_fields` read a response body's text, refusal, usage and error.

Whether a failed request is worth resubmitting is never decided here: the caller's
``result_error`` (:meth:`BaseBatchProvider.result_error`, the core's one rule) decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import attrs
import orjson

from batchcore.errors import ResponseLostError
from batchcore.models import BatchResult, ResultError, ResultStatus, Usage

__all__ = [
    "OPENAI_CANCELLED_CODES",
    "OPENAI_LINES",
    "OpenAILineDialect",
    "ResultErrorBuilder",
    "decode_result_line",
    "input_custom_id",
    "openai_answer_parts",
    "openai_error_fields",
    "openai_incomplete",
    "openai_usage",
    "read_result_lines",
    "result_from_openai_line",
]

log = logging.getLogger("batchcore.results")


class ResultErrorBuilder(Protocol):
    """:meth:`BaseBatchProvider.result_error`: the core's rule for one request's failure."""

    def __call__(
        self, *, code: str | None, message: str | None = None, status_code: int | None = None
    ) -> ResultError: ...


# -- lines of a download ----------------------------------------------------------------------

_UNREADABLE = object()


def decode_result_line(line: bytes, *, provider: str, batch_id: str, where: str) -> dict[str, Any]:
    """One raw line of a results download (*where* says which, for the message) as a JSON
    object; :class:`ResponseLostError` when it is not one."""
    try:
        entry: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        entry = _UNREADABLE
    if type(entry) is dict:
        return entry
    problem = "is not valid JSON" if entry is _UNREADABLE else "is not a JSON object"
    # Raised outside the except block: the decoder's error adds nothing to the message.
    raise ResponseLostError(
        f"results of batch {batch_id}: {where} {problem} (the download was cut short or "
        "garbled); fetch the results again",
        provider=provider,
    )


def read_result_lines(
    lines: Iterable[bytes],
    read: Callable[[dict[str, Any]], BatchResult | None],
    *,
    provider: str,
    batch_id: str,
    source: str = "the results",
) -> Iterator[BatchResult]:
    """The result of each line of *lines* (a download of *source*), read by *read* from the
    decoded line (:func:`decode_result_line`). *read* returns None for a line that names no
    request: it is logged and skipped. *lines* is closed when this ends or is abandoned (a
    streamed download's connection is released)."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    try:
        for number, line in enumerate(lines, start=1):
            # The common case inline (this runs once per result line); a line that is not a
            # JSON object goes to decode_result_line, which raises.
            try:
                entry = loads(line)
            except decode_error:
                entry = None
            if type(entry) is not dict:
                where = f"line {number} of {source}"
                entry = decode_result_line(line, provider=provider, batch_id=batch_id, where=where)
            result = read(entry)
            if result is None:
                log.warning(
                    "%s: batch %s: line %d of %s is not the result of a request (no custom_id); "
                    "skipped",
                    provider,
                    batch_id,
                    number,
                    source,
                )
                continue
            yield result
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()


def input_custom_id(line: bytes) -> str | None:
    """The custom_id of one raw line of a batch's input file (``{"custom_id": ..., ...}``, in
    OpenAI's, Mistral's and Together's formats alike); None for a line without one."""
    try:
        entry: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    custom_id = entry.get("custom_id") if type(entry) is dict else None
    return custom_id if isinstance(custom_id, str) and custom_id else None


# -- OpenAI's output and error lines ----------------------------------------------------------

#: The error codes of an OpenAI-format error line that mean "cancelled before it ran".
OPENAI_CANCELLED_CODES = frozenset({"batch_cancelled", "batch_canceled", "cancelled", "canceled"})


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def openai_answer_parts(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(text, refusal)`` of a response body.

    *text* joins every text part of the answer in order, as the OpenAI SDK's ``output_text``
    does: a chat ``choices[0].message.content`` (a string or its ``text`` parts; other kinds of
    part, such as a reasoning model's ``thinking``, stay in the response), legacy completions'
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


def openai_usage(body: Mapping[str, Any]) -> Usage | None:
    """Token usage in neutral names, from the chat spelling (``prompt_tokens``,
    ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``)
    or the Responses one (``input_tokens``, ``input_tokens_details``, ...). Cached tokens
    reported at the top of ``usage`` (``cached_tokens``, as Together does) count too."""
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
    cached = _int(prompt_details.get("cached_tokens"))
    return Usage(
        input_tokens=_int(prompt),
        output_tokens=_int(output),
        total_tokens=_int(usage.get("total_tokens")),
        cache_read_tokens=cached if cached is not None else _int(usage.get("cached_tokens")),
        cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=_int(output_details.get("reasoning_tokens")),
    )


def openai_error_fields(value: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` of an error object (``{"code" or "type", "message"}``, possibly
    wrapped in ``{"error": ...}``) or an error string."""
    if isinstance(value, Mapping):
        inner = value.get("error", value)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            message = inner.get("message")
            return (
                str(code) if code else None,
                str(message) if message not in (None, "") else None,
            )
        value = inner
    return None, (value if isinstance(value, str) and value else None)


def openai_incomplete(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """A Responses result with ``status: incomplete`` (cut short by ``max_output_tokens`` or a
    content filter): ``("response_incomplete", why)``, so a truncated answer is never taken for
    a whole one; None for a finished answer."""
    if body.get("status") != "incomplete":
        return None
    details = body.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return "response_incomplete", f"The response is incomplete ({reason or 'no reason given'})."


@attrs.frozen(kw_only=True)
class OpenAILineDialect:
    """How a vendor's output and error lines differ from OpenAI's (the defaults).

    * ``error_fields`` - ``(code, message)`` of an error body or an error line's ``error``;
    * ``answer_failure`` - ``(code, message)`` of a 2xx answer that is a failure all the same
      (kept with its text and usage: it was billed), or None;
    * ``expired_codes`` / ``cancelled_codes`` - error line codes of a request that never ran
      because its batch expired or was cancelled (retryable).
    """

    error_fields: Callable[[Any], tuple[str | None, str | None]] = openai_error_fields
    answer_failure: Callable[[Mapping[str, Any]], tuple[str, str] | None] = openai_incomplete
    expired_codes: frozenset[str] = frozenset({"batch_expired"})
    cancelled_codes: frozenset[str] = OPENAI_CANCELLED_CODES


#: OpenAI's own lines.
OPENAI_LINES = OpenAILineDialect()


def result_from_openai_line(
    line: Mapping[str, Any],
    batch_id: str | None,
    *,
    error: ResultErrorBuilder,
    dialect: OpenAILineDialect = OPENAI_LINES,
) -> BatchResult | None:
    """The result in one decoded output or error file line; None for a line without a
    custom_id (nothing to join it to).

    * a 2xx ``response`` -> succeeded, with ``text``, ``refusal`` and ``usage`` (a refusal is
      still a success: the request ran and was billed), unless ``dialect.answer_failure`` says
      it failed (errored, keeping text and usage);
    * another ``response.status_code`` (or a body that is an error) -> errored, with that
      status and the body's error;
    * an ``error`` -> expired or cancelled (retryable: it never ran) for the dialect's codes,
      else errored; the error is kept in ``response``.
    """
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None
    response = line.get("response")
    # Exact dict tests first, as in openai_answer_parts: this runs once per result line.
    if type(response) is dict or isinstance(response, Mapping):
        body = response.get("body")
        status = response.get("status_code")
        if type(body) is dict or isinstance(body, Mapping):
            if status.__class__ is not int:
                status = 500 if "error" in body else 200
            if 200 <= status < 300:
                return _answer(custom_id, body, batch_id, error, dialect)
        elif status.__class__ is not int:
            status = 500
        code, message = dialect.error_fields(body)
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body if isinstance(body, Mapping) else None,
            error=error(code=code, message=message or f"HTTP {status}", status_code=status),
            batch_id=batch_id,
        )
    details = line.get("error")
    code, message = dialect.error_fields(details)
    kept = None if details is None else {"error": details}
    if code is not None and (code in dialect.expired_codes or code in dialect.cancelled_codes):
        kind = ResultStatus.EXPIRED if code in dialect.expired_codes else ResultStatus.CANCELLED
        # It never ran: retryable by the core's rule for an unfinished request, in the vendor's
        # words where it gave some.
        unfinished = BatchResult.unfinished(custom_id, kind, batch_id=batch_id)
        assert unfinished.error is not None
        return attrs.evolve(
            unfinished,
            response=kept,
            error=attrs.evolve(
                unfinished.error, code=code, message=message or unfinished.error.message
            ),
        )
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.ERRORED,
        response=kept,
        error=error(code=code, message=message),
        batch_id=batch_id,
    )


def _answer(
    custom_id: str,
    body: Mapping[str, Any],
    batch_id: str | None,
    error: ResultErrorBuilder,
    dialect: OpenAILineDialect,
) -> BatchResult:
    text, refusal = openai_answer_parts(body)
    failed = dialect.answer_failure(body)
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.SUCCEEDED if failed is None else ResultStatus.ERRORED,
        response=body,
        text=text,
        usage=openai_usage(body),
        error=None if failed is None else error(code=failed[0], message=failed[1]),
        batch_id=batch_id,
        refusal=refusal,
    )
