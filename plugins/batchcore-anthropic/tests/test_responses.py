"""Anthropic's answers as DTOs: ``message_batch`` objects as statuses, results lines as results.
Every sample is validated against the spec's schema first, so it is a shape the API can send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from batchcore import ResultStatus
from batchcore.models import BatchState
from batchcore_anthropic._responses import batch_result, batch_status

MODEL = "claude-sonnet-4-5"


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


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        pytest.param(
            {
                "processing_status": "in_progress",
                "ended_at": None,
                "results_url": None,
                "request_counts": {
                    "processing": 8,
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
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
                "request_counts": {
                    "processing": 8,
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
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
def test_batch_state(
    changes: dict[str, Any], state: BatchState, spec: Callable[[str, Any], None]
) -> None:
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


def test_unknown_processing_status_is_an_error() -> None:
    with pytest.raises(ValueError, match="processing_status"):
        batch_status(_batch(processing_status="paused"))


def _message(text: str = "Hi there") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": text, "citations": None},
        ],
        "model": MODEL,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "stop_details": None,
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
        },
        "container": None,
    }


def test_succeeded_result(spec: Callable[[str, Any], None]) -> None:
    line: dict[str, Any] = {
        "custom_id": "a",
        "result": {"type": "succeeded", "message": _message()},
    }
    spec("MessageBatchIndividualResponse", line)
    result = batch_result(orjson.loads(orjson.dumps(line)), batch_id="msgbatch_01")
    assert result.ok and result.status is ResultStatus.SUCCEEDED
    assert result.text == "Hi there"  # the first *text* block, after thinking
    assert result.usage is not None
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 5, 16)
    assert result.response == line["result"]["message"]
    assert result.batch_id == "msgbatch_01"


@pytest.mark.parametrize(
    ("error_type", "retryable"),
    [
        ("invalid_request_error", False),
        ("overloaded_error", True),
        ("api_error", True),
        ("rate_limit_error", True),
    ],
)
def test_errored_result(error_type: str, retryable: bool, spec: Callable[[str, Any], None]) -> None:
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
    spec("MessageBatchIndividualResponse", line)
    result = batch_result(line)
    assert result.status is ResultStatus.ERRORED
    assert result.error is not None
    assert (result.error.code, result.error.message, result.error.retryable) == (
        error_type,
        "boom",
        retryable,
    )
    assert result.response == line["result"]["error"]


@pytest.mark.parametrize(
    ("kind", "status"), [("canceled", ResultStatus.CANCELLED), ("expired", ResultStatus.EXPIRED)]
)
def test_unfinished_results(
    kind: str, status: ResultStatus, spec: Callable[[str, Any], None]
) -> None:
    line = {"custom_id": "c", "result": {"type": kind}}
    spec("MessageBatchIndividualResponse", line)
    result = batch_result(line, batch_id="msgbatch_01")
    assert result.status is status
    assert result.retryable
    assert result.text is None


def test_unknown_result_type_is_kept_as_a_retryable_error() -> None:
    result = batch_result({"custom_id": "d", "result": {"type": "deferred"}})
    assert result.status is ResultStatus.ERRORED
    assert result.retryable
    assert result.error is not None and "deferred" in result.error.code
