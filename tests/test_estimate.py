"""The offline job estimate, the budget check and the actual cost of a job."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from batchcore.errors import InvalidRequestError
from batchcore.estimate import (
    EXPECTED_OUTPUT_SHARE,
    JobCost,
    UsageTotals,
    budget_problem,
    estimate,
)
from batchcore.models import BatchRequest, BatchResult, ResultError, Usage
from batchcore.testing import FakeBatchProvider
from batchcore.tokens import METHOD, estimate_tokens

genai_prices = pytest.importorskip("genai_prices")
from genai_prices.types import TieredPrices  # noqa: E402

MTOK = Decimal(1_000_000)


class OpenAINamed(FakeBatchProvider):
    """The fake provider under a priced vendor's name: its requests are split and written for
    real, and priced as that vendor's."""

    PROVIDER_NAME: ClassVar[str] = "openai"


class AzureNamed(FakeBatchProvider):
    PROVIDER_NAME: ClassVar[str] = "azure-openai"


class WithDefaults(OpenAINamed):
    """A provider that declares its default output limit per model."""

    def default_max_output_tokens(self, model: str) -> int | None:
        return 777 if model == "gpt-4o-mini" else None


def rates(provider_id: str, model: str, batch: bool = True) -> tuple[Decimal, Decimal]:
    """(input, output) dollars per MTok genai-prices reports, at batch or standard rates."""
    found = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id)
    prices = found.model.get_prices(
        datetime.now(tz=timezone.utc), {"processing": "batch"} if batch else None
    )
    pair = []
    for key in ("input_mtok", "output_mtok"):
        value = getattr(prices, key)
        pair.append(value.base if isinstance(value, TieredPrices) else value)
    return pair[0], pair[1]


def request(i: int, model: str = "gpt-4o-mini", **params: Any) -> BatchRequest:
    return BatchRequest(
        custom_id=f"r{i}",
        model=model,
        messages=[{"role": "user", "content": f"Question {i}: " + "word " * (i % 7 + 1)}],
        params=params,
    )


def provider(cls: type[FakeBatchProvider] = OpenAINamed, **config: Any) -> FakeBatchProvider:
    return cls(config={"models": ["*"], **config})


def test_requests_split_into_batches_are_counted_and_priced() -> None:
    mini = [request(i, max_tokens=100) for i in range(7)]
    other = [request(i, "gpt-4.1-mini", max_tokens=50 + i) for i in range(7, 12)]
    job = estimate(provider(max_requests_per_batch=3), mini + other)

    assert job.requests == 12
    assert job.batches == 3 + 2
    by_model = {m.model: m for m in job.models}
    assert by_model["gpt-4o-mini"].batches == 3
    assert by_model["gpt-4.1-mini"].batches == 2
    tokens = {r.custom_id: estimate_tokens(r) for r in mini + other}
    assert job.input_tokens_expected == sum(t.expected for t in tokens.values())
    assert job.input_tokens_upper == sum(t.upper for t in tokens.values())
    assert job.max_output_tokens == 7 * 100 + sum(50 + i for i in range(7, 12))

    cost_max = Decimal(0)
    cost_expected = Decimal(0)
    for model, group in (("gpt-4o-mini", mini), ("gpt-4.1-mini", other)):
        rate_in, rate_out = rates("openai", model)
        upper_in = sum(tokens[r.custom_id].upper for r in group)
        expected_in = sum(tokens[r.custom_id].expected for r in group)
        outputs = [tokens[r.custom_id].output_upper or 0 for r in group]
        model_max = (upper_in * rate_in + sum(outputs) * rate_out) / MTOK
        model_expected = (
            expected_in * rate_in
            + sum(round(o * EXPECTED_OUTPUT_SHARE) for o in outputs) * rate_out
        ) / MTOK
        upper = by_model[model].upper
        expected = by_model[model].expected
        assert upper is not None and upper.total_usd == model_max
        assert expected is not None and expected.total_usd == model_expected
        cost_max += model_max
        cost_expected += model_expected
    assert job.cost_usd_max == cost_max
    assert job.cost_usd_expected == cost_expected
    assert job.unknown_prices == ()

    data = orjson.loads(orjson.dumps(job.to_dict()))
    for key in (
        "requests",
        "batches",
        "input_tokens",
        "max_output_tokens",
        "cost_usd_expected",
        "cost_usd_max",
        "unknown_prices",
        "method",
    ):
        assert key in data
    assert data["batches"] == 5
    assert data["input_tokens"] == {
        "expected": job.input_tokens_expected,
        "upper": job.input_tokens_upper,
    }
    assert data["cost_usd_max"] == float(cost_max)
    assert data["method"] == METHOD
    assert data["saving_usd_expected"] > 0


