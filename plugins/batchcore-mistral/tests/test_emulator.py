"""The emulator checks what it receives against Mistral's spec, strictly, answers in Mistral's
error shapes, and its own answers are what the spec describes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import MODEL, assert_valid

from batchcore.testing import ManualClock
from batchcore_mistral.testing import MistralEmulator, sandbox


class Client:
    """Raw HTTP against the emulator, as any Mistral client would send it."""

    def __init__(self, emulator: MistralEmulator) -> None:
        self.base = emulator.url
        self.headers = {"authorization": f"Bearer {emulator.api_key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def upload(self, content: bytes, **fields: str) -> dict[str, Any]:
        answer = self.call(
            "POST",
            "/v1/files",
            files={"file": ("in.jsonl", content)},
            data={"purpose": "batch", **fields},
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def create(self, **body: Any) -> requests.Response:
        return self.call("POST", "/v1/batch/jobs", json=body)


@pytest.fixture
def client(emulator: MistralEmulator) -> Client:
    return Client(emulator)


def _line(custom_id: str, **body: Any) -> bytes:
    import orjson

    return orjson.dumps({"custom_id": custom_id, "body": body}) + b"\n"


def _validation(answer: requests.Response) -> list[dict[str, Any]]:
    """The ``detail`` of a 422, checked against the spec's ``HTTPValidationError``."""
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["object"] == "error" and body["type"] == "invalid_request_error"
    assert_valid("HTTPValidationError", {"detail": body["detail"]})
    detail: list[dict[str, Any]] = body["detail"]
    return detail


def test_every_answer_carries_a_correlation_id(client: Client) -> None:
    answer = client.call("GET", "/v1/batch/jobs")
    assert answer.status_code == 200
    assert len(answer.headers["mistral-correlation-id"]) == 32


def test_calls_without_the_key_are_unauthorized(emulator: MistralEmulator) -> None:
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": emulator.api_key}):
        answer = requests.get(f"{emulator.url}/v1/batch/jobs", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["message"] == "Unauthorized"


def test_unknown_routes_answer_as_the_api(client: Client) -> None:
    missing = client.call("GET", "/v1/nothing")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = client.call("PUT", "/v1/batch/jobs")
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})


def test_a_create_body_is_checked_strictly(client: Client) -> None:
    file_id = client.upload(_line("a", messages=[{"role": "user", "content": "x"}]))["id"]
    base = {"input_files": [file_id], "model": MODEL, "endpoint": "/v1/chat/completions"}
    [unknown] = _validation(client.create(**base, completion_window="24h"))
    assert unknown["type"] == "extra_forbidden" and unknown["loc"] == ["body", "completion_window"]
    [key] = _validation(client.create(**base, metadata={"k" * 33: "v"}))
    assert key["loc"] == ["body", "metadata"]
    [hours] = _validation(client.create(**base, timeout_hours=169))
    assert hours["loc"] == ["body", "timeout_hours"]
    [endpoint] = _validation(client.create(**{**base, "endpoint": "/v1/responses"}))
    assert endpoint["loc"] == ["body", "endpoint"]
    [missing] = _validation(client.create(model=MODEL, input_files=[file_id]))
    assert missing["type"] == "missing" and missing["loc"] == ["body", "endpoint"]
    _validation(client.create(model=MODEL, endpoint="/v1/chat/completions"))
    inline = [{"custom_id": "a", "body": {"messages": []}}]
    _validation(client.create(**base, requests=inline))
    assert client.call("POST", "/v1/batch/jobs", data=b"{oops").status_code == 422
    assert client.create(**base).status_code == 200


def test_inline_requests_are_capped_at_ten_thousand(client: Client) -> None:
    items = [{"custom_id": str(i), "body": {"messages": []}} for i in range(10_001)]
    [detail] = _validation(
        client.create(model=MODEL, endpoint="/v1/chat/completions", requests=items)
    )
    assert detail["loc"] == ["body", "requests"]


def test_a_create_needs_files_that_exist_for_batch(client: Client) -> None:
    base = {"model": MODEL, "endpoint": "/v1/chat/completions"}
    unknown = client.create(**base, input_files=[str(uuid.uuid4())])
    assert unknown.status_code == 404 and unknown.json()["object"] == "error"
    other = client.call(
        "POST", "/v1/files", files={"file": ("t.jsonl", b"{}\n")}, data={"purpose": "fine-tune"}
    ).json()
    wrong = client.create(**base, input_files=[other["id"]])
    assert wrong.status_code == 400 and "purpose" in wrong.json()["message"]
    too_many = client.create(**{**base, "endpoint": "/v1/ocr"}, requests=[])
    assert too_many.status_code == 400


