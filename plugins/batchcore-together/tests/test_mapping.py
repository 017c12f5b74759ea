"""From the unified request (OpenAI's chat format) to Together's chat body, through
``prepare_payloads``: what is converted, what passes unchanged, and what is refused offline,
naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from together_support import MODEL, assert_valid, chat

from batchcore import BatchRequest, InvalidRequestError
from batchcore_together._mapping import chat_body
from batchcore_together.provider import TogetherBatchProvider


def request(messages: list[dict[str, Any]] | None = None, **params: Any) -> BatchRequest:
    provider_params = params.pop("provider_params", None)
    return BatchRequest(
        custom_id="r",
        model=MODEL,
        messages=messages or [{"role": "user", "content": "Hello"}],
        params=params,
        provider_params=provider_params or {},
    )


def body_of(provider: TogetherBatchProvider, req: BatchRequest) -> dict[str, Any]:
    """The body *req* becomes in its payload file, checked against Together's schema."""
    [payload] = provider.prepare_payloads([req])
    try:
        assert payload.path is not None
        [line] = payload.path.read_bytes().splitlines()
    finally:
        payload.discard()
    parsed = orjson.loads(line)
    assert set(parsed) == {"custom_id", "body"}
    assert parsed["custom_id"] == req.custom_id
    assert_valid("ChatCompletionRequest", parsed["body"])
    body: dict[str, Any] = parsed["body"]
    return body


def refused(provider: TogetherBatchProvider, req: BatchRequest, field: str) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        provider.prepare_payloads([req])
    assert caught.value.field == field, str(caught.value)
    assert caught.value.custom_id == req.custom_id
    assert field in str(caught.value)
    return str(caught.value)


# -- what passes as it is -------------------------------------------------------------------------


def test_a_plain_request_is_the_openai_body_unchanged() -> None:
    req = chat("plain", temperature=0.2, top_p=0.9, seed=7, n=2)
    assert chat_body(req) is req.openai_body_json()  # no copy on the common path


def test_line_shape_is_custom_id_and_body_only(provider: TogetherBatchProvider) -> None:
    body = body_of(provider, chat("shape", presence_penalty=0.5, frequency_penalty=-0.5))
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi shape"}],
        "max_tokens": 16,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }


def test_generation_parameters_shared_by_both_apis(provider: TogetherBatchProvider) -> None:
    body = body_of(
        provider,
        request(
            temperature=0.7,
            top_p=0.5,
            seed=3,
            n=2,
            logit_bias={"50256": -100},
            max_tokens=32,
            stop=["\n\n", "END"],
        ),
    )
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.5
    assert body["seed"] == 3
    assert body["n"] == 2
    assert body["logit_bias"] == {"50256": -100}
    assert body["max_tokens"] == 32
    assert body["stop"] == ["\n\n", "END"]


def test_nulls_mean_not_set_and_are_left_out(provider: TogetherBatchProvider) -> None:
    body = body_of(provider, request(temperature=None, stop=None, max_tokens=None, seed=None))
    assert set(body) == {"model", "messages"}


# -- what is converted ----------------------------------------------------------------------------


def test_max_completion_tokens_becomes_max_tokens(provider: TogetherBatchProvider) -> None:
    assert body_of(provider, request(max_completion_tokens=64))["max_tokens"] == 64
    assert body_of(provider, request(max_completion_tokens=64, max_tokens=64))["max_tokens"] == 64
    refused(
        provider, request(max_completion_tokens=64, max_tokens=32), "params.max_completion_tokens"
    )


def test_a_stop_string_becomes_a_list(provider: TogetherBatchProvider) -> None:
    assert body_of(provider, request(stop="END"))["stop"] == ["END"]


def test_logprobs_become_the_number_of_top_tokens(provider: TogetherBatchProvider) -> None:
    assert body_of(provider, request(logprobs=True))["logprobs"] == 1
    assert body_of(provider, request(logprobs=True, top_logprobs=5))["logprobs"] == 5
    assert "logprobs" not in body_of(provider, request(logprobs=False))
    refused(provider, request(top_logprobs=3), "params.top_logprobs")


def test_developer_and_system_messages_become_system_strings(
    provider: TogetherBatchProvider,
) -> None:
    body = body_of(
        provider,
        request(
            [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "One "}, {"type": "text", "text": "two"}],
                    "name": "policy",
                },
                {"role": "user", "content": "Hi"},
            ]
        ),
    )
    assert body["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "One two", "name": "policy"},
    ]


def test_user_content_parts(provider: TogetherBatchProvider) -> None:
    parts = [
        {"type": "text", "text": "Describe these."},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
        {"type": "audio_url", "audio_url": {"url": "https://example.com/a.mp3"}},
    ]
    body = body_of(provider, request([{"role": "user", "content": parts, "name": "ann"}]))
    assert body["messages"] == [
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Describe these."},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
                {"type": "audio_url", "audio_url": {"url": "https://example.com/a.mp3"}},
            ],
        }
    ]


def test_a_tool_conversation(provider: TogetherBatchProvider) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        },
    }
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    body = body_of(
        provider,
        request(
            [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "name": "get_weather",
                    "content": [{"type": "text", "text": "sunny"}],
                },
            ],
            tools=[weather],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=True,
        ),
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "parallel_tool_calls" not in body
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert body["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "get_weather",
        "content": "sunny",
    }


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_words_pass(provider: TogetherBatchProvider, choice: str) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert body_of(provider, request(tools=tools, tool_choice=choice))["tool_choice"] == choice


