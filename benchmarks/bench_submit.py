"""Submit: a 1,000,000-request job through ``batchcore submit``, against a hand-written loop.

``batchcore submit`` runs as a real CLI process against the OpenAI emulator (its own process, a
tier-5 queue as :func:`_common.openai_config` gives it): it reads a JSONL file of unified chat
requests, validates each one, records the job and every request durably in a fresh SQLite store,
writes the payload files (20 batches of 50,000) and uploads and creates every batch. The
baseline is the loop anyone would write to make the same OpenAI batch input: ``json.loads`` each
input line, build the OpenAI line, ``json.dumps`` it to a JSONL file (nothing validated, nothing
durable, nothing uploaded). Both run in fresh processes, in turns; the median counts.

Reported, each with its target:

* time: CPU seconds (user + system, all threads) of the submit process against the baseline
  process's, both from spawn to exit (wall seconds beside them: the submit's wall time also
  holds the emulator validating every uploaded line, in its own process, before it answers a
  create, which the real API does after answering);
* the submit process's peak resident set size (``ru_maxrss``; MB are 10^6 bytes);
* the store's size on disk after the submit (the SQLite file with its WAL) against the bytes it
  must keep: each request once, as its custom_id plus its OpenAI request body as compact JSON
  (what rebuilding the request needs; this job has no non-default endpoint or provider_params);
* the resume scan: in a fresh process (imports done first), opening the store and
  ``BatchRunner.info`` of the job: what ``batchcore resume``/``status`` read before anything else.

Run: ``python benchmarks/bench_submit.py`` (``BENCH_QUICK=1``: 100,000 requests).
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
    TIER_5_QUEUE,
    chat_request_dicts,
    header,
    main_or_worker,
    median,
    note,
    openai_emulator_process,
    openai_line,
    report,
    run_worker,
)

N = 100_000 if QUICK else 1_000_000
RUNS = 3 if QUICK else 2
TIME_TARGET = 2.0
RSS_TARGET = 150_000_000
STORE_TARGET = 1.2
SCAN_TARGET = 0.5
#: The emulator's batches stay in validation: nothing but the submit runs on its side.
PHASES = {"validating": 3600.0, "processing": 1.0, "finalizing": 1.0}


def write_input(path: Path, n: int) -> int:
    """Write *n* unified chat requests to *path*; returns the bytes a store must keep for them
    (each custom_id plus its OpenAI body as compact JSON)."""
    must_keep = 0
    with open(path, "w", encoding="utf-8") as out:
        for request in chat_request_dicts(n):
            out.write(json.dumps(request) + "\n")
            body = json.dumps(
                openai_line(request)["body"], separators=(",", ":"), ensure_ascii=False
            )
            must_keep += len(request["custom_id"].encode()) + len(body.encode())
    return must_keep


def measured(command: list[str], env: dict[str, str], out: Path) -> dict[str, Any]:
    """Run *command* to its end; its wall and CPU seconds, peak RSS and stdout."""
    with open(out, "w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{command[2:4]} failed ({proc.returncode}):\n{stderr.read()}")
        stdout.seek(0)
        text = stdout.read()
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": rss, "stdout": text}


def store_bytes(path: Path) -> int:
    return sum(
        p.stat().st_size
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if p.exists()
    )


def ours(source: Path, home: Path, server: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BATCHCORE_"))}
    env.update({"OPENAI_API_KEY": server["api_key"], "BATCHCORE_HOME": str(home)})
    command = [
        sys.executable,
        "-m",
        "batchcore.cli",
        "submit",
        str(source),
        "--provider",
        "openai",
        "--json",
        "--config",
        f"base_url={server['url']}/v1",
        "--config",
        f"max_enqueued_tokens={TIER_5_QUEUE}",
    ]
    run = measured(command, env, home.parent / f"{home.name}.out")
    info = json.loads(run["stdout"].strip().splitlines()[-1])
    assert info["request_count"] == N and all(b["batch_id"] for b in info["batches"]), info
    store = home / "jobs.sqlite3"
    run["store"] = store_bytes(store)
    run["scan"] = run_worker(__file__, "scan", store, info["id"])["seconds"]
    return run


def baseline(source: Path, work: Path) -> dict[str, Any]:
    target = work / "baseline.jsonl"
    command = [sys.executable, __file__, "--worker", "baseline", str(source), str(target)]
    run = measured(command, dict(os.environ), work / "baseline.out")
    target.unlink()
    return run


def baseline_worker(source: str, target: str) -> int:
    """The hand-written loop: one OpenAI batch line per input line, ``json.dumps``-ed."""
    count = 0
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(openai_line(json.loads(line))) + "\n")
            count += 1
    return count


def scan_worker(store: str, job_id: str) -> dict[str, float]:
    from batchcore.jobs import BatchRunner, JobStore

    start = time.perf_counter()
    with JobStore(store) as opened:
        info = BatchRunner(opened, heartbeat=False).info(job_id)
        seconds = time.perf_counter() - start
    assert info.request_count == N
    return {"seconds": seconds}


def main() -> int:
    header(f"submit: {N:,} requests through `batchcore submit` against a json.dumps loop")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "input.jsonl"
        must_keep = write_input(source, N)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        with openai_emulator_process(**PHASES) as server:
            for attempt in range(RUNS):
                home = work / f"home-{attempt}"
                runs["ours"].append(ours(source, home, server))
                subprocess.run(["rm", "-rf", str(home)], check=True)  # disk: one store at a time
                runs["baseline"].append(baseline(source, work))
        mine, theirs = runs["ours"], runs["baseline"]
        cpu, base_cpu = median([r["cpu"] for r in mine]), median([r["cpu"] for r in theirs])
        wall, base_wall = median([r["wall"] for r in mine]), median([r["wall"] for r in theirs])
        ratio = cpu / base_cpu
        report(
            "time",
            f"batchcore submit {cpu:.1f} CPU s ({wall:.1f} s wall); hand-written json.dumps loop "
            f"{base_cpu:.1f} CPU s ({base_wall:.1f} s wall)",
            f"{ratio:.2f}x the loop's CPU time ({wall / base_wall:.2f}x its wall time)",
            f"<= {TIME_TARGET}x",
            ratio <= TIME_TARGET,
        )
        rss = max(r["rss"] for r in mine)
        report(
            "memory",
            f"submit process peak RSS {rss / 1e6:.1f} MB",
            f"{rss / RSS_TARGET:.2f}x the target",
            f"<= {RSS_TARGET / 1e6:.0f} MB",
            rss <= RSS_TARGET,
        )
        size = median([r["store"] for r in mine])
        report(
            "store size",
            f"{size / 1e6:.1f} MB on disk; must keep {must_keep / 1e6:.1f} MB (each request "
            f"once: custom_id + OpenAI body as compact JSON, {must_keep / N:.0f} bytes a request)",
            f"{size / must_keep:.2f}x what it must keep ({size / N:.0f} bytes a request)",
            f"<= {STORE_TARGET}x",
            size / must_keep <= STORE_TARGET,
        )
        scan = median([r["scan"] for r in mine])
        report(
            "resume scan",
            f"open + BatchRunner.info of the {N:,}-request job in a fresh process: "
            f"{scan * 1000:.0f} ms",
            f"{scan / SCAN_TARGET:.2f}x the target",
            f"<= {SCAN_TARGET} s",
            scan <= SCAN_TARGET,
        )
        note(f"median of {RUNS} runs of each, taking turns; a fresh store for every run")
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"baseline": baseline_worker, "scan": scan_worker}))
