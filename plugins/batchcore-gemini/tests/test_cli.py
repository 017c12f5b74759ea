"""``batchcore run FILE --provider gemini --sandbox``, end to end, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import MODEL


def test_batchcore_run_on_the_sandbox(tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    lines = [
        {
            "custom_id": "greet",
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Say hello"},
            ],
            "params": {"max_tokens": 32, "temperature": 0.2},
        },
        {
            "custom_id": "typed",
            "model": f"models/{MODEL}",
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
        },
        # An OpenAI batch input line runs as it is.
        {
            "custom_id": "openai-line",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        },
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GOOGLE_", "GEMINI_", "BATCHCORE_"))
    }
    env["BATCHCORE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchcore",
            "run",
            str(source),
            "--provider",
            "gemini",
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
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(results) == ["greet", "openai-line", "typed"]
    for result in results.values():
        assert result["status"] == "succeeded" and result["sandbox"] is True
        assert result["batch_id"].startswith("batches/")
    assert results["greet"]["text"] == "Emulated answer 1 to: Say hello"
    typed = json.loads(results["typed"]["text"])  # an instance of the schema
    assert list(typed) == ["name"] and isinstance(typed["name"], str)
    # One model, however it is written: one batch.
    assert len({r["batch_id"] for r in results.values()}) == 1
