"""What tokens cost, through genai-prices.

batchcore writes no price table. Prices come from `genai-prices
<https://github.com/pydantic/genai-prices>`_, the price database Pydantic maintains for OpenAI,
Anthropic, Google, Mistral, Groq, Together and others, with their batch rates (its
``processing: batch`` price variants). It is the optional extra ``batchcore[cost]``, imported
only when a price is asked for; without it every function here raises
:class:`~batchcore.errors.ConfigurationError` saying what to install.

Every amount is an *estimate* from the prices genai-prices ships (its version is in
:data:`Price.source`): the vendor's invoice is what counts. Where the data is known to be
partial:

* a model for which genai-prices lists no batch rate is priced at its standard rate, and
  :attr:`Price.batch_rates` is False: the amount is then an upper bound of the batch cost (no
  vendor charges more for batch);
* batchcore's provider names map to genai-prices' provider ids (:data:`PROVIDER_IDS`). Azure
  OpenAI: genai-prices prices most OpenAI models on Azure through its OpenAI entry, and Azure's
  Global Batch is 50% below Global Standard as OpenAI's batch is below its list price, so such a
  model takes the batch rate of its OpenAI entry;
* tiered (long-context) prices depend on each request's input size: :func:`price` takes the
  number of requests the usage sums, and prices their average request (exact when the requests
  fall in one tier, which :class:`batchcore.estimate.UsageTotals` arranges);
* cache writes are priced at the default (5-minute) cache-write rate.

Usage is converted faithfully: batchcore's ``input_tokens`` is the whole input, cache reads and
writes included, which is what genai-prices expects (it bills the cached parts at their own
rates and the rest at the input rate, never twice); ``output_tokens`` includes reasoning tokens,
which every vendor bills as output.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import attrs

from batchcore.errors import ConfigurationError
from batchcore.models import Usage

__all__ = [
    "PROVIDER_IDS",
    "TIER_THRESHOLDS",
    "Price",
    "context_window",
    "normalise_model",
    "price",
    "prices_source",
]

#: batchcore provider name -> genai-prices provider id. Other names are passed as they are.
PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
    "groq": "groq",
    "together": "together",
}

#: The input sizes at which vendors' long-context prices start (genai-prices' tier starts for the
#: providers above: Anthropic and Google at 100k and 200k, Google at 128k, OpenAI at 272k). A
#: price is for requests on one side of each: usage summed over requests keeps them apart.
TIER_THRESHOLDS: tuple[int, ...] = (100_000, 128_000, 200_000, 272_000)

_PRECISION = Decimal("1e-12")


@attrs.frozen(kw_only=True)
class Price:
    """The price of some usage of one model, in US dollars.

    ``input_usd``/``output_usd``/``total_usd`` are at the rates asked for (batch rates by
    default); ``standard_usd`` is the same usage at standard (synchronous) rates, so
    :attr:`saving_usd` is what batching saves. ``priced_as`` is the provider and model genai-prices
    matched (``openai/gpt-4o-mini`` for ``gpt-4o-mini-2024-07-18``).
    """

    provider: str
    model: str
    priced_as: str
    batch: bool
    batch_rates: bool
    input_usd: Decimal
    output_usd: Decimal
    total_usd: Decimal
    standard_usd: Decimal
    source: str

    @property
    def saving_usd(self) -> Decimal:
        """What the batch rates save against standard rates (0 when none are known)."""
        return self.standard_usd - self.total_usd

    def __add__(self, other: Price) -> Price:
        """The price of both usages (of the same model)."""
        if not isinstance(other, Price):
            return NotImplemented
        return attrs.evolve(
            self,
            batch_rates=self.batch_rates and other.batch_rates,
            input_usd=self.input_usd + other.input_usd,
            output_usd=self.output_usd + other.output_usd,
            total_usd=self.total_usd + other.total_usd,
            standard_usd=self.standard_usd + other.standard_usd,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "priced_as": self.priced_as,
            "batch": self.batch,
            "batch_rates": self.batch_rates,
            "input_usd": usd(self.input_usd),
            "output_usd": usd(self.output_usd),
            "total_usd": usd(self.total_usd),
            "standard_usd": usd(self.standard_usd),
            "saving_usd": usd(self.saving_usd),
            "source": self.source,
        }


def usd(amount: Decimal | None) -> float | None:
    """*amount* as a JSON number."""
    return None if amount is None else float(amount)


def genai_prices() -> ModuleType:
    """The genai-prices module, or :class:`ConfigurationError` saying how to install it."""
    try:
        import genai_prices
    except ImportError:
        needs = " (genai-prices needs Python 3.11 or later)" if sys.version_info < (3, 11) else ""
        raise ConfigurationError(
            "prices need the genai-prices package: pip install 'batchcore[cost]'" + needs
        ) from None
    return genai_prices


def prices_source() -> str:
    """Where prices come from: ``genai-prices <version>``."""
    return f"genai-prices {genai_prices().__version__}"


def normalise_model(model: str) -> str:
    """*model* as genai-prices matches it: Gemini and Vertex resource names lose their path
    (``models/gemini-2.5-flash`` -> ``gemini-2.5-flash``). Dated snapshots
    (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-5-20250929``) are matched by genai-prices
    itself."""
    name = model.strip()
    if name.startswith("models/") or "/models/" in name:
        name = name.rsplit("models/", 1)[1]
    return name


def price(
    provider: str,
    model: str,
    usage: Usage,
    *,
    batch: bool = True,
    requests: int | None = 1,
    at: datetime | None = None,
) -> Price | None:
    """The price of *usage* of *model* on batchcore provider *provider*, or None when
    genai-prices does not know the model (the caller says so).

    *usage* may sum several requests: *requests* says how many, so that tiered (long-context)
    prices are taken per request, at the tier of their average; None (unknown) takes them to
    be below every tier threshold. *at* is when the requests ran (default: now), for prices
    that changed over time. Raises ValueError for usage that contradicts itself (cached tokens
    beyond the whole input).
    """
    resolved = _resolve(provider, model)
    if resolved is None:
        return None
    provider_id, model_ref, priced_as = resolved
    gp = genai_prices()
    input_tokens, cache_read, cache_write, output_tokens = _counts(usage)
    if requests is None:
        requests = max(1, math.ceil(input_tokens / TIER_THRESHOLDS[0]))
    contexts: list[Mapping[str, str] | None] = [{"processing": "batch"}, None] if batch else [None]
    results = []
    for context in contexts:
        calc = gp.calc_price(
            _usage(gp, input_tokens, cache_read, cache_write, output_tokens, 1),
            model_ref,
            provider_id=provider_id,
            genai_request_timestamp=at,
            price_context=context,
        )
        if requests > 1 and _tiered(calc.model_price):
            # Long-context prices apply per request: price the average request, n times.
            mean = gp.calc_price(
                _usage(gp, input_tokens, cache_read, cache_write, output_tokens, requests),
                model_ref,
                provider_id=provider_id,
                genai_request_timestamp=at,
                price_context=context,
            )
            amounts = (_exact(mean.input_price * requests), _exact(mean.output_price * requests))
        else:
            amounts = (calc.input_price, calc.output_price)
        results.append((calc.model_price, *amounts))
    rates, input_usd, output_usd = results[0]
    standard_rates, standard_input, standard_output = results[-1]
    return Price(
        provider=provider,
        model=model,
        priced_as=priced_as,
        batch=batch,
        batch_rates=batch and rates != standard_rates,
        input_usd=input_usd,
        output_usd=output_usd,
        total_usd=input_usd + output_usd,
        standard_usd=standard_input + standard_output,
        source=prices_source(),
    )


def context_window(provider: str, model: str) -> int | None:
    """The model's context window as genai-prices records it, or None."""
    resolved = _resolve(provider, model)
    if resolved is None:
        return None
    provider_id, model_ref, _ = resolved
    info = _model_info(provider_id, model_ref)
    value = getattr(info, "context_window", None)
    return value if isinstance(value, int) and value > 0 else None


