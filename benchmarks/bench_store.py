"""Store: how fast results are written durably, and what a resume costs on a huge job.

Both are measured against plain sqlite3 doing the same work in the same run:

* write: ``JobStore.save_results`` (1,000-result transactions, each result checked against its
  batch, JSON-encoded, upserted) against a bare ``executemany`` INSERT of the same encoded
  blobs into a table with the same primary key (same WAL settings).
* resume scan: what ``batchcore resume`` reads before doing anything (``BatchRunner.info``:
  counts by state and by result status, the batch list) on a job of N requests whose results
  are all stored, against one bare ``SELECT COUNT(*)`` over the same rows.

Run: ``python benchmarks/bench_store.py`` (``BENCH_QUICK=1`` for a smaller N).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _common import QUICK, header

from batchcore import BatchRequest, BatchResult, Usage
from batchcore.jobs import BatchRunner, JobStore

WRITE_N = 20_000 if QUICK else 100_000
SCAN_N = 100_000 if QUICK else 1_000_000
CHUNK = 1000


def body(i: int) -> dict[str, object]:
    text = f"Answer number {i}: " + "lorem ipsum dolor sit amet " * 28
    return {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 180, "total_tokens": 200},
    }


def results(n: int) -> list[BatchResult]:
    return [
        BatchResult(
            custom_id=f"r{i}",
            status="succeeded",
            response=body(i),
            text=f"Answer number {i}",
            usage=Usage(input_tokens=20, output_tokens=180, total_tokens=200),
            batch_id="batch_1",
        )
        for i in range(n)
    ]


def make_job(store: JobStore, n: int, job_id: str) -> int:
    ids = [f"r{i}" for i in range(n)]
    store.create_job(
        job_id,
        provider="openai",
        config={},
        options={},
        requests=(
            BatchRequest(
                custom_id=cid, model="gpt-4o-mini", messages=[{"role": "user", "content": cid}]
            )
            for cid in ids
        ),
    )
    return store.add_batch(
        job_id, round_number=1, idempotency_key=job_id, payload={"request_count": n}, custom_ids=ids
    )


def bench_write(work: Path) -> tuple[float, float]:
    rows = results(WRITE_N)
    store = JobStore(work / "write.sqlite3")
    row = make_job(store, WRITE_N, "job-write")
    start = time.perf_counter()
    for i in range(0, WRITE_N, CHUNK):
        store.save_results("job-write", row, rows[i : i + CHUNK])
    ours = time.perf_counter() - start

    db = sqlite3.connect(work / "baseline.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE results (job_id TEXT, custom_id TEXT, status TEXT, data BLOB,"
        " PRIMARY KEY (job_id, custom_id))"
    )
    start = time.perf_counter()
    for i in range(0, WRITE_N, CHUNK):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?)",
            [
                ("job", r.custom_id, r.status.value, orjson.dumps(r.to_dict()))
                for r in rows[i : i + CHUNK]
            ],
        )
        db.execute("COMMIT")
    baseline = time.perf_counter() - start
    return ours, baseline


def bench_scan(work: Path) -> tuple[float, float, float]:
    store = JobStore(work / "scan.sqlite3")
    start = time.perf_counter()
    row = make_job(store, SCAN_N, "job-scan")
    created = time.perf_counter() - start
    done = [BatchResult(custom_id=f"r{i}", status="succeeded", batch_id="b") for i in range(SCAN_N)]
    for i in range(0, SCAN_N, 10_000):
        store.save_results("job-scan", row, done[i : i + 10_000])
    store.settle_batch("job-scan", row, max_attempts=1, retry=False)
    BatchRunner(store).info("job-scan")  # warm the page cache, as a resume after a crash finds it
    start = time.perf_counter()
    info = BatchRunner(store).info("job-scan")  # a runner of its own: nothing of the job known
    ours = time.perf_counter() - start
    assert info.counts["succeeded"] == SCAN_N
    start = time.perf_counter()
    store.database.query_one(
        "SELECT COUNT(*) FROM requests WHERE job=(SELECT key FROM jobs WHERE id='job-scan')"
    )
    baseline = time.perf_counter() - start
    return ours, baseline, created


def main() -> int:
    header("store: durable result writes and the resume scan")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours, baseline = bench_write(work)
        print(
            f"   store write: {WRITE_N / ours:,.0f} results/s through JobStore.save_results; "
            f"bare sqlite3 executemany {WRITE_N / baseline:,.0f}/s; "
            f"ratio {ours / baseline:.2f}x the bare time"
        )
        scan, count, created = bench_scan(work)
        print(
            f"   resume scan of a {SCAN_N:,}-request job: {scan * 1000:.0f} ms for "
            f"BatchRunner.info; one bare COUNT(*) {count * 1000:.0f} ms; "
            f"ratio {scan / count:.1f}x (job creation took {created:.1f} s, "
            f"{SCAN_N / created:,.0f} requests/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
