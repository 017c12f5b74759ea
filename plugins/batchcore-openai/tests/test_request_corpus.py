"""A corpus of requests covering every feature this plugin offers, valid and not.

Every valid request becomes a batch input line whose body OpenAI's own request schema accepts,
strictly (no field it does not name): what the plugin writes, the API would take. Every invalid
one is refused offline with an InvalidRequestError naming its custom_id and the field at fault;
an unknown field's refusal points at the escape hatch, ``provider_params={"openai": {...}}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_support import request_errors

from batchcore.errors import InvalidRequestError
from batchcore.models import BatchRequest
from batchcore_openai._emulation import REQUEST_SCHEMAS
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"
USER = [{"role": "user", "content": "Summarise the report."}]
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
            "additionalProperties": False,
        },
        "strict": True,
    },
}
RESPONSES_FUNCTION = {
    "type": "function",
    "name": "lookup",
    "parameters": FUNCTION["function"]["parameters"],  # type: ignore[index]
    "strict": True,
}
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQ"
    "ABXvMqGgAAAABJRU5ErkJggg=="
)
#: The legacy ``functions`` parameter predates ``strict``.
LEGACY_FUNCTION = {k: v for k, v in FUNCTION["function"].items() if k != "strict"}  # type: ignore[attr-defined]


def chat(
    custom_id: str, messages: list[Any] | None = None, model: str = "gpt-4o", **params: Any
) -> dict[str, Any]:
    return {"custom_id": custom_id, "model": model, "messages": messages or USER, "params": params}


def other(custom_id: str, endpoint: str, model: str, **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "model": model, "endpoint": endpoint, "params": params}


def part(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


VALID: list[dict[str, Any]] = [
    # chat: every parameter
    chat("plain"),
    chat("max-tokens", max_tokens=64),
    chat("max-completion-tokens", max_completion_tokens=64),
    chat("temperature", temperature=0.2),
    chat("top-p", top_p=0.9),
    chat("n", n=3),
    chat("stop-string", stop="END"),
    chat("stop-list", stop=["END", "STOP"]),
    chat("presence-penalty", presence_penalty=0.5),
    chat("frequency-penalty", frequency_penalty=-0.5),
    chat("logit-bias", logit_bias={"50256": -100}),
    chat("logprobs", logprobs=True, top_logprobs=5),
    chat("seed", seed=42),
    chat("user", user="user-1"),
    chat("safety-identifier", safety_identifier="a1b2c3"),
    chat("prompt-cache-key", prompt_cache_key="report-v1"),
    chat("prompt-cache-retention", prompt_cache_retention="24h"),
    chat("prompt-cache-options", prompt_cache_options={"mode": "implicit", "ttl": "30m"}),
    chat("metadata", metadata={"team": "search"}, store=True),
    chat("store", store=False),
    chat("service-tier", service_tier="flex"),
    chat("reasoning", model="o4-mini", reasoning_effort="low", max_completion_tokens=2048),
    chat("verbosity", model="gpt-5", verbosity="low"),
    chat("modalities", modalities=["text"]),
    chat(
        "audio-out",
        model="gpt-4o-audio-preview",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    ),
    chat("prediction", prediction={"type": "content", "content": "The report says"}),
    chat(
        "web-search",
        model="gpt-4o-search-preview",
        web_search_options={"search_context_size": "low"},
    ),
    chat("moderation", moderation={"model": "omni-moderation-latest"}),
    chat(
        "everything",
        max_completion_tokens=256,
        temperature=0.7,
        top_p=0.95,
        n=2,
        stop=["\n\n"],
        presence_penalty=0.1,
        frequency_penalty=0.1,
        logit_bias={"1734": 2},
        logprobs=True,
        top_logprobs=2,
        seed=7,
        user="u",
        metadata={"k": "v"},
        store=True,
        service_tier="auto",
        response_format={"type": "text"},
        tools=[FUNCTION],
        tool_choice="auto",
        parallel_tool_calls=True,
        prompt_cache_key="p",
    ),
    # chat: messages of every role and content parts
    chat("system", [{"role": "system", "content": "Be brief."}, *USER]),
    chat("developer", [{"role": "developer", "content": [part("text", text="Be brief.")]}, *USER]),
    chat("named-user", [{"role": "user", "name": "ada", "content": "Hi"}]),
    chat(
        "multi-turn",
        [
            *USER,
            {"role": "assistant", "content": "It is about sales."},
            {"role": "user", "content": "More detail."},
        ],
    ),
    chat(
        "tool-round-trip",
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"word": "sales"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sales: revenue."},
        ],
        tools=[FUNCTION],
    ),
    chat(
        "assistant-parts",
        [
            *USER,
            {"role": "assistant", "content": [part("refusal", refusal="I cannot.")]},
            {"role": "user", "content": "Please."},
        ],
    ),
    chat(
        "legacy-function",
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "lookup", "arguments": "{}"},
            },
            {"role": "function", "name": "lookup", "content": "done"},
        ],
        functions=[LEGACY_FUNCTION],
        function_call="auto",
    ),
    chat(
        "text-parts",
        [{"role": "user", "content": [part("text", text="One."), part("text", text="Two.")]}],
    ),
    chat(
        "image-url",
        [
            {
                "role": "user",
                "content": [
                    part("text", text="What is this?"),
                    part(
                        "image_url", image_url={"url": "https://example.com/a.png", "detail": "low"}
                    ),
                ],
            }
        ],
    ),
    chat(
        "image-data",
        [{"role": "user", "content": [part("image_url", image_url={"url": TINY_PNG})]}],
    ),
    chat(
        "audio-in",
        [
            {
                "role": "user",
                "content": [part("input_audio", input_audio={"data": "UklGRg==", "format": "wav"})],
            }
        ],
        model="gpt-4o-audio-preview",
    ),
    chat("file-id", [{"role": "user", "content": [part("file", file={"file_id": "file-abc"})]}]),
    chat(
        "file-data",
        [
            {
                "role": "user",
                "content": [
                    part(
                        "file",
                        file={
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                        },
                    )
                ],
            }
        ],
    ),
    chat(
        "cache-breakpoint",
        [
            {
                "role": "user",
                "content": [
                    part("text", text="Long.", prompt_cache_breakpoint={"mode": "explicit"})
                ],
            }
        ],
    ),
    # chat: tools and tool_choice
    chat("tools-auto", tools=[FUNCTION]),
    chat("tool-choice-none", tools=[FUNCTION], tool_choice="none"),
    chat("tool-choice-required", tools=[FUNCTION], tool_choice="required"),
    chat(
        "tool-choice-named",
        tools=[FUNCTION],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    ),
    chat(
        "tool-choice-allowed",
        tools=[FUNCTION],
        tool_choice={
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "auto",
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            },
        },
    ),
    chat(
        "custom-tool",
        model="gpt-5",
        tools=[
            {
                "type": "custom",
                "custom": {"name": "sql", "description": "Run SQL.", "format": {"type": "text"}},
            }
        ],
        tool_choice={"type": "custom", "custom": {"name": "sql"}},
    ),
    chat("parallel-off", tools=[FUNCTION], parallel_tool_calls=False),
    # chat: response formats
    chat("format-text", response_format={"type": "text"}),
    chat("format-json-object", response_format={"type": "json_object"}),
    chat(
        "format-json-schema",
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "review",
                "description": "A review.",
                "schema": SCHEMA,
                "strict": True,
            },
        },
    ),
    # embeddings
    other("embed-string", EMBEDDINGS, "text-embedding-3-small", input="hello"),
    other("embed-list", EMBEDDINGS, "text-embedding-3-small", input=["a", "b", "c"]),
    other("embed-tokens", EMBEDDINGS, "text-embedding-3-small", input=[1, 2, 3]),
    other("embed-token-lists", EMBEDDINGS, "text-embedding-3-small", input=[[1, 2], [3]]),
    other(
        "embed-options",
        EMBEDDINGS,
        "text-embedding-3-large",
        input="x",
        dimensions=256,
        encoding_format="float",
        user="u",
    ),
    other(
        "embed-base64", EMBEDDINGS, "text-embedding-ada-002", input="x", encoding_format="base64"
    ),
    # responses
    other("resp-string", RESPONSES, "gpt-4o", input="Hello"),
    other(
        "resp-messages",
        RESPONSES,
        "gpt-4o",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
    ),
    other(
        "resp-instructions",
        RESPONSES,
        "gpt-4o",
        input="Hi",
        instructions="Be kind.",
        max_output_tokens=256,
    ),
    other(
        "resp-json-schema",
        RESPONSES,
        "gpt-4o",
        input="Review it.",
        text={
            "format": {"type": "json_schema", "name": "review", "schema": SCHEMA, "strict": True}
        },
    ),
    other(
        "resp-json-object",
        RESPONSES,
        "gpt-4o",
        input="JSON please.",
        text={"format": {"type": "json_object"}},
    ),
    other(
        "resp-tools",
        RESPONSES,
        "gpt-4o",
        input="Look up 'sales'.",
        tools=[RESPONSES_FUNCTION],
        tool_choice={"type": "function", "name": "lookup"},
        parallel_tool_calls=False,
    ),
    other(
        "resp-reasoning",
        RESPONSES,
        "o3",
        input="Prove it.",
        reasoning={"effort": "high", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    ),
    other(
        "resp-image",
        RESPONSES,
        "gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe."},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/a.png",
                        "detail": "auto",
                    },
                ],
            }
        ],
    ),
    other(
        "resp-sampling",
        RESPONSES,
        "gpt-4o",
        input="Hi",
        temperature=0.3,
        top_p=0.8,
        top_logprobs=3,
        truncation="auto",
        metadata={"k": "v"},
        service_tier="flex",
        prompt_cache_key="p",
        safety_identifier="s",
    ),
    # completions
    other("cmpl-string", COMPLETIONS, "gpt-3.5-turbo-instruct", prompt="Once upon", max_tokens=16),
    other(
        "cmpl-options",
        COMPLETIONS,
        "gpt-3.5-turbo-instruct",
        prompt=["a", "b"],
        suffix="end",
        echo=True,
        best_of=3,
        n=2,
        logprobs=2,
        temperature=0.5,
        stop=["\n"],
        seed=1,
    ),
    other("cmpl-tokens", COMPLETIONS, "davinci-002", prompt=[1, 2, 3]),
    # moderations
    other("mod-string", MODERATIONS, "omni-moderation-latest", input="text"),
    other("mod-list", MODERATIONS, "omni-moderation-latest", input=["a", "b"]),
    other(
        "mod-multimodal",
        MODERATIONS,
        "omni-moderation-latest",
        input=[
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
    ),
    # the escape hatch: merged into the body unchecked (other providers' entries are not)
    {**chat("hatch-service-tier"), "provider_params": {"openai": {"service_tier": "priority"}}},
    {
        **chat("hatch-verbosity", model="gpt-5"),
        "provider_params": {"openai": {"verbosity": "high"}},
    },
    {**chat("hatch-other-vendor"), "provider_params": {"anthropic": {"top_k": 5}}},
    {
        **other("hatch-responses", RESPONSES, "gpt-4o", input="Hi"),
        "provider_params": {"openai": {"max_tool_calls": 3}},
    },
]

AZURE_VALID: list[dict[str, Any]] = [
    chat("azure-chat", model="batch-gpt4o", max_completion_tokens=64),
    chat("azure-tools", model="batch-gpt4o", tools=[FUNCTION], tool_choice="required"),
    {
        **chat("azure-hatch", model="batch-gpt4o"),
        "provider_params": {"openai": {"seed": 1}, "azure-openai": {"user": "u"}},
    },
    other("azure-responses", RESPONSES, "batch-gpt4o", input="Hi", max_output_tokens=64),
]


def _lines(payloads: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in payloads for line in Path(p.path).read_bytes().splitlines()]


@pytest.fixture
def offline(tmp_path: Path) -> OpenAIBatchProvider:
    return OpenAIBatchProvider(
        config={"base_url": "http://127.0.0.1:9/v1", "workdir": str(tmp_path)}
    )


@pytest.fixture
def azure_offline(tmp_path: Path) -> AzureOpenAIBatchProvider:
    return AzureOpenAIBatchProvider(
        config={
            "azure_endpoint": "http://127.0.0.1:9",
            "deployments": ["batch-gpt4o"],
            "workdir": str(tmp_path),
        }
    )


def test_the_corpus_is_large_and_covers_every_endpoint() -> None:
    assert len(VALID) + len(AZURE_VALID) >= 60
    assert len({r["custom_id"] for r in VALID + AZURE_VALID}) == len(VALID) + len(AZURE_VALID)
    endpoints = {r.get("endpoint", CHAT) for r in VALID}
    assert endpoints == set(REQUEST_SCHEMAS)


def _check_lines(lines: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert sorted(line["custom_id"] for line in lines) == sorted(r["custom_id"] for r in expected)
    for line in lines:
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert line["method"] == "POST"
        problems = request_errors(REQUEST_SCHEMAS[line["url"]], line["body"])
        assert problems == [], (line["custom_id"], problems)


def test_every_valid_request_is_a_line_openai_accepts(offline: OpenAIBatchProvider) -> None:
    lines = _lines(offline.prepare_payloads(BatchRequest.from_dict(r) for r in VALID))
    _check_lines(lines, VALID)
    by_id = {line["custom_id"]: line["body"] for line in lines}
    assert by_id["hatch-service-tier"]["service_tier"] == "priority"
    assert by_id["hatch-verbosity"]["verbosity"] == "high"
    assert "top_k" not in by_id["hatch-other-vendor"]
    assert by_id["hatch-responses"]["max_tool_calls"] == 3


def test_every_valid_azure_request_is_a_line_openai_accepts(
    azure_offline: AzureOpenAIBatchProvider,
) -> None:
    lines = _lines(azure_offline.prepare_payloads(BatchRequest.from_dict(r) for r in AZURE_VALID))
    _check_lines(lines, AZURE_VALID)
    hatch = next(line["body"] for line in lines if line["custom_id"] == "azure-hatch")
    assert (hatch["seed"], hatch["user"]) == (1, "u")


HATCH = "provider_params={'openai': {"

#: (request, the field named, words the message must hold)
INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    (chat("max-tokens-string", max_tokens="64"), "params.max_tokens", ("integer",)),
    (chat("max-tokens-negative", max_tokens=-5), "params.max_tokens", ("minimum",)),
    (chat("temperature-word", temperature="hot"), "params.temperature", ("number",)),
    (chat("temperature-high", temperature=99), "params.temperature", ("maximum 2",)),
    (chat("unknown-key", frobnicate=True), "params.frobnicate", (HATCH + "'frobnicate'",)),
    (chat("top-k", top_k=40), "params.top_k", (HATCH + "'top_k'",)),
    (
        chat(
            "cache-control",
            [
                {
                    "role": "user",
                    "content": [part("text", text="x", cache_control={"type": "ephemeral"})],
                }
            ],
        ),
        "messages[0].content[0].cache_control",
        ("cache_control",),
    ),
    (chat("no-content", [{"role": "user"}]), "messages[0].content", ("needs 'content'",)),
    (chat("content-number", [{"role": "user", "content": 5}]), "messages[0].content", ("integer",)),
    (
        chat("o-series-max-tokens", model="o3-mini", max_tokens=100),
        "params.max_tokens",
        ("max_completion_tokens",),
    ),
    (
        chat("o1-dated-max-tokens", model="o1-2024-12-17", max_tokens=100),
        "params.max_tokens",
        ("o1-2024-12-17",),
    ),
    (chat("o3-temperature", model="o3", temperature=0.2), "params.temperature", ("default, 1",)),
    (chat("gpt5-logprobs", model="gpt-5-mini", logprobs=True), "params.logprobs", ("logprobs",)),
    (chat("o4-stop", model="o4-mini-2025-04-16", stop=["x"]), "params.stop", ("stop",)),
    (chat("o1-mini-n", model="o1-mini", n=2), "params.n", ("default, 1",)),
    (
        chat("gpt51-max-tokens", model="gpt-5.1", max_tokens=100),
        "params.max_tokens",
        ("max_completion_tokens",),
    ),
    (chat("stream", stream=True), "params.stream", ("stream",)),
    (chat("format-xml", response_format={"type": "xml"}), "params.response_format", ("'xml'",)),
    (chat("bad-role", [{"role": "robot", "content": "x"}]), "messages[0].role", ("robot",)),
    (
        chat("unknown-part", [{"role": "user", "content": [part("video", url="x")]}]),
        "messages[0].content[0].type",
        ("video",),
    ),
    (
        chat(
            "system-image",
            [{"role": "system", "content": [part("image_url", image_url={"url": "x"})]}],
        ),
        "messages[0].content[0].type",
        ("image_url",),
    ),
    (
        other("embed-unknown", EMBEDDINGS, "text-embedding-3-small", input="x", truncate=True),
        "params.truncate",
        (HATCH,),
    ),
    (
        other("embed-dimensions", EMBEDDINGS, "text-embedding-3-small", input="x", dimensions="8"),
        "params.dimensions",
        ("integer",),
    ),
    (
        other("resp-max-tokens", RESPONSES, "gpt-4o", input="x", max_tokens=5),
        "params.max_tokens",
        (HATCH,),
    ),
    (
        other("cmpl-top-k", COMPLETIONS, "gpt-3.5-turbo-instruct", prompt="x", top_k=2),
        "params.top_k",
        (HATCH,),
    ),
    (
        other("mod-temperature", MODERATIONS, "omni-moderation-latest", input="x", temperature=0),
        "params.temperature",
        (HATCH,),
    ),
]


@pytest.mark.parametrize(
    ("request_data", "field", "words"), INVALID, ids=[r["custom_id"] for r, _, _ in INVALID]
)
def test_every_invalid_request_is_refused_naming_it_and_its_field(
    offline: OpenAIBatchProvider,
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
    assert (error.custom_id, error.field) == (custom_id, field)
    assert repr(custom_id) in str(error)
    for word in words:
        assert word in str(error), str(error)
    assert list(tmp_path.iterdir()) == []  # nothing was written
