"""Parse: the results of a completed OpenAI batch, against a hand-written json.loads loop.

An OpenAI emulator in its own process holds a completed batch of 100,000 chat requests whose
output lines are realistic chat completions of about 1 KB each (built through its normal
flow: upload, create, poll). In a fresh process, side by side (interleaved, median):

* ours: ``OpenAIBatchProvider.fetch_results(handle)`` consumed to the end: a status call, the
  output file streamed over HTTP (loopback) through the ``openai`` SDK, each line parsed into
  a ``BatchResult`` (status, text, usage, response), each custom_id checked for duplicates;
* baseline: ``json.loads`` of each line of the same output bytes, already in memory (no HTTP,
  no result objects) (target: ours at least 1.5x its throughput).

The same comparison runs again with batchcore on the stdlib ``json`` instead of orjson
(``_stdlib_json/orjson.py``), the evidence for the core's orjson dependency.

Memory: peak RSS growth of a fresh process consuming ``fetch_results`` for 20k and 100k lines
(target: flat, i.e. no more than allocator noise per extra line).

Run: ``python benchmarks/bench_parse.py`` (``BENCH_QUICK=1`` for smaller sizes).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from _common import (
    QUICK,
    header,
    main_or_worker,
    mib,
    note,
    openai_config,
    openai_emulator_process,
    peak_rss,
    report,
    run_worker,
    side_by_side,
    stdlib_json_env,
)

N = 20_000 if QUICK else 100_000
REPEAT = 3 if QUICK else 5
SMALL = 5_000 if QUICK else 20_000
ANSWER_CHARS = 560  # with the emulator's chat.completion envelope: output lines of ~1 KB
TARGET = 1.5
FLAT_BYTES_PER_LINE = 32  # growth per extra line that still counts as flat (allocator noise)


def _provider_and_handle(server_json: str) -> tuple[Any, Any, dict[str, Any]]:
    from batchcore import BatchHandle
    from batchcore_openai import OpenAIBatchProvider

    server = json.loads(server_json)
    provider = OpenAIBatchProvider(config=openai_config(server))
    handle = BatchHandle(
        provider="openai",
        batch_id=server["batch_id"],
        created_at=server["created_at"],
        metadata={"input_file_id": server["input_file_id"]},
    )
    return provider, handle, server


def _consume(provider: Any, handle: Any) -> int:
    count = 0
    for result in provider.fetch_results(handle):
        if result.text is None:
            raise RuntimeError(f"{result.custom_id}: no text in the result")
        count += 1
    return count


def speed_worker(server_json: str, repeat: str) -> dict[str, Any]:
    import openai

    provider, handle, server = _provider_and_handle(server_json)
    config = openai_config(server)
    client = openai.OpenAI(base_url=config["base_url"], api_key=config["api_key"])
    data = client.files.content(server["output_file_id"]).content  # outside the timing

    def ours() -> float:
        start = time.perf_counter()
        count = _consume(provider, handle)
        elapsed = time.perf_counter() - start
        if count != server["lines"]:
            raise RuntimeError(f"fetch_results gave {count} results, not {server['lines']}")
        return elapsed

    def baseline() -> float:
        start = time.perf_counter()
        count = 0
        for line in data.splitlines():
            if line:
                json.loads(line)
                count += 1
        elapsed = time.perf_counter() - start
        if count != server["lines"]:
            raise RuntimeError(f"the output has {count} lines, not {server['lines']}")
        return elapsed

    return side_by_side({"ours": ours, "baseline": baseline}, int(repeat))


def rss_worker(server_json: str) -> dict[str, float]:
    provider, handle, server = _provider_and_handle(server_json)
    provider.poll_status(handle)  # warm up: SDK client built before the baseline reading
    before = peak_rss()
    count = _consume(provider, handle)
    return {"growth": peak_rss() - before, "lines": count, "bytes": server["output_bytes"]}


def main() -> int:
    header(f"parse the results of a completed {N:,}-request OpenAI batch")
    script = __file__
    with openai_emulator_process(completed_lines=N, answer_chars=ANSWER_CHARS) as server:
        print(
            f"   output file: {server['lines']:,} lines, {mib(server['output_bytes'])} "
            f"({server['output_bytes'] / server['lines']:,.0f} bytes a line)"
        )
        served = json.dumps(server)
        ours = run_worker(script, "speed", served, REPEAT)
        stdlib = run_worker(script, "speed", served, REPEAT, env=stdlib_json_env())
        large = run_worker(script, "rss", served)
    speedup = ours["baseline"] / ours["ours"]
    alone = stdlib["baseline"] / stdlib["ours"]
    report(
        "fetch_results from the emulator",
        f"{ours['ours']:.2f} s ({N / ours['ours']:,.0f} results/s, over HTTP); json.loads loop "
        f"over the same bytes in memory {ours['baseline']:.2f} s",
        f"{speedup:.2f}x its throughput (on the stdlib json instead of orjson: {alone:.2f}x)",
        f">= {TARGET}x",
        speedup >= TARGET,
    )
    with openai_emulator_process(completed_lines=SMALL, answer_chars=ANSWER_CHARS) as server:
        small = run_worker(script, "rss", json.dumps(server))
    per_line = (large["growth"] - small["growth"]) / (N - SMALL)
    report(
        "peak RSS growth while consuming fetch_results",
        f"{SMALL:,} lines: {mib(small['growth'])}; {N:,} lines: {mib(large['growth'])}",
        f"{per_line:.0f} bytes more per extra line",
        f"flat (at most {FLAT_BYTES_PER_LINE} bytes per extra line)",
        per_line <= FLAT_BYTES_PER_LINE,
    )
    note("the baseline reads bytes already in memory; ours includes the HTTP download")
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"speed": speed_worker, "rss": rss_worker}))
