"""What BaseBatchProvider's public methods guarantee whatever the vendor half does: a create
whose answer is lost is reconciled (never a second batch), several candidates stop everything,
results come back once each and eagerly, cancel after the end reports the end.

The vendor here is a dict of batches in the test: the provider's vendor half talks to it, so
the core's template methods run for real.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import attrs
import orjson
import pytest

from batchcore import (
    AmbiguousSubmitError,
    AuthenticationError,
    BatchHandle,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ConfigurationError,
    InvalidRequestError,
    ProviderConnectionError,
    ResponseTimeoutError,
    ResultsNotReadyError,
)
from batchcore.provider import BaseBatchProvider
from batchcore.retry import VISIBLE_WAIT, Wait, reporting_waits
from batchcore.testing import Fault, LoopbackServer, ManualClock, Request, Response

START = 1_767_225_600.0


@attrs.define
class Vendor:
    """The vendor's side: batches by id, and what to do to the next create."""

    clock: ManualClock
    batches: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    creates: int = 0
    lose_next: int = 0  # creates carried out whose answer is then lost
    refuse_next: int = 0  # creates refused before anything happened (nothing sent)
    ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))

    def add(self, count: int, key: str | None = None, *, age: float = 0.0) -> str:
        batch_id = f"b{next(self.ids)}"
        self.batches[batch_id] = {
            "count": count,
            "key": key,
            "created": self.clock.now() - age,
            "state": "in_progress",
        }
        return batch_id


