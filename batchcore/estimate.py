"""What a job will cost before it is sent, whether that fits a budget, and what it did cost.

* :func:`estimate` - offline, nothing sent: the requests are validated and split exactly as
  they would be (``prepare_payloads`` into a temporary directory whose files are then
  discarded), their tokens counted (:mod:`batchcore.tokens`) and priced at batch rates
  (:mod:`batchcore.pricing`), per model and in total. Memory stays flat in the number of
  requests.
* :func:`budget_problem` - the refusal when the estimate's upper bound exceeds a budget.
* :class:`JobCost` - the actual cost, from results or from :class:`UsageTotals` (usage summed
  per model, which a runner keeps per batch), at batch and at standard rates.

The estimate's two costs:

* ``cost_usd_expected`` - the expected input tokens (cache hits not assumed) plus
  :data:`EXPECTED_OUTPUT_SHARE` of each request's output bound: answers rarely use all of
  ``max_tokens``, and how much they use cannot be known offline;
* ``cost_usd_max`` - the upper bound: the input bound plus the whole output bound. A request
  with no output limit (and no provider default) is bounded by the model's context window
  when genai-prices records one; otherwise the bound is unknown (null) and a budget cannot be
  checked.

Both are estimates from genai-prices' prices: the vendor's invoice is what counts.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from batchcore.errors import ConfigurationError
from batchcore.models import BatchRequest, BatchResult, Usage
from batchcore.pricing import TIER_THRESHOLDS, Price, context_window, price, prices_source, usd
from batchcore.provider import BaseBatchProvider
from batchcore.tokens import METHOD, estimate_tokens

__all__ = [
    "EXPECTED_OUTPUT_SHARE",
    "JobCost",
    "JobEstimate",
    "ModelCost",
    "ModelEstimate",
    "UsageTotals",
    "answered_by",
    "budget_problem",
    "estimate",
]

#: The share of each request's output bound the expected cost counts.
EXPECTED_OUTPUT_SHARE = 0.5

#: The counts :class:`UsageTotals` keeps, in its JSON spelling.
FIELDS = ("requests", "input", "cache_read", "cache_write", "output", "reasoning")
_UNKNOWN_MODEL = "unknown"


def _tier(input_tokens: int) -> int:
    """The highest long-context threshold *input_tokens* passes, or 0."""
    if input_tokens <= TIER_THRESHOLDS[0]:
        return 0
    passed = 0
    for threshold in TIER_THRESHOLDS:
        if input_tokens > threshold:
            passed = threshold
    return passed


class UsageTotals:
    """Token usage summed per model, requests past a long-context threshold kept apart (their
    prices differ: :data:`batchcore.pricing.TIER_THRESHOLDS`).

    Its JSON form (:meth:`to_dict`) is ``{model: {"requests", "input", "cache_read",
    "cache_write", "output", "reasoning", "over": {"200000": {...}}}}``: each model's totals
    over all its requests, and under ``over`` (present only when needed) the share of the
    requests whose input passed a threshold, keyed by the highest one passed. ``input`` is the
    whole input, cache included; ``output`` the whole output, reasoning included. Counts
    spelt as :class:`~batchcore.models.Usage` spells them (``input_tokens``, ...) are read too;
    without ``over`` the requests are priced at the tier of their average, and without
    ``requests`` they are taken to be below every threshold.
    """

    __slots__ = ("_over", "_totals", "_uncounted")

    def __init__(self) -> None:
        self._totals: dict[str, list[int]] = {}
        self._over: dict[tuple[str, int], list[int]] = {}
        self._uncounted: set[str] = set()  # models whose request counts are not known

    def add(self, model: str, usage: Usage | None) -> None:
        """Count one request of *model* that used *usage* (None: nothing reported)."""
        if usage is None:
            self.add_counts(model)
            return
        output = usage.output_tokens
        if output is None and usage.total_tokens is not None:
            output = max(usage.total_tokens - (usage.input_tokens or 0), 0)
        self.add_counts(
            model,
            input_tokens=usage.input_tokens or 0,
            cache_read=usage.cache_read_tokens or 0,
            cache_write=usage.cache_write_tokens or 0,
            output=output or 0,
            reasoning=usage.reasoning_tokens or 0,
        )

    def add_counts(
        self,
        model: str,
        *,
        input_tokens: int = 0,
        cache_read: int = 0,
        cache_write: int = 0,
        output: int = 0,
        reasoning: int = 0,
        requests: int = 1,
    ) -> None:
        """Count *requests* requests of *model* with these token counts (all of them, summed:
        they are kept apart from others only when *input_tokens* passes a threshold)."""
        # Runs once per request of a job: one row update, without a loop.
        row = self._totals.get(model)
        if row is None:
            self._totals[model] = [
                requests,
                input_tokens,
                cache_read,
                cache_write,
                output,
                reasoning,
            ]
        else:
            row[0] += requests
            row[1] += input_tokens
            row[2] += cache_read
            row[3] += cache_write
            row[4] += output
            row[5] += reasoning
        tier = _tier(input_tokens // requests if requests > 1 else input_tokens)
        if tier:
            counts = (requests, input_tokens, cache_read, cache_write, output, reasoning)
            _accumulate(self._over, (model, tier), counts)

    def merge(self, other: UsageTotals | Mapping[str, Any]) -> None:
        """Add *other* (totals, or their JSON form) to these."""
        if not isinstance(other, UsageTotals):
            other = UsageTotals.from_dict(other)
        for model, counts in other._totals.items():
            _accumulate(self._totals, model, counts)
        for key, counts in other._over.items():
            _accumulate(self._over, key, counts)
        self._uncounted |= other._uncounted

    @property
    def models(self) -> list[str]:
        return sorted(self._totals)

    def counts(self, model: str) -> dict[str, int]:
        """The totals of *model* (all its requests), by :data:`FIELDS` name."""
        return dict(zip(FIELDS, self._totals.get(model, [0] * len(FIELDS)), strict=True))

    def requests(self, model: str) -> int | None:
        """How many requests of *model* the totals sum (None when their source did not say)."""
        return None if model in self._uncounted else self.counts(model)["requests"]

    def parts(self, model: str) -> list[tuple[int | None, dict[str, int]]]:
        """*model*'s usage split by long-context tier: (request count or None when unknown,
        counts) for the requests below every threshold, then for each threshold passed."""
        total = self._totals.get(model)
        if total is None:
            return []
        base = list(total)
        over = []
        for (name, _), counts in sorted(self._over.items()):
            if name == model:
                over.append((counts[0], dict(zip(FIELDS, counts, strict=True))))
                base = [b - c for b, c in zip(base, counts, strict=True)]
        requests: int | None = None if model in self._uncounted else base[0]
        parts: list[tuple[int | None, dict[str, int]]] = []
        if requests != 0 or any(base[1:]):
            parts.append((requests, dict(zip(FIELDS, base, strict=True))))
        return parts + over

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for model in self.models:
            entry: dict[str, Any] = dict(zip(FIELDS, self._totals[model], strict=True))
            over = {
                str(tier): dict(zip(FIELDS, counts, strict=True))
                for (name, tier), counts in sorted(self._over.items())
                if name == model
            }
            if over:
                entry["over"] = over
            data[model] = entry
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageTotals:
        totals = cls()
        for model, entry in data.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"usage totals of {model!r} must be an object, got {entry!r}")
            if "requests" not in entry:
                totals._uncounted.add(model)
            _accumulate(totals._totals, model, _read_counts(model, entry))
            for tier, counts in (entry.get("over") or {}).items():
                _accumulate(totals._over, (model, int(tier)), _read_counts(model, counts))
        return totals

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UsageTotals):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self._uncounted == other._uncounted

    def __repr__(self) -> str:
        return f"UsageTotals({self.to_dict()!r})"


def _accumulate(table: dict[Any, list[int]], key: Any, counts: Iterable[int]) -> None:
    row = table.get(key)
    if row is None:
        table[key] = list(counts)
    else:
        for index, value in enumerate(counts):
            row[index] += value


def _read_counts(model: str, entry: Mapping[str, Any]) -> list[int]:
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        # A misspelt count would otherwise be priced as zero.
        raise ValueError(
            f"usage totals of {model!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(FIELDS)} (or {', '.join(_SPELLINGS)})"
        )
    counts = []
    for name in FIELDS:
        value = entry.get(name)
        if value is None:
            value = entry.get(f"{name}_tokens", 0)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"usage totals of {model!r}: {name} must be a count, got {value!r}")
        counts.append(value)
    return counts


#: The same counts in :class:`~batchcore.models.Usage`'s spelling (``input_tokens``, ...).
_SPELLINGS = tuple(f"{name}_tokens" for name in FIELDS[1:])
_KNOWN_KEYS = frozenset({*FIELDS, *_SPELLINGS, "over"})


def _price_parts(
    provider: str,
    model: str,
    parts: list[tuple[int | None, dict[str, int]]],
    *,
    batch: bool,
    at: datetime | None,
) -> Price | None:
    """The price of *model*'s usage, tier by tier (None when genai-prices does not know it)."""
    total: Price | None = None
    for requests, counts in parts:
        part = price(
            provider,
            model,
            Usage(
                input_tokens=counts["input"],
                cache_read_tokens=counts["cache_read"],
                cache_write_tokens=counts["cache_write"],
                output_tokens=counts["output"],
            ),
            batch=batch,
            requests=requests,
            at=at,
        )
        if part is None:
            return None
        total = part if total is None else total + part
    return total


