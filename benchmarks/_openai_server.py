"""An OpenAI emulator in a process of its own, for the parse and end-to-end benchmarks.

A separate process, as the real API is: the client under test shares neither its interpreter
nor its CPU time with the server. Run with one JSON argument::

    {"validating": 0.2, "processing": 1.0, "finalizing": 0.2,      # phases, real clock
     "completed_lines": 100000, "answer_chars": 560,               # optional
     "queue_tokens": 5400000}                                      # optional: a queue cap

With ``completed_lines`` it first builds a completed batch of that many chat requests whose
answers make output lines of about ``answer_chars`` + 450 bytes, through the emulator's normal
flow (upload, create, poll). It prints one JSON line (``url``, ``api_key``, and for a completed
batch ``batch_id``, ``output_file_id``, ``output_bytes``), then serves until stdin closes.
With ``queue_tokens``, the emulator's queue holds at most that many enqueued input tokens per
model (counted as its answers' usage counts them), as OpenAI's does.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

from batchcore import BatchRequest
from batchcore.testing.emulation import QueueCap
from batchcore_openai import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

API_KEY = "sk-bench-0123456789"
_WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "light",
    "scatters",
    "in",
    "the",
    "air",
)


def answer_text(i: int, chars: int) -> str:
    """Text of about *chars* characters; the emulator echoes it back as the answer."""
    words: list[str] = [f"Question-{i}:"]
    size = len(words[0])
    while size < chars:
        word = _WORDS[(i + len(words)) % len(_WORDS)]
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def completed_batch(emulator: OpenAIEmulator, lines: int, chars: int) -> dict[str, Any]:
    config = {"base_url": emulator.url + "/v1", "api_key": API_KEY, "max_requests_per_batch": lines}
    with (
        tempfile.TemporaryDirectory() as work,
        OpenAIBatchProvider(config={**config, "workdir": work}) as provider,
    ):
        requests = (
            BatchRequest(
                custom_id=f"request-{i:07d}",
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": answer_text(i, chars)}],
                params={"max_tokens": 4096},
            )
            for i in range(lines)
        )
        (payload,) = provider.prepare_payloads(requests)
        handle = provider.submit(payload)
        payload.discard()
        while not (status := provider.poll_status(handle)).is_terminal:
            time.sleep(0.05)
    output_file_id = (status.raw or {})["output_file_id"]
    size = next(f["bytes"] for f in emulator.files() if f["id"] == output_file_id)
    return {
        "batch_id": handle.batch_id,
        "created_at": handle.created_at.timestamp(),
        "input_file_id": handle.metadata["input_file_id"],
        "output_file_id": output_file_id,
        "output_bytes": size,
        "lines": lines,
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    emulator = OpenAIEmulator(
        clock=time.time,
        api_key=API_KEY,
        max_requests=max(50_000, spec.get("completed_lines", 0)),
        validating_seconds=spec.get("validating", 0.0),
        processing_seconds=spec.get("processing", 0.0),
        finalizing_seconds=spec.get("finalizing", 0.0),
        queue_cap=QueueCap(limit=spec["queue_tokens"]) if spec.get("queue_tokens") else None,
    )
    with emulator:
        info: dict[str, Any] = {"url": emulator.url, "api_key": API_KEY}
        if spec.get("completed_lines"):
            info.update(completed_batch(emulator, spec["completed_lines"], spec["answer_chars"]))
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # serve until the benchmark closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(main())
