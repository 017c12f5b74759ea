"""Models, endpoints and request rules: what Groq cannot run is refused before any call."""

from __future__ import annotations

import json

import pytest
from groq_support import chat

from batchcore.errors import InvalidRequestError, UnsupportedModelError
from batchcore.models import BatchRequest
from batchcore_groq.provider import GroqBatchProvider

GROQ_MODELS = [
    "llama-3.1-8b-instant",
    "llama-3.3-70b-versatile",
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-safeguard-20b",
    "meta-llama/llama-4-scout-17b-16e-instruct",
    "meta-llama/llama-4-maverick-17b-128e-instruct",
    "meta-llama/llama-guard-4-12b",
    "meta-llama/llama-prompt-guard-2-86m",
    "qwen/qwen3-32b",
    "moonshotai/kimi-k2-instruct",
    "moonshotai/kimi-k2-instruct-0905",
]
NOT_GROQ = [
    "gpt-4o-mini",  # OpenAI's
    "claude-3-5-sonnet-latest",
    "whisper-large-v3",  # audio: not a chat batch
    "groq/compound",  # an agent system, not a batch model
    "Llama-3.1-8b-instant",  # model names are case-sensitive
    "openai/gpt-4o",
    "meta-llama/Llama-3.3-70B-Instruct",  # the Hugging Face spelling, not Groq's
    "",
]


@pytest.mark.parametrize("model", GROQ_MODELS)
def test_groqs_batch_models_are_served(model: str) -> None:
    provider = GroqBatchProvider()
    assert provider.supports_model(model)
    [payload] = provider.prepare_payloads([chat("a", model=model)])
    assert payload.model == model
    payload.discard()


@pytest.mark.parametrize("model", NOT_GROQ)
def test_other_models_are_refused_offline(model: str) -> None:
    provider = GroqBatchProvider()
    assert not provider.supports_model(model)
    if model:
        with pytest.raises(UnsupportedModelError, match="models=") as caught:
            provider.prepare_payloads([chat("a", model=model)])
        assert caught.value.custom_id == "a" and caught.value.provider == "groq"


def test_config_models_add_names_and_patterns() -> None:
    provider = GroqBatchProvider(config={"models": ["groq/compound*", "allam-2-7b"]})
    for model in ("groq/compound", "groq/compound-mini", "allam-2-7b"):
        assert provider.supports_model(model)
    assert provider.supports_model("llama-3.1-8b-instant")  # the defaults stay
    assert not provider.supports_model("allam-2-7b-preview")
    assert GroqBatchProvider(config={"models": "allam-*"}).supports_model("allam-2-7b")


@pytest.mark.parametrize(
    "endpoint", ["/v1/embeddings", "/v1/responses", "/v1/completions", "/v1/moderations"]
)
def test_only_chat_completions_are_batched(endpoint: str) -> None:
    params = {"input": "hello"} if endpoint != "/v1/completions" else {"prompt": "hello"}
    request = BatchRequest.from_dict(
        {"custom_id": "a", "model": "llama-3.1-8b-instant", "endpoint": endpoint, "params": params}
    )
    with pytest.raises(InvalidRequestError, match="/v1/chat/completions") as caught:
        GroqBatchProvider().prepare_payloads([request])
    assert caught.value.field == "endpoint"


def test_n_other_than_one_is_refused_offline() -> None:
    provider = GroqBatchProvider()
    with pytest.raises(InvalidRequestError, match="n=1") as caught:
        provider.prepare_payloads([chat("a", n=2)])
    assert caught.value.field == "params.n"
    [payload] = provider.prepare_payloads([chat("b", n=1)])
    payload.discard()


def test_streaming_is_refused_offline() -> None:
    with pytest.raises(InvalidRequestError, match="stream"):
        GroqBatchProvider().prepare_payloads([chat("a", stream=True)])


def _bodies(provider: GroqBatchProvider, request: BatchRequest) -> list[dict[str, object]]:
    [payload] = provider.prepare_payloads([request])
    assert payload.path is not None
    lines = [json.loads(line) for line in payload.path.read_text().splitlines()]
    payload.discard()
    return [line["body"] for line in lines]


def test_groq_provider_params_reach_the_body_and_openai_ones_do_not() -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "a",
            "model": "openai/gpt-oss-20b",
            "messages": [{"role": "user", "content": "hi"}],
            "provider_params": {
                "groq": {"reasoning_format": "hidden", "reasoning_effort": "low"},
                "openai": {"store": True},
            },
        }
    )
    [body] = _bodies(GroqBatchProvider(), request)
    assert body["reasoning_format"] == "hidden" and body["reasoning_effort"] == "low"
    assert "store" not in body


def test_lines_are_openai_batch_lines() -> None:
    provider = GroqBatchProvider()
    [payload] = provider.prepare_payloads([chat("a", max_tokens=8)])
    assert payload.path is not None
    [line] = [json.loads(text) for text in payload.path.read_text().splitlines()]
    payload.discard()
    assert line["custom_id"] == "a"
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["model"] == "llama-3.1-8b-instant"
    assert line["body"]["max_tokens"] == 8
