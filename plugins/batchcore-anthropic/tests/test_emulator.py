"""The emulator speaks the Message Batches API: raw ``requests`` calls, every answer validated
against the spec's schemas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import requests

from batchcore import BatchRequest, BatchState, ResultStatus
from batchcore.testing import ManualClock
from batchcore.testing.contract_backend import FAULT_KINDS, LOST_CREATE, ContractBackend
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator

Spec = Callable[[str, Any], None]
MODEL = "claude-haiku-4-5"


def params(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


class Api:
    """Raw calls to the emulator, with the API's headers; every answer must carry the
    ``request-id`` header the API sends."""

    def __init__(self, emulator: AnthropicEmulator) -> None:
        self.base = emulator.url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update(
            {"x-api-key": emulator.api_key, "anthropic-version": "2023-06-01"}
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=10, **kwargs)
        assert response.headers["request-id"].startswith("req_")
        return response

    def create(self, *items: tuple[str, dict[str, Any]]) -> requests.Response:
        body = {"requests": [{"custom_id": cid, "params": p} for cid, p in items]}
        return self.call("POST", "/v1/messages/batches", json=body)


@pytest.fixture
def api(emulator: AnthropicEmulator) -> Iterator[Api]:
    client = Api(emulator)
    yield client
    client.session.close()


def error_of(response: requests.Response, spec: Spec) -> tuple[int, str, str]:
    body = response.json()
    spec("ErrorResponse", body)
    assert response.headers["request-id"] == body["request_id"]
    return response.status_code, body["error"]["type"], body["error"]["message"]


# -- the happy path, spec-validated ----------------------------------------------------------------


def test_lifecycle_objects_match_the_spec(
    api: Api, emulator: AnthropicEmulator, spec: Spec
) -> None:
    created = api.create(("a", params()), ("b", params(model="claude-opus-4-1")))
    assert created.status_code == 200
    batch = created.json()
    spec("MessageBatch", batch)
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == {
        "processing": 2,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch["results_url"] is None and batch["ended_at"] is None
    assert batch["created_at"] == "2026-01-01T00:00:00Z"
    assert batch["expires_at"] == "2026-01-02T00:00:00Z"

    emulator.advance(45)  # one request done, but counts move only at the end, as the API's do
    retrieved = api.call("GET", f"/v1/messages/batches/{batch['id']}").json()
    spec("MessageBatch", retrieved)
    assert retrieved["request_counts"]["processing"] == 2

    emulator.advance(15)
    ended = api.call("GET", f"/v1/messages/batches/{batch['id']}").json()
    spec("MessageBatch", ended)
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["succeeded"] == 2
    assert ended["ended_at"] == "2026-01-01T00:01:00Z"
    assert ended["results_url"] == f"{emulator.url}/v1/messages/batches/{batch['id']}/results"

    results = api.call("GET", f"/v1/messages/batches/{batch['id']}/results")
    assert results.status_code == 200
    lines = [orjson.loads(line) for line in results.content.splitlines()]
    for line in lines:
        spec("MessageBatchIndividualResponse", line)
    assert {line["custom_id"]: line["result"]["message"]["model"] for line in lines} == {
        "a": MODEL,
        "b": "claude-opus-4-1",
    }

    listed = api.call("GET", "/v1/messages/batches").json()
    spec("ListResponse_MessageBatch_", listed)
    assert [b["id"] for b in listed["data"]] == [batch["id"]]

    deleted = api.call("DELETE", f"/v1/messages/batches/{batch['id']}")
    spec("DeleteMessageBatchResponse", deleted.json())
    assert deleted.json() == {"id": batch["id"], "type": "message_batch_deleted"}
    assert api.call("GET", f"/v1/messages/batches/{batch['id']}").status_code == 404


def test_every_kind_of_result_matches_the_spec(
    api: Api, emulator: AnthropicEmulator, spec: Spec
) -> None:
    emulator.processing_seconds = 40 * 3600
    batch = api.create(
        ("ok", params()),
        ("bad", params(metadata={"user_id": "emulator-error:overloaded_error"})),
        ("late-1", params()),
        ("late-2", params()),
    ).json()
    emulator.advance(24 * 3600)
    lines = api.call("GET", f"/v1/messages/batches/{batch['id']}/results").content.splitlines()
    kinds = {}
    for raw in lines:
        line = orjson.loads(raw)
        spec("MessageBatchIndividualResponse", line)
        kinds[line["custom_id"]] = line["result"]["type"]
    assert kinds == {"ok": "succeeded", "bad": "errored", "late-1": "expired", "late-2": "expired"}

    cancelled = api.create(("x", params()), ("y", params())).json()
    api.call("POST", f"/v1/messages/batches/{cancelled['id']}/cancel")
    emulator.advance(10)
    for raw in api.call(
        "GET", f"/v1/messages/batches/{cancelled['id']}/results"
    ).content.splitlines():
        line = orjson.loads(raw)
        spec("MessageBatchIndividualResponse", line)
        assert line["result"]["type"] == "canceled"


def test_cancel_moves_through_canceling(api: Api, emulator: AnthropicEmulator, spec: Spec) -> None:
    batch = api.create(("a", params())).json()
    canceling = api.call("POST", f"/v1/messages/batches/{batch['id']}/cancel").json()
    spec("MessageBatch", canceling)
    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] == "2026-01-01T00:00:00Z"
    emulator.advance(5)
    ended = api.call("GET", f"/v1/messages/batches/{batch['id']}").json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["canceled"] == 1


# -- validation like the API -----------------------------------------------------------------------


def test_authentication(emulator: AnthropicEmulator, spec: Spec) -> None:
    url = emulator.url + "/v1/messages/batches"
    version = {"anthropic-version": "2023-06-01"}
    missing = requests.get(url, headers=version, timeout=10)
    assert error_of(missing, spec)[:2] == (401, "authentication_error")
    wrong = requests.get(url, headers={**version, "x-api-key": "sk-ant-nope"}, timeout=10)
    assert error_of(wrong, spec)[:2] == (401, "authentication_error")
    no_version = requests.get(url, headers={"x-api-key": emulator.api_key}, timeout=10)
    assert error_of(no_version, spec)[:2] == (400, "invalid_request_error")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"requests": []}, "requests: [] should be non-empty", id="empty requests"),
        pytest.param({}, "requests: Field required", id="no requests"),
        pytest.param(
            {"requests": [], "metadata": {}}, "metadata: Extra inputs", id="extra top-level field"
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(), "priority": 1}]},
            "requests.0.priority: Extra inputs",
            id="extra request field",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(seed=1)}]},
            "requests.0.params.seed: Extra inputs",
            id="extra params field",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a b", "params": params()}]},
            "requests.0.custom_id: 'a b' does not match",
            id="bad custom_id",
        ),
        pytest.param(
            {"requests": [{"custom_id": "x" * 65, "params": params()}]},
            "requests.0.custom_id",
            id="custom_id too long",
        ),
        pytest.param(
            {
                "requests": [
                    {"custom_id": "a", "params": params()},
                    {"custom_id": "a", "params": params()},
                ]
            },
            "requests.1.custom_id: custom_id 'a' is used more than once",
            id="duplicate custom_id",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(max_tokens=None)}]},
            "requests.0.params.max_tokens: Field required",
            id="missing max_tokens",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(max_tokens=0)}]},
            "requests.0.params.max_tokens",
            id="max_tokens zero",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(stream=True)}]},
            "requests.0.params.stream",
            id="stream",
        ),
        pytest.param(
            {"requests": [{"params": params()}]},
            "requests.0.custom_id: Field required",
            id="no custom_id",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(temperature=1.5)}]},
            "requests.0.params.temperature: 1.5 is greater than the maximum of 1",
            id="temperature above the spec's range",
        ),
        pytest.param(
            {
                "requests": [
                    {
                        "custom_id": "a",
                        "params": params(
                            messages=[
                                {
                                    "role": "user",
                                    "content": [{"type": "text", "text": "Hi", "detail": "x"}],
                                }
                            ]
                        ),
                    }
                ]
            },
            "requests.0.params.messages.0.content.0.detail: Extra inputs are not permitted",
            id="extra field in a content block",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(top_k="many")}]},
            "requests.0.params.top_k: 'many' is not of type 'integer'",
            id="wrong type",
        ),
        pytest.param(
            {"requests": [{"custom_id": "a", "params": params(metadata={"user_id": "u" * 513})}]},
            "requests.0.params.metadata.user_id",
            id="user_id too long",
        ),
        pytest.param(
            {
                "requests": [
                    {
                        "custom_id": "a",
                        "params": params(output_config={"format": {"type": "json_object"}}),
                    }
                ]
            },
            "requests.0.params.output_config.format",
            id="output format without a schema",
        ),
    ],
)
def test_create_rejects_like_the_api(
    api: Api, emulator: AnthropicEmulator, spec: Spec, body: dict[str, Any], message: str
) -> None:
    response = api.call("POST", "/v1/messages/batches", json=body)
    status, kind, text = error_of(response, spec)
    assert (status, kind) == (400, "invalid_request_error")
    assert text.startswith(message)
    assert emulator.batch_ids() == []


def test_create_takes_whatever_the_spec_allows(api: Api, emulator: AnthropicEmulator) -> None:
    # The emulator checks bodies against Anthropic's spec, not against what batchcore's
    # conversion happens to produce: fields the conversion never writes pass too.
    everything = params(
        system=[
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        cache_control={"type": "ephemeral", "ttl": "1h"},
        container=None,
        inference_geo="us",
        service_tier="standard_only",
        thinking={"type": "adaptive"},
        output_config={
            "effort": "low",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
        top_k=5,
        top_p=0.9,
        stop_sequences=["END"],
        metadata={"user_id": "user-1"},
        tools=[
            {
                "name": "lookup",
                "input_schema": {"type": "object", "properties": {}},
                "strict": True,
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    created = api.create(("a", everything))
    assert created.status_code == 200, created.text
    assert emulator.submitted_params(created.json()["id"]) == {"a": everything}


def test_an_emulator_fault_is_the_api_500_with_a_request_id(clock: ManualClock, spec: Spec) -> None:
    class Broken(AnthropicEmulator):
        def _retrieve(self, request: Any) -> Any:
            raise RuntimeError("the disk is on fire")

    with Broken(clock=clock) as broken:
        response = Api(broken).call("GET", "/v1/messages/batches/msgbatch_x")
    status, kind, message = error_of(response, spec)
    assert (status, kind) == (500, "api_error")
    assert "RuntimeError: the disk is on fire" in message


def test_create_rejects_bad_json_and_too_many_requests(
    api: Api, emulator: AnthropicEmulator, spec: Spec
) -> None:
    bad = api.call(
        "POST",
        "/v1/messages/batches",
        data=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert error_of(bad, spec)[:2] == (400, "invalid_request_error")
    emulator.max_requests = 2
    many = api.create(("a", params()), ("b", params()), ("c", params()))
    assert "at most 2 items" in error_of(many, spec)[2]


@pytest.mark.parametrize(
    ("request_params", "error_type"),
    [
        pytest.param(params(model="gpt-4o"), "not_found_error", id="unknown model"),
        pytest.param(params(messages=[]), "invalid_request_error", id="no messages"),
        pytest.param(
            params(messages=[{"role": "system", "content": "x"}]),
            "invalid_request_error",
            id="bad role",
        ),
        pytest.param(
            params(messages=[{"role": "user", "content": ""}]),
            "invalid_request_error",
            id="empty text",
        ),
        pytest.param(
            params(metadata={"user_id": "emulator-error:api_error"}), "api_error", id="scripted"
        ),
    ],
)
def test_params_content_is_checked_when_run(
    api: Api,
    emulator: AnthropicEmulator,
    spec: Spec,
    request_params: dict[str, Any],
    error_type: str,
) -> None:
    created = api.create(("a", request_params))
    assert created.status_code == 200  # accepted: the API checks content asynchronously
    emulator.advance(61)
    [line] = [
        orjson.loads(x)
        for x in api.call(
            "GET", f"/v1/messages/batches/{created.json()['id']}/results"
        ).content.splitlines()
    ]
    spec("MessageBatchIndividualResponse", line)
    assert line["result"]["type"] == "errored"
    assert line["result"]["error"]["error"]["type"] == error_type


SCHEMA_FORMAT = {"format": {"type": "json_schema", "schema": {"type": "object"}}}


def _results(api: Api, emulator: AnthropicEmulator, batch_id: str) -> dict[str, Any]:
    emulator.advance(61)
    lines = api.call("GET", f"/v1/messages/batches/{batch_id}/results").content.splitlines()
    return {line["custom_id"]: line["result"] for line in map(orjson.loads, lines)}


@pytest.mark.parametrize(
    ("request_params", "message"),
    [
        pytest.param(
            params(model="claude-opus-4-7", temperature=0.5),
            "`temperature` is deprecated for this model.",
            id="temperature on Opus 4.7",
        ),
        pytest.param(
            params(model="claude-opus-4-8-20260528", temperature=0),
            "`temperature` is deprecated for this model.",
            id="temperature on a dated Opus 4.8",
        ),
        pytest.param(
            params(model="claude-sonnet-5", top_p=0.9),
            "`top_p` is deprecated for this model.",
            id="top_p on Sonnet 5",
        ),
        pytest.param(
            params(model="claude-sonnet-4-5", temperature=0.5, top_p=0.9),
            "`temperature` and `top_p` cannot both be specified for this model.",
            id="both on Sonnet 4.5",
        ),
        pytest.param(
            params(model="claude-opus-4-1-20250805", temperature=0.5, top_p=0.9),
            "`temperature` and `top_p` cannot both be specified for this model.",
            id="both on Opus 4.1",
        ),
        pytest.param(
            params(model="claude-3-haiku-20240307", output_config=SCHEMA_FORMAT),
            "output_config.format",
            id="structured output on Claude 3 Haiku",
        ),
        pytest.param(
            params(model="claude-opus-4-1", output_config=SCHEMA_FORMAT),
            "output_config.format",
            id="structured output on Opus 4.1",
        ),
    ],
)
def test_what_a_model_refuses_ends_errored(
    api: Api,
    emulator: AnthropicEmulator,
    spec: Spec,
    request_params: dict[str, Any],
    message: str,
) -> None:
    created = api.create(("a", request_params))
    assert created.status_code == 200  # the spec allows it: the model refuses it when run
    result = _results(api, emulator, created.json()["id"])["a"]
    spec("ErroredResult", result)
    assert result["error"]["error"]["type"] == "invalid_request_error"
    assert result["error"]["error"]["message"].startswith(message)


@pytest.mark.parametrize(
    "request_params",
    [
        pytest.param(params(model="claude-opus-4-7", temperature=1.0, top_p=1), id="neutral"),
        pytest.param(params(model="claude-sonnet-5", top_p=0.99), id="top_p 0.99"),
        pytest.param(params(model="claude-opus-4-6", temperature=0), id="Opus 4.6 temperature"),
        pytest.param(params(model="claude-haiku-4-5", top_p=0.5), id="one of the two"),
        pytest.param(
            params(model="claude-3-7-sonnet-20250219", temperature=0.3, top_p=0.9),
            id="both on an older model",
        ),
        pytest.param(
            params(model="claude-haiku-4-5", output_config=SCHEMA_FORMAT), id="structured"
        ),
    ],
)
def test_what_a_model_takes_succeeds(
    api: Api, emulator: AnthropicEmulator, request_params: dict[str, Any]
) -> None:
    created = api.create(("a", request_params))
    assert _results(api, emulator, created.json()["id"])["a"]["type"] == "succeeded"


def test_a_value_sent_anyway_comes_back_as_the_api_refusal(
    make_provider: Callable[..., AnthropicBatchProvider], emulator: AnthropicEmulator
) -> None:
    # provider_params passes unchecked: the emulator, like the API, refuses it per request.
    provider = make_provider()
    request = BatchRequest(
        custom_id="hot",
        model="claude-opus-4-7",
        messages=[{"role": "user", "content": "Hi"}],
        params={"max_tokens": 16},
        provider_params={"anthropic": {"temperature": 0.5}},
    )
    [payload] = provider.prepare_payloads([request])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(61)
    [result] = provider.fetch_results(handle)
    assert result.status is ResultStatus.ERRORED and result.error is not None
    assert (result.error.code, result.error.status_code) == ("invalid_request_error", 400)
    assert not result.retryable


def test_unknown_ids_and_early_calls(api: Api, emulator: AnthropicEmulator, spec: Spec) -> None:
    for method, path in [
        ("GET", "/v1/messages/batches/msgbatch_nope"),
        ("POST", "/v1/messages/batches/msgbatch_nope/cancel"),
        ("GET", "/v1/messages/batches/msgbatch_nope/results"),
        ("DELETE", "/v1/messages/batches/msgbatch_nope"),
    ]:
        assert error_of(api.call(method, path), spec)[:2] == (404, "not_found_error")
    batch = api.create(("a", params())).json()
    early = api.call("GET", f"/v1/messages/batches/{batch['id']}/results")
    assert error_of(early, spec)[:2] == (400, "invalid_request_error")
    undeletable = api.call("DELETE", f"/v1/messages/batches/{batch['id']}")
    assert "still processing" in error_of(undeletable, spec)[2]


def test_results_are_archived_after_29_days(
    api: Api, emulator: AnthropicEmulator, spec: Spec
) -> None:
    batch = api.create(("a", params())).json()
    emulator.advance(29 * 86400 - 1)
    assert api.call("GET", f"/v1/messages/batches/{batch['id']}/results").status_code == 200
    emulator.advance(1)
    archived = api.call("GET", f"/v1/messages/batches/{batch['id']}").json()
    spec("MessageBatch", archived)
    assert archived["archived_at"] == "2026-01-30T00:00:00Z"
    gone = api.call("GET", f"/v1/messages/batches/{batch['id']}/results")
    assert error_of(gone, spec)[:2] == (404, "not_found_error")


def test_propagation_delay(api: Api, emulator: AnthropicEmulator) -> None:
    emulator.not_found_seconds = 3
    batch = api.create(("a", params())).json()
    assert api.call("GET", f"/v1/messages/batches/{batch['id']}").status_code == 404
    emulator.advance(3)
    assert api.call("GET", f"/v1/messages/batches/{batch['id']}").status_code == 200


def test_list_pages_newest_first(api: Api, emulator: AnthropicEmulator, spec: Spec) -> None:
    ids = [api.create((f"r{i}", params())).json()["id"] for i in range(5)]
    newest = list(reversed(ids))
    first = api.call("GET", "/v1/messages/batches", params={"limit": 2}).json()
    spec("ListResponse_MessageBatch_", first)
    assert [b["id"] for b in first["data"]] == newest[:2]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (newest[0], newest[1], True)
    second = api.call(
        "GET", "/v1/messages/batches", params={"limit": 2, "after_id": first["last_id"]}
    ).json()
    assert [b["id"] for b in second["data"]] == newest[2:4]
    last = api.call(
        "GET", "/v1/messages/batches", params={"limit": 2, "after_id": second["last_id"]}
    ).json()
    assert ([b["id"] for b in last["data"]], last["has_more"]) == (newest[4:], False)
    back = api.call(
        "GET", "/v1/messages/batches", params={"limit": 2, "before_id": newest[4]}
    ).json()
    assert [b["id"] for b in back["data"]] == newest[2:4]
    assert api.call("GET", "/v1/messages/batches", params={"limit": 0}).status_code == 400


# -- the backend the conformance kit drives ----------------------------------------------------


def test_is_a_contract_backend(emulator: AnthropicEmulator, api: Api) -> None:
    assert isinstance(emulator, ContractBackend)
    assert frozenset(FAULT_KINDS) | {LOST_CREATE, "corrupt_result_line"} == emulator.FAULTS
    for kind in FAULT_KINDS:
        assert emulator.inject_fault(kind) is None
        before = emulator.call_count()
        try:
            response = api.call("GET", "/v1/messages/batches")
        except requests.ConnectionError:
            assert kind == "reset"
        else:
            assert response.status_code in {429, 500, 529, 401}
        assert emulator.call_count() == before + 1
    with pytest.raises(ValueError, match="meteor_strike"):
        emulator.inject_fault("meteor_strike")
    assert api.call("GET", "/v1/messages/batches").status_code == 200


def test_lost_create_runs_the_create_and_never_answers(
    emulator: AnthropicEmulator, api: Api
) -> None:
    assert emulator.CREATE_ROUTE == ("POST", "/v1/messages/batches")
    assert emulator.batch_count() == 0
    emulator.inject_fault(LOST_CREATE)
    assert api.call("GET", "/v1/messages/batches").status_code == 200  # only the create
    with pytest.raises(requests.Timeout):
        api.session.post(
            emulator.url + "/v1/messages/batches",
            json={"requests": [{"custom_id": "a", "params": params()}]},
            timeout=0.5,
        )
    assert emulator.batch_count() == 1
    assert len(emulator.batch_ids()) == 1
    assert api.create(("b", params())).status_code == 200  # the next create answers
    assert emulator.batch_count() == 2


def test_batch_count_includes_deleted_batches(api: Api, emulator: AnthropicEmulator) -> None:
    batch = api.create(("a", params())).json()
    emulator.advance(61)
    assert api.call("DELETE", f"/v1/messages/batches/{batch['id']}").status_code == 200
    assert emulator.batch_ids() == []
    assert emulator.batch_count() == 1


def test_advance_on_a_callable_clock() -> None:
    with AnthropicEmulator(clock=lambda: 1_000_000.0) as emulator:
        assert emulator.now() == 1_000_000.0
        emulator.advance(90)
        assert emulator.now() == 1_000_090.0
        with pytest.raises(ValueError, match="backwards"):
            emulator.advance(-1)


def test_a_batch_of_100k_requests(clock: ManualClock) -> None:
    requests_ = [
        BatchRequest(
            custom_id=f"req-{i}",
            model=MODEL,
            messages=[{"role": "user", "content": f"Question {i}"}],
            params={"max_tokens": 8},
        )
        for i in range(100_000)
    ]
    with AnthropicEmulator(clock=clock) as emulator:
        provider = AnthropicBatchProvider(
            config={"base_url": emulator.url, "api_key": emulator.api_key}
        )
        provider.clock = clock.now
        [payload] = provider.prepare_payloads(requests_)
        handle = provider.submit(payload)
        payload.discard()
        emulator.advance(61)
        status = provider.poll_status(handle)
        assert (status.state, status.total, status.completed) == (
            BatchState.COMPLETED,
            100_000,
            100_000,
        )
        seen = 0
        for result in provider.fetch_results(handle):
            assert result.status is ResultStatus.SUCCEEDED
            seen += 1
        assert seen == 100_000
        provider.close()