@functools.lru_cache(maxsize=4096)
def _resolve(provider: str, model: str) -> tuple[str, str, str] | None:
    """(genai-prices provider id, model reference, "provider/model id" matched), or None."""
    gp = genai_prices()
    provider_id = PROVIDER_IDS.get(provider, provider)
    model_ref = normalise_model(model)
    try:
        calc = gp.calc_price(gp.Usage(), model_ref, provider_id=provider_id)
    except LookupError:
        return None
    matched, owner = calc.model, calc.provider
    if not any(candidate is matched for candidate in owner.models):
        # Matched through the provider's fallback (Azure -> OpenAI): genai-prices then ignores
        # price variants, so price the model where it lives, batch rates included.
        for fallback in owner.fallback_model_providers or ():
            try:
                other = gp.calc_price(gp.Usage(), model_ref, provider_id=fallback)
            except LookupError:
                continue
            if other.model is matched:
                provider_id, owner = fallback, other.provider
                break
    return provider_id, model_ref, f"{owner.id}/{matched.id}"


def _model_info(provider_id: str, model_ref: str) -> Any:
    gp = genai_prices()
    return gp.calc_price(gp.Usage(), model_ref, provider_id=provider_id).model


def _counts(usage: Usage) -> tuple[int, int, int, int]:
    input_tokens = usage.input_tokens or 0
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    output_tokens = usage.output_tokens
    if output_tokens is None:
        output_tokens = max((usage.total_tokens or 0) - input_tokens, 0)
    if cache_read + cache_write > input_tokens:
        raise ValueError(
            f"usage reports {cache_read} cache-read and {cache_write} cache-write tokens, more "
            f"than its {input_tokens} input tokens (input_tokens must include cached tokens)"
        )
    return input_tokens, cache_read, cache_write, output_tokens


def _usage(
    gp: ModuleType, input_tokens: int, cache_read: int, cache_write: int, output: int, n: int
) -> Any:
    values: dict[str, int | Decimal] = {"input_tokens": input_tokens, "output_tokens": output}
    if cache_read:
        values["cache_read_tokens"] = cache_read
    if cache_write:
        values["cache_write_tokens"] = cache_write
    if n > 1:
        values = {key: Decimal(value) / n for key, value in values.items()}
    return gp.Usage(**values)


def _tiered(model_price: Any) -> bool:
    from genai_prices.types import TieredPrices

    return any(isinstance(value, TieredPrices) for value in vars(model_price).values())


def _exact(amount: Decimal) -> Decimal:
    # The average-request path divides and multiplies back: round that noise away.
    return amount.quantize(_PRECISION)