def test_an_upload_form_is_checked_against_the_spec(client: Client) -> None:
    bad = client.call(
        "POST", "/v1/files", files={"file": ("a.jsonl", b"{}")}, data={"visibility": "everyone"}
    )
    [detail] = _validation(bad)
    assert detail["loc"] == ["body", "visibility"]
    extra = client.call(
        "POST", "/v1/files", files={"file": ("a.jsonl", b"{}")}, data={"purpose": "batch", "x": "1"}
    )
    assert _validation(extra)[0]["type"] == "extra_forbidden"
    no_file = client.call("POST", "/v1/files", files={"other": ("a.jsonl", b"{}")})
    assert any(d["type"] == "missing" for d in _validation(no_file))
    text = client.call("POST", "/v1/files", data={"file": "not a file", "purpose": "batch"})
    assert _validation(text)[0]["loc"] == ["body", "file"]


def test_files_and_jobs_answers_match_the_spec(
    client: Client, emulator: MistralEmulator, clock: ManualClock
) -> None:
    uploaded = client.upload(_line("a", messages=[{"role": "user", "content": "x"}]))
    assert_valid("CreateFileResponse", uploaded)
    assert uploaded["sample_type"] == "batch_request" and uploaded["num_lines"] == 1
    assert_valid("GetFileResponse", client.call("GET", f"/v1/files/{uploaded['id']}").json())
    job = client.create(
        input_files=[uploaded["id"]],
        model=MODEL,
        endpoint="/v1/chat/completions",
        metadata={"team": "a"},
    ).json()
    assert_valid("BatchJob", job)
    assert job["status"] == "QUEUED" and job["metadata"] == {"team": "a"}
    clock.advance(3600)
    done = client.call("GET", f"/v1/batch/jobs/{job['id']}?inline=true").json()
    assert_valid("BatchJob", done)
    assert done["status"] == "SUCCESS" and len(done["outputs"]) == 1
    listing = client.call("GET", "/v1/batch/jobs").json()
    assert_valid("ListBatchJobsResponse", listing)
    output = client.call("GET", f"/v1/files/{done['output_file']}").json()
    assert (output["sample_type"], output["source"]) == ("batch_result", "mistral")
    [line] = [
        __import__("json").loads(raw)
        for raw in client.call(
            "GET", f"/v1/files/{done['output_file']}/content"
        ).content.splitlines()
    ]
    assert set(line) == {"id", "custom_id", "response", "error"}
    assert line["id"].startswith(f"batch-{job['id'][:8]}-1-")
    answer = line["response"]["body"]
    assert_valid("AssistantMessage", answer["choices"][0]["message"])
    assert_valid("UsageInfo", answer["usage"])


def test_embedding_answers_match_the_spec(client: Client, clock: ManualClock) -> None:
    job = client.create(
        model="mistral-embed",
        endpoint="/v1/embeddings",
        requests=[{"custom_id": "e", "body": {"input": ["a b", "c"], "output_dimension": 3}}],
    ).json()
    clock.advance(3600)
    done = client.call("GET", f"/v1/batch/jobs/{job['id']}?inline=true").json()
    [entry] = done["outputs"]
    assert_valid("EmbeddingResponse", entry["response"]["body"])
    assert [len(d["embedding"]) for d in entry["response"]["body"]["data"]] == [3, 3]


def test_a_body_the_spec_refuses_fails_that_request_alone(
    client: Client, emulator: MistralEmulator, clock: ManualClock
) -> None:
    content = (
        _line("good", messages=[{"role": "user", "content": "x"}])
        + _line("extra", messages=[{"role": "user", "content": "x"}], user="u-1")
        + _line("role", messages=[{"role": "developer", "content": "x"}])
        + _line(
            "other-model", model="mistral-large-latest", messages=[{"role": "user", "content": "x"}]
        )
    )
    file_id = client.upload(content)["id"]
    job = client.create(input_files=[file_id], model=MODEL, endpoint="/v1/chat/completions").json()
    assert sorted(emulator.invalid_requests(job["id"])) == [1, 2, 3]
    clock.advance(3600)
    done = client.call("GET", f"/v1/batch/jobs/{job['id']}?inline=true").json()
    assert (done["status"], done["succeeded_requests"], done["failed_requests"]) == (
        "SUCCESS",
        1,
        3,
    )
    by_id = {entry["custom_id"]: entry for entry in done["outputs"]}
    assert by_id["good"]["response"]["status_code"] == 200
    extra = by_id["extra"]["response"]
    assert extra["status_code"] == 422
    assert_valid("HTTPValidationError", {"detail": extra["body"]["detail"]})
    assert extra["body"]["detail"][0]["loc"] == ["body", "user"]
    assert by_id["other-model"]["response"]["body"]["detail"][0]["loc"] == ["body", "model"]


