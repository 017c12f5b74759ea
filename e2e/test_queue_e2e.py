"""A job bigger than the vendor's queue, driven by `batchcore worker --burst` processes on one
PostgreSQL store against the OpenAI emulator, whose queue of enqueued tokens holds 3 of the
job's 14 batches at a time. The workers admit the batches in waves: never more than 3 in the
queue, no batch refused, every custom_id exactly once, no request charged an attempt for the
wait (the job runs with one attempt per request), and as many waves as the queue allows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
from conftest import OPENAI_KEY, SteppingClock, finish, read_results, run_cli, start_worker

from batchcore import BatchRequest
from batchcore.jobs import JobStore
from batchcore.testing.emulation import QueueCap, input_tokens
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

PER_BATCH = 25
BATCHES = 14
AT_ONCE = 3
MODEL = "gpt-4o-mini"


def request(i: int) -> dict[str, Any]:
    # Every request of one length and one word count: every batch holds the same tokens.
    return {
        "custom_id": f"req-{i:05d}",
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"Question {i:05d}: is the sky blue today?"}],
    }


def one_batch(tmp_path: Path) -> tuple[int, int]:
    """(the runner's estimate, the emulator's count) of the tokens one batch enqueues."""
    provider = OpenAIBatchProvider(config={"api_key": OPENAI_KEY, "workdir": str(tmp_path)})
    requests = [BatchRequest.from_dict(request(i)) for i in range(PER_BATCH)]
    (payload,) = provider.prepare_payloads(requests)
    assert payload.path is not None
    lines = payload.path.read_bytes().splitlines()
    emulated = sum(input_tokens(orjson.loads(line)["body"]) for line in lines)
    payload.discard()
    return payload.tokens, emulated


def waves(batches: list[dict[str, Any]]) -> int:
    """How many waves the batches ran in, on the emulator's clock: the longest chain of
    batches each created after the one before it had completed (3 at a time: 14 batches make
    a chain of 5; one at a time, of 14)."""
    chain: dict[str, int] = {}
    for batch in sorted(batches, key=lambda b: b["created_at"]):
        before = [
            chain[b["id"]]
            for b in batches
            if b["id"] in chain and b["completed_at"] <= batch["created_at"]
        ]
        chain[batch["id"]] = 1 + max(before, default=0)
    return max(chain.values())


def test_workers_admit_a_big_job_into_a_small_queue_in_waves(
    tmp_path: Path,
    shared: tuple[dict[str, str], str],
    home: Path,
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
) -> None:
    estimate, emulated = one_batch(tmp_path)
    # The runner's estimate never counts fewer tokens than the vendor does: a job kept under
    # the cap by the estimate stays under the vendor's.
    assert estimate >= emulated
    openai_emulator.queue.cap = QueueCap(limit=AT_ONCE * emulated)  # the vendor holds 3
    env, url = shared
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b"".join(orjson.dumps(request(i)) + b"\n" for i in range(PER_BATCH * BATCHES))
    )
    done = run_cli(
        env,
        "submit",
        str(source),
        "--provider",
        "openai",
        "--max-attempts",
        "1",  # a wait charged as an attempt would fail requests
        "--poll-interval",
        "0.05:0.2",
        "--config",
        f"max_requests_per_batch={PER_BATCH}",
        "--config",
        f"max_enqueued_tokens={AT_ONCE * estimate}",
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    finish(
        [start_worker(env, tmp_path / f"w{n}", "--burst", "--concurrency", "3") for n in range(2)]
    )

    out = tmp_path / "out.jsonl"
    assert run_cli(env, "results", job_id, "-o", str(out)).returncode == 0
    results = read_results(out)
    ids = [r["custom_id"] for r in results]
    assert len(ids) == len(set(ids)) == PER_BATCH * BATCHES
    assert all(r["status"] == "succeeded" for r in results)
    batches = openai_emulator.batches()
    assert len(batches) == BATCHES  # exactly the batches the job needed: none refused
    assert openai_emulator.queue.refused == 0
    assert openai_emulator.queue.high_water == AT_ONCE * emulated  # 3 at a time, never more
    with JobStore(url, readonly=True) as store:
        attempts = store.database.query(
            "SELECT DISTINCT attempts FROM requests JOIN jobs ON key = job WHERE id=?", (job_id,)
        )
        assert [row["attempts"] for row in attempts] == [1]
        assert "queue_full" not in [e.kind for e in store.events(job_id)]
    ideal = math.ceil(BATCHES / AT_ONCE)
    # Close to the ideal: the three slots drift apart as batches end at slightly different
    # moments, so a batch may follow one of another slot and lengthen the longest chain by
    # one or two; a scheduler that waited for whole waves, or one slot at a time, is far off.
    assert ideal <= waves(batches) <= ideal + 2
