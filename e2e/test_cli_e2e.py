"""The CLI end to end against the emulators: the README's main job, concurrent runs on one
store, a busy job, and the Anthropic provider through the same commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import (
    REPO,
    SteppingClock,
    batchcore,
    read_results,
    run_cli,
    start_cli,
    wait_for,
    write_requests,
)

from batchcore_anthropic.testing import DEFAULT_API_KEY, AnthropicEmulator
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.02:0.05")


def test_readme_main_job_runs_offline_on_the_sandbox(
    tmp_path: Path, home: Path, cli_env: dict[str, str]
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("OPENAI_")}
    out = tmp_path / "results.jsonl"
    done = subprocess.run(
        batchcore(
            "run", "examples/requests.jsonl", "--provider", "openai", "--sandbox", "-o", str(out)
        ),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SANDBOX" in done.stderr and "offline" in done.stderr
    assert done.stdout.splitlines()[0].startswith("job-")
    results = read_results(out)
    expected = [
        json.loads(line)["custom_id"]
        for line in (REPO / "examples" / "requests.jsonl").read_text().splitlines()
    ]
    assert [r["custom_id"] for r in results] == expected
    assert all(r["status"] == "succeeded" and r["text"] and r["sandbox"] for r in results)


def test_a_sandbox_job_cannot_be_resumed_elsewhere(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("OPENAI_")}
    done = run_cli(
        env,
        "run",
        str(REPO / "examples" / "requests.jsonl"),
        "--provider",
        "openai",
        "--sandbox",
        "-o",
        str(tmp_path / "r.jsonl"),
    )
    job_id = done.stdout.splitlines()[0]
    again = run_cli(env, "cancel", job_id)
    assert again.returncode == 0 and "already finished" in again.stderr


def test_concurrent_runs_share_one_store_and_a_busy_job_is_refused(
    tmp_path: Path,
    clock: SteppingClock,
    openai_emulator: OpenAIEmulator,
    cli_env: dict[str, str],
) -> None:
    clock.frozen = True  # hold the first job in progress
    first_in = write_requests(tmp_path / "a.jsonl", 40, prefix="a")
    second_in = write_requests(tmp_path / "b.jsonl", 40, prefix="b")
    first = start_cli(
        cli_env,
        "run",
        str(first_in),
        "--provider",
        "openai",
        "-o",
        str(tmp_path / "a.out"),
        *POLL,
        "--config",
        "max_requests_per_batch=15",
    )
    assert first.stdout is not None
    job_a = first.stdout.readline().strip()
    wait_for(lambda: len(openai_emulator.batches()) == 3, what="the first job's batches")

    busy = run_cli(cli_env, "resume", job_a)
    assert busy.returncode == 5
    assert "another process" in busy.stderr

    second = start_cli(
        cli_env,
        "run",
        str(second_in),
        "--provider",
        "openai",
        "-o",
        str(tmp_path / "b.out"),
        *POLL,
        "--config",
        "max_requests_per_batch=15",
    )
    wait_for(lambda: len(openai_emulator.batches()) == 6, what="the second job's batches")
    clock.frozen = False
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for name, prefix in (("a.out", "a"), ("b.out", "b")):
        ids = [r["custom_id"] for r in read_results(tmp_path / name)]
        assert ids == [f"{prefix}-{i}" for i in range(40)]
    jobs = json.loads(run_cli(cli_env, "jobs", "--json").stdout)
    assert sorted(j["state"] for j in jobs) == ["finished", "finished"]
    assert len(openai_emulator.batches()) == 6


@pytest.fixture
def anthropic_env(anthropic_emulator: AnthropicEmulator, cli_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment, pointing the anthropic provider at its emulator."""
    return {
        **cli_env,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": anthropic_emulator.url,
    }


def test_anthropic_through_the_cli(
    tmp_path: Path, anthropic_emulator: AnthropicEmulator, anthropic_env: dict[str, str]
) -> None:
    env = anthropic_env
    source = write_requests(tmp_path / "in.jsonl", 12, model="claude-sonnet-4-5")
    out = tmp_path / "out.jsonl"
    done = run_cli(
        env,
        "run",
        str(source),
        "--provider",
        "anthropic",
        "-o",
        str(out),
        *POLL,
        "--config",
        "max_requests_per_batch=5",
    )
    assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert [r["custom_id"] for r in results] == [f"req-{i}" for i in range(12)]
    assert all(r["status"] == "succeeded" and r["text"] for r in results)
    assert len(anthropic_emulator.batch_ids()) == 3


def test_openai_batch_file_runs_on_anthropic(
    tmp_path: Path, anthropic_emulator: AnthropicEmulator, anthropic_env: dict[str, str]
) -> None:
    env = anthropic_env
    source = tmp_path / "openai-batch.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"o{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": "gpt-4o-mini",
                        "max_tokens": 32,
                        "messages": [
                            {"role": "system", "content": "Be brief."},
                            {"role": "user", "content": f"Item {i}"},
                        ],
                    },
                }
            )
            + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "out.jsonl"
    done = run_cli(
        env,
        "run",
        str(source),
        "--provider",
        "anthropic",
        "--model",
        "claude-haiku-4-5",
        "-o",
        str(out),
        *POLL,
    )
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in read_results(out)] == ["succeeded"] * 3
    (batch_id,) = anthropic_emulator.batch_ids()
    params = anthropic_emulator.submitted_params(batch_id)
    assert params["o0"]["system"] == "Be brief." and params["o0"]["model"] == "claude-haiku-4-5"


def test_bad_key_is_a_provider_error_and_the_job_is_kept(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "OPENAI_API_KEY": "sk-wrong-key-0123456789abcdef"}
    source = write_requests(tmp_path / "in.jsonl", 2)
    done = run_cli(env, "run", str(source), "--provider", "openai", *POLL)
    assert done.returncode == 3
    assert "batchcore resume job-" in done.stderr
    assert "sk-wrong-key-0123456789abcdef" not in done.stderr
    job_id = done.stdout.splitlines()[0]
    fixed = run_cli(cli_env, "resume", job_id, "-o", str(tmp_path / "out.jsonl"), *POLL)
    assert fixed.returncode == 0, fixed.stderr
    assert len(read_results(tmp_path / "out.jsonl")) == 2


ODD_IDS = [
    'say "hi"',
    "back\\slash\\",
    "non\u00a0breaking",
    "\ufeffbom first",
    "zero\u200bwidth",
    "rtl\u200fmark",
    "emoji \U0001f600\U0001f9ea",
    "  spaces  around  ",
    "long-" + "x" * 95,
    "ünïcödé-ß-ℵ",
]


def test_odd_printable_custom_ids_round_trip_exactly(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """Every printable id a provider takes comes back byte for byte: through the input file,
    the payload and its ids file, the emulator, the store, `run`'s output and `results`."""
    env = {k: v for k, v in cli_env.items() if not k.startswith("OPENAI_")}
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": cid,
                    "model": "gpt-4o-mini",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"request {n}"}],
                },
                ensure_ascii=n % 2 == 0,  # escaped and raw UTF-8 spellings both
            )
            + "\n"
            for n, cid in enumerate(ODD_IDS)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    done = run_cli(env, "run", str(source), "--provider", "openai", "--sandbox", "-o", str(out))
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    results = read_results(out)
    assert [r["custom_id"] for r in results] == ODD_IDS
    assert all(r["status"] == "succeeded" and r["sandbox"] for r in results)
    listed = run_cli(env, "results", job_id)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["custom_id"] for line in listed.stdout.splitlines()] == ODD_IDS
