"""A corpus of requests through ``prepare_payloads``: every row of the README's conversion table
makes a ``GenerateContentRequest`` the official SDK's own types accept, made strict (no unknown
field, no value coerced), and the emulator's rules accept; every request Gemini cannot take is
refused offline, naming the field at fault. The whole corpus then runs on the emulator."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import MODEL
from google.genai import types
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from batchcore.plugin import BatchRequest, BatchState, InvalidRequestError
from batchcore.testing import ManualClock
from batchcore_gemini._emulation import request_problem
from batchcore_gemini.provider import GeminiBatchProvider
from batchcore_gemini.testing import GeminiEmulator

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n corpus image").decode()
PDF = base64.b64encode(b"%PDF-1.4 corpus document").decode()
AUDIO = base64.b64encode(b"RIFF corpus audio").decode()
USER = [{"role": "user", "content": "Hello there"}]
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
NOW = {"type": "function", "function": {"name": "now", "description": "The time"}}


def _strict(tool: dict[str, Any]) -> dict[str, Any]:
    return {**tool, "function": {**tool["function"], "strict": True}}


def _image(media: str, **extra: Any) -> list[dict[str, Any]]:
    url = {"url": f"data:{media};base64,{PNG}", **extra}
    return [{"role": "user", "content": [{"type": "image_url", "image_url": url}]}]


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _schema(schema: dict[str, Any], **json_schema: Any) -> dict[str, Any]:
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, **json_schema},
        }
    }


#: name -> (messages, params, provider_params["gemini"])
SUPPORTED: dict[str, tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]] = {
    "plain": (USER, {}, {}),
    "system_and_developer": (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            *USER,
        ],
        {},
        {},
    ),
    "multi_turn": (
        [*USER, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Again"}],
        {},
        {},
    ),
    "same_role_turns_merge": (
        [*USER, {"role": "user", "content": "And another thing"}],
        {},
        {},
    ),
    "text_parts": (
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            }
        ],
        {},
        {},
    ),
    "image_png": (_image("image/png"), {}, {}),
    "image_jpeg_detail_auto": (_image("image/jpeg", detail="auto"), {}, {}),
    "image_jpg": (_image("image/jpg"), {}, {}),
    "image_webp": (_image("image/webp"), {}, {}),
    "image_heic": (_image("image/heic"), {}, {}),
    "image_heif": (_image("image/heif"), {}, {}),
    "audio_wav_and_mp3": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "wav"}},
                    {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "mp3"}},
                    {"type": "text", "text": "Transcribe both"},
                ],
            }
        ],
        {},
        {},
    ),
    "file_pdf": (
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF}",
                        },
                    },
                    {"type": "text", "text": "Summarise"},
                ],
            }
        ],
        {},
        {},
    ),
    "tool_call_and_result": (
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [_call("call_1", "get_weather", '{"city": "Paris"}')],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        {"tools": [WEATHER]},
        {},
    ),
    "parallel_tool_results": (
        [
            *USER,
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    _call("call_1", "get_weather", '{"city": "Paris"}'),
                    _call("call_2", "now", "{}"),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "noon"}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        {"tools": [WEATHER, NOW]},
        {},
    ),
    "function_tools": (USER, {"tools": [WEATHER, NOW]}, {}),
    "tool_choice_auto": (USER, {"tools": [WEATHER], "tool_choice": "auto"}, {}),
    "tool_choice_none": (USER, {"tools": [WEATHER], "tool_choice": "none"}, {}),
    "tool_choice_required": (USER, {"tools": [WEATHER], "tool_choice": "required"}, {}),
    "tool_choice_function": (
        USER,
        {
            "tools": [WEATHER, NOW],
            "tool_choice": {"type": "function", "function": {"name": "now"}},
        },
        {},
    ),
    "allowed_tools_required": (
        USER,
        {
            "tools": [WEATHER, NOW],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
        },
        {},
    ),
    "strict_functions": (USER, {"tools": [_strict(WEATHER), _strict(NOW)]}, {}),
    "max_tokens": (USER, {"max_tokens": 256}, {}),
    "max_completion_tokens": (USER, {"max_completion_tokens": 512}, {}),
    "sampling": (USER, {"temperature": 1.5, "top_p": 0.9, "top_k": 40}, {}),
    "stop_string": (USER, {"stop": "END"}, {}),
    "stop_list": (USER, {"stop": ["a", "b", "c", "d"]}, {}),
    "seed": (USER, {"seed": 7}, {}),
    "n": (USER, {"n": 8}, {}),
    "penalties": (USER, {"presence_penalty": 0.5, "frequency_penalty": -0.5}, {}),
    "logprobs": (USER, {"logprobs": True, "top_logprobs": 3}, {}),
    "json_object": (USER, {"response_format": {"type": "json_object"}}, {}),
    "json_schema": (
        USER,
        _schema(
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name"],
                "additionalProperties": False,
            },
            description="A person",
            strict=True,
        ),
        {},
    ),
    "json_schema_not_strict": (
        USER,
        _schema({"type": "string", "enum": ["yes", "no"]}, strict=False),
        {},
    ),
    "json_schema_own_title": (
        USER,
        _schema({"type": "object", "title": "Own", "description": "Its own", "properties": {}}),
        {},
    ),
    "json_schema_written_out": (
        USER,
        _schema(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$comment": "annotations are left out",
                "type": "object",
                "properties": {
                    "when": {"type": "string", "format": "date-time"},
                    "day": {"type": "string", "format": "date"},
                    "count": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 9},
                    "ratio": {"type": "number", "format": "double"},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 8},
                        "minItems": 1,
                        "maxItems": 3,
                    },
                    "note": {"type": ["string", "null"]},
                    "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "only": {"anyOf": [{"type": "boolean"}]},
                    "kind": {"const": "person"},
                    "home": {"$ref": "#/$defs/Place", "description": "Where they live"},
                    "code": {"type": "string", "pattern": "^[A-Z]{3}$", "default": "AAA"},
                },
                "$defs": {
                    "Place": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "minProperties": 1,
                        "maxProperties": 2,
                    }
                },
            }
        ),
        {},
    ),
    "neutral_values": (
        USER,
        {
            "response_format": {"type": "text"},
            "stream": False,
            "store": False,
            "modalities": ["text"],
            "parallel_tool_calls": True,
            "tools": [WEATHER],
            "logprobs": False,
            "temperature": None,
        },
        {},
    ),
    "native_generation_and_safety": (
        USER,
        {"max_tokens": 64},
        {
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}},
            "safetySettings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
        },
    ),
    "native_snake_case": (
        USER,
        {},
        {"generation_config": {"media_resolution": "MEDIA_RESOLUTION_LOW"}},
    ),
    "native_tools_and_tool_config": (
        USER,
        {"tools": [WEATHER], "tool_choice": "auto"},
        {
            "tools": [{"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
    ),
    "native_contents": (
        USER,
        {},
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "fileData": {
                                "mimeType": "application/pdf",
                                "fileUri": "https://generativelanguage.googleapis.com/v1/files/a",
                            }
                        },
                        {"text": "Summarise the file"},
                    ],
                }
            ]
        },
    ),
    "native_cached_content": (USER, {}, {"cachedContent": "cachedContents/abc123"}),
}


def _request(name: str, messages: Any, params: Any, native: Any) -> BatchRequest:
    data: dict[str, Any] = {
        "custom_id": name,
        "model": MODEL,
        "messages": messages,
        "params": params,
    }
    if native:
        data["provider_params"] = {"gemini": native}
    return BatchRequest.from_dict(data)


class StrictRequest(BaseModel):
    """Gemini's REST ``GenerateContentRequest``, made of the SDK's own types: unknown fields
    refused (the SDK's ``extra="forbid"``), and every value validated strictly (no string read
    as a number, no number read as a string)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    contents: list[types.Content]
    system_instruction: types.Content | None = None
    tools: list[types.Tool] | None = None
    tool_config: types.ToolConfig | None = None
    safety_settings: list[types.SafetySetting] | None = None
    generation_config: types.GenerationConfig | None = None
    cached_content: str | None = None


