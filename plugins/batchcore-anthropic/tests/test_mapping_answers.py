"""The wire module's answer half: ``message_batch`` objects as statuses, results lines as
results. Every sample is validated against the spec's schema first, so it is a shape the API can
send."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from batchcore import BatchResult, ResultStatus
from batchcore.models import BatchState
from batchcore_anthropic._mapping import (
    ERROR_STATUS,
    batch_created_at,
    batch_result,
    batch_status,
)
from batchcore_anthropic.provider import AnthropicBatchProvider

MODEL = "claude-sonnet-4-5"
Spec = Callable[[str, Any], None]


@pytest.fixture(scope="module")
def result_error() -> Any:
    # The provider's own classifier (the core's rule, fed with this vendor's codes); building a
    # provider needs no key and makes no call.
    return AnthropicBatchProvider().result_error


def parse(line: dict[str, Any], result_error: Any, batch_id: str | None = None) -> BatchResult:
    return batch_result(
        orjson.loads(orjson.dumps(line)), result_error=result_error, batch_id=batch_id
    )


# -- statuses ------------------------------------------------------------------------------------


def _batch(**changes: Any) -> dict[str, Any]:
    batch: dict[str, Any] = {
        "id": "msgbatch_01",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 7,
            "errored": 1,
            "canceled": 0,
            "expired": 0,
        },
        "ended_at": "2026-01-01T01:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-02T00:00:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results",
    }
    batch.update(changes)
    return batch


_PROCESSING = {"processing": 8, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        pytest.param(
            {
                "processing_status": "in_progress",
                "ended_at": None,
                "results_url": None,
                "request_counts": _PROCESSING,
            },
            BatchState.IN_PROGRESS,
            id="in_progress",
        ),
        pytest.param(
            {
                "processing_status": "canceling",
                "ended_at": None,
                "results_url": None,
                "cancel_initiated_at": "2026-01-01T00:10:00Z",
                "request_counts": _PROCESSING,
            },
            BatchState.CANCELLING,
            id="canceling",
        ),
        pytest.param({}, BatchState.COMPLETED, id="ended"),
        pytest.param(
            {
                "request_counts": {
                    "processing": 0,
                    "succeeded": 5,
                    "errored": 1,
                    "canceled": 0,
                    "expired": 2,
                },
                "ended_at": "2026-01-02T00:00:00Z",
            },
            BatchState.EXPIRED,
            id="ended with expired requests",
        ),
        pytest.param(
            {
                "cancel_initiated_at": "2026-01-01T00:10:00Z",
                "request_counts": {
                    "processing": 0,
                    "succeeded": 5,
                    "errored": 0,
                    "canceled": 3,
                    "expired": 0,
                },
            },
            BatchState.CANCELLED,
            id="ended after cancel",
        ),
        pytest.param(
            {"cancel_initiated_at": "2026-01-01T00:10:00Z"},
            BatchState.CANCELLED,
            id="ended after cancel with nothing left to cancel",
        ),
    ],
)
def test_batch_state(changes: dict[str, Any], state: BatchState, spec: Spec) -> None:
    batch = _batch(**changes)
    spec("MessageBatch", batch)
    status = batch_status(batch)
    assert status.state is state
    assert status.raw_status == batch["processing_status"]
    counts = batch["request_counts"]
    assert status.total == sum(counts.values())
    assert status.completed == counts["succeeded"]
    assert status.failed == counts["errored"] + counts["expired"] + counts["canceled"]
    assert status.raw == batch
    assert status.timestamps["created_at"].isoformat() == "2026-01-01T00:00:00+00:00"


def test_unknown_processing_status_keeps_the_batch_polling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="batchcore_anthropic"):
        status = batch_status(
            _batch(processing_status="paused", ended_at=None, request_counts=_PROCESSING)
        )
    assert status.state is BatchState.IN_PROGRESS
    assert not status.is_terminal
    assert status.raw_status == "paused"
    assert status.total == 8
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "msgbatch_01" in record.getMessage() and "'paused'" in record.getMessage()


# -- results -------------------------------------------------------------------------------------


def _message(
    content: list[dict[str, Any]] | None = None,
    *,
    usage: dict[str, Any] | None = None,
    stop_reason: str = "end_turn",
    stop_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": content
        if content is not None
        else [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hi there", "citations": None},
        ],
        "model": MODEL,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": stop_details,
        "usage": {
            "input_tokens": 11,
            "output_tokens": 5,
            "cache_creation": None,
            "cache_creation_input_tokens": None,
            "cache_read_input_tokens": None,
            "inference_geo": None,
            "output_tokens_details": None,
            "server_tool_use": None,
            "service_tier": "batch",
            **(usage or {}),
        },
        "container": None,
    }


def _succeeded(message: dict[str, Any], spec: Spec, custom_id: str = "a") -> dict[str, Any]:
    line = {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    spec("MessageBatchIndividualResponse", line)
    return line


def test_succeeded_result(spec: Spec, result_error: Any) -> None:
    line = _succeeded(_message(), spec)
    result = parse(line, result_error, batch_id="msgbatch_01")
    assert result.ok and result.status is ResultStatus.SUCCEEDED
    assert result.text == "Hi there"  # the text, not the thinking
    assert result.refusal is None
    assert result.usage is not None
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 5, 16)
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (
        None,
        None,
        None,
    )
    assert result.response == line["result"]["message"]
    assert result.batch_id == "msgbatch_01"


def test_usage_counts_the_cache_in_the_input(spec: Spec, result_error: Any) -> None:
    message = _message(
        usage={
            "input_tokens": 12,
            "cache_creation_input_tokens": 20_000,
            "cache_read_input_tokens": 12_048,
            "cache_creation": {"ephemeral_1h_input_tokens": 20_000, "ephemeral_5m_input_tokens": 0},
            "output_tokens": 400,
            "output_tokens_details": {"thinking_tokens": 250},
        }
    )
    usage = parse(_succeeded(message, spec), result_error).usage
    assert usage is not None
    assert usage.input_tokens == 32_060  # 12 uncached + 20,000 written + 12,048 read
    assert usage.cache_write_tokens == 20_000
    assert usage.cache_read_tokens == 12_048
    assert usage.output_tokens == 400  # thinking included, as Anthropic bills it
    assert usage.reasoning_tokens == 250
    assert usage.total_tokens == 32_460


def test_usage_with_a_cache_that_was_not_touched(spec: Spec, result_error: Any) -> None:
    message = _message(usage={"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    usage = parse(_succeeded(message, spec), result_error).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (11, 0, 0)


def _citation(cited: str) -> dict[str, Any]:
    return {
        "type": "char_location",
        "cited_text": cited,
        "document_index": 0,
        "document_title": "Facts",
        "start_char_index": 0,
        "end_char_index": len(cited),
        "file_id": None,
    }


TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_1",
    "name": "lookup",
    "input": {"q": "sky"},
    "caller": {"type": "direct"},
}


def test_text_is_every_text_block_in_order(spec: Spec, result_error: Any) -> None:
    # Citations split one answer into several text blocks; other blocks sit in between.
    content = [
        {"type": "thinking", "thinking": "Look it up.", "signature": "sig"},
        {"type": "text", "text": "According to the document, ", "citations": None},
        {"type": "text", "text": "the grass is green", "citations": [_citation("green grass")]},
        {"type": "text", "text": " and ", "citations": None},
        {"type": "text", "text": "the sky is blue", "citations": [_citation("blue sky")]},
        TOOL_USE,
        {"type": "text", "text": ".", "citations": None},
    ]
    result = parse(_succeeded(_message(content), spec), result_error)
    assert result.text == "According to the document, the grass is green and the sky is blue."
    assert result.response is not None and result.response["content"] == content


def test_a_message_without_text_has_no_text(spec: Spec, result_error: Any) -> None:
    content = [TOOL_USE]
    result = parse(_succeeded(_message(content, stop_reason="tool_use"), spec), result_error)
    assert result.ok and result.text is None


def test_refusal(spec: Spec, result_error: Any) -> None:
    explained = _message(
        [{"type": "text", "text": "I can help with part of", "citations": None}],
        stop_reason="refusal",
        stop_details={
            "type": "refusal",
            "category": "cyber",
            "explanation": "This request asks for working malware.",
        },
    )
    result = parse(_succeeded(explained, spec), result_error)
    # The request ran and was billed: a success that carries the refusal.
    assert result.ok and result.error is None
    assert result.refusal == "This request asks for working malware."
    assert result.text == "I can help with part of"

    bare = _message([], stop_reason="refusal", stop_details=None)
    result = parse(_succeeded(bare, spec, "b"), result_error)
    assert result.ok
    assert result.refusal == "The model declined to answer."
    assert result.text is None

    categorised = _message(
        [],
        stop_reason="refusal",
        stop_details={"type": "refusal", "category": "bio", "explanation": None},
    )
    assert parse(_succeeded(categorised, spec, "c"), result_error).refusal == (
        "The model declined to answer (category: bio)."
    )


SERVER_TOOL_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "weather Paris"},
    "caller": {"type": "direct"},
}
WEB_RESULTS = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_1",
    "caller": {"type": "direct"},
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.com/paris",
            "title": "Paris weather",
            "encrypted_content": "enc",
            "page_age": None,
        }
    ],
}


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "citations": None}


#: (name, message fields, text, (input, output, total, cache read, cache write, reasoning),
#: refusal): succeeded lines as the API writes them, and what batchcore makes of them.
SUCCEEDED: list[tuple[str, dict[str, Any], str | None, tuple[int | None, ...], str | None]] = [
    ("plain answer", {"content": [_text_block("Hi")]}, "Hi", (11, 5, 16, None, None, None), None),
    (
        "cut at max_tokens",
        {"content": [_text_block("The answer is")], "stop_reason": "max_tokens"},
        "The answer is",
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "stopped at a stop sequence",
        {"content": [_text_block("One, two")], "stop_reason": "stop_sequence"},
        "One, two",
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "web search between the text",
        {
            "content": [
                _text_block("Let me look. "),
                SERVER_TOOL_USE,
                WEB_RESULTS,
                _text_block("It is sunny."),
            ],
            "usage": {"server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}},
        },
        "Let me look. It is sunny.",
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "paused after a server tool call",
        {"content": [SERVER_TOOL_USE], "stop_reason": "pause_turn"},
        None,
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "redacted thinking is not text",
        {"content": [{"type": "redacted_thinking", "data": "abc"}, _text_block("Done")]},
        "Done",
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "thinking tokens",
        {
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
                _text_block("42"),
            ],
            "usage": {"output_tokens": 900, "output_tokens_details": {"thinking_tokens": 880}},
        },
        "42",
        (11, 900, 911, None, None, 880),
        None,
    ),
    (
        "cache written for an hour, and read",
        {
            "content": [_text_block("Cached")],
            "usage": {
                "input_tokens": 3,
                "cache_creation_input_tokens": 4000,
                "cache_read_input_tokens": 1000,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 4000,
                    "ephemeral_5m_input_tokens": 0,
                },
            },
        },
        "Cached",
        (5003, 5, 5008, 1000, 4000, None),
        None,
    ),
    (
        "an empty answer",
        {"content": [], "usage": {"output_tokens": 0}},
        None,
        (11, 0, 11, None, None, None),
        None,
    ),
    (
        "structured output",
        {"content": [_text_block('{"city": "Paris"}')]},
        '{"city": "Paris"}',
        (11, 5, 16, None, None, None),
        None,
    ),
    (
        "a refusal after some text",
        {
            "content": [_text_block("I can tell you that")],
            "stop_reason": "refusal",
            "stop_details": {"type": "refusal", "category": None, "explanation": None},
        },
        "I can tell you that",
        (11, 5, 16, None, None, None),
        "The model declined to answer.",
    ),
]


@pytest.mark.parametrize(
    ("fields", "text", "usage", "refusal"),
    [pytest.param(f, t, u, r, id=name) for name, f, t, u, r in SUCCEEDED],
)
def test_succeeded_corpus(
    fields: dict[str, Any],
    text: str | None,
    usage: tuple[int | None, ...],
    refusal: str | None,
    spec: Spec,
    result_error: Any,
) -> None:
    message = _message(
        fields["content"],
        usage=fields.get("usage"),
        stop_reason=fields.get("stop_reason", "end_turn"),
        stop_details=fields.get("stop_details"),
    )
    result = parse(_succeeded(message, spec), result_error, batch_id="msgbatch_01")
    assert result.ok and result.status is ResultStatus.SUCCEEDED and result.error is None
    assert (result.text, result.refusal) == (text, refusal)
    assert result.usage is not None
    got = result.usage
    assert (
        got.input_tokens,
        got.output_tokens,
        got.total_tokens,
        got.cache_read_tokens,
        got.cache_write_tokens,
        got.reasoning_tokens,
    ) == usage


#: error type -> (HTTP-equivalent status, whether resubmitting can help)
ERRORS = {
    "invalid_request_error": (400, False),
    "authentication_error": (401, False),
    "billing_error": (402, False),
    "permission_error": (403, False),
    "not_found_error": (404, False),
    "request_too_large": (413, False),
    "rate_limit_error": (429, True),
    "api_error": (500, True),
    "timeout_error": (504, True),
    "overloaded_error": (529, True),
}


def test_every_error_type_has_its_status() -> None:
    assert {kind: status for kind, (status, _) in ERRORS.items()} == dict(ERROR_STATUS)


@pytest.mark.parametrize(("error_type", "expected"), ERRORS.items(), ids=list(ERRORS))
def test_errored_result(
    error_type: str, expected: tuple[int, bool], spec: Spec, result_error: Any
) -> None:
    status_code, retryable = expected
    line: dict[str, Any] = {
        "custom_id": "b",
        "result": {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": error_type, "message": "boom"},
                "request_id": "req_1",
            },
        },
    }
    if error_type != "request_too_large":  # a 413 comes from the edge, not in the API's schema
        spec("MessageBatchIndividualResponse", line)
    result = parse(line, result_error)
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None
    assert (
        result.error.code,
        result.error.message,
        result.error.status_code,
        result.error.retryable,
    ) == (error_type, "boom", status_code, retryable)
    assert result.retryable is retryable
    assert result.response == line["result"]["error"]


def test_an_errored_line_without_a_request_id(spec: Spec, result_error: Any) -> None:
    line = {
        "custom_id": "e",
        "result": {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": None,
            },
        },
    }
    spec("MessageBatchIndividualResponse", line)
    result = parse(line, result_error)
    assert result.error is not None
    assert (result.error.code, result.error.status_code, result.retryable) == (
        "overloaded_error",
        529,
        True,
    )


def test_an_unknown_error_type_is_not_retried_blindly(result_error: Any) -> None:
    line = {
        "custom_id": "b",
        "result": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "brand_new_error", "message": "?"}},
        },
    }
    result = parse(line, result_error)
    assert result.error is not None
    assert (result.error.code, result.error.status_code, result.retryable) == (
        "brand_new_error",
        None,
        False,
    )


@pytest.mark.parametrize(
    ("kind", "status"), [("canceled", ResultStatus.CANCELLED), ("expired", ResultStatus.EXPIRED)]
)
def test_unfinished_results(kind: str, status: ResultStatus, spec: Spec, result_error: Any) -> None:
    line = {"custom_id": "c", "result": {"type": kind}}
    spec("MessageBatchIndividualResponse", line)
    result = parse(line, result_error, batch_id="msgbatch_01")
    assert result.status is status
    assert result.retryable
    assert result.text is None


def test_unknown_result_type_is_kept_but_not_retried_blindly(result_error: Any) -> None:
    raw = {"type": "deferred", "until": "tomorrow"}
    result = parse({"custom_id": "d", "result": raw}, result_error)
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None and "deferred" in result.error.code
    assert not result.retryable  # whether it was billed is unknown
    assert result.response == raw


@pytest.mark.parametrize(
    "line",
    [
        [1, 2],
        {"result": {"type": "succeeded"}},
        {"custom_id": "a"},
        {"custom_id": "a", "result": 1},
    ],
)
def test_a_line_that_is_not_a_result_is_a_value_error(line: Any, result_error: Any) -> None:
    with pytest.raises(ValueError):
        batch_result(copy.deepcopy(line), result_error=result_error)


def test_created_at_that_cannot_be_read_is_unknown() -> None:
    assert batch_created_at(_batch()) is not None
    assert batch_created_at(_batch(created_at="yesterday-ish")) is None
    assert batch_created_at(_batch(created_at=None)) is None
