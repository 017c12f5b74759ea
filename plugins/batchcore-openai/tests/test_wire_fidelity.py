"""The emulator is as strict as the API: every request body is checked against OpenAI's spec
(the create-batch body, uploads, and each input line's body against its endpoint's request
schema), refusals come in OpenAI's shapes, and every answer carries an ``x-request-id``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest
import requests
from openai_support import API_KEY, FINISHED, MODEL, schema_errors

from batchcore.errors import AuthenticationError
from batchcore.models import BatchRequest, ResultStatus
from batchcore.testing.openapi import SpecProblem
from batchcore_openai._emulation import describe_problem, spec_validator
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
CHAT_URL = "/v1/chat/completions"


def _line(custom_id: str, body: dict[str, Any], url: str = CHAT_URL, **extra: Any) -> bytes:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra}
    ).encode()


def _chat_body(**params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **params}


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.url + "/v1", api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


def _batch(client: openai.OpenAI, lines: list[bytes], endpoint: str = CHAT_URL) -> str:
    content = b"".join(line + b"\n" for line in lines)
    file_id = client.files.create(file=("in.jsonl", content), purpose="batch").id
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    ).id


# -- request ids ----------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id(emulator: OpenAIEmulator) -> None:
    url, auth = emulator.url, {"authorization": f"Bearer {API_KEY}"}
    emulator.inject_fault("rate_limit", route="/v1/files")
    answers = [
        requests.get(url + "/v1/batches", headers=auth),
        requests.get(url + "/v1/batches/batch_nope", headers=auth),
        requests.get(url + "/v1/batches"),
        requests.get(url + "/openai/batches", headers=auth),  # legacy Azure route, no version
        requests.post(url + "/v1/batches", headers=auth, json={"endpoint": CHAT_URL}),
        requests.get(url + "/v1/files", headers=auth),  # the injected 429
    ]
    assert [a.status_code for a in answers] == [200, 404, 401, 404, 400, 429]
    ids = [a.headers.get("x-request-id") or "" for a in answers]
    assert all(REQUEST_ID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_a_provider_error_names_the_request_id(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    [payload] = provider.prepare_payloads([_request("a")])
    emulator.inject_fault("unauthorized")
    with pytest.raises(AuthenticationError) as caught:
        provider.submit(payload)
    assert caught.value.request_id is not None
    assert REQUEST_ID.fullmatch(caught.value.request_id)


def test_result_lines_carry_request_ids(emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
    batch_id = _batch(client, [_line("a", _chat_body()), _line("b", _chat_body())])
    emulator.advance(FINISHED)
    output = client.batches.retrieve(batch_id).output_file_id
    assert output is not None
    lines = [json.loads(line) for line in client.files.content(output).text.splitlines()]
    ids = [line["response"]["request_id"] for line in lines]
    assert all(REQUEST_ID.fullmatch(i) for i in ids) and len(set(ids)) == 2


# -- the create-batch body and uploads ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"endpoint": CHAT_URL, "completion_window": "24h"},
            "missing_required_parameter",
            "input_file_id",
        ),
        (
            {"input_file_id": 5, "endpoint": CHAT_URL, "completion_window": "24h"},
            "invalid_type",
            "input_file_id",
        ),
        (
            {"input_file_id": "f", "endpoint": CHAT_URL, "completion_window": "1h"},
            "invalid_value",
            "completion_window",
        ),
        (
            {"input_file_id": "f", "endpoint": CHAT_URL, "completion_window": "24h", "x": 1},
            "unknown_parameter",
            "x",
        ),
        (
            {
                "input_file_id": "f",
                "endpoint": CHAT_URL,
                "completion_window": "24h",
                "output_expires_after": {"anchor": "created_at", "seconds": 10_000_000},
            },
            "number_above_max_value",
            "output_expires_after.seconds",
        ),
    ],
)
def test_a_create_body_the_spec_refuses_is_a_400(
    emulator: OpenAIEmulator, body: dict[str, Any], code: str, param: str
) -> None:
    answer = requests.post(
        emulator.url + "/v1/batches", headers={"authorization": f"Bearer {API_KEY}"}, json=body
    )
    assert answer.status_code == 400
    error = answer.json()
    assert schema_errors("ErrorResponse", error) == []
    assert (error["error"]["type"], error["error"]["code"], error["error"]["param"]) == (
        "invalid_request_error",
        code,
        param,
    )
    assert emulator.batch_count() == 0


def test_an_upload_the_spec_refuses_is_a_400(emulator: OpenAIEmulator) -> None:
    auth = {"authorization": f"Bearer {API_KEY}"}
    content = ("in.jsonl", _line("a", _chat_body()))
    cases = [
        ({"purpose": (None, "batch"), "colour": (None, "red")}, "colour"),
        (
            {
                "purpose": (None, "batch"),
                "expires_after[anchor]": (None, "created_at"),
                "expires_after[seconds]": (None, "60"),
            },
            "expires_after.seconds",
        ),
        ({"purpose": (None, "nonsense")}, "purpose"),
    ]
    for fields, param in cases:
        answer = requests.post(
            emulator.url + "/v1/files", headers=auth, files={**fields, "file": content}
        )
        assert answer.status_code == 400, fields
        assert answer.json()["error"]["param"] == param
    assert emulator.files() == []


# -- input lines ----------------------------------------------------------------------------------

BAD_LINES: list[tuple[bytes, str, str]] = [
    (_line("t", _chat_body(max_tokens="64")), "body.max_tokens", "Invalid type"),
    (_line("h", _chat_body(temperature=99)), "body.temperature", "above maximum"),
    (_line("k", _chat_body(top_k=5)), "body.top_k", "Unrecognized request argument"),
    (
        _line("c", {"model": MODEL, "messages": [{"role": "user"}]}),
        "body.messages[0].content",
        "Missing required parameter",
    ),
    (
        _line("n", {"model": MODEL, "messages": [{"role": "user", "content": 5}]}),
        "body.messages[0].content",
        "Invalid type",
    ),
    (
        _line(
            "p",
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ],
            },
        ),
        "body.messages[0].content[0].cache_control",
        "Unrecognized request argument",
    ),
    (_line("m", {"messages": [{"role": "user", "content": "x"}]}), "body.model", "Missing"),
    (_line("x", _chat_body(), priority="high"), "priority", "Unrecognized field"),
]


def test_bad_bodies_fail_the_batch_at_validation(
    emulator: OpenAIEmulator, client: openai.OpenAI
) -> None:
    good = _line("ok", _chat_body(max_completion_tokens=64, temperature=0.2))
    batch_id = _batch(client, [good, *(line for line, _, _ in BAD_LINES)])
    assert client.batches.retrieve(batch_id).status == "validating"
    emulator.advance(60)
    batch = emulator.batch(batch_id)
    assert batch["status"] == "failed"
    assert schema_errors("Batch", batch) == []
    errors = batch["errors"]["data"]
    assert [(e["line"], e["param"]) for e in errors] == [
        (number, param) for number, (_, param, _) in enumerate(BAD_LINES, start=2)
    ]
    for error, (_, _, words) in zip(errors, BAD_LINES, strict=True):
        assert error["code"] == "invalid_request"
        assert words in error["message"], error
    assert batch["output_file_id"] is None and batch["request_counts"]["total"] == 0


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (CHAT_URL, _chat_body(max_completion_tokens=16, n=2, seed=3, stop=["\n"])),
        (
            "/v1/embeddings",
            {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4},
        ),
        ("/v1/responses", {"model": MODEL, "input": "hi", "max_output_tokens": 64}),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "max_tokens": 5}),
        ("/v1/moderations", {"model": "omni-moderation-latest", "input": "hi"}),
    ],
)
def test_good_bodies_of_every_endpoint_run_and_answer_in_the_spec(
    emulator: OpenAIEmulator, client: openai.OpenAI, url: str, body: dict[str, Any]
) -> None:
    batch_id = _batch(client, [_line("a", body, url=url)], endpoint=url)
    emulator.advance(FINISHED)
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.output_file_id is not None
    [line] = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    schema = {
        CHAT_URL: "CreateChatCompletionResponse",
        "/v1/embeddings": "CreateEmbeddingResponse",
        "/v1/responses": "Response",
        "/v1/completions": "CreateCompletionResponse",
        "/v1/moderations": "CreateModerationResponse",
    }[url]
    assert schema_errors(schema, line["response"]["body"]) == []


def test_azure_lines_are_checked_too(azure_emulator: OpenAIEmulator) -> None:
    body = {"model": "batch-gpt4o", "messages": [{"role": "user", "content": "x"}], "top_k": 1}
    with openai.OpenAI(
        base_url=azure_emulator.url + "/openai/v1", api_key=API_KEY, max_retries=0
    ) as sdk:
        batch_id = _batch(sdk, [_line("a", body, url="/chat/completions")])
    azure_emulator.advance(60)
    batch = azure_emulator.batch(batch_id)
    assert batch["status"] == "Failed"
    assert batch["errors"]["data"][0]["param"] == "body.top_k"


# -- the wording of a spec problem ----------------------------------------------------------------


def _first(schema: str, body: Any) -> SpecProblem:
    return spec_validator().problems(schema, body, limit=1)[0]


def test_problems_are_worded_as_the_api_words_them() -> None:
    chat = "CreateChatCompletionRequest"
    unknown = describe_problem(_first(chat, _chat_body(top_k=1)))
    assert (unknown.message, unknown.code, unknown.param) == (
        "Unrecognized request argument supplied: top_k",
        "unknown_parameter",
        "top_k",
    )
    missing = describe_problem(_first(chat, {"model": "m"}), prefix="body")
    assert (missing.message, missing.code) == (
        "Missing required parameter: 'body.messages'.",
        "missing_required_parameter",
    )
    kind = describe_problem(_first(chat, _chat_body(n="2")))
    assert (kind.code, kind.param) == ("invalid_type", "n")
    assert kind.message.startswith("Invalid type for 'n': expected 'integer'")
    value = describe_problem(_first(chat, _chat_body(reasoning_effort="huge")))
    assert (value.code, value.param) == ("invalid_value", "reasoning_effort")
    assert "'huge'" in value.message
    low = describe_problem(_first(chat, _chat_body(presence_penalty=-3)))
    assert (low.code, low.param) == ("number_below_min_value", "presence_penalty")
    assert "Expected a value >= -2, but got -3 instead" in low.message


# -- through the provider -------------------------------------------------------------------------


def _request(custom_id: str, **fields: Any) -> BatchRequest:
    return BatchRequest.from_dict(
        {
            "custom_id": custom_id,
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            **fields,
        }
    )


def test_the_escape_hatch_reaches_the_emulator_which_refuses_what_openai_would(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    # provider_params pass through unchecked: here the API (the emulator) is the judge.
    bad = _request("bad", provider_params={"openai": {"top_k": 5}})
    fine = _request("fine", provider_params={"openai": {"prompt_cache_key": "k"}})
    [payload] = provider.prepare_payloads([bad, fine])
    handle = provider.submit(payload)
    emulator.advance(60)
    assert provider.poll_status(handle).raw_status == "failed"
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    refused = results["bad"].error
    assert refused is not None and results["bad"].status is ResultStatus.ERRORED
    assert (refused.code, refused.retryable) == ("invalid_request", False)
    assert "top_k" in (refused.message or "")
    assert results["fine"].error is not None and results["fine"].error.retryable


WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["c", "f"]},
        "days": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}


def test_structured_output_and_tool_calls_come_back_valid(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    structured = _request(
        "json",
        params={
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
            }
        },
    )
    tool = _request(
        "tool",
        params={
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
            "tool_choice": "required",
        },
    )
    responses = BatchRequest(
        custom_id="resp",
        model=MODEL,
        endpoint="/v1/responses",
        params={
            "input": "weather?",
            "text": {"format": {"type": "json_schema", "name": "weather", "schema": WEATHER}},
        },
    )
    handles = [provider.submit(p) for p in provider.prepare_payloads([structured, tool, responses])]
    emulator.advance(FINISHED)
    results = {r.custom_id: r for h in handles for r in provider.fetch_results(h)}
    assert results["json"].text is not None and results["resp"].text is not None
    jsonschema.validate(json.loads(results["json"].text), WEATHER)
    jsonschema.validate(json.loads(results["resp"].text), WEATHER)
    tool_result = results["tool"]
    assert tool_result.ok and tool_result.text is None and tool_result.response is not None
    call = tool_result.response["choices"][0]["message"]["tool_calls"][0]
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)


def test_usage_reports_cached_and_reasoning_tokens(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    request = _request(
        "r",
        model="o4-mini",
        messages=[{"role": "user", "content": "one two three four"}],
        params={"reasoning_effort": "high", "prompt_cache_key": "shared-prefix"},
    )
    [payload] = provider.prepare_payloads([request])
    handle = provider.submit(payload)
    emulator.advance(FINISHED)
    [result] = provider.fetch_results(handle)
    assert result.usage is not None
    usage = result.usage
    assert (usage.input_tokens, usage.cache_read_tokens) == (4, 2)
    assert (usage.output_tokens, usage.reasoning_tokens) == (10, 5)
    assert usage.total_tokens == 14
    batch = emulator.batch(handle.batch_id)
    assert batch["usage"]["input_tokens_details"]["cached_tokens"] == 2
    assert batch["usage"]["output_tokens_details"]["reasoning_tokens"] == 5
