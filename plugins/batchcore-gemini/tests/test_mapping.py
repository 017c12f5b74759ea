"""The conversion table: every row of the README's table, and every refusal naming its field.

Every converted request is also checked by the emulator's validator (the SDK's own types, with
unknown fields refused), so a row that produced something Gemini would not read fails here.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from conftest import MODEL

from batchcore.plugin import BatchRequest, InvalidRequestError, UnsupportedModelError
from batchcore_gemini import _mapping as wire
from batchcore_gemini._emulation import request_problem
from batchcore_gemini.provider import GeminiBatchProvider

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake document").decode()
WAV = base64.b64encode(b"RIFF fake audio").decode()
USER = {"role": "user", "content": "Hi"}


def _tool(name: str, **function: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **function}}


def request(
    messages: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    native: dict[str, Any] | None = None,
    *,
    model: str = MODEL,
    endpoint: str | None = None,
) -> BatchRequest:
    data: dict[str, Any] = {
        "custom_id": "r1",
        "model": model,
        "messages": messages if messages is not None else [USER],
        "params": params or {},
    }
    if native is not None:
        data["provider_params"] = {"gemini": native}
    if endpoint is not None:
        data["endpoint"] = endpoint
    return BatchRequest.from_dict(data)


def convert(
    messages: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    native: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The converted body, after checking the provider accepts the request and that the
    result is a GenerateContentRequest the emulator's strict validator accepts."""
    unified = request(messages, params, native)
    GeminiBatchProvider(config={"api_key": "unused-key-0000"}).check_request(unified)
    body = wire.generate_content_request(unified)
    assert request_problem(body) is None, request_problem(body)
    return body


def refused(
    messages: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    native: dict[str, Any] | None = None,
    **options: Any,
) -> InvalidRequestError:
    """The refusal of prepare_payloads (the core's checks, then the conversion), offline."""
    provider = GeminiBatchProvider(config={"api_key": "unused-key-0000"})
    with pytest.raises(InvalidRequestError) as caught:
        provider.prepare_payloads([request(messages, params, native, **options)])
    error = caught.value
    assert error.custom_id == "r1"
    assert error.field is not None and error.field in str(error)
    return error


def generation(params: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = convert(params=params).get("generationConfig", {})
    return config


# -- messages -----------------------------------------------------------------------------------


def test_plain_user_message() -> None:
    assert convert() == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    body = convert(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            USER,
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_assistant_turns_are_model_turns_and_same_role_turns_merge() -> None:
    body = convert(
        [
            USER,
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ]
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Bye"}]},
    ]


def test_images_audio_and_files_become_inline_data() -> None:
    body = convert(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/jpg;base64,{PNG}", "detail": "auto"},
                    },
                    {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
                    {"type": "input_audio", "input_audio": {"data": WAV, "format": "mp3"}},
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF}",
                        },
                    },
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "image/jpeg", "data": PNG}},
        {"inlineData": {"mimeType": "audio/wav", "data": WAV}},
        {"inlineData": {"mimeType": "audio/mp3", "data": WAV}},
        {"inlineData": {"mimeType": "application/pdf", "data": PDF, "displayName": "report.pdf"}},
    ]


def test_tool_calls_and_tool_results_become_function_calls_and_responses() -> None:
    body = convert(
        [
            USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Rain"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "9"}]},
        ],
        {"tools": [_tool("weather"), _tool("time")]},
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Oslo"}, "id": "call_1"}},
            {"functionCall": {"name": "time", "args": {}, "id": "call_2"}},
        ],
    }
    # The responses to one model turn travel together, in one user turn.
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": "call_1",
                    "name": "weather",
                    "response": {"output": "Rain"},
                }
            },
            {"functionResponse": {"id": "call_2", "name": "time", "response": {"output": "9"}}},
        ],
    }


