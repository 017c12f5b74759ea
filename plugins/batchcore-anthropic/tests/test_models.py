"""The model capability table: it covers the spec's models, the core refuses from it what a
model would refuse, and the conversion takes its maximum output as the default ``max_tokens``.
Also: every extension this provider declares to the core is one the conversion needs."""

from __future__ import annotations

from typing import Any

import pytest

from batchcore import BatchRequest, InvalidRequestError
from batchcore.request_rules import RequestExtensions, check_request_rules
from batchcore_anthropic._mapping import REQUEST_EXTENSIONS, message_params
from batchcore_anthropic._models import MODEL_RULES, MODELS, Sampling, model_facts
from batchcore_anthropic.provider import AnthropicBatchProvider

USER = {"role": "user", "content": "Hello"}
EPHEMERAL = {"type": "ephemeral"}


def request(model: str, **params: Any) -> BatchRequest:
    return BatchRequest(custom_id="r1", model=model, messages=[USER], params=params)


def test_the_table_names_exactly_the_models_of_the_spec(spec_defs: dict[str, Any]) -> None:
    named = {
        option["const"]
        for option in spec_defs["Model"]["anyOf"]
        if "const" in option and "-20" not in option["const"]  # dated snapshots: by pattern
    }
    assert {facts.model for facts in MODELS} == named
    dated = {
        option["const"]
        for option in spec_defs["Model"]["anyOf"]
        if "const" in option and "-20" in option["const"]
    }
    for model in dated:
        facts = model_facts(model)
        assert facts is not None and model.startswith(facts.model), model


@pytest.mark.parametrize(
    ("model", "known"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-7", "claude-opus-4-7"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-sonnet-5-5", None),  # a newer model is not taken for an older one
        ("claude-opus-4", None),
        ("claude-3-7-sonnet-20250219", None),
    ],
)
def test_models_and_snapshots_are_matched_exactly(model: str, known: str | None) -> None:
    facts = model_facts(model)
    assert (facts.model if facts else None) == known


def test_the_rules_come_from_the_table() -> None:
    deprecated = {facts.model for facts in MODELS if facts.sampling is Sampling.DEPRECATED}
    assert deprecated == {
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-mythos-preview",
        "claude-sonnet-5",
        "claude-fable-5",
        "claude-mythos-5",
    }
    assert {rule.param for rule in MODEL_RULES} == {"temperature", "top_p"}
    for rule in MODEL_RULES:
        assert {m for m in deprecated if rule.applies_to(m)} == deprecated
        assert not rule.applies_to("claude-opus-4-6") and not rule.applies_to("claude-sonnet-4-6")
    assert AnthropicBatchProvider.MODEL_RULES == MODEL_RULES


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("claude-opus-4-7", {"temperature": 0}, "params.temperature"),
        ("claude-mythos-preview", {"temperature": 0.7}, "params.temperature"),
        ("claude-fable-5", {"top_p": 0.95}, "params.top_p"),
        ("claude-opus-4-1", {"temperature": 0.2, "top_p": 0.5}, "params.top_p"),
        ("claude-sonnet-4-6", {"temperature": 0.2, "top_p": 0.5}, "params.top_p"),
        ("claude-opus-4-6", {"max_tokens": 128_001}, "params.max_tokens"),
        (
            "claude-opus-4-5-20251101",
            {"max_tokens": None, "max_completion_tokens": 64_001},
            "params.max_completion_tokens",
        ),
    ],
)
def test_what_a_model_refuses_is_refused_offline(
    model: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AnthropicBatchProvider().prepare_payloads([request(model, **{"max_tokens": 100, **params})])
    assert caught.value.field == field
    assert model in str(caught.value)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("claude-opus-4-7", {"temperature": 1.0, "top_p": 1}),
        ("claude-sonnet-5", {"top_p": 0.99}),
        ("claude-opus-4-6", {"temperature": 0.0}),
        ("claude-sonnet-4-6", {"top_p": 0.1}),
        ("claude-opus-4-6", {"max_tokens": 128_000}),
        ("claude-mythos-preview", {"max_tokens": 500_000}),  # no documented maximum
        ("claude-next-1", {"temperature": 0.3, "top_p": 0.3}),  # unknown: the API decides
    ],
)
def test_what_a_model_takes_is_taken(model: str, params: dict[str, Any]) -> None:
    unified = request(model, **{"max_tokens": 100, **params})
    [payload] = AnthropicBatchProvider().prepare_payloads([unified])
    payload.discard()