def _pricing(provider: str, call: Any) -> tuple[Any, str | None]:
    """Run a pricing step; a missing genai-prices is reported, not raised."""
    try:
        return call(), None
    except ConfigurationError as error:
        return None, str(error)


# -- actual cost -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModelCost:
    """The usage of one model and its price (None when genai-prices does not know it)."""

    model: str
    requests: int | None
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    price: Price | None

    def to_dict(self) -> dict[str, Any]:
        found = self.price
        return {
            "model": self.model,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "priced_as": None if found is None else found.priced_as,
            "batch_rates": None if found is None else found.batch_rates,
            "cost_usd": None if found is None else usd(found.total_usd),
            "standard_cost_usd": None if found is None else usd(found.standard_usd),
            "saving_usd": None if found is None else usd(found.saving_usd),
        }


@attrs.frozen(kw_only=True)
class JobCost:
    """What a job's usage cost, per model and in total, at batch rates (``batch``) and at
    standard rates. Totals are None when a model's price is unknown (:attr:`unknown_prices`)
    or prices are unavailable (:attr:`pricing_error`).

    ``reused_requests`` were answered by earlier jobs' results (opt-in reuse) and cost
    nothing; ``saved_by_reuse_usd`` is what their usage would have cost at batch rates for
    the model that answered them (None when unknown or nothing was reused)."""

    provider: str
    models: tuple[ModelCost, ...]
    batch: bool = True
    source: str | None = None
    pricing_error: str | None = None
    reused_requests: int = 0
    saved_by_reuse_usd: Decimal | None = None

    @property
    def unknown_prices(self) -> tuple[str, ...]:
        if self.pricing_error is not None:
            return ()
        return tuple(m.model for m in self.models if m.price is None)

    def _sum(self, field: str) -> Decimal | None:
        if self.pricing_error is not None or self.unknown_prices:
            return None
        return sum((getattr(m.price, field) for m in self.models), Decimal(0))

    @property
    def cost_usd(self) -> Decimal | None:
        return self._sum("total_usd")

    @property
    def standard_cost_usd(self) -> Decimal | None:
        return self._sum("standard_usd")

    @property
    def saving_usd(self) -> Decimal | None:
        return self._sum("saving_usd")

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "batch": self.batch,
            "cost_usd": usd(self.cost_usd),
            "standard_cost_usd": usd(self.standard_cost_usd),
            "saving_usd": usd(self.saving_usd),
            "unknown_prices": list(self.unknown_prices),
            "prices": self.source,
            "pricing_error": self.pricing_error,
            "models": [m.to_dict() for m in self.models],
            "reused_requests": self.reused_requests,
            "saved_by_reuse_usd": usd(self.saved_by_reuse_usd),
        }

    @classmethod
    def from_totals(
        cls,
        provider: str,
        totals: UsageTotals | Mapping[str, Any],
        *,
        batch: bool = True,
        at: datetime | None = None,
    ) -> JobCost:
        """The cost of *totals* (or their JSON form) on batchcore provider *provider*."""
        if not isinstance(totals, UsageTotals):
            totals = UsageTotals.from_dict(totals)
        source, error = _pricing(provider, prices_source)
        models = []
        for model in totals.models:
            parts = totals.parts(model)
            counts = totals.counts(model)
            found = None
            if error is None:
                found = _price_parts(provider, model, parts, batch=batch, at=at)
            models.append(
                ModelCost(
                    model=model,
                    requests=totals.requests(model),
                    input_tokens=counts["input"],
                    cache_read_tokens=counts["cache_read"],
                    cache_write_tokens=counts["cache_write"],
                    output_tokens=counts["output"],
                    reasoning_tokens=counts["reasoning"],
                    price=found,
                )
            )
        return cls(
            provider=provider, models=tuple(models), batch=batch, source=source, pricing_error=error
        )

    @classmethod
    def from_results(
        cls,
        provider: str,
        results: Iterable[BatchResult],
        *,
        model: str | None = None,
        batch: bool = True,
        at: datetime | None = None,
    ) -> JobCost:
        """The cost of *results*' usage, each priced as the model that answered (the
        response's ``model`` or ``modelVersion``), else *model*. Results without usage
        (failed, expired) count as requests that cost nothing."""
        totals = UsageTotals()
        for result in results:
            totals.add(answered_by(result, model), result.usage)
        return cls.from_totals(provider, totals, batch=batch, at=at)


