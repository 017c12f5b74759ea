"""The SQLite job store: atomic job creation, secrets kept out, leases, idempotent result
storage and retry settlement, and several processes writing one file at once."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from batchcore import (
    BatchHandle,
    BatchRequest,
    BatchResult,
    InvalidRequestError,
    ResultError,
    StoreError,
)
from batchcore.jobs import JobBusyError, JobNotFoundError, JobStore, default_store_path
from batchcore.jobs.errors import JoinError
from batchcore.jobs.request_rows import decode, strip_prefix
from batchcore.jobs.schema import MIGRATIONS, SCHEMA_VERSION
from batchcore.jobs.states import RequestState
from batchcore.jobs.store import open_database, public_config
from batchcore.models import EMBEDDINGS


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
def store(store_location: str) -> Iterator[JobStore]:
    """The store under test, on each backend (the same suite runs on SQLite and PostgreSQL)."""
    with JobStore(store_location) as store:
        yield store


def raw_contents(store: JobStore) -> bytes:
    """Everything the store keeps, as bytes: its files, or every row of every table."""
    if store.database.dialect == "sqlite":
        return b"".join(f.read_bytes() for f in store.path.parent.glob(store.path.name + "*"))
    tables = [
        r["table_name"]
        for r in store.database.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public'"
        )
    ]
    return b"".join(
        repr(row).encode()
        for table in tables
        for row in store.database.query(f"SELECT * FROM {table}")
    )


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


SYSTEM = "You are a careful assistant who answers in one short paragraph. " * 4


def chat(cid: str, model: str = "m", **params: Any) -> BatchRequest:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": cid}]
    return BatchRequest(custom_id=cid, model=model, messages=messages, params=params)


def test_requests_are_kept_as_their_body_bytes_and_their_shared_start_once(
    store: JobStore,
) -> None:
    requests = [
        *(chat(f"r{i}", max_tokens=5) for i in range(5)),
        chat("other-model", model="m2"),  # shares less than the others: kept whole
        attrs.evolve(chat("pp"), provider_params={"fake": {"top_k": 3}}),
        BatchRequest(custom_id="emb", model="m", endpoint=EMBEDDINGS, params={"input": "x"}),
    ]
    store.create_job("job-1", provider="fake", config={}, options={}, requests=requests)
    assert list(store.iter_requests("job-1")) == requests
    job = store.database.query_one("SELECT key, body_prefix FROM jobs WHERE id='job-1'")
    assert job is not None
    key, prefix = job["key"], bytes(job["body_prefix"])
    assert SYSTEM.encode() in prefix  # the start the requests share, once
    rows = store.database.query("SELECT body, extra FROM requests WHERE job=? ORDER BY seq", (key,))
    whole = [bytes(r["body"]).startswith(b"{") for r in rows]
    assert whole.count(False) >= len(rows) / 2  # most rows keep only what follows the start
    assert whole[5]  # other-model's does not share it: kept whole
    for row, request, kept_whole in zip(rows, requests, whole, strict=True):
        body = request.openai_body_json()
        assert bytes(row["body"]) == (body if kept_whole else body[len(prefix) :])
    for row in rows:  # the OpenAI body, never the unified request's JSON beside it
        assert b'"custom_id"' not in bytes(row["body"]) and b'"params"' not in bytes(row["body"])
    assert [r["extra"] is None for r in rows] == [True] * 6 + [False, False]


@pytest.mark.parametrize(
    ("body", "kept_whole"),
    [
        (b'{"model":"m","input":"x"}', False),  # shares the start: only the rest is kept
        (b'{"model":"m","input":{"a":1}}', True),  # the rest would read as a whole body
        (b'{"model":"n","input":"x"}', True),  # does not share it
    ],
)
def test_a_body_is_kept_without_the_shared_start_only_where_it_reads_back_as_it_was(
    body: bytes, kept_whole: bool
) -> None:
    prefix = b'{"model":"m","input":'
    stored = strip_prefix(body, prefix)
    assert (stored == body) is kept_whole
    assert decode("c", stored, b'{"endpoint":"/v1/embeddings"}', prefix).openai_body_json() == body


def test_a_request_left_out_of_the_first_batches_leaves_no_job(store: JobStore) -> None:
    def record_with_a_batch_short_of_one() -> None:
        with store.new_job("job-1", provider="fake", config={}, options={}, batched=True) as job:
            for _ in job.record([req("a"), req("b"), req("c")]):
                pass
            job.add_batch(
                round_number=1,
                idempotency_key="k",
                payload={"request_count": 2},
                custom_ids=["a", "c"],
            )

    with pytest.raises(JoinError, match="3 requests were recorded"):
        record_with_a_batch_short_of_one()
    assert store.jobs() == []


def test_first_batches_get_exactly_their_requests_in_any_order(store: JobStore) -> None:
    # Batches assigned by runs of input positions (interleaved: several runs) and, once a
    # payload comes out of input order, one id at a time: each request lands in its batch.
    ids = ["a", 'q"uote', "é", "sp ace", "e", "f"]
    with store.new_job("job-1", provider="fake", config={}, options={}, batched=True) as job:
        for _ in job.record([req(cid) for cid in ids]):
            pass
        rows = [
            job.add_batch(
                round_number=1,
                idempotency_key=f"k{n}",
                payload={"request_count": len(part)},
                custom_ids=part,
            )
            for n, part in enumerate([ids[0::2], ids[:0:-2]])
        ]
    assert [r.custom_id for r in store.iter_requests("job-1", batch_row=rows[0])] == ids[0::2]
    assert [r.custom_id for r in store.iter_requests("job-1", batch_row=rows[1])] == ids[1::2]
    assert store.count_requests("job-1") == {RequestState.ASSIGNED: 6}


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
    data = raw_contents(store)
    assert b"127.0.0.1:9" in data  # what is kept is there
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


def test_many_processes_write_one_store_without_corruption(store_location: str) -> None:
    path = store_location
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
    if store.database.dialect == "sqlite":
        assert store.database.query("PRAGMA integrity_check")[0][0] == "ok"


# -- schema versions, and a store that cannot be used --------------------------------------------

DATA = Path(__file__).parent / "data"


def test_a_store_written_by_the_first_release_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript((DATA / "store-v1.sql").read_text())
    store = JobStore(path)
    assert store.database.query_one("SELECT value FROM meta WHERE key='schema'")["value"] == str(
        SCHEMA_VERSION
    )
    job = store.job("job-v1")
    assert (job.provider, job.options["max_attempts"], job.request_count) == ("openai", 4, 3)
    (batch,) = store.batches("job-v1")
    assert batch.batch_id == "batch_v1_abc"  # filled from the stored handle
    assert store.knows_batch_id("batch_v1_abc")
    assert [r.custom_id for r in store.iter_results("job-v1")] == ["r0"]
    store.close()
    assert JobStore(path).database.query_one("SELECT count(*) AS n FROM events")["n"] == 0


def write_schema_6_store(location: str, jobs: dict[str, list[tuple[BatchRequest, str]]]) -> None:
    """A store as schema 6 wrote it: each request as its unified JSON under the job id, with
    its state (``pending``, ``assigned`` to the job's one batch, ``done`` as succeeded)."""
    db = open_database(location)
    with db.exclusive("batchcore-schema"):
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for migration in MIGRATIONS[:6]:
            for step in migration.steps:
                db.execute(step.format_map(db.types)) if isinstance(step, str) else step(db)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', '6')")
        for created, (job_id, rows) in enumerate(jobs.items()):
            db.execute(
                "INSERT INTO jobs (id, provider, config, options, state, request_count,"
                " created_at, updated_at) VALUES (?, 'fake', ?, ?, 'active', ?, ?, ?)",
                (job_id, b"{}", b"{}", len(rows), created, created),
            )
            batch = db.insert_id(
                "INSERT INTO batches (job_id, round, idempotency_key, state, request_count,"
                " created_at, updated_at) VALUES (?, 1, ?, 'submitted', ?, 0, 0) RETURNING row",
                (job_id, f"k-{job_id}", sum(state != "pending" for _, state in rows)),
            )
            for seq, (request, state) in enumerate(rows, 1):
                db.execute(
                    "INSERT INTO requests (job_id, custom_id, seq, data, state, outcome, attempts,"
                    " batch_row, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        request.custom_id,
                        seq,
                        orjson.dumps(request.to_dict()),
                        state,
                        "succeeded" if state == "done" else None,
                        int(state != "pending"),
                        None if state == "pending" else batch,
                        request.custom_id.encode().ljust(16, b"-"),
                    ),
                )
                if state == "done":
                    db.execute(
                        "INSERT INTO answers (fingerprint, job_id, custom_id) VALUES (?, ?, ?)",
                        (request.custom_id.encode().ljust(16, b"-"), job_id, request.custom_id),
                    )
                    db.execute(
                        "INSERT INTO results (job_id, custom_id, batch_row, status, retryable,"
                        " data) VALUES (?, ?, ?, 'succeeded', 0, ?)",
                        (
                            job_id,
                            request.custom_id,
                            batch,
                            orjson.dumps(ok(request.custom_id).to_dict()),
                        ),
                    )
    db.close()


