"""Structured output: pydantic models as strict response formats, and answers parsed back on
read (also in another runner and another process), through the real runner on the fake
provider."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from batchcore import BatchcoreError, BatchProviderRegistry, BatchRequest, BatchResult
from batchcore.jobs import BatchRunner, PollSchedule
from batchcore.models import ResultError, ResultStatus
from batchcore.structured import (
    StrictSchemaError,
    StructuredOutputError,
    parse,
    parse_each,
    parse_results,
    response_format,
    strict_json_schema,
)
from batchcore.testing import FakeBackend, FakeBatchProvider, ManualClock, Outcome
from batchcore.testing.emulation import schema_instance


class Address(BaseModel):
    """Where someone lives."""

    city: str
    postcode: str | None = None


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Person(BaseModel):
    """A person found in the text."""

    name: str = Field(description="The full name", min_length=1)
    age: int = Field(ge=0, le=150)
    home: Address = Field(description="The main home")
    previous: list[Address] = []
    pet: Cat | Dog = Field(discriminator="kind")
    tags: set[str] = set()
    born: date | None = None


class Node(BaseModel):
    name: str
    children: list[Node] = []


class FreeForm(BaseModel):
    scores: dict[str, int]
    anything: Any = None


def strict_problems(schema: Any, path: str = "") -> list[str]:
    """What breaks OpenAI's strict mode in *schema*, checked independently of the code under
    test: open objects, optional properties, $ref with siblings, oneOf, untyped schemas."""
    found: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: not an object"]
    for name, item in (schema.get("$defs") or {}).items():
        found += strict_problems(item, f"{path}/$defs/{name}")
    if "$ref" in schema:
        extra = set(schema) - {"$ref", "$defs"}
        return found + ([f"{path}: $ref with {sorted(extra)}"] if extra else [])
    if "oneOf" in schema or "discriminator" in schema:
        found.append(f"{path}: oneOf/discriminator")
    if not any(k in schema for k in ("type", "anyOf", "enum", "const")):
        found.append(f"{path}: untyped")
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            found.append(f"{path}: open object")
        properties = schema.get("properties") or {}
        if sorted(schema.get("required") or []) != sorted(properties):
            found.append(f"{path}: optional properties")
        for name, item in properties.items():
            found += strict_problems(item, f"{path}/{name}")
    if isinstance(schema.get("items"), dict):
        found += strict_problems(schema["items"], f"{path}/items")
    for index, branch in enumerate(schema.get("anyOf") or []):
        found += strict_problems(branch, f"{path}/anyOf/{index}")
    return found


# -- response formats ---------------------------------------------------------------------------


def test_a_model_becomes_a_strict_json_schema_response_format() -> None:
    fmt = response_format(Person)
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert spec["name"] == "Person" and spec["strict"] is True
    assert "description" not in spec  # only when asked for; the docstring is in the schema
    schema = spec["schema"]
    assert strict_problems(schema) == []
    assert schema["type"] == "object" and schema["description"] == "A person found in the text."
    assert schema["required"] == ["name", "age", "home", "previous", "pet", "tags", "born"]
    assert set(schema["$defs"]) == {"Address", "Cat", "Dog"}  # definitions are kept
    # A reference with a description of its own is written out, keeping the description.
    assert schema["properties"]["home"]["description"] == "The main home"
    assert schema["properties"]["home"]["properties"]["city"] == {"title": "City", "type": "string"}
    # A discriminated union is written as anyOf, without OpenAPI's discriminator.
    assert schema["properties"]["pet"]["anyOf"] == [
        {"$ref": "#/$defs/Cat"},
        {"$ref": "#/$defs/Dog"},
    ]
    # Constraints stay; a null default, which says nothing once every field is required, goes.
    assert schema["properties"]["age"]["minimum"] == 0
    assert "default" not in schema["properties"]["born"]
    assert "uniqueItems" not in schema["properties"]["tags"]
    # The model's own schema is left as pydantic wrote it.
    assert "additionalProperties" not in Person.model_json_schema()


def test_a_strict_schema_still_describes_the_model() -> None:
    # Any instance of the strict schema is a valid Person, and every Person fits the schema.
    schema = response_format(Person)["json_schema"]["schema"]
    instance = schema_instance(schema)
    assert Person.model_validate(instance).pet.kind in ("cat", "dog")
    jsonschema = pytest.importorskip("jsonschema")
    person = Person(
        name="Ada",
        age=36,
        home=Address(city="London"),
        pet=Dog(kind="dog", good=True),
        tags={"x"},
    )
    jsonschema.validate(json.loads(person.model_dump_json()), schema)


def test_a_recursive_model_keeps_its_definitions_and_an_object_root() -> None:
    schema = response_format(Node)["json_schema"]["schema"]
    assert response_format(Node)["json_schema"]["strict"] is True
    assert schema["type"] == "object" and "$ref" not in schema
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert strict_problems(schema) == []
    assert Node.model_validate(schema_instance(schema)).name == ""


def test_a_model_that_cannot_be_strict_is_sent_not_strict_or_refused() -> None:
    fmt = response_format(FreeForm)
    assert fmt["json_schema"]["strict"] is False
    _, problems = strict_json_schema(FreeForm.model_json_schema())
    assert any("scores" in p and "free-form" in p for p in problems)
    assert any("anything" in p and "any value" in p for p in problems)
    with pytest.raises(StrictSchemaError, match="scores") as caught:
        response_format(FreeForm, strict=True)
    assert isinstance(caught.value, BatchcoreError) and len(caught.value.problems) == 2
    # A tuple, and a root that is not an object, cannot be strict either.
    _, problems = strict_json_schema({"type": "array", "prefixItems": [{"type": "string"}]})
    assert any("tuple" in p for p in problems) and any("root" in p for p in problems)


def test_strict_false_sends_the_schema_as_pydantic_writes_it() -> None:
    fmt = response_format(Person, strict=False)
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == Person.model_json_schema()


def test_name_description_and_plain_schemas() -> None:
    fmt = response_format(Address, name="a home, maybe" + "x" * 80, description="Where")
    spec = fmt["json_schema"]
    assert spec["name"] == ("a_home__maybe" + "x" * 80)[:64]
    assert spec["description"] == spec["schema"]["description"] == "Where"
    plain = {"title": "city", "type": "object", "properties": {"n": {"type": "integer"}}}
    fmt = response_format(plain)
    assert fmt["json_schema"]["name"] == "city" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["n"]
    assert "required" not in plain  # the caller's schema is not changed


def test_a_response_format_travels_in_an_immutable_request() -> None:
    request = BatchRequest(
        custom_id="p1",
        model="fake-model",
        messages=[{"role": "user", "content": "Who?"}],
        params={"response_format": response_format(Person)},
    )
    body = json.loads(request.openai_body_json())
    assert body["response_format"] == response_format(Person)


# -- parsing one result -----------------------------------------------------------------------


def succeeded(text: str | None, **extra: Any) -> BatchResult:
    return BatchResult(custom_id="r1", status=ResultStatus.SUCCEEDED, text=text, **extra)


def test_parse_returns_the_validated_instance() -> None:
    text = json.dumps({"city": "Lyon", "postcode": None})
    address = succeeded(text).parse(Address)
    assert address == Address(city="Lyon")
    assert parse(succeeded(text), Address) == address


@pytest.mark.parametrize(
    ("result", "reason", "words"),
    [
        (
            BatchResult(
                custom_id="r1",
                status=ResultStatus.ERRORED,
                error=ResultError(code="invalid_request", message="bad", retryable=False),
            ),
            "not_succeeded",
            "did not succeed (errored; invalid_request: bad)",
        ),
        (
            BatchResult.unfinished("r1", ResultStatus.EXPIRED),
            "not_succeeded",
            "batch_expired",
        ),
        (succeeded(None, refusal="I can't help with that."), "refused", "refused"),
        (succeeded(None), "no_text", "without any answer text"),
        (succeeded('{"city": "Ly'), "invalid_json", "is not JSON (was it cut short"),
        (succeeded('{"postcode": 7}'), "invalid", "does not match Address"),
    ],
)
def test_every_way_to_fail_raises_one_error_type(
    result: BatchResult, reason: str, words: str
) -> None:
    with pytest.raises(StructuredOutputError) as caught:
        result.parse(Address)
    error = caught.value
    assert isinstance(error, BatchcoreError) and isinstance(error, ValueError)
    assert error.reason == reason and words in str(error)
    assert error.custom_id == "r1" and error.result is result and error.text == result.text
    assert error.model == "Address"


def test_a_validation_error_carries_pydantics_errors() -> None:
    with pytest.raises(StructuredOutputError) as caught:
        succeeded('{"postcode": 7}').parse(Address)
    errors = caught.value.errors
    assert {(e["loc"], e["type"]) for e in errors} == {
        (("city",), "missing"),
        (("postcode",), "string_type"),
    }
    assert "city: Field required" in str(caught.value)
    assert "begins '{\"postcode\": 7}'" in str(caught.value)
    assert caught.value.__cause__ is not None  # pydantic's own error, for the traceback


def test_parse_each_pairs_results_with_instances_or_errors_lazily() -> None:
    def results() -> Iterator[BatchResult]:
        yield succeeded('{"city": "Porto"}')
        yield succeeded("not json")
        raise AssertionError("read one result too far")

    pairs = parse_each(results(), Address)
    first, second = next(pairs), next(pairs)
    assert first[1] == Address(city="Porto")
    assert isinstance(second[1], StructuredOutputError) and second[1].reason == "invalid_json"


# -- through the runner -------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def backend(clock: ManualClock) -> FakeBackend:
    return FakeBackend(clock=clock, validating_seconds=5, in_progress_seconds=60)


@pytest.fixture
def make_runner(tmp_path: Path, clock: ManualClock) -> Callable[[], BatchRunner]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(FakeBatchProvider)

    def make() -> BatchRunner:
        return BatchRunner(
            tmp_path / "jobs.sqlite3",
            registry=registry,
            clock=clock.now,
            sleep=clock.sleep,
            poll=PollSchedule(min_interval=5, max_interval=60, jitter=0),
        )

    return make


def person_requests(n: int) -> list[BatchRequest]:
    fmt = response_format(Person)
    return [
        BatchRequest(
            custom_id=f"p{i}",
            model="fake-model",
            messages=[{"role": "user", "content": f"Text {i}"}],
            params={"response_format": fmt, "max_tokens": 200},
        )
        for i in range(n)
    ]


def person_json(i: int) -> str:
    return json.dumps(
        {
            "name": f"Person {i}",
            "age": 30 + i,
            "home": {"city": "Lyon", "postcode": None},
            "previous": [],
            "pet": {"kind": "cat", "lives": 9},
            "tags": ["a", "a"],
            "born": None,
        }
    )


def script_answers(backend: FakeBackend) -> None:
    for i in range(4):
        backend.script(f"p{i}", Outcome.succeed(person_json(i)))
    backend.script("p4", Outcome.succeed('{"name": "Cut sho'))  # cut at max_tokens
    backend.script("p5", Outcome.error("invalid_request", "no"))


def check_parsed(pairs: list[tuple[BatchResult, Person | StructuredOutputError]]) -> None:
    assert [r.custom_id for r, _ in pairs] == [f"p{i}" for i in range(6)]  # input order
    people = [p for _, p in pairs if isinstance(p, Person)]
    assert [p.age for p in people] == [30, 31, 32, 33]
    assert people[0].tags == {"a"} and people[0].pet == Cat()
    errors = {r.custom_id: p.reason for r, p in pairs if isinstance(p, StructuredOutputError)}
    assert errors == {"p4": "invalid_json", "p5": "not_succeeded"}


def test_parse_results_of_a_job_run_by_the_runner(
    make_runner: Callable[[], BatchRunner], backend: FakeBackend
) -> None:
    script_answers(backend)
    runner = make_runner()
    info = runner.run("fake", person_requests(6), config={"backend": backend})
    assert info.finished
    pairs = parse_results(runner, info.id, Person)
    assert isinstance(pairs, Iterator)  # streamed, not a list
    check_parsed(list(pairs))


def test_results_parse_after_resume_in_a_new_runner_and_a_new_process(
    make_runner: Callable[[], BatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    script_answers(backend)
    job_id = make_runner().submit("fake", person_requests(6), config={"backend": backend})
    # Another runner on the same store (as after a restart) resumes the job and parses: the
    # model is code, given when reading; nothing about it was stored.
    fresh = make_runner()
    fresh.resume(job_id, config={"backend": backend})
    check_parsed(list(parse_results(fresh, job_id, Person)))
    # And in another process, which defines the model itself and only opens the store.
    script = textwrap.dedent(
        f"""
        from pydantic import BaseModel
        from batchcore.jobs import BatchRunner
        from batchcore.structured import parse_results

        class Address(BaseModel):
            city: str
            postcode: str | None = None

        class Person(BaseModel):
            name: str
            home: Address

        runner = BatchRunner({str(tmp_path / "jobs.sqlite3")!r})
        for result, person in parse_results(runner, {job_id!r}, Person):
            print(result.custom_id, getattr(person, "name", None) or person.reason)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "p0 Person 0",
        "p1 Person 1",
        "p2 Person 2",
        "p3 Person 3",
        "p4 invalid_json",
        "p5 not_succeeded",
    ]


def test_without_pydantic_parsing_says_how_to_install_it() -> None:
    # A process where pydantic cannot be imported (a None entry makes ``import`` fail).
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None
        from batchcore.models import BatchResult, ResultStatus
        from batchcore.structured import parse, response_format

        class Thing:
            pass

        result = BatchResult(custom_id="r1", status=ResultStatus.SUCCEEDED, text='{"a": 1}')
        for attempt in (lambda: parse(result, Thing), lambda: response_format(Thing)):
            try:
                attempt()
            except ImportError as error:
                print(type(error).__name__, error, error.__cause__, error.__suppress_context__)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    hint = "ImportError structured output needs pydantic 2: pip install 'batchcore[pydantic]'"
    assert done.stdout.splitlines() == [f"{hint} None True"] * 2
