"""Submitting without ever paying twice.

A Message Batch carries no idempotency key, so a create whose answer is lost is never sent
again blindly: the provider lists the batches created since the attempt, and the core adopts
the one that matches, waits out the settle window when there is none, and stops when several
could be it. Real HTTP against the emulator; the clock is a ManualClock that the provider's
sleep advances, so the settle window passes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import attrs
import pytest

from batchcore import (
    AmbiguousSubmitError,
    BatchHandle,
    BatchPayload,
    BatchRequest,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.testing import Fault, ManualClock
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator, error_fault

MODEL = "claude-haiku-4-5"
CREATE = ("POST", "/v1/messages/batches")
LIST = ("GET", "/v1/messages/batches")
SETTLE = AnthropicBatchProvider.SUBMIT_SETTLE_SECONDS
MakeProvider = Callable[..., AnthropicBatchProvider]


def chat(custom_id: str) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model=MODEL,
        messages=[{"role": "user", "content": f"Hi {custom_id}"}],
        params={"max_tokens": 16},
    )


class Journal:
    """A runner's store, as far as submit sees it: what was attempted, which batches are
    already some other payload's."""

    def __init__(self, known: tuple[str, ...] = ()) -> None:
        self.known = set(known)
        self.attempts: list[datetime] = []

    def staged(self, staged: Mapping[str, Any]) -> None:
        raise AssertionError("Anthropic stages nothing: the create body carries the requests")

    def attempting(self, at: datetime) -> None:
        self.attempts.append(at)

    def is_known(self, batch_id: str) -> bool:
        return batch_id in self.known


@pytest.fixture
def payloads(provider: AnthropicBatchProvider) -> Iterator[Callable[..., BatchPayload]]:
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


# -- a create whose answer is lost -----------------------------------------------------------------


def test_a_lost_answer_leaves_one_batch_and_submit_returns_it(
    make_provider: MakeProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    provider = make_provider(timeout=0.5)
    journal = Journal()
    started = clock.now()
    emulator.inject(*CREATE, Fault.lose_response())
    handle = provider.submit(payloads(3), journal=journal)
    assert emulator.batch_count() == 1
    assert emulator.batch_ids() == [handle.batch_id]
    assert emulator.server.count(*CREATE) == 1  # never sent again
    assert emulator.server.count(*LIST) >= 1
    assert journal.attempts == [datetime.fromtimestamp(started, tz=timezone.utc)]
    assert handle.metadata["request_count"] == 3
    assert handle.metadata["submitted_at"] == started  # the 404 grace counts from the attempt
    assert provider.poll_status(handle).total == 3


def test_a_lost_create_through_the_kit_fault(
    make_provider: MakeProvider, emulator: AnthropicEmulator, payloads: Callable[..., BatchPayload]
) -> None:
    provider = make_provider(timeout=0.5)
    emulator.inject_fault("lost_create")
    handle = provider.submit(payloads(2))
    assert emulator.batch_count() == 1
    assert emulator.batch_ids() == [handle.batch_id]


def test_without_reconciliation_the_lost_answer_is_outcome_unknown(
    make_provider: MakeProvider, emulator: AnthropicEmulator, payloads: Callable[..., BatchPayload]
) -> None:
    # What the core reconciles: the create alone raises at once, and is not retried.
    provider = make_provider(timeout=0.5)
    emulator.inject(*CREATE, Fault.lose_response())
    with pytest.raises(ResponseTimeoutError, match="may have taken effect"):
        provider.create_batch(payloads(1), staged={}, idempotency_key="k")
    assert emulator.server.count(*CREATE) == 1
    assert emulator.batch_count() == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.reset(), id="reset after sending"),
        pytest.param(error_fault(502, "api_error"), id="502 from a gateway"),
        pytest.param(error_fault(504, "timeout_error"), id="504 from a gateway"),
    ],
)
def test_an_unknown_outcome_that_made_nothing_creates_once_after_the_settle_window(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
    sleeps: list[float],
    fault: Fault,
) -> None:
    # The create never ran (the fault answered instead), but the client cannot know that.
    started = clock.now()
    emulator.inject(*CREATE, fault)
    handle = provider.submit(payloads(2))
    assert emulator.batch_ids() == [handle.batch_id]
    assert emulator.server.count(*CREATE) == 2
    assert clock.now() - started >= SETTLE  # looked for it until the list had settled
    assert sum(sleeps) >= SETTLE
    assert emulator.server.count(*LIST) >= 2


def test_a_reset_on_the_create_is_outcome_unknown_for_the_create_alone(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
) -> None:
    emulator.inject(*CREATE, Fault.reset())
    with pytest.raises(ResponseLostError):
        provider.create_batch(payloads(1), staged={}, idempotency_key="k")
    assert emulator.server.count(*CREATE) == 1


# -- a payload whose earlier create may have been sent -----------------------------------------