# -- generation parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_tokens": 100}, {"maxOutputTokens": 100}),
        ({"max_completion_tokens": 100}, {"maxOutputTokens": 100}),
        ({"max_tokens": 100, "max_completion_tokens": 100}, {"maxOutputTokens": 100}),
        ({"temperature": 0.2}, {"temperature": 0.2}),
        ({"top_p": 0.9}, {"topP": 0.9}),
        ({"top_k": 40}, {"topK": 40}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"seed": 7}, {"seed": 7}),
        ({"n": 3}, {"candidateCount": 3}),
        ({"presence_penalty": 0.5}, {"presencePenalty": 0.5}),
        ({"frequency_penalty": -0.5}, {"frequencyPenalty": -0.5}),
        ({"logprobs": True, "top_logprobs": 3}, {"responseLogprobs": True, "logprobs": 3}),
        ({"logprobs": False}, {}),
        ({"response_format": {"type": "text"}}, {}),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        ({"stream": False, "store": False, "modalities": ["text"]}, {}),
        ({"parallel_tool_calls": True}, {}),
        ({"temperature": None, "seed": None}, {}),
    ],
)
def test_generation_parameters(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert generation(params) == expected


def test_json_schema_becomes_a_response_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name"},
            "age": {"type": ["integer", "null"], "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "kind": {"enum": ["a", "b"]},
            "fixed": {"const": "x"},
            "when": {"type": "string", "format": "date-time"},
            "home": {"$ref": "#/$defs/Address", "description": "Where they live"},
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer", "format": "int64"}]},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            }
        },
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    config = generation(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "person",
                    "description": "A person",
                    "schema": schema,
                    "strict": True,
                },
            }
        }
    )
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "title": "person",
        "description": "A person",
        "properties": {
            "name": {"type": "STRING", "description": "Full name"},
            "age": {"type": "INTEGER", "minimum": 0, "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3},
            "kind": {"type": "STRING", "enum": ["a", "b"]},
            "fixed": {"type": "STRING", "enum": ["x"]},
            "when": {"type": "STRING", "format": "date-time"},
            "home": {
                "type": "OBJECT",
                "description": "Where they live",
                "properties": {"city": {"type": "STRING"}},
                "required": ["city"],
            },
            "score": {"type": "NUMBER", "nullable": True},
            "either": {
                "anyOf": [{"type": "STRING"}, {"type": "INTEGER", "format": "int64"}],
            },
        },
        "propertyOrdering": [
            "name",
            "age",
            "tags",
            "kind",
            "fixed",
            "when",
            "home",
            "score",
            "either",
        ],
        "required": ["name", "age"],
    }


def test_a_schema_title_and_description_of_its_own_are_kept() -> None:
    config = generation(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "label",
                    "description": "Same",
                    "schema": {"type": "string", "title": "Own", "description": "Same"},
                },
            }
        }
    )
    assert config["responseSchema"] == {"type": "STRING", "title": "Own", "description": "Same"}


