"""Limits as data: Groq's safe reading by default, overridable, and payloads split under them."""

from __future__ import annotations

import pytest
from groq_support import API_KEY, FINISHED, Factory, chat

from batchcore.errors import ConfigurationError
from batchcore.models import BatchLimits, BatchState
from batchcore.testing import ManualClock
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator


def test_the_defaults_are_the_smaller_of_groqs_stated_limits() -> None:
    # Groq's SDK: 100 MB per file; later notes: 50,000 lines and 200 MB.
    safe = BatchLimits(max_requests=50_000, max_bytes=100_000_000)
    assert safe == GroqBatchProvider.DEFAULT_LIMITS
    assert GroqBatchProvider().limits == GroqBatchProvider.DEFAULT_LIMITS


def test_config_overrides_the_limits() -> None:
    provider = GroqBatchProvider(
        config={"max_requests_per_batch": "1000", "max_bytes_per_batch": 200_000_000}
    )
    assert provider.limits == BatchLimits(max_requests=1000, max_bytes=200_000_000)
    with pytest.raises(ConfigurationError, match="max_bytes_per_batch"):
        GroqBatchProvider(config={"max_bytes_per_batch": 0})


def test_payloads_split_under_the_request_limit() -> None:
    provider = GroqBatchProvider(config={"max_requests_per_batch": 3})
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(7)])
    assert [p.request_count for p in payloads] == [3, 3, 1]
    for payload in payloads:
        payload.discard()


def test_payloads_split_under_the_byte_limit() -> None:
    line_bytes = len(GroqBatchProvider().encode_request(chat("r0", "x" * 100))) + 1
    provider = GroqBatchProvider(config={"max_bytes_per_batch": line_bytes * 2 + 10})
    payloads = provider.prepare_payloads([chat(f"r{i}", "x" * 100) for i in range(5)])
    assert [p.request_count for p in payloads] == [2, 2, 1]
    assert all(p.size_bytes <= line_bytes * 2 + 10 for p in payloads)
    for payload in payloads:
        payload.discard()


def test_groq_fails_a_file_over_its_byte_limit(clock: ManualClock) -> None:
    """Why the limit is data: a payload over Groq's real limit fails the whole batch."""
    with GroqEmulator(clock=clock, api_key=API_KEY, max_bytes=300) as emulator:
        provider = GroqBatchProvider(
            config={
                "base_url": emulator.url + API_PATH,
                "api_key": API_KEY,
                "max_bytes_per_batch": 10_000,  # a user's override above what Groq takes
            }
        )
        [payload] = provider.prepare_payloads([chat(f"r{i}", "x" * 50) for i in range(4)])
        assert payload.size_bytes > 300
        handle = provider.submit(payload)
        emulator.advance(FINISHED)
        status = provider.poll_status(handle)
        assert status.state is BatchState.FAILED
        assert [e.code for e in status.errors] == ["file_too_large"]
        results = list(provider.fetch_results(handle))
        assert {r.custom_id for r in results} == {f"r{i}" for i in range(4)}
        assert all(r.error is not None and r.error.code == "file_too_large" for r in results)
        provider.close()


def test_a_payload_within_the_defaults_runs(emulator: GroqEmulator, make_provider: Factory) -> None:
    provider = make_provider()
    payloads = provider.prepare_payloads([chat(f"r{i}") for i in range(20)])
    [payload] = payloads
    handle = provider.submit(payload)
    emulator.advance(FINISHED)
    assert provider.poll_status(handle).state is BatchState.COMPLETED
    results = list(provider.fetch_results(handle))
    assert len(results) == 20 and all(r.text for r in results)
