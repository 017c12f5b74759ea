"""A corpus of requests covering what the README says the plugin takes, valid and not.

Every valid request becomes a batch input line whose body OpenAI's request schema accepts,
strictly (no field it does not name), and that Groq's differences (the emulator's own table,
:func:`batchcore_groq.testing.groq_request_rules`) do not refuse: what the plugin writes, Groq
would take. Every invalid one is refused offline with an InvalidRequestError naming its
custom_id and the field at fault, before any file is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchcore.errors import InvalidRequestError
from batchcore.models import BatchRequest
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import groq_request_rules
from batchcore_openai.testing import spec_validator

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "Summarise the report."}]
LLAMA = "llama-3.1-8b-instant"
SCOUT = "meta-llama/llama-4-scout-17b-16e-instruct"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "number"}},
    "required": ["title", "score"],
    "additionalProperties": False,
}
FUNCTION = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        },
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQ"
    "ABXvMqGgAAAABJRU5ErkJggg=="
)
HATCH = "provider_params={'groq': {"


def chat(
    custom_id: str, messages: list[Any] | None = None, model: str = LLAMA, **params: Any
) -> dict[str, Any]:
    return {"custom_id": custom_id, "model": model, "messages": messages or USER, "params": params}


def hatch(custom_id: str, model: str = LLAMA, **fields: Any) -> dict[str, Any]:
    return {**chat(custom_id, model=model), "provider_params": {"groq": fields}}


def schema_format(*, strict: bool | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "report", "schema": SCHEMA}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


VALID: list[dict[str, Any]] = [
    # every model family the README lists
    chat("llama-8b"),
    chat("llama-70b", model="llama-3.3-70b-versatile"),
    chat("scout", model=SCOUT),
    chat("maverick", model="meta-llama/llama-4-maverick-17b-128e-instruct"),
    chat("guard", model="meta-llama/llama-guard-4-12b"),
    chat("prompt-guard", model="meta-llama/llama-prompt-guard-2-86m"),
    chat("gpt-oss-20b", model="openai/gpt-oss-20b"),
    chat("gpt-oss-120b", model="openai/gpt-oss-120b"),
    chat("gpt-oss-safeguard", model="openai/gpt-oss-safeguard-20b"),
    chat("qwen", model="qwen/qwen3-32b"),
    chat("kimi", model="moonshotai/kimi-k2-instruct"),
    chat("kimi-0905", model="moonshotai/kimi-k2-instruct-0905"),
    # OpenAI's parameters Groq takes
    chat("max-tokens", max_tokens=64),
    chat("max-completion-tokens", max_completion_tokens=64),
    chat("temperature", temperature=0.7),
    chat("temperature-zero", temperature=0),
    chat("temperature-two", temperature=2),
    chat("top-p", top_p=0.9),
    chat("n-one", n=1),
    chat("stop-string", stop="END"),
    chat("stop-list", stop=["END", "STOP"]),
    chat("presence-penalty", presence_penalty=0.5),
    chat("frequency-penalty", frequency_penalty=-0.5),
    chat("seed", seed=42),
    chat("user", user="user-1"),
    chat("nulls", logprobs=None, top_logprobs=None, logit_bias=None),
    chat("reasoning-effort", model="openai/gpt-oss-20b", reasoning_effort="low"),
    # structured output and JSON mode
    chat("json-object", response_format={"type": "json_object"}),
    chat("text-format", response_format={"type": "text"}),
    chat("strict-20b", model="openai/gpt-oss-20b", response_format=schema_format(strict=True)),
    chat("strict-120b", model="openai/gpt-oss-120b", response_format=schema_format(strict=True)),
    chat("best-effort-20b", model="openai/gpt-oss-20b", response_format=schema_format()),
    chat(
        "best-effort-safeguard",
        model="openai/gpt-oss-safeguard-20b",
        response_format=schema_format(strict=False),
    ),
    chat(
        "best-effort-kimi",
        model="moonshotai/kimi-k2-instruct-0905",
        response_format=schema_format(),
    ),
    chat("best-effort-scout", model=SCOUT, response_format=schema_format(strict=False)),
    # tools
    chat("tools", tools=[FUNCTION]),
    chat("tool-choice-auto", tools=[FUNCTION], tool_choice="auto"),
    chat("tool-choice-required", tools=[FUNCTION], tool_choice="required"),
    chat("tool-choice-none", tools=[FUNCTION], tool_choice="none"),
    chat(
        "tool-choice-function",
        tools=[FUNCTION],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    ),
    chat("parallel-tool-calls", tools=[FUNCTION], parallel_tool_calls=False),
    chat(
        "tool-round-trip",
        [
            *USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a word"},
        ],
        tools=[FUNCTION],
    ),
    # messages
    chat("system", [{"role": "system", "content": "Be brief."}, *USER]),
    chat(
        "conversation",
        [*USER, {"role": "assistant", "content": "It says..."}, {"role": "user", "content": "?"}],
    ),
    chat("text-parts", [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]),
    chat(
        "image-data-url",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}],
        model=SCOUT,
    ),
    chat(
        "image-http-url",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ],
        model=SCOUT,
    ),
    # Groq-only fields: provider_params["groq"], unchecked
    hatch("reasoning-format", model="openai/gpt-oss-20b", reasoning_format="hidden"),
    hatch("include-reasoning", model="openai/gpt-oss-120b", include_reasoning=False),
    hatch("qwen-reasoning-parsed", model="qwen/qwen3-32b", reasoning_format="parsed"),
    {
        **chat("openai-params-not-sent"),
        "provider_params": {"openai": {"store": True}, "groq": {"seed": 1}},
    },
]

#: (request, the field named, words the message must hold)
INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    # what Groq refuses that OpenAI takes
    (chat("logprobs", logprobs=True), "params.logprobs", ("Groq", "400")),
    (chat("logprobs-false", logprobs=False), "params.logprobs", ("Groq",)),
    (chat("top-logprobs", top_logprobs=3), "params.top_logprobs", ("Groq",)),
    (chat("logit-bias", logit_bias={"50256": -100}), "params.logit_bias", ("Groq",)),
    (chat("n-two", n=2), "params.n", ("n=1",)),
    (
        chat("name-user", [{"role": "user", "content": "Hi", "name": "ann"}]),
        "messages[0].name",
        ("message name",),
    ),
    (
        chat("name-system", [{"role": "system", "content": "Be", "name": "sys"}, *USER]),
        "messages[0].name",
        ("message name",),
    ),
    (
        chat("name-assistant", [*USER, {"role": "assistant", "content": "x", "name": "bot"}]),
        "messages[1].name",
        ("message name",),
    ),
    # structured output where Groq has none
    (
        chat("json-schema-llama", response_format=schema_format()),
        "params.response_format",
        ("json_object", "openai/gpt-oss-20b"),
    ),
    (
        chat(
            "json-schema-qwen", model="qwen/qwen3-32b", response_format=schema_format(strict=False)
        ),
        "params.response_format",
        ("qwen/qwen3-32b",),
    ),
    (
        chat(
            "json-schema-maverick",
            model="meta-llama/llama-4-maverick-17b-128e-instruct",
            response_format=schema_format(),
        ),
        "params.response_format",
        ("structured output",),
    ),
    (
        chat("strict-llama", response_format=schema_format(strict=True)),
        "params.response_format.json_schema.strict",
        ("strict",),
    ),
    (
        chat(
            "strict-safeguard",
            model="openai/gpt-oss-safeguard-20b",
            response_format=schema_format(strict=True),
        ),
        "params.response_format.json_schema.strict",
        ("strict to false",),
    ),
    (
        chat(
            "strict-kimi",
            model="moonshotai/kimi-k2-instruct-0905",
            response_format=schema_format(strict=True),
        ),
        "params.response_format.json_schema.strict",
        ("openai/gpt-oss-120b",),
    ),
    (
        chat("strict-scout", model=SCOUT, response_format=schema_format(strict=True)),
        "params.response_format.json_schema.strict",
        (HATCH[:-1],),
    ),
    # what no batch can do
    (chat("stream", stream=True), "params.stream", ("stream",)),
    # OpenAI's own format, checked first
    (chat("top-k", top_k=40), "params.top_k", (HATCH + "'top_k'",)),
    (
        chat("reasoning-format-in-params", reasoning_format="hidden"),
        "params.reasoning_format",
        (HATCH,),
    ),
    (chat("temperature-word", temperature="hot"), "params.temperature", ("number",)),
    (chat("temperature-high", temperature=2.5), "params.temperature", ("maximum 2",)),
    (chat("max-tokens-negative", max_tokens=-1), "params.max_tokens", ("minimum",)),
    (chat("no-content", [{"role": "user"}]), "messages[0].content", ("needs 'content'",)),
    (chat("format-xml", response_format={"type": "xml"}), "params.response_format", ("'xml'",)),
    (
        {**chat("provider-params-model"), "provider_params": {"groq": {"model": "other"}}},
        "provider_params.groq",
        ("model",),
    ),
    # endpoints and models Groq does not batch
    (
        {
            "custom_id": "embeddings",
            "model": LLAMA,
            "endpoint": "/v1/embeddings",
            "params": {"input": "x"},
        },
        "endpoint",
        (CHAT,),
    ),
    (
        {
            "custom_id": "responses",
            "model": LLAMA,
            "endpoint": "/v1/responses",
            "params": {"input": "x"},
        },
        "endpoint",
        (CHAT,),
    ),
    (chat("openai-model", model="gpt-4o-mini"), "model", ("models=",)),
    (chat("audio-model", model="whisper-large-v3"), "model", ("models=",)),
    (chat("compound", model="groq/compound"), "model", ("models=",)),
]


def _lines(payloads: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in payloads for line in Path(p.path).read_bytes().splitlines()]


@pytest.fixture
def offline(tmp_path: Path) -> GroqBatchProvider:
    return GroqBatchProvider(config={"workdir": str(tmp_path)})


def test_the_corpus_is_large_enough() -> None:
    assert len(VALID) + len(INVALID) >= 60
    names = [r["custom_id"] for r in VALID] + [r["custom_id"] for r, _, _ in INVALID]
    assert len(set(names)) == len(names)


def test_every_valid_request_is_a_line_groq_accepts(offline: GroqBatchProvider) -> None:
    payloads = offline.prepare_payloads(BatchRequest.from_dict(r) for r in VALID)
    lines = _lines(payloads)
    for payload in payloads:
        payload.discard()
    assert sorted(line["custom_id"] for line in lines) == sorted(r["custom_id"] for r in VALID)
    validator = spec_validator()
    for line in lines:
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert (line["method"], line["url"]) == ("POST", CHAT)
        body = line["body"]
        problems = validator.problems("CreateChatCompletionRequest", body, limit=5)
        if line["custom_id"] in {"reasoning-format", "include-reasoning", "qwen-reasoning-parsed"}:
            # Groq-only fields, sent as given: OpenAI's schema names none of them.
            assert problems, line["custom_id"]
        else:
            assert problems == [], (line["custom_id"], [str(p) for p in problems])
        assert groq_request_rules(CHAT, body) is None, line["custom_id"]
    by_id = {line["custom_id"]: line["body"] for line in lines}
    assert by_id["reasoning-format"]["reasoning_format"] == "hidden"
    assert "store" not in by_id["openai-params-not-sent"]
    assert by_id["openai-params-not-sent"]["seed"] == 1


@pytest.mark.parametrize(
    ("request_data", "field", "words"), INVALID, ids=[r["custom_id"] for r, _, _ in INVALID]
)
def test_every_invalid_request_is_refused_naming_it_and_its_field(
    offline: GroqBatchProvider,
    tmp_path: Path,
    request_data: dict[str, Any],
    field: str,
    words: tuple[str, ...],
) -> None:
    custom_id = request_data["custom_id"]
    good = BatchRequest.from_dict(chat("good"))
    with pytest.raises(InvalidRequestError) as caught:
        offline.prepare_payloads([good, BatchRequest.from_dict(request_data)])
    error = caught.value
    assert (error.custom_id, error.field, error.provider) == (custom_id, field, "groq")
    assert repr(custom_id) in str(error)
    for word in words:
        assert word in str(error), str(error)
    assert list(tmp_path.iterdir()) == []  # nothing was written
