"""A corpus of unified requests run through ``prepare_payloads``, the way users run them: the
core's check (OpenAI's spec and this provider's ``REQUEST_EXTENSIONS``), then what the model
takes (``_models``; models the table does not name are judged by their version), then the
conversion. Every body written is checked against Anthropic's published request schema,
strictly (no field the schema does not name); every refusal must name the field. Each case is
tagged with the row of the README's conversion table it exercises, and every row must have one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from batchcore import BatchRequest, InvalidRequestError
from batchcore_anthropic.provider import AnthropicBatchProvider

Spec = Callable[[str, Any], None]
MODEL = "claude-sonnet-4-5"
README = Path(__file__).resolve().parents[1] / "README.md"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg=="
USER = {"role": "user", "content": "Hello"}
EPHEMERAL = {"type": "ephemeral"}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": SCHEMA},
}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather now", "input_schema": SCHEMA}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOL_USE = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}

# README rows (first column of the conversion table), as written there.
SYSTEM = "`system` / `developer` messages before the first turn"
TURNS = "`user` / `assistant` messages"
TEXT = "content part `text`"
CACHE = "`cache_control` on a content part or on a message"
DATA_IMAGE = "`image_url` with a `data:image/...;base64,` URL"
URL_IMAGE = "`image_url` with an `http(s)://` URL"
PDF_FILE = "`file` part with `file_data` as a PDF data URL"
NATIVE_PARTS = "content parts already in Anthropic's form (`image`, `document`, `thinking`, ...)"
TOOL_CALLS = "assistant `tool_calls`"
TOOL_MESSAGES = "`tool` messages"
FUNCTIONS = "`tools` (function tools)"
NATIVE_TOOLS = "`tools` already in Anthropic's form (e.g. `web_search_20250305`)"
TOOL_CHOICE = '`tool_choice` `"auto"` / `"required"` / `"none"` / `{function}`'
PARALLEL = "`parallel_tool_calls: false`"
MAX_TOKENS = "`max_tokens`, or `max_completion_tokens`"
NO_MAX_TOKENS = "no `max_tokens`"
STOP = "`stop`"
SAMPLING = "`temperature`, `top_p`"
USER_ID = '`user`, `safety_identifier`, `metadata: {"user_id"}`'
JSON_SCHEMA = "`response_format` `json_schema`"
CACHE_KEY = "`prompt_cache_key`"
STORE = "`store: false`"
NEUTRAL = (
    "`response_format` `text`; `n: 1`; `stream: false`; zero penalties; `logprobs: false`; "
    "`null` values"
)
NATIVE = '`provider_params["anthropic"]`'


@attrs.frozen
class Case:
    """A request that must convert: *expect* holds fields of the body (compared exactly)."""

    name: str
    feature: str
    request: BatchRequest
    expect: Mapping[str, Any]


@attrs.frozen
class Refusal:
    """A request that must be refused before anything is written, naming *field*."""

    name: str
    request: BatchRequest
    field: str


def unified(
    messages: list[Mapping[str, Any]] | None = None,
    *,
    model: str = MODEL,
    custom_id: str = "req-1",
    provider_params: Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    **params: Any,
) -> BatchRequest:
    extra = {"endpoint": endpoint} if endpoint else {}
    return BatchRequest(
        custom_id=custom_id,
        model=model,
        messages=messages or [USER],
        params={"max_tokens": 64, **params},
        provider_params=provider_params or {},
        **extra,
    )


def user(*parts: Mapping[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def image_url(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


CASES: list[Case] = [
    Case(
        "system string",
        SYSTEM,
        unified([{"role": "system", "content": "Be brief."}, USER]),
        {"system": "Be brief.", "messages": [USER]},
    ),
    Case(
        "developer message",
        SYSTEM,
        unified([{"role": "developer", "content": "Be brief."}, USER]),
        {"system": "Be brief."},
    ),
    Case(
        "two system messages",
        SYSTEM,
        unified(
            [{"role": "system", "content": "A."}, {"role": "developer", "content": "B."}, USER]
        ),
        {"system": [text("A."), text("B.")]},
    ),
    Case(
        "system text parts",
        SYSTEM,
        unified([{"role": "system", "content": [text("A."), text("B.")]}, USER]),
        {"system": [text("A."), text("B.")]},
    ),
    Case(
        "alternating turns",
        TURNS,
        unified([USER, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "?"}]),
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": "?"},
            ]
        },
    ),
    Case(
        "consecutive user turns merged",
        TURNS,
        unified([{"role": "user", "content": "One"}, user(text("Two"))]),
        {"messages": [{"role": "user", "content": [text("One"), text("Two")]}]},
    ),
    Case(
        "consecutive assistant turns merged",
        TURNS,
        unified(
            [USER, {"role": "assistant", "content": "A"}, {"role": "assistant", "content": "B"}]
        ),
        {"messages": [USER, {"role": "assistant", "content": [text("A"), text("B")]}]},
    ),
    Case(
        "assistant prefill",
        TURNS,
        unified([USER, {"role": "assistant", "content": "The answer is"}]),
        {"messages": [USER, {"role": "assistant", "content": "The answer is"}]},
    ),
    Case(
        "text parts",
        TEXT,
        unified([user(text("Look"), text("here"))]),
        {"messages": [user(text("Look"), text("here"))]},
    ),
    Case(
        "assistant text parts",
        TEXT,
        unified([USER, {"role": "assistant", "content": [text("Hi")]}]),
        {"messages": [USER, {"role": "assistant", "content": [text("Hi")]}]},
    ),
    Case(
        "cache_control on a text part",
        CACHE,
        unified([user(text("Long document", cache_control=EPHEMERAL), text("Question"))]),
        {"messages": [user(text("Long document", cache_control=EPHEMERAL), text("Question"))]},
    ),
    Case(
        "cache_control with a 1h ttl on a system part",
        CACHE,
        unified(
            [
                {
                    "role": "system",
                    "content": [text("Rules", cache_control={"type": "ephemeral", "ttl": "1h"})],
                },
                USER,
            ]
        ),
        {"system": [text("Rules", cache_control={"type": "ephemeral", "ttl": "1h"})]},
    ),
    Case(
        "cache_control on a system message",
        CACHE,
        unified([{"role": "system", "content": "Long rules", "cache_control": EPHEMERAL}, USER]),
        {"system": [text("Long rules", cache_control=EPHEMERAL)]},
    ),
    Case(
        "cache_control on a user message marks its last block",
        CACHE,
        unified([{"role": "user", "content": [text("A"), text("B")], "cache_control": EPHEMERAL}]),
        {"messages": [user(text("A"), text("B", cache_control=EPHEMERAL))]},
    ),
    Case(
        "cache_control on a tool message",
        CACHE,
        unified(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": "18C",
                    "cache_control": EPHEMERAL,
                },
            ]
        ),
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": "18C",
                            "cache_control": EPHEMERAL,
                        }
                    ],
                },
            ]
        },
    ),
    Case(
        "cache_control on an image part",
        CACHE,
        unified([user({**image_url("https://example.com/a.png"), "cache_control": EPHEMERAL})]),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                        "cache_control": EPHEMERAL,
                    }
                )
            ]
        },
    ),
    Case(
        "png data URL",
        DATA_IMAGE,
        unified([user(text("What is this?"), image_url(f"data:image/png;base64,{PNG}"))]),
        {
            "messages": [
                user(
                    text("What is this?"),
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                )
            ]
        },
    ),
    Case(
        "image/jpg data URL is image/jpeg",
        DATA_IMAGE,
        unified([user(image_url(f"data:image/jpg;base64,{PNG}", detail="auto"))]),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG},
                    }
                )
            ]
        },
    ),
    Case(
        "webp data URL",
        DATA_IMAGE,
        unified([user(image_url(f"data:image/webp;base64,{PNG}"))]),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/webp", "data": PNG},
                    }
                )
            ]
        },
    ),
    Case(
        "https image",
        URL_IMAGE,
        unified([user(image_url("https://example.com/cat.png"))]),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.png"},
                    }
                )
            ]
        },
    ),
    Case(
        "image_url as a bare string",
        URL_IMAGE,
        unified([user({"type": "image_url", "image_url": "http://example.com/cat.gif"})]),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "http://example.com/cat.gif"},
                    }
                )
            ]
        },
    ),
    Case(
        "PDF with a filename",
        PDF_FILE,
        unified(
            [
                user(
                    {
                        "type": "file",
                        "file": {
                            "file_data": f"data:application/pdf;base64,{PDF}",
                            "filename": "report.pdf",
                        },
                    },
                    text("Summarise"),
                )
            ]
        ),
        {
            "messages": [
                user(
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                        "title": "report.pdf",
                    },
                    text("Summarise"),
                )
            ]
        },
    ),
    Case(
        "PDF in a tool result",
        PDF_FILE,
        unified(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": [
                        {
                            "type": "file",
                            "file": {"file_data": f"data:application/pdf;base64,{PDF}"},
                        }
                    ],
                },
            ]
        ),
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [
                                {
                                    "type": "document",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "application/pdf",
                                        "data": PDF,
                                    },
                                }
                            ],
                        }
                    ],
                },
            ]
        },
    ),
    Case(
        "native text document with citations",
        NATIVE_PARTS,
        unified(
            [
                user(
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Notes"},
                        "citations": {"enabled": True},
                    },
                    text("Cite it"),
                )
            ]
        ),
        {
            "messages": [
                user(
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Notes"},
                        "citations": {"enabled": True},
                    },
                    text("Cite it"),
                )
            ]
        },
    ),
    Case(
        "native base64 image",
        NATIVE_PARTS,
        unified(
            [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    }
                )
            ]
        ),
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    }
                )
            ]
        },
    ),
    Case(
        "assistant thinking blocks",
        NATIVE_PARTS,
        unified(
            [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
                        text("Hi"),
                    ],
                },
            ]
        ),
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
                        text("Hi"),
                    ],
                },
            ]
        },
    ),
    Case(
        "two tool calls and their results",
        TOOL_CALLS,
        unified(
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        CALL,
                        {
                            **CALL,
                            "id": "call_2",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [text("25C")]},
                {"role": "user", "content": "Which is warmer?"},
            ],
            tools=[WEATHER],
        ),
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [TOOL_USE, {**TOOL_USE, "id": "call_2", "input": {"city": "Rome"}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": [text("25C")]},
                        text("Which is warmer?"),
                    ],
                },
            ],
            "tools": [WEATHER_TOOL],
        },
    ),
    Case(
        "assistant text with a tool call",
        TOOL_CALLS,
        unified(
            [
                USER,
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [{**CALL, "function": {"name": "now", "arguments": ""}}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
            ]
        ),
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        text("Checking."),
                        {"type": "tool_use", "id": "call_1", "name": "now", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "noon"}
                    ],
                },
            ]
        },
    ),
    Case(
        "tool result with an image",
        TOOL_MESSAGES,
        unified(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": [text("Chart:"), image_url("https://example.com/c.png")],
                },
            ]
        ),
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [
                                text("Chart:"),
                                {
                                    "type": "image",
                                    "source": {"type": "url", "url": "https://example.com/c.png"},
                                },
                            ],
                        }
                    ],
                },
            ]
        },
    ),
    Case(
        "empty tool result",
        TOOL_MESSAGES,
        unified(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": ""},
            ]
        ),
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [TOOL_USE]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1"}]},
            ]
        },
    ),
    Case("function tool", FUNCTIONS, unified(tools=[WEATHER]), {"tools": [WEATHER_TOOL]}),
    Case(
        "strict function tool without parameters",
        FUNCTIONS,
        unified(tools=[{"type": "function", "function": {"name": "ping", "strict": True}}]),
        {
            "tools": [
                {
                    "name": "ping",
                    "input_schema": {"type": "object", "properties": {}},
                    "strict": True,
                }
            ]
        },
    ),
    Case(
        "server tool",
        NATIVE_TOOLS,
        unified(
            tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
        ),
        {
            "tools": [
                WEATHER_TOOL,
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
            ]
        },
    ),
    Case(
        "tool_choice auto",
        TOOL_CHOICE,
        unified(tools=[WEATHER], tool_choice="auto"),
        {"tool_choice": {"type": "auto"}},
    ),
    Case(
        "tool_choice required",
        TOOL_CHOICE,
        unified(tools=[WEATHER], tool_choice="required"),
        {"tool_choice": {"type": "any"}},
    ),
    Case(
        "tool_choice none",
        TOOL_CHOICE,
        unified(tools=[WEATHER], tool_choice="none"),
        {"tool_choice": {"type": "none"}},
    ),
    Case(
        "tool_choice function",
        TOOL_CHOICE,
        unified(
            tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}
        ),
        {"tool_choice": {"type": "tool", "name": "get_weather"}},
    ),
    Case(
        "tool_choice auto without tools",
        TOOL_CHOICE,
        unified(tool_choice="auto"),
        {"tool_choice": None},
    ),
    Case(
        "parallel_tool_calls false with required",
        PARALLEL,
        unified(tools=[WEATHER], tool_choice="required", parallel_tool_calls=False),
        {"tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    Case(
        "parallel_tool_calls false alone",
        PARALLEL,
        unified(tools=[WEATHER], parallel_tool_calls=False),
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    ),
    Case(
        "parallel_tool_calls false with none",
        PARALLEL,
        unified(tools=[WEATHER], tool_choice="none", parallel_tool_calls=False),
        {"tool_choice": {"type": "none"}},
    ),
    Case("max_tokens", MAX_TOKENS, unified(max_tokens=300), {"max_tokens": 300}),
    Case(
        "max_completion_tokens",
        MAX_TOKENS,
        BatchRequest(
            custom_id="req-1", model=MODEL, messages=[USER], params={"max_completion_tokens": 77}
        ),
        {"max_tokens": 77},
    ),
    Case(
        "max_tokens at the model's maximum",
        MAX_TOKENS,
        unified(model="claude-opus-4-1", max_tokens=32_000),
        {"max_tokens": 32_000},
    ),
    Case(
        "no max_tokens: the model's maximum",
        NO_MAX_TOKENS,
        BatchRequest(custom_id="req-1", model=MODEL, messages=[USER]),
        {"max_tokens": 64_000},
    ),
    Case(
        "no max_tokens on a dated snapshot",
        NO_MAX_TOKENS,
        BatchRequest(custom_id="req-1", model="claude-haiku-4-5-20251001", messages=[USER]),
        {"max_tokens": 64_000},
    ),
    Case(
        "no max_tokens on Claude Opus 4.7",
        NO_MAX_TOKENS,
        BatchRequest(custom_id="req-1", model="claude-opus-4-7", messages=[USER]),
        {"max_tokens": 128_000},
    ),
    Case("stop string", STOP, unified(stop="END"), {"stop_sequences": ["END"]}),
    Case("stop list", STOP, unified(stop=["END", "STOP"]), {"stop_sequences": ["END", "STOP"]}),
    Case("temperature", SAMPLING, unified(temperature=0.2), {"temperature": 0.2}),
    Case("top_p", SAMPLING, unified(top_p=0.5), {"top_p": 0.5}),
    Case(
        "temperature 0 on Claude Opus 4.6",
        SAMPLING,
        unified(model="claude-opus-4-6", temperature=0),
        {"temperature": 0},
    ),
    Case(
        "temperature 1.0 on Claude Opus 4.7",
        SAMPLING,
        unified(model="claude-opus-4-7", temperature=1.0),
        {"temperature": 1.0},
    ),
    Case(
        "top_p 0.99 on Claude Opus 4.8",
        SAMPLING,
        unified(model="claude-opus-4-8", top_p=0.99),
        {"top_p": 0.99},
    ),
    Case(
        "both on a model the table does not name",
        SAMPLING,
        unified(model="claude-3-7-sonnet-20250219", temperature=0.3, top_p=0.9),
        {"temperature": 0.3, "top_p": 0.9},
    ),
    Case("user", USER_ID, unified(user="user-42"), {"metadata": {"user_id": "user-42"}}),
    Case(
        "safety_identifier",
        USER_ID,
        unified(safety_identifier="hash-9"),
        {"metadata": {"user_id": "hash-9"}},
    ),
    Case(
        "user and safety_identifier agreeing",
        USER_ID,
        unified(user="u-1", safety_identifier="u-1", metadata={"user_id": "u-1"}),
        {"metadata": {"user_id": "u-1"}},
    ),
    Case(
        "metadata user_id",
        USER_ID,
        unified(metadata={"user_id": "u-2"}),
        {"metadata": {"user_id": "u-2"}},
    ),
    Case(
        "json_schema strict",
        JSON_SCHEMA,
        unified(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
            }
        ),
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    ),
    Case(
        "json_schema on a model newer than the table",
        JSON_SCHEMA,
        unified(
            model="claude-opus-5",
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        ),
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    ),
    Case(
        "json_schema with a description",
        JSON_SCHEMA,
        unified(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "description": "Where the user lives",
                    "schema": SCHEMA,
                },
            }
        ),
        {
            "output_config": {
                "format": {
                    "type": "json_schema",
                    "schema": {**SCHEMA, "description": "Where the user lives"},
                }
            }
        },
    ),
    Case(
        "json_schema and a native effort",
        JSON_SCHEMA,
        unified(
            model="claude-opus-4-5",
            response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}},
            provider_params={"anthropic": {"output_config": {"effort": "low"}}},
        ),
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}},
    ),
    Case(
        "prompt_cache_key",
        CACHE_KEY,
        unified(prompt_cache_key="tenant-7"),
        {"prompt_cache_key": None, "metadata": None},
    ),
    Case("store false", STORE, unified(store=False), {"store": None}),
    Case(
        "neutral values",
        NEUTRAL,
        unified(
            n=1,
            stream=False,
            presence_penalty=0,
            frequency_penalty=0.0,
            logprobs=False,
            response_format={"type": "text"},
            seed=None,
            temperature=None,
            store=None,
        ),
        {"temperature": None, "stream": None, "output_config": None},
    ),
    Case(
        "thinking and top_k",
        NATIVE,
        unified(
            max_tokens=4096,
            provider_params={
                "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 40}
            },
        ),
        {"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 40},
    ),
    Case(
        "native fields replace converted ones",
        NATIVE,
        unified(
            temperature=0.5,
            provider_params={
                "anthropic": {
                    "temperature": 1,
                    "service_tier": "standard_only",
                    "tool_choice": {"type": "any"},
                },
                "openai": {"seed": 7},
            },
            tools=[WEATHER],
        ),
        {"temperature": 1, "service_tier": "standard_only", "tool_choice": {"type": "any"}},
    ),
    Case(
        "native max_tokens and a top-level cache_control",
        NATIVE,
        BatchRequest(
            custom_id="req-1",
            model=MODEL,
            messages=[USER],
            provider_params={"anthropic": {"max_tokens": 50, "cache_control": EPHEMERAL}},
        ),
        {"max_tokens": 50, "cache_control": EPHEMERAL},
    ),
    Case(
        "adaptive thinking on Claude Opus 4.7",
        NATIVE,
        BatchRequest(
            custom_id="req-1",
            model="claude-opus-4-7",
            messages=[USER],
            params={"max_tokens": 8000},
            provider_params={"anthropic": {"thinking": {"type": "adaptive"}}},
        ),
        {"thinking": {"type": "adaptive"}},
    ),
]

REFUSALS: list[Refusal] = [
    Refusal("n above one", unified(n=2), "params.n"),
    Refusal("stream", unified(stream=True), "params.stream"),
    Refusal(
        "stream through provider_params",
        unified(provider_params={"anthropic": {"stream": True}}),
        "params.stream",
    ),
    Refusal("temperature above one", unified(temperature=1.5), "params.temperature"),
    Refusal("temperature above OpenAI's range", unified(temperature=2.5), "params.temperature"),
    Refusal(
        "temperature on Claude Opus 4.7",
        unified(model="claude-opus-4-7", temperature=0.5),
        "params.temperature",
    ),
    Refusal(
        "temperature on a dated snapshot of a new model",
        unified(model="claude-opus-4-8-20260528", temperature=0),
        "params.temperature",
    ),
    Refusal(
        "top_p on Claude Sonnet 5", unified(model="claude-sonnet-5", top_p=0.9), "params.top_p"
    ),
    Refusal(
        "temperature on a model newer than the table",
        unified(model="claude-opus-5", temperature=0.5),
        "params.temperature",
    ),
    Refusal(
        "top_p on a dated snapshot of a model newer than the table",
        unified(model="claude-sonnet-6-20270301", top_p=0.5),
        "params.top_p",
    ),
    Refusal(
        "temperature on a model whose name has no version",
        unified(model="claude-nova-preview", temperature=0.2),
        "params.temperature",
    ),
    Refusal(
        "structured output on Claude 3 Haiku",
        unified(
            model="claude-3-haiku-20240307",
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        ),
        "params.response_format",
    ),
    Refusal(
        "structured output on Claude Opus 4.1",
        unified(
            model="claude-opus-4-1",
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        ),
        "params.response_format",
    ),
    Refusal(
        "temperature and top_p on Claude Sonnet 4.5",
        unified(temperature=0.5, top_p=0.9),
        "params.top_p",
    ),
    Refusal(
        "max_tokens above the model's maximum",
        unified(model="claude-haiku-4-5", max_tokens=64_001),
        "params.max_tokens",
    ),
    Refusal(
        "max_completion_tokens above the model's maximum",
        BatchRequest(
            custom_id="req-1",
            model="claude-opus-4-1",
            messages=[USER],
            params={"max_completion_tokens": 40_000},
        ),
        "params.max_completion_tokens",
    ),
    Refusal("max_tokens zero", unified(max_tokens=0), "params.max_tokens"),
    Refusal(
        "max_tokens and max_completion_tokens disagree",
        unified(max_completion_tokens=10),
        "params.max_completion_tokens",
    ),
    Refusal(
        "no max_tokens for an unknown model",
        BatchRequest(custom_id="req-1", model="claude-future-9", messages=[USER]),
        "params.max_tokens",
    ),
    Refusal("seed", unified(seed=42), "params.seed"),
    Refusal("logprobs", unified(logprobs=True), "params.logprobs"),
    Refusal("presence_penalty", unified(presence_penalty=0.5), "params.presence_penalty"),
    Refusal("reasoning_effort", unified(reasoning_effort="low"), "params.reasoning_effort"),
    Refusal("top_k in params", unified(top_k=40), "params.top_k"),
    Refusal("thinking in params", unified(thinking={"type": "adaptive"}), "params.thinking"),
    Refusal(
        "json_object",
        unified(response_format={"type": "json_object"}),
        "params.response_format.type",
    ),
    Refusal(
        "json_schema strict false",
        unified(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": SCHEMA, "strict": False},
            }
        ),
        "params.response_format.json_schema.strict",
    ),
    Refusal(
        "json_schema description against the schema's",
        unified(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "c",
                    "description": "A city",
                    "schema": {**SCHEMA, "description": "A town"},
                },
            }
        ),
        "params.response_format.json_schema.description",
    ),
    Refusal(
        "json_schema without a schema",
        unified(response_format={"type": "json_schema", "json_schema": {"name": "c"}}),
        "params.response_format.json_schema.schema",
    ),
    Refusal("store true", unified(store=True), "params.store"),
    Refusal(
        "safety_identifier against user",
        unified(user="u-1", safety_identifier="u-2"),
        "params.safety_identifier",
    ),
    Refusal(
        "metadata against user",
        unified(user="u-1", metadata={"user_id": "u-2"}),
        "params.metadata.user_id",
    ),
    Refusal("free-form metadata", unified(metadata={"team": "a"}), "params.metadata.team"),
    Refusal(
        "native tool_choice in params",
        unified(tools=[WEATHER], tool_choice={"type": "any"}),
        "params.tool_choice",
    ),
    Refusal(
        "system message after the first turn",
        unified([USER, {"role": "system", "content": "Now be rude."}]),
        "messages[1].role",
    ),
    Refusal(
        "participant name",
        unified([{"role": "user", "content": "Hi", "name": "bob"}]),
        "messages[0].name",
    ),
    Refusal(
        "a message field nobody defines",
        unified([{"role": "user", "content": "Hi", "weight": 2}]),
        "messages[0].weight",
    ),
    Refusal(
        "a part field nobody defines",
        unified([user(text("Hi", weight=2))]),
        "messages[0].content[0].weight",
    ),
    Refusal(
        "OpenAI's cache breakpoint",
        unified([user(text("Hi", prompt_cache_breakpoint={"mode": "explicit"}))]),
        "messages[0].content[0].prompt_cache_breakpoint",
    ),
    Refusal(
        "audio part",
        unified([user({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}})]),
        "messages[0].content[0].type",
    ),
    Refusal(
        "image detail high",
        unified([user(image_url("https://example.com/a.png", detail="high"))]),
        "messages[0].content[0].image_url.detail",
    ),
    Refusal(
        "OpenAI file id",
        unified([user({"type": "file", "file": {"file_id": "file-1"}})]),
        "messages[0].content[0].file.file_id",
    ),
    Refusal(
        "cache_control on a message ending in thinking",
        unified(
            [
                USER,
                {
                    "role": "assistant",
                    "cache_control": EPHEMERAL,
                    "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"}],
                },
            ]
        ),
        "messages[1].cache_control",
    ),
    Refusal(
        "image in the system prompt",
        unified([{"role": "system", "content": [image_url("https://example.com/a.png")]}, USER]),
        "messages[0].content[0].type",
    ),
    Refusal("bad custom_id", unified(custom_id="req 1"), "custom_id"),
    Refusal("another vendor's model", unified(model="gpt-4o"), "model"),
    Refusal(
        "embeddings",
        BatchRequest(
            custom_id="req-1", model=MODEL, endpoint="/v1/embeddings", params={"input": "x"}
        ),
        "endpoint",
    ),
]


@pytest.fixture
def provider() -> AnthropicBatchProvider:
    # Offline: preparing payloads needs no key and makes no call.
    return AnthropicBatchProvider()


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) + len(REFUSALS) >= 60
    names = [case.name for case in CASES] + [refusal.name for refusal in REFUSALS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_body_is_one_anthropic_accepts(
    case: Case, provider: AnthropicBatchProvider, spec: Spec
) -> None:
    [payload] = provider.prepare_payloads([case.request])
    try:
        assert payload.path is not None
        document = orjson.loads(payload.path.read_bytes())
    finally:
        payload.discard()
    spec("CreateMessageBatchParams", document)
    [item] = document["requests"]
    assert item["custom_id"] == case.request.custom_id
    params = item["params"]
    spec("CreateMessageParams", params)
    assert params["model"] == case.request.model
    for key, expected in case.expect.items():
        assert params.get(key) == expected, key


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
def test_every_refusal_names_the_field(refusal: Refusal, tmp_path: Path) -> None:
    workdir = tmp_path / "payloads"
    provider = AnthropicBatchProvider(config={"workdir": str(workdir)})
    with pytest.raises(InvalidRequestError) as caught:
        provider.prepare_payloads([refusal.request])
    error = caught.value
    assert (error.custom_id, error.field, error.provider) == (
        refusal.request.custom_id,
        refusal.field,
        "anthropic",
    )
    assert refusal.field in str(error)
    assert not workdir.exists() or not any(workdir.iterdir())  # nothing left behind


def _readme_conversion_rows() -> list[str]:
    """The first cells of the first table after the README's conversion heading."""
    section = README.read_text(encoding="utf-8").split("## From the unified request", 1)[1]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [row.strip("| ").split(" | ")[0] for row in table[2:]]


def test_every_feature_the_readme_lists_is_in_the_corpus() -> None:
    rows = _readme_conversion_rows()
    assert len(rows) >= 20
    covered = {case.feature for case in CASES}
    assert [row for row in rows if row not in covered] == []
    assert [feature for feature in covered if feature not in rows] == []
