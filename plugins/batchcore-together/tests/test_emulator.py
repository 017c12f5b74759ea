"""The emulator behaves like Together's API: what it answers matches Together's schemas, what it
receives is checked against them, and its lifecycle follows the clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from together_support import MODEL, assert_valid, chat

from batchcore.http import MultipartUpload
from batchcore.testing import ManualClock
from batchcore_together.testing import TogetherEmulator


class Client:
    """Raw HTTP to the emulator, as a hand-written client would talk to Together."""

    def __init__(self, emulator: TogetherEmulator, key: str | None = None) -> None:
        self.base = emulator.url + "/v1"
        self.session = requests.Session()
        self.session.headers["authorization"] = f"Bearer {key or emulator.api_key}"

    def upload(self, content: bytes, tmp: Path, **fields: str) -> requests.Response:
        path = tmp / "input.jsonl"
        path.write_bytes(content)
        form = {"purpose": "batch-api", "file_name": "input.jsonl", "file_type": "jsonl", **fields}
        with MultipartUpload(path, fields=form, filename="input.jsonl") as body:
            return self.session.post(
                self.base + "/files/upload",
                data=body,
                headers={"content-type": body.content_type},
            )

    def create(self, **body: Any) -> requests.Response:
        return self.session.post(self.base + "/batches", json=body)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base + path)


@pytest.fixture
def client(emulator: TogetherEmulator) -> Iterator[Client]:
    made = Client(emulator)
    yield made
    made.session.close()


def lines(*bodies: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(b, option=orjson.OPT_APPEND_NEWLINE) for b in bodies)


def line(custom_id: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **body},
    }


def batch_of(client: Client, tmp_path: Path, content: bytes) -> dict[str, Any]:
    file_id = client.upload(content, tmp_path).json()["id"]
    created = client.create(endpoint="/v1/chat/completions", input_file_id=file_id)
    assert created.status_code == 201, created.text
    job: dict[str, Any] = created.json()["job"]
    return job


# -- answers in Together's shapes ------------------------------------------------------------------


def test_an_upload_answers_a_file_object(client: Client, tmp_path: Path) -> None:
    answer = client.upload(lines(line("a"), line("b")), tmp_path)
    assert answer.status_code == 200
    assert_valid("FileResponse", answer.json())
    assert answer.json()["purpose"] == "batch-api"
    assert answer.json()["LineCount"] == 2
    listed = client.get("/files").json()
    assert_valid("FileList", listed)
    assert [f["id"] for f in listed["data"]] == [answer.json()["id"]]
    assert client.get(f"/files/{answer.json()['id']}/content").content == lines(
        line("a"), line("b")
    )


def test_create_is_wrapped_and_everything_else_bare(
    client: Client, emulator: TogetherEmulator, tmp_path: Path
) -> None:
    emulator.create_warning = "a warning"
    file_id = client.upload(lines(line("a")), tmp_path).json()["id"]
    created = client.create(endpoint="/v1/chat/completions", input_file_id=file_id)
    assert created.status_code == 201
    assert_valid("BatchJobWithWarning", created.json())
    assert created.json()["warning"] == "a warning"
    job = created.json()["job"]
    assert (job["status"], job["progress"], job["input_file_id"]) == ("VALIDATING", 0.0, file_id)
    assert job["job_deadline"] == "2026-01-02T00:00:00Z"
    retrieved = client.get(f"/batches/{job['id']}").json()
    assert_valid("BatchJobWithWarning", {"job": retrieved})
    assert retrieved == job
    listed = client.get("/batches").json()
    assert_valid("BatchJobList", listed)
    assert listed == [job]


def test_result_lines_match_together_s_shapes(
    client: Client, emulator: TogetherEmulator, tmp_path: Path
) -> None:
    bad = line("bad")
    bad["body"]["messages"][0]["content"] = "x [emulator-fail:503]"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    job = batch_of(
        client,
        tmp_path,
        lines(
            line("a"),
            line("t", tools=tools, tool_choice="required"),
            line("r", reasoning_effort="low"),
            bad,
        ),
    )
    emulator.advance(3600)
    job = client.get(f"/batches/{job['id']}").json()
    assert (job["status"], job["progress"]) == ("COMPLETED", 100.0)
    assert "completed_at" in job
    output = [
        orjson.loads(x)
        for x in client.get(f"/files/{job['output_file_id']}/content").content.splitlines()
    ]
    errors = [
        orjson.loads(x)
        for x in client.get(f"/files/{job['error_file_id']}/content").content.splitlines()
    ]
    for item in output:
        assert_valid("BatchOutputLine", item)
    assert [e["custom_id"] for e in errors] == ["bad"]
    assert_valid("BatchErrorLine", errors[0])
    assert errors[0]["error"]["code"] == "service_unavailable"
    by_id = {item["custom_id"]: item["response"]["body"] for item in output}
    assert by_id["a"]["choices"][0]["message"]["content"] == "Echo: Hi"
    call = by_id["t"]["choices"][0]["message"]["tool_calls"][0]
    assert (call["index"], call["function"]["name"]) == (0, "f")
    assert by_id["r"]["choices"][0]["message"]["reasoning"] == "Thinking about: Hi"
    assert emulator.file_ids("batch-generated") == [job["error_file_id"], job["output_file_id"]]


# -- what it receives is checked -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"endpoint": "/v1/chat/completions"}, "input_file_id"),
        ({"endpoint": "/v1/chat/completions", "input_file_id": "f", "metadata": {}}, "metadata"),
        (
            {"endpoint": "/v1/chat/completions", "input_file_id": "f", "priority": "high"},
            "priority",
        ),
        ({"endpoint": "/v1/embeddings", "input_file_id": "f"}, "/v1/embeddings"),
        ({"endpoint": "/v1/chat/completions", "input_file_id": "file-none"}, "file-none"),
    ],
)
def test_create_bodies_are_checked(
    client: Client, emulator: TogetherEmulator, body: dict[str, Any], named: str
) -> None:
    answer = client.create(**body)
    assert answer.status_code == 400
    assert_valid("BatchErrorResponse", answer.json())
    assert named in answer.json()["error"]
    assert emulator.batch_count() == 0


def test_only_batch_api_files_make_batches(client: Client, tmp_path: Path) -> None:
    file_id = client.upload(lines(line("a")), tmp_path, purpose="fine-tune").json()["id"]
    answer = client.create(endpoint="/v1/chat/completions", input_file_id=file_id)
    assert answer.status_code == 400
    assert "batch-api" in answer.json()["error"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"purpose": "batch"}, "purpose"), ({"file_type": "xml"}, "file_type")],
)
def test_upload_forms_are_checked(
    client: Client, tmp_path: Path, fields: dict[str, str], named: str
) -> None:
    answer = client.upload(b"{}\n", tmp_path, **fields)
    assert answer.status_code == 400
    assert_valid("ErrorData", answer.json())
    assert named in answer.json()["error"]["message"]


def test_a_body_that_is_not_a_form_is_refused(client: Client) -> None:
    answer = client.session.post(
        client.base + "/files/upload", data=b"x", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 400
    assert "multipart/form-data" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("bad_line", "named"),
    [
        ({**line("x"), "url": "/v1/chat/completions"}, "url"),
        ({**line("x"), "method": "POST"}, "method"),
        ({"custom_id": "x" * 65, "body": line("x")["body"]}, "custom_id"),
        (line("x", top_kk=3), "top_kk"),
        (line("x", logprobs=True), "logprobs"),
        (line("x", stop="END"), "stop"),
        (line("x", messages=[{"role": "developer", "content": "x"}]), "messages"),
        (
            line(
                "x",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "u", "detail": "high"}}
                        ],
                    }
                ],
            ),
            "messages",
        ),
    ],
)
def test_input_lines_are_checked_and_one_bad_line_fails_the_batch(
    client: Client, emulator: TogetherEmulator, tmp_path: Path, bad_line: dict[str, Any], named: str
) -> None:
    job = batch_of(client, tmp_path, lines(line("fine"), bad_line))
    emulator.advance(60)
    job = client.get(f"/batches/{job['id']}").json()
    assert job["status"] == "FAILED"
    assert named in job["error"]
    assert "output_file_id" not in job and "error_file_id" not in job


def test_a_model_together_does_not_batch_fails_the_batch(
    client: Client, emulator: TogetherEmulator, tmp_path: Path
) -> None:
    model = "deepseek-ai/DeepSeek-R1"
    job = batch_of(client, tmp_path, lines(line("a", model=model), line("b", model=model)))
    emulator.advance(60)
    job = client.get(f"/batches/{job['id']}").json()
    assert job["status"] == "FAILED"
    assert "not available for batch" in job["error"]


def test_lines_must_share_a_model(
    client: Client, emulator: TogetherEmulator, tmp_path: Path
) -> None:
    job = batch_of(client, tmp_path, lines(line("a"), line("b", model="Qwen/Qwen3-8B")))
    emulator.advance(60)
    job = client.get(f"/batches/{job['id']}").json()
    assert job["status"] == "FAILED"
    assert "Qwen/Qwen3-8B" in job["error"]


@pytest.mark.parametrize("key", [None, "together-other-key"])
def test_calls_need_the_key(emulator: TogetherEmulator, key: str | None) -> None:
    session = requests.Session()
    if key is not None:
        session.headers["authorization"] = f"Bearer {key}"
    answer = session.get(emulator.url + "/v1/batches")
    session.close()
    assert answer.status_code == 401
    assert_valid("ErrorData", answer.json())


def test_unknown_routes_answer_in_together_s_error_shape(client: Client) -> None:
    answer = client.get("/nothing-here")
    assert answer.status_code == 404
    assert_valid("ErrorData", answer.json())


# -- lifecycle and faults -------------------------------------------------------------------------


def test_cancel_keeps_what_finished(
    client: Client, emulator: TogetherEmulator, tmp_path: Path
) -> None:
    job = batch_of(client, tmp_path, lines(*(line(f"r{i}") for i in range(10))))
    emulator.advance(30 + 300)
    cancelled = client.session.post(f"{client.base}/batches/{job['id']}/cancel").json()
    assert cancelled["status"] == "CANCELLED"
    assert 0 < cancelled["progress"] < 100
    finished = client.get(f"/files/{cancelled['output_file_id']}/content").content.splitlines()
    assert 0 < len(finished) < 10
    again = client.session.post(f"{client.base}/batches/{job['id']}/cancel")
    assert again.status_code == 400
    assert "CANCELLED" in again.json()["error"]


def test_the_window_closes_on_a_running_batch(clock: ManualClock, tmp_path: Path) -> None:
    with TogetherEmulator(clock=clock, processing_seconds=1000, window_seconds=500) as emulator:
        client = Client(emulator)
        job = batch_of(client, tmp_path, lines(*(line(f"r{i}") for i in range(4))))
        clock.advance(600)
        job = client.get(f"/batches/{job['id']}").json()
        client.session.close()
    assert job["status"] == "EXPIRED"
    assert "output_file_id" in job


def test_the_kit_s_faults_are_declared(emulator: TogetherEmulator) -> None:
    assert {
        "rate_limit",
        "server_error",
        "overloaded",
        "unauthorized",
        "reset",
        "lost_create",
        "corrupt_result_line",
    } == emulator.FAULTS
    with pytest.raises(ValueError, match="cannot inject"):
        emulator.inject_fault("no-such-fault")


def test_failing_request_is_a_valid_request_that_fails(emulator: TogetherEmulator) -> None:
    request = emulator.failing_request("f", MODEL)
    assert request.model == MODEL
    assert "[emulator-fail:invalid_request]" in request.messages[0]["content"]
    assert chat("f").custom_id == request.custom_id
