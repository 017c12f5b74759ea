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
    Progress,
    RequestState,
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
    # Both were submitted at once (submit_concurrency): which the vendor saw first is open.
    assert sorted(b.batch_id for b in info.batches) == sorted(backend.batches)
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


def mixed(n: int) -> list[BatchRequest]:
    """Requests of two models in turn: each model's batches hold every other request."""
    return [
        BatchRequest(
            custom_id=f"q{i}",
            model=("fake-a", "fake-b")[i % 2 if i < n - 3 else 0],
            messages=[{"role": "user", "content": f"question {i}"}],
        )
        for i in range(n)
    ]


class Reverses(FakeBatchProvider):
    """A provider whose payloads list their requests in reverse order."""

    def prepare_payloads(self, requests: Any) -> list[BatchPayload]:
        return super().prepare_payloads(reversed(list(requests)))


@pytest.mark.parametrize("provider", [FakeBatchProvider, Reverses])
def test_the_first_round_assigns_each_request_to_the_batch_its_payload_names(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, provider: type
) -> None:
    runner = make_runner()
    instance = provider(config=cfg(backend, max_requests_per_batch=4))
    job_id = runner.create(instance, mixed(13))
    batches = runner.store.batches(job_id)
    held = [list(runner.store.iter_requests(job_id, batch_row=b.row)) for b in batches]
    assert [len(h) for h in held] == [b.request_count for b in batches] == [4, 4, 4, 1]
    assert all(len({r.model for r in h}) == 1 for h in held)  # one model's requests each
    assert sorted(r.custom_id for h in held for r in h) == sorted(f"q{i}" for i in range(13))
    assert runner.store.count_requests(job_id) == {RequestState.ASSIGNED: 13}
    info = runner.drive(job_id, provider=instance)
    # Every result joined the batch that asked for it: nothing was sent twice.
    assert info.all_succeeded and backend.submitted_count == 4
    assert set(attempts(runner, job_id).values()) == {1}


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


def bounded(clock: ManualClock, days: float = 3) -> Callable[[float], None]:
    """The clock's sleep, failing the test once the job has run *days* of simulated time: a
    job that would loop forever fails instead of hanging."""
    horizon = clock.now() + days * 86_400

    def sleep(seconds: float) -> None:
        if clock.now() > horizon:
            raise AssertionError(f"the job was still running after {days} days")
        clock.sleep(seconds)

    return sleep


def attempts(runner: BatchRunner, job_id: str) -> dict[str, int]:
    rows = runner.store.database.query(
        "SELECT custom_id, attempts FROM requests JOIN jobs ON key = job WHERE id=?", (job_id,)
    )
    return {r["custom_id"]: r["attempts"] for r in rows}


