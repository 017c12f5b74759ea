"""Which models the provider batches: Together's namespaced families, minus the models it lists
as unavailable for batch, plus what config ``models`` adds."""

from __future__ import annotations

import pytest
from together_support import MakeProvider, chat

from batchcore import UnsupportedModelError
from batchcore_together._models import UNAVAILABLE_MODELS
from batchcore_together.provider import TogetherBatchProvider


@pytest.mark.parametrize(
    "model",
    [
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
        "deepseek-ai/DeepSeek-V3",
        "Qwen/Qwen2.5-7B-Instruct-Turbo",
        "Qwen/Qwen3-235B-A22B-Instruct-2507-tput",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "zai-org/GLM-4.5-Air-FP8",
        "openai/gpt-oss-120b",
        "moonshotai/Kimi-K2-Instruct-0905",
        "google/gemma-3n-E4B-it",
    ],
)
def test_together_s_families_are_served(provider: TogetherBatchProvider, model: str) -> None:
    assert provider.supports_model(model)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",  # OpenAI's own name, not Together's
        "Llama-3.3-70B-Instruct-Turbo",  # Together's names carry the publisher
        "meta-llama",
        "claude-sonnet-4-5",
        "openai/whisper-large-v3",  # an audio model: not a chat batch
    ],
)
def test_other_names_are_not(provider: TogetherBatchProvider, model: str) -> None:
    assert not provider.supports_model(model)


@pytest.mark.parametrize("model", sorted(UNAVAILABLE_MODELS))
def test_models_together_does_not_batch_are_refused_offline(
    provider: TogetherBatchProvider, model: str
) -> None:
    assert not provider.supports_model(model)
    with pytest.raises(UnsupportedModelError, match="not available for batch") as caught:
        provider.prepare_payloads([chat("r", model=model)])
    assert caught.value.field == "model"
    assert caught.value.model == model


def test_naming_an_unavailable_model_exactly_admits_it(make_provider: MakeProvider) -> None:
    provider = make_provider(models=["deepseek-ai/DeepSeek-R1"])
    assert provider.supports_model("deepseek-ai/DeepSeek-R1")
    [payload] = provider.prepare_payloads([chat("r", model="deepseek-ai/DeepSeek-R1")])
    payload.discard()
    assert not make_provider(models=["*"]).supports_model("deepseek-ai/DeepSeek-R1")


def test_config_models_add_patterns(make_provider: MakeProvider) -> None:
    provider = make_provider(models="my-org/*,acme/exact-model")
    assert provider.supports_model("my-org/Llama-3-8B-finetune-abc123")
    assert provider.supports_model("acme/exact-model")
    assert not provider.supports_model("acme/other")


def test_an_unknown_model_is_refused_naming_the_config_key(provider: TogetherBatchProvider) -> None:
    with pytest.raises(UnsupportedModelError, match="models=") as caught:
        provider.prepare_payloads([chat("r", model="gpt-4o")])
    assert caught.value.field == "model"
