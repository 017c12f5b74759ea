"""What OpenAI's reasoning models refuse is refused offline, and nothing the API would run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchcore.errors import InvalidRequestError
from batchcore.models import CHAT_COMPLETIONS, BatchRequest, ResultStatus
from batchcore_openai._models import FAMILIES, MODEL_RULES, Family
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator, openai_request_rules

README = Path(__file__).parents[1] / "README.md"

#: Model names as users write them, per family (aliases and dated snapshots).
NAMES = {
    "o1-preview, o1-mini": ["o1-preview", "o1-preview-2024-09-12", "o1-mini", "o1-mini-2024-09-12"],
    "o1, o1-pro, o3-mini": ["o1", "o1-2024-12-17", "o1-pro", "o1-pro-2025-03-19", "o3-mini"],
    "o3, o4-mini": ["o3", "o3-2025-04-16", "o4-mini", "o4-mini-2025-04-16"],
    "o3-pro, o3-deep-research, o4-mini-deep-research": [
        "o3-pro",
        "o3-pro-2025-06-10",
        "o3-deep-research",
        "o4-mini-deep-research-2025-06-26",
    ],
    "gpt-5, gpt-5-mini, gpt-5-nano, gpt-5-pro, gpt-5-codex": [
        "gpt-5",
        "gpt-5-2025-08-07",
        "gpt-5-mini",
        "gpt-5-nano-2025-08-07",
        "gpt-5-pro",
        "gpt-5-codex",
    ],
    "gpt-5.1 and later (gpt-5.x)": ["gpt-5.1", "gpt-5.2-2025-12-11", "gpt-5.4-mini"],
}
#: A value each parameter's rule refuses.
REFUSED_VALUE: dict[str, Any] = {
    "max_tokens": 100,
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"50256": -100},
    "stop": ["END"],
    "temperature": 0.2,
    "top_p": 0.5,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "n": 2,
}


def _request(model: str, **params: Any) -> BatchRequest:
    return BatchRequest(
        custom_id="r1", model=model, messages=[{"role": "user", "content": "x"}], params=params
    )


@pytest.fixture
def provider(tmp_path: Path) -> OpenAIBatchProvider:
    return OpenAIBatchProvider(
        config={"base_url": "http://127.0.0.1:9/v1", "workdir": str(tmp_path)}
    )


def test_the_names_cover_every_family() -> None:
    assert [family.name for family in FAMILIES] == list(NAMES)


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_each_family_refuses_its_parameters(provider: OpenAIBatchProvider, family: Family) -> None:
    for model in NAMES[family.name]:
        for param in (*family.refused, *family.defaults_only):
            with pytest.raises(InvalidRequestError) as caught:
                provider.check_request(_request(model, **{param: REFUSED_VALUE[param]}))
            assert (caught.value.custom_id, caught.value.field) == ("r1", f"params.{param}")
            assert repr(model) in str(caught.value)
        # The default value of a sampling parameter is what the API runs with anyway.
        defaults = dict(family.defaults_only)
        provider.check_request(_request(model, max_completion_tokens=100, **defaults))


def test_max_tokens_points_at_max_completion_tokens(provider: OpenAIBatchProvider) -> None:
    with pytest.raises(InvalidRequestError, match="use max_completion_tokens"):
        provider.check_request(_request("o3-mini-2025-01-31", max_tokens=10))


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-5-chat-latest", "ft:gpt-4o-mini:acme::x1"],
)
def test_other_models_take_every_parameter(provider: OpenAIBatchProvider, model: str) -> None:
    provider.check_request(_request(model, **REFUSED_VALUE))


def test_gpt_5_1_and_later_are_left_to_the_api_for_sampling(provider: OpenAIBatchProvider) -> None:
    # Their reasoning effort may be "none", with which they take these.
    provider.check_request(_request("gpt-5.1", temperature=0.2, top_p=0.5, logprobs=True))


def test_azure_checks_deployments_named_like_the_models(tmp_path: Path) -> None:
    azure = AzureOpenAIBatchProvider(
        config={"azure_endpoint": "http://127.0.0.1:9", "deployments": ["o3-mini", "mine"]}
    )
    with pytest.raises(InvalidRequestError):
        azure.check_request(_request("o3-mini", max_tokens=5))
    azure.check_request(_request("mine", max_tokens=5))  # a deployment name says nothing


def test_the_rules_are_the_families_data() -> None:
    assert OpenAIBatchProvider.MODEL_RULES == MODEL_RULES
    expected = {
        (pattern, param, default)
        for family in FAMILIES
        for pattern in family.patterns
        for param, default in [
            *((p, None) for p in family.refused),
            *family.defaults_only.items(),
        ]
    }
    actual = {
        (pattern, rule.param, rule.minimum) for rule in MODEL_RULES for pattern in rule.models
    }
    assert actual == expected
    assert all(rule.minimum == rule.maximum for rule in MODEL_RULES)


def _row(family: Family) -> str:
    refused = ", ".join(f"`{param}`" for param in family.refused)
    defaults = ", ".join(f"`{param}` {value:g}" for param, value in family.defaults_only.items())
    sources = ", ".join(map(str, family.sources))
    return f"| {family.name} | {refused} | {defaults or '-'} | {sources} |"


def test_the_readme_table_is_the_data() -> None:
    text = README.read_text("utf-8")
    missing = [_row(family) for family in FAMILIES if _row(family) not in text]
    assert missing == [], "README model rules table is out of date:\n" + "\n".join(missing)


# -- the emulator refuses them too, from its own table ----------------------------------------


@pytest.mark.parametrize("model", [name for names in NAMES.values() for name in names])
def test_the_emulator_refuses_max_tokens_where_the_provider_does(model: str) -> None:
    # Two tables written from the same sources, independently: they must agree.
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 100}
    refusal = openai_request_rules(CHAT_COMPLETIONS, body)
    assert refusal is not None and refusal.param == "max_tokens"


def test_a_value_sent_anyway_comes_back_as_the_api_refusal(
    make_provider: Callable[..., OpenAIBatchProvider], emulator: OpenAIEmulator
) -> None:
    # provider_params passes unchecked: the emulator, like the API, refuses it per request.
    provider = make_provider()
    request = BatchRequest(
        custom_id="hatch",
        model="o3-mini",
        messages=[{"role": "user", "content": "x"}],
        provider_params={"openai": {"max_tokens": 100}},
    )
    [payload] = provider.prepare_payloads([request])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(3600)
    [result] = provider.fetch_results(handle)
    assert result.status is ResultStatus.ERRORED and result.error is not None
    assert (result.error.code, result.error.status_code) == ("unsupported_parameter", 400)
    assert "max_completion_tokens" in (result.error.message or "")
    assert not result.retryable