def test_a_store_written_by_schema_6_is_upgraded_in_place(store_location: str) -> None:
    old = [
        (chat("z-done"), "done"),
        (chat("a-assigned", max_tokens=9), "assigned"),
        (chat("m-pending"), "pending"),
        (
            BatchRequest(
                custom_id="e-assigned",
                model="m",
                endpoint=EMBEDDINGS,
                params={"input": ["x", "y"]},
                provider_params={"fake": {"dimensions": 8}},
            ),
            "assigned",
        ),
    ]
    write_schema_6_store(store_location, {"job-old": old, "job-two": [(req("b"), "pending")]})
    with JobStore(store_location) as store:
        assert store.database.query_one("SELECT value FROM meta WHERE key='schema'")["value"] == (
            str(SCHEMA_VERSION)
        )
        requests = [request for request, _ in old]
        assert list(store.iter_requests("job-old")) == requests  # input order, as recorded
        assert list(store.iter_requests("job-old", state="pending")) == [requests[2]]
        (batch,) = store.batches("job-old")
        assert list(store.iter_requests("job-old", batch_row=batch.row)) == [
            requests[1],
            requests[3],
        ]
        assert store.count_requests("job-old") == {"done": 1, "assigned": 2, "pending": 1}
        assert store.count_results("job-old") == {"succeeded": 1}
        assert [r.custom_id for r in store.iter_results("job-old")] == ["z-done"]
        assert list(store.iter_requests("job-two")) == [req("b")]
        # The moved job goes on: its batch is settled, and a new job is recorded beside it.
        assert store.save_results("job-old", batch.row, [ok("a-assigned"), ok("e-assigned")]) == 2
        store.settle_batch("job-old", batch.row, max_attempts=1, retry=False)
        assert store.count_results("job-old") == {"succeeded": 3}
        answered = store.database.query("SELECT fingerprint FROM answers ORDER BY custom_id")
        assert [bytes(r["fingerprint"]).rstrip(b"-") for r in answered] == [
            b"a-assigned",
            b"e-assigned",
            b"z-done",
        ]
        make_job(store, ["b", "c"], job_id="job-new")
        assert [r.custom_id for r in store.iter_requests("job-new")] == ["b", "c"]
        assert [r.custom_id for r in store.iter_requests("job-two")] == ["b"]


