"""End to end: chat requests through the job runner, against a raw ``openai`` SDK script.

All sides talk to the same OpenAI emulator, running in its own process on the real clock with
short phases (validating 0.2 s, processing 1 s, finalizing 0.2 s), and poll every 0.2 s. Each
run is a fresh process; the clock starts with the requests in memory as dicts and the imports
done, and stops with every result in hand and written to an output file:

* ours: ``BatchRunner(...).run("openai", map(BatchRequest.from_json, dicts), config=...)`` with
  ``PollSchedule(min_interval=0.2, max_interval=0.2, jitter=0)``, then every result read back
  from the job store and written as the CLI writes it. The runner validates every request,
  records the job, its requests and every result durably in SQLite before reporting them, and
  could resume after a crash;
* baseline: the script anyone would write with the ``openai`` SDK: ``json.dumps`` each line to
  a JSONL file, upload it, create the batch, retrieve it every 0.2 s until it ends, download
  the output file, write it out and ``json.loads`` each line. No validation, nothing durable;
* LiteLLM's batches API (``litellm.create_file`` / ``create_batch`` / ``retrieve_batch`` /
  ``file_content``), when ``litellm`` is installed, doing what the baseline does.

Target: ours at most 1.2x the raw script's *in-process* time (CPU seconds of the client
process, all threads: what the client itself costs, apart from the vendor's work that both
wait for) at 50,000 requests, and a ratio that does not grow with N (200,000 requests, 4
batches). Wall time is reported beside it. Runs alternate; the median counts.

Run: ``python benchmarks/bench_end_to_end.py`` (``BENCH_QUICK=1``: 10,000 requests, one run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
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

#: (requests, runs of each side): 200,000 is 4 batches, to show the ratio does not grow with N.
SIZES = ((10_000, 1),) if QUICK else ((10_000, 3), (50_000, 3), (200_000, 1))
POLL = 0.2
PHASES = {"validating": 0.2, "processing": 1.0, "finalizing": 0.2}
TARGET = 1.2
TERMINAL = ("completed", "failed", "expired", "cancelled")


def ours_worker(server_json: str, n: str) -> dict[str, Any]:
    from batchcore import BatchRequest, JobEvent, JobEventKind, batch_provider_registry
    from batchcore.cli import result_line
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
        start, cpu = time.perf_counter(), time.process_time()
        info = runner.run("openai", map(BatchRequest.from_json, requests), config=config)
        moments["run"] = time.perf_counter()
        results = 0
        with open(Path(work) / "results.jsonl", "wb") as out:
            for result in runner.results(info.id):
                out.write(result_line(result, sandbox=False))
                results += result.ok
        end, cpu = time.perf_counter(), time.process_time() - cpu
        store.close()
    return {
        "seconds": end - start,
        "cpu": cpu,
        "succeeded": results,
        "phases": {
            "until submitted": moments["submitted"] - start,
            "batch running": moments["ended"] - moments["submitted"],
            "results in hand": end - moments["ended"],
        },
    }


#: The most requests OpenAI takes in one batch: the scripts split a bigger job into files of this.
BATCH_REQUESTS = 50_000


def script_side(
    n: int,
    upload: Callable[[Any], Any],
    create: Callable[[str], Any],
    retrieve: Callable[[str], Any],
    content: Callable[[str], bytes],
) -> dict[str, Any]:
    """The hand-written script, on one client's calls: ``json.dumps`` each line to JSONL files
    of at most :data:`BATCH_REQUESTS` lines, upload and create a batch of each, poll every
    batch until all have ended, download each output, write it out and ``json.loads`` it."""
    requests = list(chat_request_dicts(n))
    with tempfile.TemporaryDirectory() as work:
        start, cpu = time.perf_counter(), time.process_time()
        batches = []
        for first in range(0, n, BATCH_REQUESTS):
            path = Path(work) / f"batch-{first}.jsonl"
            with open(path, "w", encoding="utf-8") as out:
                for request in requests[first : first + BATCH_REQUESTS]:
                    out.write(json.dumps(openai_line(request)) + "\n")
            with open(path, "rb") as handle:
                batches.append(create(upload(handle).id))
        submitted = time.perf_counter()
        while any(batch.status not in TERMINAL for batch in batches):
            time.sleep(POLL)
            batches = [
                batch if batch.status in TERMINAL else retrieve(batch.id) for batch in batches
            ]
        ended = time.perf_counter()
        results: list[dict[str, Any]] = []
        with open(Path(work) / "results.jsonl", "wb") as out:
            for batch in batches:
                for file_id in (batch.output_file_id, batch.error_file_id):
                    if file_id:
                        data = content(file_id)
                        out.write(data)
                        results.extend(json.loads(line) for line in data.splitlines() if line)
        end, cpu = time.perf_counter(), time.process_time() - cpu
    succeeded = sum((r.get("response") or {}).get("status_code") == 200 for r in results)
    return {
        "seconds": end - start,
        "cpu": cpu,
        "succeeded": succeeded,
        "phases": {
            "until submitted": submitted - start,
            "batch running": ended - submitted,
            "results in hand": end - ended,
        },
    }


def raw_worker(server_json: str, n: str) -> dict[str, Any]:
    import openai

    config = openai_config(json.loads(server_json))
    client = openai.OpenAI(base_url=config["base_url"], api_key=config["api_key"])
    return script_side(
        int(n),
        upload=lambda handle: client.files.create(file=handle, purpose="batch"),
        create=lambda file_id: client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
        retrieve=client.batches.retrieve,
        content=lambda file_id: client.files.content(file_id).content,
    )


def litellm_worker(server_json: str, n: str) -> dict[str, Any]:
    # LiteLLM fetches its price list from GitHub at import unless told to use its bundled copy:
    # a benchmark talks to loopback only.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    config = openai_config(json.loads(server_json))
    where = {"custom_llm_provider": "openai", "api_base": config["base_url"]}
    where["api_key"] = config["api_key"]
    return script_side(
        int(n),
        upload=lambda handle: litellm.create_file(file=handle, purpose="batch", **where),
        create=lambda file_id: litellm.create_batch(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            **where,
        ),
        retrieve=lambda batch_id: litellm.retrieve_batch(batch_id=batch_id, **where),
        content=lambda file_id: litellm.file_content(file_id=file_id, **where).content,
    )


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main() -> int:
    sides = ["ours", "raw", *(["litellm"] if installed("litellm") else [])]
    header("end to end against the OpenAI emulator: " + ", ".join(sides))
    if "litellm" not in sides:
        note("litellm is not installed: its column is left out (pip install litellm)")
    script = __file__
    ratios: dict[int, float] = {}
    with openai_emulator_process(**PHASES) as server:
        served = json.dumps(server)
        for n, repeat in SIZES:
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for _ in range(repeat):
                for side, outcomes in runs.items():
                    outcome = run_worker(script, side, served, n)
                    if outcome["succeeded"] != n:
                        raise RuntimeError(f"{side}: {outcome['succeeded']} of {n} succeeded")
                    outcomes.append(outcome)
            cpu = {side: median([o["cpu"] for o in runs[side]]) for side in sides}
            wall = {side: median([o["seconds"] for o in runs[side]]) for side in sides}
            ratios[n] = cpu["ours"] / cpu["raw"]
            report(
                f"{n:,} requests, BatchRunner.run + results written",
                f"in-process {cpu['ours']:.2f} s CPU, raw openai SDK script {cpu['raw']:.2f} s "
                f"(median of {repeat}); wall {wall['ours']:.2f} s vs {wall['raw']:.2f} s "
                f"({wall['ours'] / wall['raw']:.2f}x; the batch itself takes "
                f"{sum(PHASES.values()):.1f} s in the emulator)",
                f"{ratios[n]:.2f}x its in-process time",
                f"<= {TARGET}x",
                ratios[n] <= TARGET,
            )
            if "litellm" in sides:
                print(
                    f"      litellm batches API: in-process {cpu['litellm']:.2f} s CPU, wall "
                    f"{wall['litellm']:.2f} s; ours is {cpu['ours'] / cpu['litellm']:.2f}x its "
                    f"in-process time, {wall['ours'] / wall['litellm']:.2f}x its wall time"
                )
            for phase in runs["ours"][0]["phases"]:
                mine, theirs = (
                    median([o["phases"][phase] for o in runs[s]]) for s in ("ours", "raw")
                )
                print(f"      {phase:>16} (wall): ours {mine:5.2f} s, raw script {theirs:5.2f} s")
    if len(ratios) > 1:
        sizes = sorted(ratios)
        grows = ratios[sizes[-1]] > ratios[sizes[1] if len(sizes) > 2 else sizes[0]] + 0.1
        report(
            "growth with N",
            ", ".join(f"{n:,}: {ratios[n]:.2f}x" for n in sizes),
            "the in-process ratio " + ("grows" if grows else "does not grow") + " with N",
            "flat (within 0.1 from 50,000 up)",
            not grows,
        )
    note("ours also validates every request and stores requests and results durably")
    return 0


if __name__ == "__main__":
    sys.exit(
        main_or_worker(main, {"ours": ours_worker, "raw": raw_worker, "litellm": litellm_worker})
    )