def test_function_tools_become_function_declarations() -> None:
    body = convert(
        params={
            "tools": [
                _tool(
                    "weather",
                    description="Weather for a city",
                    parameters={
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                ),
                _tool("now", parameters={"type": "object", "properties": {}}),
            ]
        }
    )
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                },
                # Gemini refuses an OBJECT without properties: no parameters at all.
                {"name": "now"},
            ]
        }
    ]
    assert "toolConfig" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "b"}},
            {"mode": "ANY", "allowedFunctionNames": ["b"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "a"}}],
                },
            },
            {"mode": "ANY", "allowedFunctionNames": ["a"]},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = convert(params={"tools": [_tool("a"), _tool("b")], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_strict_functions_are_validated_calls() -> None:
    strict = [_tool("a", strict=True), _tool("b", strict=True)]
    body = convert(params={"tools": strict})
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}
    # A required call is validated already.
    required = convert(params={"tools": strict, "tool_choice": "required"})
    assert required["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_tool_choice_without_tools_changes_nothing() -> None:
    assert "toolConfig" not in convert(params={"tool_choice": "auto"})
    assert "toolConfig" not in convert(params={"tool_choice": "none", "tools": []})


# -- provider_params ---------------------------------------------------------------------------


def test_provider_params_merge_into_the_converted_body() -> None:
    body = convert(
        params={"temperature": 0.1, "max_tokens": 10, "tools": [_tool("a")]},
        native={
            "generation_config": {"thinking_config": {"thinkingBudget": 0}, "maxOutputTokens": 20},
            "safetySettings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
            "tools": [{"googleSearch": {}}],
            "cachedContent": "cachedContents/abc",
        },
    )
    assert body["generationConfig"] == {
        "temperature": 0.1,
        "maxOutputTokens": 20,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
    ]
    assert body["tools"] == [{"functionDeclarations": [{"name": "a"}]}, {"googleSearch": {}}]
    assert body["cachedContent"] == "cachedContents/abc"


def test_provider_params_can_replace_the_contents() -> None:
    native = {"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "files/abc"}}]}]}
    body = convert(native=native)
    assert body["contents"] == native["contents"]


# -- models ------------------------------------------------------------------------------------


def test_models_are_normalised_as_users_write_them() -> None:
    provider = GeminiBatchProvider(config={"api_key": "unused-key-0000"})
    assert provider.supports_model("gemini-2.5-flash")
    assert provider.supports_model("models/gemini-2.5-pro")
    assert not provider.supports_model("gpt-4o")
    both = [request(model="gemini-2.5-flash"), request(model="models/gemini-2.5-flash")]
    both[1] = BatchRequest.from_dict({**both[1].to_dict(), "custom_id": "r2"})
    other = BatchRequest.from_dict({**request(model="gemini-2.5-pro").to_dict(), "custom_id": "r3"})
    payloads = provider.prepare_payloads([*both, other])
    try:
        assert [(p.model, p.request_count) for p in payloads] == [
            ("gemini-2.5-flash", 2),
            ("gemini-2.5-pro", 1),
        ]
    finally:
        for payload in payloads:
            payload.discard()
    assert wire.model_resource("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert wire.model_resource("tunedModels/mine") == "tunedModels/mine"
    extra = GeminiBatchProvider(config={"api_key": "unused-key-0000", "models": "tunedModels/*"})
    assert extra.supports_model("tunedModels/mine")


def test_an_unsupported_model_is_refused_offline() -> None:
    provider = GeminiBatchProvider(config={"api_key": "unused-key-0000"})
    with pytest.raises(UnsupportedModelError):
        provider.prepare_payloads([request(model="claude-sonnet-4-5")])


# -- refusals ----------------------------------------------------------------------------------

_IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([USER, {"role": "system", "content": "late"}], "messages[1].role"),
        ([{"role": "user", "content": "Hi", "name": "ann"}], "messages[0].name"),
        ([{"role": "user", "content": ""}], "messages[0].content"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                        }
                    ],
                }
            ],
            "messages[0].content[0].image_url.detail",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{PNG}"}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}],
            "messages[0].content[0].file.file_id",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": WAV, "format": "ogg"}}
                    ],
                }
            ],
            "messages[0].content[0].input_audio.format",
        ),
        ([USER, {"role": "assistant", "content": None}], "messages[1].content"),
        (
            [USER, {"role": "assistant", "content": "No.", "refusal": "I can't"}],
            "messages[1].refusal",
        ),
        (
            [USER, {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}],
            "messages[1].tool_call_id",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([USER, {"role": "function", "name": "f", "content": "x"}], "messages[1].role"),
        (
            [{"role": "user", "content": [_IMAGE, {"type": "refusal", "refusal": "x"}]}],
            "messages[0].content[1].type",
        ),
    ],
)
def test_messages_without_a_gemini_equivalent_are_refused(
    messages: list[dict[str, Any]], field: str
) -> None:
    assert refused(messages).field == field


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_tokens": 10, "max_completion_tokens": 20}, "params.max_completion_tokens"),
        ({"stop": ["1", "2", "3", "4", "5", "6"]}, "params.stop"),
        ({"n": 9}, "params.n"),
        ({"stream": True}, "params.stream"),
        ({"store": True}, "params.store"),
        ({"modalities": ["text", "audio"]}, "params.modalities"),
        ({"parallel_tool_calls": False}, "params.parallel_tool_calls"),
        ({"user": "u-1"}, "params.user"),
        ({"logit_bias": {"50256": -100}}, "params.logit_bias"),
        ({"reasoning_effort": "low"}, "params.reasoning_effort"),
        ({"service_tier": "flex"}, "params.service_tier"),
        ({"metadata": {"a": "b"}}, "params.metadata"),
        ({"not_an_openai_param": 1}, "params.not_an_openai_param"),
        ({"top_k": 0}, "params.top_k"),
        (
            {"tools": [{"type": "custom", "custom": {"name": "x"}}]},
            "params.tools[0].type",
        ),
        ({"tools": [_tool("1starts-with-digit")]}, "params.tools[0].function.name"),
        (
            {"tools": [_tool("a", parameters={"type": "string"})]},
            "params.tools[0].function.parameters",
        ),
        ({"tool_choice": "required"}, "params.tool_choice"),
        (
            {"tools": [_tool("a")], "tool_choice": {"type": "function", "function": {"name": "b"}}},
            "params.tool_choice",
        ),
        (
            {
                "tools": [_tool("a")],
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "auto",
                        "tools": [{"type": "function", "function": {"name": "a"}}],
                    },
                },
            },
            "params.tool_choice.allowed_tools.mode",
        ),
        ({"tools": [_tool("a", strict=True), _tool("b", strict=False)]}, "params.tools"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "description": "one",
                        "schema": {"type": "string", "description": "another"},
                    },
                }
            },
            "params.response_format.json_schema.description",
        ),
    ],
)
def test_parameters_without_a_gemini_equivalent_are_refused(
    params: dict[str, Any], field: str
) -> None:
    assert refused(params=params).field == field


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    }


