"""The pure mapping functions: requests to lines, Batch objects and result lines to DTOs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from openai_support import chat

from batchcore.models import (
    BatchError,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ResultStatus,
)
from batchcore_openai._mapping import (
    answer_parts,
    batch_state,
    batch_status,
    encode_line,
    failed_batch_results,
    input_count,
    result_from_line,
    usage_of,
)
from batchcore_openai.provider import OpenAIBatchProvider

#: The provider's rule for a request's failure (the core's table and OpenAI's own codes).
result_error = OpenAIBatchProvider().result_error


def test_encode_line_is_an_openai_batch_line() -> None:
    request = chat("r1", "hi", max_tokens=5, temperature=0.5)
    line = json.loads(encode_line(request))
    assert line == {
        "custom_id": "r1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "temperature": 0.5,
        },
    }
    # It reads back as the same request.
    assert BatchRequest.from_openai_line(encode_line(request)) == request


def test_encode_line_reuses_the_cached_body_bytes() -> None:
    request = chat("r1", 'quote " and unicode é')
    assert request.openai_body_json() in encode_line(request)


def test_encode_line_merges_the_named_provider_params_in_order() -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "r1",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "provider_params": {
                "openai": {"service_tier": "flex", "seed": 7},
                "azure-openai": {"seed": 8},
                "anthropic": {"top_k": 3},
            },
        }
    )
    body = json.loads(encode_line(request, ("openai", "azure-openai")))["body"]
    assert (body["service_tier"], body["seed"]) == ("flex", 8)
    assert "top_k" not in body
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert json.loads(encode_line(request))["body"] == request.openai_body()


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [("/v1/embeddings", {"input": ["a", "b"]}), ("/v1/responses", {"input": "hello"})],
)
def test_encode_line_other_endpoints(endpoint: str, params: dict[str, object]) -> None:
    request = BatchRequest(
        custom_id="e", model="text-embedding-3-small", endpoint=endpoint, params=params
    )
    line = json.loads(encode_line(request))
    assert line["url"] == endpoint
    assert line["body"] == {"model": "text-embedding-3-small", **params}


@pytest.mark.parametrize(
    ("value", "count"),
    [("one", 1), (["a", "b", "c"], 3), ([1, 2, 3], 1), ([[1, 2], [3]], 2), ([], 1)],
)
def test_input_count(value: object, count: int) -> None:
    assert input_count(value) == count


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("validating", BatchState.VALIDATING),
        ("in_progress", BatchState.IN_PROGRESS),
        ("finalizing", BatchState.FINALIZING),
        ("completed", BatchState.COMPLETED),
        ("failed", BatchState.FAILED),
        ("expired", BatchState.EXPIRED),
        ("cancelling", BatchState.CANCELLING),
        ("cancelled", BatchState.CANCELLED),
        ("Validating", BatchState.VALIDATING),
        ("InProgress", BatchState.IN_PROGRESS),
        ("IN_PROGRESS", BatchState.IN_PROGRESS),
        ("Canceled", BatchState.CANCELLED),
        ("canceling", BatchState.CANCELLING),
    ],
)
def test_every_status_word_maps(raw: str, state: BatchState) -> None:
    assert batch_state(raw) is state


def test_unknown_status_keeps_callers_polling(caplog: pytest.LogCaptureFixture) -> None:
    status = batch_status("openai", {"id": "batch_1", "status": "queued"})
    assert status.state is BatchState.IN_PROGRESS
    assert not status.is_terminal
    assert status.raw_status == "queued"
    assert "unknown status 'queued'" in caplog.text


def test_batch_status_reads_counts_timestamps_and_errors() -> None:
    batch = {
        "id": "batch_1",
        "status": "failed",
        "created_at": 1_700_000_000,
        "expires_at": 1_700_086_400,
        "failed_at": 1_700_000_060,
        "in_progress_at": None,
        "request_counts": {"total": 3, "completed": 0, "failed": 0},
        "errors": {
            "object": "list",
            "data": [
                {"code": "invalid_json_line", "message": "bad", "param": None, "line": 2},
                {"code": "empty_file", "message": "none", "line": None},
            ],
        },
    }
    status = batch_status("openai", batch)
    assert status.state is BatchState.FAILED
    assert (status.total, status.completed, status.failed) == (3, 0, 0)
    assert status.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert status.ended_at == status.timestamps["failed_at"]
    assert set(status.timestamps) == {"created_at", "expires_at", "failed_at"}
    assert status.errors == (
        BatchError(code="invalid_json_line", message="bad", line=2),
        BatchError(code="empty_file", message="none"),
    )
    assert status.raw is batch


def test_batch_status_tolerates_azure_quirks() -> None:
    status = batch_status(
        "azure-openai",
        {
            "id": "batch_1",
            "status": "Completed",
            "created_at": "2026-01-01T00:00:00Z",
            "completed_at": "2026-01-01T01:00:00.1234567Z",
            "expires_at": "not a time",
            "request_counts": None,
            "errors": None,
        },
    )
    assert status.state is BatchState.COMPLETED
    assert status.total is None and status.completed is None
    assert status.ended_at == datetime(2026, 1, 1, 1, 0, 0, 123456, tzinfo=timezone.utc)
    assert status.expires_at is None  # unreadable, not fatal


CHAT_BODY = {
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_success_line() -> None:
    result = result_from_line(
        {
            "id": "batch_req_1",
            "custom_id": "a",
            "response": {"status_code": 200, "request_id": "req_1", "body": CHAT_BODY},
            "error": None,
        },
        "batch_1",
        error=result_error,
    )
    assert result is not None
    assert result.status is ResultStatus.SUCCEEDED
    assert result.text == "Hi!"
    usage = result.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (3, 2, 5)
    assert result.response == CHAT_BODY
    assert result.batch_id == "batch_1"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "invalid_request", False),
        (401, "invalid_api_key", False),
        (404, "model_not_found", False),
        (408, "timeout", True),
        (429, "rate_limit_exceeded", True),
        (429, "insufficient_quota", False),
        (500, "server_error", True),
        (503, None, True),
    ],
)
def test_http_error_lines(status: int, code: str | None, retryable: bool) -> None:
    result = result_from_line(
        {
            "custom_id": "a",
            "response": {
                "status_code": status,
                "body": {"error": {"message": "nope", "code": code, "type": "x_error"}},
            },
            "error": None,
        },
        None,
        error=result_error,
    )
    assert result is not None
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None
    assert result.error.status_code == status
    assert result.error.code == (code or "x_error")
    assert result.error.message == "nope"
    assert result.error.retryable is retryable


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("batch_expired", ResultStatus.EXPIRED, True),
        ("batch_cancelled", ResultStatus.CANCELLED, True),
        ("rate_limit_exceeded", ResultStatus.ERRORED, True),
        ("invalid_prompt", ResultStatus.ERRORED, False),
    ],
)
def test_error_object_lines(code: str, status: ResultStatus, retryable: bool) -> None:
    result = result_from_line(
        {"custom_id": "a", "response": None, "error": {"code": code, "message": "m"}},
        None,
        error=result_error,
    )
    assert result is not None
    assert result.status is status
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == (code, retryable)


def test_line_without_custom_id_is_not_a_result() -> None:
    assert (
        result_from_line({"response": {"status_code": 200, "body": {}}}, None, error=result_error)
        is None
    )


def test_answer_text_is_every_text_part_in_order() -> None:
    assert answer_parts(CHAT_BODY) == ("Hi!", None)
    assert answer_parts({"choices": [{"text": "legacy", "index": 0}]}) == ("legacy", None)
    assert answer_parts({"choices": [{"message": {"content": None, "tool_calls": []}}]}) == (
        None,
        None,
    )
    assert answer_parts(
        {
            "choices": [
                {
                    "message": {
                        "content": [
                            {"type": "text", "text": "one, "},
                            {"type": "image_url", "image_url": {}},
                            {"type": "text", "text": "two"},
                        ]
                    }
                }
            ]
        }
    ) == ("one, two", None)
    # Other choices (n > 1) are alternative answers, not parts of the first.
    assert answer_parts(
        {"choices": [{"message": {"content": "first"}}, {"message": {"content": "second"}}]}
    ) == ("first", None)
    assert answer_parts(
        {
            "output": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}]},
                {
                    "type": "message",
                    "content": [
                        {"type": "output_text", "text": "Part one. "},
                        {"type": "output_text", "text": "Part two."},
                    ],
                },
                {"type": "function_call", "name": "f", "arguments": "{}"},
                {"type": "message", "content": [{"type": "output_text", "text": " And three."}]},
            ]
        }
    ) == ("Part one. Part two. And three.", None)
    assert answer_parts({"object": "list", "data": [{"embedding": [0.1]}]}) == (None, None)
    assert answer_parts({"choices": []}) == (None, None)


def test_refusals() -> None:
    assert answer_parts(
        {"choices": [{"message": {"content": None, "refusal": "I can't help."}}]}
    ) == (None, "I can't help.")
    assert answer_parts(
        {
            "choices": [
                {
                    "message": {
                        "content": [
                            {"type": "refusal", "refusal": "No."},
                            {"type": "text", "text": "parts"},
                        ]
                    }
                }
            ]
        }
    ) == ("parts", "No.")
    assert answer_parts(
        {"output": [{"type": "message", "content": [{"type": "refusal", "refusal": "Not this."}]}]}
    ) == (None, "Not this.")
    assert answer_parts({"choices": [{"message": {"content": "fine", "refusal": None}}]}) == (
        "fine",
        None,
    )


def test_usage_spellings() -> None:
    assert usage_of(
        {"usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}
    ) == usage_of({"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    embeddings = usage_of({"usage": {"prompt_tokens": 4, "total_tokens": 4}})
    assert embeddings is not None and embeddings.output_tokens is None
    assert embeddings.cache_read_tokens is None and embeddings.reasoning_tokens is None
    assert usage_of({}) is None


def test_usage_details_of_both_apis() -> None:
    chat_usage = usage_of(
        {
            "usage": {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
            }
        }
    )
    responses_usage = usage_of(
        {
            "usage": {
                "input_tokens": 2006,
                "output_tokens": 300,
                "total_tokens": 2306,
                "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 64},
                "output_tokens_details": {"reasoning_tokens": 256},
            }
        }
    )
    assert chat_usage is not None and responses_usage is not None
    assert chat_usage.to_dict() == {
        "input_tokens": 2006,
        "output_tokens": 300,
        "total_tokens": 2306,
        "cache_read_tokens": 1920,
        "cache_write_tokens": None,
        "reasoning_tokens": 256,
    }
    assert responses_usage.to_dict() == {**chat_usage.to_dict(), "cache_write_tokens": 64}


def test_a_refusal_is_a_success() -> None:
    body = {
        **CHAT_BODY,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                },
            }
        ],
    }
    result = result_from_line(
        {"custom_id": "r", "response": {"status_code": 200, "body": body}},
        "batch_1",
        error=result_error,
    )
    assert result is not None
    assert result.ok and result.error is None
    assert (result.text, result.refusal) == (None, "I can't help with that.")


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter", None])
def test_an_incomplete_response_is_an_error(reason: str | None) -> None:
    body = {
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": reason} if reason else None,
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Half"}]}],
        "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
    }
    result = result_from_line(
        {"custom_id": "r", "response": {"status_code": 200, "body": body}},
        "batch_1",
        error=result_error,
    )
    assert result is not None
    assert result.status is ResultStatus.ERRORED and not result.ok
    assert result.error is not None
    assert result.error.code == "response_incomplete"
    assert (reason or "no reason given") in result.error.message
    assert result.error.retryable is False
    # What was produced (and billed) is kept.
    assert result.text == "Half" and result.usage is not None and result.usage.output_tokens == 1


def test_a_finished_response_is_a_success() -> None:
    body = {
        "object": "response",
        "status": "completed",
        "incomplete_details": None,
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "All"}]}],
    }
    result = result_from_line(
        {"custom_id": "r", "response": {"status_code": 200, "body": body}}, None, error=result_error
    )
    assert result is not None and result.ok and result.text == "All"


def _failed(*errors: BatchError) -> BatchStatus:
    return BatchStatus(
        provider="openai", batch_id="batch_1", state="failed", raw_status="failed", errors=errors
    )


def _failed_results(status: BatchStatus, *ids: str) -> list[BatchResult]:
    numbered = [(number, custom_id) for number, custom_id in enumerate(ids, 1)]
    return list(failed_batch_results(numbered, status, error=result_error))


def test_failed_batch_results() -> None:
    status = _failed(BatchError(code="invalid_json_line", message="bad line", line=2))
    bystander, at_fault, last = _failed_results(status, "a", "b", "c")
    assert at_fault.error is not None and bystander.error is not None
    assert at_fault.custom_id == "b" and at_fault.status is ResultStatus.ERRORED
    assert (at_fault.error.code, at_fault.error.retryable) == ("invalid_json_line", False)
    assert at_fault.error.message == "bad line" and at_fault.batch_id == "batch_1"
    # A request that was not at fault never ran: the core's rule for it (BatchResult.missing).
    assert bystander == BatchResult.missing("a", status)
    assert last == BatchResult.missing("c", status)
    assert (bystander.error.code, bystander.error.retryable) == ("batch_failed", True)


def test_a_failed_batch_without_line_errors_gives_its_reason_to_every_request() -> None:
    queued = _failed_results(
        _failed(BatchError(code="token_limit_exceeded", message="queue full")), "c", "d"
    )
    assert [(r.custom_id, r.error.code if r.error else None) for r in queued] == [
        ("c", "token_limit_exceeded"),
        ("d", "token_limit_exceeded"),
    ]
    assert all(r.retryable for r in queued)  # the queue drains as other batches end
    [model] = _failed_results(_failed(BatchError(code="model_not_found", message="no")), "e")
    assert model.error is not None and model.error.retryable is False
