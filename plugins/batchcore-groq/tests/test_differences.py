"""What Groq refuses that OpenAI takes (``logprobs``, ``top_logprobs``, ``logit_bias``, a
message ``name``, structured output on models without it): refused offline naming the field,
answered with a 400 by the emulator when sent anyway, and structured output answered with JSON
valid against its schema where Groq has it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import requests
from groq_support import API_KEY, FINISHED, Factory, chat
from pydantic import BaseModel

from batchcore.errors import InvalidRequestError
from batchcore.models import BatchRequest, ResultStatus
from batchcore.structured import response_format
from batchcore_groq import _mapping as groq
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator, groq_request_rules

CHAT = "/v1/chat/completions"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def json_schema(*, strict: bool | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "city", "schema": SCHEMA}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def named(model: str = "llama-3.1-8b-instant") -> BatchRequest:
    return BatchRequest.from_dict(
        {
            "custom_id": "a",
            "model": model,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi", "name": "ann"},
            ],
        }
    )


# -- offline ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (chat("a", logprobs=True), "params.logprobs", "Groq"),
        (chat("a", logprobs=False), "params.logprobs", "Groq"),  # "if they are supplied"
        (chat("a", top_logprobs=2), "params.top_logprobs", "Groq"),
        (chat("a", logit_bias={"50256": -100}), "params.logit_bias", "Groq"),
        (named(), "messages[1].name", "message name"),
        (
            chat("a", response_format=json_schema()),
            "params.response_format",
            "openai/gpt-oss-20b",
        ),
        (
            chat(
                "a", model="openai/gpt-oss-safeguard-20b", response_format=json_schema(strict=True)
            ),
            "params.response_format.json_schema.strict",
            "strict to false",
        ),
        (
            chat(
                "a",
                model="meta-llama/llama-4-maverick-17b-128e-instruct",
                response_format=json_schema(),
            ),
            "params.response_format",
            "json_object",
        ),
    ],
)
def test_what_groq_refuses_is_refused_offline(
    request_: BatchRequest, field: str, words: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        GroqBatchProvider().prepare_payloads([request_])
    error = caught.value
    assert (error.custom_id, error.field, error.provider) == ("a", field, "groq")
    assert field in str(error) and words in str(error)


@pytest.mark.parametrize(
    "request_",
    [
        chat("a", model="openai/gpt-oss-20b", response_format=json_schema(strict=True)),
        chat("a", model="openai/gpt-oss-120b", response_format=json_schema()),
        chat("a", model="openai/gpt-oss-safeguard-20b", response_format=json_schema(strict=False)),
        chat("a", model="moonshotai/kimi-k2-instruct-0905", response_format=json_schema()),
        chat("a", model="meta-llama/llama-4-scout-17b-16e-instruct", response_format=json_schema()),
        chat("a", response_format={"type": "json_object"}),  # JSON mode: every model
        chat("a", logprobs=None, top_logprobs=None),  # null: OpenAI's "not given"
    ],
)
def test_what_groq_takes_is_written(request_: BatchRequest) -> None:
    [payload] = GroqBatchProvider().prepare_payloads([request_])
    payload.discard()


def test_the_rules_are_declared_through_the_openai_providers_hooks() -> None:
    assert GroqBatchProvider.REFUSED_MESSAGE_KEYS == groq.REFUSED_MESSAGE_KEYS
    assert GroqBatchProvider.REFUSED_MESSAGE_KEYS.keys() == {"name"}
    assert GroqBatchProvider.STRUCTURED_OUTPUT_MODELS == groq.STRUCTURED_OUTPUT_MODELS
    assert GroqBatchProvider.STRICT_STRUCTURED_OUTPUT_MODELS == groq.STRICT_STRUCTURED_OUTPUT_MODELS
    assert groq.STRICT_STRUCTURED_OUTPUT_MODELS == ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
    assert set(groq.STRICT_STRUCTURED_OUTPUT_MODELS) <= set(groq.STRUCTURED_OUTPUT_MODELS)
    assert {rule.param for rule in GroqBatchProvider.MODEL_RULES} == {
        "n",
        "logprobs",
        "top_logprobs",
        "logit_bias",
    }


def test_no_groq_config_changes_an_answer() -> None:
    assert frozenset() == GroqBatchProvider.ANSWER_CONFIG_KEYS
    request = chat("a")
    base = GroqBatchProvider().fingerprint(request)
    assert GroqBatchProvider(config={"completion_window": "7d"}).fingerprint(request) == base
    elsewhere = GroqBatchProvider(config={"base_url": "https://proxy.example/openai/v1"})
    assert elsewhere.fingerprint(request) != base  # another server: another answer


# -- the emulator, over HTTP ------------------------------------------------------------------


def _line(custom_id: str, model: str = "llama-3.1-8b-instant", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}], **body},
    }


def _run_lines(emulator: GroqEmulator, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Upload *lines*, create a batch, let it finish; its error-file lines by custom_id."""
    root = emulator.url + API_PATH
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        uploaded = session.post(
            root + "/files",
            data={"purpose": "batch"},
            files={"file": ("input.jsonl", content, "application/jsonl")},
        ).json()
        created = session.post(
            root + "/batches",
            json={"input_file_id": uploaded["id"], "endpoint": CHAT, "completion_window": "24h"},
        ).json()
        emulator.advance(FINISHED)
        batch = session.get(f"{root}/batches/{created['id']}").json()
        assert batch["status"] == "completed"
        if batch["error_file_id"] is None:
            return {}
        errors = session.get(f"{root}/files/{batch['error_file_id']}/content").content
    return {line["custom_id"]: line for line in map(json.loads, errors.splitlines())}


