"""A results download with a garbled line: the provider raises (the download is fetched again),
and the runner keeps what arrived, waits and fetches again instead of reporting the request
missing (which would resubmit it and pay for it twice)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import chat

from batchcore import JobEvent, JobEventKind
from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.plugin import ResponseLostError
from batchcore.registry import BatchProviderRegistry
from batchcore.testing import ManualClock
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import MistralEmulator

Factory = Callable[..., MistralBatchProvider]


def test_a_garbled_line_raises_naming_it_and_a_new_download_is_whole(
    emulator: MistralEmulator, provider: MistralBatchProvider
) -> None:
    requests = [chat(f"g{i}") for i in range(5)]
    [payload] = provider.prepare_payloads(requests)
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(3600)
    emulator.inject_fault(CORRUPT_RESULT_LINE)
    delivered = []
    with pytest.raises(ResponseLostError, match=r"line 2 of file \S+ is not valid JSON"):
        delivered.extend(provider.fetch_results(handle))
    assert len(delivered) == 1  # what came before the garbled line was delivered
    again = list(provider.fetch_results(handle))
    assert sorted(r.custom_id for r in again) == [f"g{i}" for i in range(5)]
    assert all(r.ok for r in again)


def test_the_runner_fetches_again_and_loses_nothing(
    tmp_path: Path, clock: ManualClock, emulator: MistralEmulator, make_provider: Factory
) -> None:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(MistralBatchProvider)
    events: list[JobEvent] = []
    runner = BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        max_attempts=1,  # a request reported missing would be retried; with one attempt, failed
        poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        clock=clock.now,
        sleep=clock.sleep,
        observers=[events.append],
    )
    # The job's first results download (uploads are POSTs, not downloads) is garbled.
    emulator.inject_fault(CORRUPT_RESULT_LINE)
    info = runner.run(make_provider(), [chat(f"r{i}") for i in range(6)])

    assert info.all_succeeded
    results = list(runner.results(info.id))
    assert Counter(r.custom_id for r in results) == Counter(f"r{i}" for i in range(6))
    assert emulator.batch_count() == 1  # nothing was submitted again
    waits = [e.detail or "" for e in events if e.kind is JobEventKind.WAITING]
    assert any("fetch of batch" in detail and "line 2" in detail for detail in waits), waits
