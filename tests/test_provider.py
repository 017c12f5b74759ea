"""BaseBatchProvider: configuration, secrets, model rules, and the generic prepare_payloads
(validation, splitting under limits, duplicate detection, cleanup)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from sample_plugins.providers import NoNetworkProvider

from batchcore import (
    AuthenticationError,
    BatchLimits,
    BatchPayload,
    BatchRequest,
    ConfigurationError,
    InvalidRequestError,
    Secret,
    UnsupportedModelError,
)
from batchcore.models import SAFE_CUSTOM_ID
from batchcore.payloads import JSON_ARRAY_FIELD


class MiniProvider(NoNetworkProvider):
    """The smallest provider: OpenAI-style JSONL lines, no network half."""

    PROVIDER_NAME = "mini"
    SUPPORTED_MODELS = ("gpt-*", "o3")
    API_KEY_ENV = ("MINI_API_KEY",)
    BASE_URL_ENV = ("MINI_BASE_URL",)
    DEFAULT_BASE_URL = "https://api.mini.invalid/v1"
    CONFIG_KEYS = frozenset({"organization"})

    def encode_request(self, request: BatchRequest) -> bytes:
        return orjson.dumps({"custom_id": request.custom_id, "body": request.openai_body()})


class ArrayProvider(MiniProvider):
    PROVIDER_NAME = "array"
    PAYLOAD_FRAMING = JSON_ARRAY_FIELD("requests")
    CUSTOM_ID_PATTERN: ClassVar[re.Pattern[str] | None] = SAFE_CUSTOM_ID

    def payload_group(self, request: BatchRequest) -> str:
        return "all"

    def payload_model(self, request: BatchRequest) -> None:
        return None


def req(cid: str, model: str = "gpt-4o", text: str = "hi") -> BatchRequest:
    return BatchRequest(custom_id=cid, model=model, messages=[{"role": "user", "content": text}])


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MINI_API_KEY", raising=False)
    monkeypatch.delenv("MINI_BASE_URL", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))


def leftover_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("batchcore-*"))


# -- configuration ------------------------------------------------------------------------------


def test_config_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = MiniProvider()
    assert provider.api_key is None
    assert provider.base_url == "https://api.mini.invalid/v1"
    assert (provider.timeout, provider.max_retries) == (60.0, 2)
    monkeypatch.setenv("MINI_API_KEY", "sk-from-env-123456")
    monkeypatch.setenv("MINI_BASE_URL", "http://127.0.0.1:9/v1")
    provider = MiniProvider()
    assert provider.require_api_key() == "sk-from-env-123456"
    assert provider.base_url == "http://127.0.0.1:9/v1"
    explicit = MiniProvider(config={"api_key": "sk-explicit-1234567", "base_url": "http://x/v1"})
    assert explicit.require_api_key() == "sk-explicit-1234567"
    assert explicit.base_url == "http://x/v1"


def test_config_values_may_be_strings_as_from_a_command_line() -> None:
    provider = MiniProvider(
        config={
            "timeout": "2.5",
            "max_retries": "0",
            "max_requests_per_batch": "10",
            "models": "llama-*, mix",
        }
    )
    assert (provider.timeout, provider.max_retries, provider.limits.max_requests) == (2.5, 0, 10)
    assert provider.supports_model("llama-3") and provider.supports_model("mix")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"api_kye": "x"}, "unknown config key(s) for provider 'mini': 'api_kye'"),
        ({"timeout": "soon"}, "'timeout' must be a number"),
        ({"timeout": 0}, "'timeout' must be a number"),
        ({"max_retries": -1}, "'max_retries' must be an integer >= 0"),
        ({"max_requests_per_batch": 0}, "'max_requests_per_batch' must be a positive integer"),
        ({"max_bytes_per_batch": True}, "'max_bytes_per_batch' must be a positive integer"),
        ({"models": 3}, "'models' must be a list of strings"),
        ({"api_key": ""}, "'api_key' must be a non-empty string"),
    ],
)
def test_bad_config_is_refused_by_name(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MiniProvider(config=config)
    assert fragment in str(info.value)


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="mapping"):
        MiniProvider(config=[("api_key", "x")])  # type: ignore[arg-type]


def test_provider_specific_config_keys_are_kept() -> None:
    provider = MiniProvider(config={"organization": "org-1"})
    assert provider.config["organization"] == "org-1"


def test_missing_key_is_an_authentication_error_naming_the_variable() -> None:
    with pytest.raises(AuthenticationError, match="MINI_API_KEY"):
        MiniProvider().require_api_key()


def test_secrets_never_show() -> None:
    key = "sk-very-secret-key-0123456789"
    provider = MiniProvider(config={"api_key": key})
    assert key not in repr(provider) and key not in str(provider)
    assert key not in repr(provider.api_key) and key not in str(provider.api_key)
    assert key not in repr(provider.config) and "api_key" not in provider.config
    assert provider.secrets() == (key,)
    with pytest.raises(TypeError, match="cannot be pickled"):
        __import__("pickle").dumps(provider.api_key)


def test_a_secret_can_be_passed_on_to_a_rebuilt_provider() -> None:
    provider = MiniProvider(config={"api_key": "sk-very-secret-key-0123456789"})
    rebuilt = MiniProvider(config={**provider.config, "api_key": provider.api_key})
    assert rebuilt.api_key == provider.api_key
    assert Secret("a-secret-value") != Secret("another-value")


def test_provider_without_name_cannot_be_built() -> None:
    class Nameless(MiniProvider):
        PROVIDER_NAME = ""

    with pytest.raises(TypeError, match="PROVIDER_NAME"):
        Nameless()


# -- models ----------------------------------------------------------------------------------------


def test_supports_model_uses_patterns_and_config() -> None:
    provider = MiniProvider()
    assert provider.supports_model("gpt-4o") and provider.supports_model("o3")
    assert not provider.supports_model("o3-mini") and not provider.supports_model("claude-3")
    assert not provider.supports_model("")
    assert MiniProvider(config={"models": ["*"]}).supports_model("anything")


# -- prepare_payloads ---------------------------------------------------------------------------


def read_jsonl(payload: BatchPayload) -> list[dict[str, Any]]:
    assert payload.path is not None
    return [json.loads(line) for line in payload.path.read_text().splitlines()]


def test_prepare_writes_one_line_per_request_with_ids_beside(tmp_path: Path) -> None:
    (payload,) = MiniProvider().prepare_payloads([req("a"), req("b")])
    assert (payload.provider, payload.model, payload.endpoint) == (
        "mini",
        "gpt-4o",
        "/v1/chat/completions",
    )
    assert payload.request_count == 2
    assert payload.path is not None and payload.size_bytes == payload.path.stat().st_size
    assert [line["custom_id"] for line in read_jsonl(payload)] == ["a", "b"]
    assert list(payload.iter_custom_ids()) == ["a", "b"]
    payload.discard()
    payload.discard()
    assert leftover_files(tmp_path) == []


def test_prepare_splits_by_request_count() -> None:
    provider = MiniProvider(config={"max_requests_per_batch": 2})
    payloads = provider.prepare_payloads(req(f"r{i}") for i in range(5))
    assert [p.request_count for p in payloads] == [2, 2, 1]
    assert [cid for p in payloads for cid in p.iter_custom_ids()] == [f"r{i}" for i in range(5)]


def test_prepare_splits_by_bytes_exactly_at_the_limit() -> None:
    line = len(MiniProvider().encode_request(req("r0"))) + 1
    provider = MiniProvider(config={"max_bytes_per_batch": 2 * line})
    payloads = provider.prepare_payloads(req(f"r{i}") for i in range(5))
    assert [p.request_count for p in payloads] == [2, 2, 1]
    assert all(p.size_bytes <= 2 * line for p in payloads)


def test_prepare_keeps_one_model_and_endpoint_per_payload() -> None:
    requests = [
        req("a", "gpt-4o"),
        req("b", "gpt-4o-mini"),
        req("c", "gpt-4o"),
        BatchRequest(
            custom_id="e", model="gpt-4o", endpoint="/v1/embeddings", params={"input": "x"}
        ),
    ]
    payloads = MiniProvider().prepare_payloads(requests)
    got = {(p.model, p.endpoint): list(p.iter_custom_ids()) for p in payloads}
    assert got == {
        ("gpt-4o", "/v1/chat/completions"): ["a", "c"],
        ("gpt-4o-mini", "/v1/chat/completions"): ["b"],
        ("gpt-4o", "/v1/embeddings"): ["e"],
    }


def test_array_framing_is_one_json_document_within_the_byte_limit() -> None:
    provider = ArrayProvider(config={"max_requests_per_batch": 2})
    payloads = provider.prepare_payloads([req("a"), req("b", "gpt-4o-mini"), req("c")])
    assert [p.request_count for p in payloads] == [2, 1]
    assert payloads[0].model is None
    assert payloads[0].path is not None
    body = json.loads(payloads[0].path.read_bytes())
    assert [r["custom_id"] for r in body["requests"]] == ["a", "b"]
    assert payloads[0].size_bytes == payloads[0].path.stat().st_size
    small = ArrayProvider(config={"max_bytes_per_batch": payloads[0].size_bytes})
    assert [p.request_count for p in small.prepare_payloads([req("a"), req("b"), req("c")])] == [
        2,
        1,
    ]


@pytest.mark.parametrize(
    ("requests", "error", "fragment"),
    [
        ([], InvalidRequestError, "no requests"),
        ([req("a"), req("a")], InvalidRequestError, "'a' appears more than once"),
        ([req("a"), req("b", model="claude-3")], UnsupportedModelError, "model 'claude-3'"),
        ([{"custom_id": "a"}], InvalidRequestError, "expected a BatchRequest, got dict"),
    ],
)
def test_prepare_rejects_bad_input_and_leaves_no_file(
    tmp_path: Path, requests: list[Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=re.escape(fragment)):
        MiniProvider().prepare_payloads(requests)
    assert leftover_files(tmp_path) == []


def test_prepare_rejects_a_single_request_larger_than_the_limit(tmp_path: Path) -> None:
    provider = MiniProvider(config={"max_bytes_per_batch": 100})
    with pytest.raises(InvalidRequestError, match="more than the 100-byte batch limit") as info:
        provider.prepare_payloads([req("ok", text="x"), req("big", text="x" * 200)])
    assert info.value.custom_id == "big"
    assert leftover_files(tmp_path) == []


def test_prepare_refuses_a_bare_request() -> None:
    with pytest.raises(InvalidRequestError, match="iterable of BatchRequest"):
        MiniProvider().prepare_payloads(req("a"))  # type: ignore[arg-type]


def test_custom_id_pattern_is_enforced_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape("^[a-zA-Z0-9_-]{1,64}$")) as info:
        ArrayProvider().prepare_payloads([req("fine"), req("not fine!")])
    assert info.value.custom_id == "not fine!" and info.value.field == "custom_id"
    assert leftover_files(tmp_path) == []


def test_duplicates_across_payloads_are_found() -> None:
    provider = MiniProvider(config={"max_requests_per_batch": 3})
    with pytest.raises(InvalidRequestError, match="'r1' appears more than once"):
        provider.prepare_payloads([req(f"r{i}") for i in range(7)] + [req("r1")])


def test_duplicate_detection_is_exact_at_scale() -> None:
    # 30k distinct ids raise no false alarm (Bloom suspects are cleared exactly), and one real
    # duplicate among them is found.
    provider = MiniProvider(config={"max_requests_per_batch": 10_000})
    ids = [f"request-{i}" for i in range(30_000)]
    payloads = provider.prepare_payloads(req(cid) for cid in ids)
    assert sum(p.request_count for p in payloads) == 30_000
    for payload in payloads:
        payload.discard()
    with pytest.raises(InvalidRequestError, match="'request-12345'"):
        provider.prepare_payloads(req(cid) for cid in [*ids, "request-12345"])


def test_workdir_config_places_files(tmp_path: Path) -> None:
    target = tmp_path / "payloads"
    (payload,) = MiniProvider(config={"workdir": str(target)}).prepare_payloads([req("a")])
    assert payload.path is not None and payload.path.parent == target


def test_limits_are_data() -> None:
    assert (
        BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024) == MiniProvider.DEFAULT_LIMITS
    )
    with pytest.raises(ConfigurationError):
        BatchLimits(max_requests=0, max_bytes=1)
