"""The conversion table: unified (OpenAI-chat-shaped) requests -> Messages API params.

Every converted body is also validated against the spec's ``MessageBatchIndividualRequestParams``
schema, so a conversion that produced a shape the API does not accept would fail here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest

from batchcore import BatchRequest, InvalidRequestError
from batchcore_anthropic._mapping import (
    MESSAGES_PARAMS,
    NATIVE_BLOCK_TYPES,
    encode_item,
    message_params,
)

MODEL = "claude-sonnet-4-5"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg=="
USER = {"role": "user", "content": "Hello"}
THINKING = {"type": "thinking", "thinking": "Let me see.", "signature": "c2lnbmF0dXJl"}
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_SCHEMA},
}


def request(
    messages: list[Mapping[str, Any]] | None = None,
    *,
    provider_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> BatchRequest:
    return BatchRequest(
        custom_id="req-1",
        model=MODEL,
        messages=messages or [USER],
        params={"max_tokens": 64, **params},
        provider_params=provider_params or {},
    )


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [USER], "max_tokens": 64, **fields}


# (name, unified request, expected Messages API params)
TABLE: list[tuple[str, BatchRequest, dict[str, Any]]] = [
    ("plain user turn", request(), body()),
    (
        "system message to system",
        request([{"role": "system", "content": "Be brief."}, USER]),
        body(system="Be brief."),
    ),
    (
        "developer message is a system message",
        request([{"role": "developer", "content": "Be brief."}, USER]),
        body(system="Be brief."),
    ),
    (
        "several system messages become system blocks",
        request(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
                USER,
            ]
        ),
        body(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]),
    ),
    (
        "system part with cache_control keeps the block",
        request(
            [
                {
                    "role": "system",
                    "content": [
                        {
                            "type": "text",
                            "text": "Long prompt",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
                USER,
            ]
        ),
        body(
            system=[{"type": "text", "text": "Long prompt", "cache_control": {"type": "ephemeral"}}]
        ),
    ),
    (
        "alternating turns unchanged",
        request(
            [USER, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Bye"}]
        ),
        body(
            messages=[
                USER,
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": "Bye"},
            ]
        ),
    ),
    (
        "consecutive user turns merged",
        request([{"role": "user", "content": "One"}, {"role": "user", "content": "Two"}]),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
                }
            ]
        ),
    ),
    (
        "assistant prefill kept last",
        request([USER, {"role": "assistant", "content": "The answer is"}]),
        body(messages=[USER, {"role": "assistant", "content": "The answer is"}]),
    ),
    (
        "text parts",
        request([{"role": "user", "content": [{"type": "text", "text": "Look"}]}]),
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "Look"}]}]),
    ),
    (
        "data URL image to base64 source",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                }
            ]
        ),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                }
            ]
        ),
    ),
    (
        "image/jpg is spelled image/jpeg",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpg;base64,{PNG}", "detail": "auto"},
                        }
                    ],
                }
            ]
        ),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG},
                        }
                    ],
                }
            ]
        ),
    ),
    (
        "https image to url source",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ],
                }
            ]
        ),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.png"},
                        }
                    ],
                }
            ]
        ),
    ),
    (
        "PDF file part to document",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "file_data": f"data:application/pdf;base64,{PDF}",
                                "filename": "a.pdf",
                            },
                        },
                        {"type": "text", "text": "Summarise"},
                    ],
                }
            ]
        ),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": PDF,
                            },
                            "title": "a.pdf",
                        },
                        {"type": "text", "text": "Summarise"},
                    ],
                }
            ]
        ),
    ),
    (
        "Anthropic-native blocks pass unchanged",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "Notes"},
                            "citations": {"enabled": True},
                        },
                        {"type": "text", "text": "Cite it"},
                    ],
                }
            ]
        ),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "Notes"},
                            "citations": {"enabled": True},
                        },
                        {"type": "text", "text": "Cite it"},
                    ],
                }
            ]
        ),
    ),
    (
        "assistant thinking blocks pass unchanged",
        request(
            [USER, {"role": "assistant", "content": [THINKING, {"type": "text", "text": "Hi"}]}]
        ),
        body(
            messages=[
                USER,
                {"role": "assistant", "content": [THINKING, {"type": "text", "text": "Hi"}]},
            ]
        ),
    ),
    (
        "tool round trip",
        request(
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "25C"}],
                },
                {"role": "user", "content": "Which is warmer?"},
            ],
            tools=[WEATHER_TOOL],
        ),
        body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "call_2",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [{"type": "text", "text": "25C"}],
                        },
                        {"type": "text", "text": "Which is warmer?"},
                    ],
                },
            ],
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
        ),
    ),
    (
        "assistant text with a tool call",
        request(
            [
                USER,
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "now", "arguments": ""},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "noon"},
            ]
        ),
        body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "call_9", "name": "now", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_9", "content": "noon"}
                    ],
                },
            ]
        ),
    ),
    (
        "function without parameters gets an empty object schema",
        request(tools=[{"type": "function", "function": {"name": "ping", "strict": True}}]),
        body(
            tools=[
                {
                    "name": "ping",
                    "input_schema": {"type": "object", "properties": {}},
                    "strict": True,
                }
            ]
        ),
    ),
    (
        "Anthropic server tool passes unchanged",
        request(
            tools=[
                WEATHER_TOOL,
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
            ]
        ),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                },
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
            ]
        ),
    ),
    (
        "tool_choice auto",
        request(tools=[WEATHER_TOOL], tool_choice="auto"),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "auto"},
        ),
    ),
    (
        "tool_choice required is any",
        request(tools=[WEATHER_TOOL], tool_choice="required"),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "any"},
        ),
    ),
    (
        "tool_choice none",
        request(tools=[WEATHER_TOOL], tool_choice="none"),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "none"},
        ),
    ),
    (
        "tool_choice function is tool",
        request(
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        ),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "tool", "name": "get_weather"},
        ),
    ),
    (
        "parallel_tool_calls false disables parallel tool use",
        request(tools=[WEATHER_TOOL], parallel_tool_calls=False, tool_choice="required"),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        ),
    ),
    (
        "parallel_tool_calls false without tool_choice",
        request(tools=[WEATHER_TOOL], parallel_tool_calls=False),
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "input_schema": WEATHER_SCHEMA,
                }
            ],
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        ),
    ),
    (
        "tool_choice auto without tools is the default",
        request(tool_choice="auto", parallel_tool_calls=True),
        body(),
    ),
    ("stop string", request(stop="END"), body(stop_sequences=["END"])),
    ("stop list", request(stop=["END", "STOP"]), body(stop_sequences=["END", "STOP"])),
    ("temperature", request(temperature=0.2), body(temperature=0.2)),
    ("top_p", request(top_p=0.9), body(top_p=0.9)),
    (
        "top_k through provider_params",
        request(provider_params={"anthropic": {"top_k": 40}}),
        body(top_k=40),
    ),
    ("user is metadata.user_id", request(user="user-42"), body(metadata={"user_id": "user-42"})),
    (
        "metadata with user_id only",
        request(metadata={"user_id": "user-42"}),
        body(metadata={"user_id": "user-42"}),
    ),
    (
        "max_completion_tokens is max_tokens",
        BatchRequest(
            custom_id="req-1", model=MODEL, messages=[USER], params={"max_completion_tokens": 64}
        ),
        body(),
    ),
    (
        "neutral OpenAI defaults are accepted",
        request(
            n=1,
            stream=False,
            presence_penalty=0,
            frequency_penalty=0.0,
            logprobs=False,
            seed=None,
            response_format={"type": "text"},
        ),
        body(),
    ),
    (
        "json_schema response_format to output_config",
        request(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": WEATHER_SCHEMA, "strict": True},
            }
        ),
        body(output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}),
    ),
    (
        "provider_params merged unchanged",
        request(
            temperature=0.5,
            provider_params={
                "anthropic": {
                    "thinking": {"type": "enabled", "budget_tokens": 2048},
                    "temperature": 1,
                    "service_tier": "standard_only",
                },
                "openai": {"seed": 7},
            },
        ),
        body(
            temperature=1,
            thinking={"type": "enabled", "budget_tokens": 2048},
            service_tier="standard_only",
        ),
    ),
    (
        "provider_params output_config merges with response_format",
        request(
            response_format={"type": "json_schema", "json_schema": {"schema": WEATHER_SCHEMA}},
            provider_params={"anthropic": {"output_config": {"effort": "low"}}},
        ),
        body(
            output_config={
                "format": {"type": "json_schema", "schema": WEATHER_SCHEMA},
                "effort": "low",
            }
        ),
    ),
    (
        "provider_params may supply max_tokens",
        BatchRequest(
            custom_id="req-1",
            model=MODEL,
            messages=[USER],
            provider_params={"anthropic": {"max_tokens": 64}},
        ),
        body(),
    ),
]


@pytest.mark.parametrize(
    ("unified", "expected"), [pytest.param(u, e, id=name) for name, u, e in TABLE]
)
def test_conversion_table(
    unified: BatchRequest, expected: dict[str, Any], spec: Callable[[str, Any], None]
) -> None:
    # Compared as sent: the body may reuse the request's tuples, which serialise as arrays.
    sent = orjson.loads(encode_item(unified.custom_id, message_params(unified)))
    assert sent == {"custom_id": unified.custom_id, "params": expected}
    spec("MessageBatchIndividualRequestParams", sent)


def test_default_max_tokens_fills_in() -> None:
    unified = BatchRequest(custom_id="r", model=MODEL, messages=[USER])
    assert message_params(unified, default_max_tokens=256)["max_tokens"] == 256
    explicit = request()
    assert message_params(explicit, default_max_tokens=256)["max_tokens"] == 64


def test_plain_turns_are_not_copied() -> None:
    # The hot path reuses the caller's message objects as they are.
    unified = request([USER, {"role": "assistant", "content": "Hi"}])
    converted = message_params(unified)
    assert converted["messages"] is unified.body_parts()[0]


# (name, unified request, field the error must name)
ERRORS: list[tuple[str, BatchRequest, str]] = [
    (
        "no max_tokens for a model without a known maximum",
        BatchRequest(custom_id="req-1", model="claude-future-9", messages=[USER]),
        "params.max_tokens",
    ),
    ("max_tokens zero", request(max_tokens=0), "params.max_tokens"),
    ("max_tokens not an integer", request(max_tokens=12.5), "params.max_tokens"),
    (
        "max_completion_tokens disagrees",
        request(max_completion_tokens=10),
        "params.max_completion_tokens",
    ),
    ("n above one", request(n=2), "params.n"),
    ("stream", request(stream=True), "params.stream"),
    (
        "stream via provider_params",
        request(provider_params={"anthropic": {"stream": True}}),
        "params.stream",
    ),
    ("temperature above one", request(temperature=1.5), "params.temperature"),
    ("top_p not a number", request(top_p="high"), "params.top_p"),
    ("presence_penalty", request(presence_penalty=0.5), "params.presence_penalty"),
    ("logprobs", request(logprobs=True), "params.logprobs"),
    ("seed", request(seed=42), "params.seed"),
    ("unknown parameter", request(frobnicate=1), "params.frobnicate"),
    ("top_k in params", request(top_k=40), "params.top_k"),
    ("Anthropic field in params", request(thinking={"type": "disabled"}), "params.thinking"),
    (
        "json_object",
        request(response_format={"type": "json_object"}),
        "params.response_format.type",
    ),
    (
        "json_schema without schema",
        request(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        "params.response_format.json_schema.schema",
    ),
    ("free-form metadata", request(metadata={"team": "a"}), "params.metadata.team"),
    ("stop empty string", request(stop=""), "params.stop"),
    (
        "tool without name",
        request(tools=[{"type": "function", "function": {"description": "x"}}]),
        "params.tools[0].function.name",
    ),
    (
        "tool parameters not an object schema",
        request(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]
        ),
        "params.tools[0].function.parameters",
    ),
    (
        "OpenAI custom tool",
        request(tools=[{"type": "custom", "custom": {"name": "x"}}]),
        "params.tools[0]",
    ),
    ("tool_choice unknown", request(tool_choice="sometimes"), "params.tool_choice"),
    (
        "model in provider_params",
        request(provider_params={"anthropic": {"model": "x"}}),
        "provider_params.anthropic.model",
    ),
    (
        "system message mid-conversation",
        request([USER, {"role": "system", "content": "Now be rude."}]),
        "messages[1].role",
    ),
    ("only a system message", request([{"role": "system", "content": "Hi"}]), "messages"),
    (
        "function role",
        request([{"role": "function", "name": "f", "content": "x"}]),
        "messages[0].role",
    ),
    ("empty user text", request([{"role": "user", "content": ""}]), "messages[0].content"),
    (
        "empty text part",
        request([{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        "messages[0].content[0].text",
    ),
    (
        "participant name",
        request([{"role": "user", "content": "Hi", "name": "bob"}]),
        "messages[0].name",
    ),
    (
        "audio part",
        request([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
        "messages[0].content[0].type",
    ),
    (
        "image detail high",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/y.png", "detail": "high"},
                        }
                    ],
                }
            ]
        ),
        "messages[0].content[0].image_url.detail",
    ),
    (
        "unsupported image type",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG}"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        "data URL not base64",
        request(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        "image from a file path",
        request(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "file:///x.png"}}],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        "OpenAI file id",
        request([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]),
        "messages[0].content[0].file.file_id",
    ),
    (
        "non-PDF file",
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].file.file_data",
    ),
    (
        "tool call arguments not JSON",
        request(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{oops"},
                        }
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool call id with bad characters",
        request(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call 1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].id",
    ),
    (
        "empty assistant message",
        request([USER, {"role": "assistant", "content": None}]),
        "messages[1].content",
    ),
    (
        "assistant refusal",
        request([USER, {"role": "assistant", "content": None, "refusal": "No."}]),
        "messages[1].refusal",
    ),
    (
        "tool message without tool_call_id",
        request([USER, {"role": "tool", "content": "x"}]),
        "messages[1].tool_call_id",
    ),
    (
        "image in the system prompt",
        request(
            [
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": "https://x/y.png"}],
                },
                USER,
            ]
        ),
        "messages[0].content[0].type",
    ),
    (
        "image in an assistant turn",
        request(
            [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": "https://x/y.png"}],
                },
            ]
        ),
        "messages[1].content[0].type",
    ),
    (
        "embeddings endpoint",
        BatchRequest(
            custom_id="req-1", model=MODEL, endpoint="/v1/embeddings", params={"input": "x"}
        ),
        "endpoint",
    ),
]


@pytest.mark.parametrize(("unified", "field"), [pytest.param(u, f, id=n) for n, u, f in ERRORS])
def test_unconvertible_requests_name_the_custom_id_and_field(
    unified: BatchRequest, field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        message_params(unified)
    error = caught.value
    assert error.custom_id == "req-1"
    assert error.field == field
    assert error.provider == "anthropic"
    assert "req-1" in str(error) and field in str(error)


def test_provider_params_that_are_not_an_object_never_reach_the_conversion() -> None:
    # The request itself refuses them (the core checks provider_params' shape for every
    # provider), naming the same field the conversion would.
    with pytest.raises(InvalidRequestError) as caught:
        request(provider_params={"anthropic": ["x"]})
    assert (caught.value.custom_id, caught.value.field) == ("req-1", "provider_params.anthropic")


def test_max_tokens_message_says_where_to_set_it() -> None:
    with pytest.raises(InvalidRequestError, match="default_max_tokens"):
        message_params(BatchRequest(custom_id="req-1", model="claude-future-9", messages=[USER]))


def test_known_fields_match_the_spec(spec_defs: dict[str, Any]) -> None:
    assert set(spec_defs["CreateMessageParams"]["properties"]) == MESSAGES_PARAMS
    block_types = {
        spec_defs[ref["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["const"]
        for ref in spec_defs["InputContentBlock"]["oneOf"]
    }
    assert block_types == NATIVE_BLOCK_TYPES