def test_a_store_from_a_newer_batchcore_is_refused(store_location: str) -> None:
    path = store_location
    with JobStore(path) as store:
        store.database.execute("UPDATE meta SET value='99' WHERE key='schema'")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="newer batchcore"):
            JobStore(path, readonly=readonly)


def test_concurrent_first_opens_migrate_once(store_location: str) -> None:
    path = store_location
    script = "import sys; from batchcore.jobs import JobStore; JobStore(sys.argv[1]).close()"
    openers = [subprocess.Popen([sys.executable, "-c", script, str(path)]) for _ in range(6)]
    assert [p.wait(timeout=60) for p in openers] == [0] * 6
    store = JobStore(path)
    assert store.database.query_one("SELECT value FROM meta WHERE key='schema'")["value"] == str(
        SCHEMA_VERSION
    )


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda p: p.write_bytes(b"this is not a database" * 100), "damaged"),
        (lambda p: p.parent.parent.joinpath("home").write_text("a file"), "not a directory"),
    ],
)
def test_an_unusable_store_is_a_store_error_naming_it(
    tmp_path: Path, setup: Any, fragment: str
) -> None:
    path = tmp_path / "home" / "jobs.sqlite3"
    if "not a directory" not in fragment:
        path.parent.mkdir()
    setup(path)
    with pytest.raises(StoreError, match=fragment) as info:
        JobStore(path)
    assert str(path) in str(info.value)


