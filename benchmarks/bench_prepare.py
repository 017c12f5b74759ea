"""Prepare: chat requests -> batch payload files on disk, against a hand-written json.dumps loop.

Throughput, OpenAI (JSONL) and Anthropic (the ``{"requests": [...]}`` create body), each
measured two ways on the same requests in the same fresh process (interleaved, median):

* from ``BatchRequest`` objects already built: ``provider.prepare_payloads(requests)`` against
  a loop that builds the same vendor dicts from the same objects and writes
  ``json.dumps(line) + "\\n"`` (target: at least 1.5x its throughput);
* from raw dicts, as read from a user's file: ``prepare_payloads(BatchRequest.from_json(d) for
  d in dicts)`` (parsing into requests, validation, conversion, splitting under the vendor's
  limits, duplicate detection) against the same loop building the vendor dicts from the raw
  dicts (no target of its own; reported for honesty).

The baseline loop validates nothing, splits nothing and checks no duplicates. The same
comparison is then repeated with batchcore running on the stdlib ``json`` instead of orjson
(``_stdlib_json/orjson.py``): the evidence for the core's orjson dependency.

Memory: peak RSS growth of a fresh process while it prepares 10k, 100k and 1M requests
streamed from a generator, the way a caller with a million requests feeds them (target: flat,
i.e. no more than allocator noise per extra request between the two largest sizes, and at
most 64 MiB).

Run: ``python benchmarks/bench_prepare.py`` (``BENCH_QUICK=1`` for smaller sizes).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from _common import (
    QUICK,
    chat_request_dicts,
    header,
    main_or_worker,
    mib,
    note,
    openai_line,
    peak_rss,
    report,
    run_worker,
    side_by_side,
    stdlib_json_env,
)

N = 20_000 if QUICK else 100_000
REPEAT = 3 if QUICK else 5
RSS_SIZES = (10_000, 100_000, 200_000) if QUICK else (10_000, 100_000, 1_000_000)
RSS_LIMIT = 64 << 20
FLAT_BYTES_PER_REQUEST = 32  # growth per extra request that still counts as flat
TARGET = 1.5

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


# -- the hand-written baselines ---------------------------------------------------------------


def anthropic_item(custom_id: str, model: str, messages: Any, params: Mapping[str, Any]) -> Any:
    """The Message Batches request a hand-written script builds (system prompt first)."""
    system, *turns = messages
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "system": system["content"],
            "messages": turns,
            "max_tokens": params["max_tokens"],
            "temperature": params["temperature"],
        },
    }


def write_jsonl(path: Path, lines: Iterable[Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")


def write_json_array(path: Path, items: Iterable[Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"requests":[')
        for index, item in enumerate(items):
            if index:
                out.write(",")
            out.write(json.dumps(item))
        out.write("]}")


def baseline_lines(vendor: str, source: str, data: list[Any]) -> Iterable[Any]:
    """The vendor dicts, built by hand from BatchRequests (``objects``) or raw dicts."""
    if vendor == "openai" and source == "objects":
        return (
            {
                "custom_id": r.custom_id,
                "method": "POST",
                "url": r.endpoint,
                "body": {"model": r.model, "messages": list(r.messages), **r.params},
            }
            for r in data
        )
    if vendor == "openai":
        return (openai_line(d) for d in data)
    if source == "objects":
        return (anthropic_item(r.custom_id, r.model, r.messages, r.params) for r in data)
    return (anthropic_item(d["custom_id"], d["model"], d["messages"], d) for d in data)


# -- workers (fresh processes) ----------------------------------------------------------------


def provider_for(vendor: str, workdir: str) -> Any:
    from batchcore import batch_provider_registry

    return batch_provider_registry.create(vendor, config={"workdir": workdir})


def contenders(
    provider: Any, vendor: str, source: str, data: list[Any], work: Path
) -> dict[str, Callable[[], float]]:
    """Ours and the baseline on *data* (BatchRequests or raw dicts), each timing itself."""
    from batchcore import BatchRequest

    write = write_jsonl if vendor == "openai" else write_json_array

    def ours() -> float:
        start = time.perf_counter()
        requests = data if source == "objects" else map(BatchRequest.from_json, data)
        payloads = provider.prepare_payloads(requests)
        elapsed = time.perf_counter() - start
        for payload in payloads:
            payload.discard()
        return elapsed

    def baseline() -> float:
        path = work / "baseline"
        start = time.perf_counter()
        write(path, baseline_lines(vendor, source, data))
        elapsed = time.perf_counter() - start
        path.unlink()
        return elapsed

    return {"ours": ours, "baseline": baseline}


def speed_worker(n: str, repeat: str) -> dict[str, Any]:
    """Seconds (median) of ours and the baseline, per vendor and source of requests."""
    from batchcore import BatchRequest

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        for vendor, model in MODELS.items():
            provider = provider_for(vendor, work)
            raw = list(chat_request_dicts(int(n), model=model))
            objects = [BatchRequest.from_json(d) for d in raw]
            for source, data in (("objects", objects), ("dicts", raw)):
                figures[f"{vendor}/{source}"] = side_by_side(
                    contenders(provider, vendor, source, data, Path(work)), int(repeat)
                )
    return figures


def rss_worker(vendor: str, n: str) -> dict[str, float]:
    """Peak RSS growth while preparing *n* requests streamed from a generator."""
    from batchcore import BatchRequest

    with tempfile.TemporaryDirectory() as work:
        provider = provider_for(vendor, work)
        for payload in provider.prepare_payloads(
            map(BatchRequest.from_json, chat_request_dicts(100, model=MODELS[vendor]))
        ):
            payload.discard()  # warm up: every code path loaded before the baseline reading
        before = peak_rss()
        start = time.perf_counter()
        payloads = provider.prepare_payloads(
            map(BatchRequest.from_json, chat_request_dicts(int(n), model=MODELS[vendor]))
        )
        elapsed = time.perf_counter() - start
        growth = peak_rss() - before
        size = sum(p.size_bytes for p in payloads)
        for payload in payloads:
            payload.discard()
    return {"growth": growth, "seconds": elapsed, "files": len(payloads), "bytes": size}


# -- the benchmark ----------------------------------------------------------------------------


def main() -> int:
    header(f"prepare {N:,} chat requests into payload files")
    script = __file__
    ours = run_worker(script, "speed", N, REPEAT)
    stdlib = run_worker(script, "speed", N, REPEAT, env=stdlib_json_env())
    for key, times in ours.items():
        vendor, source = key.split("/")
        speedup = times["baseline"] / times["ours"]
        what = "BatchRequest objects" if source == "objects" else "raw dicts (from_json included)"
        alone = stdlib[key]["baseline"] / stdlib[key]["ours"]
        report(
            f"{vendor}, from {what}",
            f"prepare_payloads {times['ours']:.2f} s ({N / times['ours']:,.0f} requests/s); "
            f"json.dumps loop {times['baseline']:.2f} s",
            f"{speedup:.2f}x its throughput (on the stdlib json instead of orjson: {alone:.2f}x)",
            f">= {TARGET}x" if source == "objects" else f">= {TARGET}x (informative)",
            speedup >= TARGET,
        )
    for vendor in MODELS:
        growths = {n: run_worker(script, "rss", vendor, n) for n in RSS_SIZES}
        largest = max(g["growth"] for g in growths.values())
        middle, top = RSS_SIZES[-2:]
        per_request = (growths[top]["growth"] - growths[middle]["growth"]) / (top - middle)
        report(
            f"{vendor} peak RSS growth while preparing (streamed from a generator)",
            "; ".join(
                f"{n:,}: {mib(g['growth'])} ({g['files']} files, {mib(g['bytes'])} "
                f"written, {g['seconds']:.1f} s)"
                for n, g in growths.items()
            ),
            f"at most {mib(largest)}; {per_request:.1f} bytes more per extra request from "
            f"{middle:,} to {top:,}",
            f"flat (<= {FLAT_BYTES_PER_REQUEST} bytes per extra request), <= {mib(RSS_LIMIT)}",
            largest <= RSS_LIMIT and per_request <= FLAT_BYTES_PER_REQUEST,
        )
    note("baseline loops validate nothing, split nothing and detect no duplicate custom_ids")
    return 0


if __name__ == "__main__":
    sys.exit(main_or_worker(main, {"speed": speed_worker, "rss": rss_worker}))
