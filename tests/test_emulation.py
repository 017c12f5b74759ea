"""The vendor-neutral emulation engine: lifecycles on the clock, files, input scans, canned
answers, schema instances, failure markers and request ids."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from batchcore.testing.emulation import (
    ANSWERED_ENDPOINTS,
    FAIL_MARKER,
    BodyChecker,
    CompletionOrder,
    EmulatorStoppedError,
    FileStore,
    LineError,
    RequestIds,
    Stage,
    Timing,
    UsageTotals,
    answer_body,
    find_fail_marker,
    iter_file_lines,
    phase_of,
    request_id,
    scan_input,
    schema_instance,
    unfinished,
    write_finished,
)
from batchcore.testing.openapi import SpecProblem, SpecValidator

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
TIMING = Timing(validating=10, processing=100, finalizing=10, cancelling=5, window=1000)


def _chat(text: str = "hello there", **params: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **params}


def _write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
    )
    return path


# -- lifecycle ----------------------------------------------------------------------------------


def test_a_batch_lives_its_phases_on_the_clock() -> None:
    def at(now: float) -> Any:
        return phase_of(now, created_at=0, total=10, timing=TIMING)

    assert (at(0).stage, at(0).done) == (Stage.VALIDATING, 0)
    assert (at(10).stage, at(10).done) == (Stage.IN_PROGRESS, 0)
    assert (at(60).stage, at(60).done) == (Stage.IN_PROGRESS, 5)
    assert (at(110).stage, at(110).done) == (Stage.FINALIZING, 10)
    done = at(120)
    assert (done.stage, done.done, done.terminal) == (Stage.COMPLETED, 10, True)
    assert done.timestamps == {
        "created_at": 0,
        "expires_at": 1000,
        "in_progress_at": 10,
        "finalizing_at": 110,
        "completed_at": 120,
    }
    assert not at(119).terminal


def test_an_invalid_batch_fails_when_validation_ends() -> None:
    assert phase_of(9, created_at=0, total=0, timing=TIMING, invalid=True).stage is Stage.VALIDATING
    failed = phase_of(10, created_at=0, total=0, timing=TIMING, invalid=True)
    assert (failed.stage, failed.done, failed.timestamps["failed_at"]) == (Stage.FAILED, 0, 10)


def test_a_cancel_keeps_what_finished() -> None:
    cancelling = phase_of(62, created_at=0, total=10, timing=TIMING, cancel_requested_at=60)
    assert (cancelling.stage, cancelling.done) == (Stage.CANCELLING, 5)
    cancelled = phase_of(65, created_at=0, total=10, timing=TIMING, cancel_requested_at=60)
    assert (cancelled.stage, cancelled.done) == (Stage.CANCELLED, 5)
    assert cancelled.timestamps["cancelled_at"] == 65
    # Before the cancel was asked for, the batch ran as usual.
    assert phase_of(30, created_at=0, total=10, timing=TIMING, cancel_requested_at=60).stage is (
        Stage.IN_PROGRESS
    )


def test_a_slow_batch_expires_with_partial_results_unless_it_cannot() -> None:
    slow = Timing(validating=10, processing=2000, window=1000)
    expired = phase_of(1000, created_at=0, total=100, timing=slow)
    assert (expired.stage, expired.expired, expired.done) == (Stage.EXPIRED, True, 49)
    assert expired.timestamps["expired_at"] == 1000
    still = phase_of(1000, created_at=0, total=100, timing=slow, expires=False)
    assert (still.stage, still.expired) == (Stage.IN_PROGRESS, False)


def test_the_completion_order_is_a_seeded_shuffle() -> None:
    order = CompletionOrder(50, seed="s", failing={3, 7})
    ranks = [order.rank(i) for i in range(50)]
    assert sorted(ranks) == list(range(50))
    assert ranks != list(range(50))
    again = CompletionOrder(50, seed="s", failing={3, 7})
    assert [again.rank(i) for i in range(50)] == ranks
    assert [CompletionOrder(50, seed="t").rank(i) for i in range(50)] != ranks
    assert order.failed_among(0) == 0 and order.failed_among(50) == 2
    assert order.failed_among(order.rank(3) + 1) >= 1
    assert all(order.failed_among(k) <= order.failed_among(k + 1) for k in range(50))


# -- files --------------------------------------------------------------------------------------


def test_the_file_store_keeps_files_on_disk(tmp_path: Path) -> None:
    counter = iter(range(100))
    store = FileStore(lambda: tmp_path, new_id=lambda: f"file-{next(counter)}")
    first = store.add(b"a\nb\n", filename="in.jsonl", purpose="batch", created_at=5)
    second = store.add(memoryview(b"xyz"), filename="x.jsonl", purpose="other", created_at=6)
    assert (first.id, first.size, first.path.read_bytes()) == ("file-0", 4, b"a\nb\n")
    assert [f.id for f in store.newest_first()] == ["file-1", "file-0"]
    assert [f.id for f in store.newest_first("batch")] == ["file-0"]
    stream = store.open_stream(second.id)
    assert stream is not None and b"".join(stream) == b"xyz"
    assert store.open_stream("file-nope") is None
    file_id, path = store.reserve()
    path.write_bytes(b"out")
    registered = store.register(file_id, path, filename="o", purpose="batch_output", created_at=7)
    assert (store.get(file_id), registered.size, len(store)) == (registered, 3, 3)
    assert store.delete(first.id) is first and not first.path.exists()
    assert store.delete(first.id) is None and store.get(first.id) is None
    store.clear()
    assert len(store) == 0


def test_a_stopped_store_refuses_new_files() -> None:
    store = FileStore(lambda: None, new_id=lambda: "file-0")
    with pytest.raises(EmulatorStoppedError):
        store.add(b"x", filename="f", purpose="batch", created_at=0)


def test_lines_are_read_without_blanks_or_endings(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n  \n{"b":2}')
    assert list(iter_file_lines(path)) == [b'{"a":1}', b'{"b":2}']


def test_results_are_written_in_completion_order(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "in.jsonl", [{"custom_id": f"r{i}"} for i in range(20)])
    order = CompletionOrder(20, seed="x")
    output, errors = io.BytesIO(), io.BytesIO()

    def render(index: int, line: bytes) -> tuple[int, bytes] | None:
        if index == 4:
            return None  # lost
        return (1 if index % 2 else 0), line + b"\n"

    with (tmp_path / "scratch").open("w+b") as scratch:
        write_finished(path, order, 12, render, (output, errors), scratch)
    finished = sorted((i for i in range(20) if order.rank(i) < 12), key=order.rank)
    expected = [i for i in finished if i != 4]
    written = [json.loads(line)["custom_id"] for line in output.getvalue().splitlines()]
    assert written == [f"r{i}" for i in expected if i % 2 == 0]
    failed = [json.loads(line)["custom_id"] for line in errors.getvalue().splitlines()]
    assert failed == [f"r{i}" for i in expected if i % 2]
    rest = [index for index, _ in unfinished(path, order, 12)]
    assert sorted(rest + finished) == list(range(20))


# -- markers and ids ----------------------------------------------------------------------------


def test_fail_markers() -> None:
    assert FAIL_MARKER.format(429) == "[emulator-fail:429]"
    status = find_fail_marker(b'{"content": "x [emulator-fail:503] y"}')
    assert status is not None and (status.status, status.code, status.drop) == (503, None, False)
    code = find_fail_marker(b"[emulator-fail:token_limit_exceeded]")
    assert code is not None and (code.status, code.code) == (None, "token_limit_exceeded")
    drop = find_fail_marker(b"[emulator-fail:drop]")
    assert drop is not None and drop.drop and drop.code is None
    assert find_fail_marker(b"[emulator-fail:NOPE] [emulator-fail:5]") is None


def test_request_ids() -> None:
    assert re.fullmatch(r"req_[0-9a-f]{32}", request_id("batch_1", 7))
    assert request_id("batch_1", 7) == request_id("batch_1", 7) != request_id("batch_1", 8)
    assert request_id("x", prefix="").isalnum()
    ids = RequestIds(seed=3)
    first = [ids() for _ in range(5)]
    assert len(set(first)) == 5
    assert [RequestIds(seed=3)() for _ in range(1)] == first[:1]
    assert RequestIds(seed=4)() != first[0]
    shared = RequestIds()
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            value = shared()
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 800


# -- input files --------------------------------------------------------------------------------


def _reject_get(line: Any) -> LineError | None:
    if line.get("method") != "POST":
        return LineError(code="invalid_request", message="POST only", param="method")
    return None


def _line(custom_id: str, **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "body": {"model": "m"}, **extra}


def test_an_input_scan_finds_every_kind_of_bad_line(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "in.jsonl",
        [
            b"\xef\xbb\xbf" + orjson.dumps(_line("a")),
            b"{not json",
            b"[1, 2]",
            {"method": "POST"},
            _line("b"),
            _line("b"),
            _line("c", method="GET"),
            _line("d", body={"model": "m2"}),
            _line("e", note="[emulator-fail:500]"),
        ],
    )
    scan = scan_input(path, _reject_get, max_requests=100)
    assert scan.total == 9
    assert [(e.code, e.line, e.param) for e in scan.errors] == [
        ("invalid_json_line", 1, None),
        ("invalid_json_line", 2, None),
        ("invalid_request", 3, None),
        ("invalid_request", 4, "custom_id"),
        ("duplicate_custom_id", 6, "custom_id"),
        ("invalid_request", 7, "method"),
    ]
    assert scan.errors[-1].to_json() == {
        "code": "invalid_request",
        "message": "POST only",
        "param": "method",
        "line": 7,
    }
    assert (scan.model, scan.model_clash) == ("m", (8, "m2"))
    assert {index: marker.status for index, marker in scan.failures.items()} == {8: 500}


def test_an_input_scan_refuses_empty_and_oversized_files(tmp_path: Path) -> None:
    empty = scan_input(_write_lines(tmp_path / "e.jsonl", []), _reject_get, max_requests=3)
    assert [e.code for e in empty.errors] == ["empty_file"]
    lines = [_line(f"r{i}") for i in range(4)]
    big = scan_input(_write_lines(tmp_path / "b.jsonl", lines), _reject_get, max_requests=3)
    assert [e.code for e in big.errors] == ["too_many_tasks"]
    bad = [_line(f"r{i}", method="GET") for i in range(10)]
    capped = scan_input(
        _write_lines(tmp_path / "c.jsonl", bad), _reject_get, max_requests=99, max_errors=3
    )
    assert (capped.total, len(capped.errors)) == (10, 3)


_DOCUMENT: dict[str, Any] = {
    "components": {
        "schemas": {
            "Request": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/M"}},
                    "n": {"type": "integer", "minimum": 1},
                },
            },
            "M": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"type": "string", "enum": ["user", "system"]},
                    "content": {"type": "string"},
                },
            },
        }
    }
}


class _CountingValidator(SpecValidator):
    """Counts the bodies actually validated (the rest came from the checker's memory)."""

    def __init__(self) -> None:
        super().__init__(_DOCUMENT)
        self.checked = 0

    def problems(self, schema: str, body: Any, *, limit: int = 5) -> list[SpecProblem]:
        self.checked += 1
        return super().problems(schema, body, limit=limit)


def test_the_body_checker_checks_strictly_and_remembers_shapes() -> None:
    validator = _CountingValidator()
    checker = BodyChecker(validator, {CHAT: "Request"}, memo=2)
    assert checker.problems(CHAT, _chat("one")) == []
    assert checker.problems(CHAT, _chat("two words")) == []
    assert validator.checked == 1  # only the text differed
    [unknown] = checker.problems(CHAT, _chat(top_k=3))
    assert "top_k" in unknown.message
    [low] = checker.problems(CHAT, _chat(n=0))
    assert low.path == "n"
    bad = {"model": "m", "messages": [{"role": "robot", "content": "beep"}]}
    assert [p.path for p in checker.problems(CHAT, bad)] == ["messages.0.role"]
    # A remembered failure is checked again, so its message is this body's own.
    again = {"model": "m", "messages": [{"role": "robot", "content": "boop"}]}
    assert checker.problems(CHAT, again) != []
    with pytest.raises(KeyError):
        checker.problems("/v1/unknown", {})


# -- answers ------------------------------------------------------------------------------------


def test_chat_answers_echo_and_count_words() -> None:
    answer = answer_body(CHAT, _chat("the quick fox"), "id1", 100)
    assert (answer["id"], answer["object"], answer["created"]) == (
        "chatcmpl-id1",
        "chat.completion",
        100,
    )
    [choice] = answer["choices"]
    assert choice["message"]["content"] == "Echo: the quick fox"
    assert choice["finish_reason"] == "stop"
    usage = answer["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (3, 4, 7)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


def test_chat_answers_are_cut_to_the_token_limit_and_repeated_for_n() -> None:
    answer = answer_body(CHAT, _chat("a b c d e", max_completion_tokens=3, n=2), "x", 0)
    assert [c["message"]["content"] for c in answer["choices"]] == ["Echo: a b"] * 2
    assert {c["finish_reason"] for c in answer["choices"]} == {"length"}
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["usage"]["completion_tokens"] == 6


def test_reasoning_and_cached_tokens_are_reported_where_asked() -> None:
    body = _chat("one two three four", reasoning_effort="high", prompt_cache_key="k")
    usage = answer_body(CHAT, body, "x", 0)["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert usage["completion_tokens"] == 10  # the visible answer and its reasoning
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    none = answer_body(CHAT, _chat(reasoning_effort="none"), "x", 0)["usage"]
    assert none["completion_tokens_details"]["reasoning_tokens"] == 0
    response = answer_body(
        RESPONSES, {"model": "m", "input": "hi", "reasoning": {"effort": "low"}}, "x", 0
    )
    assert response["output"][0] == {"type": "reasoning", "id": "rs_x", "summary": []}
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] == 2


WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "when": {"type": "string", "format": "date"},
        "alerts": {"type": "array", "items": {"$ref": "#/$defs/alert"}, "minItems": 1},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
    },
    "required": ["city", "unit", "days", "when", "alerts", "note"],
    "additionalProperties": False,
    "$defs": {
        "alert": {
            "type": "object",
            "properties": {"level": {"const": "red"}, "score": {"type": "number"}},
            "required": ["level", "score"],
            "additionalProperties": False,
        }
    },
}