def test_a_full_disk_says_disk_full_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    make_job(JobStore(path), ["a", "b"])
    store = JobStore(path)
    # A real SQLITE_FULL from SQLite itself: the file may not grow past its current size.
    pages = store.database.query_one("PRAGMA page_count")[0]
    store.database.query(f"PRAGMA max_page_count={pages}")
    big = [req(f"r{i:05d}-" + "x" * 200) for i in range(2000)]
    with pytest.raises(StoreError, match="the disk is full") as info:
        store.create_job("job-2", provider="fake", config={}, options={}, requests=big)
    assert "rollback" not in str(info.value)
    assert [j.id for j in store.jobs()] == ["job-1"]  # the failed job never half-exists


def test_reading_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    make_job(JobStore(path), ["a"])
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    reader = JobStore(path, readonly=True)
    assert [j.id for j in reader.jobs()] == ["job-1"]
    with pytest.raises(StoreError, match="read-only"):
        reader.set_job_state("job-1", "finished")
    reader.close()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    missing = JobStore(tmp_path / "nowhere" / "jobs.sqlite3", readonly=True)
    assert missing.jobs() == []
    assert not (tmp_path / "nowhere").exists()


def test_a_lease_is_taken_over_only_from_the_dead_or_the_silent(store: JobStore) -> None:
    make_job(store, ["a"])
    alive = store.acquire("job-1", me="elsewhere:1")  # another host, lease running
    with pytest.raises(JobBusyError):
        store.acquire("job-1")
    store.database.execute("UPDATE jobs SET lease_until=0 WHERE id='job-1'")  # silent since
    me = store.acquire("job-1")
    assert me != alive
    (event,) = store.events("job-1")
    assert event.kind == "takeover" and "elsewhere:1" in (event.detail or "")
    assert "lease ran out" in (event.detail or "") and event.actor == me
    assert not store.renew("job-1", alive)  # the old owner learns it lost the lease
    assert store.renew("job-1", me)


