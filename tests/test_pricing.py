"""Prices through genai-prices: batchcore's usage converted faithfully, dollars by hand."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchcore.models import Usage
from batchcore.pricing import (
    PROVIDER_IDS,
    TIER_THRESHOLDS,
    Price,
    context_window,
    normalise_model,
    price,
)

genai_prices = pytest.importorskip("genai_prices")
from genai_prices.types import TieredPrices  # noqa: E402

MTOK = Decimal(1_000_000)
BATCH = {"processing": "batch"}


def rates(provider_id: str, model: str, context: dict[str, str] | None) -> Any:
    """The per-MTok prices genai-prices reports for *model* (its own entry's)."""
    found = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id)
    return found.model.get_prices(datetime.now(tz=timezone.utc), context)


def rate(prices: Any, key: str, tier: int = -1) -> Decimal | None:
    value = getattr(prices, key)
    if isinstance(value, TieredPrices):
        return value.base if tier < 0 else value.tiers[tier].price
    return value  # type: ignore[no-any-return]


def by_hand(
    prices: Any,
    *,
    input: int,
    cache_read: int = 0,
    cache_write: int = 0,
    output: int,
    tier: int = -1,
) -> tuple[Decimal, Decimal]:
    """(input dollars, output dollars): cached tokens at their own rates, the rest of the input
    at the input rate, reasoning inside the output."""
    read = rate(prices, "cache_read_mtok", tier)
    write = rate(prices, "cache_write_mtok", tier)
    uncached = (
        input - (cache_read if read is not None else 0) - (cache_write if write is not None else 0)
    )
    input_rate = rate(prices, "input_mtok", tier)
    output_rate = rate(prices, "output_mtok", tier)
    assert input_rate is not None and output_rate is not None
    dollars_in = (
        uncached * input_rate + cache_read * (read or 0) + cache_write * (write or 0)
    ) / MTOK
    return dollars_in, output * output_rate / MTOK


# provider, model as it answered, genai-prices provider id and model, batch rates known
CASES = [
    ("openai", "gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini", True),
    ("openai", "gpt-5", "openai", "gpt-5", True),
    ("azure-openai", "gpt-4o-mini", "openai", "gpt-4o-mini", True),
    ("anthropic", "claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5", True),
    ("anthropic", "claude-haiku-4-5", "anthropic", "claude-haiku-4-5", True),
    ("gemini", "models/gemini-2.5-flash", "google", "gemini-2.5-flash", True),
    ("gemini", "gemini-2.5-flash-lite", "google", "gemini-2.5-flash-lite", True),
    ("mistral", "mistral-small-latest", "mistral", "mistral-small-latest", True),
    ("groq", "openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b", True),
    ("groq", "llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant", False),
    (
        "together",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "together",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        False,
    ),
]


@pytest.mark.parametrize(("provider", "model", "owner", "priced", "has_batch"), CASES)
def test_prices_match_the_hand_computed_dollars(
    provider: str, model: str, owner: str, priced: str, has_batch: bool
) -> None:
    usage = Usage(
        input_tokens=90_000,
        cache_read_tokens=30_000,
        cache_write_tokens=10_000,
        output_tokens=5_000,
        reasoning_tokens=2_000,
    )
    counts = {"input": 90_000, "cache_read": 30_000, "cache_write": 10_000, "output": 5_000}
    batch_rates = rates(owner, priced, BATCH)
    standard_rates = rates(owner, priced, None)
    batch_in, batch_out = by_hand(batch_rates, **counts)
    standard_in, standard_out = by_hand(standard_rates, **counts)

    found = price(provider, model, usage)

    assert found is not None
    assert found.priced_as == f"{owner}/{priced}"
    assert (found.input_usd, found.output_usd) == (batch_in, batch_out), batch_rates
    assert found.total_usd == batch_in + batch_out
    assert found.standard_usd == standard_in + standard_out, standard_rates
    assert found.saving_usd == found.standard_usd - found.total_usd
    assert found.batch_rates is has_batch
    assert (found.saving_usd > 0) is has_batch
    standard = price(provider, model, usage, batch=False)
    assert standard is not None
    assert standard.total_usd == standard.standard_usd == found.standard_usd
    assert standard.batch is False and standard.batch_rates is False


def test_cache_reads_are_billed_at_the_cache_rate_not_twice() -> None:
    batch_rates = rates("openai", "gpt-4o-mini", BATCH)
    cache_rate = rate(batch_rates, "cache_read_mtok")
    input_rate = rate(batch_rates, "input_mtok")
    assert cache_rate is not None and input_rate is not None and cache_rate != input_rate * 2
    all_cached = price(
        "openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000)
    )
    none_cached = price("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000))
    assert all_cached is not None and none_cached is not None
    assert all_cached.input_usd == cache_rate
    assert none_cached.input_usd == input_rate


def test_cache_writes_are_billed_at_the_write_rate() -> None:
    batch_rates = rates("anthropic", "claude-haiku-4-5", BATCH)
    write_rate = rate(batch_rates, "cache_write_mtok")
    found = price(
        "anthropic",
        "claude-haiku-4-5",
        Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000),
    )
    assert found is not None and found.input_usd == write_rate


