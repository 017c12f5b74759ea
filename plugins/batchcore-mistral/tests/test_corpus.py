"""A corpus of requests through ``prepare_payloads``: every feature the provider converts makes
a body Mistral's spec accepts (strictly: no field it does not name), and every request Mistral
cannot take is refused offline, naming the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import EMBED_MODEL, MODEL, assert_valid

from batchcore.plugin import BatchRequest, InvalidRequestError
from batchcore_mistral.provider import MistralBatchProvider

_SCHEMA = {"/v1/chat/completions": "ChatCompletionRequest", "/v1/embeddings": "EmbeddingRequest"}
_FILE_ID = "e85980c9-409e-4a46-9304-36588f6292b0"
_WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
_USER = [{"role": "user", "content": "Hello"}]

#: name -> (messages or None for embeddings, params, provider_params)
SUPPORTED: dict[str, tuple[list[dict[str, Any]] | None, dict[str, Any], dict[str, Any]]] = {
    "plain": (_USER, {}, {}),
    "sampling": (
        _USER,
        {
            "max_tokens": 64,
            "temperature": 1.5,
            "top_p": 0.5,
            "stop": "END",
            "seed": 0,
            "n": 3,
            "presence_penalty": 1.0,
            "frequency_penalty": -2.0,
        },
        {},
    ),
    "max_completion_tokens": (_USER, {"max_completion_tokens": 100}, {}),
    "stop_list": (_USER, {"stop": ["a", "b"]}, {}),
    "system_and_developer": (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Really."}]},
            *_USER,
        ],
        {},
        {},
    ),
    "multi_turn_tools": (
        [
            *_USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "D681PevKs",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": "Sunny", "tool_call_id": "D681PevKs", "name": "weather"},
            {"role": "assistant", "content": [{"type": "text", "text": "It is sunny."}]},
            {"role": "user", "content": "Thanks"},
        ],
        {"tools": [_WEATHER], "tool_choice": "auto", "parallel_tool_calls": False},
        {},
    ),
    "forced_tool": (
        _USER,
        {
            "tools": [_WEATHER, {"type": "function", "function": {"name": "now"}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
        },
        {},
    ),
    "required_tool": (_USER, {"tools": [_WEATHER], "tool_choice": "required"}, {}),
    "no_tool": (_USER, {"tools": [_WEATHER], "tool_choice": "none"}, {}),
    "json_object": (_USER, {"response_format": {"type": "json_object"}}, {}),
    "json_schema": (
        _USER,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "description": "A city",
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                    "strict": True,
                },
            }
        },
        {},
    ),
    "json_schema_not_strict": (
        _USER,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": False},
            }
        },
        {},
    ),
    "text_format": (_USER, {"response_format": {"type": "text"}}, {}),
    "parallel_tool_calls": (_USER, {"tools": [_WEATHER], "parallel_tool_calls": True}, {}),
    "tool_result_parts": (
        [
            *_USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "D681PevKs",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "D681PevKs",
                "content": [{"type": "text", "text": "Sunny"}],
            },
        ],
        {"tools": [_WEATHER]},
        {},
    ),
    "neutral_values": (_USER, {"stream": False, "max_tokens": None}, {}),
    "vision": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AA==", "detail": "high"},
                    },
                ],
            }
        ],
        {},
        {},
    ),
    "audio": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
                    {"type": "text", "text": "Transcribe"},
                ],
            }
        ],
        {},
        {},
    ),
    "uploaded_file": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_id": _FILE_ID}},
                    {"type": "text", "text": "?"},
                ],
            }
        ],
        {},
        {},
    ),
    "mistral_parts": (
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document_url",
                        "document_url": "https://x/a.pdf",
                        "document_name": "a",
                    },
                    {"type": "reference", "reference_ids": [1, "b"]},
                    {"type": "text", "text": "Summarise"},
                ],
            }
        ],
        {},
        {},
    ),
    "thinking_history": (
        [
            *_USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                    {"type": "text", "text": "Hi"},
                ],
            },
            {"role": "user", "content": "Again"},
        ],
        {},
        {},
    ),
    "prefix": ([*_USER, {"role": "assistant", "content": "Sure:", "prefix": True}], {}, {}),
    "reasoning": (_USER, {"reasoning_effort": "high"}, {}),
    "prediction": (_USER, {"prediction": {"type": "content", "content": "def f():"}}, {}),
    "prediction_parts": (
        _USER,
        {"prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]}},
        {},
    ),
    "cache_and_metadata": (
        _USER,
        {"prompt_cache_key": "tenant-1", "metadata": {"team": "a"}, "service_tier": "auto"},
        {},
    ),
    "mistral_only": (
        _USER,
        {},
        {
            "safe_prompt": True,
            "random_seed": 42,
            "prompt_mode": "reasoning",
            "guardrails": [{"block_on_error": True}],
            "service_tier": "standard_only",
        },
    ),
    "embeddings": (
        None,
        {"input": ["one", "two"], "dimensions": 512, "encoding_format": "float"},
        {},
    ),
    "embeddings_text": (None, {"input": "one"}, {}),
    "embeddings_mistral_only": (None, {"input": "one"}, {"output_dtype": "int8"}),
}


def _request(name: str, messages: Any, params: Any, extra: Any) -> BatchRequest:
    data: dict[str, Any] = {"custom_id": name, "params": params}
    if messages is None:
        data.update(model=EMBED_MODEL, endpoint="/v1/embeddings")
    else:
        data.update(model=MODEL, messages=messages)
    if extra:
        data["provider_params"] = {"mistral": extra}
    return BatchRequest.from_dict(data)


@pytest.fixture
def offline(tmp_path: Path) -> MistralBatchProvider:
    return MistralBatchProvider(config={"workdir": str(tmp_path)})


def _lines(offline: MistralBatchProvider, requests: list[BatchRequest]) -> list[Any]:
    lines = []
    for payload in offline.prepare_payloads(requests):
        assert payload.path is not None
        lines.extend(orjson.loads(line) for line in payload.path.read_bytes().splitlines())
        payload.discard()
    return lines


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_supported_feature_makes_a_body_the_spec_accepts(
    offline: MistralBatchProvider, name: str
) -> None:
    request = _request(name, *SUPPORTED[name])
    [line] = _lines(offline, [request])
    assert set(line) == {"custom_id", "body"}
    assert line["custom_id"] == name
    assert_valid("BatchRequest", line)
    assert_valid(_SCHEMA[request.endpoint], line["body"])
    assert line["body"]["model"] == request.model


def test_the_corpus_splits_by_model_and_endpoint(offline: MistralBatchProvider) -> None:
    requests = [_request(name, *spec) for name, spec in SUPPORTED.items()]
    payloads = offline.prepare_payloads(requests)
    try:
        assert sorted((p.model, p.endpoint) for p in payloads) == [
            (EMBED_MODEL, "/v1/embeddings"),
            (MODEL, "/v1/chat/completions"),
        ]
    finally:
        for payload in payloads:
            payload.discard()


def _chat(**changes: Any) -> dict[str, Any]:
    return {"custom_id": "bad", "model": MODEL, "messages": _USER, "params": {}, **changes}


#: name -> (the request, the field its refusal names)
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "unknown_param": (_chat(params={"top_k": 5}), "params.top_k"),
    "user": (_chat(params={"user": "u"}), "params.user"),
    "logprobs": (_chat(params={"logprobs": True}), "params.logprobs"),
    "top_logprobs": (_chat(params={"top_logprobs": 2}), "params.top_logprobs"),
    "audio_params": (_chat(params={"audio": {"voice": "alloy"}}), "params.audio"),
    "web_search_options": (_chat(params={"web_search_options": {}}), "params.web_search_options"),
    "verbosity": (_chat(params={"verbosity": "low"}), "params.verbosity"),
    "logit_bias": (_chat(params={"logit_bias": {"42": 1}}), "params.logit_bias"),
    "store": (_chat(params={"store": True}), "params.store"),
    "audio_out": (_chat(params={"modalities": ["text", "audio"]}), "params.modalities"),
    "stream": (_chat(params={"stream": True}), "params.stream"),
    "stream_options": (
        _chat(params={"stream_options": {"include_usage": True}}),
        "params.stream_options",
    ),
    "temperature_above_1_5": (_chat(params={"temperature": 1.8}), "params.temperature"),
    "temperature_out_of_openai_range": (_chat(params={"temperature": 3}), "params.temperature"),
    "top_p_zero": (_chat(params={"top_p": 0}), "params.top_p"),
    "negative_seed": (_chat(params={"seed": -3}), "params.seed"),
    "zero_max_tokens": (_chat(params={"max_tokens": 0}), "params.max_tokens"),
    "two_token_limits": (
        _chat(params={"max_tokens": 5, "max_completion_tokens": 6}),
        "params.max_completion_tokens",
    ),
    "service_tier": (_chat(params={"service_tier": "priority"}), "params.service_tier"),
    "functions": (_chat(params={"functions": [{"name": "f"}]}), "params.functions"),
    "custom_tool": (
        _chat(params={"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
        "params.tools[0].type",
    ),
    "schema_missing": (
        _chat(params={"response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}),
        "params.response_format.json_schema.schema",
    ),
    "user_name": (
        _chat(messages=[{"role": "user", "content": "x", "name": "n"}]),
        "messages[0].name",
    ),
    "assistant_refusal": (
        _chat(messages=[*_USER, {"role": "assistant", "content": "x", "refusal": "no"}]),
        "messages[1].refusal",
    ),
    "empty_assistant": (
        _chat(messages=[*_USER, {"role": "assistant", "content": None}]),
        "messages[1].content",
    ),
    "file_data": (
        _chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_data": "aGk=", "filename": "a.pdf"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].file.file_data",
    ),
    "refusal_part": (
        _chat(
            messages=[
                *_USER,
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            ]
        ),
        "messages[1].content[0].type",
    ),
    "image_in_system": (
        _chat(
            messages=[
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
                *_USER,
            ]
        ),
        "messages[0].content[0].type",
    ),
    "function_role": (
        _chat(messages=[{"role": "function", "content": "x", "name": "f"}]),
        "messages[0].role",
    ),
    "model_in_provider_params": (
        _chat(provider_params={"mistral": {"model": "mistral-large-latest"}}),
        "provider_params.mistral.model",
    ),
    "responses_endpoint": (
        {"custom_id": "bad", "model": MODEL, "endpoint": "/v1/responses", "params": {"input": "x"}},
        "endpoint",
    ),
    "completions_endpoint": (
        {
            "custom_id": "bad",
            "model": MODEL,
            "endpoint": "/v1/completions",
            "params": {"prompt": "x"},
        },
        "endpoint",
    ),
    "moderations_endpoint": (
        {
            "custom_id": "bad",
            "model": MODEL,
            "endpoint": "/v1/moderations",
            "params": {"input": "x"},
        },
        "endpoint",
    ),
    "token_ids": (
        {
            "custom_id": "bad",
            "model": EMBED_MODEL,
            "endpoint": "/v1/embeddings",
            "params": {"input": [[1, 2], [3]]},
        },
        "params.input",
    ),
    "unknown_model": ({**_chat(), "model": "gpt-4o"}, "model"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_mistral_cannot_take_is_refused_offline_naming_the_field(
    tmp_path: Path, name: str
) -> None:
    data, field = REFUSED[name]
    offline = MistralBatchProvider(config={"workdir": str(tmp_path)})
    good = _request("good", *SUPPORTED["plain"])
    with pytest.raises(InvalidRequestError) as caught:
        offline.prepare_payloads([good, BatchRequest.from_dict(data)])
    assert caught.value.field == field
    assert caught.value.custom_id == "bad"
    assert field in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_the_corpus_covers_every_feature_and_refusal() -> None:
    assert len(SUPPORTED) + len(REFUSED) >= 60
    assert not set(SUPPORTED) & set(REFUSED)
    assert len({field for _, field in REFUSED.values()}) >= 30  # distinct fields named


def test_a_model_added_in_config_is_served(tmp_path: Path) -> None:
    offline = MistralBatchProvider(config={"workdir": str(tmp_path), "models": ["my-ft-*"]})
    request = BatchRequest.from_dict({**_chat(), "model": "my-ft-1"})
    [line] = _lines(offline, [request])
    assert line["body"]["model"] == "my-ft-1"


def test_corpus_lines_make_a_create_body_the_spec_accepts(
    offline: MistralBatchProvider,
) -> None:
    """The inline create body, made from payload lines, is a valid ``CreateBatchJobRequest``."""
    names = [n for n, spec in SUPPORTED.items() if spec[0] is not None]
    lines = _lines(offline, [_request(n, *SUPPORTED[n]) for n in names])
    body = {
        "endpoint": "/v1/chat/completions",
        "model": MODEL,
        "requests": lines,
        "metadata": {"batchcore_idempotency_key": "k", "batchcore_timeout_hours": "24"},
        "timeout_hours": 24,
    }
    assert_valid("CreateBatchJobRequest", body)
