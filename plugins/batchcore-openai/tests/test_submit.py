"""submit: upload (streamed from disk), create with an idempotency key, never pay twice."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime, timezone

import attrs
import openai
import pytest
from openai_support import API_KEY, MODEL, chat, schema_errors

from batchcore.errors import (
    InvalidRequestError,
    OutcomeUnknownError,
    ProviderConnectionError,
    ProviderServerError,
)
from batchcore.models import BatchPayload, BatchRequest
from batchcore.testing import Fault, ManualClock
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

Factory = Callable[..., OpenAIBatchProvider]


def _payload(provider: OpenAIBatchProvider, count: int = 3, key: str | None = None) -> BatchPayload:
    [payload] = provider.prepare_payloads([chat(f"r{i}") for i in range(count)])
    return attrs.evolve(payload, idempotency_key=key)


def test_submit_uploads_the_file_and_creates_the_batch(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    payload = _payload(provider)
    assert payload.path is not None
    handle = provider.submit(payload)

    [upload] = emulator.uploads
    assert upload.fields == {"purpose": "batch"}
    filename, content_type, size = upload.files["file"]
    assert filename == payload.path.name and filename.endswith(".jsonl")
    assert content_type == "application/jsonl"
    assert size == payload.size_bytes
    assert schema_errors("CreateFileRequest", {**upload.fields, "file": "<binary>"}) == []

    [created] = emulator.created_batch_requests
    assert schema_errors("CreateBatchRequest", created) == []
    assert created["completion_window"] == "24h"
    assert created["endpoint"] == "/v1/chat/completions"
    key = created["metadata"]["batchcore_idempotency_key"]
    assert key.startswith("batchcore-")  # a fresh one when the payload has none

    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert handle.provider == "openai"
    assert int(handle.created_at.timestamp()) == batch["created_at"]
    assert handle.metadata == {
        "input_file_id": batch["input_file_id"],
        "endpoint": "/v1/chat/completions",
        "idempotency_key": key,
    }
    assert emulator.file_content(batch["input_file_id"]) == payload.path.read_bytes()


def test_resubmitting_a_keyed_payload_finds_the_existing_batch(
    emulator: OpenAIEmulator, make_provider: Factory
) -> None:
    first = make_provider()
    payload = _payload(first, key="job-7-payload-0")
    handle = first.submit(payload)
    # The process restarts before recording the handle; a new provider submits again.
    again = make_provider().submit(payload)
    assert again.batch_id == handle.batch_id
    assert again.metadata["idempotency_key"] == "job-7-payload-0"
    assert len(emulator.batches()) == 1
    assert emulator.server.count("POST", "/v1/files") == 1
    assert emulator.server.count("POST", "/v1/batches") == 1


def test_a_different_key_creates_a_new_batch(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    provider.submit(_payload(provider, key="one"))
    provider.submit(_payload(provider, key="two"))
    keys = [b["metadata"]["batchcore_idempotency_key"] for b in emulator.batches()]
    assert keys == ["one", "two"]


@pytest.mark.parametrize("key", ["caller-key-1", None])
def test_create_whose_answer_was_cut_short_is_not_repeated(
    emulator: OpenAIEmulator,
    provider: OpenAIBatchProvider,
    sleeps: list[float],
    key: str | None,
) -> None:
    # The batch is created, then the connection breaks before the answer is complete.
    emulator.server.inject("POST", "/v1/batches", Fault.truncate(20))
    handle = provider.submit(_payload(provider, key=key))
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert emulator.server.count("POST", "/v1/batches") == 1
    assert sleeps == []  # found by its key at once, nothing waited for or repeated


def test_create_reset_before_the_vendor_acted_is_created_once(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider, sleeps: list[float]
) -> None:
    # The connection breaks after the request was sent and before the vendor acted: from the
    # client's side the outcome is unknown, so the batch is looked for until it would have
    # shown (SUBMIT_SETTLE_SECONDS), and only then created.
    emulator.server.inject("POST", "/v1/batches", Fault.reset())
    handle = provider.submit(_payload(provider, key="k"))
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert emulator.server.count("POST", "/v1/batches") == 2
    assert sum(sleeps) >= provider.SUBMIT_SETTLE_SECONDS
    assert emulator.server.count("POST", "/v1/files") == 1  # the upload is not repeated


def test_connect_refused_is_retried_even_for_a_create(
    make_provider: Factory, sleeps: list[float]
) -> None:
    # Nothing listens there: the request never left, so repeating the create is safe.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = make_provider(base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=2)
    payload = attrs.evolve(_payload(provider), staged={"input_file_id": "file-1"})
    with pytest.raises(ProviderConnectionError, match="could not connect") as caught:
        provider.submit(payload)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert len(sleeps) == 2  # three attempts at the create, none of them reconciled


def test_lost_create_is_recovered_even_without_retries(
    emulator: OpenAIEmulator, make_provider: Factory, sleeps: list[float]
) -> None:
    impatient = make_provider(max_retries=0)
    emulator.server.inject("POST", "/v1/batches", Fault.truncate(20))
    handle = impatient.submit(_payload(impatient))
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"] and sleeps == []


def test_a_lost_create_that_cannot_be_looked_for_raises_and_a_keyed_resubmit_recovers(
    emulator: OpenAIEmulator, make_provider: Factory
) -> None:
    impatient = make_provider(max_retries=0)
    payload = _payload(impatient, key="recover-me")
    emulator.server.inject("POST", "/v1/batches", Fault.truncate(20))
    # The first search (before any create) passes; the one after the lost answer fails.
    emulator.server.inject("GET", "/v1/batches", Fault.status(500), calls=[2])
    with pytest.raises(ProviderServerError):
        impatient.submit(payload)
    handle = make_provider().submit(payload)
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert emulator.server.count("POST", "/v1/files") == 1  # the re-submit uploaded nothing
    assert emulator.server.count("POST", "/v1/batches") == 1


def test_the_key_is_found_beyond_the_first_page(
    emulator: OpenAIEmulator, make_provider: Factory
) -> None:
    class SmallPages(OpenAIBatchProvider):
        IDEMPOTENCY_SEARCH_PAGE_SIZE = 2

    provider = make_provider()
    handle = provider.submit(_payload(provider, key="old-key"))
    client = openai.OpenAI(base_url=emulator.url + "/v1", api_key=API_KEY, max_retries=0)
    for index in range(3):  # newer batches push the keyed one to the second page of two
        client.batches.create(
            input_file_id=handle.metadata["input_file_id"],
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"n": str(index)},
        )
    searcher = SmallPages(config={**provider.config, "api_key": API_KEY})
    lists = emulator.server.count("GET", "/v1/batches")
    assert searcher.submit(_payload(provider, key="old-key")).batch_id == handle.batch_id
    assert emulator.server.count("GET", "/v1/batches") - lists == 2

    class OnePage(SmallPages):
        IDEMPOTENCY_SEARCH_PAGES = 1

    shallow = OnePage(config={**provider.config, "api_key": API_KEY})
    assert shallow.submit(_payload(provider, key="old-key")).batch_id != handle.batch_id
    assert len(emulator.batches()) == 5


def test_submit_refuses_payloads_it_cannot_send(
    provider: OpenAIBatchProvider, emulator: OpenAIEmulator
) -> None:
    payload = _payload(provider)
    with pytest.raises(InvalidRequestError, match="prepared by provider 'anthropic'"):
        provider.submit(attrs.evolve(payload, provider="anthropic"))
    payload.discard()
    with pytest.raises(InvalidRequestError, match="was the payload discarded"):
        provider.submit(payload)
    with pytest.raises(InvalidRequestError, match="BatchPayload"):
        provider.submit("file.jsonl")  # type: ignore[arg-type]
    assert emulator.call_count() == 0


# -- a create whose answer never comes, on both flavours ------------------------------------

Flavour = tuple[OpenAIEmulator, Factory, str]


@pytest.fixture(params=["openai", "azure-openai"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    if request.param == "openai":
        return (
            request.getfixturevalue("emulator"),
            request.getfixturevalue("make_provider"),
            MODEL,
        )
    return (
        request.getfixturevalue("azure_emulator"),
        request.getfixturevalue("make_azure_provider"),
        "batch-gpt4o",
    )


def _requests(model: str) -> list[BatchRequest]:
    return [chat(f"r{i}", model=model) for i in range(3)]


def test_a_create_whose_answer_never_comes_leaves_one_batch(
    flavour: Flavour, sleeps: list[float]
) -> None:
    emulator, make, model = flavour
    provider = make(timeout=0.5)
    [payload] = provider.prepare_payloads(_requests(model))
    assert emulator.CREATE_ROUTE is not None
    method, route = emulator.CREATE_ROUTE
    # The vendor creates the batch; its answer is lost and the client's read timeout fires.
    emulator.inject(method, route, Fault.lose_response())
    handle = provider.submit(payload)
    assert emulator.batch_count() == 1
    [batch] = emulator.batches()
    assert handle.batch_id == batch["id"]
    assert handle.metadata["idempotency_key"] == batch["metadata"]["batchcore_idempotency_key"]
    creates = [c for c in emulator.server.calls if (c.method, c.route) == (method, route)]
    assert [call.fault for call in creates] == ["lose_response"]
    assert sleeps == []  # found at once by its key


def test_lost_create_fault_of_the_kit_hits_the_create_route(flavour: Flavour) -> None:
    emulator, make, model = flavour
    provider = make(timeout=0.5)
    [payload] = provider.prepare_payloads(_requests(model))
    emulator.inject_fault("lost_create")
    provider.submit(payload)
    assert emulator.batch_count() == 1


@pytest.mark.parametrize("key", ["job-1-payload-0", None])
def test_after_a_crash_the_batch_already_created_is_adopted(
    flavour: Flavour, clock: ManualClock, key: str | None
) -> None:
    emulator, make, model = flavour
    crashed = make()
    [payload] = crashed.prepare_payloads(_requests(model))
    payload = attrs.evolve(payload, idempotency_key=key)
    # What the runner's journal kept: the staged file and when the create was sent; then the
    # create went out and the process died before its answer was recorded.
    staged = crashed.upload(payload)
    attempted = datetime.fromtimestamp(clock.now(), tz=timezone.utc)
    created = crashed.create_batch(payload, staged=staged, idempotency_key=key or "lost-key")
    clock.advance(30)
    resumed = attrs.evolve(payload, staged=staged, attempted_at=attempted)
    handle = make().submit(resumed)
    assert handle.batch_id == created.batch_id
    assert emulator.batch_count() == 1
    assert sum(1 for call in emulator.server.calls if call.path.endswith("/files")) == 1