def assert_strictly_valid(body: dict[str, Any]) -> None:
    StrictRequest.model_validate_json(orjson.dumps(body), strict=True)
    assert request_problem(body) is None, request_problem(body)


def test_the_strict_types_refuse_what_gemini_would() -> None:
    good = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert_strictly_valid(good)
    for bad in (
        {**good, "unknownField": 1},
        {**good, "generationConfig": {"maxOutputTokens": "64"}},  # a string for a number
        {**good, "generationConfig": {"temperature": 1, "frequencyPenalty": "0.5"}},
        {"contents": [{"role": "user", "parts": [{"text": "hi", "cacheControl": {}}]}]},
        {**good, "tools": [{"functionDeclarations": [{"name": "f", "strict": True}]}]},
    ):
        with pytest.raises(ValueError):
            StrictRequest.model_validate_json(orjson.dumps(bad), strict=True)


@pytest.fixture
def offline(tmp_path: Path) -> GeminiBatchProvider:
    return GeminiBatchProvider(config={"workdir": str(tmp_path)})


def _lines(provider: GeminiBatchProvider, requests: list[BatchRequest]) -> list[Any]:
    lines = []
    for payload in provider.prepare_payloads(requests):
        assert payload.path is not None
        lines.extend(orjson.loads(line) for line in payload.path.read_bytes().splitlines())
        payload.discard()
    return lines


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_row_makes_a_request_the_sdk_types_accept_strictly(
    offline: GeminiBatchProvider, name: str
) -> None:
    [line] = _lines(offline, [_request(name, *SUPPORTED[name])])
    assert set(line) == {"key", "request"} and line["key"] == name
    assert_strictly_valid(line["request"])


