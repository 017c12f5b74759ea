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
    (batch,) = status["batches"]  # each batch says what it cost
    assert batch["cost_usd"] == pytest.approx(status["cost_usd"])
    text = run_cli(cli_env, "status", job_id).stdout
    assert "cost so far: $" in text
    assert f"40 requests completed 40/40, ${batch['cost_usd']:.6f}" in text


# -- the estimate's bound holds on every bundled emulator --------------------------------------

#: provider name, its emulator's module and class, the base URL's path under the emulator's
#: root, and a model genai-prices prices for it.
EMULATORS = [
    ("openai", "batchcore_openai.testing", "OpenAIEmulator", "/v1", "gpt-4o-mini"),
    ("anthropic", "batchcore_anthropic.testing", "AnthropicEmulator", "", "claude-haiku-4-5"),
    ("gemini", "batchcore_gemini.testing", "GeminiEmulator", "", "gemini-2.5-flash"),
    ("mistral", "batchcore_mistral.testing", "MistralEmulator", "", "mistral-small-latest"),
    ("groq", "batchcore_groq.testing", "GroqEmulator", "/openai/v1", "llama-3.1-8b-instant"),
    (
        "together",
        "batchcore_together.testing",
        "TogetherEmulator",
        "/v1",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
]


@pytest.mark.parametrize(
    ("name", "module", "emulator_class", "path", "model"),
    EMULATORS,
    ids=[e[0] for e in EMULATORS],
)
def test_the_estimate_bounds_the_actual_cost_on_every_emulator(
    tmp_path: Path, name: str, module: str, emulator_class: str, path: str, model: str
) -> None:
    import importlib

    from batchcore import BatchRequest
    from batchcore.jobs import BatchRunner, PollSchedule
    from batchcore.registry import batch_provider_registry
    from batchcore.testing import ManualClock

    manual = ManualClock(start=1_767_225_600.0)
    key = f"{name}-e2e-cost-0123456789abcdef"
    emulator_type = getattr(importlib.import_module(module), emulator_class)
    requests = [
        BatchRequest(
            custom_id=f"c{i}",
            model=model,
            params={"max_tokens": 64},
            messages=[
                {"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": f"Question {i}: " + "why is the sky blue? " * i},
            ],
        )
        for i in range(12)
    ]
    with emulator_type(clock=manual, api_key=key) as emulator:
        provider = batch_provider_registry.get(name)(
            config={"base_url": emulator.url + path, "api_key": key}
        )
        provider.sleep = manual.sleep
        provider.clock = manual.now
        runner = BatchRunner(
            tmp_path / "jobs.sqlite3",
            clock=manual.now,
            sleep=manual.sleep,
            poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
        )
        estimate = runner.estimate(provider, requests)
        assert estimate.cost_usd_max is not None, estimate.pricing_error or estimate.unknown_prices
        calls = emulator.call_count()
        info = runner.run(provider, requests, budget_usd=str(estimate.cost_usd_max))
        provider.close()
    assert calls == 0  # estimating sent nothing
    assert info.all_succeeded, info.counts
    cost = runner.cost(info.id)
    assert cost.cost_usd is not None and cost.cost_usd > 0, cost.to_dict()
    assert cost.cost_usd <= estimate.cost_usd_max  # the bound holds on what was billed
    assert estimate.cost_usd_expected is not None
    assert estimate.cost_usd_expected <= estimate.cost_usd_max
    runner.store.close()