def test_the_estimate_leaves_no_file_and_the_provider_unchanged(tmp_path: Path) -> None:
    # The test's temporary directory is the system one here (conftest).
    used = provider(max_requests_per_batch=2)
    estimate(used, (request(i, max_tokens=10) for i in range(9)))
    assert list(tmp_path.iterdir()) == []
    assert used.workdir is None


def test_invalid_requests_raise_as_they_would_at_submit(tmp_path: Path) -> None:
    duplicate = [request(1, max_tokens=10), request(1, max_tokens=10)]
    with pytest.raises(InvalidRequestError, match="more than once"):
        estimate(provider(), duplicate)
    assert list(tmp_path.iterdir()) == []


def test_unknown_prices_are_listed_and_everything_else_given() -> None:
    requests = [request(i, max_tokens=10) for i in range(3)]
    requests += [request(i, "house-model-7", max_tokens=10) for i in range(3, 5)]
    job = estimate(provider(), requests)
    assert job.unknown_prices == ("house-model-7",)
    assert job.cost_usd_expected is None and job.cost_usd_max is None
    by_model = {m.model: m for m in job.models}
    assert by_model["gpt-4o-mini"].upper is not None
    assert by_model["house-model-7"].input_tokens_upper > 0
    data = job.to_dict()
    assert data["cost_usd_max"] is None and data["unknown_prices"] == ["house-model-7"]
    assert data["requests"] == 5 and data["max_output_tokens"] == 50
    problem = budget_problem(job, 100)
    assert problem is not None and problem.startswith("budget")
    assert "house-model-7" in problem


def test_a_request_without_output_limit_is_bounded_by_the_context_window() -> None:
    window = genai_prices.calc_price(
        genai_prices.Usage(), "gpt-4o-mini", provider_id="openai"
    ).model.context_window
    job = estimate(provider(), [request(1), request(2, n=2)])
    assert job.max_output_tokens == 3 * window
    assert job.models[0].defaulted_output == 2
    assert any("no output limit" in note for note in job.assumptions)
    assert job.cost_usd_max is not None


def test_the_callers_and_the_providers_default_output_limits() -> None:
    assert estimate(provider(WithDefaults), [request(1)]).max_output_tokens == 777
    given = estimate(provider(WithDefaults), [request(1)], default_max_output_tokens=55)
    assert given.max_output_tokens == 55


def test_an_unbounded_output_makes_the_bound_unknown() -> None:
    job = estimate(provider(), [request(1, "house-model-7")])
    assert job.max_output_tokens is None
    assert job.models[0].unbounded_output == 1
    assert job.cost_usd_max is None
    assert job.to_dict()["max_output_tokens"] is None


def test_requests_can_be_priced_as_a_named_model() -> None:
    # Azure requests name a deployment; the estimate is told which model it serves.
    requests = [request(i, "my-deployment", max_tokens=10) for i in range(4)]
    job = estimate(provider(AzureNamed, max_requests_per_batch=2), requests, model="gpt-4o-mini")
    [only] = job.models
    assert only.model == "gpt-4o-mini"
    assert only.expected is not None and only.expected.priced_as == "openai/gpt-4o-mini"
    assert only.expected.batch_rates
    assert job.batches == 2


def test_the_budget_refuses_a_job_whose_bound_exceeds_it() -> None:
    requests = [request(i, max_tokens=1000) for i in range(20)]
    job = estimate(provider(), requests)
    bound = job.cost_usd_max
    assert bound is not None
    assert budget_problem(job, bound) is None
    assert budget_problem(job, str(bound * 2)) is None
    problem = budget_problem(job, bound / 2)
    assert problem is not None
    assert problem.startswith("budget: the job may cost up to $")
    assert f"{job.input_tokens_upper:,} input tokens" in problem
    assert "one per UTF-8 byte" in problem
    assert f"{job.max_output_tokens:,} output tokens" in problem
    assert f"genai-prices {genai_prices.__version__}" in problem


