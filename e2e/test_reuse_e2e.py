"""Result reuse through the real command: a sandbox's invented answers never come back as real
ones, real answers are reused only when asked and say so, and the saving is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_results, run_cli, write_requests

from batchcore.jobs import JobStore
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.02:0.05")


def answers_of(home: Path) -> list[str]:
    """The jobs whose answers the store keeps for reuse."""
    with JobStore(home / "jobs.sqlite3") as store:
        return [r["job_id"] for r in store.database.query("SELECT job_id FROM answers")]


def run_job(env: dict[str, str], source: Path, out: Path, *flags: str) -> str:
    done = run_cli(env, "run", str(source), "--provider", "openai", "-o", str(out), *POLL, *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0]


def test_sandbox_answers_never_come_back_as_real_ones(
    tmp_path: Path, home: Path, cli_env: dict[str, str], openai_emulator: OpenAIEmulator
) -> None:
    source = write_requests(tmp_path / "in.jsonl", 5)
    run_job(cli_env, source, tmp_path / "sandbox.jsonl", "--sandbox")
    invented = read_results(tmp_path / "sandbox.jsonl")
    assert len(invented) == 5 and all(r["sandbox"] is True for r in invented)
    assert answers_of(home) == []  # nothing invented is kept for reuse
    assert openai_emulator.call_count() == 0  # the sandbox is its own emulator

    # The same store, the real API, reuse asked: every request goes to the vendor.
    first = run_job(cli_env, source, tmp_path / "real.jsonl", "--reuse-results")
    real = read_results(tmp_path / "real.jsonl")
    assert openai_emulator.call_count() > 0
    assert all("sandbox" not in r and r.get("reused_from") is None for r in real)
    assert set(answers_of(home)) == {first}

    # Asked again: answered from the real job, with no vendor call at all.
    calls = openai_emulator.call_count()
    again = run_job(cli_env, source, tmp_path / "again.jsonl", "--reuse-results")
    assert openai_emulator.call_count() == calls
    reused = read_results(tmp_path / "again.jsonl")
    assert all(r["reused_from"]["job_id"] == first for r in reused)
    assert [r["text"] for r in reused] == [r["text"] for r in real]
    assert all("sandbox" not in r for r in reused)

    # And a sandbox job asked to reuse does not borrow the real answers either.
    run_job(cli_env, source, tmp_path / "sandbox2.jsonl", "--sandbox", "--reuse-results")
    again_invented = read_results(tmp_path / "sandbox2.jsonl")
    assert all(r["sandbox"] is True and r.get("reused_from") is None for r in again_invented)
    assert openai_emulator.call_count() == calls

    status = json.loads(run_cli(cli_env, "status", again, "--json").stdout)
    assert status["cost"]["reused_requests"] == 5
    if status["cost"]["pricing_error"] is None:  # prices need batchcore[cost]
        first_cost = json.loads(run_cli(cli_env, "status", first, "--json").stdout)["cost_usd"]
        assert status["saved_by_reuse_usd"] == pytest.approx(first_cost)
        assert status["saved_by_reuse_usd"] > 0
        text = run_cli(cli_env, "status", again).stdout
        assert "reused: 5 answers of earlier jobs, $" in text
