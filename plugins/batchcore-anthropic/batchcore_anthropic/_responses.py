"""Anthropic's answers as batchcore DTOs: a ``message_batch`` -> :class:`BatchStatus`, one line
of a results file -> :class:`BatchResult`. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from batchcore.models import (
    BatchResult,
    BatchState,
    BatchStatus,
    ResultError,
    ResultStatus,
    Usage,
)

__all__ = ["PROVIDER", "batch_result", "batch_state", "batch_status"]

PROVIDER = "anthropic"


def batch_state(batch: Mapping[str, Any]) -> BatchState:
    """The normalised state of a ``message_batch`` object.

    ``ended`` becomes CANCELLED when a cancel was initiated (whatever the counts: the batch was
    asked to stop), else EXPIRED when any request expired (only the 24-hour limit expires
    requests), else COMPLETED. Errored requests do not fail a batch: they are per-request
    results.
    """
    status = batch.get("processing_status")
    if status == "in_progress":
        return BatchState.IN_PROGRESS
    if status == "canceling":
        return BatchState.CANCELLING
    if status == "ended":
        if batch.get("cancel_initiated_at"):
            return BatchState.CANCELLED
        counts = batch.get("request_counts") or {}
        if counts.get("expired"):
            return BatchState.EXPIRED
        return BatchState.COMPLETED
    raise ValueError(f"unknown processing_status {status!r}")


_TIMESTAMPS = ("created_at", "expires_at", "ended_at", "cancel_initiated_at", "archived_at")


def batch_status(batch: Mapping[str, Any]) -> BatchStatus:
    """A ``message_batch`` object as a :class:`BatchStatus` (raw object kept in ``raw``).

    Counts: ``total`` is the sum of ``request_counts``, ``completed`` the succeeded requests,
    ``failed`` the errored, expired and canceled ones. Anthropic reports them only once the
    batch has ended; before that everything is ``processing``.
    """
    counts = batch.get("request_counts") or {}
    succeeded = int(counts.get("succeeded") or 0)
    failed = sum(int(counts.get(k) or 0) for k in ("errored", "expired", "canceled"))
    total = succeeded + failed + int(counts.get("processing") or 0)
    return BatchStatus(
        provider=PROVIDER,
        batch_id=str(batch["id"]),
        state=batch_state(batch),
        raw_status=str(batch.get("processing_status")),
        total=total,
        completed=succeeded,
        failed=failed,
        created_at=batch.get("created_at"),
        expires_at=batch.get("expires_at"),
        ended_at=batch.get("ended_at"),
        timestamps={k: batch[k] for k in _TIMESTAMPS if batch.get(k)},
        raw=batch,
    )


def batch_result(line: Mapping[str, Any], *, batch_id: str | None = None) -> BatchResult:
    """One line of a batch's results file (``MessageBatchIndividualResponse``).

    ``errored`` results are retryable unless their error is ``invalid_request_error`` (fix the
    request first); ``canceled`` and ``expired`` ones never ran and are retryable.
    """
    custom_id = line.get("custom_id")
    result = line.get("result")
    if not isinstance(custom_id, str) or not _is_mapping(result):
        raise ValueError("a results line needs a custom_id and a result object")
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        if not _is_mapping(message):
            raise ValueError(f"succeeded result {custom_id!r} has no message")
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.SUCCEEDED,
            response=message,
            text=_first_text(message),
            usage=_usage(message.get("usage")),
            batch_id=batch_id,
        )
    if kind == "errored":
        body = result.get("error")
        inner = body.get("error") if _is_mapping(body) else None
        inner = inner if _is_mapping(inner) else {}
        code = str(inner.get("type") or "error")
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body if _is_mapping(body) else None,
            error=ResultError(
                code=code,
                message=str(inner.get("message") or ""),
                retryable=code != "invalid_request_error",
            ),
            batch_id=batch_id,
        )
    if kind == "canceled":
        return BatchResult.unfinished(custom_id, ResultStatus.CANCELLED, batch_id=batch_id)
    if kind == "expired":
        return BatchResult.unfinished(custom_id, ResultStatus.EXPIRED, batch_id=batch_id)
    # A result type newer than this code: keep it, as a retryable error, rather than drop it.
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.ERRORED,
        response=result,
        error=ResultError(
            code=f"unknown_result_type:{kind}",
            message=f"result type {kind!r} is not known to this version of batchcore-anthropic",
            retryable=True,
        ),
        batch_id=batch_id,
    )


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # Parsed JSON is made of dicts: check that first, the abstract Mapping check is slow.
    return value.__class__ is dict or isinstance(value, Mapping)


def _first_text(message: Mapping[str, Any]) -> str | None:
    for block in message.get("content") or ():
        if _is_mapping(block) and block.get("type") == "text":
            text = block.get("text")
            return text if isinstance(text, str) else None
    return None


def _usage(usage: Any) -> Usage | None:
    if not _is_mapping(usage):
        return None
    inputs = usage.get("input_tokens")
    outputs = usage.get("output_tokens")
    if inputs.__class__ is int and outputs.__class__ is int:
        return Usage(input_tokens=inputs, output_tokens=outputs, total_tokens=inputs + outputs)
    return Usage(
        input_tokens=inputs if isinstance(inputs, int) else None,
        output_tokens=outputs if isinstance(outputs, int) else None,
    )
