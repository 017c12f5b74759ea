"""The emulator speaks the real protocol: the official google-genai SDK, pointed at it, runs
batches end to end; and it refuses what the API refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from batchcore.testing import ManualClock
from batchcore_gemini._emulation import request_problem
from batchcore_gemini.testing import GeminiEmulator, sandbox

MODEL = "gemini-2.5-flash"


@pytest.fixture
def client(emulator: GeminiEmulator) -> Iterator[genai.Client]:
    made = genai.Client(
        api_key=emulator.api_key,
        http_options=types.HttpOptions(
            base_url=emulator.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    yield made
    made.close()


def content(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_the_sdk_runs_an_inline_batch_to_success(client: genai.Client, clock: ManualClock) -> None:
    job = client.batches.create(
        model=MODEL,
        src=[content("Tell me a joke"), content("Why is the sky blue?")],
        config={"display_name": "inline-job"},
    )
    assert job.name is not None and job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "inline-job"
    states = [job.state]
    for _ in range(4):
        clock.advance(30)
        job = client.batches.get(name=job.name)
        states.append(job.state)
    assert states == [
        types.JobState.JOB_STATE_PENDING,
        types.JobState.JOB_STATE_RUNNING,
        types.JobState.JOB_STATE_RUNNING,
        types.JobState.JOB_STATE_SUCCEEDED,
        types.JobState.JOB_STATE_SUCCEEDED,
    ]
    assert job.dest is not None and job.dest.inlined_responses is not None
    texts = sorted(r.response.text or "" for r in job.dest.inlined_responses if r.response)
    assert texts == [
        "Emulated answer 1 to: Tell me a joke",
        "Emulated answer 1 to: Why is the sky blue?",
    ]


def test_the_sdk_runs_a_file_batch_and_downloads_its_responses(
    client: genai.Client, clock: ManualClock, tmp_path: Path
) -> None:
    source = tmp_path / "requests.jsonl"
    lines = [
        {"key": "a", "request": content("hello")},
        {"key": "b", "request": content("[emulator-error:RESOURCE_EXHAUSTED] again")},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    uploaded = client.files.upload(
        file=str(source), config={"display_name": "my-requests", "mime_type": "jsonl"}
    )
    assert uploaded.name is not None and uploaded.state == types.FileState.ACTIVE
    assert uploaded.size_bytes == source.stat().st_size
    job = client.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "f"})
    clock.advance(3600)
    job = client.batches.get(name=job.name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.file_name is not None
    data = client.files.download(file=job.dest.file_name)
    by_key = {item["key"]: item for item in map(json.loads, data.decode().splitlines())}
    assert by_key["a"]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert by_key["b"]["error"] == {
        "code": 8,
        "message": "emulated RESOURCE_EXHAUSTED for this request",
    }
    # An uploaded file cannot be downloaded back, as with the API.
    with pytest.raises(genai_errors.ClientError):
        client.files.download(file=uploaded.name)


def test_the_sdk_lists_pages_cancels_and_deletes(client: genai.Client, clock: ManualClock) -> None:
    names = [client.batches.create(model=MODEL, src=[content(f"q{i}")]).name for i in range(3)]
    listed = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert listed == list(reversed(names))  # newest first, over two pages
    client.batches.cancel(name=names[0] or "")
    assert client.batches.get(name=names[0] or "").state == types.JobState.JOB_STATE_CANCELLED
    with pytest.raises(genai_errors.ClientError) as caught:
        client.batches.cancel(name=names[0] or "")
    assert caught.value.status == "FAILED_PRECONDITION"
    client.batches.delete(name=names[1] or "")
    with pytest.raises(genai_errors.ClientError) as missing:
        client.batches.get(name=names[1] or "")
    assert missing.value.code == 404


def test_a_batch_expires_after_48_hours_without_results(clock: ManualClock) -> None:
    with GeminiEmulator(clock=clock, processing_seconds=100 * 3600) as slow:
        client = genai.Client(api_key=slow.api_key, http_options={"base_url": slow.url})
        job = client.batches.create(model=MODEL, src=[content("slow")])
        clock.advance(48 * 3600)
        job = client.batches.get(name=job.name or "")
        assert job.state == types.JobState.JOB_STATE_EXPIRED
        assert job.dest is None or not job.dest.inlined_responses
        client.close()


def test_the_api_key_is_required_and_checked(emulator: GeminiEmulator) -> None:
    url = f"{emulator.url}/v1beta/batches"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = requests.get(url, headers={"x-goog-api-key": "AIza-wrong"}, timeout=5)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert requests.get(url, params={"key": emulator.api_key}, timeout=5).status_code == 200
    assert requests.get(f"{emulator.url}/v9/batches", timeout=5).status_code == 404


def test_an_inline_request_the_api_cannot_read_fails_the_create(
    emulator: GeminiEmulator,
) -> None:
    body = {
        "batch": {
            "inputConfig": {
                "requests": {
                    "requests": [{"request": {"contents": [{"parts": [{"txt": "typo"}]}]}}]
                }
            }
        }
    }
    answer = requests.post(
        f"{emulator.url}/v1beta/models/{MODEL}:batchGenerateContent",
        json=body,
        headers={"x-goog-api-key": emulator.api_key},
        timeout=5,
    )
    assert answer.status_code == 400
    assert "requests[0].request.contents[0]" in answer.json()["error"]["message"]
    assert emulator.batch_count() == 0


def test_an_unknown_model_and_an_unknown_field_are_refused(emulator: GeminiEmulator) -> None:
    headers = {"x-goog-api-key": emulator.api_key}
    base = f"{emulator.url}/v1beta/models"
    inline = {"batch": {"inputConfig": {"requests": {"requests": [{"request": content("x")}]}}}}
    unknown_model = requests.post(
        f"{base}/gpt-4o:batchGenerateContent", json=inline, headers=headers, timeout=5
    )
    assert unknown_model.status_code == 404
    extra = {"batch": {**inline["batch"], "colour": "blue"}}
    unknown_field = requests.post(
        f"{base}/{MODEL}:batchGenerateContent", json=extra, headers=headers, timeout=5
    )
    assert unknown_field.status_code == 400
    assert "colour" in unknown_field.json()["error"]["message"]


@pytest.mark.parametrize(
    ("request_body", "problem"),
    [
        ({"contents": []}, "contents: must not be empty"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "role"),
        (
            {
                "contents": [
                    {"parts": [{"text": "x", "inlineData": {"mimeType": "a/b", "data": "eA=="}}]}
                ]
            },
            "exactly one",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "eA"}}]}]},
            "base64",
        ),
        ({**content("x"), "generationConfig": {"routingConfig": {}}}, "Vertex AI"),
        ({**content("x"), "generationConfig": {"candidateCount": 9}}, "candidateCount"),
        (
            {**content("x"), "generationConfig": {"responseSchema": {"type": "STRING"}}},
            "responseMimeType",
        ),
        (
            {
                **content("x"),
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "OBJECT",
                        "properties": {"a": {"$ref": "#/$defs/A"}},
                    },
                },
            },
            "$ref",
        ),
        (
            {
                **content("x"),
                "tools": [
                    {"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}
                ],
            },
            "non-empty for OBJECT",
        ),
        (
            {
                **content("x"),
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            },
            "only with mode ANY",
        ),
        ({**content("x"), "temperatur": 1}, "Unknown name 'temperatur'"),
    ],
)
def test_the_validator_refuses_what_the_api_refuses(
    request_body: dict[str, Any], problem: str
) -> None:
    found = request_problem(request_body)
    assert found is not None and problem in found


def test_the_validator_accepts_the_sdks_own_requests() -> None:
    assert request_problem({"model": "models/x", **content("x")}) is None
    assert (
        request_problem({"system_instruction": {"parts": [{"text": "s"}]}, **content("x")}) is None
    )


def test_the_sandbox_runs_a_batch_within_seconds() -> None:
    with sandbox() as overrides:
        assert set(overrides) == {"base_url", "api_key"}
        client = genai.Client(
            api_key=overrides["api_key"], http_options={"base_url": overrides["base_url"]}
        )
        job = client.batches.create(model=MODEL, src=[content("quick")])
        assert job.state in (types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING)
        client.close()