def answered_by(result: BatchResult, default: str | None) -> str:
    """The model a result was answered by, as the vendor bills it (a dated snapshot when the
    response names one), else *default* (the batch's model)."""
    response = result.response
    if response is not None:
        for key in ("model", "modelVersion"):
            value = response.get(key)
            if isinstance(value, str) and value:
                return value
    return default or _UNKNOWN_MODEL


# -- estimate --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModelEstimate:
    """The estimate for the requests of one model."""

    model: str
    requests: int
    #: Batches holding only this model's requests (None when the provider mixes models).
    batches: int | None
    input_tokens_expected: int
    input_tokens_upper: int
    #: The sum of the requests' output bounds (None when some request has none).
    max_output_tokens: int | None
    #: Requests with no output limit of their own (bounded by a default or the context window).
    defaulted_output: int
    #: Requests whose output is unbounded (no limit, no default, no known context window).
    unbounded_output: int
    #: Files and audio parts, whose input bound is an assumption.
    assumed_parts: int
    expected: Price | None
    upper: Price | None

    def to_dict(self) -> dict[str, Any]:
        expected, upper = self.expected, self.upper
        return {
            "model": self.model,
            "requests": self.requests,
            "batches": self.batches,
            "input_tokens": {
                "expected": self.input_tokens_expected,
                "upper": self.input_tokens_upper,
            },
            "max_output_tokens": self.max_output_tokens,
            "priced_as": None if expected is None else expected.priced_as,
            "batch_rates": None if expected is None else expected.batch_rates,
            "cost_usd_expected": None if expected is None else usd(expected.total_usd),
            "cost_usd_max": None if upper is None else usd(upper.total_usd),
            "standard_cost_usd_expected": None if expected is None else usd(expected.standard_usd),
            "saving_usd_expected": None if expected is None else usd(expected.saving_usd),
        }


