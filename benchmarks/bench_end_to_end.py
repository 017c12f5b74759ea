"""End to end: 50,000 chat requests through the job runner, against a raw ``openai`` SDK script.

Both sides talk to the same OpenAI emulator, running in its own process on the real clock with
short phases (validating 0.2 s, processing 1 s, finalizing 0.2 s), and poll every 0.2 s. Each
run is a fresh process; the clock starts with the requests in memory as dicts and the imports
done, and stops with every result in hand:

* ours: ``BatchRunner(...).run("openai", map(BatchRequest.from_json, dicts), config=...)`` with
  ``PollSchedule(min_interval=0.2, max_interval=0.2, jitter=0)``, then every result read back
  from the job store. The runner validates every request, records the job, its requests and
  every result durably in SQLite, and could resume after a crash;
* baseline: the script anyone would write: ``json.dumps`` each line to a JSONL file, upload it,
  create the batch, retrieve it every 0.2 s until it ends, download the output file and
  ``json.loads`` each line. No validation, nothing durable.

Target: ours at most 1.2x the raw script's wall time. Runs alternate; the median counts.

Run: ``python benchmarks/bench_end_to_end.py`` (``BENCH_QUICK=1``: 10,000 requests, one run
each).
"""

from __future__ import annotations

import json
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
    median,
    note,
    openai_config,
    openai_emulator_process,
    openai_line,
    report,
    run_worker,
)

N = 10_000 if QUICK else 50_000
REPEAT = 1 if QUICK else 3
POLL = 0.2
PHASES = {"validating": 0.2, "processing": 1.0, "finalizing": 0.2}
TARGET = 1.2
TERMINAL = ("completed", "failed", "expired", "cancelled")


def ours_worker(server_json: str, n: str) -> dict[str, Any]:
    from batchcore import BatchRequest, JobEvent, JobEventKind, batch_provider_registry
    from batchcore.jobs import BatchRunner, JobStore, PollSchedule

    config = openai_config(json.loads(server_json))
    requests = list(chat_request_dicts(int(n)))
    batch_provider_registry.get("openai")  # imports done before the clock, as in the baseline
    moments: dict[str, float] = {}

    def observe(event: JobEvent) -> None:
        if event.kind is JobEventKind.SUBMITTED:
            moments["submitted"] = time.perf_counter()
        elif event.status is not None and event.status.is_terminal:
            moments.setdefault("ended", time.perf_counter())
        if event.kind is JobEventKind.RESULTS_FETCHED:
            moments["fetched"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as work:
        store = JobStore(Path(work) / "jobs.sqlite3")
        runner = BatchRunner(
            store,
            poll=PollSchedule(min_interval=POLL, max_interval=POLL, jitter=0),
            observers=[observe],
        )
        start = time.perf_counter()
        info = runner.run("openai", map(BatchRequest.from_json, requests), config=config)
        moments["run"] = time.perf_counter()
        results = sum(1 for result in runner.results(info.id) if result.ok)
        end = time.perf_counter()
        store.close()
    return {
        "seconds": end - start,
        "succeeded": results,
        "phases": {
            "until submitted": moments["submitted"] - start,
            "batch running": moments["ended"] - moments["submitted"],
            "results in hand": end - moments["ended"],
        },
    }


def raw_worker(server_json: str, n: str) -> dict[str, Any]:
    import openai

    config = openai_config(json.loads(server_json))
    requests = list(chat_request_dicts(int(n)))
    client = openai.OpenAI(base_url=config["base_url"], api_key=config["api_key"])
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "batch.jsonl"
        start = time.perf_counter()
        with open(path, "w", encoding="utf-8") as out:
            for request in requests:
                out.write(json.dumps(openai_line(request)) + "\n")
        with open(path, "rb") as upload:
            uploaded = client.files.create(file=upload, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        submitted = time.perf_counter()
        while batch.status not in TERMINAL:
            time.sleep(POLL)
            batch = client.batches.retrieve(batch.id)
        ended = time.perf_counter()
        results: list[dict[str, Any]] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = client.files.content(file_id).content
                results.extend(json.loads(line) for line in content.splitlines() if line)
        end = time.perf_counter()
    succeeded = sum((r.get("response") or {}).get("status_code") == 200 for r in results)
    return {
        "seconds": end - start,
        "succeeded": succeeded,
        "phases": {
            "until submitted": submitted - start,
            "batch running": ended - submitted,
            "results in hand": end - ended,
        },
    }


def main() -> int:
    header(f"end to end: {N:,} requests against the OpenAI emulator")
    script = __file__
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "raw": []}
    with openai_emulator_process(**PHASES) as server:
        served = json.dumps(server)
        for _ in range(REPEAT):
            for side, outcomes in runs.items():
                outcome = run_worker(script, side, served, N)
                if outcome["succeeded"] != N:
                    raise RuntimeError(f"{side}: {outcome['succeeded']} of {N} succeeded")
                outcomes.append(outcome)
    ours, raw = (median([o["seconds"] for o in runs[side]]) for side in ("ours", "raw"))
    report(
        "BatchRunner.run + results",
        f"{ours:.2f} s; raw openai SDK script {raw:.2f} s (median of {REPEAT}; the batch "
        f"itself takes {sum(PHASES.values()):.1f} s in the emulator)",
        f"{ours / raw:.2f}x its wall time",
        f"<= {TARGET}x",
        ours / raw <= TARGET,
    )
    for phase in runs["ours"][0]["phases"]:
        mine, theirs = (median([o["phases"][phase] for o in runs[s]]) for s in ("ours", "raw"))
        print(f"      {phase:>16}: ours {mine:5.2f} s, raw script {theirs:5.2f} s")
    note("ours also validates every request and stores requests and results durably")
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"ours": ours_worker, "raw": raw_worker}))
