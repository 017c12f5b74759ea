"""Submitting without ever paying twice, with no idempotency key.

A Together batch job carries no key or metadata, so a create whose answer is lost is never sent
again blindly: the payload's file is uploaded first and its id kept (``payload.staged``), and
the core looks for the batch made from that file (``find_batches`` lists batches and matches
``input_file_id``), adopting it, waiting out the settle window when there is none, and stopping
when several could be it. Real HTTP against the emulator; the provider's sleep advances the
manual clock, so the settle window passes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from together_support import Journal, MakeProvider, chat

from batchcore import AmbiguousSubmitError, BatchPayload, ResponseTimeoutError
from batchcore.testing import Fault, ManualClock, SleepRecorder
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator

CREATE = ("POST", "/v1/batches")
LIST = ("GET", "/v1/batches")
UPLOAD = ("POST", "/v1/files/upload")
SETTLE = TogetherBatchProvider.SUBMIT_SETTLE_SECONDS


@pytest.fixture
def payloads(provider: TogetherBatchProvider) -> Iterator[Callable[..., BatchPayload]]:
    made: list[BatchPayload] = []

    def make(count: int = 3, prefix: str = "r", **changes: Any) -> BatchPayload:
        [payload] = provider.prepare_payloads([chat(f"{prefix}{i}") for i in range(count)])
        made.append(payload)
        return attrs.evolve(payload, **changes) if changes else payload

    yield make
    for payload in made:
        payload.discard()


def at(clock: ManualClock, offset: float = 0.0) -> datetime:
    return datetime.fromtimestamp(clock.now() + offset, tz=timezone.utc)


def test_the_upload_is_staged_before_the_create(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    journal = Journal()
    handle = provider.submit(payloads(2), journal=journal)
    [staged] = journal.staged_with
    assert staged == {"input_file_id": handle.metadata["input_file_id"]}
    assert journal.attempts == [at(clock)]
    assert emulator.server.count(*UPLOAD) == 1
    assert emulator.server.count(*CREATE) == 1
    assert emulator.server.count(*LIST) == 0  # nothing to reconcile on a first, clean create


# -- a create whose answer is lost ----------------------------------------------------------------


def test_a_lost_answer_leaves_one_batch_and_submit_returns_it(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
) -> None:
    provider = make_provider(timeout=0.5)
    journal = Journal()
    emulator.inject(*CREATE, Fault.lose_response())
    handle = provider.submit(payloads(3), journal=journal)
    assert emulator.batch_count() == 1
    assert emulator.batch_ids() == [handle.batch_id]
    assert emulator.server.count(*CREATE) == 1  # never sent again
    assert emulator.server.count(*UPLOAD) == 1
    assert emulator.server.count(*LIST) >= 1
    assert handle.metadata["input_file_id"] == journal.staged_with[0]["input_file_id"]
    assert handle.metadata["request_count"] == 3
    assert provider.poll_status(handle).total == 3


def test_a_lost_create_through_the_kit_fault(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
) -> None:
    provider = make_provider(timeout=0.5)
    emulator.inject_fault("lost_create")
    handle = provider.submit(payloads(2))
    assert emulator.batch_ids() == [handle.batch_id]


def test_the_create_alone_does_not_retry_an_unknown_outcome(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
) -> None:
    provider = make_provider(timeout=0.5)
    payload = payloads(1)
    staged = provider.upload(payload)
    emulator.inject(*CREATE, Fault.lose_response())
    with pytest.raises(ResponseTimeoutError):
        provider.create_batch(payload, staged=staged, idempotency_key="k")
    assert emulator.server.count(*CREATE) == 1
    assert emulator.batch_count() == 1


def test_an_answer_lost_before_the_create_ran_sends_it_once_more_after_settling(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    sleeps: SleepRecorder,
) -> None:
    # A reset after the request left: the vendor may or may not have acted (here it had not).
    emulator.inject(*CREATE, Fault.reset())
    handle = provider.submit(payloads(2))
    assert emulator.batch_ids() == [handle.batch_id]
    assert emulator.server.count(*CREATE) == 2
    assert emulator.server.count(*UPLOAD) == 1  # the staged file is reused
    assert sum(sleeps) >= SETTLE  # it looked until the settle window had passed


# -- a process that died around the create --------------------------------------------------------


def test_a_crash_after_the_create_was_sent_adopts_that_batch(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    payload = payloads(3)
    first = make_provider()
    attempted = at(clock)
    staged = first.upload(payload)
    made = first.create_batch(payload, staged=staged, idempotency_key="k")
    # The process dies here: the runner had recorded the upload and the attempt, not the batch.
    clock.advance(120)
    resumed = make_provider()
    uploads, creates = emulator.server.count(*UPLOAD), emulator.server.count(*CREATE)
    handle = resumed.submit(attrs.evolve(payload, staged=staged, attempted_at=attempted))
    assert handle.batch_id == made.batch_id
    assert emulator.batch_count() == 1
    assert emulator.server.count(*UPLOAD) == uploads  # nothing uploaded again
    assert emulator.server.count(*CREATE) == creates  # nothing created again


def test_a_crash_before_the_create_left_creates_it_once_after_settling(
    make_provider: MakeProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
    sleeps: SleepRecorder,
) -> None:
    payload = payloads(2)
    provider = make_provider()
    staged = provider.upload(payload)
    attempted = at(clock)  # recorded, then the process died before the create was sent
    handle = provider.submit(attrs.evolve(payload, staged=staged, attempted_at=attempted))
    assert emulator.batch_ids() == [handle.batch_id]
    assert handle.metadata["input_file_id"] == staged["input_file_id"]
    assert emulator.server.count(*UPLOAD) == 1
    assert sum(sleeps) >= SETTLE


def test_a_batch_of_another_upload_is_never_adopted(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    # Another payload of the same size and model, submitted just before ours.
    other = provider.submit(payloads(3, prefix="other"))
    ours = payloads(3)
    staged = provider.upload(ours)
    handle = provider.submit(attrs.evolve(ours, staged=staged, attempted_at=at(clock)))
    assert handle.batch_id != other.batch_id
    assert handle.metadata["input_file_id"] == staged["input_file_id"]
    assert emulator.batch_count() == 2
    assert emulator.batch(handle.batch_id)["input_file_id"] == staged["input_file_id"]


def test_two_batches_from_one_upload_stop_submit(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    payload = payloads(2)
    staged = provider.upload(payload)
    provider.create_batch(payload, staged=staged, idempotency_key="k")
    provider.create_batch(payload, staged=staged, idempotency_key="k")  # someone else, by hand
    with pytest.raises(AmbiguousSubmitError) as caught:
        provider.submit(attrs.evolve(payload, staged=staged, attempted_at=at(clock)))
    assert len(caught.value.candidates) == 2
    assert emulator.batch_count() == 2  # and no third


def test_a_batch_the_journal_knows_is_not_adopted_again(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    payload = payloads(2)
    staged = provider.upload(payload)
    known = provider.create_batch(payload, staged=staged, idempotency_key="k")
    journal = Journal(known=(known.batch_id,))
    handle = provider.submit(
        attrs.evolve(payload, staged=staged, attempted_at=at(clock)), journal=journal
    )
    assert handle.batch_id != known.batch_id
    assert emulator.batch_count() == 2


def test_without_a_staged_file_an_earlier_attempt_cannot_be_reconciled(
    provider: TogetherBatchProvider,
    emulator: TogetherEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    with pytest.raises(AmbiguousSubmitError, match="cannot look for the batch"):
        provider.submit(payloads(2, attempted_at=at(clock)))
    assert emulator.batch_count() == 0
    assert emulator.server.count(*CREATE) == 0
