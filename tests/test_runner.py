"""The job runner on the in-memory fake provider: splitting, retries, expiry, cancel, crashes at
every step and resumption, observers. Time is a ManualClock: nothing waits for real."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from batchcore import (
    AuthenticationError,
    BatchHandle,
    BatchPayload,
    BatchProviderRegistry,
    BatchRequest,
    InvalidRequestError,
    JobEvent,
    JobEventKind,
    QueueLimit,
    RateLimitError,
    ResultStatus,
    UnsupportedModelError,
)
from batchcore.jobs import (
    BatchRunner,
    JobAttentionError,
    JobBusyError,
    JobSettings,
    JobStoppedError,
    JobStore,
    JoinError,
    PollSchedule,
)
from batchcore.retry import RetryPolicy
from batchcore.testing import FakeBackend, FakeBatchProvider, ManualClock, Outcome


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, no except Exception catches it."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def backend(clock: ManualClock) -> FakeBackend:
    return FakeBackend(
        clock=clock, validating_seconds=10, in_progress_seconds=100, finalizing_seconds=10
    )


@pytest.fixture
def registry() -> BatchProviderRegistry:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(FakeBatchProvider)
    return registry


@pytest.fixture
def events() -> list[JobEvent]:
    return []


@pytest.fixture
def make_runner(
    tmp_path: Path, clock: ManualClock, registry: BatchProviderRegistry, events: list[JobEvent]
) -> Callable[..., BatchRunner]:
    def make(**kwargs: Any) -> BatchRunner:
        kwargs.setdefault("observers", [events.append])
        kwargs.setdefault("poll", PollSchedule(min_interval=5, max_interval=600, jitter=0))
        return BatchRunner(
            tmp_path / "jobs.sqlite3",
            registry=registry,
            clock=clock.now,
            sleep=clock.sleep,
            **kwargs,
        )

    return make


def requests(n: int, prefix: str = "q") -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id=f"{prefix}{i}",
            model="fake-model",
            messages=[{"role": "user", "content": f"question {i}"}],
            params={"max_tokens": 8},
        )
        for i in range(n)
    ]


def cfg(backend: FakeBackend, **extra: Any) -> dict[str, Any]:
    return {"backend": backend, **extra}


def outcomes(runner: BatchRunner, job_id: str) -> dict[str, str]:
    return {r.custom_id: r.status.value for r in runner.results(job_id)}


# -- the happy path ---------------------------------------------------------------------------


def test_run_splits_submits_polls_and_returns_one_result_per_request_in_order(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, events: list[JobEvent]
) -> None:
    runner = make_runner()
    info = runner.run("fake", requests(7), config=cfg(backend, max_requests_per_batch=3))
    assert info.state == "finished" and info.all_succeeded
    assert info.counts == {"succeeded": 7, "pending": 0}
    assert backend.submitted_count == 3
    results = list(runner.results(info.id))
    assert [r.custom_id for r in results] == [f"q{i}" for i in range(7)]
    assert all(r.ok and r.text for r in results)
    kinds = Counter(e.kind for e in events)
    assert kinds[JobEventKind.SUBMITTED] == 3
    assert kinds[JobEventKind.RESULTS_FETCHED] == 3
    assert kinds[JobEventKind.FINISHED] == 1
    assert events[-1].counts == {"succeeded": 7, "pending": 0}
    assert all(e.job_id == info.id for e in events)


def test_payload_files_are_cleaned_up(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    make_runner().run("fake", requests(4), config=cfg(backend, max_requests_per_batch=2))
    assert list((tmp_path / "payloads").glob("batchcore-*")) == []


def test_runner_accepts_a_provider_instance(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    provider = FakeBatchProvider(config=cfg(backend))
    info = make_runner().run(provider, requests(2))
    assert info.all_succeeded


# -- bad input is refused before anything is recorded or sent ---------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([*requests(2), *requests(1)], InvalidRequestError),
        (
            [
                BatchRequest(
                    custom_id="x", model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            ],
            UnsupportedModelError,
        ),
    ],
)
def test_bad_input_leaves_no_job_and_sends_nothing(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    bad: list[BatchRequest],
    error: type[Exception],
) -> None:
    runner = make_runner()
    with pytest.raises(error):
        runner.run("fake", bad, config=cfg(backend))
    assert runner.jobs() == []
    assert backend.call_count() == 0
    assert list((runner.store.path.parent / "payloads").glob("batchcore-*")) == []


# -- partial and failed requests ---------------------------------------------------------------


def first_time(ids: set[str]) -> Callable[[BatchRequest], bool]:
    seen: set[str] = set()

    def match(request: BatchRequest) -> bool:
        if request.custom_id in ids and request.custom_id not in seen:
            seen.add(request.custom_id)
            return True
        return False

    return match


def test_retryable_failures_are_resubmitted_and_successes_never_are(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, events: list[JobEvent]
) -> None:
    backend.script(first_time({"q1", "q3"}), Outcome.error("server_error", retryable=True))
    runner = make_runner()
    info = runner.run("fake", requests(5), config=cfg(backend))
    assert info.all_succeeded
    assert backend.submitted_count == 2
    second = list(backend.batches.values())[1]
    assert sorted(second.custom_ids) == ["q1", "q3"]
    assert any(e.kind is JobEventKind.RETRIED for e in events)
    assert [b.round for b in info.batches] == [1, 2]


def test_permanent_failures_are_final(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.script("q2", Outcome.error("invalid_request", retryable=False))
    runner = make_runner()
    info = runner.run("fake", requests(3), config=cfg(backend))
    assert info.state == "finished" and not info.all_succeeded
    assert backend.submitted_count == 1
    assert outcomes(runner, info.id) == {"q0": "succeeded", "q1": "succeeded", "q2": "errored"}


def test_retries_stop_after_max_attempts(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.script("q0", Outcome.error("server_error", retryable=True))
    runner = make_runner(max_attempts=3)
    info = runner.run("fake", requests(2), config=cfg(backend))
    assert backend.submitted_count == 3
    (result,) = [r for r in runner.results(info.id) if r.custom_id == "q0"]
    assert result.status is ResultStatus.ERRORED and result.retryable
    assert info.counts == {"succeeded": 1, "errored": 1, "pending": 0}


def test_expired_requests_keep_finished_results_and_are_retried(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    backend.script(first_time({"q4"}), Outcome.never())
    start = clock.now()
    runner = make_runner()
    info = runner.run("fake", requests(5), config=cfg(backend))
    assert info.all_succeeded
    first, second = backend.batches.values()
    assert first.custom_ids == ("q0", "q1", "q2", "q3", "q4")
    assert second.custom_ids == ("q4",)
    assert clock.now() - start >= 24 * 3600  # the first batch really ran to its expiry


def test_expired_results_are_final_once_attempts_are_spent(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.script("q1", Outcome.never())
    runner = make_runner(max_attempts=1)
    info = runner.run("fake", requests(2), config=cfg(backend))
    assert outcomes(runner, info.id) == {"q0": "succeeded", "q1": "expired"}
    assert info.counts["expired"] == 1


def test_a_rejected_batch_fails_its_requests_with_the_reason(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.reject_next_batch(code="invalid_file", message="line 1 is broken")
    runner = make_runner()
    info = runner.run("fake", requests(2), config=cfg(backend))
    results = list(runner.results(info.id))
    assert {r.status for r in results} == {ResultStatus.ERRORED}
    assert all(
        r.error is not None and "line 1 is broken" in r.error.message and not r.error.retryable
        for r in results
    )
    assert backend.submitted_count == 1


# -- vendor failures -----------------------------------------------------------------------------


def test_transient_poll_and_fetch_failures_are_ridden_out(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.fail_next("poll_status", "rate_limit", times=6)
    backend.fail_next("fetch_results", "server_error", times=3)
    info = make_runner().run("fake", requests(3), config=cfg(backend, max_retries=0))
    assert info.all_succeeded
    assert backend.submitted_count == 1


def test_a_permanent_failure_stops_the_job_and_resume_finishes_it(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=cfg(backend))
    backend.fail_next("poll_status", "unauthorized")
    with pytest.raises(AuthenticationError):
        runner.drive(job_id, config=cfg(backend))
    info = runner.info(job_id)
    assert info.state == "error" and info.error and "401" in info.error
    info = make_runner().resume(job_id, config=cfg(backend))
    assert info.state == "finished" and info.all_succeeded
    assert backend.submitted_count == 1


# -- crashes at every step, then resume ------------------------------------------------------------


def crash_on(kind: JobEventKind, nth: int = 1) -> Callable[[JobEvent], None]:
    seen = [0]

    def observer(event: JobEvent) -> None:
        if event.kind is kind:
            seen[0] += 1
            if seen[0] == nth:
                raise Crash

    return observer


@pytest.mark.parametrize(
    ("kind", "nth"),
    [
        (JobEventKind.SUBMITTED, 1),  # first batch recorded, the others only prepared
        (JobEventKind.STATUS_CHANGED, 2),  # while polling
        (JobEventKind.RESULTS_FETCHED, 1),  # one batch fetched, the next not yet
    ],
)
def test_resume_after_a_crash_loses_nothing_and_submits_nothing_twice(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, kind: JobEventKind, nth: int
) -> None:
    crashing = make_runner(observers=[crash_on(kind, nth)])
    job_id = crashing.create("fake", requests(7), config=cfg(backend, max_requests_per_batch=3))
    with pytest.raises(Crash):
        crashing.drive(job_id, config=cfg(backend))
    crashing.store.release(job_id, crashing.store.acquire(job_id))  # the dead process's lease
    info = make_runner().resume(job_id, config=cfg(backend))
    assert info.all_succeeded
    assert backend.submitted_count == 3
    assert sorted(outcomes(make_runner(), job_id)) == [f"q{i}" for i in range(7)]


class CrashAfterCreate(FakeBatchProvider):
    """A provider whose process dies after the vendor created the batch but before the handle
    reached the store (the most expensive moment to crash)."""

    def submit(self, payload: BatchPayload) -> BatchHandle:
        super().submit(payload)
        raise Crash


def test_crash_between_create_and_record_reuses_the_created_batch(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(4), config=cfg(backend))
    with pytest.raises(Crash):
        runner.drive(job_id, provider=CrashAfterCreate(config=cfg(backend)))
    assert backend.submitted_count == 1
    info = make_runner().resume(job_id, config=cfg(backend))
    assert info.all_succeeded
    assert backend.submitted_count == 1


def test_crash_after_prepare_resubmits_from_the_stored_requests(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=cfg(backend))
    backend.fail_next("submit", Crash())
    with pytest.raises(Crash):
        runner.drive(job_id, config=cfg(backend))
    for file in (tmp_path / "payloads").glob("batchcore-*"):
        file.unlink()  # a reboot wiped the payload files
    info = make_runner().resume(job_id, config=cfg(backend))
    assert info.all_succeeded and backend.submitted_count == 1


# -- submit without waiting, cancel, leases -------------------------------------------------------


def test_submit_returns_once_batches_are_submitted(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.submit("fake", requests(4), config=cfg(backend, max_requests_per_batch=2))
    info = runner.info(job_id)
    assert info.state == "active" and backend.submitted_count == 2
    assert [b.batch_id for b in info.batches] == list(backend.batches)
    assert make_runner().resume(job_id, config=cfg(backend)).all_succeeded


def test_cancel_keeps_finished_results_and_resubmits_nothing(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    runner = make_runner()
    job_id = runner.submit("fake", requests(10), config=cfg(backend))
    backend.advance(10 + 50)  # validating done, half of the requests finished
    runner.cancel(job_id, config=cfg(backend))
    info = make_runner().resume(job_id, config=cfg(backend))
    assert info.state == "cancelled"
    statuses = Counter(outcomes(runner, job_id).values())
    assert statuses["succeeded"] >= 4 and statuses["cancelled"] >= 1
    assert sum(statuses.values()) == 10
    assert backend.submitted_count == 1


def test_cancel_before_submission_settles_everything_as_cancelled(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=cfg(backend))
    runner.cancel(job_id, config=cfg(backend))
    info = runner.resume(job_id, config=cfg(backend))
    assert info.state == "cancelled" and backend.submitted_count == 0
    assert set(outcomes(runner, job_id).values()) == {"cancelled"}


def test_a_job_run_by_a_live_process_is_refused(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(1), config=cfg(backend))
    other = JobStore(runner.store.path)
    with other.transaction() as db:
        db.execute(
            "UPDATE jobs SET owner='elsewhere.invalid:1', lease_until=1e12 WHERE id=?", (job_id,)
        )
    with pytest.raises(JobBusyError):
        runner.drive(job_id, config=cfg(backend))


def test_finished_jobs_are_not_driven_again(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    info = runner.run("fake", requests(2), config=cfg(backend))
    calls = backend.call_count()
    assert runner.resume(info.id, config=cfg(backend)).state == "finished"
    assert backend.call_count() == calls


def test_observer_errors_never_break_a_job(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    def broken(event: JobEvent) -> None:
        raise RuntimeError("observer bug")

    info = make_runner(observers=[broken]).run("fake", requests(2), config=cfg(backend))
    assert info.all_succeeded


def test_job_info_serialises(make_runner: Callable[..., BatchRunner], backend: FakeBackend) -> None:
    import json

    info = make_runner().run("fake", requests(2), config=cfg(backend))
    data = json.loads(json.dumps(info.to_dict()))
    assert data["id"] == info.id and data["state"] == "finished"
    assert data["batches"][0]["status"]["state"] == "completed"


class ReturnsNothing(FakeBatchProvider):
    """A provider that returns no result lines at all (as OpenAI does for a failed batch)."""

    def fetch_results(self, handle: BatchHandle):  # type: ignore[no-untyped-def, override]
        return iter(())


@pytest.mark.parametrize(
    ("setup", "status", "code", "retryable"),
    [
        (lambda b: b.reject_next_batch(message="bad line 3"), "errored", "batch_failed", False),
        (lambda b: None, "errored", "result_missing", True),
    ],
)
def test_requests_without_a_returned_result_still_get_one(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    setup: Callable[[FakeBackend], None],
    status: str,
    code: str,
    retryable: bool,
) -> None:
    setup(backend)
    runner = make_runner(max_attempts=1)
    provider = ReturnsNothing(config=cfg(backend))
    info = runner.run(provider, requests(2))
    results = list(runner.results(info.id))
    assert [r.custom_id for r in results] == ["q0", "q1"]
    assert all(
        r.status.value == status
        and r.error is not None
        and r.error.code == code
        and r.error.retryable is retryable
        for r in results
    )
    if code == "batch_failed":
        assert "bad line 3" in results[0].error.message  # type: ignore[union-attr]


# -- trust: one batch per payload, storms impossible, waits bounded, settings kept -----------------


class CrashWhileCreating(FakeBatchProvider):
    """The process dies after the create left, before its answer (or the handle) came back:
    the journal has recorded the attempt, the vendor has made the batch."""

    def create_batch(self, payload: BatchPayload, **kwargs: Any) -> BatchHandle:
        super().create_batch(payload, **kwargs)
        raise Crash


def test_a_crash_mid_create_is_reconciled_without_an_idempotency_key(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    config = cfg(backend, idempotent_submit=False)
    runner = make_runner()
    job_id = runner.create("fake", requests(4), config=config)
    with pytest.raises(Crash):
        runner.drive(job_id, provider=CrashWhileCreating(config=config))
    (batch,) = runner.store.batches(job_id)
    assert batch.attempted_at is not None and batch.state == "prepared"
    clock.advance(5)
    info = make_runner().resume(job_id, config=config)
    assert info.all_succeeded and backend.batch_count() == 1


def test_a_lost_create_with_two_candidates_waits_for_a_human_and_resolve_continues(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    config = cfg(backend, idempotent_submit=False)
    other = make_runner().submit("fake", requests(3, prefix="other"), config=config)
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=config)
    runner.store.database.execute("DELETE FROM batches WHERE job_id=?", (other,))  # forgotten
    backend.lose_next_create()
    with pytest.raises(JobAttentionError, match=f"batchcore resolve {job_id}"):
        runner.drive(job_id, config=config)
    assert backend.batch_count() == 2  # nothing was created again
    info = runner.info(job_id)
    assert info.state == "attention"
    (candidates,) = [b.candidates for b in info.batches]
    assert len(candidates) == 2
    with pytest.raises(JobAttentionError):
        runner.resume(job_id, config=config)
    mine = max(candidates, key=lambda b: backend.batch(b).created_at)
    runner.resolve(job_id, adopt=mine, config=config)
    info = make_runner().resume(job_id, config=config)
    assert info.all_succeeded and backend.batch_count() == 2
    assert [e.kind for e in runner.store.events(job_id)] == ["attention", "resolved"]


def test_resolve_resubmit_creates_the_batch_again(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    config = cfg(backend, idempotent_submit=False)
    other = make_runner().submit("fake", requests(3, prefix="other"), config=config)
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=config)
    runner.store.database.execute("DELETE FROM batches WHERE job_id=?", (other,))
    backend.lose_next_create()
    with pytest.raises(JobAttentionError):
        runner.drive(job_id, config=config)
    runner.resolve(job_id, resubmit=True, config=config)
    assert make_runner().resume(job_id, config=config).all_succeeded
    assert backend.batch_count() == 3


class SplitsIds(FakeBatchProvider):
    """A provider whose payload names ids that are not the job's (how a line break in an id
    once split it in two): the runner must refuse to submit, not loop."""

    def prepare_payloads(self, requests: Any) -> list[BatchPayload]:
        payloads = super().prepare_payloads(requests)
        for payload in payloads:
            assert payload.ids_path is not None
            payload.ids_path.write_text('"not-a-request"\n' * payload.request_count)
        return payloads


def test_a_batch_whose_requests_cannot_be_assigned_stops_the_job_before_any_create(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    with pytest.raises(JoinError, match="matched 0 pending requests"):
        runner.create(SplitsIds(config=cfg(backend)), requests(2))
    assert backend.batch_count() == 0 and runner.jobs() == []


class RenamesIds(FakeBatchProvider):
    """A vendor that hands results back under other custom_ids."""

    def read_results(self, handle: BatchHandle, status: Any) -> Any:
        for result in super().read_results(handle, status):
            yield attrs.evolve(result, custom_id=result.custom_id + "-renamed")


def test_results_that_cannot_be_joined_stop_the_job_instead_of_paying_again(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(3), config=cfg(backend))
    with pytest.raises(JoinError, match="cannot be joined"):
        runner.drive(job_id, provider=RenamesIds(config=cfg(backend)))
    assert backend.batch_count() == 1 and runner.info(job_id).state == "error"


def test_a_retry_after_beyond_the_cap_stops_the_job_at_once_and_says_when(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    backend.fail_next("poll_status", RateLimitError("slow down", retry_after=1e9), times=10)
    started = clock.now()
    with pytest.raises(JobStoppedError, match=r"asked to wait .* longer than the 1.0 h"):
        runner.drive(job_id, config=cfg(backend))
    assert clock.now() - started < 3600  # it did not sit out the wait
    assert runner.info(job_id).state == "error"


def test_a_long_retry_after_is_a_visible_postponement(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    events: list[JobEvent],
) -> None:
    backend.fail_next("poll_status", RateLimitError("slow down", retry_after=600), times=1)
    info = make_runner().run("fake", requests(2), config=cfg(backend, max_retries=0))
    assert info.all_succeeded
    (waiting,) = [e for e in events if e.kind is JobEventKind.WAITING]
    assert "next try at" in (waiting.detail or "") and "slow down" in (waiting.detail or "")


def test_a_step_that_keeps_failing_stops_the_job_after_the_documented_number_of_tries(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner(retry=RetryPolicy(max_retries=0, max_postponements=3))
    job_id = runner.create("fake", requests(2), config=cfg(backend, max_retries=0))
    backend.fail_next("poll_status", "server_error", times=100)
    polls_before = backend.calls.count("poll_status")
    with pytest.raises(JobStoppedError, match="failed 4 times in a row"):
        runner.drive(job_id, config=cfg(backend, max_retries=0))
    assert backend.calls.count("poll_status") - polls_before == 4  # 1 + 3 postponements


def test_settings_are_recorded_with_the_job_and_used_by_resume(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, events: list[JobEvent]
) -> None:
    runner = make_runner(max_attempts=10, poll=PollSchedule(min_interval=2, max_interval=9))
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    plain = BatchRunner(runner.store, registry=runner.registry, clock=runner.clock)
    settings = plain.settings(job_id)
    assert settings.max_attempts == 10 and settings.poll.max_interval == 9
    events.clear()
    make_runner(max_attempts=2).resume(job_id, config=cfg(backend))
    assert JobSettings.from_options(runner.store.job(job_id).options).max_attempts == 2
    (notice,) = [e for e in events if e.kind is JobEventKind.NOTICE]
    assert (notice.detail or "").startswith("given again: max attempts 10 -> 2")


def test_a_live_driver_keeps_its_lease_through_a_long_step(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    in_fetch, release = threading.Event(), threading.Event()

    class StalledDownload(FakeBatchProvider):
        def read_results(self, handle: BatchHandle, status: Any) -> Any:
            in_fetch.set()
            release.wait(timeout=30)
            yield from super().read_results(handle, status)

    runner = make_runner(lease_seconds=0.8)
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    driver = threading.Thread(
        target=runner.drive,
        args=(job_id,),
        kwargs={"provider": StalledDownload(config=cfg(backend))},
    )
    driver.start()
    try:
        assert in_fetch.wait(timeout=30)
        deadline = time.time() + 1.6  # twice the lease: it would have expired without beats
        while time.time() < deadline:
            with pytest.raises(JobBusyError):
                make_runner().store.acquire(job_id, me="elsewhere:1")  # another host
            time.sleep(0.2)
    finally:
        release.set()
        driver.join(timeout=30)
    assert runner.info(job_id).all_succeeded
    assert [e.kind for e in runner.store.events(job_id)] == []  # never taken over


# -- deadlines, reused answers, usage ------------------------------------------------------------


def test_a_deadline_cancels_open_batches_keeps_finished_results_and_starts_no_round(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    backend.script("q0", Outcome.error("server_error", retryable=True))  # would go again
    runner = make_runner()
    # Batches take 120 s (10 + 100 + 10); the deadline falls in the middle of processing.
    job_id = runner.create("fake", requests(4), config=cfg(backend), deadline=timedelta(seconds=60))
    info = runner.drive(job_id, config=cfg(backend))
    assert info.state == "cancelled"
    results = {r.custom_id: r for r in runner.results(job_id)}
    assert set(results) == {"q0", "q1", "q2", "q3"}
    unfinished = [r for r in results.values() if r.status is ResultStatus.CANCELLED]
    assert unfinished and all(r.error and r.error.code == "deadline_exceeded" for r in unfinished)
    assert any(r.ok for r in results.values())  # paid-for results are kept
    assert backend.batch_count() == 1  # no round after the deadline
    assert "deadline" in [e.kind for e in runner.store.events(job_id)]


def test_a_worker_honours_a_deadline_while_batches_are_in_flight(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    runner = make_runner()
    job_id = runner.submit("fake", requests(3), config=cfg(backend))
    runner.store.database.execute(
        "UPDATE jobs SET deadline=? WHERE id=?", (clock.now() + 30, job_id)
    )
    clock.advance(31)
    claim = runner.store.claim_next("w", seconds=60, now=clock.now())
    assert claim is not None and claim.batch_row is None  # the job step notices the deadline
    runner.work(claim, FakeBatchProvider(config=cfg(backend)))
    assert runner.store.job(job_id).cancel_reason == "deadline"


def test_answers_are_reused_across_jobs_only_when_asked(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, events: list[JobEvent]
) -> None:
    runner = make_runner()
    first = runner.run("fake", requests(3), config=cfg(backend))
    assert first.all_succeeded and backend.batch_count() == 1
    again = runner.run("fake", requests(3), config=cfg(backend))  # not asked: sent again
    assert backend.batch_count() == 2
    events.clear()
    new = BatchRequest(
        custom_id="new0", model="fake-model", messages=[{"role": "user", "content": "unseen"}]
    )
    info = runner.run("fake", [*requests(3), new], config=cfg(backend), reuse_results=True)
    assert info.all_succeeded and info.request_count == 4
    assert backend.batch_count() == 3  # one batch, for the one new request only
    results = {r.custom_id: r for r in runner.results(info.id)}
    assert results["q1"].reused_from is not None
    assert results["q1"].text == next(
        r.text for r in runner.results(first.id) if r.custom_id == "q1"
    )
    assert results["new0"].reused_from is None
    assert any("3 of 4 requests answered" in (e.detail or "") for e in events)
    everything = runner.run("fake", requests(3), config=cfg(backend), reuse_results=True)
    assert everything.all_succeeded and backend.batch_count() == 3  # nothing to send at all
    assert again.all_succeeded


def test_a_failed_answer_is_never_reused(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    backend.script("q0", Outcome.error("invalid_prompt", retryable=False))
    runner = make_runner()
    runner.run("fake", requests(1), config=cfg(backend))
    backend.script("q0", Outcome.succeed("fine now"))
    info = runner.run("fake", requests(1), config=cfg(backend), reuse_results=True)
    assert info.all_succeeded and backend.batch_count() == 2


def test_usage_is_kept_per_batch_by_the_model_that_answered(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner()
    info = runner.run("fake", requests(3), config=cfg(backend))
    (batch,) = runner.store.batches(info.id)
    (usage,) = batch.usage.values()
    assert usage["requests"] == 3 and usage["input"] > 0 and usage["output"] > 0
    cost = runner.cost(info.id)  # the fake's model has no price: said so, nothing invented
    assert cost.cost_usd is None and (cost.unknown_prices or cost.pricing_error)


# -- the vendor's queue: admission, not failure --------------------------------------------------


class QueuedFake(FakeBatchProvider):
    """A vendor that lets 6 requests wait at once, and says so when it refuses."""

    PROVIDER_NAME = "queued"
    QUEUE_LIMIT = QueueLimit(measure="requests", per_model=False, default=6)
    CAPACITY_ERROR_CODES = frozenset({"token_limit_exceeded"})


def queued_runner(make_runner: Callable[..., BatchRunner], **kwargs: Any) -> BatchRunner:
    runner = make_runner(**kwargs)
    runner.registry.register(QueuedFake)
    return runner


def test_a_big_job_waits_for_room_in_the_queue_in_waves(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    events: list[JobEvent],
) -> None:
    backend.queue_requests = 6  # the vendor admits 3 batches of 2 at a time
    runner = queued_runner(make_runner, max_attempts=1)
    started = clock.now()
    info = runner.run("queued", requests(24), config=cfg(backend, max_requests_per_batch=2))
    assert info.all_succeeded and backend.batch_count() == 12
    assert backend.queue_high_water <= 6  # never refused: admitted in waves
    ids = [r.custom_id for r in runner.results(info.id)]
    assert ids == [f"q{i}" for i in range(24)]
    waiting = [e for e in events if e.kind is JobEventKind.WAITING]
    assert waiting and "waiting for room" in (waiting[0].detail or "")
    # Four waves of batches that take 120 s each, plus polling slack: close to the ideal.
    assert clock.now() - started < 4 * 120 * 1.6


@pytest.mark.parametrize("refusal", ["create", "validate"])
def test_a_capacity_refusal_costs_no_attempt_and_lowers_the_cap(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, refusal: str
) -> None:
    backend.queue_requests = 6
    backend.queue_refusal = refusal
    runner = queued_runner(make_runner, max_attempts=1)  # one lost attempt would fail requests
    config = cfg(backend, max_requests_per_batch=2, max_enqueued_requests=100)
    info = runner.run("queued", requests(16), config=config)
    assert info.all_succeeded
    assert runner.store.queue_cap("queued", "*") is not None  # learned from the refusal
    assert "queue_full" in [e.kind for e in runner.store.events(info.id)]
