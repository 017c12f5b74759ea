"""DTOs: validation of provider-neutral requests, and JSON round trips of what a runner persists."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchcore import (
    BatchError,
    BatchHandle,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    InvalidRequestError,
    JobEvent,
    ResultError,
    ResultStatus,
    Usage,
)
from batchcore.models import parse_timestamp

USER = [{"role": "user", "content": "hi"}]


def chat(**overrides: Any) -> BatchRequest:
    fields: dict[str, Any] = {"custom_id": "r1", "model": "gpt-4o", "messages": USER}
    fields.update(overrides)
    return BatchRequest(**fields)


# -- BatchRequest validation -----------------------------------------------------------------


def test_request_is_frozen_with_tuples_and_private_copies() -> None:
    params = {"max_tokens": 5}
    request = chat(params=params)
    params["max_tokens"] = 99
    assert request.params == {"max_tokens": 5}
    assert isinstance(request.messages, tuple)
    with pytest.raises(AttributeError):
        request.model = "other"  # type: ignore[misc]


def test_request_is_deeply_immutable_and_hashable() -> None:
    request = chat(
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        params={"max_tokens": 5, "stop": ["a", "b"], "response_format": {"type": "json_object"}},
        provider_params={"anthropic": {"top_k": 5}},
    )
    body = request.openai_body_json()
    attempts = [
        lambda: request.params.__setitem__("max_tokens", 999),
        lambda: request.params["stop"].append("c"),
        lambda: request.params["response_format"].update(type="text"),
        lambda: request.messages[0]["content"][0].__setitem__("text", "changed"),
        lambda: request.provider_params["anthropic"].pop("top_k"),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match="immutable"):
            attempt()
    assert request.openai_body_json() == body  # the cached body can never go stale
    assert request.params == {
        "max_tokens": 5,
        "stop": ["a", "b"],
        "response_format": {"type": "json_object"},
    }
    twin = chat(
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        params={"max_tokens": 5, "stop": ["a", "b"], "response_format": {"type": "json_object"}},
        provider_params={"anthropic": {"top_k": 5}},
    )
    assert twin == request and hash(twin) == hash(request)
    assert {request, request} == {request}
    assert json.loads(body) == request.openai_body()
    changed = attrs.evolve(request, params={**request.params, "max_tokens": 7})
    assert changed.params["max_tokens"] == 7 and b'"max_tokens":7' in changed.openai_body_json()


@pytest.mark.parametrize(
    "custom_id",
    ["a\nb", "a\r", "abc\n", "tab\there", "nul\x00", "del\x7f", "c1\x85", "ls\u2028", "ps\u2029"],
)
def test_custom_ids_with_control_characters_are_refused(custom_id: str) -> None:
    with pytest.raises(InvalidRequestError, match="control character") as info:
        chat(custom_id=custom_id)
    assert info.value.custom_id == custom_id and info.value.field == "custom_id"
    with pytest.raises(InvalidRequestError, match="control character"):
        BatchRequest.from_json(
            {"custom_id": custom_id, "model": "m", "messages": [{"role": "user", "content": "x"}]}
        )


@pytest.mark.parametrize(
    "custom_id",
    [
        "with space",
        "  padded  ",
        "café",
        "東京-1",
        "emoji-🎉",
        'quote"and\\back',
        "nbsp\u00a0x",
        "x" * 500,
    ],
)
def test_printable_custom_ids_are_accepted(custom_id: str) -> None:
    assert chat(custom_id=custom_id).custom_id == custom_id


def test_provider_params_must_be_an_object_keyed_by_provider() -> None:
    for value, field in (([], "provider_params"), ({"openai": []}, "provider_params.openai")):
        with pytest.raises(InvalidRequestError) as info:
            BatchRequest.from_json(
                {
                    "custom_id": "p",
                    "model": "m",
                    "messages": [{"role": "user", "content": "x"}],
                    "provider_params": value,
                }
            )
        assert info.value.field == field


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"custom_id": ""}, "custom_id", "custom_id must be a non-empty string"),
        ({"custom_id": 7}, "custom_id", "custom_id must be a non-empty string"),
        ({"model": ""}, "model", "model must be a non-empty string"),
        ({"messages": []}, "messages", "messages must not be empty"),
        ({"messages": ["hi"]}, "messages[0]", "must be an object"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "'robot'"),
        ({"endpoint": "/v1/images"}, "endpoint", "not one of"),
        ({"params": {"model": "x"}}, "params", "must not contain"),
        ({"params": {"temperature": float("nan")}}, "params.temperature", "not valid JSON"),
        ({"params": {"stop": {1, 2}}}, "params.stop", "set is not JSON-serialisable"),
        ({"params": {"tools": [{"a": object()}]}}, "params.tools[0].a", "not JSON-serialisable"),
        ({"params": {"logit_bias": {1: 2}}}, "params.logit_bias", "not a string"),
    ],
)
def test_request_validation_names_the_field(
    overrides: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat(**overrides)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_embeddings_request_takes_input_not_messages() -> None:
    request = BatchRequest(
        custom_id="e1",
        model="text-embedding-3-small",
        endpoint="/v1/embeddings",
        params={"input": "hello"},
    )
    assert request.openai_body() == {"model": "text-embedding-3-small", "input": "hello"}
    with pytest.raises(InvalidRequestError, match="needs params\\['input'\\]"):
        BatchRequest(custom_id="e1", model="m", endpoint="/v1/embeddings")
    with pytest.raises(InvalidRequestError, match="not messages"):
        BatchRequest(
            custom_id="e1",
            model="m",
            endpoint="/v1/embeddings",
            messages=USER,
            params={"input": "x"},
        )


def test_openai_body_json_is_the_cached_body() -> None:
    request = chat(params={"max_tokens": 3})
    assert json.loads(request.openai_body_json()) == request.openai_body()
    assert request.openai_body() == {"model": "gpt-4o", "messages": USER, "max_tokens": 3}


# -- reading input lines ----------------------------------------------------------------------


def test_from_openai_line_chat() -> None:
    line = json.dumps(
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": USER, "max_tokens": 9},
        }
    )
    request = BatchRequest.from_openai_line(line)
    assert request == chat(custom_id="a", params={"max_tokens": 9})


def test_from_openai_line_embeddings_and_azure_path_without_v1() -> None:
    request = BatchRequest.from_openai_line(
        {
            "custom_id": "e",
            "method": "POST",
            "url": "/embeddings",
            "body": {"model": "emb", "input": ["a", "b"]},
        }
    )
    assert request.endpoint == "/v1/embeddings"
    assert request.params == {"input": ["a", "b"]}


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (
            '{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
            "method must be POST",
        ),
        ('{"custom_id": "a", "method": "POST", "body": {}}', "url is required"),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": []}',
            "body must be an object",
        ),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_from_openai_line_rejects_bad_lines(line: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        BatchRequest.from_openai_line(line)


def test_from_json_reads_unified_lines_with_params_as_extra_keys() -> None:
    request = BatchRequest.from_json(
        '{"custom_id": "u1", "model": "claude-sonnet-4-5", "messages": [{"role": "user", '
        '"content": "hi"}], "max_tokens": 64, "temperature": 0.2, '
        '"provider_params": {"anthropic": {"top_k": 5}}}'
    )
    assert request.params == {"max_tokens": 64, "temperature": 0.2}
    assert request.provider_params == {"anthropic": {"top_k": 5}}


def test_from_json_also_reads_openai_lines() -> None:
    request = BatchRequest.from_json(
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": USER},
        }
    )
    assert request.model == "gpt-4o"


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1_767_225_600,
        1_767_225_600.0,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000000000Z",
        "2026-01-01T01:00:00+01:00",
        datetime(2026, 1, 1),
        datetime(2026, 1, 1, tzinfo=timezone.utc),
    ],
)
def test_parse_timestamp_gives_aware_utc(value: Any) -> None:
    assert parse_timestamp(value) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_timestamp(value).tzinfo is timezone.utc  # type: ignore[union-attr]


def test_parse_timestamp_absent_and_bad() -> None:
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(True)


# -- status, results --------------------------------------------------------------------------


def test_states_know_which_are_terminal() -> None:
    terminal = {s for s in BatchState if s.is_terminal}
    assert terminal == {
        BatchState.COMPLETED,
        BatchState.FAILED,
        BatchState.EXPIRED,
        BatchState.CANCELLED,
    }


def test_status_keeps_raw_out_of_repr_and_equality() -> None:
    a = BatchStatus(
        provider="p",
        batch_id="b",
        state="in_progress",
        raw_status="in_progress",
        raw={"secret_field": 1},
    )
    b = BatchStatus(provider="p", batch_id="b", state="in_progress", raw_status="in_progress")
    assert a == b
    assert "secret_field" not in repr(a)
    assert a.pending is None
    c = BatchStatus(
        provider="p",
        batch_id="b",
        state="completed",
        raw_status="ended",
        total=10,
        completed=7,
        failed=2,
    )
    assert c.is_terminal and c.pending == 1


def test_result_ok_and_retryable() -> None:
    ok = BatchResult(custom_id="a", status="succeeded", text="hi")
    assert ok.ok and not ok.retryable
    expired = BatchResult.unfinished("b", ResultStatus.EXPIRED, batch_id="batch_1")
    assert not expired.ok and expired.retryable
    assert expired.error is not None and expired.error.code == "batch_expired"
    cancelled = BatchResult.unfinished("c", ResultStatus.CANCELLED)
    assert cancelled.status is ResultStatus.CANCELLED


# -- JSON round trips (hypothesis) -------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | (st.floats(allow_nan=False, allow_infinity=False))
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=64)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=30)}), min_size=1, max_size=4
)
params = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k not in {"model", "messages"}),
    json_values,
    max_size=4,
)


def roundtrip(obj: Any) -> Any:
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


@given(
    cid=ids,
    model=st.text(min_size=1, max_size=20),
    msgs=messages,
    prm=params,
    pp=st.dictionaries(
        st.sampled_from(["openai", "anthropic"]),
        st.dictionaries(st.text(max_size=5), json_values, max_size=2),
        max_size=2,
    ),
)
def test_request_roundtrip(
    cid: str, model: str, msgs: list[dict[str, str]], prm: dict[str, Any], pp: dict[str, Any]
) -> None:
    request = BatchRequest(
        custom_id=cid, model=model, messages=msgs, params=prm, provider_params=pp
    )
    assert roundtrip(request) == request


@given(cid=ids, created=aware, meta=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_handle_roundtrip(cid: str, created: datetime, meta: dict[str, Any]) -> None:
    handle = BatchHandle(provider="openai", batch_id=cid, created_at=created, metadata=meta)
    assert roundtrip(handle) == handle


counts = st.none() | st.integers(0, 10**6)


@given(
    state=st.sampled_from(list(BatchState)),
    raw=st.text(max_size=12),
    total=counts,
    completed=counts,
    failed=counts,
    created=st.none() | aware,
    ended=st.none() | aware,
    stamps=st.dictionaries(st.text(min_size=1, max_size=12), aware, max_size=3),
    errors=st.lists(
        st.builds(
            BatchError,
            code=st.none() | st.text(max_size=8),
            message=st.text(max_size=20),
            line=st.none() | st.integers(1, 99),
            param=st.none() | st.text(max_size=5),
        ),
        max_size=3,
    ),
)
def test_status_roundtrip(
    state: BatchState,
    raw: str,
    total: int | None,
    completed: int | None,
    failed: int | None,
    created: datetime | None,
    ended: datetime | None,
    stamps: dict[str, datetime],
    errors: list[BatchError],
) -> None:
    status = BatchStatus(
        provider="p",
        batch_id="b",
        state=state,
        raw_status=raw,
        total=total,
        completed=completed,
        failed=failed,
        created_at=created,
        ended_at=ended,
        timestamps=stamps,
        errors=errors,
    )
    assert roundtrip(status) == status


@given(
    cid=ids,
    status=st.sampled_from(list(ResultStatus)),
    text=st.none() | st.text(max_size=30),
    response=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    usage=st.none()
    | st.builds(Usage, input_tokens=counts, output_tokens=counts, total_tokens=counts),
    error=st.none()
    | st.builds(
        ResultError,
        code=st.text(min_size=1, max_size=10),
        message=st.text(max_size=20),
        retryable=st.booleans(),
        status_code=st.none() | st.integers(100, 599),
    ),
)
def test_result_roundtrip(
    cid: str,
    status: ResultStatus,
    text: str | None,
    response: dict[str, Any] | None,
    usage: Usage | None,
    error: ResultError | None,
) -> None:
    result = BatchResult(
        custom_id=cid,
        status=status,
        text=text,
        response=response,
        usage=usage,
        error=error,
        batch_id="batch_1",
    )
    assert roundtrip(result) == result


@given(
    at=aware,
    counts_=st.dictionaries(st.sampled_from(["succeeded", "errored"]), st.integers(0, 100)),
)
def test_event_roundtrip(at: datetime, counts_: dict[str, int]) -> None:
    status = BatchStatus(
        provider="p",
        batch_id="b",
        state="completed",
        raw_status="completed",
        created_at=at,
        ended_at=at + timedelta(hours=1),
    )
    event = JobEvent(
        kind="status_changed",
        job_id="j",
        provider="p",
        at=at,
        batch_id="b",
        status=status,
        counts=counts_,
        detail="x",
    )
    assert roundtrip(event) == event