def _valid(schema: Any, value: Any) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [error.message for error in validator.iter_errors(value)]


def test_structured_output_is_valid_against_the_requested_schema() -> None:
    chat = _chat(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
        }
    )
    content = answer_body(CHAT, chat, "x", 0)["choices"][0]["message"]["content"]
    assert _valid(WEATHER, json.loads(content)) == []
    responses = {
        "model": "m",
        "input": "weather?",
        "text": {"format": {"type": "json_schema", "name": "weather", "schema": WEATHER}},
    }
    answer = answer_body(RESPONSES, responses, "x", 0)
    text = answer["output"][0]["content"][0]["text"]
    assert _valid(WEATHER, json.loads(text)) == []
    assert answer["text"] == responses["text"]  # the configuration is echoed
    mode = json.loads(
        answer_body(CHAT, _chat("hi", response_format={"type": "json_object"}), "x", 0)["choices"][
            0
        ]["message"]["content"]
    )
    assert mode == {"echo": "hi"}
    obj = {"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}
    assert isinstance(
        json.loads(answer_body(RESPONSES, obj, "x", 0)["output"][0]["content"][0]["text"]), dict
    )


def test_forced_tool_calls_carry_valid_arguments() -> None:
    tools = [
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "weather", "parameters": WEATHER}},
    ]
    named = _chat(tools=tools, tool_choice={"type": "function", "function": {"name": "weather"}})
    [choice] = answer_body(CHAT, named, "x", 0)["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == ("call_x", "function", "weather")
    assert _valid(WEATHER, json.loads(call["function"]["arguments"])) == []
    first = answer_body(CHAT, _chat(tools=tools, tool_choice="required"), "x", 0)
    assert first["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "noop"
    auto = answer_body(CHAT, _chat(tools=tools, tool_choice="auto"), "x", 0)
    assert auto["choices"][0]["message"]["content"] == "Echo: hello there"
    response_tools = [{"type": "function", "name": "weather", "parameters": WEATHER}]
    body = {
        "model": "m",
        "input": "hi",
        "tools": response_tools,
        "tool_choice": {"type": "function", "name": "weather"},
    }
    [item] = answer_body(RESPONSES, body, "x", 0)["output"]
    assert (item["type"], item["name"], item["call_id"]) == ("function_call", "weather", "call_x")
    assert _valid(WEATHER, json.loads(item["arguments"])) == []


def test_responses_completions_embeddings_and_moderations() -> None:
    response = answer_body(
        RESPONSES,
        {"model": "m", "instructions": "be brief", "input": [{"role": "user", "content": "a b c"}]},
        "r",
        7,
    )
    assert (response["id"], response["status"], response["created_at"]) == (
        "resp_r",
        "completed",
        7,
    )
    assert response["output"][0]["content"][0]["text"] == "Echo: a b c"
    assert response["usage"]["input_tokens"] == 5  # the instructions count too
    cut = answer_body(RESPONSES, {"model": "m", "input": "a b c d", "max_output_tokens": 2}, "r", 7)
    assert (cut["status"], cut["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    completion = answer_body("/v1/completions", {"model": "m", "prompt": "say hi", "n": 2}, "c", 1)
    assert [c["text"] for c in completion["choices"]] == ["Echo: say hi"] * 2
    embeddings = answer_body(
        "/v1/embeddings", {"model": "e", "input": ["a", "b"], "dimensions": 4}, "e", 1
    )
    vectors = [item["embedding"] for item in embeddings["data"]]
    assert [len(v) for v in vectors] == [4, 4] and vectors[0] != vectors[1]
    again = answer_body("/v1/embeddings", {"model": "e", "input": "a", "dimensions": 4}, "e", 1)
    assert again["data"][0]["embedding"] == vectors[0]
    moderation = answer_body("/v1/moderations", {"input": ["x", "y"]}, "m", 1)
    assert [r["flagged"] for r in moderation["results"]] == [False, False]
    assert moderation["model"] == "omni-moderation-latest"
    assert {
        CHAT,
        RESPONSES,
        "/v1/completions",
        "/v1/embeddings",
        "/v1/moderations",
    } == ANSWERED_ENDPOINTS
    with pytest.raises(ValueError, match="images"):
        answer_body("/v1/images/generations", {}, "x", 0)


def test_usage_totals_read_both_spellings() -> None:
    totals = UsageTotals()
    totals.add(
        answer_body(CHAT, _chat("a b", reasoning_effort="low", prompt_cache_key="k"), "x", 0)
    )
    totals.add(answer_body(RESPONSES, {"model": "m", "input": "a b c"}, "y", 0))
    totals.add({"usage": None})
    assert (totals.input_tokens, totals.output_tokens) == (2 + 3, 6 + 4)
    assert totals.total_tokens == totals.input_tokens + totals.output_tokens
    assert (totals.cached_tokens, totals.reasoning_tokens) == (1, 3)


# -- schema instances ---------------------------------------------------------------------------

SCHEMAS: list[Any] = [
    {},
    True,
    {"type": "null"},
    {"type": "boolean"},
    {"type": ["null", "integer"], "minimum": 5},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
    {"type": "integer", "exclusiveMaximum": -3},
    {"type": "integer", "multipleOf": 7, "minimum": 10},
    {"type": "number", "minimum": -1.5, "maximum": -1.25},
    {"type": "string", "minLength": 5, "maxLength": 5},
    {"type": "string", "pattern": "^[0-9]+$"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uri"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "ipv4"},
    {"enum": ["b", "a"]},
    {"const": {"x": [1]}},
    {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "minItems": 2},
    {"type": "array", "contains": {"type": "integer", "minimum": 3}},
    {"type": "object", "minProperties": 2, "properties": {"a": {}, "b": {}, "c": {}}},
    {"oneOf": [{"type": "null"}, {"type": "string", "minLength": 3}]},
    {"anyOf": [{"type": "integer", "maximum": -10}, {"type": "string"}]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    {
        "type": "object",
        "required": ["tree"],
        "properties": {"tree": {"$ref": "#/$defs/node"}},
        "$defs": {
            "node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
    },
    {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "integer"}}},
    WEATHER,
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[json.dumps(s)[:50] for s in SCHEMAS])
def test_schema_instances_are_valid(schema: Any) -> None:
    value = schema_instance(schema)
    assert _valid(schema if schema is not True else {}, value) == []
    json.dumps(value)  # plain JSON


def test_schema_instances_prefer_a_value_to_null_and_take_the_first_choice() -> None:
    assert schema_instance({"type": ["null", "string"]}) == ""
    assert schema_instance({"anyOf": [{"type": "null"}, {"type": "integer"}]}) == 0
    assert schema_instance({"enum": ["b", "a"]}) == "b"
    assert schema_instance({"type": "object", "properties": {"x": {}}}) == {}


def test_draft7_definitions_are_followed() -> None:
    schema = {
        "definitions": {"id": {"type": "string", "format": "uuid"}},
        "type": "object",
        "properties": {"id": {"$ref": "#/definitions/id"}, "n": {"type": "integer"}},
        "required": ["id", "n"],
        "additionalProperties": False,
    }
    value = schema_instance(schema)
    assert list(Draft7Validator(schema, format_checker=FormatChecker()).iter_errors(value)) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (False, "false"),
        ({"$ref": "https://example.com/schema.json"}, "only '#"),
        ({"$ref": "#/$defs/missing"}, "points at nothing"),
        ({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}, "too deep"),
        ({"type": "object", "required": ["me"], "properties": {"me": {"$ref": "#"}}}, "too deep"),
        ({"enum": []}, "empty enum"),
        ({"type": "integer", "minimum": 1, "maximum": 1, "multipleOf": 2}, "no number"),
    ],
)
def test_impossible_schemas_are_refused(schema: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        schema_instance(schema)