@pytest.mark.parametrize(
    ("model", "default", "expected"),
    [
        ("claude-opus-4-1", None, 32_000),
        ("claude-sonnet-4-6", None, 128_000),
        ("claude-opus-4-1", 100_000, 32_000),  # a default is capped at the model's maximum
        ("claude-opus-4-1", 1_000, 1_000),
        ("claude-next-1", 2_048, 2_048),
        ("claude-mythos-preview", 2_048, 2_048),
    ],
)
def test_max_tokens_defaults(model: str, default: int | None, expected: int) -> None:
    provider = AnthropicBatchProvider(config={"default_max_tokens": default} if default else {})
    assert (
        message_params(request(model), default_max_tokens=provider.default_max_tokens)["max_tokens"]
        == expected
    )


@pytest.mark.parametrize("model", ["claude-next-1", "claude-mythos-preview"])
def test_no_max_tokens_and_nothing_to_default_to_is_refused(model: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AnthropicBatchProvider().prepare_payloads([request(model)])
    assert caught.value.field == "params.max_tokens"
    assert "default_max_tokens" in str(caught.value)


# Each extension, used once: OpenAI's format alone refuses it, this provider's takes it.
NEEDS_EXTENSIONS = [
    pytest.param(
        [{"role": "system", "content": "Rules", "cache_control": EPHEMERAL}, USER],
        "messages[0].cache_control",
        id="cache_control on a message",
    ),
    pytest.param(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Doc", "cache_control": EPHEMERAL}],
            }
        ],
        "messages[0].content[0].cache_control",
        id="cache_control on a part",
    ),
    pytest.param(
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "As quoted",
                        "citations": [
                            {
                                "type": "char_location",
                                "cited_text": "q",
                                "document_index": 0,
                                "document_title": None,
                                "start_char_index": 0,
                                "end_char_index": 1,
                            }
                        ],
                    }
                ],
            }
        ],
        "messages[0].content[0].citations",
        id="citations on a text part",
    ),
    pytest.param(
        [
            USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "c1",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
            },
        ],
        "messages[2].content[0].type",
        id="an image in a tool result",
    ),
    pytest.param(
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Notes"},
                    }
                ],
            }
        ],
        "messages[0].content[0].type",
        id="a part in Anthropic's form",
    ),
]


@pytest.mark.parametrize(("messages", "field"), NEEDS_EXTENSIONS)
def test_every_extension_is_needed_and_converted(
    messages: list[dict[str, Any]], field: str, spec: Any
) -> None:
    unified = BatchRequest(custom_id="r1", model="claude-sonnet-4-5", messages=messages)
    with pytest.raises(InvalidRequestError) as caught:
        check_request_rules(unified, provider="anthropic", extensions=RequestExtensions())
    assert caught.value.field == field
    check_request_rules(unified, provider="anthropic", extensions=REQUEST_EXTENSIONS)
    spec("CreateMessageParams", message_params(unified))


def test_the_provider_declares_the_extensions() -> None:
    assert AnthropicBatchProvider.REQUEST_EXTENSIONS == REQUEST_EXTENSIONS
    assert REQUEST_EXTENSIONS.params == frozenset()  # top_k and thinking: provider_params
    assert REQUEST_EXTENSIONS.message_keys == {"cache_control"}
    assert REQUEST_EXTENSIONS.part_keys == {"cache_control", "citations"}