@attrs.frozen(kw_only=True)
class JobEstimate:
    """What a job would cost, before anything is sent (see :func:`estimate`)."""

    provider: str
    requests: int
    batches: int
    models: tuple[ModelEstimate, ...]
    output_share: float = EXPECTED_OUTPUT_SHARE
    source: str | None = None
    pricing_error: str | None = None
    method: str = METHOD

    @property
    def input_tokens_expected(self) -> int:
        return sum(m.input_tokens_expected for m in self.models)

    @property
    def input_tokens_upper(self) -> int:
        return sum(m.input_tokens_upper for m in self.models)

    @property
    def max_output_tokens(self) -> int | None:
        bounds = [m.max_output_tokens for m in self.models]
        return None if None in bounds else sum(b for b in bounds if b is not None)

    @property
    def unknown_prices(self) -> tuple[str, ...]:
        if self.pricing_error is not None:
            return ()
        return tuple(m.model for m in self.models if m.expected is None)

    def _sum(self, which: str, field: str) -> Decimal | None:
        total = Decimal(0)
        for m in self.models:
            found = getattr(m, which)
            if found is None:
                return None
            total += getattr(found, field)
        return None if self.pricing_error is not None else total

    @property
    def cost_usd_expected(self) -> Decimal | None:
        return self._sum("expected", "total_usd")

    @property
    def cost_usd_max(self) -> Decimal | None:
        """The upper bound, or None when it cannot be computed (a price or an output bound is
        unknown)."""
        return self._sum("upper", "total_usd")

    @property
    def standard_cost_usd_expected(self) -> Decimal | None:
        return self._sum("expected", "standard_usd")

    @property
    def assumptions(self) -> tuple[str, ...]:
        """What the bound takes for granted rather than proves."""
        notes = []
        assumed = sum(m.assumed_parts for m in self.models)
        if assumed:
            notes.append(
                f"{assumed} file or audio part(s) are bounded by an assumed size (see method)"
            )
        defaulted = sum(m.defaulted_output for m in self.models)
        if defaulted:
            notes.append(
                f"{defaulted} request(s) set no output limit: bounded by the provider's default "
                "or the model's context window"
            )
        unbounded = sum(m.unbounded_output for m in self.models)
        if unbounded:
            notes.append(
                f"{unbounded} request(s) set no output limit and nothing else bounds it: set "
                "max_tokens (or max_completion_tokens / max_output_tokens)"
            )
        return tuple(notes)

    def to_dict(self) -> dict[str, Any]:
        expected = self.cost_usd_expected
        standard = self.standard_cost_usd_expected
        return {
            "provider": self.provider,
            "requests": self.requests,
            "batches": self.batches,
            "input_tokens": {
                "expected": self.input_tokens_expected,
                "upper": self.input_tokens_upper,
            },
            "max_output_tokens": self.max_output_tokens,
            "cost_usd_expected": usd(expected),
            "cost_usd_max": usd(self.cost_usd_max),
            "standard_cost_usd_expected": usd(standard),
            "saving_usd_expected": (
                None if expected is None or standard is None else usd(standard - expected)
            ),
            "unknown_prices": list(self.unknown_prices),
            "output_share": self.output_share,
            "prices": self.source,
            "pricing_error": self.pricing_error,
            "assumptions": list(self.assumptions),
            "method": self.method,
            "models": [m.to_dict() for m in self.models],
        }


