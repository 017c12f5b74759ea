"""Cost through the real command on the OpenAI emulator: the estimate is offline, a budget too
small refuses before anything is sent, and the cost after the job (from the usage the vendor
reported, at batch prices) stays within the estimate's bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_requests

from batchcore_openai.testing import OpenAIEmulator

pytest.importorskip("genai_prices", reason="prices need batchcore[cost] (Python 3.11+)")

POLL = ("--poll-interval", "0.02:0.05")


def test_estimate_budget_and_actual_cost(
    tmp_path: Path, cli_env: dict[str, str], openai_emulator: OpenAIEmulator
) -> None:
    source = write_requests(tmp_path / "in.jsonl", 40)
    done = run_cli(cli_env, "estimate", str(source), "--provider", "openai", "--json")
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert estimate["requests"] == 40 and estimate["batches"] == 1
    bound = float(estimate["cost_usd_max"])
    assert 0 < float(estimate["cost_usd_expected"]) <= bound
    assert openai_emulator.call_count() == 0  # offline

    refused = run_cli(
        cli_env, "run", str(source), "--provider", "openai", "--budget", f"{bound / 10:.8f}"
    )
    assert refused.returncode == 2 and "budget" in refused.stderr
    assert openai_emulator.call_count() == 0  # refused before anything was sent
    assert run_cli(cli_env, "jobs", "--json").stdout.strip() == "[]"

    ran = run_cli(
        cli_env, "run", str(source), "--provider", "openai", "--budget", f"{bound * 2:.8f}", *POLL
    )
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.splitlines()[0]
    status = json.loads(run_cli(cli_env, "status", job_id, "--json").stdout)
    assert 0 < status["cost_usd"] <= bound  # the estimate's bound holds on what was billed
    assert float(status["cost"]["saving_usd"]) > 0  # half price against standard rates
    assert status["options"]["budget_usd"] == f"{bound * 2:.8f}"
    assert "cost so far: $" in run_cli(cli_env, "status", job_id).stdout