class Recording:
    """A submit journal that remembers what it was told, in order."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.log: list[tuple[str, Any]] = []
        self.known = set(known)

    def staged(self, staged: Mapping[str, Any]) -> None:
        self.log.append(("staged", dict(staged)))

    def attempting(self, at: datetime) -> None:
        self.log.append(("attempting", at))

    def is_known(self, batch_id: str) -> bool:
        return batch_id in self.known


class DictProvider(BaseBatchProvider):
    PROVIDER_NAME: ClassVar[str] = "dict"
    SUBMIT_SETTLE_SECONDS: ClassVar[float] = 30.0

    def __init__(self, vendor: Vendor, **config: Any) -> None:
        super().__init__(config=config)
        self.vendor = vendor
        self.clock = vendor.clock.now
        self.sleep = vendor.clock.sleep

    def encode_request(self, request: BatchRequest) -> bytes:
        return orjson.dumps({"id": request.custom_id})

    def upload(self, payload: BatchPayload) -> Mapping[str, Any]:
        return {"file": f"file-for-{payload.request_count}"}

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        vendor = self.vendor
        vendor.creates += 1
        if vendor.refuse_next:
            vendor.refuse_next -= 1
            raise ProviderConnectionError("could not connect", provider=self.PROVIDER_NAME)
        batch_id = vendor.add(payload.request_count, idempotency_key)
        if vendor.lose_next:
            vendor.lose_next -= 1
            raise ResponseTimeoutError("timed out waiting", provider=self.PROVIDER_NAME)
        return self._handle(batch_id)

    def _handle(self, batch_id: str) -> BatchHandle:
        return BatchHandle(
            provider=self.PROVIDER_NAME,
            batch_id=batch_id,
            created_at=self.vendor.batches[batch_id]["created"],
        )

    def find_batches(
        self,
        payload: BatchPayload,
        *,
        staged: Mapping[str, Any],
        idempotency_key: str,
        since: datetime | None,
    ) -> Iterable[BatchHandle]:
        floor = -1.0 if since is None else since.timestamp() - 60
        return [
            self._handle(batch_id)
            for batch_id, batch in self.vendor.batches.items()
            if batch["count"] == payload.request_count
            and batch["created"] >= floor
            and (not self.IDEMPOTENT_SUBMIT or batch["key"] == idempotency_key)
        ]

    def get_status(self, handle: BatchHandle) -> BatchStatus:
        batch = self.vendor.batches[handle.batch_id]
        return BatchStatus(
            provider=self.PROVIDER_NAME,
            batch_id=handle.batch_id,
            state=batch["state"],
            raw_status=batch["state"],
            total=batch["count"],
        )

    def read_results(self, handle: BatchHandle, status: BatchStatus) -> Iterator[BatchResult]:
        for custom_id in self.vendor.batches[handle.batch_id].get("results", ()):
            yield BatchResult(custom_id=custom_id, status="succeeded", batch_id=handle.batch_id)

    def request_ids(self, handle: BatchHandle, status: BatchStatus) -> Iterable[str] | None:
        return self.vendor.batches[handle.batch_id].get("ids")

    def cancel_batch(self, handle: BatchHandle) -> BatchStatus:
        batch = self.vendor.batches[handle.batch_id]
        if batch["state"] != "in_progress":
            raise InvalidRequestError(
                "batch has ended", provider=self.PROVIDER_NAME, status_code=400
            )
        batch["state"] = "cancelled"
        return self.get_status(handle)


class KeyedProvider(DictProvider):
    PROVIDER_NAME: ClassVar[str] = "keyed"
    IDEMPOTENT_SUBMIT: ClassVar[bool] = True


class BlindProvider(DictProvider):
    """Cannot search its batches (the default find_batches)."""

    PROVIDER_NAME: ClassVar[str] = "blind"
    find_batches = BaseBatchProvider.find_batches  # type: ignore[assignment]


@pytest.fixture
def vendor() -> Vendor:
    return Vendor(clock=ManualClock(START))


def payload_of(provider: BaseBatchProvider, count: int = 3, **fields: Any) -> BatchPayload:
    requests = [
        BatchRequest(custom_id=f"q{i}", model="m", messages=[{"role": "user", "content": "x"}])
        for i in range(count)
    ]
    (payload,) = provider.prepare_payloads(requests)
    return attrs.evolve(payload, **fields)


def test_a_lost_create_is_found_and_adopted_never_repeated(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    vendor.lose_next = 1
    journal = Recording()
    handle = provider.submit(payload_of(provider), journal=journal)
    assert list(vendor.batches) == [handle.batch_id] and vendor.creates == 1
    assert [entry for entry, _ in journal.log] == ["staged", "attempting"]


def test_a_create_that_made_nothing_is_repeated_once_the_settle_window_has_passed(
    vendor: Vendor,
) -> None:
    class LostBeforeCreating(DictProvider):
        def create_batch(self, payload: BatchPayload, **kwargs: Any) -> BatchHandle:
            if vendor.creates == 0:
                vendor.creates += 1
                raise ResponseTimeoutError("timed out waiting", provider=self.PROVIDER_NAME)
            return super().create_batch(payload, **kwargs)

    provider = LostBeforeCreating(vendor)
    waits: list[Wait] = []
    with reporting_waits(waits.append):
        handle = provider.submit(payload_of(provider))
    assert list(vendor.batches) == [handle.batch_id] and vendor.creates == 2
    # It looked again until the vendor had surely listed a batch made by the first attempt,
    # and said so once, with how long and why (the CLI's progress line shows it).
    assert vendor.clock.now() >= START + DictProvider.SUBMIT_SETTLE_SECONDS
    (wait,) = waits
    assert wait.seconds > VISIBLE_WAIT and "lists a new batch" in wait.reason


def test_several_candidates_stop_everything_and_create_nothing(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    other = vendor.add(3)  # another job's batch of the same size, created just now
    vendor.lose_next = 1
    with pytest.raises(AmbiguousSubmitError) as info:
        provider.submit(payload_of(provider))
    assert set(info.value.candidates) == set(vendor.batches) and other in info.value.candidates
    assert vendor.creates == 1 and len(vendor.batches) == 2


def test_batches_the_journal_knows_are_not_candidates(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    recorded = vendor.add(3)
    vendor.lose_next = 1
    handle = provider.submit(payload_of(provider), journal=Recording(known=[recorded]))
    assert handle.batch_id != recorded and len(vendor.batches) == 2


def test_a_provider_that_cannot_search_never_creates_blindly(vendor: Vendor) -> None:
    provider = BlindProvider(vendor)
    vendor.lose_next = 1
    with pytest.raises(AmbiguousSubmitError, match="cannot look for the batch"):
        provider.submit(payload_of(provider))
    assert vendor.creates == 1


def test_an_earlier_attempt_is_looked_for_before_creating(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    made = vendor.add(3, age=5)  # a create sent before a crash, 5 s ago
    attempted = datetime.fromtimestamp(START - 6, tz=timezone.utc)
    handle = provider.submit(payload_of(provider, attempted_at=attempted, staged={"file": "f"}))
    assert handle.batch_id == made and vendor.creates == 0


def test_an_old_attempt_that_made_nothing_is_submitted_again(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    attempted = datetime.fromtimestamp(START, tz=timezone.utc) - timedelta(hours=1)
    journal = Recording()
    provider.submit(
        payload_of(provider, attempted_at=attempted, staged={"file": "f"}), journal=journal
    )
    assert vendor.creates == 1 and vendor.clock.now() == START  # no waiting: long settled
    assert [entry for entry, _ in journal.log] == ["attempting"]  # the staged file is reused


def test_nothing_sent_is_simply_retried(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    vendor.refuse_next = 1
    with pytest.raises(ProviderConnectionError):
        provider.submit(payload_of(provider))  # the vendor half decides its own retries
    assert vendor.batches == {}


def test_an_idempotent_provider_finds_its_key_first(vendor: Vendor) -> None:
    provider = KeyedProvider(vendor)
    made = vendor.add(3, key="key-1", age=3600)
    handle = provider.submit(payload_of(provider, idempotency_key="key-1"))
    assert handle.batch_id == made and vendor.creates == 0
    vendor.add(3, key="someone-else")
    vendor.lose_next = 1
    lost = provider.submit(payload_of(provider, idempotency_key="key-2"))
    assert vendor.batches[lost.batch_id]["key"] == "key-2" and vendor.creates == 1


def test_foreign_payloads_and_handles_are_refused_before_any_call(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    foreign = attrs.evolve(payload_of(provider), provider="other")
    with pytest.raises(InvalidRequestError, match="prepared by provider 'other'"):
        provider.submit(foreign)
    handle = BatchHandle(provider="other", batch_id="b1", created_at=START)
    for call in (provider.poll_status, provider.fetch_results, provider.cancel):
        with pytest.raises(InvalidRequestError, match="belongs to provider 'other'"):
            call(handle)
    assert vendor.creates == 0


def test_fetch_is_eager_exactly_once_and_names_the_missing(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    batch_id = vendor.add(3)
    handle = BatchHandle(provider="dict", batch_id=batch_id, created_at=START)
    with pytest.raises(ResultsNotReadyError):
        provider.fetch_results(handle)  # raised by the call itself, not on iteration
    vendor.batches[batch_id].update(
        state="expired", results=["q1", "q0", "q1"], ids=["q0", "q1", "q2"]
    )
    results = list(provider.fetch_results(handle))
    assert [r.custom_id for r in results] == ["q1", "q0", "q2"]
    assert results[2].status.value == "expired" and results[2].retryable


def test_cancel_after_the_end_reports_the_end(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    batch_id = vendor.add(3)
    handle = BatchHandle(provider="dict", batch_id=batch_id, created_at=START)
    assert provider.cancel(handle).state is BatchState.CANCELLED
    vendor.batches[batch_id]["state"] = "completed"
    assert provider.cancel(handle).state is BatchState.COMPLETED


def test_a_provider_must_write_one_half_of_each_step() -> None:
    class Empty(BaseBatchProvider):
        PROVIDER_NAME = "empty"

    with pytest.raises(TypeError, match="create_batch\\(\\) nor submit\\(\\)"):
        Empty()


# -- close(), the context manager and the lazily built transport ----------------------------------


class HttpProvider(DictProvider):
    """A provider that speaks raw HTTP through the core's transport (``self.transport()``)."""

    PROVIDER_NAME: ClassVar[str] = "http"

    def echo(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.transport().request_json("GET", "/echo", action="echo")
        return answer


class KeyHeaderProvider(HttpProvider):
    def http_headers(self, api_key: str) -> Mapping[str, str]:
        return {"x-api-key": api_key, "x-version": "7"}


@pytest.fixture
def echo_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()

    @server.route("GET", "/echo")
    def echo(request: Request) -> Response:
        return Response.json(
            {name: request.header(name) for name in ("authorization", "x-api-key", "x-version")}
        )

    with server:
        yield server


def test_the_context_manager_gives_the_provider_and_closes_it_even_on_error(
    vendor: Vendor,
) -> None:
    closed: list[str] = []

    class Recording(DictProvider):
        def close(self) -> None:
            closed.append("closed")
            super().close()

    with Recording(vendor) as provider:
        assert isinstance(provider, Recording)
    assert closed == ["closed"]
    with pytest.raises(RuntimeError, match="boom"), Recording(vendor):
        raise RuntimeError("boom")
    assert closed == ["closed", "closed"]


def test_close_is_safe_without_a_transport_and_twice(vendor: Vendor) -> None:
    provider = DictProvider(vendor)
    provider.close()
    provider.close()


def test_the_transport_is_built_once_on_first_use_and_close_releases_it(
    vendor: Vendor, echo_server: LoopbackServer
) -> None:
    provider = HttpProvider(vendor, base_url=echo_server.url, api_key="sk-template-0123456789")
    first = provider.transport()
    assert provider.transport() is first  # one session for every call
    assert provider.echo()["authorization"] == "Bearer sk-template-0123456789"
    provider.close()
    provider.close()  # twice is harmless
    second = provider.transport()  # a later call opens a new one
    assert second is not first
    assert provider.echo()["authorization"] == "Bearer sk-template-0123456789"
    with provider:
        pass
    assert provider.transport() is not second


def test_a_provider_chooses_its_headers(vendor: Vendor, echo_server: LoopbackServer) -> None:
    with KeyHeaderProvider(vendor, base_url=echo_server.url, api_key="sk-other-0123456789") as p:
        assert p.echo() == {
            "authorization": None,
            "x-api-key": "sk-other-0123456789",
            "x-version": "7",
        }


def test_the_transport_retries_through_the_provider_sleep_in_force(
    vendor: Vendor, echo_server: LoopbackServer
) -> None:
    provider = HttpProvider(vendor, base_url=echo_server.url, api_key="sk-template-0123456789")
    provider.transport()  # built before the sleep is replaced, as tests and the kit do
    waits: list[float] = []
    provider.sleep = waits.append
    echo_server.inject("GET", "/echo", Fault.status(503, headers={"retry-after": "2"}))
    provider.echo()
    assert waits == [2.0]


def test_without_a_base_url_or_a_key_the_transport_says_what_is_missing(vendor: Vendor) -> None:
    offline = HttpProvider(vendor)  # prepare_payloads needs neither
    payload_of(offline).discard()
    with pytest.raises(ConfigurationError, match="http: no base_url configured"):
        offline.transport()
    keyless = HttpProvider(vendor, base_url="http://127.0.0.1:9")
    with pytest.raises(AuthenticationError, match="no API key"):
        keyless.transport()