def test_memory_stays_flat_in_the_number_of_requests() -> None:
    def peak(count: int) -> int:
        def requests() -> Iterator[BatchRequest]:
            for i in range(count):
                yield request(i, max_tokens=10)

        tracemalloc.start()
        try:
            # Small batches: the payload writer keeps one open file's ids, up to a batch.
            estimate(provider(max_requests_per_batch=500), requests())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    estimate(provider(), [request(0, max_tokens=1)])  # imports and caches, untraced
    peak(100)
    small, large = peak(2_000), peak(16_000)
    assert large - small < 250_000, (small, large)


# -- the actual cost ---------------------------------------------------------------------


def result(custom_id: str, model: str | None, usage: Usage | None) -> BatchResult:
    if usage is None:
        return BatchResult(
            custom_id=custom_id,
            status="errored",
            error=ResultError(code="server_error", message="x", retryable=True),
        )
    return BatchResult(
        custom_id=custom_id,
        status="succeeded",
        response=None if model is None else {"model": model},
        usage=usage,
    )


def test_the_cost_of_results_per_model_at_batch_and_standard_rates() -> None:
    results = [
        result("a", "gpt-4o-mini-2024-07-18", Usage(input_tokens=1000, output_tokens=100)),
        result("b", "gpt-4o-mini-2024-07-18", Usage(input_tokens=3000, output_tokens=300)),
        result("c", None, Usage(input_tokens=500, output_tokens=50)),
        result("d", None, None),
    ]
    cost = JobCost.from_results("openai", results, model="gpt-4.1-mini")
    by_model = {m.model: m for m in cost.models}
    assert set(by_model) == {"gpt-4o-mini-2024-07-18", "gpt-4.1-mini"}
    assert by_model["gpt-4.1-mini"].requests == 2
    assert by_model["gpt-4o-mini-2024-07-18"].input_tokens == 4000

    batch_in, batch_out = rates("openai", "gpt-4o-mini")
    std_in, std_out = rates("openai", "gpt-4o-mini", batch=False)
    mini = by_model["gpt-4o-mini-2024-07-18"].price
    assert mini is not None
    assert mini.total_usd == (4000 * batch_in + 400 * batch_out) / MTOK
    assert mini.standard_usd == (4000 * std_in + 400 * std_out) / MTOK
    four_one = by_model["gpt-4.1-mini"].price
    assert four_one is not None
    assert cost.cost_usd == mini.total_usd + four_one.total_usd
    assert cost.saving_usd == cost.standard_cost_usd - cost.cost_usd  # type: ignore[operator]
    data = orjson.loads(orjson.dumps(cost.to_dict()))
    assert data["cost_usd"] == float(mini.total_usd + four_one.total_usd)
    assert data["unknown_prices"] == []


def test_the_cost_of_plain_usage_aggregates() -> None:
    # The runner's per-batch aggregates: {model: {input, cache_read, cache_write, output,
    # reasoning}}. Without a request count the requests are taken to be below every
    # long-context threshold.
    aggregates = {
        "claude-sonnet-4-5-20250929": {
            "input": 3_000_000,
            "cache_read": 1_000_000,
            "cache_write": 0,
            "output": 200_000,
            "reasoning": 50_000,
        },
        "house-model-7": {"input": 10, "output": 1},
    }
    cost = JobCost.from_totals("anthropic", aggregates)
    by_model = {m.model: m for m in cost.models}
    sonnet = by_model["claude-sonnet-4-5-20250929"]
    assert sonnet.requests is None and sonnet.reasoning_tokens == 50_000
    found = genai_prices.calc_price(
        genai_prices.Usage(), "claude-sonnet-4-5", provider_id="anthropic"
    ).model.get_prices(datetime.now(tz=timezone.utc), {"processing": "batch"})
    base = {k: getattr(found, k).base for k in ("input_mtok", "cache_read_mtok", "output_mtok")}
    expected = (
        2_000_000 * base["input_mtok"]
        + 1_000_000 * base["cache_read_mtok"]
        + 200_000 * base["output_mtok"]
    ) / MTOK
    assert sonnet.price is not None and sonnet.price.total_usd == expected
    assert cost.unknown_prices == ("house-model-7",)
    assert cost.cost_usd is None