def test_lines_that_are_not_requests_fail_the_job(client: Client, clock: ManualClock) -> None:
    content = _line("a", messages=[]) + b"not json\n" + _line("a", messages=[])
    file_id = client.upload(content)["id"]
    job = client.create(input_files=[file_id], model=MODEL, endpoint="/v1/chat/completions").json()
    clock.advance(120)
    failed = client.call("GET", f"/v1/batch/jobs/{job['id']}").json()
    assert_valid("BatchJob", failed)
    assert failed["status"] == "FAILED" and len(failed["errors"]) == 2
    assert failed["output_file"] is None and failed["total_requests"] == 0


def test_the_list_filters_and_pages(client: Client, clock: ManualClock) -> None:
    ids = []
    for index in range(5):
        job = client.create(
            model=MODEL,
            endpoint="/v1/chat/completions",
            metadata={"n": str(index), "team": "a" if index % 2 else "b"},
            requests=[{"custom_id": "x", "body": {"messages": [{"role": "user", "content": "x"}]}}],
        ).json()
        ids.append(job["id"])
        clock.advance(100)
    newest = client.call("GET", "/v1/batch/jobs", params={"page_size": 2}).json()
    assert [j["id"] for j in newest["data"]] == [ids[4], ids[3]] and newest["total"] == 5
    second = client.call("GET", "/v1/batch/jobs", params={"page_size": 2, "page": 1}).json()
    assert [j["id"] for j in second["data"]] == [ids[2], ids[1]]
    team = client.call("GET", "/v1/batch/jobs", params={"team": "a"}).json()
    assert [j["id"] for j in team["data"]] == [ids[3], ids[1]]
    exact = client.call("GET", "/v1/batch/jobs", params={"team": "b", "n": "2"}).json()
    assert [j["id"] for j in exact["data"]] == [ids[2]]
    oldest = client.call("GET", "/v1/batch/jobs", params={"order_by": "created"}).json()
    assert oldest["data"][0]["id"] == ids[0]
    running = client.call("GET", "/v1/batch/jobs", params={"status": ["RUNNING", "SUCCESS"]}).json()
    assert {j["status"] for j in running["data"]} <= {"RUNNING", "SUCCESS"}
    after = client.call(
        "GET", "/v1/batch/jobs", params={"created_after": "2026-01-01T00:05:00+00:00"}
    ).json()
    assert [j["id"] for j in after["data"]] == [ids[4], ids[3]]
    _validation(client.call("GET", "/v1/batch/jobs", params={"status": "DONE"}))
    _validation(client.call("GET", "/v1/batch/jobs", params={"page": "x"}))


def test_ids_are_uuids_and_unknown_ones_are_404(client: Client) -> None:
    [detail] = _validation(client.call("GET", "/v1/batch/jobs/nope"))
    assert detail["loc"] == ["path", "job_id"]
    missing = client.call("GET", f"/v1/batch/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["object"] == "error"
    assert client.call("GET", f"/v1/files/{uuid.uuid4()}/content").status_code == 404


def test_cancelling_an_ended_job_is_refused(client: Client, clock: ManualClock) -> None:
    job = client.create(
        model=MODEL,
        endpoint="/v1/chat/completions",
        requests=[{"custom_id": "x", "body": {"messages": [{"role": "user", "content": "x"}]}}],
    ).json()
    clock.advance(3600)
    refused = client.call("POST", f"/v1/batch/jobs/{job['id']}/cancel")
    assert refused.status_code == 400 and "SUCCESS" in refused.json()["message"]


@pytest.fixture
def sandbox_config() -> Iterator[dict[str, Any]]:
    clock = ManualClock(start=1_767_225_600.0)
    with sandbox(clock=clock) as config:
        yield {**config, "clock": clock}


def test_the_sandbox_serves_a_key_of_its_own(sandbox_config: dict[str, Any]) -> None:
    assert sandbox_config["api_key"].startswith("mistral-sandbox-")
    answer = requests.get(
        sandbox_config["base_url"] + "/v1/batch/jobs",
        headers={"authorization": f"Bearer {sandbox_config['api_key']}"},
        timeout=10,
    )
    assert answer.status_code == 200
