"""From Together's answers to batchcore's DTOs: batch jobs (wrapped or bare) to statuses, output
and error file lines to results, usage and text."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from batchcore import BatchResult, BatchState, ResultError, ResultStatus
from batchcore.plugin import (
    openai_answer_parts,
    openai_usage,
    result_error,
    result_from_openai_line,
)
from batchcore_together._mapping import RESULT_LINES, batch_status, finished_estimate, unwrap_job

JOB = {
    "id": "01234567-8901-2345-6789-012345678901",
    "user_id": "user_1",
    "input_file_id": "file-in",
    "file_size_bytes": 1024,
    "status": "IN_PROGRESS",
    "job_deadline": "2026-01-02T00:00:00Z",
    "created_at": "2026-01-01T00:00:00Z",
    "endpoint": "/v1/chat/completions",
    "progress": 75,
    "model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
}


def error(
    *, code: str | None, message: str | None = None, status_code: int | None = None
) -> ResultError:
    return result_error(code=code, message=message, status_code=status_code)


def result_from_line(line: Any, batch_id: str | None, *, error: Any) -> BatchResult | None:
    """A Together output or error line, read by the core with Together's dialect."""
    return result_from_openai_line(line, batch_id, error=error, dialect=RESULT_LINES)


def answer(content: Any = "Hello!", **extra: Any) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        **extra,
    }


# -- batch jobs -----------------------------------------------------------------------------------


def test_the_create_answer_is_unwrapped_with_its_warning() -> None:
    assert unwrap_job({"job": JOB, "warning": "model_id is ignored"}) == (
        JOB,
        "model_id is ignored",
    )
    assert unwrap_job({"job": JOB}) == (JOB, None)
    assert unwrap_job(JOB) == (JOB, None)  # retrieve, list items, cancel: bare
    assert unwrap_job({"job": None, "warning": "not created"}) == (None, "not created")
    assert unwrap_job(["not", "a", "job"]) == (None, None)


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("VALIDATING", BatchState.VALIDATING),
        ("IN_PROGRESS", BatchState.IN_PROGRESS),
        ("COMPLETED", BatchState.COMPLETED),
        ("FAILED", BatchState.FAILED),
        ("EXPIRED", BatchState.EXPIRED),
        ("CANCELLED", BatchState.CANCELLED),
        ("completed", BatchState.COMPLETED),
    ],
)
def test_status_words(word: str, state: BatchState) -> None:
    status = batch_status({**JOB, "status": word}, total=4)
    assert status.state is state
    assert status.raw_status == word
    assert status.total == 4
    # Together reports a percentage, no counts: finished requests are estimated from it.
    assert status.completed == 3 and status.failed is None
    assert status.raw is not None and status.raw["progress"] == 75


@pytest.mark.parametrize(
    ("progress", "total", "finished"),
    [
        (75, 4, 3),
        (100, 3, 3),
        (0, 3, 0),
        (66.67, 3, 2),
        (33.33, 3, 0),  # a percentage rounded down never counts a request that did not finish
        (99.9, 1000, 999),
        (150, 2, 2),
        (-5, 2, 0),
        (None, 4, None),
        ("75", 4, None),
        (True, 4, None),
        (50, None, None),
    ],
)
def test_finished_requests_are_estimated_from_the_percentage(
    progress: Any, total: int | None, finished: int | None
) -> None:
    assert finished_estimate(progress, total) == finished
    status = batch_status({**JOB, "progress": progress}, total=total)
    assert status.completed == finished


def test_an_unknown_status_keeps_polling_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="batchcore_together"):
        status = batch_status({**JOB, "status": "QUEUED"}, total=2)
    assert status.state is BatchState.IN_PROGRESS
    assert not status.is_terminal
    assert status.raw_status == "QUEUED"
    assert "QUEUED" in caplog.text


def test_timestamps_and_the_error_of_a_failed_batch() -> None:
    failed = {
        **JOB,
        "status": "FAILED",
        "error": "line 3: invalid JSON",
        "completed_at": "2026-01-01T00:05:00Z",
    }
    status = batch_status(failed, total=3)
    assert (
        status.created_at is not None
        and status.created_at.isoformat() == "2026-01-01T00:00:00+00:00"
    )
    assert status.expires_at is not None and status.expires_at.day == 2
    assert status.ended_at is not None and status.ended_at.minute == 5
    assert [e.message for e in status.errors] == ["line 3: invalid JSON"]
    assert status.errors[0].line is None
    running = batch_status({**JOB, "completed_at": None, "output_file_id": None}, total=3)
    assert running.ended_at is None


