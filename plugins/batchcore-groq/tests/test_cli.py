"""The installed plugin through the ``batchcore`` command, in a subprocess: discovery, and a
whole job on the Groq sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from groq_support import API_KEY

REQUESTS: list[dict[str, Any]] = [
    {
        "custom_id": "capital-fr",
        "model": "llama-3.1-8b-instant",
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_tokens": 16,
    },
    {
        "custom_id": "haiku",
        "model": "llama-3.1-8b-instant",
        "messages": [{"role": "user", "content": "Write a haiku about waiting."}],
        "max_tokens": 64,
        "temperature": 0.7,
    },
    # An OpenAI batch input line runs as it is.
    {
        "custom_id": "openai-line",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "Say hello"}],
        },
    },
]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with no Groq key, whose store lives in *tmp_path*."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GROQ_", "OPENAI_", "BATCHCORE_"))
    }
    env.update({"BATCHCORE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"})
    return env


def _batchcore(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchcore", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_batchcore_run_on_the_groq_sandbox(tmp_path: Path, cli_env: dict[str, str]) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in REQUESTS))
    out = tmp_path / "results.jsonl"

    done = _batchcore(
        cli_env,
        "run",
        str(requests),
        "--provider",
        "groq",
        "--sandbox",
        "--config",
        "completion_window=7d",
        "-o",
        str(out),
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert "SANDBOX" in done.stderr and "groq" in done.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [r["custom_id"] for r in REQUESTS]
    assert all(r["status"] == "succeeded" and r["sandbox"] for r in results)
    assert results[0]["text"].startswith("Echo: What is the capital of France?")
    assert "gsk_sandbox_" not in done.stdout + done.stderr


def test_without_a_key_the_command_names_groqs_variable(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(REQUESTS[0]) + "\n")
    done = _batchcore(cli_env, "run", str(requests), "--provider", "groq", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "GROQ_API_KEY" in done.stderr and "--sandbox" in done.stderr


def test_a_bad_completion_window_stops_before_anything_is_sent(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(REQUESTS[0]) + "\n")
    cli_env["GROQ_API_KEY"] = API_KEY
    cli_env["GROQ_BASE_URL"] = "http://127.0.0.1:9/openai/v1"  # nothing listens there
    done = _batchcore(
        cli_env,
        "run",
        str(requests),
        "--provider",
        "groq",
        "--config",
        "completion_window=14d",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "completion_window" in done.stderr and "'24h' to '7d'" in done.stderr
    assert API_KEY not in done.stderr


def test_batchcore_providers_lists_groq(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = _batchcore(cli_env, "providers", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {p["name"]: p for p in json.loads(done.stdout)["providers"]}
    assert listed["groq"]["distribution"] == "batchcore-groq"