def test_aggregates_in_usage_spelling_are_read_and_misspellings_refused() -> None:
    usage_spelling = {
        "gpt-4o-mini": {
            "requests": 2,
            "input_tokens": 4000,
            "cache_read_tokens": 1000,
            "output_tokens": 400,
            "reasoning_tokens": 100,
        }
    }
    short_spelling = {
        "gpt-4o-mini": {
            "requests": 2,
            "input": 4000,
            "cache_read": 1000,
            "output": 400,
            "reasoning": 100,
        }
    }
    first = JobCost.from_totals("openai", usage_spelling)
    second = JobCost.from_totals("openai", short_spelling)
    assert first.cost_usd is not None and first.cost_usd > 0
    assert first == second
    with pytest.raises(ValueError, match="unknown key"):
        JobCost.from_totals("openai", {"gpt-4o-mini": {"inputs": 4000}})


def test_long_context_requests_are_priced_at_their_own_tier() -> None:
    totals = UsageTotals()
    for _ in range(10):
        totals.add("claude-sonnet-4-5", Usage(input_tokens=1_000, output_tokens=100))
    totals.add("claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=100))
    assert totals.to_dict()["claude-sonnet-4-5"]["over"] == {
        "272000": {
            "requests": 1,
            "input": 300_000,
            "cache_read": 0,
            "cache_write": 0,
            "output": 100,
            "reasoning": 0,
        }
    }
    cost = JobCost.from_totals("anthropic", totals)
    found = genai_prices.calc_price(
        genai_prices.Usage(), "claude-sonnet-4-5", provider_id="anthropic"
    ).model.get_prices(datetime.now(tz=timezone.utc), {"processing": "batch"})
    short = (10_000 * found.input_mtok.base + 1_000 * found.output_mtok.base) / MTOK
    long = (
        300_000 * found.input_mtok.tiers[0].price + 100 * found.output_mtok.tiers[0].price
    ) / MTOK
    assert cost.cost_usd == short + long


def test_usage_totals_round_trip_and_merge() -> None:
    first = UsageTotals()
    first.add("m", Usage(input_tokens=10, cache_read_tokens=4, output_tokens=3))
    first.add("m", None)
    first.add("n", Usage(input_tokens=250_000, output_tokens=1, reasoning_tokens=1))
    second = UsageTotals.from_dict(orjson.loads(orjson.dumps(first.to_dict())))
    assert second == first
    second.merge(first.to_dict())
    assert second.counts("m") == {
        "requests": 4,
        "input": 20,
        "cache_read": 8,
        "cache_write": 0,
        "output": 6,
        "reasoning": 0,
    }
    assert second.to_dict()["n"]["over"]["200000"]["requests"] == 2
    with pytest.raises(ValueError, match="must be a count"):
        UsageTotals.from_dict({"m": {"input": -1}})


def test_without_genai_prices_the_estimate_still_counts_tokens(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['genai_prices'] = None\n"
        "import json\n"
        "from batchcore.estimate import JobCost, budget_problem, estimate\n"
        "from batchcore.models import BatchRequest\n"
        "from batchcore.testing import FakeBatchProvider\n"
        "class P(FakeBatchProvider):\n"
        "    PROVIDER_NAME = 'openai'\n"
        "requests = [BatchRequest(custom_id=f'r{i}', model='gpt-4o-mini',\n"
        "    messages=[{'role': 'user', 'content': 'hi'}], params={'max_tokens': 5})\n"
        "    for i in range(4)]\n"
        "job = estimate(P(config={'max_requests_per_batch': 3, 'models': ['*']}), requests)\n"
        "cost = JobCost.from_totals('openai', {'gpt-4o-mini': {'input': 1, 'output': 1}})\n"
        "print(json.dumps({'job': job.to_dict(), 'budget': budget_problem(job, 1),\n"
        "    'cost': cost.to_dict()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    job = report["job"]
    assert job["requests"] == 4 and job["batches"] == 2
    assert job["input_tokens"]["upper"] > 0 and job["max_output_tokens"] == 20
    assert job["cost_usd_max"] is None and job["unknown_prices"] == []
    assert "pip install 'batchcore[cost]'" in job["pricing_error"]
    assert report["budget"].startswith("budget: cannot check")
    assert "pip install 'batchcore[cost]'" in report["budget"]
    assert report["cost"]["cost_usd"] is None
    assert "pip install 'batchcore[cost]'" in report["cost"]["pricing_error"]
