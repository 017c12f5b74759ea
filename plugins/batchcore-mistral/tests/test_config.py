"""Configuration, models and limits: what the provider declares, and what config changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchcore import batch_provider_registry
from batchcore.plugin import ConfigurationError, QueueLimit
from batchcore_mistral.provider import MistralBatchProvider


def test_the_registry_finds_the_provider() -> None:
    assert batch_provider_registry.get("mistral") is MistralBatchProvider


def test_defaults() -> None:
    provider = MistralBatchProvider()
    assert provider.base_url == "https://api.mistral.ai"
    assert provider.input_mode == "file"
    assert provider.timeout_hours == 24
    workspace = QueueLimit(measure="requests", per_model=False, default=1_000_000)
    assert provider.queue_limit() == (workspace, 1_000_000)
    assert (provider.limits.max_requests, provider.limits.max_bytes) == (1_000_000, 512_000_000)
    assert provider.IDEMPOTENT_SUBMIT and provider.SUPPORTS_CANCEL
    assert {"/v1/chat/completions", "/v1/embeddings"} == provider.SUPPORTED_ENDPOINTS


def test_the_key_comes_from_the_environment_and_never_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "env-key-0123456789")
    provider = MistralBatchProvider()
    assert provider.require_api_key() == "env-key-0123456789"
    assert "env-key" not in repr(provider) and "api_key=set" in repr(provider)
    assert MistralBatchProvider(config={"api_key": "cfg-key-0123"}).require_api_key() == (
        "cfg-key-0123"
    )


def test_limits_are_data_that_config_overrides() -> None:
    provider = MistralBatchProvider(
        config={
            "max_requests_per_batch": 500,
            "max_bytes_per_batch": 1_000,
            "max_enqueued_requests": 2_000,
        }
    )
    assert (provider.limits.max_requests, provider.limits.max_bytes) == (500, 1_000)
    limit = provider.queue_limit()
    assert limit is not None and limit[1] == 2_000
    inline = MistralBatchProvider(config={"input_mode": "inline"})
    assert (inline.limits.max_requests, inline.limits.max_bytes) == (9_999, 10_000_000)


@pytest.mark.parametrize(
    ("config", "word"),
    [
        ({"input_mode": "stream"}, "input_mode"),
        ({"timeout_hours": 0}, "timeout_hours"),
        ({"timeout_hours": 169}, "timeout_hours"),
        # The key before the common queue key: refused by name, the known keys listed.
        ({"max_pending_requests": 2_000}, "max_pending_requests.*max_enqueued_requests"),
        ({"completion_window": "24h"}, "completion_window"),
        ({"input_mode": "inline", "max_requests_per_batch": 10_000}, "inline"),
        ({"input_mode": "inline", "max_bytes_per_batch": 20_000_000}, "inline"),
    ],
)
def test_bad_config_is_refused(config: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigurationError, match=word):
        MistralBatchProvider(config=config)


@pytest.mark.parametrize(
    "model",
    [
        "mistral-small-latest",
        "mistral-small-2506",
        "mistral-medium-latest",
        "mistral-medium-2508",
        "mistral-medium-3.5",
        "mistral-large-latest",
        "mistral-large-2512",
        "ministral-3b-latest",
        "ministral-8b-2410",
        "ministral-14b-2512",
        "magistral-medium-latest",
        "magistral-small-2509",
        "codestral-latest",
        "codestral-2508",
        "codestral-embed",
        "devstral-medium-2507",
        "devstral-2512",
        "pixtral-large-latest",
        "pixtral-12b-2409",
        "voxtral-small-latest",
        "mistral-embed",
        "mistral-saba-latest",
        "open-mistral-nemo",
        "open-mistral-7b",
        "open-mixtral-8x22b",
        "open-codestral-mamba",
        "labs-devstral-small-2512",
        "ft:open-mistral-7b:587a6b29:20240514:7e773925",
    ],
)
def test_mistral_models_as_users_write_them(model: str) -> None:
    assert MistralBatchProvider().supports_model(model)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-haiku-4-5", "gemini-2.5-flash", "mistral"])
def test_other_vendors_models_are_not_served(model: str) -> None:
    assert not MistralBatchProvider().supports_model(model)


def test_config_models_add_more(tmp_path: Path) -> None:
    provider = MistralBatchProvider(config={"models": ["my-deployment", "team-*"]})
    assert provider.supports_model("my-deployment") and provider.supports_model("team-x")
