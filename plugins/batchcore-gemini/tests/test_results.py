"""Gemini's answers as batchcore DTOs: results, usage, refusals, errors, states and counts."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from batchcore.plugin import BatchState, ResultStatus, Usage
from batchcore_gemini import _mapping as wire
from batchcore_gemini.provider import GeminiBatchProvider

PROVIDER = GeminiBatchProvider(config={"api_key": "unused-key-0000"})


def result(entry: dict[str, Any]) -> Any:
    return wire.batch_result(entry, result_error=PROVIDER.result_error, batch_id="batches/b1")


def answer(*parts: dict[str, Any], **candidate: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, **candidate}]}


# -- results -----------------------------------------------------------------------------------


def test_text_is_every_text_part_of_the_first_candidate_without_thoughts() -> None:
    response = answer(
        {"text": "Let me think.", "thought": True, "thoughtSignature": "c2ln"},
        {"text": "Hello"},
        {"functionCall": {"name": "f", "args": {}}},
        {"text": ", world"},
        finishReason="STOP",
    )
    response["candidates"].append({"content": {"parts": [{"text": "another candidate"}]}})
    got = result({"key": "a", "response": response})
    assert got.status is ResultStatus.SUCCEEDED
    assert got.text == "Hello, world"
    assert got.refusal is None
    assert got.response == response
    assert got.batch_id == "batches/b1"


def test_inline_responses_are_keyed_by_their_metadata() -> None:
    got = result({"metadata": {"key": "inline-1"}, "response": answer({"text": "x"})})
    assert got.custom_id == "inline-1"


def test_an_answer_without_text_has_no_text() -> None:
    got = result({"key": "a", "response": answer({"functionCall": {"name": "f", "args": {}}})})
    assert got.ok and got.text is None


def test_usage_in_batchcore_terms() -> None:
    response = answer({"text": "x"})
    response["usageMetadata"] = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 1280,
    }
    assert result({"key": "a", "response": response}).usage == Usage(
        input_tokens=1200,
        cache_read_tokens=1000,
        output_tokens=80,
        reasoning_tokens=30,
        total_tokens=1280,
    )


def test_usage_counts_written_as_strings_and_a_missing_total() -> None:
    response = answer({"text": "x"})
    response["usageMetadata"] = {"promptTokenCount": "12", "candidatesTokenCount": "3"}
    assert result({"key": "a", "response": response}).usage == Usage(
        input_tokens=12, output_tokens=3, total_tokens=15
    )
    assert result({"key": "b", "response": answer({"text": "x"})}).usage is None


@pytest.mark.parametrize(
    "reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII", "BLOCKLIST", "LANGUAGE"]
)
def test_a_withheld_answer_succeeds_with_a_refusal(reason: str) -> None:
    response = answer(
        {"text": "Partial"},
        finishReason=reason,
        finishMessage="Stopped by policy",
        safetyRatings=[
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
        ],
    )
    got = result({"key": "a", "response": response})
    assert got.status is ResultStatus.SUCCEEDED and got.error is None
    assert got.refusal == (
        f"Gemini withheld the answer (finishReason {reason}); blocked categories: "
        "HARM_CATEGORY_HARASSMENT: Stopped by policy."
    )
    assert got.text == "Partial"


def test_a_blocked_prompt_succeeds_with_a_refusal_and_no_text() -> None:
    response = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    got = result({"key": "a", "response": response})
    assert got.ok
    assert got.refusal == "Gemini blocked the prompt (PROHIBITED_CONTENT)."
    assert got.text is None
    assert got.usage == Usage(input_tokens=9, total_tokens=9)


@pytest.mark.parametrize("reason", ["STOP", "MAX_TOKENS", "MALFORMED_FUNCTION_CALL", "OTHER"])
def test_other_finish_reasons_are_no_refusal(reason: str) -> None:
    assert (
        result({"key": "a", "response": answer({"text": "x"}, finishReason=reason)}).refusal is None
    )


@pytest.mark.parametrize(
    ("error", "code", "status_code", "retryable"),
    [
        ({"code": 8, "message": "quota"}, "resource_exhausted", 429, True),
        ({"code": 14, "message": "down"}, "unavailable", 503, True),
        ({"code": 13, "message": "oops"}, "internal", 500, True),
        ({"code": 4, "message": "slow"}, "deadline_exceeded", 504, True),
        ({"code": 3, "message": "bad"}, "invalid_argument", 400, False),
        ({"code": 7, "message": "no"}, "permission_denied", 403, False),
        ({"code": 5, "message": "gone"}, "not_found", 404, False),
        ({"code": 9, "message": "state"}, "failed_precondition", 400, False),
        # Google's HTTP-style error objects too.
        (
            {"code": 429, "message": "q", "status": "RESOURCE_EXHAUSTED"},
            "resource_exhausted",
            429,
            True,
        ),
        ({"code": 400, "message": "bad"}, "invalid_argument", 400, False),
        ({"code": "14", "message": "int64 as a string"}, "unavailable", 503, True),
    ],
)
def test_errors_by_their_google_rpc_code(
    error: dict[str, Any], code: str, status_code: int, retryable: bool
) -> None:
    got = result({"key": "a", "error": error})
    assert got.status is ResultStatus.ERRORED
    assert got.error is not None
    assert (got.error.code, got.error.status_code, got.error.retryable) == (
        code,
        status_code,
        retryable,
    )
    assert got.error.message == error["message"]
    assert got.response == error


def test_an_error_without_a_code_is_not_retried() -> None:
    got = result({"key": "a", "error": {"message": "something"}})
    assert got.error is not None and not got.error.retryable


def test_a_cancelled_request_never_ran() -> None:
    got = result({"key": "a", "error": {"code": 1, "message": "cancelled"}})
    assert got.status is ResultStatus.CANCELLED and got.retryable


@pytest.mark.parametrize(
    "entry", [{"response": answer({"text": "x"})}, {"key": "a"}, "not an object", {"key": 3}]
)
def test_an_entry_that_cannot_be_joined_or_read_raises(entry: Any) -> None:
    with pytest.raises(ValueError, match=r"key|neither"):
        result(entry)


# -- states and counts -------------------------------------------------------------------------


def operation(state: str, **metadata: Any) -> dict[str, Any]:
    return {"name": "batches/b1", "metadata": {"state": state, **metadata}}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("BATCH_STATE_PENDING", BatchState.VALIDATING),
        ("BATCH_STATE_RUNNING", BatchState.IN_PROGRESS),
        ("BATCH_STATE_SUCCEEDED", BatchState.COMPLETED),
        ("BATCH_STATE_FAILED", BatchState.FAILED),
        ("BATCH_STATE_CANCELLED", BatchState.CANCELLED),
        ("BATCH_STATE_EXPIRED", BatchState.EXPIRED),
        ("JOB_STATE_PENDING", BatchState.VALIDATING),
        ("JOB_STATE_QUEUED", BatchState.VALIDATING),
        ("JOB_STATE_RUNNING", BatchState.IN_PROGRESS),
        ("JOB_STATE_SUCCEEDED", BatchState.COMPLETED),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", BatchState.COMPLETED),
        ("JOB_STATE_FAILED", BatchState.FAILED),
        ("JOB_STATE_CANCELLING", BatchState.CANCELLING),
        ("JOB_STATE_CANCELLED", BatchState.CANCELLED),
        ("JOB_STATE_EXPIRED", BatchState.EXPIRED),
    ],
)
def test_both_spellings_of_every_state(state: str, expected: BatchState) -> None:
    status = wire.batch_status(operation(state))
    assert status.state is expected
    assert status.raw_status == state


@pytest.mark.parametrize("state", ["BATCH_STATE_UNSPECIFIED", "BATCH_STATE_REVIEWING", None])
def test_an_unknown_state_warns_and_keeps_polling(
    state: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "batchcore_gemini")
    status = wire.batch_status({"name": "batches/b1", "metadata": {"state": state}})
    assert status.state is BatchState.IN_PROGRESS
    assert not status.is_terminal
    assert "unknown to this version" in caplog.text


def test_counts_timestamps_and_errors_of_a_batch() -> None:
    status = wire.batch_status(
        {
            "name": "batches/b1",
            "metadata": {
                "state": "BATCH_STATE_FAILED",
                "createTime": "2026-01-01T00:00:00.123456789Z",
                "updateTime": "2026-01-01T01:00:00Z",
                "endTime": "2026-01-01T01:00:00Z",
                "batchStats": {
                    "requestCount": "10",
                    "successfulRequestCount": "7",
                    "failedRequestCount": "2",
                    "pendingRequestCount": "1",
                },
            },
            "done": True,
            "error": {"code": 3, "message": "The input file is not valid JSONL."},
        }
    )
    assert (status.total, status.completed, status.failed, status.pending) == (10, 7, 2, 1)
    created = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)
    assert status.created_at == created
    assert status.expires_at == created + wire.EXPIRY
    assert status.ended_at == datetime(2026, 1, 1, 1, tzinfo=timezone.utc)
    assert set(status.timestamps) == {"createTime", "updateTime", "endTime"}
    [error] = status.errors
    assert (error.code, error.message) == ("INVALID_ARGUMENT", "The input file is not valid JSONL.")
    assert status.raw is not None and status.raw["done"] is True


def test_a_batch_without_stats_has_no_counts() -> None:
    status = wire.batch_status(operation("BATCH_STATE_PENDING"))
    assert (status.total, status.completed, status.failed) == (None, None, None)


def test_inline_output_and_input_keys() -> None:
    op = {
        "name": "batches/b1",
        "metadata": {
            "state": "BATCH_STATE_SUCCEEDED",
            "inputConfig": {
                "requests": {
                    "requests": [
                        {"request": {}, "metadata": {"key": "a"}},
                        {"request": {}, "metadata": {"key": "b"}},
                        {"request": {}},
                    ]
                }
            },
            "output": {"inlinedResponses": {"inlinedResponses": [{"metadata": {"key": "a"}}]}},
        },
    }
    assert wire.inlined_responses(op) == [{"metadata": {"key": "a"}}]
    assert wire.responses_file(op) is None
    keys = wire.inline_request_keys(op)
    assert keys is not None and list(keys) == ["a", "b"]


def test_file_output_from_the_metadata_or_the_response() -> None:
    from_metadata = {"metadata": {"output": {"responsesFile": "files/r1"}}}
    from_response = {"metadata": {}, "response": {"responsesFile": "files/r2"}}
    assert wire.responses_file(from_metadata) == "files/r1"
    assert wire.responses_file(from_response) == "files/r2"
    assert wire.inlined_responses(from_metadata) is None
    assert wire.inline_request_keys({"metadata": {"inputConfig": {"fileName": "f"}}}) is None


def test_rpc_codes_and_http_statuses_agree() -> None:
    for code, name in wire.RPC_CODES.items():
        assert wire.rpc_status({"code": code}) == name
        assert name in wire.RPC_HTTP_STATUS