@pytest.mark.parametrize(
    ("line", "param", "message"),
    [
        (_line("x", logprobs=True), "logprobs", "`logprobs` is not supported"),
        (_line("x", logprobs=False), "logprobs", "`logprobs` is not supported"),
        (_line("x", top_logprobs=1), "top_logprobs", "`top_logprobs` is not supported"),
        (_line("x", logit_bias={"1": 1}), "logit_bias", "`logit_bias` is not supported"),
        (_line("x", n=2), "n", "'n'"),
        (
            {
                **_line("x"),
                "body": {
                    "model": "llama-3.1-8b-instant",
                    "messages": [{"role": "user", "content": "hi", "name": "ann"}],
                },
            },
            "messages[0].name",
            "'messages.0.name' : property 'name' is unsupported",
        ),
        (
            _line("x", response_format=json_schema()),
            "response_format",
            "This model does not support response format `json_schema`",
        ),
        (
            _line("x", "openai/gpt-oss-safeguard-20b", response_format=json_schema(strict=True)),
            "response_format",
            "This model does not support strict mode",
        ),
    ],
)
def test_the_emulator_answers_what_groq_refuses_with_a_400(
    emulator: GroqEmulator, line: dict[str, Any], param: str, message: str
) -> None:
    errors = _run_lines(emulator, [_line("fine", line["body"]["model"]), line])
    assert list(errors) == ["x"]
    response = errors["x"]["response"]
    assert response["status_code"] == 400
    error = response["body"]["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"].startswith(message)


def test_the_emulator_takes_what_groq_takes(emulator: GroqEmulator) -> None:
    for lines in (
        [
            _line("strict", "openai/gpt-oss-20b", response_format=json_schema(strict=True)),
            _line("best-effort", "openai/gpt-oss-20b", response_format=json_schema()),
        ],
        [_line("kimi", "moonshotai/kimi-k2-instruct-0905", response_format=json_schema())],
        [
            _line("json-mode", response_format={"type": "json_object"}),
            _line("nulls", logprobs=None, n=1),
        ],
    ):
        assert _run_lines(emulator, lines) == {}


def test_a_value_sent_anyway_comes_back_as_groqs_refusal(
    provider: GroqBatchProvider, emulator: GroqEmulator
) -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "hatch",
            "model": "llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "hi"}],
            "provider_params": {"groq": {"logprobs": True}},
        }
    )
    [payload] = provider.prepare_payloads([request])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(FINISHED)
    [result] = provider.fetch_results(handle)
    assert result.status is ResultStatus.ERRORED and result.error is not None
    assert result.error.status_code == 400 and not result.retryable


# -- structured output, end to end ----------------------------------------------------------


class City(BaseModel):
    city: str
    population: int
    landmarks: list[str]


def test_structured_output_is_answered_with_schema_valid_json(
    make_provider: Factory, emulator: GroqEmulator
) -> None:
    provider = make_provider()
    fmt = response_format(City)
    assert fmt["json_schema"]["strict"] is True
    requests_ = [
        BatchRequest.from_dict(
            {
                "custom_id": f"c{i}",
                "model": model,
                "messages": [{"role": "user", "content": f"Describe town {i}."}],
                "params": {"response_format": fmt, "max_completion_tokens": 400},
            }
        )
        for i, model in enumerate(["openai/gpt-oss-20b", "openai/gpt-oss-120b"])
    ]
    handles = []
    for payload in provider.prepare_payloads(requests_):
        handles.append(provider.submit(payload))
        payload.discard()
    emulator.advance(FINISHED)
    results = [result for handle in handles for result in provider.fetch_results(handle)]
    assert sorted(r.custom_id for r in results) == ["c0", "c1"]
    schema = fmt["json_schema"]["schema"]
    for result in results:
        assert result.status is ResultStatus.SUCCEEDED and result.text is not None
        jsonschema.validate(json.loads(result.text), schema)
        assert isinstance(result.parse(City), City)


def test_the_emulators_rules_are_its_own() -> None:
    # The emulator's table is written from Groq's documentation, not imported from the
    # provider: both refuse the same things, checked here from each side.
    body = {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "x"}]}
    for param in ("logprobs", "top_logprobs", "logit_bias"):
        assert groq_request_rules(CHAT, {**body, param: 1}) is not None
    for model in groq.STRUCTURED_OUTPUT_MODELS:
        assert (
            groq_request_rules(CHAT, {**body, "model": model, "response_format": json_schema()})
            is None
        )
    for model in groq.STRICT_STRUCTURED_OUTPUT_MODELS:
        strict = {**body, "model": model, "response_format": json_schema(strict=True)}
        assert groq_request_rules(CHAT, strict) is None