def test_an_earlier_attempt_is_adopted_instead_of_creating(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    attempted = at(clock)
    # The process died after this create was sent, before recording its answer.
    made_before = provider.submit(payloads(3))
    clock.advance(2)
    handle = provider.submit(payloads(3, attempted_at=attempted, idempotency_key="job-7:0"))
    assert handle.batch_id == made_before.batch_id
    assert emulator.batch_count() == 1
    assert emulator.server.count(*CREATE) == 1
    assert handle.metadata["idempotency_key"] == "job-7:0"
    assert handle.metadata["submitted_at"] == attempted.timestamp()


def test_an_ended_batch_is_adopted_too(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    attempted = at(clock)
    made_before = provider.submit(payloads(3))
    clock.advance(3600)  # long ended, and far past the settle window
    assert emulator.batch(made_before.batch_id)["processing_status"] == "ended"
    handle = provider.submit(payloads(3, attempted_at=attempted))
    assert handle.batch_id == made_before.batch_id
    assert emulator.batch_count() == 1


def test_two_candidates_stop_the_submit_and_create_nothing(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    attempted = at(clock)
    first = provider.submit(payloads(3, prefix="a"))
    clock.advance(1)
    second = provider.submit(payloads(3, prefix="b"))
    with pytest.raises(AmbiguousSubmitError) as caught:
        provider.submit(payloads(3, attempted_at=attempted))
    error = caught.value
    assert set(error.candidates) == {first.batch_id, second.batch_id}
    assert first.batch_id in str(error) and second.batch_id in str(error)
    assert not error.retryable
    assert emulator.batch_count() == 2
    assert emulator.server.count(*CREATE) == 2


def test_a_batch_already_known_is_not_adopted(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    attempted = at(clock)
    others = provider.submit(payloads(3, prefix="other"))  # another payload's batch
    handle = provider.submit(
        payloads(3, attempted_at=attempted), journal=Journal(known=(others.batch_id,))
    )
    assert handle.batch_id != others.batch_id
    assert emulator.batch_count() == 2
    assert emulator.batch_ids() == [others.batch_id, handle.batch_id]
    assert clock.now() - attempted.timestamp() >= SETTLE


def test_no_candidate_after_the_settle_window_creates_one_batch(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
    sleeps: list[float],
) -> None:
    too_old = provider.submit(payloads(3, prefix="old"))
    clock.advance(AnthropicBatchProvider.CLOCK_SKEW_SECONDS + 1)
    attempted = at(clock)
    other_size = provider.submit(payloads(4, prefix="four"))
    sleeps.clear()
    handle = provider.submit(payloads(3, attempted_at=attempted))
    assert handle.batch_id not in {too_old.batch_id, other_size.batch_id}
    assert emulator.batch_count() == 3
    assert emulator.server.count(*CREATE) == 3
    # It kept looking (the list may lag a new batch) until the window had passed, no longer.
    assert len(sleeps) >= 2
    assert SETTLE <= clock.now() - attempted.timestamp() < SETTLE + 10


def test_a_candidate_created_within_the_clock_skew_allowance_is_adopted(
    provider: AnthropicBatchProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    # The vendor's clock may run behind ours: its created_at can precede our attempt.
    made_before = provider.submit(payloads(3))
    clock.advance(AnthropicBatchProvider.CLOCK_SKEW_SECONDS - 60)
    handle = provider.submit(payloads(3, attempted_at=at(clock)))
    assert handle.batch_id == made_before.batch_id
    assert emulator.batch_count() == 1


class SmallPages(AnthropicBatchProvider):
    LIST_PAGE_SIZE: ClassVar[int] = 2


def test_the_list_is_paged_newest_first_and_stops_at_the_window(
    make_provider: MakeProvider,
    emulator: AnthropicEmulator,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    provider = make_provider(SmallPages)
    for name in ("old1", "old2", "old3"):  # same size, but before the window
        provider.submit(payloads(3, prefix=name))
    clock.advance(AnthropicBatchProvider.CLOCK_SKEW_SECONDS + 100)
    attempted = at(clock)
    target = provider.submit(payloads(3, prefix="target"))
    for i in range(5):  # newer, of another size: pages to go through first
        clock.advance(1)
        provider.submit(payloads(1, prefix=f"new{i}x"))
    lists_before = emulator.server.count(*LIST)
    handle = provider.submit(payloads(3, attempted_at=attempted))
    assert handle.batch_id == target.batch_id
    # new4 new3 | new2 new1 | new0 target | old3 (older than the window: stop) old2
    assert emulator.server.count(*LIST) - lists_before == 4
    assert emulator.batch_count() == 9


def test_looking_needs_the_time_of_the_attempt(
    provider: AnthropicBatchProvider, payloads: Callable[..., BatchPayload]
) -> None:
    # Without it, any batch of the same size could be the one: the vendor cannot be searched.
    from batchcore import UnsupportedOperationError

    with pytest.raises(UnsupportedOperationError):
        list(provider.find_batches(payloads(1), staged={}, idempotency_key="k", since=None))


def test_find_batches_returns_handles_of_this_provider(
    provider: AnthropicBatchProvider,
    payloads: Callable[..., BatchPayload],
    clock: ManualClock,
) -> None:
    attempted = at(clock)
    made = provider.submit(payloads(2))
    found = list(
        provider.find_batches(payloads(2), staged={}, idempotency_key="key-1", since=attempted)
    )
    assert [h.batch_id for h in found] == [made.batch_id]
    [handle] = found
    assert isinstance(handle, BatchHandle) and handle.provider == "anthropic"
    assert handle.created_at == made.created_at
    assert handle.metadata["idempotency_key"] == "key-1"
