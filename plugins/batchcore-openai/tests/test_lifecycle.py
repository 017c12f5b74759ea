"""poll_status and cancel through the SDK: every status, counts, timestamps, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from openai_support import API_KEY, chat

from batchcore.errors import NotFoundError
from batchcore.models import BatchHandle, BatchPayload, BatchState
from batchcore.testing import ManualClock
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

T0 = 1_767_225_600


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=timezone.utc)


def _submit(provider: OpenAIBatchProvider, count: int = 10) -> BatchHandle:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(count)])
    return provider.submit(payload)


def test_a_batch_walks_through_its_lifecycle(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    handle = _submit(provider)
    status = provider.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.VALIDATING, "validating")
    assert status.created_at == _at(0) and status.expires_at == _at(86_400)
    assert status.ended_at is None

    emulator.advance(60 + 300)  # validation done, half the processing time gone
    status = provider.poll_status(handle)
    assert status.state is BatchState.IN_PROGRESS
    assert (status.total, status.completed, status.failed) == (10, 5, 0)
    assert status.pending == 5
    assert status.timestamps["in_progress_at"] == _at(60)

    emulator.advance(300)
    status = provider.poll_status(handle)
    assert status.state is BatchState.FINALIZING
    assert status.completed == 10
    assert status.timestamps["finalizing_at"] == _at(660)

    emulator.advance(60)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED and status.is_terminal
    assert status.ended_at == status.timestamps["completed_at"] == _at(720)
    assert status.errors == ()
    assert status.raw is not None and status.raw["output_file_id"]


def test_failed_validation_reports_line_numbers(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, tmp_path: Path
) -> None:
    path = tmp_path / "hand-written.jsonl"
    good = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    }
    path.write_bytes(
        b"\n".join(
            [
                json.dumps(good).encode(),
                b'{"custom_id": "b", "method": "POST", ',
                json.dumps({**good, "custom_id": "c", "url": "/v1/embeddings"}).encode(),
            ]
        )
        + b"\n"
    )
    payload = BatchPayload(
        provider="openai",
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        request_count=3,
        size_bytes=path.stat().st_size,
        path=path,
    )
    handle = provider.submit(payload)
    emulator.advance(60)
    status = provider.poll_status(handle)
    assert status.state is BatchState.FAILED
    assert status.ended_at == status.timestamps["failed_at"]
    assert [(e.code, e.line) for e in status.errors] == [
        ("invalid_json_line", 2),
        ("url_mismatch", 3),
    ]
    assert all(e.message for e in status.errors)


def test_expired_batch(clock: ManualClock) -> None:
    with OpenAIEmulator(clock=clock, processing_seconds=2 * 86_400) as slow:
        provider = OpenAIBatchProvider(config={"base_url": slow.url + "/v1", "api_key": API_KEY})
        handle = _submit(provider)
        slow.advance(86_399)
        assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
        slow.advance(1)
        status = provider.poll_status(handle)
        provider.close()
    assert (status.state, status.raw_status) == (BatchState.EXPIRED, "expired")
    assert status.ended_at == status.timestamps["expired_at"] == _at(86_400)
    assert (status.total, status.completed, status.failed) == (10, 4, 6)


def test_cancel_goes_through_cancelling(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    handle = _submit(provider)
    emulator.advance(60 + 300)
    status = provider.cancel(handle)
    assert (status.state, status.raw_status) == (BatchState.CANCELLING, "cancelling")
    assert status.timestamps["cancelling_at"] == _at(360)
    assert provider.poll_status(handle).state is BatchState.CANCELLING
    assert provider.cancel(handle).state is BatchState.CANCELLING  # asking twice is harmless
    emulator.advance(60)
    status = provider.poll_status(handle)
    assert status.state is BatchState.CANCELLED
    assert status.ended_at == _at(420)
    assert (status.completed, status.failed) == (5, 0)  # the work done before the cancel


def test_cancelling_an_ended_batch_returns_its_status(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    handle = _submit(provider, count=2)
    emulator.advance(3600)
    assert provider.cancel(handle).state is BatchState.COMPLETED
    assert emulator.server.count("POST", "/v1/batches/{batch_id}/cancel") == 1


def test_unknown_batch(provider: OpenAIBatchProvider) -> None:
    handle = BatchHandle(provider="openai", batch_id="batch_missing", created_at=_at(0))
    with pytest.raises(NotFoundError) as caught:
        provider.poll_status(handle)
    assert caught.value.status_code == 404
    assert caught.value.provider == "openai"


# -- Azure --------------------------------------------------------------------------------------


@pytest.fixture(params=["v1", "legacy"])
def azure(
    request: pytest.FixtureRequest, make_azure_provider: Callable[..., AzureOpenAIBatchProvider]
) -> AzureOpenAIBatchProvider:
    config = {"api_version": "2024-10-21"} if request.param == "legacy" else {}
    return make_azure_provider(**config)


def test_azure_lifecycle_with_its_quirks(
    azure_emulator: OpenAIEmulator, azure: AzureOpenAIBatchProvider
) -> None:
    [payload] = azure.prepare_payloads([chat(f"r{i}", model="batch-gpt4o") for i in range(4)])
    handle = azure.submit(payload)
    assert handle.provider == "azure-openai"
    assert handle.created_at == _at(0)  # read from an ISO-8601 string

    raw = azure_emulator.batch(handle.batch_id)
    assert raw["status"] == "Validating" and raw["request_counts"] is None
    assert raw["created_at"] == "2026-01-01T00:00:00Z"
    status = azure.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.VALIDATING, "Validating")
    assert status.total is None and status.pending is None
    assert status.created_at == _at(0)

    azure_emulator.advance(360)
    status = azure.poll_status(handle)
    assert (status.state, status.raw_status) == (BatchState.IN_PROGRESS, "InProgress")
    assert (status.total, status.completed) == (4, 2)

    azure_emulator.advance(3600)
    status = azure.poll_status(handle)
    assert status.state is BatchState.COMPLETED
    assert status.ended_at == _at(720)
    assert status.raw is not None and status.raw["error_file_id"]  # an empty error file


def test_azure_never_expires(clock: ManualClock) -> None:
    with OpenAIEmulator(clock=clock, azure=True, processing_seconds=3 * 86_400) as slow:
        provider = AzureOpenAIBatchProvider(
            config={"azure_endpoint": slow.url, "api_key": API_KEY, "deployments": ["d"]}
        )
        [payload] = provider.prepare_payloads([chat("a", model="d")])
        handle = provider.submit(payload)
        slow.advance(2 * 86_400)
        assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
        slow.advance(86_400 + 120)
        assert provider.poll_status(handle).state is BatchState.COMPLETED
        provider.close()


def test_azure_unknown_deployment_fails_the_batch(
    azure_emulator: OpenAIEmulator, make_azure_provider: Callable[..., AzureOpenAIBatchProvider]
) -> None:
    provider = make_azure_provider(deployments=["not-deployed"])
    [payload] = provider.prepare_payloads([chat("a", model="not-deployed")])
    handle = provider.submit(payload)
    azure_emulator.advance(60)
    status = provider.poll_status(handle)
    assert status.state is BatchState.FAILED
    assert [e.code for e in status.errors] == ["model_not_found"]


def test_azure_requests_use_the_azure_routes(
    azure_emulator: OpenAIEmulator, azure: AzureOpenAIBatchProvider
) -> None:
    [payload] = azure.prepare_payloads([chat("a", model="batch-gpt4o")])
    azure.submit(payload)
    prefix = "/openai/files" if azure.api_version else "/openai/v1/files"
    assert [call.path for call in azure_emulator.server.calls][:1] == [prefix]
