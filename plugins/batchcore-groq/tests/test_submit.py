"""submit: upload, create with Groq's window and an idempotency key, and never two batches."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest
from groq_support import FINISHED, Factory, chat

from batchcore.errors import InvalidRequestError
from batchcore.models import BatchPayload, BatchState
from batchcore.testing import Fault, SleepRecorder
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator

CREATE = API_PATH + "/batches"


def _payload(provider: GroqBatchProvider, count: int = 3, key: str | None = None) -> BatchPayload:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(count)])
    return attrs.evolve(payload, idempotency_key=key)


def test_submit_uploads_then_creates_under_openai_v1(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider(completion_window="3d")
    payload = _payload(provider)
    handle = provider.submit(payload)

    [upload] = emulator.uploads
    assert upload.fields == {"purpose": "batch"}
    [created] = emulator.created_batch_requests
    assert created["endpoint"] == "/v1/chat/completions"
    assert created["completion_window"] == "3d"
    key = created["metadata"]["batchcore_idempotency_key"]
    assert key.startswith("batchcore-")
    routes = {(call.method, call.route) for call in emulator.server.calls}
    assert routes == {("POST", API_PATH + "/files"), ("POST", CREATE)}

    [batch] = emulator.batches()
    assert handle.provider == "groq" and handle.batch_id == batch["id"]
    assert handle.metadata["input_file_id"] == batch["input_file_id"]
    assert handle.metadata["idempotency_key"] == key


@pytest.mark.parametrize("echo_metadata", [True, False])
def test_a_lost_create_leaves_exactly_one_batch(
    emulator: GroqEmulator, make_provider: Factory, sleeps: SleepRecorder, echo_metadata: bool
) -> None:
    emulator.echo_metadata = echo_metadata
    provider = make_provider(timeout=0.5)
    payload = _payload(provider, key="job-7-payload-0")
    emulator.inject_fault("lost_create")

    handle = provider.submit(payload)

    assert emulator.batch_count() == 1
    assert emulator.server.count("POST", CREATE) == 1  # never sent again
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert ("metadata" in batch) is echo_metadata
    emulator.advance(FINISHED)
    results = {r.custom_id for r in provider.fetch_results(handle)}
    assert results == {"r0", "r1", "r2"}


def test_a_lost_create_among_other_batches_finds_its_own(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    emulator.echo_metadata = False  # only the uploaded file tells the batches apart
    provider = make_provider(timeout=0.5)
    others = [provider.submit(_payload(provider)) for _ in range(3)]
    payload = _payload(provider, count=2)
    emulator.inject_fault("lost_create")

    handle = provider.submit(payload)

    assert emulator.batch_count() == 4
    assert handle.batch_id not in {h.batch_id for h in others}
    emulator.advance(FINISHED)
    assert {r.custom_id for r in provider.fetch_results(handle)} == {"r0", "r1"}


def test_a_create_that_never_arrived_is_sent_once_more_after_the_settle_time(
    emulator: GroqEmulator, make_provider: Factory, sleeps: SleepRecorder
) -> None:
    provider = make_provider()
    payload = _payload(provider)
    # The connection breaks before the create runs: the outcome is unknown to the client.
    emulator.server.inject("POST", CREATE, Fault.reset())

    handle = provider.submit(payload)

    assert emulator.batch_count() == 1
    assert emulator.server.count("POST", CREATE) == 2
    assert sum(sleeps) >= GroqBatchProvider.SUBMIT_SETTLE_SECONDS  # it looked before resending
    assert handle.batch_id == emulator.batches()[0]["id"]


def test_a_resumed_submit_adopts_the_batch_an_earlier_attempt_made(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    first = make_provider()
    payload = _payload(first, key="job-1-payload-0")
    handle = first.submit(payload)
    [created] = emulator.created_batch_requests
    # A later process (the runner after a crash) submits the same payload again.
    again = attrs.evolve(
        payload,
        staged={"input_file_id": handle.metadata["input_file_id"]},
        attempted_at=datetime.fromtimestamp(emulator.now(), tz=timezone.utc),
    )
    adopted = make_provider().submit(again)
    assert adopted.batch_id == handle.batch_id
    assert emulator.batch_count() == 1
    assert len(emulator.uploads) == 1
    assert created["metadata"]["batchcore_idempotency_key"] == "job-1-payload-0"


def test_a_failed_create_that_groq_refused_is_not_retried(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider()
    payload = _payload(provider)
    emulator.inject_fault("bad_request", method="POST", route=CREATE)
    with pytest.raises(InvalidRequestError) as caught:
        provider.submit(payload)
    assert caught.value.status_code == 400 and caught.value.provider == "groq"
    assert emulator.batch_count() == 0
    assert emulator.server.count("POST", CREATE) == 1


def test_submitted_batches_complete_with_results(
    emulator: GroqEmulator, make_provider: Factory
) -> None:
    provider = make_provider(completion_window="7d")
    handle = provider.submit(_payload(provider))
    assert provider.poll_status(handle).state is BatchState.VALIDATING
    emulator.advance(FINISHED)
    status = provider.poll_status(handle)
    assert status.state is BatchState.COMPLETED and status.total == 3
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["r1"].text == "Echo: hello from r1"
