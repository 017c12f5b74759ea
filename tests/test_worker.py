"""Workers sharing a store (SQLite and PostgreSQL): they claim one step at a time, never the
same step twice, pick up what a dead worker held once its claim expires, and leave jobs alone
that a driver holds. The vendor is the in-memory fake, on a manual clock."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from batchcore import BatchProviderRegistry, BatchRequest, JobEvent
from batchcore.jobs import BatchRunner, JobStore, PollSchedule
from batchcore.jobs.worker import Worker
from batchcore.testing import FakeBackend, FakeBatchProvider, ManualClock

POLL = PollSchedule(min_interval=5, max_interval=30, jitter=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def backend(clock: ManualClock) -> FakeBackend:
    return FakeBackend(
        clock=clock, validating_seconds=10, in_progress_seconds=60, finalizing_seconds=10
    )


@pytest.fixture
def registry() -> BatchProviderRegistry:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(FakeBatchProvider)
    return registry


def requests(n: int, prefix: str = "q") -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id=f"{prefix}{i}",
            model="fake-model",
            messages=[{"role": "user", "content": f"question {i}"}],
        )
        for i in range(n)
    ]


def create(
    location: str, registry: BatchProviderRegistry, backend: FakeBackend, n: int, **config: Any
) -> str:
    runner = BatchRunner(location, registry=registry, poll=POLL)
    return runner.create("fake", requests(n), config={"backend": backend, **config})


def worker(
    location: str,
    registry: BatchProviderRegistry,
    backend: FakeBackend,
    clock: ManualClock,
    **kwargs: Any,
) -> Worker:
    kwargs.setdefault("burst", True)
    return Worker(
        location,
        registry=registry,
        config={"backend": backend},
        clock=clock.now,
        sleep=clock.sleep,
        **kwargs,
    )


def test_a_worker_drives_a_submitted_job_to_the_end(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    job_id = create(store_location, registry, backend, 25, max_requests_per_batch=10)
    steps = worker(store_location, registry, backend, clock).run()
    info = BatchRunner(store_location, registry=registry).info(job_id)
    assert info.state == "finished" and info.all_succeeded
    assert backend.batch_count() == 3 and steps > 0


def test_workers_never_do_the_same_step_twice(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    jobs = [
        create(store_location, registry, backend, 30, max_requests_per_batch=5) for _ in range(3)
    ]
    events: list[JobEvent] = []
    lock = threading.Lock()

    def record(event: JobEvent) -> None:
        with lock:
            events.append(event)

    fleet = [
        worker(
            store_location,
            registry,
            backend,
            clock,
            concurrency=3,
            observers=[record],
            name=f"w{n}",
        )
        for n in range(2)
    ]
    threads = [threading.Thread(target=w.run) for w in fleet]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    runner = BatchRunner(store_location, registry=registry)
    assert all(runner.info(job).all_succeeded for job in jobs)
    assert backend.batch_count() == 18  # 3 jobs x 6 batches: none created twice
    submitted = Counter(e.batch_id for e in events if e.kind.value == "submitted")
    assert len(submitted) == 18 and set(submitted.values()) == {1}
    fetched = Counter(e.batch_id for e in events if e.kind.value == "results_fetched")
    assert set(fetched.values()) == {1}
    for job in jobs:
        ids = [r.custom_id for r in runner.results(job)]
        assert len(ids) == len(set(ids)) == 30


def test_a_dead_workers_claim_expires_and_another_worker_takes_the_step(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    job_id = create(store_location, registry, backend, 4)
    with JobStore(store_location) as store:
        claim = store.claim_next("dead-host:1", seconds=60, now=clock.now())
        assert claim is not None and claim.job_id == job_id
        assert store.claim_next("other:2", seconds=60, now=clock.now()) is None  # held
        # The dead worker's heartbeat stops: its claim runs out.
        store.database.execute("UPDATE batches SET claim_until=0 WHERE claimed_by='dead-host:1'")
    worker(store_location, registry, backend, clock).run()
    info = BatchRunner(store_location, registry=registry).info(job_id)
    assert info.all_succeeded and backend.batch_count() == 1


def test_a_worker_killed_mid_create_leaves_one_batch(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    job_id = create(store_location, registry, backend, 6, idempotent_submit=False)

    class Killed(BaseException):
        pass

    class DiesWhileCreating(FakeBatchProvider):
        def create_batch(self, payload: Any, **kwargs: Any) -> Any:
            super().create_batch(payload, **kwargs)
            raise Killed

    crashing = BatchRegistryWith(DiesWhileCreating)
    with pytest.raises(Killed):
        worker(store_location, crashing, backend, clock).run()
    with JobStore(store_location) as store:
        store.database.execute("UPDATE batches SET claim_until=0")  # its claims expire
        store.database.execute("UPDATE jobs SET step_until=0")
    clock.advance(120)
    worker(store_location, registry, backend, clock).run()
    info = BatchRunner(store_location, registry=registry).info(job_id)
    assert info.all_succeeded and backend.batch_count() == 1


def BatchRegistryWith(cls: type[FakeBatchProvider]) -> BatchProviderRegistry:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(cls)
    return registry


def test_workers_leave_a_driven_job_and_sandbox_jobs_alone(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    driven = create(store_location, registry, backend, 3)
    boxed = BatchRunner(store_location, registry=registry).create(
        "fake", requests(3, "s"), config={"backend": backend}, options={"sandbox": True}
    )
    with JobStore(store_location) as store:
        store.acquire(driven, me="driver-host:1")  # a live driver holds it
        assert store.claim_next("w", seconds=60, now=clock.now()) is None
        assert not store.has_worker_jobs()
    assert worker(store_location, registry, backend, clock).run() == 0
    assert backend.batch_count() == 0
    runner = BatchRunner(store_location, registry=registry)
    assert runner.info(driven).state == runner.info(boxed).state == "active"


def test_a_worker_without_a_key_leaves_the_jobs_to_others(
    store_location: str,
    backend: FakeBackend,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Keyed(FakeBatchProvider):
        PROVIDER_NAME = "keyed"
        API_KEY_ENV = ("KEYED_API_KEY",)

    registry = BatchRegistryWith(Keyed)
    monkeypatch.delenv("KEYED_API_KEY", raising=False)
    job_id = BatchRunner(store_location, registry=registry, poll=POLL).create(
        "keyed", requests(2), config={"backend": backend}
    )
    keyless = worker(store_location, registry, backend, clock)
    assert keyless.served_providers() == []
    assert keyless.run() == 0
    monkeypatch.setenv("KEYED_API_KEY", "key-0123456789")
    worker(store_location, registry, backend, clock).run()
    assert BatchRunner(store_location, registry=registry).info(job_id).all_succeeded


def test_events_name_the_worker_that_acted(
    store_location: str, registry: BatchProviderRegistry, backend: FakeBackend, clock: ManualClock
) -> None:
    create(store_location, registry, backend, 2)
    events: list[JobEvent] = []
    worker(store_location, registry, backend, clock, observers=[events.append], name="alpha").run()
    assert events and {e.actor for e in events} == {"alpha"}


def test_workers_respect_the_vendors_queue_cap(
    store_location: str, backend: FakeBackend, clock: ManualClock
) -> None:
    from batchcore import QueueLimit

    class QueuedFake(FakeBatchProvider):
        PROVIDER_NAME = "queued"
        QUEUE_LIMIT = QueueLimit(measure="requests", per_model=False, default=6)

    registry = BatchRegistryWith(QueuedFake)
    backend.queue_requests = 6  # three batches of two at a time
    job_id = BatchRunner(store_location, registry=registry, poll=POLL, max_attempts=1).create(
        "queued", requests(24), config={"backend": backend, "max_requests_per_batch": 2}
    )
    worker(store_location, registry, backend, clock, concurrency=3).run()
    info = BatchRunner(store_location, registry=registry).info(job_id)
    assert info.all_succeeded and backend.batch_count() == 12
    assert backend.queue_high_water <= 6


def bounded_worker(
    location: str,
    registry: BatchProviderRegistry,
    backend: FakeBackend,
    clock: ManualClock,
    *,
    days: float = 2,
    **kwargs: Any,
) -> Worker:
    """A burst worker that fails (instead of spinning forever) once *days* of simulated time
    have passed without the store running out of work."""
    horizon = clock.now() + days * 86_400

    def sleep(seconds: float) -> None:
        if clock.now() > horizon:
            raise AssertionError(f"the workers were still busy after {days} days")
        clock.sleep(seconds)

    return Worker(
        location,
        registry=registry,
        config={"backend": backend},
        clock=clock.now,
        sleep=sleep,
        burst=True,
        **kwargs,
    )


def test_an_admission_left_by_a_killed_worker_holds_no_room(
    store_location: str, backend: FakeBackend, clock: ManualClock
) -> None:
    from batchcore import QueueLimit

    class QueuedFake(FakeBatchProvider):
        PROVIDER_NAME = "queued"
        QUEUE_LIMIT = QueueLimit(measure="requests", per_model=False, default=6)

    registry = BatchRegistryWith(QueuedFake)
    backend.queue_requests = 6
    job_id = BatchRunner(store_location, registry=registry, poll=POLL, max_attempts=1).create(
        "queued", requests(8), config={"backend": backend, "max_requests_per_batch": 4}
    )
    with JobStore(store_location) as store:
        first, _ = store.batches(job_id)  # two batches of 4: each over half the cap
        # A worker admits the first batch and is killed before its create: its claim runs out.
        assert store.claim_batch(first.row, "dead-host:1", seconds=60)
        admitted = store.admit(
            first.row, provider="queued", model=None, measure="requests", amount=4, cap=6
        )
        assert admitted is None
        store.database.execute("UPDATE batches SET claim_until=0 WHERE claimed_by='dead-host:1'")
        assert store.enqueued("queued", None) == (0, 0)  # the dead step holds no room
    bounded_worker(store_location, registry, backend, clock, concurrency=2).run()
    info = BatchRunner(store_location, registry=registry).info(job_id)
    assert info.all_succeeded and backend.batch_count() == 2
    assert backend.queue_high_water <= 6


class InFlight:
    """Counts creates running at once; with *meet* > 1, that many must be running together
    before any goes on (only concurrent creates get past it)."""

    def __init__(self, meet: int = 1) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.barrier = threading.Barrier(meet) if meet > 1 else None

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        if self.barrier is not None:
            self.barrier.wait(timeout=60)  # a guard against a hang, not a measurement

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("width", [1, 4])
def test_a_workers_submit_concurrency_bounds_its_uploads_and_creates(
    store_location: str, backend: FakeBackend, clock: ManualClock, width: int
) -> None:
    flight = InFlight(meet=width)

    class Counting(FakeBatchProvider):
        def create_batch(self, payload: Any, **kwargs: Any) -> Any:
            with flight:
                return super().create_batch(payload, **kwargs)

    registry = BatchRegistryWith(Counting)
    job_id = create(store_location, registry, backend, 8, max_requests_per_batch=1)
    bounded_worker(
        store_location, registry, backend, clock, concurrency=4, submit_concurrency=width
    ).run()
    assert BatchRunner(store_location, registry=registry).info(job_id).all_succeeded
    assert backend.batch_count() == 8 and flight.most == width
