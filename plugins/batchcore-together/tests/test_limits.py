"""Together's limits as data, overridable in config: requests and bytes per file, the size of a
line, custom_id length, and the tokens one model may hold in Together's queue."""

from __future__ import annotations

import pytest
from together_support import MakeProvider, chat

from batchcore import ConfigurationError, InvalidRequestError, QueueLimit
from batchcore_together.provider import TogetherBatchProvider


def test_the_documented_limits_are_the_defaults() -> None:
    provider = TogetherBatchProvider(config={"api_key": "k"})
    assert provider.limits.max_requests == 50_000
    assert provider.limits.max_bytes == 100_000_000  # 100 MB, read as decimal megabytes
    assert provider.max_line_bytes == 10_000_000
    per_model = QueueLimit(measure="tokens", per_model=True, default=30_000_000_000)
    assert provider.queue_limit() == (per_model, 30_000_000_000)
    assert TogetherBatchProvider.MAX_CUSTOM_ID_LENGTH == 64


def test_limits_are_overridable(make_provider: MakeProvider) -> None:
    provider = make_provider(
        max_requests_per_batch=10,
        max_bytes_per_batch="5000",
        max_line_bytes=2_000,
        max_enqueued_tokens=1_000_000,
    )
    assert provider.limits.max_requests == 10
    assert provider.limits.max_bytes == 5000
    assert provider.max_line_bytes == 2_000
    limit = provider.queue_limit()
    assert limit is not None and limit[1] == 1_000_000


@pytest.mark.parametrize(
    "config",
    [
        {"max_line_bytes": 0},
        # The key before the common queue key is refused by name.
        {"max_enqueued_tokens_per_model": 1_000_000},
        {"completion_window": "48h"},
    ],
)
def test_bad_config_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TogetherBatchProvider(config={"api_key": "k", **config})


def test_a_queue_limit_that_is_not_a_number_is_refused() -> None:
    provider = TogetherBatchProvider(config={"api_key": "k", "max_enqueued_tokens": "many"})
    with pytest.raises(ConfigurationError, match="max_enqueued_tokens"):
        provider.queue_limit()


def test_payloads_split_by_request_count(make_provider: MakeProvider) -> None:
    provider = make_provider(max_requests_per_batch=4)
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(10)])
    assert [p.request_count for p in payloads] == [4, 4, 2]
    for payload in payloads:
        payload.discard()


def test_payloads_split_by_bytes(make_provider: MakeProvider) -> None:
    provider = make_provider(max_bytes_per_batch=1_000)
    payloads = provider.prepare_payloads([chat(f"r{i}", "x" * 150) for i in range(12)])
    assert len(payloads) > 1
    assert all(p.size_bytes <= 1_000 for p in payloads)
    assert sum(p.request_count for p in payloads) == 12
    for payload in payloads:
        payload.discard()


def test_a_line_over_the_line_limit_is_refused_offline(make_provider: MakeProvider) -> None:
    provider = make_provider(max_line_bytes=300)
    payloads = provider.prepare_payloads([chat("small", "x")])
    payloads[0].discard()
    with pytest.raises(InvalidRequestError, match="under 300") as caught:
        provider.prepare_payloads([chat("big", "x" * 400)])
    assert caught.value.custom_id == "big"
    assert caught.value.field == "messages"


def test_custom_ids_of_64_characters_pass_and_longer_are_refused(
    provider: TogetherBatchProvider,
) -> None:
    [payload] = provider.prepare_payloads([chat("a" * 64)])
    payload.discard()
    with pytest.raises(InvalidRequestError) as caught:
        provider.prepare_payloads([chat("a" * 65)])
    assert caught.value.field == "custom_id"