class _Tally:
    """Running counts of one model's requests."""

    __slots__ = (
        "assumed",
        "default_output",
        "defaulted",
        "expected",
        "max_output",
        "requests",
        "unbounded",
        "upper",
    )

    def __init__(self, default_output: int | None) -> None:
        self.default_output = default_output
        self.requests = 0
        self.expected = 0
        self.upper = 0
        self.max_output = 0
        self.defaulted = 0
        self.unbounded = 0
        self.assumed = 0


def estimate(
    provider: BaseBatchProvider,
    requests: Iterable[BatchRequest],
    *,
    model: str | None = None,
    default_max_output_tokens: int | None = None,
    output_share: float = EXPECTED_OUTPUT_SHARE,
    at: datetime | None = None,
) -> JobEstimate:
    """Estimate what *requests* would cost on *provider*, offline: nothing is sent.

    The requests are validated and split as ``provider.prepare_payloads`` would submit them
    (into a temporary directory, removed afterwards), so invalid input raises here as it would
    at submit time. *model* prices every request as that model (an Azure deployment's model);
    *default_max_output_tokens* bounds requests that set no output limit (else the provider's
    ``default_max_output_tokens(model)`` when it has one, else the model's context window).
    """
    name = provider.PROVIDER_NAME
    tallies: dict[str, _Tally] = {}
    expected_usage = UsageTotals()
    upper_usage = UsageTotals()
    share = float(output_share)
    if not 0 <= share <= 1:
        raise ValueError(f"output_share must be between 0 and 1, got {output_share!r}")

    def counted() -> Iterator[BatchRequest]:
        for request in requests:
            key = model or request.model
            tally = tallies.get(key)
            if tally is None:
                default = default_max_output_tokens
                if default is None:
                    default = _provider_default(provider, key)
                if default is None:
                    default = _pricing(name, functools.partial(context_window, name, key))[0]
                tally = tallies[key] = _Tally(default)
            own = estimate_tokens(request, provider=name, default_max_output=tally.default_output)
            output = own.output_upper
            if output is None:
                tally.unbounded += 1
                output = 0
            elif own.output_defaulted:
                tally.defaulted += 1
            tally.requests += 1
            tally.expected += own.expected
            tally.upper += own.upper
            tally.max_output += output
            tally.assumed += own.assumed
            expected_usage.add_counts(key, input_tokens=own.expected, output=round(output * share))
            upper_usage.add_counts(key, input_tokens=own.upper, output=output)
            yield request

    with tempfile.TemporaryDirectory(prefix="batchcore-estimate-") as workdir:
        preparer = copy.copy(provider)
        preparer.workdir = Path(workdir)
        payloads = preparer.prepare_payloads(counted())
        batches: dict[str | None, int] = {}
        for payload in payloads:
            batches[payload.model] = batches.get(payload.model, 0) + 1
            payload.discard()
    source, error = _pricing(name, prices_source)
    models = []
    for key in sorted(tallies):
        tally = tallies[key]
        expected_price = upper_price = None
        if error is None:
            expected_price = _price_parts(name, key, expected_usage.parts(key), batch=True, at=at)
            if expected_price is not None and not tally.unbounded:
                upper_price = _price_parts(name, key, upper_usage.parts(key), batch=True, at=at)
        models.append(
            ModelEstimate(
                model=key,
                requests=tally.requests,
                batches=None if None in batches or model else batches.get(key, 0),
                input_tokens_expected=tally.expected,
                input_tokens_upper=tally.upper,
                max_output_tokens=None if tally.unbounded else tally.max_output,
                defaulted_output=tally.defaulted,
                unbounded_output=tally.unbounded,
                assumed_parts=tally.assumed,
                expected=expected_price,
                upper=upper_price,
            )
        )
    return JobEstimate(
        provider=name,
        requests=sum(t.requests for t in tallies.values()),
        batches=len(payloads),
        models=tuple(models),
        output_share=share,
        source=source,
        pricing_error=error,
    )


