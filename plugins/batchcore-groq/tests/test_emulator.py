"""The Groq emulator on the wire: Groq's window, endpoint, list shape and limits, over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from groq_support import API_KEY, FINISHED

from batchcore.testing import ContractBackend, ManualClock
from batchcore_groq.testing import API_PATH, GroqEmulator

LINE = {
    "custom_id": "a",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}]},
}


class Client:
    """Plain HTTP to the emulator, as any OpenAI-compatible client would speak to Groq."""

    def __init__(self, emulator: GroqEmulator) -> None:
        self.root = emulator.url + API_PATH
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def upload(self, lines: list[dict[str, Any]]) -> str:
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        answer = self.session.post(
            self.root + "/files",
            data={"purpose": "batch"},
            files={"file": ("input.jsonl", content, "application/jsonl")},
        )
        assert answer.status_code == 200, answer.text
        file_id: str = answer.json()["id"]
        return file_id

    def create(self, **fields: Any) -> requests.Response:
        return self.session.post(self.root + "/batches", json=fields)


@pytest.fixture
def client(emulator: GroqEmulator) -> Client:
    return Client(emulator)


@pytest.mark.parametrize("window", ["24h", "36h", "168h", "1d", "7d"])
def test_windows_from_24h_to_7d_create_a_batch_that_shows_its_window(
    client: Client, window: str
) -> None:
    file_id = client.upload([LINE])
    answer = client.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window=window
    )
    assert answer.status_code == 200, answer.text
    batch = answer.json()
    assert batch["completion_window"] == window
    assert batch["status"] == "validating"
    seconds = int(window[:-1]) * (86_400 if window.endswith("d") else 3600)
    assert batch["expires_at"] - batch["created_at"] == seconds


@pytest.mark.parametrize("window", ["23h", "8d", "169h", "2w", "24 hours", ""])
def test_other_windows_are_refused_with_a_400(
    client: Client, emulator: GroqEmulator, window: str
) -> None:
    file_id = client.upload([LINE])
    answer = client.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window=window
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "completion_window" and error["type"] == "invalid_request_error"
    assert emulator.batch_count() == 0


@pytest.mark.parametrize("endpoint", ["/v1/embeddings", "/v1/responses", "/v1/completions"])
def test_only_chat_completion_batches_are_created(
    client: Client, emulator: GroqEmulator, endpoint: str
) -> None:
    file_id = client.upload([LINE])
    answer = client.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "endpoint"
    assert emulator.batch_count() == 0


def test_a_create_without_a_window_is_refused(client: Client, emulator: GroqEmulator) -> None:
    file_id = client.upload([LINE])
    answer = client.create(input_file_id=file_id, endpoint="/v1/chat/completions")
    assert answer.status_code == 400
    assert emulator.batch_count() == 0


def test_the_list_is_groqs_shape_newest_first(client: Client) -> None:
    ids = []
    for window in ("24h", "2d", "3d"):
        answer = client.create(
            input_file_id=client.upload([LINE]),
            endpoint="/v1/chat/completions",
            completion_window=window,
            metadata={"job": window},
        )
        ids.append(answer.json()["id"])
    listed = client.session.get(client.root + "/batches").json()
    assert set(listed) == {"object", "data"}
    assert listed["object"] == "list"
    assert [b["id"] for b in listed["data"]] == ids[::-1]
    assert [b["completion_window"] for b in listed["data"]] == ["3d", "2d", "24h"]
    assert [b["metadata"] for b in listed["data"]] == [{"job": "3d"}, {"job": "2d"}, {"job": "24h"}]


def test_without_echoed_metadata_batches_carry_none(client: Client, emulator: GroqEmulator) -> None:
    emulator.echo_metadata = False
    answer = client.create(
        input_file_id=client.upload([LINE]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "1"},
    )
    assert "metadata" not in answer.json()
    assert all("metadata" not in b for b in emulator.batches())
    assert emulator.created_batch_requests[-1]["metadata"] == {"job": "1"}


def test_a_batch_expires_at_the_end_of_its_own_window(clock: ManualClock) -> None:
    with GroqEmulator(clock=clock, api_key=API_KEY, processing_seconds=3 * 86_400) as emulator:
        client = Client(emulator)
        ids = {
            window: client.create(
                input_file_id=client.upload([LINE, {**LINE, "custom_id": "b"}]),
                endpoint="/v1/chat/completions",
                completion_window=window,
            ).json()["id"]
            for window in ("2d", "7d")
        }
        emulator.advance(2 * 86_400 + 1)
        assert emulator.batch(ids["2d"])["status"] == "expired"
        assert emulator.batch(ids["7d"])["status"] == "in_progress"
        emulator.advance(2 * 86_400)
        assert emulator.batch(ids["7d"])["status"] == "completed"


def test_the_limits_are_groqs_by_default(emulator: GroqEmulator) -> None:
    assert (emulator.max_requests, emulator.max_bytes) == (50_000, 100_000_000)


def test_an_input_over_the_request_limit_fails_the_batch(clock: ManualClock) -> None:
    with GroqEmulator(clock=clock, api_key=API_KEY, max_requests=2) as emulator:
        client = Client(emulator)
        lines = [{**LINE, "custom_id": f"r{i}"} for i in range(3)]
        batch = client.create(
            input_file_id=client.upload(lines),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        ).json()
        emulator.advance(FINISHED)
        failed = emulator.batch(batch["id"])
        assert failed["status"] == "failed"
        assert failed["errors"]["data"][0]["code"] == "too_many_tasks"


def test_it_is_a_contract_backend_with_groqs_create_route(emulator: GroqEmulator) -> None:
    assert isinstance(emulator, ContractBackend)
    assert emulator.CREATE_ROUTE == ("POST", "/openai/v1/batches")
    assert {"rate_limit", "server_error", "overloaded", "unauthorized", "reset"} <= emulator.FAULTS
    assert "lost_create" in emulator.FAULTS


def test_a_lost_create_is_carried_out_on_groqs_route(
    client: Client, emulator: GroqEmulator
) -> None:
    file_id = client.upload([LINE])
    emulator.inject_fault("lost_create")
    with pytest.raises(requests.ReadTimeout):
        client.session.post(
            client.root + "/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "7d",
            },
            timeout=0.5,
        )
    [batch] = emulator.batches()
    assert batch["completion_window"] == "7d"


def test_a_wrong_key_is_refused(emulator: GroqEmulator) -> None:
    answer = requests.get(
        emulator.url + API_PATH + "/batches", headers={"Authorization": "Bearer gsk_wrong"}
    )
    assert answer.status_code == 401
