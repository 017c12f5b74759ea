"""The SQLite job store: atomic job creation, secrets kept out, leases, idempotent result
storage and retry settlement, and several processes writing one file at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from batchcore import BatchHandle, BatchRequest, BatchResult, InvalidRequestError, ResultError
from batchcore.jobs import JobBusyError, JobNotFoundError, JobStore, default_store_path
from batchcore.jobs.store import public_config


def req(cid: str) -> BatchRequest:
    return BatchRequest(custom_id=cid, model="m", messages=[{"role": "user", "content": cid}])


def ok(cid: str) -> BatchResult:
    return BatchResult(custom_id=cid, status="succeeded", text=cid.upper())


def failed(cid: str, *, retryable: bool) -> BatchResult:
    return BatchResult(
        custom_id=cid,
        status="errored",
        error=ResultError(code="e", message="m", retryable=retryable),
    )


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite3")


def make_job(store: JobStore, ids: list[str], job_id: str = "job-1") -> str:
    store.create_job(job_id, provider="fake", config={}, options={}, requests=[req(c) for c in ids])
    return job_id


def assign(store: JobStore, job_id: str, ids: list[str]) -> int:
    return store.add_batch(
        job_id,
        round_number=1,
        idempotency_key=f"k-{ids[0]}",
        payload={"request_count": len(ids)},
        custom_ids=ids,
    )


def test_default_location_follows_batchcore_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BATCHCORE_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "jobs.sqlite3"


def test_job_and_requests_round_trip_in_order(store: JobStore) -> None:
    make_job(store, ["b", "a", "c"])
    job = store.job("job-1")
    assert (job.provider, job.state, job.request_count) == ("fake", "active", 3)
    assert [r.custom_id for r in store.iter_requests("job-1")] == ["b", "a", "c"]
    assert store.iter_requests("job-1").__next__() == req("b")
    with pytest.raises(JobNotFoundError):
        store.job("nope")


def test_duplicate_custom_id_leaves_no_half_job(store: JobStore) -> None:
    with pytest.raises(InvalidRequestError, match="'a' appears more than once"):
        make_job(store, ["a", "b", "a"])
    assert store.jobs() == []
    with pytest.raises(InvalidRequestError, match="no requests"):
        make_job(store, [])
    assert store.jobs() == []


def test_a_failing_request_iterator_rolls_back(store: JobStore) -> None:
    def requests():  # type: ignore[no-untyped-def]
        yield req("a")
        raise InvalidRequestError("line 2 is bad")

    with pytest.raises(InvalidRequestError, match="line 2"):
        store.create_job("job-x", provider="fake", config={}, options={}, requests=requests())
    assert store.jobs() == []


def test_secrets_never_reach_the_file(store: JobStore) -> None:
    config = {
        "api_key": "sk-secret-abcdef-0123456789",
        "azure_ad_token": "tok-9876543210",
        "base_url": "http://127.0.0.1:9/v1",
        "timeout": 3,
        "models": ["a", "b"],
        "backend": object(),
    }
    assert public_config(config) == {
        "base_url": "http://127.0.0.1:9/v1",
        "timeout": 3,
        "models": ["a", "b"],
    }
    store.create_job("job-s", provider="fake", config=config, options={}, requests=[req("a")])
    store.close()
    for file in store.path.parent.glob("jobs.sqlite3*"):
        data = file.read_bytes()
        assert b"sk-secret-abcdef" not in data and b"tok-9876543210" not in data


def test_results_are_stored_once_and_only_for_assigned_requests(store: JobStore) -> None:
    make_job(store, ["a", "b", "c"])
    row = assign(store, "job-1", ["a", "b"])
    assert store.save_results("job-1", row, [ok("a"), ok("c")]) == 1  # c is not in this batch
    assert store.save_results("job-1", row, [ok("a")]) == 1  # same again: replaced, not added
    assert store.missing_results("job-1", row) == ["b"]
    assert [r.custom_id for r in store.iter_results("job-1")] == ["a"]


def test_settle_sends_retryable_failures_back_until_attempts_run_out(store: JobStore) -> None:
    make_job(store, ["a", "b", "c"])
    row = assign(store, "job-1", ["a", "b", "c"])
    store.save_results(
        "job-1", row, [ok("a"), failed("b", retryable=True), failed("c", retryable=False)]
    )
    assert store.settle_batch("job-1", row, max_attempts=2, retry=True) == 1
    assert store.count_requests("job-1") == {"done": 2, "pending": 1}
    assert [r.custom_id for r in store.iter_requests("job-1", state="pending")] == ["b"]
    row2 = store.add_batch(
        "job-1",
        round_number=2,
        idempotency_key="k2",
        payload={"request_count": 1},
        custom_ids=["b"],
    )
    store.save_results("job-1", row2, [failed("b", retryable=True)])
    assert store.settle_batch("job-1", row2, max_attempts=2, retry=True) == 0
    assert store.count_requests("job-1") == {"done": 3}
    assert store.count_results("job-1") == {"succeeded": 1, "errored": 2}


def test_settle_without_retry_makes_everything_final(store: JobStore) -> None:
    make_job(store, ["a"])
    row = assign(store, "job-1", ["a"])
    store.save_results("job-1", row, [failed("a", retryable=True)])
    assert store.settle_batch("job-1", row, max_attempts=5, retry=False) == 0
    assert store.count_requests("job-1") == {"done": 1}


def test_a_new_result_replaces_the_superseded_attempt(store: JobStore) -> None:
    make_job(store, ["a"])
    row = assign(store, "job-1", ["a"])
    store.save_results("job-1", row, [failed("a", retryable=True)])
    store.settle_batch("job-1", row, max_attempts=3, retry=True)
    row2 = store.add_batch(
        "job-1",
        round_number=2,
        idempotency_key="k2",
        payload={"request_count": 1},
        custom_ids=["a"],
    )
    assert store.save_results("job-1", row, [failed("a", retryable=True)]) == 0  # stale batch
    store.save_results("job-1", row2, [ok("a")])
    assert [r.status.value for r in store.iter_results("job-1")] == ["succeeded"]


def test_batch_lifecycle_records(store: JobStore) -> None:
    from batchcore import BatchStatus

    make_job(store, ["a"])
    row = assign(store, "job-1", ["a"])
    (prepared,) = store.batches("job-1", state="prepared")
    assert prepared.payload == {"request_count": 1}
    handle = BatchHandle(provider="fake", batch_id="b1", created_at=0)
    store.batch_submitted(row, handle, next_poll_at=5.0)
    (submitted,) = store.batches("job-1", state="submitted")
    assert submitted.handle == handle and submitted.payload is None
    status = BatchStatus(
        provider="fake", batch_id="b1", state="completed", raw_status="completed", total=1
    )
    store.batch_polled(row, status, None)
    (ended,) = store.batches("job-1", state="ended")
    assert ended.status == status and ended.polls == 1


def test_lease_refuses_a_live_owner_and_takes_over_a_dead_one(store: JobStore) -> None:
    make_job(store, ["a"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = f"{os.uname().nodename}:{sleeper.pid}"
        with store.transaction() as db:
            db.execute("UPDATE jobs SET owner=?, lease_until=? WHERE id='job-1'", (other, 1e12))
        with pytest.raises(JobBusyError, match="another process"):
            store.acquire("job-1")
    finally:
        sleeper.kill()
        sleeper.wait()
    me = store.acquire("job-1")  # the owner is dead now
    store.release("job-1", me)
    assert store.acquire("job-1") == me


def test_many_processes_write_one_store_without_corruption(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    JobStore(path).close()
    script = textwrap.dedent(
        """
        import sys
        from batchcore import BatchRequest, BatchResult
        from batchcore.jobs import JobStore
        store = JobStore(sys.argv[1])
        me = sys.argv[2]
        for j in range(5):
            job = f"{me}-{j}"
            ids = [f"r{i}" for i in range(200)]
            store.create_job(job, provider="fake", config={}, options={}, requests=[
                BatchRequest(custom_id=c, model="m", messages=[{"role": "user", "content": c}])
                for c in ids])
            row = store.add_batch(job, round_number=1, idempotency_key=job, payload={
                "request_count": 200}, custom_ids=ids)
            for start in range(0, 200, 20):
                store.save_results(job, row, [BatchResult(custom_id=c, status="succeeded")
                                              for c in ids[start:start + 20]])
            store.settle_batch(job, row, max_attempts=1, retry=False)
        """
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), f"w{n}"], stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    store = JobStore(path)
    assert len(store.jobs()) == 20
    for job in store.jobs():
        assert store.count_results(job.id) == {"succeeded": 200}
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