def test_reasoning_is_billed_once_inside_the_output() -> None:
    plain = price("openai", "o3-mini", Usage(input_tokens=10, output_tokens=1000))
    reasoning = price(
        "openai", "o3-mini", Usage(input_tokens=10, output_tokens=1000, reasoning_tokens=900)
    )
    assert plain is not None and plain == reasoning


def test_output_is_read_from_the_total_when_missing() -> None:
    from_total = price("openai", "gpt-4o-mini", Usage(input_tokens=100, total_tokens=300))
    explicit = price("openai", "gpt-4o-mini", Usage(input_tokens=100, output_tokens=200))
    assert from_total is not None and from_total == explicit


def test_usage_with_more_cached_than_input_is_refused() -> None:
    with pytest.raises(ValueError, match="must include cached tokens"):
        price("anthropic", "claude-haiku-4-5", Usage(input_tokens=10, cache_read_tokens=50))


def test_long_context_prices_apply_per_request() -> None:
    batch_rates = rates("anthropic", "claude-sonnet-4-5", BATCH)
    one_long = price(
        "anthropic", "claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=1_000)
    )
    three_short = price(
        "anthropic",
        "claude-sonnet-4-5",
        Usage(input_tokens=300_000, output_tokens=1_000),
        requests=3,
    )
    unknown_count = price(
        "anthropic",
        "claude-sonnet-4-5",
        Usage(input_tokens=300_000, output_tokens=1_000),
        requests=None,
    )
    assert one_long is not None and three_short is not None and unknown_count is not None
    assert (one_long.input_usd, one_long.output_usd) == by_hand(
        batch_rates, input=300_000, output=1_000, tier=0
    )
    assert (three_short.input_usd, three_short.output_usd) == by_hand(
        batch_rates, input=300_000, output=1_000
    )
    assert unknown_count.total_usd == three_short.total_usd
    assert one_long.total_usd > three_short.total_usd


def test_unknown_models_and_providers_have_no_price() -> None:
    assert price("openai", "no-such-model-xyz", Usage(input_tokens=1)) is None
    assert price("no-such-vendor", "gpt-4o-mini", Usage(input_tokens=1)) is None
    assert context_window("openai", "no-such-model-xyz") is None


def test_context_window() -> None:
    assert context_window("gemini", "models/gemini-2.5-flash") == (
        genai_prices.calc_price(
            genai_prices.Usage(), "gemini-2.5-flash", provider_id="google"
        ).model.context_window
    )


def test_model_names_are_normalised() -> None:
    assert normalise_model("models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert (
        normalise_model("projects/p/locations/l/publishers/google/models/gemini-2.5-pro")
        == "gemini-2.5-pro"
    )
    assert normalise_model("meta-llama/Llama-3.3-70B") == "meta-llama/Llama-3.3-70B"


def test_every_provider_maps_to_a_genai_prices_provider() -> None:
    ids = {p.id for p in genai_prices.data_snapshot.get_snapshot().providers}
    assert set(PROVIDER_IDS.values()) <= ids


def test_tier_thresholds_cover_genai_prices_tiers() -> None:
    # If genai-prices adds a long-context threshold for these vendors, usage totals must keep
    # requests on either side of it apart: TIER_THRESHOLDS needs it too.
    owners = set(PROVIDER_IDS.values())
    starts = set()
    for provider in genai_prices.data_snapshot.get_snapshot().providers:
        if provider.id not in owners:
            continue
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, list) else [model.prices]
            every = [getattr(p, "prices", p) for p in prices]
            every += [v.prices for v in model.price_variants or ()]
            for model_price in every:
                for value in vars(model_price).values():
                    if isinstance(value, TieredPrices):
                        starts.update(tier.start for tier in value.tiers)
    assert starts and starts <= set(TIER_THRESHOLDS)


def test_prices_add_and_serialise() -> None:
    one = price("openai", "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=10))
    two = price("openai", "gpt-4o-mini", Usage(input_tokens=2000, output_tokens=20))
    both = price("openai", "gpt-4o-mini", Usage(input_tokens=3000, output_tokens=30))
    assert one is not None and two is not None and both is not None
    assert (one + two).total_usd == both.total_usd
    data = both.to_dict()
    assert data["total_usd"] == float(both.total_usd)
    assert data["source"] == f"genai-prices {genai_prices.__version__}"
    assert isinstance(one, Price)


def run_without_genai_prices(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run *code* in a Python where importing genai_prices fails, as when it is not installed."""
    prelude = "import sys\nsys.modules['genai_prices'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_a_missing_genai_prices_says_what_to_install(tmp_path: Path) -> None:
    done = run_without_genai_prices(
        "from batchcore.errors import ConfigurationError\n"
        "from batchcore.models import Usage\n"
        "from batchcore.pricing import price\n"
        "try:\n"
        "    price('openai', 'gpt-4o-mini', Usage(input_tokens=1))\n"
        "except ConfigurationError as error:\n"
        "    print('refused:', error)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout
    assert "pip install 'batchcore[cost]'" in done.stdout


def test_importing_the_cost_modules_does_not_import_genai_prices(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, batchcore.pricing, batchcore.estimate, batchcore.tokens\n"
            "print('genai_prices' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
