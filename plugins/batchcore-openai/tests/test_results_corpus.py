"""Result lines as OpenAI writes them for what the emulator does not produce (cached and
reasoning tokens, several text parts, refusals, incomplete responses), read the way
fetch_results reads them. Every chat body is checked against the official schema and every
Responses body against the SDK's own model, so the corpus stays what the API sends."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response as ResponsesResponse
from openai_support import schema_errors

from batchcore.models import BatchResult, ResultStatus, Usage
from batchcore_openai._mapping import result_from_line
from batchcore_openai.provider import OpenAIBatchProvider


def _chat(message: dict[str, Any], usage: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "o3-mini-2025-01-31",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "logprobs": None,
                "message": {"role": "assistant", "annotations": [], **message},
            }
        ],
        "usage": usage,
    }


def _response(
    output: list[dict[str, Any]],
    usage: dict[str, Any],
    status: str = "completed",
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_767_225_600,
        "status": status,
        "model": "o3-2025-04-16",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "instructions": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "usage": usage,
    }


def _message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": list(parts),
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


CHAT_USAGE = {
    "prompt_tokens": 2048,
    "completion_tokens": 600,
    "total_tokens": 2648,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 512,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
RESPONSES_USAGE = {
    "input_tokens": 2048,
    "output_tokens": 600,
    "total_tokens": 2648,
    "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 128},
    "output_tokens_details": {"reasoning_tokens": 512},
}
REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [{"type": "summary_text", "text": "Thinking about primes."}],
}

#: custom_id -> (response body, schema check, expected status, text, refusal, error code).
CORPUS: dict[str, tuple[dict[str, Any], str, ResultStatus, str | None, str | None, str | None]] = {
    "chat-cached-reasoning": (
        _chat({"content": "Seven.", "refusal": None}, CHAT_USAGE),
        "chat",
        ResultStatus.SUCCEEDED,
        "Seven.",
        None,
        None,
    ),
    "chat-refusal": (
        _chat({"content": None, "refusal": "I can't help with that."}, CHAT_USAGE),
        "chat",
        ResultStatus.SUCCEEDED,
        None,
        "I can't help with that.",
        None,
    ),
    "chat-truncated": (
        _chat({"content": "Seven is", "refusal": None}, CHAT_USAGE, finish="length"),
        "chat",
        ResultStatus.SUCCEEDED,
        "Seven is",
        None,
        None,
    ),
    # OpenAI-compatible services answer with content parts; the spec's string is one part.
    "chat-content-parts": (
        _chat(
            {
                "content": [{"type": "text", "text": "Seven "}, {"type": "text", "text": "is."}],
                "refusal": None,
            },
            CHAT_USAGE,
        ),
        "none",
        ResultStatus.SUCCEEDED,
        "Seven is.",
        None,
        None,
    ),
    "responses-parts": (
        _response(
            [
                REASONING,
                _message(_text("Seven"), _text(" is prime.")),
                _message(_text(" So is eleven.")),
            ],
            RESPONSES_USAGE,
        ),
        "responses",
        ResultStatus.SUCCEEDED,
        "Seven is prime. So is eleven.",
        None,
        None,
    ),
    "responses-refusal": (
        _response([_message({"type": "refusal", "refusal": "Not this one."})], RESPONSES_USAGE),
        "responses",
        ResultStatus.SUCCEEDED,
        None,
        "Not this one.",
        None,
    ),
    "responses-incomplete": (
        _response(
            [REASONING, _message(_text("Seven is"))],
            RESPONSES_USAGE,
            status="incomplete",
            reason="max_output_tokens",
        ),
        "responses",
        ResultStatus.ERRORED,
        "Seven is",
        None,
        "response_incomplete",
    ),
}


@pytest.fixture(scope="module")
def results() -> dict[str, BatchResult]:
    rule = OpenAIBatchProvider().result_error
    out = {}
    for custom_id, (body, *_) in CORPUS.items():
        line = {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "error": None,
            "response": {"status_code": 200, "request_id": "req_1", "body": body},
        }
        result = result_from_line(line, "batch_1", error=rule)
        assert result is not None
        out[custom_id] = result
    return out


@pytest.mark.parametrize("custom_id", sorted(CORPUS))
def test_the_corpus_is_what_the_api_sends(custom_id: str) -> None:
    body, check, *_ = CORPUS[custom_id]
    if check == "chat":
        assert schema_errors("CreateChatCompletionResponse", body) == []
    elif check == "responses":
        ResponsesResponse.model_validate(body)


@pytest.mark.parametrize("custom_id", sorted(CORPUS))
def test_text_refusal_and_status(results: dict[str, BatchResult], custom_id: str) -> None:
    body, _, status, text, refusal, code = CORPUS[custom_id]
    result = results[custom_id]
    assert (result.status, result.text, result.refusal) == (status, text, refusal)
    assert (result.error.code if result.error else None) == code
    assert result.response == body and result.batch_id == "batch_1"


@pytest.mark.parametrize("custom_id", sorted(CORPUS))
def test_usage_counts_cache_and_reasoning(results: dict[str, BatchResult], custom_id: str) -> None:
    usage = results[custom_id].usage
    responses = custom_id.startswith("responses")
    assert usage == Usage(
        input_tokens=2048,
        output_tokens=600,
        total_tokens=2648,
        cache_read_tokens=1920,
        reasoning_tokens=512,
        cache_write_tokens=128 if responses else None,
    )


def test_an_incomplete_response_is_not_retried(results: dict[str, BatchResult]) -> None:
    result = results["responses-incomplete"]
    assert result.error is not None
    assert "max_output_tokens" in result.error.message
    assert not result.retryable


def test_results_survive_json(results: dict[str, BatchResult]) -> None:
    for result in results.values():
        assert BatchResult.from_dict(result.to_dict()) == result