def _bad(**changes: Any) -> dict[str, Any]:
    return {"custom_id": "bad", "model": MODEL, "messages": USER, "params": {}, **changes}


def _bad_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return _bad(params=_schema(schema))


_SCHEMA = "params.response_format.json_schema.schema"

#: name -> (the request, the field its refusal names)
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "late_system_message": (
        _bad(messages=[*USER, {"role": "system", "content": "late"}]),
        "messages[1].role",
    ),
    "message_name": (
        _bad(messages=[{"role": "user", "content": "Hi", "name": "ann"}]),
        "messages[0].name",
    ),
    "image_by_url": (
        _bad(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    "image_detail_low": (
        _bad(messages=_image("image/png", detail="low")),
        "messages[0].content[0].image_url.detail",
    ),
    "image_gif": (_bad(messages=_image("image/gif")), "messages[0].content[0].image_url.url"),
    "audio_flac": (
        _bad(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "flac"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].input_audio.format",
    ),
    "file_id": (
        _bad(
            messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}]
        ),
        "messages[0].content[0].file.file_id",
    ),
    "assistant_refusal": (
        _bad(messages=[*USER, {"role": "assistant", "content": "No.", "refusal": "I can't"}]),
        "messages[1].refusal",
    ),
    "tool_result_without_its_call": (
        _bad(messages=[*USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]),
        "messages[1].tool_call_id",
    ),
    "custom_tool": (
        _bad(params={"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
        "params.tools[0].type",
    ),
    "parallel_tool_calls_false": (
        _bad(params={"tools": [WEATHER], "parallel_tool_calls": False}),
        "params.parallel_tool_calls",
    ),
    "tool_choice_without_tools": (_bad(params={"tool_choice": "required"}), "params.tool_choice"),
    "strict_and_loose_functions": (
        _bad(
            params={
                "tools": [
                    _strict(WEATHER),
                    {**NOW, "function": {**NOW["function"], "strict": False}},
                ]
            }
        ),
        "params.tools",
    ),
    "stream": (_bad(params={"stream": True}), "params.stream"),
    "store": (_bad(params={"store": True}), "params.store"),
    "audio_output": (_bad(params={"modalities": ["text", "audio"]}), "params.modalities"),
    "user": (_bad(params={"user": "u-1"}), "params.user"),
    "metadata": (_bad(params={"metadata": {"a": "b"}}), "params.metadata"),
    "logit_bias": (_bad(params={"logit_bias": {"50256": -100}}), "params.logit_bias"),
    "reasoning_effort": (_bad(params={"reasoning_effort": "low"}), "params.reasoning_effort"),
    "service_tier": (_bad(params={"service_tier": "flex"}), "params.service_tier"),
    "prediction": (
        _bad(params={"prediction": {"type": "content", "content": "x"}}),
        "params.prediction",
    ),
    "n_over_8": (_bad(params={"n": 9}), "params.n"),
    "six_stop_sequences": (_bad(params={"stop": ["1", "2", "3", "4", "5", "6"]}), "params.stop"),
    "unknown_param": (_bad(params={"not_an_openai_param": 1}), "params.not_an_openai_param"),
    "schema_one_of": (
        _bad_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        f"{_SCHEMA}.oneOf",
    ),
    "schema_all_of": (_bad_schema({"allOf": [{"type": "string"}]}), f"{_SCHEMA}.allOf"),
    "schema_not": (_bad_schema({"type": "string", "not": {"enum": ["x"]}}), f"{_SCHEMA}.not"),
    "schema_if": (
        _bad_schema({"type": "string", "if": {"minLength": 2}, "then": {"maxLength": 3}}),
        f"{_SCHEMA}.if",
    ),
    "schema_pattern_properties": (
        _bad_schema({"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
        f"{_SCHEMA}.patternProperties",
    ),
    "schema_prefix_items": (
        _bad_schema({"type": "array", "prefixItems": [{"type": "string"}]}),
        f"{_SCHEMA}.prefixItems",
    ),
    "schema_unique_items": (
        _bad_schema({"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        f"{_SCHEMA}.uniqueItems",
    ),
    "schema_multiple_of": (
        _bad_schema({"type": "integer", "multipleOf": 2}),
        f"{_SCHEMA}.multipleOf",
    ),
    "schema_exclusive_maximum": (
        _bad_schema({"type": "number", "exclusiveMaximum": 1}),
        f"{_SCHEMA}.exclusiveMaximum",
    ),
    "schema_additional_properties": (
        _bad_schema({"type": "object", "additionalProperties": {"type": "string"}}),
        f"{_SCHEMA}.additionalProperties",
    ),
    "schema_recursive_ref": (
        _bad_schema(
            {
                "type": "object",
                "properties": {"next": {"$ref": "#/$defs/Node"}},
                "$defs": {
                    "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
                },
            }
        ),
        f"{_SCHEMA}.properties.next.properties.next.$ref",
    ),
    "schema_integer_enum": (_bad_schema({"type": "integer", "enum": [1, 2]}), f"{_SCHEMA}.enum"),
    "schema_number_const": (_bad_schema({"const": 3}), f"{_SCHEMA}.const"),
    "schema_other_format": (
        _bad_schema({"type": "string", "format": "email"}),
        f"{_SCHEMA}.format",
    ),
    "schema_two_types": (_bad_schema({"type": ["string", "integer"]}), f"{_SCHEMA}.type"),
    "schema_without_type": (_bad_schema({"description": "what am I"}), _SCHEMA),
    "model_in_provider_params": (
        _bad(provider_params={"gemini": {"model": "models/gemini-2.5-pro"}}),
        "provider_params.gemini.model",
    ),
    "embeddings": (
        {
            "custom_id": "bad",
            "model": "gemini-embedding-001",
            "endpoint": "/v1/embeddings",
            "params": {"input": "text"},
        },
        "endpoint",
    ),
    "unsupported_model": (_bad(model="gpt-4o"), "model"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_gemini_cannot_take_is_refused_offline_naming_the_field(
    tmp_path: Path, name: str
) -> None:
    data, field = REFUSED[name]
    offline = GeminiBatchProvider(config={"workdir": str(tmp_path)})
    good = _request("good", *SUPPORTED["plain"])
    with pytest.raises(InvalidRequestError) as caught:
        offline.prepare_payloads([good, BatchRequest.from_dict(data)])
    assert caught.value.field == field, str(caught.value)
    assert caught.value.custom_id == "bad"
    assert field in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_the_corpus_covers_every_row_and_refusal() -> None:
    assert len(SUPPORTED) + len(REFUSED) >= 60
    assert not set(SUPPORTED) & set(REFUSED)


@pytest.mark.parametrize("input_mode", ["inline", "file"])
def test_the_whole_corpus_runs_on_the_emulator(tmp_path: Path, input_mode: str) -> None:
    clock = ManualClock(start=1_767_225_600.0)
    with GeminiEmulator(clock=clock) as emulator:
        provider = GeminiBatchProvider(
            config={
                "base_url": emulator.url,
                "api_key": emulator.api_key,
                "input_mode": input_mode,
                "workdir": str(tmp_path),
            }
        )
        provider.clock = clock.now
        with provider:
            [payload] = provider.prepare_payloads(
                [_request(name, *spec) for name, spec in SUPPORTED.items()]
            )
            handle = provider.submit(payload)
            payload.discard()
            clock.advance(3600)
            assert provider.poll_status(handle).state is BatchState.COMPLETED
            results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert sorted(results) == sorted(SUPPORTED)
    failed = {name: r.error for name, r in results.items() if not r.ok}
    assert not failed, failed
