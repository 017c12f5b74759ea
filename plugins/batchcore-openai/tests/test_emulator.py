"""The emulator, driven with the real SDK and plain HTTP: shapes checked against the official
OpenAPI schemas, validation the way the API does it, lifecycle, files, Azure flavour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai_support import API_KEY, schema_errors

from batchcore.testing import ContractBackend, ManualClock
from batchcore_openai.testing import OpenAIEmulator, Refusal, sandbox

LINE: dict[str, Any] = {
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
}


def _jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _chat_lines(count: int) -> bytes:
    return _jsonl(*({**LINE, "custom_id": f"c{i}"} for i in range(count)))


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.url + "/v1", api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(emulator: OpenAIEmulator) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["authorization"] = f"Bearer {API_KEY}"
        yield session


def _upload(
    client: openai.OpenAI, content: bytes, name: str = "in.jsonl", purpose: str = "batch"
) -> str:
    return client.files.create(file=(name, content), purpose=purpose).id  # type: ignore[arg-type]


def _create(client: openai.OpenAI, file_id: str, **overrides: Any) -> dict[str, Any]:
    raw = client.batches.with_raw_response.create(
        **{
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            **overrides,
        }
    )
    created: dict[str, Any] = json.loads(raw.content)
    return created


def test_files_match_the_spec(
    emulator: OpenAIEmulator, client: openai.OpenAI, http: requests.Session
) -> None:
    content = _chat_lines(3)
    uploaded = client.files.with_raw_response.create(file=("in.jsonl", content), purpose="batch")
    body = json.loads(uploaded.content)
    assert schema_errors("OpenAIFile", body) == []
    assert (body["bytes"], body["filename"], body["purpose"]) == (len(content), "in.jsonl", "batch")
    assert body["expires_at"] - body["created_at"] == 30 * 86_400
    listed = http.get(emulator.url + "/v1/files").json()
    assert schema_errors("ListFilesResponse", listed) == []
    assert [f["id"] for f in listed["data"]] == [body["id"]]
    assert client.files.content(body["id"]).content == content
    deleted = http.delete(f"{emulator.url}/v1/files/{body['id']}").json()
    assert schema_errors("DeleteFileResponse", deleted) == []
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(body["id"])


def test_every_status_matches_the_spec(
    emulator: OpenAIEmulator, client: openai.OpenAI, http: requests.Session
) -> None:
    file_id = _upload(client, _chat_lines(4))
    done = _create(client, file_id, metadata={"team": "search"})
    cancelled = _create(client, file_id)
    broken = _create(client, _upload(client, _jsonl({**LINE, "custom_id": "x"}, {"oops": 1})))
    seen: dict[str, dict[str, Any]] = {}

    def look() -> None:
        for batch_id in (done["id"], cancelled["id"], broken["id"]):
            batch = http.get(f"{emulator.url}/v1/batches/{batch_id}").json()
            assert schema_errors("Batch", batch) == [], batch["status"]
            seen.setdefault(batch["status"], batch)

    look()
    emulator.advance(360)
    client.batches.cancel(cancelled["id"])
    look()
    emulator.advance(330)
    look()
    emulator.advance(60)
    look()
    assert set(seen) == {
        "validating",
        "in_progress",
        "finalizing",
        "completed",
        "failed",
        "cancelling",
        "cancelled",
    }
    assert seen["completed"]["metadata"] == {"team": "search"}
    assert seen["completed"]["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert seen["completed"]["usage"]["total_tokens"] > 0
    assert seen["failed"]["errors"]["data"] == [
        {
            "code": "invalid_request",
            "message": "Missing 'custom_id'.",
            "param": "custom_id",
            "line": 2,
        }
    ]
    listed = http.get(emulator.url + "/v1/batches").json()
    assert schema_errors("ListBatchesResponse", listed) == []


def test_expired_status_matches_the_spec(clock: ManualClock) -> None:
    with (
        OpenAIEmulator(clock=clock, processing_seconds=200_000) as slow,
        openai.OpenAI(base_url=slow.url + "/v1", api_key="k", max_retries=0) as client,
    ):
        batch = _create(client, _upload(client, _chat_lines(2)))
        slow.advance(86_400)
        expired = slow.batch(batch["id"])
    assert expired["status"] == "expired"
    assert schema_errors("Batch", expired) == []
    assert expired["expired_at"] == expired["expires_at"]


def test_create_requests_are_validated_like_the_api(
    emulator: OpenAIEmulator, client: openai.OpenAI
) -> None:
    file_id = _upload(client, _chat_lines(2))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"completion_window": "48h"}, "completion_window"),
        ({"endpoint": "/v1/teleport"}, "endpoint"),
        ({"endpoint": "/v1/images/generations"}, "endpoint"),
        ({"input_file_id": "file-nope"}, "input_file_id"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after"),
        ({"extra_body": {"priority": "high"}}, "priority"),
    ]
    for overrides, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            _create(client, file_id, **overrides)
        body = caught.value.response.json()
        assert schema_errors("ErrorResponse", body) == []
        assert body["error"]["param"].startswith(param), overrides
    assert emulator.batches() == []
    # Every request the spec itself rejects (an unknown field included) was among those refused.
    assert (
        sum(
            bool(schema_errors("CreateBatchRequest", sent))
            for sent in emulator.created_batch_requests
        )
        == 5
    )
    # A full create is accepted, and what the SDK sent matches CreateBatchRequest.
    _create(
        client,
        file_id,
        metadata={"k": "v"},
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert schema_errors("CreateBatchRequest", emulator.created_batch_requests[-1]) == []
    assert len(emulator.batches()) == 1


def test_mixed_models_and_non_batch_files_are_refused(client: openai.OpenAI) -> None:
    mixed = _jsonl(
        {**LINE, "custom_id": "a"},
        {**LINE, "custom_id": "b", "body": {**LINE["body"], "model": "gpt-4o"}},
    )
    with pytest.raises(openai.BadRequestError, match="line 2 uses 'gpt-4o'"):
        _create(client, _upload(client, mixed))
    with pytest.raises(openai.BadRequestError, match="purpose 'user_data'"):
        _create(client, _upload(client, _chat_lines(1), purpose="user_data"))


def test_uploads_are_validated(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        _upload(client, _chat_lines(1), name="in.csv")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        _upload(client, _chat_lines(1), purpose="nonsense")
    response = requests.post(
        emulator.url + "/v1/files",
        files={"purpose": (None, "batch")},
        headers={"authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert emulator.files() == []


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        (b"", "empty_file", None),
        (_jsonl({**LINE, "custom_id": "a"}, {**LINE, "custom_id": "a"}), "duplicate_custom_id", 2),
        (_jsonl({**LINE, "custom_id": "a", "method": "GET"}), "invalid_request", 1),
        (_jsonl({**LINE, "custom_id": "a", "body": {"messages": []}}), "invalid_request", 1),
        (b"\xef\xbb\xbf" + _jsonl({**LINE, "custom_id": "a"}), "invalid_json_line", 1),
        (_chat_lines(4), "too_many_tasks", None),
    ],
)
def test_malformed_input_fails_the_batch(
    clock: ManualClock, lines: bytes, code: str, line: int | None
) -> None:
    with (
        OpenAIEmulator(clock=clock, max_requests=3) as small,
        openai.OpenAI(base_url=small.url + "/v1", api_key="k", max_retries=0) as client,
    ):
        batch = _create(client, _upload(client, lines))
        small.advance(60)
        failed = client.batches.retrieve(batch["id"])
    assert failed.status == "failed"
    assert failed.errors is not None and failed.errors.data is not None
    assert [(e.code, e.line) for e in failed.errors.data][:1] == [(code, line)]
    assert failed.output_file_id is None


def _line(custom_id: str, model: str, **params: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **params}
    return {**LINE, "custom_id": custom_id, "body": body}


def _error_lines(client: openai.OpenAI, emulator: OpenAIEmulator, batch_id: str) -> list[Any]:
    emulator.advance(3600)
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed"
    if batch.error_file_id is None:
        return []
    content = client.files.content(batch.error_file_id).content
    return [json.loads(line) for line in content.splitlines()]


@pytest.mark.parametrize(
    ("model", "params", "param", "code", "message"),
    [
        (
            "o3-mini",
            {"max_tokens": 100},
            "max_tokens",
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
        ),
        (
            "o1-2024-12-17",
            {"max_tokens": 100},
            "max_tokens",
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens'",
        ),
        (
            "gpt-5.1",
            {"max_tokens": 100},
            "max_tokens",
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens'",
        ),
        (
            "o3",
            {"temperature": 0.2},
            "temperature",
            "unsupported_value",
            "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
            "default (1) value is supported.",
        ),
        (
            "gpt-5-mini",
            {"top_p": 0.5},
            "top_p",
            "unsupported_value",
            "Unsupported value: 'top_p'",
        ),
    ],
)
def test_what_a_model_refuses_is_a_400_line_in_the_error_file(
    client: openai.OpenAI,
    emulator: OpenAIEmulator,
    model: str,
    params: dict[str, Any],
    param: str,
    code: str,
    message: str,
) -> None:
    lines = [_line("ok", model, max_completion_tokens=100), _line("bad", model, **params)]
    created = _create(client, _upload(client, _jsonl(*lines)))
    [line] = _error_lines(client, emulator, created["id"])
    assert line["custom_id"] == "bad" and line["error"] is None
    response = line["response"]
    assert response["status_code"] == 400
    assert schema_errors("ErrorResponse", response["body"]) == []
    error = response["body"]["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert error["message"].startswith(message)
    counts = client.batches.retrieve(created["id"]).request_counts
    assert counts is not None and (counts.completed, counts.failed) == (1, 1)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("o3-mini", {"max_completion_tokens": 100}),
        ("o3", {"temperature": 1, "top_p": 1}),  # the default value is taken
        ("gpt-5.1", {"temperature": 0.2}),  # GPT-5.1 takes it at reasoning effort none
        ("gpt-5-chat-latest", {"temperature": 0.2}),  # not a reasoning model
        ("gpt-4o", {"max_tokens": 100, "temperature": 0.2}),
    ],
)
def test_what_a_model_takes_is_answered(
    client: openai.OpenAI, emulator: OpenAIEmulator, model: str, params: dict[str, Any]
) -> None:
    created = _create(client, _upload(client, _jsonl(_line("a", model, **params))))
    assert _error_lines(client, emulator, created["id"]) == []


def test_the_model_rules_can_be_replaced_or_turned_off(clock: ManualClock) -> None:
    def no_seed(endpoint: str, body: Any) -> Refusal | None:
        if "seed" in body:
            return Refusal(message="no seeds here", param="seed", code="unsupported_parameter")
        return None

    lines = _jsonl(_line("a", "o3", max_tokens=5), _line("b", "o3", seed=1))
    for rules, refused in ((None, []), (no_seed, ["b"])):
        with OpenAIEmulator(clock=clock, api_key=API_KEY, request_rules=rules) as emulator:
            sdk = openai.OpenAI(base_url=emulator.url + "/v1", api_key=API_KEY, max_retries=0)
            created = _create(sdk, _upload(sdk, lines))
            errors = _error_lines(sdk, emulator, created["id"])
            assert [line["custom_id"] for line in errors] == refused
            sdk.close()


def test_listing_is_newest_first_and_paginated(client: openai.OpenAI) -> None:
    file_id = _upload(client, _chat_lines(1))
    ids = [_create(client, file_id)["id"] for _ in range(5)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2]
    assert page.has_more
    assert [b.id for b in client.batches.list(limit=2, after=ids[3]).data] == [ids[2], ids[1]]
    assert [b.id for b in client.batches.list(limit=100)] == ids[::-1]  # the SDK pages on
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)


def test_cancel_semantics(emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
    batch = _create(client, _upload(client, _chat_lines(1)))
    assert client.batches.cancel(batch["id"]).status == "cancelling"
    emulator.advance(60)
    assert client.batches.retrieve(batch["id"]).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="status 'cancelled'"):
        client.batches.cancel(batch["id"])
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_nope")


def test_authentication(emulator: OpenAIEmulator) -> None:
    anonymous = requests.get(emulator.url + "/v1/batches")
    assert anonymous.status_code == 401
    assert schema_errors("ErrorResponse", anonymous.json()) == []
    wrong = "sk-wrong-0123456789"
    with (
        openai.OpenAI(base_url=emulator.url + "/v1", api_key=wrong, max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.batches.list()
    assert caught.value.code == "invalid_api_key"
    assert wrong not in caught.value.message
    assert (
        requests.get(emulator.url + "/v1/batches", headers={"api-key": API_KEY}).status_code == 200
    )


def test_content_is_streamed_in_chunks(
    emulator: OpenAIEmulator, client: openai.OpenAI, http: requests.Session
) -> None:
    content = _chat_lines(5000)
    file_id = _upload(client, content)
    response = http.get(f"{emulator.url}/v1/files/{file_id}/content", stream=True)
    assert response.headers.get("transfer-encoding") == "chunked"
    assert b"".join(response.iter_content(65536)) == content


def test_files_live_on_disk_until_stop(clock: ManualClock) -> None:
    emulator = OpenAIEmulator(clock=clock).start()
    with openai.OpenAI(base_url=emulator.url + "/v1", api_key="k", max_retries=0) as client:
        _upload(client, _chat_lines(1))
    root = emulator._root
    assert root is not None and len(list(Path(root).iterdir())) == 1
    emulator.stop()
    assert not Path(root).exists()


def test_azure_flavour(azure_emulator: OpenAIEmulator) -> None:
    url = azure_emulator.url
    headers = {"api-key": API_KEY}
    assert requests.get(url + "/openai/batches", headers=headers).status_code == 404
    assert (
        requests.get(url + "/openai/batches?api-version=2024-10-21", headers=headers).status_code
        == 200
    )
    with openai.AzureOpenAI(
        azure_endpoint=url, api_key=API_KEY, api_version="2024-10-21", max_retries=0
    ) as legacy:
        file_id = legacy.files.create(
            file=(
                "in.jsonl",
                _jsonl(
                    {
                        **LINE,
                        "custom_id": "a",
                        "url": "/chat/completions",
                        "body": {**LINE["body"], "model": "batch-gpt4o"},
                    }
                ),
            ),
            purpose="batch",
        ).id
        batch = json.loads(
            legacy.batches.with_raw_response.create(
                input_file_id=file_id,
                endpoint="/chat/completions",  # type: ignore[arg-type]
                completion_window="24h",
            ).content
        )
    assert batch["status"] == "Validating"
    assert batch["created_at"].endswith("Z") and batch["request_counts"] is None
    azure_emulator.advance(3600)
    done = azure_emulator.batch(batch["id"])
    assert done["status"] == "Completed"
    assert azure_emulator.file_content(done["error_file_id"]) == b""


def test_is_a_contract_backend(emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
    assert isinstance(emulator, ContractBackend)
    assert {
        "rate_limit",
        "server_error",
        "overloaded",
        "unauthorized",
        "reset",
        "lost_create",
        "corrupt_result_line",
    } == emulator.FAULTS
    with pytest.raises(ValueError, match="no-such-fault"):
        emulator.inject_fault("no-such-fault")
    assert emulator.batch_count() == 0
    file_id = _upload(client, _chat_lines(2))
    _create(client, file_id)
    _create(client, file_id)
    assert emulator.batch_count() == 2
    request = emulator.failing_request("x", "gpt-4o")
    assert request.custom_id == "x" and "[emulator-fail:400]" in request.messages[0]["content"]
    before = emulator.call_count()
    requests.get(emulator.url + "/v1/batches")
    assert emulator.call_count() == before + 1


def test_sandbox_runs_a_batch_within_seconds() -> None:
    clock = ManualClock(start=1_767_225_600.0)
    with sandbox(clock=clock) as config:
        assert set(config) == {"base_url", "api_key"}
        assert config["api_key"].startswith("sk-sandbox-")
        with openai.OpenAI(max_retries=0, **config) as client:
            batch = _create(client, _upload(client, _chat_lines(3)))
            clock.advance(4)
            assert client.batches.retrieve(batch["id"]).status == "completed"
        with (
            openai.OpenAI(
                base_url=config["base_url"], api_key="sk-other", max_retries=0
            ) as stranger,
            pytest.raises(openai.AuthenticationError),
        ):
            stranger.batches.list()
