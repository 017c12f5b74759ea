"""Submitting never pays twice: the job's metadata carries the payload's idempotency key, and a
job whose create answer was lost (or whose process died after sending it) is found by it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import attrs
import pytest
from conftest import chat

from batchcore.plugin import BatchPayload
from batchcore.testing import Fault, ManualClock, Request, Response, SleepRecorder
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import MistralEmulator

_CREATE = ("POST", "/v1/batch/jobs")


def payload_of(provider: MistralBatchProvider, count: int, key: str | None) -> BatchPayload:
    prefix = key or "req"
    [payload] = provider.prepare_payloads([chat(f"{prefix}-{i}") for i in range(count)])
    return attrs.evolve(payload, idempotency_key=key)


def creates(emulator: MistralEmulator) -> int:
    return emulator.server.count(*_CREATE)


@pytest.mark.parametrize("mode", ["file", "inline"])
def test_a_lost_create_leaves_exactly_one_job(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    clock: ManualClock,
    mode: str,
) -> None:
    provider = make_provider(timeout=0.5, input_mode=mode)
    payload = payload_of(provider, 2, None)
    emulator.inject_fault("lost_create")
    try:
        handle = provider.submit(payload)
    finally:
        payload.discard()
    assert emulator.batch_count() == 1 and creates(emulator) == 1
    [job] = emulator.jobs()
    assert handle.batch_id == job["id"]
    # The job was looked for by its key, through the list's metadata filter.
    query = emulator.list_queries[-1]
    assert query["batchcore_idempotency_key"] == [job["metadata"]["batchcore_idempotency_key"]]
    assert query["order_by"] == ["-created"]
    assert datetime.fromisoformat(query["created_after"][0]) < datetime.fromtimestamp(
        clock.now(), tz=timezone.utc
    )
    clock.advance(3600)
    assert sorted(r.custom_id for r in provider.fetch_results(handle)) == ["req-0", "req-1"]


def test_a_process_that_died_after_sending_the_create_adopts_the_job(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    clock: ManualClock,
) -> None:
    first = make_provider()
    payload = payload_of(first, 3, "batchcore-job1-0123456789ab")
    try:
        made = first.submit(payload)
        # What the runner's store kept: the key, the upload and when the create was sent.
        staged = {"input_file_id": made.metadata["input_files"][0]}
        again = attrs.evolve(
            payload, staged=staged, attempted_at=datetime.fromtimestamp(clock.now(), timezone.utc)
        )
        second = make_provider()
        adopted = second.submit(again)
    finally:
        payload.discard()
    assert adopted.batch_id == made.batch_id
    assert emulator.batch_count() == 1 and creates(emulator) == 1
    assert len(emulator.uploads) == 1


def test_a_process_that_died_before_sending_the_create_creates_one_after_settling(
    make_provider: Callable[..., MistralBatchProvider],
    emulator: MistralEmulator,
    clock: ManualClock,
    sleeps: SleepRecorder,
) -> None:
    provider = make_provider()
    attempted = datetime.fromtimestamp(clock.now(), timezone.utc)
    payload = attrs.evolve(
        payload_of(provider, 2, "batchcore-job2-0123456789ab"), attempted_at=attempted
    )
    try:
        handle = provider.submit(payload)
    finally:
        payload.discard()
    assert emulator.batch_count() == 1
    assert handle.metadata["idempotency_key"] == "batchcore-job2-0123456789ab"
    # It waited out the settle window (a new job can be missing from the list for a while).
    assert sum(sleeps) >= MistralBatchProvider.SUBMIT_SETTLE_SECONDS


def test_submitting_a_keyed_payload_twice_makes_one_job(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator
) -> None:
    provider = make_provider()
    payload = payload_of(provider, 1, "batchcore-job3-0123456789ab")
    try:
        first = provider.submit(payload)
        second = provider.submit(payload)
    finally:
        payload.discard()
    assert first.batch_id == second.batch_id
    assert emulator.batch_count() == 1


def test_a_lost_upload_answer_is_uploaded_again(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator
) -> None:
    provider = make_provider(timeout=0.5)
    payload = payload_of(provider, 2, None)
    emulator.inject("POST", "/v1/files", Fault.lose_response())
    try:
        handle = provider.submit(payload)
    finally:
        payload.discard()
    assert len(emulator.uploads) == 2 and emulator.batch_count() == 1
    assert handle.metadata["input_files"] == [emulator.jobs()[0]["input_files"][0]]


class _IgnoresMetadataFilter(MistralEmulator):
    """An API whose job list ignores metadata filters (it only pages)."""

    def _list_jobs(self, request: Request) -> Response:
        known = {"page", "page_size", "order_by", "created_after", "status", "model"}
        stripped = attrs.evolve(
            request, query={k: v for k, v in request.query.items() if k in known}
        )
        return super()._list_jobs(stripped)


class _SmallPages(MistralBatchProvider):
    LIST_PAGE_SIZE: ClassVar[int] = 2


@pytest.fixture
def unfiltered(clock: ManualClock) -> Iterator[_IgnoresMetadataFilter]:
    with _IgnoresMetadataFilter(clock=clock) as running:
        yield running


def test_the_search_is_exact_when_the_list_ignores_the_filter(
    unfiltered: _IgnoresMetadataFilter, clock: ManualClock
) -> None:
    def make(**config: Any) -> MistralBatchProvider:
        provider = _SmallPages(
            config={"base_url": unfiltered.url, "api_key": unfiltered.api_key, **config}
        )
        provider.clock, provider.sleep = clock.now, clock.sleep
        return provider

    provider = make(timeout=0.5)
    target = payload_of(provider, 1, "batchcore-target-0123456789")
    others = [payload_of(provider, 1, f"batchcore-other{i}-0123456789") for i in range(5)]
    try:
        unfiltered.inject_fault("lost_create")
        lost_at = clock.now()
        handle = provider.submit(target)
        for other in others:  # newer jobs push the target to a later page of the list
            clock.advance(1)
            provider.submit(other)
        again = attrs.evolve(target, attempted_at=datetime.fromtimestamp(lost_at, timezone.utc))
        adopted = make().submit(again)
    finally:
        for payload in (target, *others):
            payload.discard()
    assert adopted.batch_id == handle.batch_id
    assert unfiltered.batch_count() == 6
    keys = {job["id"]: job["metadata"]["batchcore_idempotency_key"] for job in unfiltered.jobs()}
    assert keys[adopted.batch_id] == "batchcore-target-0123456789"
    pages = {q["page"][0] for q in unfiltered.list_queries}
    assert {"0", "1", "2"} <= pages


def test_an_unknown_create_outcome_is_never_sent_again_blindly(
    make_provider: Callable[..., MistralBatchProvider], emulator: MistralEmulator
) -> None:
    provider = make_provider(max_retries=3)
    payload = payload_of(provider, 1, None)
    # A gateway that lost the job service's answer: the create may have happened.
    emulator.inject(*_CREATE, Fault.status(502, body={"message": "Bad gateway"}))
    try:
        handle = provider.submit(payload)
    finally:
        payload.discard()
    # The 502 was answered before the create ran: nothing was made, so after looking for it
    # (and waiting out the settle window) exactly one create was sent again.
    assert creates(emulator) == 2 and emulator.batch_count() == 1
    assert handle.batch_id == emulator.jobs()[0]["id"]
