"""``batchcore run FILE --provider mistral --sandbox``, end to end, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import EMBED_MODEL, MODEL


def _run(tmp_path: Path, lines: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    source = tmp_path / "input.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MISTRAL_", "BATCHCORE_"))}
    env["BATCHCORE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchcore",
            "run",
            str(source),
            "--provider",
            "mistral",
            "--sandbox",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SANDBOX" in done.stderr
    return {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_batchcore_run_on_the_sandbox(tmp_path: Path) -> None:
    results = _run(
        tmp_path,
        [
            {
                "custom_id": "greet",
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Say hello"},
                ],
                "params": {"max_tokens": 32, "temperature": 0.2, "seed": 7},
            },
            {
                "custom_id": "typed",
                "model": MODEL,
                "messages": [{"role": "user", "content": "A city, as JSON"}],
                "params": {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {
                            "name": "city",
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}},
                                "required": ["name"],
                                "additionalProperties": False,
                            },
                        },
                    }
                },
                "provider_params": {"mistral": {"safe_prompt": True}},
            },
            # An OpenAI batch input line runs as it is.
            {
                "custom_id": "openai-line",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
            },
            {
                "custom_id": "vector",
                "model": EMBED_MODEL,
                "endpoint": "/v1/embeddings",
                "params": {"input": "hello world"},
            },
        ],
    )
    assert sorted(results) == ["greet", "openai-line", "typed", "vector"]
    for result in results.values():
        assert result["status"] == "succeeded" and result["sandbox"] is True
    assert results["greet"]["text"] == "Echo: Say hello"
    assert set(json.loads(str(results["typed"]["text"]))) == {"name"}
    assert results["vector"]["usage"]["input_tokens"] == 2  # type: ignore[index]
    # One job per model and endpoint.
    chat_jobs = {results[c]["batch_id"] for c in ("greet", "typed", "openai-line")}
    assert len(chat_jobs) == 1 and results["vector"]["batch_id"] not in chat_jobs