def _provider_default(provider: BaseBatchProvider, model: str) -> int | None:
    """The provider's default output limit for *model*, when it declares one."""
    method = getattr(provider, "default_max_output_tokens", None)
    if not callable(method):
        return None
    value = method(model)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- budget ----------------------------------------------------------------------------------


def budget_problem(estimate: JobEstimate, budget_usd: float | Decimal | str) -> str | None:
    """Why *estimate* may not run under a budget of *budget_usd* dollars, or None when its upper
    bound fits. A bound that cannot be computed (an unknown price, an unbounded output,
    genai-prices not installed) is a problem too: a budget that cannot be checked is not kept.
    """
    budget = Decimal(str(budget_usd))
    bound = estimate.cost_usd_max
    if bound is None:
        if estimate.pricing_error is not None:
            why = estimate.pricing_error
        elif estimate.unknown_prices:
            why = "genai-prices has no price for " + ", ".join(estimate.unknown_prices)
        else:
            why = "; ".join(estimate.assumptions) or "the output of some requests is unbounded"
        return f"budget: cannot check the budget of {_dollars(budget)}: {why}"
    if bound <= budget:
        return None
    output = estimate.max_output_tokens or 0
    expected = estimate.cost_usd_expected
    notes = "".join(f"; {note}" for note in estimate.assumptions)
    return (
        f"budget: the job may cost up to {_dollars(bound)} at batch prices, more than the "
        f"budget of {_dollars(budget)}. That bound is {estimate.input_tokens_upper:,} input tokens "
        "(one per UTF-8 byte of the requests' text, plus per-message, per-image and tool "
        f"overheads) and {output:,} output tokens (every request's output limit, in full), "
        f"priced by {estimate.source}{notes}. The expected cost is "
        f"{_dollars(expected) if expected is not None else 'unknown'}. Raise the budget, or "
        "lower max_tokens."
    )


def _dollars(amount: Decimal | None) -> str:
    if amount is None:
        return "unknown"
    if abs(amount) >= 1 or not amount:
        return f"${amount:,.2f}"
    # Four significant digits, never in scientific notation ($0.0004455).
    return "$" + format(amount.quantize(Decimal(1).scaleb(amount.adjusted() - 3)).normalize(), "f")
