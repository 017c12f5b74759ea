"""Structured output end to end: a pydantic model -> requests -> the runner -> the emulator,
which answers each request with an instance of its schema -> every result parses."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.plugin import BatchRequest, InvalidRequestError
from batchcore.structured import StructuredOutputError, parse_results, response_format
from batchcore.testing import ManualClock
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator

MODEL = "claude-haiku-4-5"


class Line(BaseModel):
    item: str
    quantity: int = Field(ge=1)
    unit_price: float


class Card(BaseModel):
    method: Literal["card"]
    last4: str = Field(min_length=4, max_length=4)


class Cash(BaseModel):
    method: Literal["cash"]


class Invoice(BaseModel):
    """An invoice read from a document."""

    number: str = Field(description="As printed")
    issued: date
    currency: Literal["EUR", "USD"]
    lines: list[Line] = Field(min_length=1)
    paid_with: Card | Cash | None = Field(default=None, discriminator="method")
    notes: str | None = None


class FreeForm(BaseModel):
    totals: dict[str, float]


@pytest.fixture
def runner(tmp_path: Path, clock: ManualClock) -> BatchRunner:
    return BatchRunner(
        tmp_path / "jobs.sqlite3",
        clock=clock.now,
        sleep=clock.sleep,
        poll=PollSchedule(min_interval=10, max_interval=60, jitter=0),
    )


def ask(custom_id: str, model: Any, **params: Any) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model=MODEL,
        messages=[{"role": "user", "content": f"Read document {custom_id}."}],
        params={"response_format": response_format(model), "max_tokens": 1024, **params},
    )


def test_every_answer_of_a_job_parses_as_the_model(
    runner: BatchRunner, provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    info = runner.run(provider, [ask(f"doc{i}", Invoice) for i in range(5)])
    assert info.all_succeeded
    pairs = list(parse_results(runner, info.id, Invoice))
    assert [r.custom_id for r, _ in pairs] == [f"doc{i}" for i in range(5)]
    for result, invoice in pairs:
        assert isinstance(invoice, Invoice), invoice
        assert invoice.lines and invoice.lines[0].quantity >= 1
        assert result.parse(Invoice) == invoice
    # The schema reached the vendor as Anthropic's structured output, strict.
    (batch_id,) = emulator.batch_ids()
    sent = emulator.submitted_params(batch_id)["doc0"]
    schema = sent["output_config"]["format"]["schema"]
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert schema["additionalProperties"] is False and "$defs" in schema


def test_an_answer_cut_at_max_tokens_is_reported_not_parsed(
    runner: BatchRunner, provider: AnthropicBatchProvider
) -> None:
    info = runner.run(provider, [ask("short", Invoice, max_tokens=5)])
    (result,) = runner.results(info.id)
    assert result.ok and result.response is not None
    assert result.response["stop_reason"] == "max_tokens"
    with pytest.raises(StructuredOutputError) as caught:
        result.parse(Invoice)
    assert caught.value.reason == "invalid_json" and caught.value.text == result.text


def test_the_deprecated_output_format_is_not_part_of_a_batch_request(
    runner: BatchRunner, provider: AnthropicBatchProvider
) -> None:
    # Anthropic's spec has no output_format in a batch request's params: refused as the API
    # refuses it, before any batch exists.
    schema = response_format(Line)["json_schema"]["schema"]
    request = BatchRequest(
        custom_id="old",
        model=MODEL,
        messages=[{"role": "user", "content": "A line"}],
        params={"max_tokens": 256},
        provider_params={"anthropic": {"output_format": {"type": "json_schema", "schema": schema}}},
    )
    with pytest.raises(InvalidRequestError, match="output_format: Extra inputs"):
        runner.run(provider, [request])


def test_a_schema_no_value_satisfies_ends_errored(
    runner: BatchRunner, provider: AnthropicBatchProvider
) -> None:
    impossible = {
        "type": "object",
        "properties": {"pick": {"enum": []}},
        "required": ["pick"],
        "additionalProperties": False,
    }
    info = runner.run(provider, [ask("never", impossible)])
    (result,) = runner.results(info.id)
    assert result.error is not None and result.error.code == "invalid_request_error"
    assert "output_config.format.schema" in result.error.message
    with pytest.raises(StructuredOutputError, match="did not succeed") as caught:
        result.parse(Line)
    assert caught.value.reason == "not_succeeded"


def test_a_model_that_cannot_be_strict_is_refused_before_anything_is_sent(
    runner: BatchRunner, provider: AnthropicBatchProvider, emulator: AnthropicEmulator
) -> None:
    assert response_format(FreeForm)["json_schema"]["strict"] is False
    with pytest.raises(InvalidRequestError, match=r"strict: Anthropic always constrains"):
        runner.run(provider, [ask("free", FreeForm)])
    assert emulator.batch_count() == 0 and runner.jobs() == []


def test_structured_answers_are_shared_per_schema(emulator: AnthropicEmulator) -> None:
    # The emulator keeps one answer text per schema, not one per request.
    from batchcore_anthropic._emulation import validate_create

    fmt = {"type": "json_schema", "schema": response_format(Line)["json_schema"]["schema"]}
    body = {
        "requests": [
            {
                "custom_id": f"r{i}",
                "params": {
                    "model": MODEL,
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": "x"}],
                    "output_config": {"format": fmt},
                },
            }
            for i in range(3)
        ]
    }
    items = validate_create(body, 10)
    assert items[0].structured is not None
    assert all(item.structured is items[0].structured for item in items)
    assert Line.model_validate(json.loads(items[0].structured))
