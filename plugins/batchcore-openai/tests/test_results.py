"""fetch_results through the SDK: output and error files, partial batches, streaming."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from openai import OpenAI
from openai.types.responses import Response as ResponsesResponse
from openai_support import API_KEY, FINISHED, chat, schema_errors

from batchcore.errors import ResultsNotReadyError
from batchcore.models import BatchHandle, BatchPayload, BatchRequest, BatchResult, ResultStatus
from batchcore.testing import Fault, ManualClock
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import FAIL_MARKER, OpenAIEmulator

CONTENT = "/v1/files/{file_id}/content"


def _run(
    provider: OpenAIBatchProvider,
    emulator: OpenAIEmulator,
    requests: list[BatchRequest],
    wait: float = FINISHED,
) -> BatchHandle:
    [payload] = provider.prepare_payloads(requests)
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(wait)
    return handle


def _by_id(results: list[BatchResult]) -> dict[str, BatchResult]:
    ids = [r.custom_id for r in results]
    assert len(ids) == len(set(ids)), "a custom_id came back twice"
    return {r.custom_id: r for r in results}


def test_results_of_a_completed_batch(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat(f"r{i}", f"number {i} please", max_tokens=8) for i in range(30)]
    handle = _run(provider, emulator, requests)
    results = list(provider.fetch_results(handle))
    order = [r.custom_id for r in results]
    assert sorted(order) == sorted(r.custom_id for r in requests)
    assert order != [r.custom_id for r in requests]  # the output file is not in input order
    for result in results:
        assert result.ok and result.status is ResultStatus.SUCCEEDED
        assert result.batch_id == handle.batch_id
        number = result.custom_id[1:]
        assert result.text == f"Echo: number {number} please"
        assert result.usage is not None and result.usage.output_tokens == 4
        assert result.response is not None
        assert schema_errors("CreateChatCompletionResponse", dict(result.response)) == []
    # Nothing was left to account for: the input file was not downloaded.
    assert emulator.server.count("GET", CONTENT) == 1


def test_error_lines_are_results(emulator: OpenAIEmulator, provider: OpenAIBatchProvider) -> None:
    requests = [
        chat("ok"),
        chat("bad-request", f"{FAIL_MARKER.format(400)} no"),
        chat("throttled", f"{FAIL_MARKER.format(429)} later"),
        chat("server", f"{FAIL_MARKER.format(500)} oops"),
        chat("policy", f"{FAIL_MARKER.format('content_policy_violation')}"),
    ]
    results = _by_id(list(provider.fetch_results(_run(provider, emulator, requests))))
    assert results["ok"].ok
    expected = {
        "bad-request": (ResultStatus.ERRORED, "invalid_request", 400, False),
        "throttled": (ResultStatus.ERRORED, "rate_limit_exceeded", 429, True),
        "server": (ResultStatus.ERRORED, "server_error", 500, True),
        "policy": (ResultStatus.ERRORED, "content_policy_violation", None, False),
    }
    for custom_id, (status, code, http, retryable) in expected.items():
        result = results[custom_id]
        assert result.status is status and not result.ok
        assert result.error is not None
        assert (result.error.code, result.error.status_code, result.error.retryable) == (
            code,
            http,
            retryable,
        ), custom_id
        assert result.error.message
    assert results["bad-request"].response == {
        "error": {
            "message": "Emulated failure: HTTP 400.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    }
    assert emulator.server.count("GET", CONTENT) == 2  # output and error files


def test_expired_batch_returns_finished_results_and_expired_rest(clock: ManualClock) -> None:
    with OpenAIEmulator(clock=clock, processing_seconds=2 * 86_400) as slow:
        provider = OpenAIBatchProvider(config={"base_url": slow.url + "/v1", "api_key": API_KEY})
        requests = [chat(f"r{i}") for i in range(10)]
        handle = _run(provider, slow, requests, wait=86_400)
        results = _by_id(list(provider.fetch_results(handle)))
        content_calls = slow.server.count("GET", CONTENT)
        provider.close()
    assert set(results) == {r.custom_id for r in requests}
    succeeded = [r for r in results.values() if r.ok]
    expired = [r for r in results.values() if r.status is ResultStatus.EXPIRED]
    assert (len(succeeded), len(expired)) == (4, 6)
    for result in expired:
        assert result.error is not None
        assert (result.error.code, result.error.retryable) == ("batch_expired", True)
    assert content_calls == 2  # the error file named every unfinished request


def test_cancelled_batch_returns_finished_results_and_cancelled_rest(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat(f"r{i}") for i in range(10)]
    handle = _run(provider, emulator, requests, wait=60 + 300)
    provider.cancel(handle)
    with pytest.raises(ResultsNotReadyError, match="is cancelling"):
        provider.fetch_results(handle)  # refused at the call, not at the first result
    emulator.advance(60)
    results = _by_id(list(provider.fetch_results(handle)))
    assert set(results) == {r.custom_id for r in requests}
    assert sum(r.ok for r in results.values()) == 5
    cancelled = [r for r in results.values() if r.status is ResultStatus.CANCELLED]
    assert len(cancelled) == 5
    assert all(r.retryable and r.batch_id == handle.batch_id for r in cancelled)
    # The output file, then the input file to find the requests that never ran.
    assert emulator.server.count("GET", CONTENT) == 2


def test_an_unreadable_input_file_still_returns_every_finished_result(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    # If the vendor refuses to serve the input file back, the finished (paid) results still
    # all arrive; the caller that sent the batch marks the rest (the runner does).
    requests = [chat(f"r{i}") for i in range(10)]
    handle = _run(provider, emulator, requests, wait=60 + 300)
    provider.cancel(handle)
    emulator.advance(60)
    emulator.server.inject("GET", CONTENT, Fault.status(403), calls=[2])
    results = _by_id(list(provider.fetch_results(handle)))
    assert len(results) == 5 and all(r.ok for r in results.values())


def test_batch_cancelled_before_it_started(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat(f"r{i}") for i in range(3)]
    handle = _run(provider, emulator, requests, wait=0)
    provider.cancel(handle)
    emulator.advance(120)
    results = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in results) == ["r0", "r1", "r2"]
    assert {r.status for r in results} == {ResultStatus.CANCELLED}


def test_a_result_the_vendor_lost_is_reported_missing(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat("kept"), chat("lost", FAIL_MARKER.format("drop"))]
    results = _by_id(list(provider.fetch_results(_run(provider, emulator, requests))))
    assert results["kept"].ok
    lost = results["lost"]
    assert lost.status is ResultStatus.ERRORED
    assert lost.error is not None
    assert (lost.error.code, lost.error.retryable) == ("result_missing", True)


def test_failed_batch_reports_each_request(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, tmp_path: Path
) -> None:
    path = tmp_path / "input.jsonl"
    line = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    }
    path.write_text(
        "\n".join(
            [
                json.dumps({**line, "custom_id": "fine"}),
                json.dumps({**line, "custom_id": "wrong-url", "url": "/v1/responses"}),
                json.dumps({**line, "custom_id": "also-fine"}),
            ]
        )
        + "\n"
    )
    handle = provider.submit(
        BatchPayload(
            provider="openai",
            model="gpt-4o-mini",
            endpoint="/v1/chat/completions",
            request_count=3,
            size_bytes=path.stat().st_size,
            path=path,
        )
    )
    emulator.advance(60)
    results = _by_id(list(provider.fetch_results(handle)))
    assert set(results) == {"fine", "wrong-url", "also-fine"}
    assert {r.status for r in results.values()} == {ResultStatus.ERRORED}
    at_fault = results["wrong-url"].error
    assert at_fault is not None
    assert (at_fault.code, at_fault.retryable) == ("url_mismatch", False)
    # The others never ran and are not at fault; the core's rule for them (BatchResult.missing)
    # names the batch's errors and lets them go again, without the line at fault.
    for custom_id in ("fine", "also-fine"):
        bystander = results[custom_id].error
        assert bystander is not None
        assert (bystander.code, bystander.retryable) == ("batch_failed", True)
        assert "url_mismatch" in bystander.message and "(line 2)" in bystander.message


def test_fetch_before_the_end_is_refused(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    handle = _run(provider, emulator, [chat("a")], wait=0)
    with pytest.raises(ResultsNotReadyError, match="poll_status until is_terminal"):
        provider.fetch_results(handle)
    assert emulator.server.count("GET", CONTENT) == 0


def test_other_endpoints(
    emulator: OpenAIEmulator, make_provider: Callable[..., OpenAIBatchProvider]
) -> None:
    provider = make_provider()
    embeddings = [
        BatchRequest(
            custom_id=f"e{i}",
            model="text-embedding-3-small",
            endpoint="/v1/embeddings",
            params={"input": ["a b", "c"]},
        )
        for i in range(2)
    ]
    for result in provider.fetch_results(_run(provider, emulator, embeddings)):
        assert result.ok and result.text is None
        assert result.response is not None and len(result.response["data"]) == 2
        assert result.usage is not None and result.usage.input_tokens == 3
        assert schema_errors("CreateEmbeddingResponse", dict(result.response)) == []
    responses = [
        BatchRequest(
            custom_id="resp",
            model="gpt-4o",
            endpoint="/v1/responses",
            params={"input": [{"role": "user", "content": "hi there"}], "max_output_tokens": 50},
        )
    ]
    [result] = provider.fetch_results(_run(provider, emulator, responses))
    assert result.ok and result.text == "Echo: hi there"
    assert result.usage is not None and result.usage.total_tokens == 5
    assert result.response is not None
    ResponsesResponse.model_validate(result.response)  # the SDK's own model accepts it
    completions = [
        BatchRequest(
            custom_id="cmpl",
            model="gpt-3.5-turbo-instruct",
            endpoint="/v1/completions",
            params={"prompt": "one two"},
        )
    ]
    [result] = provider.fetch_results(_run(provider, emulator, completions))
    assert result.text == "Echo: one two"
    assert result.response is not None
    assert schema_errors("CreateCompletionResponse", dict(result.response)) == []


def test_a_responses_answer_cut_short_is_an_error_with_its_text(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    words = " ".join(f"w{i}" for i in range(1, 21))  # "Echo:" and 20 words: 21 tokens
    requests = [
        BatchRequest(
            custom_id=name,
            model="gpt-4o",
            endpoint="/v1/responses",
            params={"input": words, "max_output_tokens": limit},
        )
        for name, limit in (("whole", 50), ("cut", 16))
    ]
    results = _by_id(list(provider.fetch_results(_run(provider, emulator, requests))))
    assert results["whole"].ok and results["whole"].text == f"Echo: {words}"
    cut = results["cut"]
    assert cut.status is ResultStatus.ERRORED and cut.error is not None
    assert (cut.error.code, cut.error.retryable) == ("response_incomplete", False)
    assert "max_output_tokens" in cut.error.message
    assert cut.text == "Echo: " + " ".join(words.split()[:15])
    assert cut.usage is not None and cut.usage.output_tokens == 16
    whole_usage = results["whole"].usage
    assert whole_usage is not None
    assert (whole_usage.cache_read_tokens, whole_usage.reasoning_tokens) == (0, 0)


def test_fetch_streams_a_large_output_file(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat(f"r{i:05d}", "word " * 40) for i in range(3000)]
    handle = _run(provider, emulator, requests)
    output_id = emulator.batch(handle.batch_id)["output_file_id"]
    assert len(emulator.file_content(output_id)) > 2_000_000  # several download chunks
    stream = provider.fetch_results(handle)
    first = next(stream)
    assert first.ok
    assert sum(1 for _ in stream) == 2999


def test_results_survive_a_new_provider_and_azure(
    azure_emulator: OpenAIEmulator, make_azure_provider: Callable[..., AzureOpenAIBatchProvider]
) -> None:
    provider = make_azure_provider()
    requests = [chat(f"r{i}", model="batch-gpt4o") for i in range(3)]
    requests.append(azure_emulator.failing_request("bad", "batch-gpt4o"))
    handle = _run(provider, azure_emulator, requests)
    stored = BatchHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
    results = _by_id(list(make_azure_provider(api_version="2024-10-21").fetch_results(stored)))
    assert sum(r.ok for r in results.values()) == 3
    assert results["bad"].error is not None and results["bad"].error.status_code == 400


def test_raw_sdk_sees_the_same_files(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    handle = _run(provider, emulator, [chat("a"), chat("b", FAIL_MARKER.format(500))])
    client = OpenAI(base_url=emulator.url + "/v1", api_key=API_KEY, max_retries=0)
    batch = client.batches.retrieve(handle.batch_id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    assert batch.output_file_id and batch.error_file_id
    output = [
        json.loads(line)
        for line in client.files.content(batch.output_file_id).text.split("\n")
        if line
    ]
    errors = [
        json.loads(line)
        for line in client.files.content(batch.error_file_id).text.split("\n")
        if line
    ]
    assert [line["custom_id"] for line in output] == ["a"]
    assert [line["custom_id"] for line in errors] == ["b"]
    assert errors[0]["response"]["status_code"] == 500
    assert output[0]["id"].startswith("batch_req_") and output[0]["error"] is None


def test_memory_does_not_grow_with_the_output(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    requests = [chat(f"r{i:05d}", "word " * 300) for i in range(8000)]
    handle = _run(provider, emulator, requests)
    output_id = emulator.batch(handle.batch_id)["output_file_id"]
    size = len(emulator.file_content(output_id))
    assert size > 15_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in provider.fetch_results(handle))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8000
    # A download chunk and the line being parsed, not the file (the emulator's thread counts
    # too).
    assert peak < size / 2


def test_failed_batch_line_numbers_survive_a_restarted_download(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    path = tmp_path / "input.jsonl"
    line = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 200}]},
    }
    rows = [{**line, "custom_id": f"r{i}"} for i in range(30)]
    rows[20]["url"] = "/v1/responses"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    handle = provider.submit(
        BatchPayload(
            provider="openai",
            model="gpt-4o-mini",
            endpoint="/v1/chat/completions",
            request_count=30,
            size_bytes=path.stat().st_size,
            path=path,
        )
    )
    emulator.advance(60)
    # The input download breaks after a few lines and starts over.
    emulator.server.inject("GET", CONTENT, Fault.truncate(2000))
    results = _by_id(list(provider.fetch_results(handle)))
    assert len(results) == 30 and len(sleeps) == 1
    at_fault = [cid for cid, r in results.items() if r.error and r.error.code == "url_mismatch"]
    assert at_fault == ["r20"]
    assert {r.error.code for cid, r in results.items() if r.error and cid != "r20"} == {
        "batch_failed"
    }
