"""prepare_payloads: OpenAI batch files, split under limits, validated offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai_support import chat

from batchcore.errors import InvalidRequestError, UnsupportedModelError
from batchcore.models import BatchPayload, BatchRequest
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator


def _lines(payload: BatchPayload) -> list[dict[str, Any]]:
    assert payload.path is not None
    return [json.loads(line) for line in payload.path.read_bytes().splitlines()]


@pytest.fixture
def offline(tmp_path: Path) -> OpenAIBatchProvider:
    """A provider with no key and an unreachable base URL: preparing needs neither."""
    return OpenAIBatchProvider(
        config={"base_url": "http://127.0.0.1:9/v1", "workdir": str(tmp_path)}
    )


def test_prepare_works_offline_without_a_key(offline: OpenAIBatchProvider) -> None:
    assert offline.api_key is None
    [payload] = offline.prepare_payloads([chat("a"), chat("b")])
    assert payload.provider == "openai"
    assert (payload.model, payload.endpoint, payload.request_count) == (
        "gpt-4o-mini",
        "/v1/chat/completions",
        2,
    )
    assert [line["custom_id"] for line in _lines(payload)] == ["a", "b"]
    assert all(
        line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        for line in _lines(payload)
    )
    assert list(payload.iter_custom_ids()) == ["a", "b"]
    assert payload.path is not None and payload.size_bytes == payload.path.stat().st_size
    assert offline._client is None  # no SDK client was built


def test_prepare_makes_no_call(
    emulator: OpenAIEmulator, make_provider: Callable[..., OpenAIBatchProvider]
) -> None:
    make_provider().prepare_payloads([chat(f"r{i}") for i in range(20)])
    assert emulator.call_count() == 0


def test_one_model_and_endpoint_per_file(offline: OpenAIBatchProvider) -> None:
    requests = [
        chat("a", model="gpt-4o"),
        chat("b", model="gpt-4o-mini"),
        BatchRequest(
            custom_id="c",
            model="text-embedding-3-small",
            endpoint="/v1/embeddings",
            params={"input": "x"},
        ),
        chat("d", model="gpt-4o"),
        BatchRequest(
            custom_id="e", model="gpt-4o", endpoint="/v1/responses", params={"input": "y"}
        ),
    ]
    payloads = offline.prepare_payloads(requests)
    groups = {(p.model, p.endpoint): [line["custom_id"] for line in _lines(p)] for p in payloads}
    assert groups == {
        ("gpt-4o", "/v1/chat/completions"): ["a", "d"],
        ("gpt-4o-mini", "/v1/chat/completions"): ["b"],
        ("text-embedding-3-small", "/v1/embeddings"): ["c"],
        ("gpt-4o", "/v1/responses"): ["e"],
    }
    for payload in payloads:
        assert {line["body"]["model"] for line in _lines(payload)} == {payload.model}
        assert {line["url"] for line in _lines(payload)} == {payload.endpoint}


def test_split_at_tiny_request_limit(tmp_path: Path) -> None:
    provider = OpenAIBatchProvider(config={"max_requests_per_batch": 2, "workdir": str(tmp_path)})
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(5)])
    assert [p.request_count for p in payloads] == [2, 2, 1]
    assert [cid for p in payloads for cid in p.iter_custom_ids()] == [f"r{i}" for i in range(5)]


def test_split_at_tiny_byte_limit(tmp_path: Path) -> None:
    one = len(OpenAIBatchProvider().encode_request(chat("r0"))) + 1
    provider = OpenAIBatchProvider(
        config={"max_bytes_per_batch": 2 * one + 5, "workdir": str(tmp_path)}
    )
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(5)])
    assert [p.request_count for p in payloads] == [2, 2, 1]
    assert all(p.path is not None and p.path.stat().st_size <= 2 * one + 5 for p in payloads)


def test_default_limits() -> None:
    assert OpenAIBatchProvider().limits.max_requests == 50_000
    assert OpenAIBatchProvider().limits.max_bytes == 200_000_000
    assert AzureOpenAIBatchProvider().limits.max_requests == 100_000
    overridden = OpenAIBatchProvider(config={"max_requests_per_batch": "10"})
    assert overridden.limits.max_requests == 10


def _embed(custom_id: str, count: int) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model="text-embedding-3-small",
        endpoint="/v1/embeddings",
        params={"input": ["w"] * count},
    )


def test_embedding_batches_cap_inputs_across_requests(offline: OpenAIBatchProvider) -> None:
    # 25 requests of 2,000 inputs fill one batch exactly (50,000); the 26th starts another.
    payloads = offline.prepare_payloads([_embed(f"e{i}", 2_000) for i in range(26)])
    held = [[line["custom_id"] for line in _lines(p)] for p in payloads]
    assert held == [[f"e{i}" for i in range(25)], ["e25"]]


def test_embedding_cap_groups_requests_in_order() -> None:
    class SmallCap(OpenAIBatchProvider):
        MAX_EMBEDDING_INPUTS = 100

    payloads = SmallCap().prepare_payloads(
        [_embed("a", 60), _embed("b", 30), _embed("c", 20), _embed("d", 1)]
    )
    held = [[line["custom_id"] for line in _lines(p)] for p in payloads]
    assert held == [["a", "b"], ["c", "d"]]  # 90 inputs, then 21
    for payload in payloads:
        payload.discard()


def test_an_embedding_request_over_its_own_limit_never_reaches_a_payload(
    offline: OpenAIBatchProvider, tmp_path: Path
) -> None:
    error = _rejected(offline, [_embed("big", 50_001)], InvalidRequestError, "input", tmp_path)
    assert (error.custom_id, error.field) == ("big", "params.input")


def test_provider_params_are_merged(offline: OpenAIBatchProvider) -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "p",
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "provider_params": {"openai": {"service_tier": "flex"}, "anthropic": {"top_k": 3}},
        }
    )
    [payload] = offline.prepare_payloads([request])
    body = _lines(payload)[0]["body"]
    assert body["service_tier"] == "flex"
    assert "top_k" not in body


def test_azure_merges_both_openai_entries() -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "p",
            "model": "dep",
            "messages": [{"role": "user", "content": "x"}],
            "provider_params": {"openai": {"seed": 1, "user": "u"}, "azure-openai": {"seed": 2}},
        }
    )
    line = json.loads(
        AzureOpenAIBatchProvider(config={"deployments": "dep"}).encode_request(request)
    )
    assert (line["body"]["seed"], line["body"]["user"]) == (2, "u")


def _rejected(
    provider: OpenAIBatchProvider,
    requests: list[Any],
    error: type[InvalidRequestError],
    match: str,
    tmp_path: Path,
) -> InvalidRequestError:
    with pytest.raises(error, match=match) as caught:
        provider.prepare_payloads(requests)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    return caught.value


def test_duplicate_custom_ids(offline: OpenAIBatchProvider, tmp_path: Path) -> None:
    error = _rejected(
        offline,
        [chat("a"), chat("b"), chat("a")],
        InvalidRequestError,
        "'a' appears more than once",
        tmp_path,
    )
    assert error.custom_id == "a"


def test_unsupported_model(offline: OpenAIBatchProvider, tmp_path: Path) -> None:
    error = _rejected(
        offline,
        [chat("a"), chat("b", model="claude-3-opus")],
        UnsupportedModelError,
        "claude-3-opus",
        tmp_path,
    )
    assert error.custom_id == "b"


def test_unsupported_endpoint_for_azure(tmp_path: Path) -> None:
    provider = AzureOpenAIBatchProvider(config={"deployments": ["emb"], "workdir": str(tmp_path)})
    request = BatchRequest(
        custom_id="e", model="emb", endpoint="/v1/embeddings", params={"input": "x"}
    )
    error = _rejected(
        provider, [request], InvalidRequestError, "does not batch /v1/embeddings", tmp_path
    )
    assert error.field == "endpoint"


def test_streaming_requests_are_refused(offline: OpenAIBatchProvider, tmp_path: Path) -> None:
    _rejected(offline, [chat("s", stream=True)], InvalidRequestError, "cannot stream", tmp_path)


# (An entry that is not an object is refused when the BatchRequest is built.)
@pytest.mark.parametrize("extra", [{"model": "gpt-4o"}, {"messages": []}])
def test_provider_params_that_would_break_the_file(
    offline: OpenAIBatchProvider, tmp_path: Path, extra: Any
) -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "p",
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "provider_params": {"openai": extra},
        }
    )
    _rejected(offline, [request], InvalidRequestError, "provider_params", tmp_path)


def test_bodies_that_are_not_json_never_reach_a_payload() -> None:
    # A request whose body cannot be serialised is refused as it is built, before any file.
    with pytest.raises(InvalidRequestError, match="not JSON-serialisable"):
        chat("x", temperature=object())
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        chat("x", temperature=float("nan"))


def test_models_served() -> None:
    provider = OpenAIBatchProvider()
    for model in (
        "gpt-4o",
        "gpt-4.1-mini",
        "gpt-5",
        "o1",
        "o3-mini",
        "o4-mini",
        "text-embedding-3-large",
        "omni-moderation-latest",
        "chatgpt-4o-latest",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
    ):
        assert provider.supports_model(model), model
    for model in ("claude-3-5-sonnet", "llama-3.1-8b-instant", "mistral-large", "o1x", ""):
        assert not provider.supports_model(model), model


def test_models_do_not_depend_on_base_url_but_config_widens_them() -> None:
    groq = OpenAIBatchProvider(config={"base_url": "https://api.groq.com/openai/v1"})
    assert groq.supports_model("gpt-4o") and not groq.supports_model("llama-3.1-8b-instant")
    widened = OpenAIBatchProvider(
        config={"base_url": "https://api.groq.com/openai/v1", "models": ["llama-*", "mixtral-8x7b"]}
    )
    assert widened.supports_model("llama-3.1-8b-instant")
    assert widened.supports_model("mixtral-8x7b")
    assert widened.supports_model("gpt-4o")


def test_azure_serves_its_deployments() -> None:
    provider = AzureOpenAIBatchProvider(config={"deployments": "gpt4o-batch, mini-batch"})
    assert provider.supports_model("gpt4o-batch")
    assert provider.supports_model("mini-batch")
    assert not provider.supports_model("gpt-4o")  # a model name is not a deployment name
    assert not provider.supports_model("gpt4o-*")
    wide = AzureOpenAIBatchProvider(config={"models": ["*"]})
    assert wide.supports_model("anything")