_WHERE = "params.response_format.json_schema.schema"


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, f"{_WHERE}.oneOf"),
        ({"allOf": [{"type": "string"}]}, f"{_WHERE}.allOf"),
        ({"type": "string", "not": {"enum": ["x"]}}, f"{_WHERE}.not"),
        (
            {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
            f"{_WHERE}.patternProperties",
        ),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, f"{_WHERE}.prefixItems"),
        ({"type": "integer", "multipleOf": 2}, f"{_WHERE}.multipleOf"),
        ({"type": "integer", "exclusiveMinimum": 0}, f"{_WHERE}.exclusiveMinimum"),
        (
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            f"{_WHERE}.uniqueItems",
        ),
        ({"type": "object", "additionalProperties": True}, f"{_WHERE}.additionalProperties"),
        (
            {"type": "object", "additionalProperties": {"type": "string"}},
            f"{_WHERE}.additionalProperties",
        ),
        ({"type": "integer", "enum": [1, 2]}, f"{_WHERE}.enum"),
        ({"const": 3}, f"{_WHERE}.const"),
        ({"type": "string", "format": "email"}, f"{_WHERE}.format"),
        ({"type": "null"}, f"{_WHERE}.type"),
        ({"type": ["string", "integer"]}, f"{_WHERE}.type"),
        ({"type": "tuple"}, f"{_WHERE}.type"),
        ({"description": "no type at all"}, _WHERE),
        ({"type": "string", "examples": ["a"]}, f"{_WHERE}.examples"),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}},
            f"{_WHERE}.properties.a.$ref",
        ),
        (
            {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
                "$defs": {
                    "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}
                },
            },
            f"{_WHERE}.properties.child.properties.child.$ref",
        ),
        ({"type": "string", "contentEncoding": "base64"}, f"{_WHERE}.contentEncoding"),
    ],
)
def test_schema_features_gemini_cannot_express_are_refused(
    schema: dict[str, Any], field: str
) -> None:
    assert refused(params=_schema_format(schema)).field == field


def test_the_model_cannot_be_set_through_provider_params() -> None:
    assert (
        refused(native={"model": "models/gemini-2.5-pro"}).field == "provider_params.gemini.model"
    )


def test_embeddings_are_refused_with_the_reason() -> None:
    error = refused(
        messages=[],
        params={"input": "text"},
        endpoint="/v1/embeddings",
        model="gemini-embedding-001",
    )
    assert error.field == "endpoint"
    assert "no faithful Gemini equivalent" in str(error)


def test_a_refusal_points_vendor_only_fields_to_provider_params() -> None:
    error = refused(params={"user": "u-1"})
    assert "provider_params['gemini']" in str(error)