def test_claims_of_a_dead_process_on_this_host_are_dropped(store: JobStore) -> None:
    make_job(store, ["a"])
    row = assign(store, "job-1", ["a"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}"
    assert store.claim_batch(row, dead, seconds=600)
    assert store.claim_batch(row, "elsewhere:1", seconds=600) is False
    assert store.claim_batch(row, f"other-host:{gone.pid}", seconds=600) is False
    assert store.release_dead_claims() == 1
    assert store.claim_batch(row, "elsewhere:1", seconds=600)


# -- claims by many processes, and the vendor's queue ---------------------------------------------


def test_processes_claiming_at_once_never_claim_the_same_step(store_location: str) -> None:
    batches = 60
    with JobStore(store_location) as store:
        ids = [f"r{i}" for i in range(batches)]
        make_job(store, ids)
        for cid in ids:
            assign(store, "job-1", [cid])  # one due submit step per batch
    script = textwrap.dedent(
        """
        import json, sys, time
        from batchcore.jobs import JobStore
        store = JobStore(sys.argv[1])
        me, done = sys.argv[2], []
        while True:
            claim = store.claim_next(me, seconds=600, now=time.time())
            if claim is None:
                break
            done.append(claim.batch_row)
            # The step is done: not due again (as a submitted batch waits for its poll).
            store.batch_step_failed(claim.batch_row, "done", time.time() + 86400)
            store.release_batch(claim.batch_row, me)
        print(json.dumps(done))
        """
    )
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", script, store_location, f"host-{n}:{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    claimed: list[int] = []
    for claimer in claimers:
        out, err = claimer.communicate(timeout=120)
        assert claimer.returncode == 0, err
        claimed.extend(orjson.loads(out.strip().splitlines()[-1]))
    assert len(claimed) == len(set(claimed)) == batches  # each step once, by one process


def _admit(store: JobStore, row: int, amount: int = 4, cap: int = 6) -> int | None:
    return store.admit(row, provider="fake", model=None, measure="requests", amount=amount, cap=cap)


def test_an_admission_counts_only_while_its_step_is_alive(store: JobStore) -> None:
    make_job(store, ["a", "b", "c", "d", "e", "f", "g", "h"])
    first = assign(store, "job-1", ["a", "b", "c", "d"])
    second = assign(store, "job-1", ["e", "f", "g", "h"])
    assert store.claim_batch(first, "elsewhere:1", seconds=600)
    assert _admit(store, first) is None
    assert _admit(store, first) is None  # a batch never waits for its own admission
    assert store.enqueued("fake", None) == (0, 4)
    assert store.claim_batch(second, "elsewhere:2", seconds=600)
    assert _admit(store, second) == 4  # 4 + 4 > 6: it waits
    # The first step's holder dies silently: its claim runs out, and its admission with it.
    store.database.execute("UPDATE batches SET claim_until=0 WHERE claimed_by='elsewhere:1'")
    assert store.enqueued("fake", None) == (0, 0)
    assert _admit(store, second) is None
    # Whoever claims the first batch next starts from no admission at all.
    assert store.claim_batch(first, "elsewhere:3", seconds=600)
    row = store.database.query_one("SELECT admitted_at FROM batches WHERE row=?", (first,))
    assert row is not None and row["admitted_at"] is None


def test_a_drivers_admission_lives_with_its_lease(store: JobStore) -> None:
    make_job(store, ["a", "b"])
    row = assign(store, "job-1", ["a", "b"])
    me = store.acquire("job-1", me="driver-host:1")
    assert store.claim_batch(row, me, seconds=600)
    assert _admit(store, row, amount=2) is None
    # A long upload outlives the batch claim; the driver's lease (renewed) keeps it counted.
    store.database.execute("UPDATE batches SET claim_until=0")
    assert store.enqueued("fake", None) == (0, 2)
    store.database.execute("UPDATE jobs SET lease_until=0")  # the driver went silent
    assert store.enqueued("fake", None) == (0, 0)


def test_dropping_a_dead_processs_claims_drops_its_admissions(store: JobStore) -> None:
    make_job(store, ["a"])
    row = assign(store, "job-1", ["a"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}"
    assert store.claim_batch(row, dead, seconds=600)
    assert _admit(store, row, amount=1) is None
    assert store.release_dead_claims() == 1
    found = store.database.query_one("SELECT admitted_at FROM batches WHERE row=?", (row,))
    assert found is not None and found["admitted_at"] is None


def test_a_learned_queue_cap_holds_under_its_config_for_a_while(store_location: str) -> None:
    now = [1_000_000.0]
    with JobStore(store_location, clock=lambda: now[0]) as store:
        refused = store.queue_refused("fake", "m", cap=40, configured=100, reason="full")
        assert refused == 1 and store.queue_cap("fake", "m", configured=100) == 40
        assert store.queue_cap("fake", "m") == 40
        # A refusal only ever lowers a learned cap still in force.
        assert store.queue_refused("fake", "m", cap=60, configured=100, reason="full") == 2
        assert store.queue_cap("fake", "m", configured=100) == 40
        assert store.queue_refusals("fake", "m") == (2, now[0])
        # A new config value is the user's word: the learned cap does not override it.
        assert store.queue_cap("fake", "m", configured=500) is None
        # A batch of ours that ran and ended ends the run of refusals; a refused one does not.
        store.wake_waiting("fake", "m", ran=False)
        assert store.queue_refusals("fake", "m")[0] == 2
        store.wake_waiting("fake", "m")
        assert store.queue_refusals("fake", "m") == (0, None)
        # Learned caps expire: the configured cap is tried again.
        now[0] += store.LEARNED_CAP_SECONDS
        assert store.queue_cap("fake", "m", configured=100) is None
        store.queue_refused("fake", "m", cap=70, configured=100, reason="full")
        assert store.queue_cap("fake", "m", configured=100) == 70  # learned anew, not min()


def test_a_queue_cap_in_tokens_is_recorded_with_the_job_and_a_token_is_not() -> None:
    # A worker resuming the job reads its config from the store: a cap dropped there as if it
    # were a credential would be replaced by the provider's default.
    config = {"max_enqueued_tokens": 5_000_000, "default_max_tokens": 256, "auth_token": "t-1"}
    assert public_config(config) == {"max_enqueued_tokens": 5_000_000, "default_max_tokens": 256}
