"""The installed plugin through the ``batchcore`` command, in a subprocess: discovery, a whole
job on the Together sandbox, and the refusal to run without a key or the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from together_support import MODEL

REQUESTS: list[dict[str, Any]] = [
    {
        "custom_id": "capital",
        "model": MODEL,
        "messages": [
            {"role": "developer", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "params": {"max_completion_tokens": 16, "stop": "END"},
    },
    {
        "custom_id": "person",
        "model": "Qwen/Qwen2.5-7B-Instruct-Turbo",
        "messages": [{"role": "user", "content": "Invent a person."}],
        "params": {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "person",
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    },
                },
            }
        },
        "provider_params": {"together": {"top_k": 20, "repetition_penalty": 1.1}},
    },
    # An OpenAI batch input line runs as it is.
    {
        "custom_id": "openai-line",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]},
    },
]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A user with no Together key, whose job store lives in *tmp_path*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOGETHER_", "BATCHCORE_"))}
    env.update({"BATCHCORE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"})
    return env


def batchcore(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchcore", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_provider_is_discovered(tmp_path: Path, cli_env: dict[str, str]) -> None:
    listed = batchcore(cli_env, tmp_path, "providers", "--json")
    assert listed.returncode == 0, listed.stderr
    providers = {p["name"]: p for p in json.loads(listed.stdout)["providers"]}
    assert providers["together"]["distribution"] == "batchcore-together"


def test_batchcore_run_on_the_together_sandbox(tmp_path: Path, cli_env: dict[str, str]) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in REQUESTS))
    out = tmp_path / "results.jsonl"
    done = batchcore(
        cli_env,
        tmp_path,
        "run",
        str(requests),
        "--provider",
        "together",
        "--sandbox",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "SANDBOX" in done.stderr
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(results) == {"capital", "person", "openai-line"}
    assert all(r["ok"] and r["sandbox"] for r in results.values())
    assert results["capital"]["text"] == "Echo: What is the capital of France?"
    assert json.loads(results["person"]["text"]) == {"name": ""}
    assert results["openai-line"]["usage"]["input_tokens"] == 2


def test_without_a_key_or_the_sandbox_nothing_runs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(REQUESTS[0]) + "\n")
    refused = batchcore(cli_env, tmp_path, "run", str(requests), "--provider", "together")
    assert refused.returncode != 0
    assert "TOGETHER_API_KEY" in refused.stderr
    assert "--sandbox" in refused.stderr
