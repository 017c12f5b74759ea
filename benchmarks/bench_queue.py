"""The vendor's queue: a job far bigger than the queue, admitted in waves, against the ideal.

One job of ``N`` chat requests (1,000,000; ``BENCH_QUICK=1``: 100,000) in 20 batches goes
through ``BatchRunner.run`` against the OpenAI emulator, in its own process on the real clock
(a batch takes 40 s there: validating 2, processing 36, finalizing 2; quick: 6 s), whose queue
of enqueued input tokens holds 3 of those batches at a time (as OpenAI's per-model cap does).
The job's config says so (``max_enqueued_tokens``: 3 batches by the runner's estimate), so the
runner admits 3 batches, submits the next as each ends, and never sends one the vendor would
refuse.

* ours: the time from the job recorded (requests stored, payloads prepared) to its last result
  stored; also the whole run (recording and preparing included) and the results read back;
* baseline: the ideal schedule: ceil(20 / 3) = 7 waves, each one batch's duration at the
  emulator (validating + processing + finalizing), with no client time at all.

Target: ours at most 1.25x the ideal schedule, and no batch refused for capacity. Also printed:
the waves the batches actually ran in (the longest chain of batches each submitted after
another had ended) and the most batches in the vendor's queue at once.

Run: ``python benchmarks/bench_queue.py`` (``BENCH_QUICK=1``: 100,000 requests, short phases).
"""

from __future__ import annotations

import json
import math
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

N = 100_000 if QUICK else 1_000_000
BATCHES = 20
AT_ONCE = 3
PER_BATCH = N // BATCHES
# A batch at the emulator outlasts the client's work on a wave (uploading 3 batches, fetching
# and storing 3 x 50,000 results: about 25 s here), as a real batch (minutes to hours) does by
# far: the ratio then measures the schedule. With shorter phases it measures how fast the
# client stores results instead (bench_end_to_end.py and bench_store.py measure that).
PHASES = (
    {"validating": 0.5, "processing": 5.0, "finalizing": 0.5}
    if QUICK
    else {"validating": 2.0, "processing": 36.0, "finalizing": 2.0}
)
POLL = 0.2
TARGET = 1.25


def queue_sizes() -> tuple[int, int]:
    """(the runner's estimate, the emulator's count) of the input tokens the biggest batch
    enqueues: the caps are set to 3 of them on each side."""
    import orjson

    from batchcore import BatchRequest
    from batchcore.testing.emulation import input_tokens
    from batchcore.tokens import estimate_tokens
    from batchcore_openai import OpenAIBatchProvider

    # Later requests have longer numbers in them: the last batch is the biggest.
    last = list(chat_request_dicts(N))[-PER_BATCH:]
    requests = [BatchRequest.from_dict(r) for r in last]
    estimate = sum(estimate_tokens(r, provider="openai").expected for r in requests)
    wire = OpenAIBatchProvider(config={"api_key": "unused"})
    emulated = sum(input_tokens(orjson.loads(wire.encode_request(r))["body"]) for r in requests)
    return estimate, emulated


def ours_worker(server_json: str, cap: str) -> dict[str, Any]:
    from batchcore import BatchRequest, JobEvent, JobEventKind, batch_provider_registry
    from batchcore.jobs import BatchRunner, PollSchedule

    config = {
        **openai_config(json.loads(server_json)),
        "max_requests_per_batch": PER_BATCH,
        "max_enqueued_tokens": int(cap),
    }
    dicts = list(chat_request_dicts(N))
    batch_provider_registry.get("openai")
    submitted: dict[str, float] = {}
    ended: dict[str, float] = {}
    queued = [0, 0]  # now, most

    def observe(event: JobEvent) -> None:
        now = time.perf_counter()
        if event.kind is JobEventKind.SUBMITTED and event.batch_id:
            submitted[event.batch_id] = now
            queued[0] += 1
            queued[1] = max(queued)
        elif (
            event.status is not None
            and event.status.is_terminal
            and event.batch_id
            and event.batch_id not in ended
        ):
            ended[event.batch_id] = now
            queued[0] -= 1

    with tempfile.TemporaryDirectory() as home:
        runner = BatchRunner(
            Path(home) / "jobs.sqlite3",
            poll=PollSchedule(min_interval=POLL, max_interval=POLL, jitter=0),
            observers=[observe],
        )
        start = time.perf_counter()
        job_id = runner.create("openai", map(BatchRequest.from_dict, dicts), config=config)
        recorded = time.perf_counter()
        info = runner.drive(job_id, config=config)
        finished = time.perf_counter()
        ids = {r.custom_id for r in runner.results(job_id)}
        read = time.perf_counter()
        events = runner.store.events(job_id)
        rows = runner.store.batches(job_id)
    assert info.all_succeeded and len(ids) == N, "the job did not return every result"
    return {
        "record": recorded - start,
        "drive": finished - recorded,
        "read": read - finished,
        "refusals": sum(1 for e in events if e.kind == "queue_full"),
        "batches": sum(1 for b in rows if b.batch_id),
        "waves": _waves(submitted, ended),
        "most_queued": queued[1],
    }


def _waves(submitted: dict[str, float], ended: dict[str, float]) -> int:
    """The longest chain of batches each submitted after the one before it had ended."""
    chain: dict[str, int] = {}
    for batch in sorted(submitted, key=submitted.__getitem__):
        before = [chain[b] for b in chain if ended.get(b, math.inf) <= submitted[batch]]
        chain[batch] = 1 + max(before, default=0)
    return max(chain.values(), default=0)


def main() -> int:
    header("the vendor's queue: a big job admitted in waves")
    estimate, emulated = queue_sizes()
    if estimate < emulated:
        print("   the runner's estimate counts fewer tokens than the emulator: cannot set caps")
        return 0
    spec = {**PHASES, "queue_tokens": AT_ONCE * emulated}
    with openai_emulator_process(**spec) as server:
        ours = run_worker(__file__, "ours", json.dumps(server), AT_ONCE * estimate)
    waves = math.ceil(BATCHES / AT_ONCE)
    duration = sum(PHASES.values())
    ideal = waves * duration
    ratio = ours["drive"] / ideal
    report(
        f"{N:,} requests in {BATCHES} batches, the queue holding {AT_ONCE}",
        f"job recorded to last result stored {ours['drive']:.1f} s; ideal {waves} waves x "
        f"{duration:g} s = {ideal:.1f} s",
        f"{ratio:.2f}x the ideal schedule, {ours['refusals']} refusals",
        f"<= {TARGET}x, 0 refusals",
        ratio <= TARGET and ours["refusals"] == 0,
    )
    note(
        f"waves observed {ours['waves']} (ideal {waves}); at most {ours['most_queued']} batches "
        f"queued; {ours['batches']} batches at the vendor"
    )
    note(
        f"whole run {ours['record'] + ours['drive'] + ours['read']:.1f} s: recording and "
        f"preparing {ours['record']:.1f} s, driving {ours['drive']:.1f} s, reading the results "
        f"back {ours['read']:.1f} s"
    )
    note(f"caps: {AT_ONCE * estimate:,} tokens by the runner's estimate, {AT_ONCE * emulated:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"ours": ours_worker}))
