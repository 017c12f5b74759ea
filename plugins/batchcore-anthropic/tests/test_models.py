"""The model capability table: it covers the spec's models, the provider refuses from it what a
model would refuse (judging models it does not name by their version), and the conversion takes
its maximum output as the default ``max_tokens``. Also: every extension this provider declares
to the core is one the conversion needs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from batchcore import BatchRequest, InvalidRequestError
from batchcore.request_rules import RequestExtensions, check_request_rules
from batchcore_anthropic._mapping import REQUEST_EXTENSIONS, message_params
from batchcore_anthropic._models import MODELS, Sampling, model_facts, model_version
from batchcore_anthropic.provider import AnthropicBatchProvider

USER = {"role": "user", "content": "Hello"}
STRUCTURED = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
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
        ("claude-mythos-preview", "claude-mythos-preview"),
        ("claude-sonnet-5-5", None),  # a newer model is not taken for an older one
        ("claude-opus-4", None),
        ("claude-3-7-sonnet-20250219", None),
    ],
)
def test_models_and_snapshots_are_matched_exactly(model: str, known: str | None) -> None:
    facts = model_facts(model)
    assert facts is not None
    assert (facts.model if facts.inferred is None else None) == known


@pytest.mark.parametrize(
    ("model", "version"),
    [
        ("claude-opus-4-1", (4, 1)),
        ("claude-opus-4-1-20250805", (4, 1)),
        ("claude-sonnet-4-20250514", (4, 0)),  # a date is not a minor version
        ("claude-opus-4-0", (4, 0)),
        ("claude-sonnet-5", (5, 0)),
        ("claude-opus-5-2-latest", (5, 2)),
        ("claude-3-5-sonnet-20241022", (3, 5)),
        ("claude-3-haiku-20240307", (3, 0)),
        ("claude-3-7-sonnet-latest", (3, 7)),
        ("claude-mythos-preview", None),
        ("claude-instant-1.2", None),
        ("claude-2.1", None),
    ],
)
def test_versions_are_read_from_ids_and_aliases(model: str, version: tuple[int, int]) -> None:
    assert model_version(model) == version


def test_the_table_says_what_each_model_takes() -> None:
    deprecated = {facts.model for facts in MODELS if facts.sampling is Sampling.DEPRECATED}
    assert deprecated == {
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-mythos-preview",
        "claude-sonnet-5",
        "claude-fable-5",
        "claude-mythos-5",
    }
    assert {facts.model for facts in MODELS if not facts.structured_output} == {"claude-opus-4-1"}
    # Every model at or above the first deprecated version is deprecated: the version rule for
    # models the table does not name rests on it.
    first = min(
        v for facts in MODELS if facts.sampling is Sampling.DEPRECATED and (v := facts.version)
    )
    assert all(
        facts.sampling is Sampling.DEPRECATED
        for facts in MODELS
        if facts.version is not None and facts.version >= first
    )
    assert AnthropicBatchProvider.MODEL_RULES == ()  # judged by the table, not by glob patterns


@pytest.mark.parametrize(
    ("model", "sampling", "structured", "basis"),
    [
        # newer than the table: the newest rules
        ("claude-opus-5", Sampling.DEPRECATED, True, "the newest models"),
        ("claude-sonnet-6-20270101", Sampling.DEPRECATED, True, "the newest models"),
        # between known versions: the rules of the newest known model at or below it
        ("claude-opus-4-9", Sampling.DEPRECATED, True, "claude-opus-4-8"),
        ("claude-haiku-4-6", Sampling.ONE_OF, True, "claude-opus-4-6"),
        # older than the table: no sampling rule, no structured output
        ("claude-3-haiku-20240307", Sampling.ANY, False, "older"),
        ("claude-3-5-sonnet-latest", Sampling.ANY, False, "older"),
        ("claude-sonnet-4-20250514", Sampling.ANY, False, "older"),
        ("claude-opus-4-0", Sampling.ANY, False, "older"),
        # no version to read: the newest rules, the strictest
        ("claude-nova-preview", Sampling.DEPRECATED, True, "no version"),
    ],
)
def test_models_the_table_does_not_name_are_judged_by_their_version(
    model: str, sampling: Sampling, structured: bool, basis: str
) -> None:
    facts = model_facts(model)
    assert facts is not None and facts.inferred is not None
    assert (facts.sampling, facts.structured_output) == (sampling, structured)
    assert facts.max_output_tokens is None  # never guessed
    assert basis in facts.inferred


def test_a_name_without_a_version_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="batchcore_anthropic"):
        for _ in range(3):
            model_facts("claude-quasar-experimental")
    warned = [r for r in caplog.records if "claude-quasar-experimental" in r.getMessage()]
    assert len(warned) == 1 and "strictest" in warned[0].getMessage()


def test_a_name_outside_claude_is_not_judged() -> None:
    assert model_facts("my-gateway-model") is None


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
        # models the table does not name, judged by their version
        ("claude-opus-5", {"temperature": 0.5}, "params.temperature"),
        ("claude-opus-5-20270101", {"top_p": 0.5}, "params.top_p"),
        ("claude-haiku-4-6", {"temperature": 0.2, "top_p": 0.5}, "params.top_p"),
        ("claude-nova-preview", {"temperature": 0.5}, "params.temperature"),
        # structured output on a model without it
        ("claude-opus-4-1", {"response_format": STRUCTURED}, "params.response_format"),
        ("claude-3-haiku-20240307", {"response_format": STRUCTURED}, "params.response_format"),
        ("claude-sonnet-4-20250514", {"response_format": STRUCTURED}, "params.response_format"),
    ],
)
def test_what_a_model_refuses_is_refused_offline(
    model: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AnthropicBatchProvider().prepare_payloads([request(model, **{"max_tokens": 100, **params})])
    assert caught.value.field == field
    assert model in str(caught.value)
    if "max" not in field:  # a refused value says how to send it anyway
        assert "provider_params={'anthropic'" in str(caught.value)


def test_a_refusal_says_which_rules_an_unnamed_model_got() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AnthropicBatchProvider().prepare_payloads([request("claude-opus-5", temperature=0.5)])
    message = str(caught.value)
    assert "temperature only at 1.0" in message and "claude-sonnet-5" in message
    assert "0.5" in message


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("claude-opus-4-7", {"temperature": 1.0, "top_p": 1}),
        ("claude-sonnet-5", {"top_p": 0.99}),
        ("claude-opus-4-6", {"temperature": 0.0}),
        ("claude-sonnet-4-6", {"top_p": 0.1}),
        ("claude-opus-4-6", {"max_tokens": 128_000}),
        ("claude-mythos-preview", {"max_tokens": 500_000}),  # no documented maximum
        ("claude-opus-5", {"temperature": 1, "max_tokens": 500_000}),  # nor for unnamed ones
        ("claude-3-7-sonnet-20250219", {"temperature": 0.3, "top_p": 0.3}),  # older: both
        ("claude-haiku-4-5", {"response_format": STRUCTURED}),
        ("claude-opus-5", {"response_format": STRUCTURED}),
        ("claude-3-haiku-20240307", {"response_format": {"type": "text"}}),
    ],
)
def test_what_a_model_takes_is_taken(model: str, params: dict[str, Any]) -> None:
    unified = request(model, **{"max_tokens": 100, **params})
    [payload] = AnthropicBatchProvider().prepare_payloads([unified])
    payload.discard()


def test_the_answer_changing_config_is_declared() -> None:
    assert {"anthropic_version", "default_max_tokens"} == AnthropicBatchProvider.ANSWER_CONFIG_KEYS
    assert AnthropicBatchProvider.ANSWER_CONFIG_KEYS <= AnthropicBatchProvider.CONFIG_KEYS


def _fingerprint(**config: Any) -> bytes:
    return AnthropicBatchProvider(config=config).fingerprint(request("claude-sonnet-4-5"))


def test_the_api_version_is_in_the_fingerprint() -> None:
    assert _fingerprint(anthropic_version="2099-01-01") != _fingerprint()
    assert _fingerprint(not_found_grace_seconds=5) == _fingerprint()  # changes no answer


def test_the_default_max_tokens_is_in_the_fingerprint() -> None:
    assert _fingerprint(default_max_tokens=100) != _fingerprint()


@pytest.mark.parametrize(
    ("model", "default", "expected"),
    [
        ("claude-opus-4-1", None, 32_000),
        ("claude-sonnet-4-6", None, 128_000),
        ("claude-opus-4-1", 100_000, 32_000),  # a default is capped at the model's maximum
        ("claude-opus-4-1", 1_000, 1_000),
        ("claude-next-1", 2_048, 2_048),
        ("claude-opus-5", 2_048, 2_048),
        ("claude-mythos-preview", 2_048, 2_048),
    ],
)
def test_max_tokens_defaults(model: str, default: int | None, expected: int) -> None:
    provider = AnthropicBatchProvider(config={"default_max_tokens": default} if default else {})
    assert (
        message_params(request(model), default_max_tokens=provider.default_max_tokens)["max_tokens"]
        == expected
    )


@pytest.mark.parametrize("model", ["claude-next-1", "claude-mythos-preview", "claude-opus-5"])
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