def test_assistant_text_parts_are_joined(provider: TogetherBatchProvider) -> None:
    body = body_of(
        provider,
        request(
            [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
                    "refusal": None,
                },
                {"role": "user", "content": "Again"},
            ]
        ),
    )
    assert body["messages"][1] == {"role": "assistant", "content": "Hello"}


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "text"},
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "description": "A person",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                "strict": True,
            },
        },
    ],
)
def test_response_formats_pass(
    provider: TogetherBatchProvider, response_format: dict[str, Any]
) -> None:
    assert body_of(provider, request(response_format=response_format))["response_format"] == (
        response_format
    )


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort(provider: TogetherBatchProvider, effort: str) -> None:
    assert body_of(provider, request(reasoning_effort=effort))["reasoning_effort"] == effort


def test_values_that_change_nothing_pass_and_are_left_out(provider: TogetherBatchProvider) -> None:
    body = body_of(
        provider,
        request(
            stream=False,
            store=False,
            modalities=["text"],
            service_tier="auto",
            parallel_tool_calls=True,
            prompt_cache_key="tenant-7",
        ),
    )
    assert set(body) == {"model", "messages"}


def test_provider_params_are_merged_last_unchecked(provider: TogetherBatchProvider) -> None:
    body = body_of(
        provider,
        request(
            max_tokens=10,
            provider_params={
                "together": {
                    "top_k": 40,
                    "repetition_penalty": 1.1,
                    "min_p": 0.05,
                    "max_tokens": 99,
                    "chat_template_kwargs": {"thinking": False},
                    "reasoning": {"enabled": False},
                    "safety_model": "meta-llama/Llama-Guard-4-12B",
                    "context_length_exceeded_behavior": "truncate",
                    "echo": False,
                },
                "anthropic": {"top_k": 1},  # another provider's entry is ignored
            },
        ),
    )
    assert body["top_k"] == 40
    assert body["repetition_penalty"] == 1.1
    assert body["min_p"] == 0.05
    assert body["max_tokens"] == 99
    assert body["chat_template_kwargs"] == {"thinking": False}


# -- what is refused, naming the field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stream": True}, "params.stream"),
        ({"stream_options": {"include_usage": True}}, "params.stream_options"),
        ({"parallel_tool_calls": False}, "params.parallel_tool_calls"),
        ({"store": True}, "params.store"),
        ({"modalities": ["text", "audio"]}, "params.modalities"),
        ({"service_tier": "flex"}, "params.service_tier"),
        ({"user": "user-1"}, "params.user"),
        ({"safety_identifier": "hash"}, "params.safety_identifier"),
        ({"metadata": {"team": "a"}}, "params.metadata"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "params.audio"),
        ({"prediction": {"type": "content", "content": "x"}}, "params.prediction"),
        ({"web_search_options": {}}, "params.web_search_options"),
        ({"verbosity": "low"}, "params.verbosity"),
        ({"reasoning_effort": "minimal"}, "params.reasoning_effort"),
        ({"reasoning_effort": "none"}, "params.reasoning_effort"),
        ({"functions": [{"name": "f"}]}, "params.functions"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {}}},
            "params.response_format.json_schema.name",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "params.tools[0].type"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "strict": True}}]},
            "params.tools[0].function.strict",
        ),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": []},
                }
            },
            "params.tool_choice.type",
        ),
    ],
)
def test_parameters_together_cannot_take(
    provider: TogetherBatchProvider, params: dict[str, Any], field: str
) -> None:
    refused(provider, request(**params), field)


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
            "messages[0].content[0].type",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/a.png", "detail": "high"},
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
                        {"type": "input_audio", "input_audio": {"data": "AA==", "format": "mp3"}}
                    ],
                }
            ],
            "messages[0].content[0].input_audio.format",
        ),
        (
            [{"role": "user", "content": [{"type": "video_url", "video_url": {"href": "x"}}]}],
            "messages[0].content[0].video_url.href",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "cached",
                            "prompt_cache_breakpoint": {"type": "ephemeral"},
                        }
                    ],
                }
            ],
            "messages[0].content[0].prompt_cache_breakpoint",
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": None, "refusal": "I can't."},
            ],
            "messages[1].refusal",
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            ],
            "messages[1].content[0].type",
        ),
        (
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "audio": {"id": "audio_1"}}],
            "messages[1].audio",
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "custom", "custom": {"name": "x", "input": ""}}
                    ],
                },
            ],
            "messages[1].tool_calls[0].type",
        ),
    ],
)
def test_messages_together_cannot_take(
    provider: TogetherBatchProvider, messages: list[dict[str, Any]], field: str
) -> None:
    refused(provider, request(messages), field)


def test_provider_params_cannot_replace_the_model_or_messages(
    provider: TogetherBatchProvider,
) -> None:
    refused(
        provider,
        request(provider_params={"together": {"model": "Qwen/Qwen3-8B"}}),
        "provider_params.together.model",
    )


def test_other_endpoints_are_refused(provider: TogetherBatchProvider) -> None:
    embeddings = BatchRequest(
        custom_id="e", model=MODEL, endpoint="/v1/embeddings", params={"input": "text"}
    )
    refused(provider, embeddings, "endpoint")


def test_fields_outside_openais_format_point_at_provider_params(
    provider: TogetherBatchProvider,
) -> None:
    message = refused(provider, request(top_k=40), "params.top_k")
    assert "provider_params" in message