# -- result lines ---------------------------------------------------------------------------------


def test_an_output_line_is_a_success_with_text_and_usage() -> None:
    line = {"custom_id": "a", "response": {"status_code": 200, "body": answer()}}
    result = result_from_line(line, "b1", error=error)
    assert result is not None
    assert result.status is ResultStatus.SUCCEEDED
    assert result.text == "Hello!"
    assert result.batch_id == "b1"
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (
        12,
        3,
        15,
    )
    assert result.response is not None and result.response["id"] == "cmpl-1"


def test_text_is_every_text_part_and_reasoning_stays_out() -> None:
    parts = [{"type": "text", "text": "Hel"}, {"type": "image_url"}, {"type": "text", "text": "lo"}]
    assert openai_answer_parts(answer(parts)) == ("Hello", None)
    body = answer("Answer.")
    body["choices"][0]["message"]["reasoning"] = "Let me think..."
    assert openai_answer_parts(body) == ("Answer.", None)
    assert openai_answer_parts(answer(None)) == (None, None)
    assert openai_answer_parts({"choices": []}) == (None, None)


def test_a_refusal_is_kept() -> None:
    body = answer(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    assert openai_answer_parts(body) == (None, "I can't help with that.")


@pytest.mark.parametrize(
    ("usage", "cached", "reasoning"),
    [
        (
            {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cached_tokens": 4},
            4,
            None,
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 6,
                "total_tokens": 16,
                "prompt_tokens_details": {"cached_tokens": 8},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
            8,
            5,
        ),
        ({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}, None, None),
    ],
)
def test_usage(usage: dict[str, Any], cached: int | None, reasoning: int | None) -> None:
    found = openai_usage({"usage": usage})
    assert found is not None
    assert found.input_tokens == 10
    assert found.cache_read_tokens == cached
    assert found.reasoning_tokens == reasoning
    assert found.cache_write_tokens is None
    assert openai_usage({"usage": None}) is None


def test_an_error_line_is_a_failure_with_its_code() -> None:
    line = {
        "custom_id": "e",
        "error": {"message": "Invalid model specified", "code": "invalid_model"},
    }
    result = result_from_line(line, "b1", error=error)
    assert result is not None
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None
    assert (result.error.code, result.error.message) == ("invalid_model", "Invalid model specified")
    assert not result.retryable  # an unknown code with no status: resubmitting blindly costs money
    assert result.response == {"error": line["error"]}


def test_a_timeout_is_worth_retrying() -> None:
    line = {"custom_id": "t", "error": {"message": "Request timeout", "code": "timeout"}}
    result = result_from_line(line, None, error=error)
    assert result is not None and result.retryable


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("batch_expired", ResultStatus.EXPIRED),
        ("expired", ResultStatus.EXPIRED),
        ("batch_cancelled", ResultStatus.CANCELLED),
        ("canceled", ResultStatus.CANCELLED),
    ],
)
def test_unfinished_requests_in_the_error_file(code: str, status: ResultStatus) -> None:
    result = result_from_line({"custom_id": "u", "error": {"code": code}}, "b", error=error)
    assert result is not None
    assert result.status is status
    assert result.retryable


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (400, False)])
def test_a_failed_response_carries_its_status(status: int, retryable: bool) -> None:
    body = {"error": {"message": "nope"}}  # no code: the status decides
    line = {"custom_id": "s", "response": {"status_code": status, "body": body}}
    result = result_from_line(line, "b", error=error)
    assert result is not None
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None
    assert result.error.status_code == status
    assert result.retryable is retryable
    assert result.error.message == "nope"


def test_an_error_given_as_a_string() -> None:
    result = result_from_line({"custom_id": "x", "error": "boom"}, "b", error=error)
    assert result is not None and result.error is not None
    assert result.error.message == "boom"


def test_a_line_without_a_custom_id_is_none() -> None:
    assert (
        result_from_line({"response": {"status_code": 200, "body": answer()}}, "b", error=error)
        is None
    )
    assert result_from_line({"custom_id": "", "error": {}}, "b", error=error) is None
