"""Scaling out: workers on one PostgreSQL store, against the OpenAI emulator; and the store's
cost per request and per result on both backends.

* **claims**: how many step claims per second the store serves (``claim_next`` + release, the
  work a worker does for every step besides the step itself), with 1, 2 and 4 claiming
  processes on one PostgreSQL server, and on SQLite;
* **end to end**: a job of 20 batches (``N`` requests) recorded with ``batchcore submit`` into
  the store and driven by 1, 2 and 4 ``batchcore worker --burst`` processes, against the same
  job driven by one ``batchcore run`` on SQLite; the emulator runs in its own process on the real
  clock (validating 0.2 s, processing 1 s, finalizing 0.2 s);
* **store cost**: microseconds per request recorded (``create_job``) and per result stored
  (``save_results``), SQLite and PostgreSQL.

Needs PostgreSQL's ``initdb``/``pg_ctl`` (the tests' temporary server) and ``psycopg``;
skipped, saying so, without them. Ratios, not milliseconds, carry over to another machine.
Run: ``python benchmarks/bench_workers.py`` (``BENCH_QUICK=1``: smaller).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    QUICK,
    chat_request_dicts,
    header,
    main_or_worker,
    note,
    openai_config,
    openai_emulator_process,
    report,
    run_worker,
)

N = 4_000 if QUICK else 20_000
BATCHES = 20
CLAIMS = 2_000 if QUICK else 10_000
STORE_ROWS = 20_000 if QUICK else 100_000
PHASES = {"validating": 0.2, "processing": 1.0, "finalizing": 0.2}


# -- claims -----------------------------------------------------------------------------------


def seed_claims(location: str, batches: int) -> None:
    """A job whose *batches* prepared batches are all due (nothing is sent: only claimed)."""
    from batchcore import BatchRequest
    from batchcore.jobs import JobStore

    with JobStore(location) as store:
        ids = [f"r{i}" for i in range(batches)]
        requests = [
            BatchRequest(custom_id=c, model="m", messages=[{"role": "user", "content": c}])
            for c in ids
        ]
        store.create_job("claims", provider="openai", config={}, options={}, requests=requests)
        for cid in ids:
            store.add_batch(
                "claims",
                round_number=1,
                idempotency_key=f"k-{cid}",
                payload={"request_count": 1},
                custom_ids=[cid],
            )


def claim_worker(location: str, claims: str, name: str) -> dict[str, Any]:
    from batchcore.jobs import JobStore

    done = 0
    with JobStore(location) as store:
        start = time.perf_counter()
        while done < int(claims):
            claim = store.claim_next(name, seconds=60, now=time.time(), providers=["openai"])
            if claim is None:
                continue
            assert claim.batch_row is not None
            store.release_batch(claim.batch_row, name)
            done += 1
        return {"seconds": time.perf_counter() - start, "claims": done}


def claims_per_second(location: str, processes: int) -> float:
    script = __file__
    per = CLAIMS // processes
    procs = [
        subprocess.Popen(
            [sys.executable, script, "--worker", "claim", location, str(per), f"w{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    start = time.perf_counter()
    for proc in procs:
        proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError("a claiming process failed")
    return (per * processes) / (time.perf_counter() - start)


# -- end to end -------------------------------------------------------------------------------


def write_input(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for request in chat_request_dicts(n):
            out.write(json.dumps(request) + "\n")
    return path


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchcore.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def with_workers(url: str, source: Path, env: dict[str, str], workers: int) -> float:
    per_batch = str(N // BATCHES)
    start = time.perf_counter()
    done = cli(
        "--store",
        url,
        "submit",
        str(source),
        "--provider",
        "openai",
        "--poll-interval",
        "0.2:0.2",
        "--config",
        f"max_requests_per_batch={per_batch}",
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "batchcore.cli", "--store", url, "worker", "--burst"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(err)
    return time.perf_counter() - start


def with_sqlite_run(home: Path, source: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = cli(
        "run",
        str(source),
        "--provider",
        "openai",
        "--poll-interval",
        "0.2:0.2",
        "--config",
        f"max_requests_per_batch={N // BATCHES}",
        "-o",
        str(home / "out.jsonl"),
        env={**env, "BATCHCORE_HOME": str(home)},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return time.perf_counter() - start


# -- store cost -------------------------------------------------------------------------------


def store_cost_worker(location: str, rows: str) -> dict[str, float]:
    from batchcore import BatchRequest, BatchResult, Usage
    from batchcore.jobs import JobStore

    n = int(rows)
    requests = [
        BatchRequest(
            custom_id=f"r{i}",
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
            params={"max_tokens": 64},
        )
        for i in range(n)
    ]
    results = [
        BatchResult(
            custom_id=f"r{i}",
            status="succeeded",
            text=f"The answer is {2 * i}.",
            usage=Usage(input_tokens=20, output_tokens=8, total_tokens=28),
            response={"id": f"chatcmpl-{i}", "choices": [{"message": {"content": "x"}}]},
        )
        for i in range(n)
    ]
    with JobStore(location) as store:
        start = time.perf_counter()
        store.create_job("cost", provider="openai", config={}, options={}, requests=requests)
        recorded = time.perf_counter() - start
        row = store.add_batch(
            "cost",
            round_number=1,
            idempotency_key="cost",
            payload={"request_count": n},
            custom_ids=[r.custom_id for r in requests],
        )
        start = time.perf_counter()
        for first in range(0, n, 1000):
            store.save_results("cost", row, results[first : first + 1000])
        saved = time.perf_counter() - start
    return {"request_us": recorded / n * 1e6, "result_us": saved / n * 1e6}


def main() -> int:
    header(f"scaling out: workers on PostgreSQL ({N:,} requests in {BATCHES} batches)")
    try:
        import psycopg  # noqa: F401

        from batchcore.testing.postgres import TemporaryPostgres, find_server
    except ImportError:
        note("skipped: psycopg is not installed (pip install 'batchcore[postgres]')")
        return 0
    _, why = find_server()
    if why:
        note(f"skipped: {why}")
        return 0
    script = __file__
    with (
        TemporaryPostgres(base=tempfile.gettempdir()) as server,
        tempfile.TemporaryDirectory(dir=tempfile.gettempdir()) as work,
    ):
        # -- claims
        rates = {}
        for processes in (1, 2, 4):
            url = server.new_url()
            seed_claims(url, 200)
            rates[processes] = claims_per_second(url, processes)
        sqlite_store = str(Path(work) / "claims.sqlite3")
        seed_claims(sqlite_store, 200)
        sqlite_rate = claims_per_second(sqlite_store, 1)
        report(
            "claims (claim_next + release)",
            ", ".join(f"{p} process(es): {r:,.0f}/s" for p, r in rates.items())
            + f"; SQLite, 1 process: {sqlite_rate:,.0f}/s",
            f"4 processes {rates[4] / rates[1]:.2f}x one",
            "(reported)",
            True,
        )
        # -- store cost
        costs = {
            "SQLite": run_worker(script, "store", str(Path(work) / "cost.sqlite3"), STORE_ROWS),
            "PostgreSQL": run_worker(script, "store", server.new_url(), STORE_ROWS),
        }
        report(
            f"store cost, {STORE_ROWS:,} requests and results",
            "; ".join(
                f"{name}: {c['request_us']:.1f} us per request, {c['result_us']:.1f} us per result"
                for name, c in costs.items()
            ),
            f"PostgreSQL {costs['PostgreSQL']['result_us'] / costs['SQLite']['result_us']:.2f}x"
            " SQLite per result",
            "(reported)",
            True,
        )
        # -- end to end
        source = write_input(Path(work) / "in.jsonl", N)
        with openai_emulator_process(**PHASES) as emulator:
            config = openai_config(emulator)
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BATCHCORE_"))
            }
            env.update(
                {
                    "OPENAI_API_KEY": config["api_key"],
                    "OPENAI_BASE_URL": config["base_url"],
                    "BATCHCORE_HOME": str(Path(work) / "home"),
                }
            )
            single = with_sqlite_run(Path(work) / "sqlite-run", source, env)
            times = {w: with_workers(server.new_url(), source, env, w) for w in (1, 2, 4)}
        report(
            "end to end, submit + workers --burst",
            ", ".join(f"{w} worker(s): {t:.1f} s" for w, t in times.items())
            + f"; one `batchcore run` on SQLite: {single:.1f} s",
            f"4 workers {times[1] / times[4]:.2f}x faster than 1; 1 worker "
            f"{times[1] / single:.2f}x the SQLite run's time",
            "(reported)",
            True,
        )
        note(
            "the batches themselves take 1.4 s in the emulator; what scales is the client's "
            "share: uploads, creates, polls, downloads and storing results"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"claim": claim_worker, "store": store_cost_worker}))
