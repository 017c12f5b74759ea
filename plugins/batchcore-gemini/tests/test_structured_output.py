"""Structured output end to end: a pydantic model -> requests -> the runner -> the emulator,
which answers each request with an instance of its schema -> every result parses. Models
Gemini's schema cannot express are refused before anything is sent."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import pytest
from conftest import MODEL
from pydantic import BaseModel, Field

from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.plugin import BatchRequest, InvalidRequestError
from batchcore.structured import StructuredOutputError, parse_results, response_format
from batchcore.testing import ManualClock
from batchcore_gemini.provider import GeminiBatchProvider
from batchcore_gemini.testing import GeminiEmulator


class Review(BaseModel):
    """One product review, classified."""

    product: str = Field(description="The product's name")
    sentiment: Literal["positive", "neutral", "negative"]
    stars: int = Field(ge=1, le=5)
    quotes: list[str] = Field(min_length=1, max_length=3)
    reviewed_at: datetime | None = None


class Step(BaseModel):
    title: str
    done: bool


class Plan(BaseModel):
    goal: str
    steps: list[Step]
    owner: Step | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Tagged(BaseModel):
    counts: dict[str, int]


class Keyed(BaseModel):
    id: UUID


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
        messages=[{"role": "user", "content": f"Classify review {custom_id}."}],
        params={"response_format": response_format(model), "max_tokens": 1024, **params},
    )


@pytest.mark.parametrize("model", [Review, Plan])
def test_every_answer_of_a_job_parses_as_the_model(
    runner: BatchRunner, provider: GeminiBatchProvider, emulator: GeminiEmulator, model: Any
) -> None:
    info = runner.run(provider, [ask(f"r{i}", model) for i in range(4)])
    assert info.all_succeeded
    pairs = list(parse_results(runner, info.id, model))
    assert [r.custom_id for r, _ in pairs] == [f"r{i}" for i in range(4)]
    for result, parsed in pairs:
        assert isinstance(parsed, model), parsed
        assert result.parse(model) == parsed
    (name,) = emulator.batch_ids()
    config = emulator.submitted_requests(name)["r0"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"  # converted to Gemini's schema


def test_a_response_json_schema_is_answered_too(
    runner: BatchRunner, provider: GeminiBatchProvider
) -> None:
    # Gemini's other field takes JSON Schema as it is, references included.
    schema = response_format(Plan)["json_schema"]["schema"]
    assert "$defs" in schema
    request = BatchRequest(
        custom_id="json",
        model=MODEL,
        messages=[{"role": "user", "content": "Plan"}],
        provider_params={
            "gemini": {
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseJsonSchema": schema,
                }
            }
        },
    )
    info = runner.run(provider, [request])
    (result,) = runner.results(info.id)
    assert isinstance(result.parse(Plan), Plan)


def test_an_answer_cut_at_max_tokens_is_reported_not_parsed(
    runner: BatchRunner, provider: GeminiBatchProvider
) -> None:
    info = runner.run(provider, [ask("short", Review, max_tokens=4)])
    (result,) = runner.results(info.id)
    assert result.ok and result.response is not None
    assert result.response["candidates"][0]["finishReason"] == "MAX_TOKENS"
    with pytest.raises(StructuredOutputError) as caught:
        result.parse(Review)
    assert caught.value.reason == "invalid_json" and caught.value.text == result.text


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (Tree, "is recursive"),
        (Tagged, "accepts only additionalProperties: false"),
        (Keyed, "not 'uuid'"),
    ],
)
def test_a_model_gemini_cannot_express_is_refused_before_anything_is_sent(
    runner: BatchRunner,
    provider: GeminiBatchProvider,
    emulator: GeminiEmulator,
    model: Any,
    why: str,
) -> None:
    with pytest.raises(InvalidRequestError, match=why):
        runner.run(provider, [ask("refused", model)])
    assert emulator.batch_count() == 0 and runner.jobs() == []


def test_the_validator_requires_json_output_for_a_response_json_schema() -> None:
    from batchcore_gemini._emulation import request_problem

    contents = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    plain = {**contents, "generationConfig": {"responseJsonSchema": schema}}
    assert "needs responseMimeType" in (request_problem(plain) or "")
    both = {
        **contents,
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
            "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
        },
    }
    assert "cannot both be set" in (request_problem(both) or "")


def test_gemini_schemas_read_as_json_schema() -> None:
    from batchcore_gemini._emulation import json_schema_of

    gemini = {
        "type": "OBJECT",
        "properties": {
            "n": {"type": "INTEGER", "format": "int32", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
        },
        "required": ["n", "tags"],
        "propertyOrdering": ["n", "tags"],
    }
    assert json_schema_of(gemini) == {
        "type": "object",
        "properties": {
            "n": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["n", "tags"],
    }


def test_an_enum_answer_is_one_of_its_values() -> None:
    from batchcore_gemini._emulation import answer

    request = {
        "contents": [{"role": "user", "parts": [{"text": "Pick"}]}],
        "generationConfig": {
            "responseMimeType": "text/x.enum",
            "responseSchema": {"type": "STRING", "format": "enum", "enum": ["red", "blue"]},
        },
    }
    (candidate,) = answer(request, f"models/{MODEL}", 0)["response"]["candidates"]
    assert candidate["content"]["parts"] == [{"text": "red"}]
    assert candidate["finishReason"] == "STOP"


def test_a_schema_no_value_satisfies_ends_with_an_error() -> None:
    from batchcore_gemini._emulation import answer

    request = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "integer", "minimum": 2, "maximum": 1},
        },
    }
    outcome = answer(request, f"models/{MODEL}", 0)
    assert outcome["error"]["code"] == 3 and "bounds" in outcome["error"]["message"]