def test_a_refusal_at_create_goes_back_through_admission(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    # The vendor holds 3 batches of 2; the config says 100 requests: the first refusal teaches
    # the cap, and the refused batch then waits its turn instead of retrying its create.
    backend.queue_requests = 6
    # One submit at a time: how many creates race the first refusal is the thread pool's
    # business; what is asserted here is that the lesson is kept.
    runner = queued_runner(make_runner, max_attempts=1, submit_concurrency=1)
    runner.sleep = bounded(clock)
    config = cfg(
        backend, max_requests_per_batch=2, max_enqueued_requests=100, idempotent_submit=False
    )
    info = runner.run("queued", requests(40), config=config)
    assert info.all_succeeded and backend.batch_count() == 20
    creates = backend.calls.count("submit")
    call_tries = 1 + RetryPolicy().max_retries  # one refusal is this many calls
    # The first refusal only, never one per batch.
    assert creates - backend.batch_count() <= call_tries
    assert "list_batches" not in backend.calls  # a refused create is not reconciled
    assert set(attempts(runner, info.id).values()) == {1}


def test_a_batch_over_the_cap_alone_is_split_under_it(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    events: list[JobEvent],
) -> None:
    backend.queue_requests = 6  # what the vendor holds, and the declared cap
    runner = queued_runner(make_runner, max_attempts=1)
    runner.sleep = bounded(clock)
    info = runner.run("queued", requests(20), config=cfg(backend, max_requests_per_batch=10))
    assert info.all_succeeded
    assert [b.request_count for b in runner.store.batches(info.id)] == [6, 6, 6, 2]
    assert backend.batch_count() == 4 and backend.queue_high_water <= 6
    assert "queue_full" not in [e.kind for e in runner.store.events(info.id)]
    # The split is the provider's own (under BatchLimits), given the room in the queue.
    provider = QueuedFake(config=cfg(backend, max_requests_per_batch=10))
    assert [p.request_count for p in provider.prepare_payloads(requests(8))] == [8]
    with provider.queue_room(lambda model: 6):
        assert [p.request_count for p in provider.prepare_payloads(requests(8))] == [6, 2]


def test_a_provider_that_ignores_the_queue_room_stops_the_job_instead_of_looping(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    class Unsplit(QueuedFake):
        PROVIDER_NAME = "unsplit"

        def prepare_payloads(self, requests: Any) -> list[BatchPayload]:
            with self.queue_room(lambda model: None):  # its own split, blind to the queue
                return super().prepare_payloads(requests)

    runner = make_runner()
    runner.registry.register(Unsplit)
    runner.sleep = bounded(clock)
    with pytest.raises(JobStoppedError, match=r"must split under BaseBatchProvider\.queue_room"):
        runner.run("unsplit", requests(10), config=cfg(backend, max_requests_per_batch=10))
    assert backend.batch_count() == 0


@pytest.mark.parametrize("refusal", ["create", "validate"])
def test_a_refusal_with_nothing_of_ours_queued_halves_the_next_batches(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    refusal: str,
) -> None:
    # The account's real queue holds 3 requests; the config says 100 and batches hold 10.
    backend.queue_requests = 3
    backend.queue_refusal = refusal
    runner = queued_runner(make_runner, max_attempts=1)
    runner.sleep = bounded(clock)
    config = cfg(backend, max_requests_per_batch=10, max_enqueued_requests=100)
    info = runner.run("queued", requests(20), config=config)
    assert info.all_succeeded  # with max_attempts=1: no refusal cost an attempt
    assert backend.queue_high_water <= 3
    assert runner.store.queue_cap("queued", "*") == 2  # 10 -> 5 -> 2 (halved twice)
    events = runner.store.events(info.id)
    # Prepared batches over the cap in force are planned again, smaller: 10 -> 5 -> 2, 2, 1.
    assert 1 <= len([e for e in events if e.kind == "queue_split"]) <= 4
    refused = len([e for e in events if e.kind == "queue_full"])
    assert refused <= 4
    # Bounded: at most the batches of the learned size the job needs, plus those refused.
    assert backend.batch_count() <= 12 + (refused if refusal == "validate" else 0)


@pytest.mark.parametrize("refusal", ["create", "validate"])
def test_a_queue_that_never_has_room_stops_the_job_without_charging_an_attempt(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    events: list[JobEvent],
    refusal: str,
) -> None:
    backend.queue_requests = 0  # other work fills the account's queue
    backend.queue_refusal = refusal
    runner = queued_runner(make_runner, max_attempts=1)
    runner.sleep = bounded(clock)
    config = cfg(backend, max_enqueued_requests=100)
    job_id = runner.create("queued", requests(2), config=config)
    started = clock.now()
    with pytest.raises(JobStoppedError, match="refused 9 batches in a row") as stopped:
        runner.drive(job_id, config=config)
    assert f"batchcore resume {job_id}" in str(stopped.value)
    assert runner.info(job_id).state == "error"
    # Bounded: the retry policy's postponements between refusals, never a storm of batches.
    limit = RetryPolicy().max_postponements
    assert backend.batch_count() <= (limit + 1 if refusal == "validate" else 0)
    refused = [e for e in runner.store.events(job_id) if e.kind == "queue_full"]
    # The job's two single-request batches may be refused at the same moment: one more.
    assert limit + 1 <= len(refused) <= limit + 2
    assert clock.now() - started < 2 * 3600
    assert set(attempts(runner, job_id).values()) <= {0, 1}  # at most the batch it waits in
    # Room comes back: the job resumes and every request runs on its first attempt.
    backend.queue_requests = None
    info = runner.drive(job_id, config=config)
    assert info.all_succeeded and set(attempts(runner, job_id).values()) == {1}


def test_a_single_request_over_the_configured_cap_is_refused_before_anything_is_recorded(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    class TokenQueued(FakeBatchProvider):
        PROVIDER_NAME = "token-queued"
        QUEUE_LIMIT = QueueLimit(measure="tokens", per_model=True, default=50)

    runner = make_runner()
    runner.registry.register(TokenQueued)
    long = attrs.evolve(
        requests(1, "long")[0], messages=[{"role": "user", "content": "word " * 200}]
    )
    with pytest.raises(InvalidRequestError, match="max_enqueued_tokens") as refused:
        runner.create("token-queued", [*requests(2), long], config=cfg(backend))
    assert refused.value.custom_id == "long0"
    assert "raise max_enqueued_tokens" in str(refused.value)
    assert runner.jobs() == []
    # Under the cap, batches are split by the estimated tokens they put in the queue.
    provider = TokenQueued(config=cfg(backend))
    (one,) = provider.prepare_payloads(requests(1))
    fit = 50 // one.tokens
    with provider.queue_room(lambda model: 50):
        payloads = provider.prepare_payloads(requests(2 * fit + 1))
    assert [p.request_count for p in payloads] == [fit, fit, 1]
    assert all(p.tokens <= 50 for p in payloads)


def test_each_model_gets_its_own_declared_queue_cap_unless_config_sets_one(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    class PerModelCaps(FakeBatchProvider):
        PROVIDER_NAME = "per-model-caps"
        SUPPORTED_MODELS = ("fake-*", "big-*")
        QUEUE_LIMIT = QueueLimit(
            measure="requests", per_model=True, default=2, model_defaults=(("big-*", 5),)
        )

    runner = make_runner()
    runner.registry.register(PerModelCaps)
    mixed = [*requests(6, "s"), *(attrs.evolve(r, model="big-1") for r in requests(6, "b"))]
    job_id = runner.create("per-model-caps", mixed, config=cfg(backend))
    sizes = sorted((b.model, b.request_count) for b in runner.store.batches(job_id))
    assert sizes == [
        ("big-1", 1),
        ("big-1", 5),
        ("fake-model", 2),
        ("fake-model", 2),
        ("fake-model", 2),
    ]
    configured = runner.create(
        "per-model-caps", mixed, config=cfg(backend, max_enqueued_requests=3)
    )
    sizes = sorted((b.model, b.request_count) for b in runner.store.batches(configured))
    assert sizes == [("big-1", 3), ("big-1", 3), ("fake-model", 3), ("fake-model", 3)]


def test_planning_reads_pending_requests_once_while_another_worker_settles(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(4), config=cfg(backend, max_requests_per_batch=2))
    first, second = runner.store.batches(job_id)
    runner.store.abandon_batch(job_id, first.row)  # q0, q1 pending: a round to plan

    class SettlesMeanwhile(FakeBatchProvider):
        def prepare_payloads(self, requests: Any) -> list[BatchPayload]:
            # Another worker settles a batch while this one plans: q2, q3 are pending too now.
            with JobStore(tmp_path / "jobs.sqlite3") as other:
                other.abandon_batch(job_id, second.row)
            return super().prepare_payloads(requests)

    provider = SettlesMeanwhile(config=cfg(backend))
    assert runner._job_step(runner.store.job(job_id), provider) is None  # no JoinError
    assert runner.store.count_requests(job_id) == {RequestState.ASSIGNED: 4}
    info = runner.drive(job_id, config=cfg(backend))
    assert info.all_succeeded and sorted(outcomes(runner, job_id)) == ["q0", "q1", "q2", "q3"]


def test_a_learned_cap_recovers_and_a_new_config_value_replaces_it(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, clock: ManualClock
) -> None:
    backend.queue_requests = 6
    runner = queued_runner(make_runner, max_attempts=1)
    runner.sleep = bounded(clock)
    config = cfg(backend, max_requests_per_batch=2, max_enqueued_requests=100)
    runner.run("queued", requests(16), config=config)
    store = runner.store
    learned = store.queue_cap("queued", "*", configured=100)
    assert learned is not None and learned <= 6
    # A new explicit value is the user's word: the learned cap does not override it.
    assert store.queue_cap("queued", "*", configured=1000) is None
    # ... and it expires: the configured cap is tried again, and a refusal teaches it anew.
    clock.advance(store.LEARNED_CAP_SECONDS + 1)
    assert store.queue_cap("queued", "*", configured=100) is None
    backend.queue_requests = 12  # the account moved up a tier
    info = runner.run("queued", requests(24, "r"), config=config)
    assert info.all_succeeded and backend.queue_high_water > 6


class InFlight:
    """Counts creates running at once; *meet* of them must be running together before any
    returns (a barrier: only concurrent creates pass it)."""

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
            # A guard against a hang, not a measurement: a serial run never meets here.
            self.barrier.wait(timeout=60)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def counting_provider(flight: InFlight) -> type[FakeBatchProvider]:
    class Counting(FakeBatchProvider):
        PROVIDER_NAME = "counting"

        def create_batch(self, payload: BatchPayload, **kwargs: Any) -> BatchHandle:
            with flight:
                return super().create_batch(payload, **kwargs)

    return Counting


@pytest.mark.parametrize("width", [1, 4])
def test_submit_concurrency_bounds_the_uploads_and_creates_under_way(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, width: int
) -> None:
    flight = InFlight(meet=width)
    runner = make_runner(submit_concurrency=width)
    runner.registry.register(counting_provider(flight))
    info = runner.run("counting", requests(8), config=cfg(backend, max_requests_per_batch=1))
    assert info.all_succeeded and backend.batch_count() == 8
    assert flight.most == width
    assert runner.settings(info.id).submit_concurrency == width  # recorded with the job
    assert runner.store.job(info.id).options["submit_concurrency"] == width


def test_progress_and_status_show_the_batches_waiting_for_capacity_and_why(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    import io

    from batchcore.cli import main

    backend.queue_requests = 6
    runner = queued_runner(make_runner, max_attempts=1)
    seen: list[Progress] = []
    statuses: list[str] = []
    job_id = runner.create("queued", requests(12), config=cfg(backend, max_requests_per_batch=2))

    def observe(progress: Progress) -> None:
        seen.append(progress)
        if progress.waiting == 3 and not statuses:
            out = io.StringIO()
            main(["--store", str(tmp_path / "jobs.sqlite3"), "status", job_id], stdout=out)
            statuses.append(out.getvalue())

    runner.drive(job_id, config=cfg(backend), on_progress=observe)
    most = max(seen, key=lambda p: p.waiting)
    assert most.waiting == 3  # 6 batches of 2, the queue holds 3 of them
    # Counted apart from the admitted ones (prepared, being uploaded, or submitted).
    assert most.batches["waiting"] == 3 and sum(most.batches.values()) == 6
    assert most.batches.get("prepared", 0) + most.batches.get("submitted", 0) == 3
    assert most.waiting_reason is not None and "waiting for room" in most.waiting_reason
    (status,) = statuses
    waits = [line for line in status.splitlines() if "waiting for capacity" in line]
    assert len(waits) == 3, status
    assert "next try by" in waits[0] and "waiting for room in queued's queue" in waits[0]
    assert seen[-1].waiting == 0 and runner.info(job_id).waiting == 0


# -- sandbox answers, reuse savings, costs in events -----------------------------------------------


def test_sandbox_answers_are_never_reused_and_a_sandbox_job_reuses_nothing(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, events: list[JobEvent]
) -> None:
    runner = make_runner()

    def run_sandboxed(**kwargs: Any) -> Any:
        job_id = runner.create("fake", requests(2), config=cfg(backend), **kwargs)
        return runner.drive(job_id, config=cfg(backend))

    # The same provider and server for both: only the sandbox flag tells them apart.
    sandbox = run_sandboxed(options={"sandbox": True})
    assert sandbox.sandbox and sandbox.all_succeeded and backend.batch_count() == 1
    rows = runner.store.database.query("SELECT job_id FROM answers")
    assert [r["job_id"] for r in rows] == []  # an invented answer is never kept for reuse
    real = runner.run("fake", requests(2), config=cfg(backend), reuse_results=True)
    assert real.all_succeeded and backend.batch_count() == 2  # asked the vendor, reused nothing
    assert all(r.reused_from is None for r in runner.results(real.id))
    # The reverse: real answers exist now, and a sandbox job still does not borrow them.
    events.clear()
    again = run_sandboxed(options={"sandbox": True}, reuse_results=True)
    assert again.all_succeeded and backend.batch_count() == 3
    assert all(r.reused_from is None for r in runner.results(again.id))
    assert any("sandbox job reuses no answers" in (e.detail or "") for e in events)


def test_an_answer_from_another_server_is_not_reused(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    class Declares(FakeBatchProvider):
        ANSWER_CONFIG_KEYS = frozenset({"api_version"})
        CONFIG_KEYS = FakeBatchProvider.CONFIG_KEYS | {"api_version"}

    one = Declares(config=cfg(backend, base_url="http://one.example/v1"))
    other = Declares(config=cfg(backend, base_url="http://other.example/v1/"))
    (request,) = requests(1)
    # A plugin that names its own answer-changing keys still gets the server for free.
    assert one.fingerprint(request) != other.fingerprint(request)
    slash = Declares(config=cfg(backend, base_url="http://one.example/v1/"))
    assert one.fingerprint(request) == slash.fingerprint(request)
    versioned = Declares(config=cfg(backend, base_url="http://one.example/v1", api_version="2"))
    assert one.fingerprint(request) != versioned.fingerprint(request)
    # A value the provider resolved itself (from the environment, a default) counts as used.
    resolved = Declares(config=cfg(backend, base_url="http://one.example/v1"))
    resolved.api_version = "from-the-environment"  # type: ignore[attr-defined]
    assert resolved.fingerprint(request) != one.fingerprint(request)

    runner = make_runner()
    runner.run("fake", requests(2), config=cfg(backend, base_url="http://one.example/v1"))
    info = runner.run(
        "fake",
        requests(2),
        config=cfg(backend, base_url="http://other.example/v1"),
        reuse_results=True,
    )
    assert backend.batch_count() == 2 and info.all_succeeded
    assert all(r.reused_from is None for r in runner.results(info.id))


class PricedFake(FakeBatchProvider):
    """The fake vendor under a name and model genai-prices prices (OpenAI's gpt-4o-mini)."""

    PROVIDER_NAME = "openai"
    SUPPORTED_MODELS = ("gpt-4o-mini",)


def priced(n: int, prefix: str = "p") -> list[BatchRequest]:
    return [attrs.evolve(r, model="gpt-4o-mini") for r in requests(n, prefix)]


@pytest.fixture
def priced_runner(make_runner: Callable[..., BatchRunner]) -> BatchRunner:
    pytest.importorskip("genai_prices", reason="prices need batchcore[cost] (Python 3.11+)")
    runner = make_runner()
    runner.registry.register(PricedFake)
    return runner


def test_reuse_says_what_it_saved_and_cost_reports_it(
    priced_runner: BatchRunner, backend: FakeBackend, events: list[JobEvent]
) -> None:
    first = priced_runner.run("openai", priced(3), config=cfg(backend))
    paid = priced_runner.cost(first.id)
    assert paid.cost_usd and paid.cost_usd > 0 and paid.reused_requests == 0
    events.clear()
    info = priced_runner.run("openai", priced(3), config=cfg(backend), reuse_results=True)
    assert backend.batch_count() == 1 and info.all_succeeded
    cost = priced_runner.cost(info.id)
    assert cost.reused_requests == 3
    assert cost.saved_by_reuse_usd == paid.cost_usd  # the same usage, the same model and rates
    assert cost.to_dict()["saved_by_reuse_usd"] == float(paid.cost_usd)
    (notice,) = [e for e in events if "answered by earlier jobs" in (e.detail or "")]
    assert "saving $" in (notice.detail or "")
    (recorded,) = [e for e in priced_runner.store.events(info.id) if e.kind == "reused"]
    assert recorded.detail == notice.detail
    # Another process reads the same saving from the store.
    fresh = BatchRunner(priced_runner.store, registry=priced_runner.registry)
    assert fresh.cost(info.id).saved_by_reuse_usd == paid.cost_usd


def test_events_carry_the_cost_so_far_and_it_never_goes_back_to_unknown(
    priced_runner: BatchRunner, backend: FakeBackend, events: list[JobEvent]
) -> None:
    backend.script("p0", Outcome.error("server_error", retryable=True))  # a second round
    seen: list[float | None] = []
    info = priced_runner.run(
        "openai",
        priced(3),
        config=cfg(backend),
        on_progress=lambda progress: seen.append(progress.cost_usd),
    )
    assert info.state == "finished"
    first_fetch = next(i for i, e in enumerate(events) if e.kind is JobEventKind.RESULTS_FETCHED)
    assert all(e.cost_usd is None for e in events[:first_fetch])  # nothing fetched, nothing paid
    later = events[first_fetch:]
    assert {e.kind for e in later} >= {JobEventKind.RETRIED, JobEventKind.SUBMITTED}
    assert all(e.cost_usd is not None and e.cost_usd > 0 for e in later)
    costs = [e.cost_usd or 0.0 for e in later]
    assert costs == sorted(costs)  # rounds add up, never reset
    assert seen[first_fetch:] == costs  # on_progress sees the same numbers
    total = priced_runner.cost(info.id).cost_usd
    assert total is not None and later[-1].cost_usd == pytest.approx(float(total))
    assert later[-1].to_dict()["cost_usd"] == later[-1].cost_usd
    # Each batch says what it cost; together, what the job cost.
    batches = priced_runner.info(info.id).batches
    assert [b.round for b in batches] == [1, 2, 3]  # p0 fails every round
    assert batches[0].cost_usd and batches[0].cost_usd > 0
    assert [b.cost_usd for b in batches[1:]] == [0.0, 0.0]  # errors reported no usage
    assert sum(b.cost_usd or 0 for b in batches) == pytest.approx(float(total))
    assert [b.to_dict()["cost_usd"] for b in batches] == [b.cost_usd for b in batches]


def test_a_round_that_would_cross_the_budget_ends_its_requests_instead_of_sending(
    priced_runner: BatchRunner, backend: FakeBackend, events: list[JobEvent]
) -> None:
    backend.script("p0", Outcome.error("server_error", retryable=True))  # wants a second round
    backend.script("p1", Outcome.succeed("word " * 200_000))  # a long answer spends the budget
    bound = priced_runner.estimate("openai", priced(3), config=cfg(backend)).cost_usd_max
    assert bound is not None
    budget = str(bound * 2)  # the job fits; its first round's answers eat the rest
    info = priced_runner.run("openai", priced(3), config=cfg(backend), budget_usd=budget)
    assert info.state == "finished"
    assert backend.batch_count() == 1  # the second round was never submitted
    results = {r.custom_id: r for r in priced_runner.results(info.id)}
    assert set(results) == {"p0", "p1", "p2"}
    stopped = results["p0"]
    assert stopped.status is ResultStatus.ERRORED and stopped.error is not None
    assert stopped.error.code == "budget_exhausted" and not stopped.retryable
    assert f"budget of ${budget}" in stopped.error.message
    assert results["p1"].ok and results["p2"].ok  # what was paid for is kept
    (why,) = [e for e in priced_runner.store.events(info.id) if e.kind == "budget"]
    assert "would be crossed" in (why.detail or "")
    assert any("budget" in (e.detail or "") for e in events if e.kind is JobEventKind.NOTICE)


# -- waiting: bounded, readable, visible -----------------------------------------------------------


def test_a_retry_after_inside_a_call_is_shown_with_its_reason_and_end(
    make_runner: Callable[..., BatchRunner],
    backend: FakeBackend,
    clock: ManualClock,
    events: list[JobEvent],
) -> None:
    import io

    from batchcore.progress import ProgressDisplay

    screen = io.StringIO()
    display = ProgressDisplay(screen, tty=False, clock=clock.now)
    runner = make_runner(observers=[events.append, display])
    backend.fail_next("submit", RateLimitError("slow down", retry_after=100), times=1)
    progress: list[Any] = []
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    before = clock.now()
    info = runner.drive(job_id, config=cfg(backend), on_progress=progress.append)
    assert info.all_succeeded
    (waiting,) = [e for e in events if e.kind is JobEventKind.WAITING]
    until = time.strftime("%H:%M:%S", time.gmtime(before + 100))
    assert (waiting.detail or "").startswith(
        f"waiting 100 s (vendor asked: Retry-After) until {until} UTC: fake submit"
    )
    assert "slow down" in (waiting.detail or "")
    assert f"waiting 100 s (vendor asked: Retry-After) until {until}" in screen.getvalue()
    assert any(p.event.kind is JobEventKind.WAITING for p in progress)
    # A short backoff is not worth a line: only waits over a few seconds are reported.
    events.clear()
    backend.fail_next("poll_status", "server_error", times=1)
    runner.run("fake", requests(1, "s"), config=cfg(backend))
    assert not [e for e in events if e.kind is JobEventKind.WAITING]


@pytest.mark.parametrize("asked", [float("nan"), float("-inf")])
def test_an_unreadable_retry_after_is_ignored(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, asked: float
) -> None:
    backend.fail_next("poll_status", RateLimitError("slow down", retry_after=asked), times=3)
    info = make_runner().run("fake", requests(2), config=cfg(backend, max_retries=0))
    assert info.all_succeeded  # postponed by the usual backoff, never time.sleep(nan)


@pytest.mark.parametrize("asked", [float("inf"), 1e300])
def test_an_endless_retry_after_stops_the_job_with_a_date_instead_of_crashing(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend, asked: float
) -> None:
    runner = make_runner()
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    backend.fail_next("poll_status", RateLimitError("slow down", retry_after=asked), times=10)
    with pytest.raises(JobStoppedError, match=r"asked to wait 366 days \(until \d{4}-"):
        runner.drive(job_id, config=cfg(backend))
    assert runner.info(job_id).state == "error"


def test_growth_is_capped_before_it_is_computed() -> None:
    schedule = PollSchedule(jitter=0)
    # Poll ~1751 is 29 hours into a batch with the defaults; Groq's windows last 7 days.
    for polls in (1751, 10_000, 10**9):
        assert schedule.delay(polls) == schedule.max_interval
    assert schedule.delay(0) == schedule.min_interval
    assert schedule.delay(2) == pytest.approx(5.0 * 1.5**2)
    assert PollSchedule(min_interval=5, max_interval=5, factor=1e300, jitter=0).delay(10**6) == 5
    policy = RetryPolicy(max_retries=10**9, max_postponements=10**9, jitter=lambda: 0.0)
    assert policy.delay(10**9) == policy.max_delay
    assert policy.postponement(10**9) == policy.max_postponement
    assert policy.delay(2) == 1.0 and policy.postponement(2) == 60.0


def test_a_refused_resume_changes_nothing_of_the_job(
    make_runner: Callable[..., BatchRunner], backend: FakeBackend
) -> None:
    runner = make_runner(max_attempts=10)
    job_id = runner.create("fake", requests(2), config=cfg(backend))
    options = dict(runner.store.job(job_id).options)
    runner.store.acquire(job_id, me="elsewhere:1")  # another host drives it, lease live
    with pytest.raises(JobBusyError):
        make_runner(max_attempts=2).resume(job_id, config=cfg(backend))
    assert dict(runner.store.job(job_id).options) == options  # not rewritten
    assert [e.kind for e in runner.store.events(job_id)] == []  # no "given again"
    assert backend.calls == []


# -- the providers the runner builds are closed ---------------------------------------------------


class CountsCloses(FakeBatchProvider):
    """Remembers every instance built and how often each was closed."""

    PROVIDER_NAME = "closing"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.closes = 0
        BUILT.append(self)

    def close(self) -> None:
        self.closes += 1
        super().close()


BUILT: list[CountsCloses] = []


@pytest.fixture
def closing_runner(tmp_path: Path, clock: ManualClock) -> BatchRunner:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(CountsCloses)
    BUILT.clear()
    return BatchRunner(
        tmp_path / "jobs.sqlite3",
        registry=registry,
        clock=clock.now,
        sleep=clock.sleep,
        poll=PollSchedule(min_interval=5, jitter=0),
    )


def _each_closed_once() -> bool:
    return bool(BUILT) and all(p.closes == 1 for p in BUILT)


def test_the_runner_closes_the_providers_it_builds_and_none_it_is_given(
    closing_runner: BatchRunner, backend: FakeBackend
) -> None:
    runner, config = closing_runner, cfg(backend)
    job_id = runner.create("closing", requests(3), config=config)
    BUILT.clear()  # create's own instance: see the next test
    runner.estimate("closing", requests(2), config=config)
    runner.drive(job_id, config=config)
    runner.resume(job_id, config=config)
    runner.cancel(job_id, config=config)
    assert _each_closed_once(), [p.closes for p in BUILT]

    given = CountsCloses(config=config)
    with given:
        runner.run(given, requests(2))
        assert given.closes == 0  # the caller's provider: the caller closes it
    assert given.closes == 1


def test_create_closes_the_provider_it_builds(
    closing_runner: BatchRunner, backend: FakeBackend
) -> None:
    closing_runner.create("closing", requests(2), config=cfg(backend))
    assert _each_closed_once(), [p.closes for p in BUILT]
