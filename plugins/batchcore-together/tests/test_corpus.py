"""A corpus of requests, one per feature the conversion supports and one per thing it refuses.

Every supported request becomes a body that Together's chat completions schema accepts strictly
(the schema the emulator checks, ``_spec.json``), and the whole corpus runs as one batch on the
emulator with every request answered. Every unsupported one is refused by ``prepare_payloads``
before any network call, naming the custom_id and the field, leaving no file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from together_support import MODEL, MakeProvider, assert_valid

from batchcore import BatchRequest, InvalidRequestError, UnsupportedModelError
from batchcore.testing.emulation import schema_instance
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator

USER = [{"role": "user", "content": "Hello there"}]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}

#: feature -> (messages, params, provider_params)
SUPPORTED: dict[str, tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]] = {
    "plain": (USER, {}, {}),
    "system": ([{"role": "system", "content": "Be brief."}, *USER], {}, {}),
    "developer": ([{"role": "developer", "content": "Be brief."}, *USER], {}, {}),
    "system-parts": (
        [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, *USER],
        {},
        {},
    ),
    "names": (
        [{"role": "system", "content": "S", "name": "s"}, {**USER[0], "name": "ann"}],
        {},
        {},
    ),
    "multi-turn": (
        [*USER, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Again"}],
        {},
        {},
    ),
    "assistant-parts": (
        [
            *USER,
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {"role": "user", "content": "Again"},
        ],
        {},
        {},
    ),
    "image-url": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
        {},
        {},
    ),
    "image-data-url-detail-auto": (
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64,iVBORw0KGgo=",
                            "detail": "auto",
                        },
                    }
                ],
            }
        ],
        {},
        {},
    ),
    "input-audio-wav": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
                ],
            }
        ],
        {},
        {},
    ),
    "video-url": (
        [
            {
                "role": "user",
                "content": [{"type": "video_url", "video_url": {"url": "https://e.x/v.mp4"}}],
            }
        ],
        {},
        {},
    ),
    "audio-url": (
        [
            {
                "role": "user",
                "content": [{"type": "audio_url", "audio_url": {"url": "https://e.x/a.mp3"}}],
            }
        ],
        {},
        {},
    ),
    "sampling": (USER, {"temperature": 0.3, "top_p": 0.9, "seed": 42}, {}),
    "penalties": (USER, {"presence_penalty": 0.5, "frequency_penalty": 0.5}, {}),
    "logit-bias": (USER, {"logit_bias": {"1024": -50}}, {}),
    "n": (USER, {"n": 3}, {}),
    "max-completion-tokens": (USER, {"max_completion_tokens": 8}, {}),
    "stop-string": (USER, {"stop": "END"}, {}),
    "stop-list": (USER, {"stop": ["END", "STOP"]}, {}),
    "logprobs": (USER, {"logprobs": True, "top_logprobs": 4}, {}),
    "json-object": (USER, {"response_format": {"type": "json_object"}}, {}),
    "json-schema": (
        USER,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
            }
        },
        {},
    ),
    "text-format": (USER, {"response_format": {"type": "text"}}, {}),
    "tools-auto": (USER, {"tools": [WEATHER], "tool_choice": "auto"}, {}),
    "tools-required": (USER, {"tools": [WEATHER], "tool_choice": "required"}, {}),
    "tools-named": (
        USER,
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        {},
    ),
    "tool-strict-false": (
        USER,
        {"tools": [{"type": "function", "function": {**WEATHER["function"], "strict": False}}]},
        {},
    ),
    "tool-round-trip": (
        [
            *USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        {"tools": [WEATHER]},
        {},
    ),
    "tool-result-parts": (
        [
            *USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "name": "get_weather",
                "content": [{"type": "text", "text": "sunny"}],
            },
        ],
        {"tools": [WEATHER]},
        {},
    ),
    "legacy-function-call": (
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "f", "arguments": "{}"},
            },
            {"role": "function", "name": "f", "content": "42"},
        ],
        {"function_call": "auto"},
        {},
    ),
    "reasoning-effort": (USER, {"reasoning_effort": "high"}, {}),
    "neutral-values": (
        USER,
        {
            "stream": False,
            "store": False,
            "parallel_tool_calls": True,
            "modalities": ["text"],
            "service_tier": "default",
            "prompt_cache_key": "k",
        },
        {},
    ),
    "together-only": (
        USER,
        {},
        {
            "together": {
                "top_k": 50,
                "repetition_penalty": 1.05,
                "min_p": 0.1,
                "echo": False,
                "safety_model": "meta-llama/Llama-Guard-4-12B",
                "context_length_exceeded_behavior": "truncate",
                "chat_template_kwargs": {"thinking": True},
                "reasoning": {"enabled": True},
            }
        },
    ),
}

#: feature -> (request fields, the field named by the refusal)
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "stream": ({"params": {"stream": True}}, "params.stream"),
    "stream-options": (
        {"params": {"stream_options": {"include_usage": True}}},
        "params.stream_options",
    ),
    "serial-tools": ({"params": {"parallel_tool_calls": False}}, "params.parallel_tool_calls"),
    "store": ({"params": {"store": True}}, "params.store"),
    "audio-out": ({"params": {"modalities": ["text", "audio"]}}, "params.modalities"),
    "audio-param": ({"params": {"audio": {"voice": "alloy", "format": "mp3"}}}, "params.audio"),
    "service-tier": ({"params": {"service_tier": "priority"}}, "params.service_tier"),
    "user": ({"params": {"user": "u-1"}}, "params.user"),
    "safety-identifier": ({"params": {"safety_identifier": "h"}}, "params.safety_identifier"),
    "metadata": ({"params": {"metadata": {"k": "v"}}}, "params.metadata"),
    "prediction": (
        {"params": {"prediction": {"type": "content", "content": "x"}}},
        "params.prediction",
    ),
    "web-search": ({"params": {"web_search_options": {}}}, "params.web_search_options"),
    "verbosity": ({"params": {"verbosity": "high"}}, "params.verbosity"),
    "effort-minimal": ({"params": {"reasoning_effort": "minimal"}}, "params.reasoning_effort"),
    "effort-xhigh": ({"params": {"reasoning_effort": "xhigh"}}, "params.reasoning_effort"),
    "functions": ({"params": {"functions": [{"name": "f"}]}}, "params.functions"),
    "top-logprobs-alone": ({"params": {"top_logprobs": 2}}, "params.top_logprobs"),
    "two-token-limits": (
        {"params": {"max_tokens": 5, "max_completion_tokens": 6}},
        "params.max_completion_tokens",
    ),
    "unnamed-schema": (
        {"params": {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}},
        "params.response_format.json_schema.name",
    ),
    "custom-tool": (
        {"params": {"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}},
        "params.tools[0].type",
    ),
    "strict-tool": (
        {"params": {"tools": [{"type": "function", "function": {"name": "f", "strict": True}}]}},
        "params.tools[0].function.strict",
    ),
    "allowed-tools": (
        {
            "params": {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": []},
                }
            }
        },
        "params.tool_choice.type",
    ),
    "unknown-param": ({"params": {"top_k": 5}}, "params.top_k"),
    "file-part": (
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]},
        "messages[0].content[0].type",
    ),
    "image-detail": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "low"}}],
                }
            ]
        },
        "messages[0].content[0].image_url.detail",
    ),
    "audio-mp3": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AA==", "format": "mp3"}}
                    ],
                }
            ]
        },
        "messages[0].content[0].input_audio.format",
    ),
    "cache-breakpoint": (
        {
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "x", "prompt_cache_breakpoint": {"type": "x"}}
                    ],
                },
                *USER,
            ]
        },
        "messages[0].content[0].prompt_cache_breakpoint",
    ),
    "assistant-refusal": (
        {"messages": [*USER, {"role": "assistant", "content": None, "refusal": "No"}]},
        "messages[1].refusal",
    ),
    "assistant-audio": (
        {"messages": [*USER, {"role": "assistant", "audio": {"id": "a"}}]},
        "messages[1].audio",
    ),
    "function-result-null": (
        {"messages": [*USER, {"role": "function", "name": "f", "content": None}]},
        "messages[1].content",
    ),
    "model-in-provider-params": (
        {"provider_params": {"together": {"model": "Qwen/Qwen3-8B"}}},
        "provider_params.together.model",
    ),
    "messages-in-provider-params": (
        {"provider_params": {"together": {"messages": []}}},
        "provider_params.together.messages",
    ),
    "embeddings": (
        {"endpoint": "/v1/embeddings", "messages": [], "params": {"input": "x"}},
        "endpoint",
    ),
    "custom-id-65": ({"custom_id": "x" * 65}, "custom_id"),
    "not-batched-model": ({"model": "deepseek-ai/DeepSeek-R1"}, "model"),
    "unknown-model": ({"model": "gpt-4o"}, "model"),
}


def _supported(name: str) -> BatchRequest:
    messages, params, provider_params = SUPPORTED[name]
    limited = "max_tokens" in params or "max_completion_tokens" in params
    return BatchRequest(
        custom_id=f"ok-{name}",
        model=MODEL,
        messages=messages,
        params=params if limited else {"max_tokens": 32, **params},
        provider_params=provider_params,
    )


def _refused(name: str) -> BatchRequest:
    fields, _ = REFUSED[name]
    data: dict[str, Any] = {
        "custom_id": f"no-{name}",
        "model": MODEL,
        "messages": USER,
        "params": {"max_tokens": 16},
        **fields,
    }
    if "endpoint" not in fields and "max_tokens" not in fields.get("params", {}):
        data["params"] = {"max_tokens": 16, **fields.get("params", {})}
    return BatchRequest.from_dict(data)


def _bodies(provider: TogetherBatchProvider, requests: list[BatchRequest]) -> dict[str, Any]:
    [payload] = provider.prepare_payloads(requests)
    try:
        assert payload.path is not None
        lines = [orjson.loads(line) for line in payload.path.read_bytes().splitlines()]
    finally:
        payload.discard()
    return {line["custom_id"]: line["body"] for line in lines}


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_each_supported_feature_makes_a_valid_body(
    provider: TogetherBatchProvider, name: str
) -> None:
    request = _supported(name)
    body = _bodies(provider, [request])[request.custom_id]
    assert_valid("ChatCompletionRequest", body)
    assert body["model"] == MODEL


def test_the_whole_corpus_runs_on_the_emulator(
    make_provider: MakeProvider, emulator: TogetherEmulator
) -> None:
    provider = make_provider()
    requests = [_supported(name) for name in SUPPORTED]
    [payload] = provider.prepare_payloads(requests)
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(3600)
    status = provider.poll_status(handle)
    assert status.raw_status == "COMPLETED", status.errors
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert set(results) == {r.custom_id for r in requests}
    assert all(r.ok for r in results.values()), [r for r in results.values() if not r.ok]
    # What the emulator received is what the provider sent: each body valid, as converted.
    for custom_id, body in emulator.submitted_bodies(handle.batch_id).items():
        assert_valid("ChatCompletionRequest", body)
        assert body["model"] == MODEL, custom_id
    structured = results["ok-json-schema"].text
    assert structured is not None
    assert json.loads(structured) == schema_instance(SCHEMA)
    named = results["ok-tools-named"].response
    assert named is not None
    call = named["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {
        "city": schema_instance({"type": "string"})
    }


@pytest.mark.parametrize("name", list(REFUSED))
def test_each_unsupported_request_is_refused_offline_naming_the_field(
    make_provider: MakeProvider, emulator: TogetherEmulator, tmp_path: Path, name: str
) -> None:
    workdir = tmp_path / "payloads"
    workdir.mkdir()
    provider = make_provider(workdir=str(workdir))
    _, field = REFUSED[name]
    request = _refused(name)
    calls = emulator.call_count()
    with pytest.raises((InvalidRequestError, UnsupportedModelError)) as caught:
        provider.prepare_payloads([_supported("plain"), request])
    assert caught.value.field == field, str(caught.value)
    assert caught.value.custom_id == request.custom_id
    assert request.custom_id in str(caught.value)
    assert emulator.call_count() == calls
    assert not list(workdir.iterdir())


def test_the_corpus_covers_every_feature_and_refusal() -> None:
    assert len(SUPPORTED) + len(REFUSED) >= 60
    assert not set(SUPPORTED) & set(REFUSED)
