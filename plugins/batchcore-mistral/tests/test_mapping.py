"""The wire module, both directions: requests to Mistral bodies, jobs and result lines back."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from conftest import EMBED_MODEL, MODEL

from batchcore.plugin import (
    BatchRequest,
    BatchState,
    InvalidRequestError,
    ResponseLostError,
    ResultStatus,
    input_custom_id,
    read_result_lines,
    result_error,
    result_from_openai_line,
)
from batchcore_mistral import _mapping as wire


def _error(*, code: str | None, message: str | None = None, status_code: int | None = None) -> Any:
    return result_error(
        code=code,
        message=message,
        status_code=status_code,
        retryable_codes=wire.RETRYABLE_RESULT_CODES,
    )


def body(messages: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    request = BatchRequest.from_dict(
        {
            "custom_id": "c1",
            "model": MODEL,
            "messages": messages or [{"role": "user", "content": "Hi"}],
            "params": params,
        }
    )
    return wire.request_body(request, provider="mistral")


def refusal(messages: list[dict[str, Any]] | None = None, **params: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        body(messages, **params)
    assert caught.value.custom_id == "c1"
    assert caught.value.provider == "mistral"
    return caught.value


# -- chat parameters ----------------------------------------------------------------------------


def test_plain_parameters_keep_their_names() -> None:
    params = {
        "max_tokens": 10,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["END"],
        "n": 2,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "parallel_tool_calls": False,
        "reasoning_effort": "high",
        "prompt_cache_key": "k",
        "metadata": {"team": "a"},
    }
    assert body(**params) == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        **params,
    }


def test_seed_is_random_seed_and_max_completion_tokens_is_max_tokens() -> None:
    converted = body(seed=7, max_completion_tokens=20)
    assert converted["random_seed"] == 7 and "seed" not in converted
    assert converted["max_tokens"] == 20 and "max_completion_tokens" not in converted
    assert body(max_tokens=20, max_completion_tokens=20)["max_tokens"] == 20


def test_none_means_the_default_and_is_left_out() -> None:
    converted = body(user=None, logprobs=None, temperature=None, stream=False)
    assert converted == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"user": "u-1"}, "params.user"),
        ({"logprobs": True}, "params.logprobs"),
        ({"top_logprobs": 2}, "params.top_logprobs"),
        ({"logit_bias": {"1": 2}}, "params.logit_bias"),
        ({"store": False}, "params.store"),
        ({"modalities": ["text"]}, "params.modalities"),
        ({"verbosity": "low"}, "params.verbosity"),
        ({"web_search_options": {}}, "params.web_search_options"),
        ({"stream": True}, "params.stream"),
        ({"service_tier": "flex"}, "params.service_tier"),
        ({"seed": -1}, "params.seed"),
        ({"top_p": 0}, "params.top_p"),
        ({"max_tokens": 10, "max_completion_tokens": 20}, "params.max_completion_tokens"),
    ],
)
def test_what_mistral_cannot_take_is_refused_naming_the_field(
    params: dict[str, Any], field: str
) -> None:
    error = refusal(**params)
    assert error.field == field
    assert field in str(error)


def test_a_refused_parameter_points_at_provider_params() -> None:
    assert "provider_params={'mistral'" in str(refusal(user="u"))


def test_service_tier_auto_passes() -> None:
    assert body(service_tier="auto")["service_tier"] == "auto"


# -- messages and parts ---------------------------------------------------------------------------


def test_developer_is_system_and_roles_keep_their_keys() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "abc123xyz",
                    "type": "function",
                    "function": {"name": "w", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "content": "Sunny", "tool_call_id": "abc123xyz", "name": "w"},
        {"role": "assistant", "content": "It is", "prefix": True},
    ]
    converted = body(messages)["messages"]
    assert converted[0] == {"role": "system", "content": "Be brief."}
    assert converted[2]["tool_calls"][0]["function"] == {"name": "w", "arguments": "{}"}
    assert converted[3] == messages[3]
    assert converted[4] == messages[4]


def test_parts_become_mistral_chunks() -> None:
    content = [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_id": "e85980c9-409e-4a46-9304-36588f6292b0"}},
        {"type": "document_url", "document_url": "https://x/a.pdf", "document_name": "a"},
    ]
    converted = body([{"role": "user", "content": content}])["messages"][0]["content"]
    assert converted == [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
        {"type": "input_audio", "input_audio": "UklGRg=="},
        {"type": "file", "file_id": "e85980c9-409e-4a46-9304-36588f6292b0"},
        {"type": "document_url", "document_url": "https://x/a.pdf", "document_name": "a"},
    ]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "user", "content": "Hi", "name": "bob"}, "messages[0].name"),
        ({"role": "system", "content": "Hi", "name": "bob"}, "messages[0].name"),
        ({"role": "assistant", "content": "x", "refusal": "no"}, "messages[0].refusal"),
        ({"role": "assistant", "content": None}, "messages[0].content"),
        (
            {"role": "user", "content": [{"type": "file", "file": {"file_data": "aGk="}}]},
            "messages[0].content[0].file.file_data",
        ),
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
            "messages[0].content[0].type",
        ),
        (
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "text", "text": "x", "prompt_cache_breakpoint": {}}],
            },
            "messages[0].content[0].prompt_cache_breakpoint",
        ),
        (
            {"role": "user", "content": [{"type": "document_url", "document_url": "u", "x": 1}]},
            "messages[0].content[0].x",
        ),
    ],
)
def test_message_fields_mistral_lacks_are_refused(message: dict[str, Any], field: str) -> None:
    assert refusal([message]).field == field


def test_a_function_role_message_is_refused() -> None:
    error = refusal([{"role": "function", "content": "x", "name": "f"}])
    assert error.field == "messages[0].role"


# -- tools, formats, predictions ----------------------------------------------------------------


def test_tools_and_tool_choice() -> None:
    tools = [
        {"type": "function", "function": {"name": "now"}},
        {
            "type": "function",
            "function": {
                "name": "w",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"c": {"type": "string"}}},
                "strict": True,
            },
        },
    ]
    converted = body(tools=tools, tool_choice={"type": "function", "function": {"name": "w"}})
    assert converted["tools"][0]["function"] == {
        "name": "now",
        "parameters": {"type": "object", "properties": {}},
    }
    assert converted["tools"][1] == tools[1]
    assert converted["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert body(tools=tools, tool_choice="required")["tool_choice"] == "required"


def test_custom_tools_and_allowed_tools_are_refused() -> None:
    custom = [{"type": "custom", "custom": {"name": "x"}}]
    assert refusal(tools=custom).field == "params.tools[0].type"
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert refusal(tools=tools, tool_choice=allowed).field == "params.tool_choice"


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    spec = {"name": "n", "description": "d", "schema": schema, "strict": True}
    assert body(response_format={"type": "json_schema", "json_schema": spec})[
        "response_format"
    ] == {"type": "json_schema", "json_schema": spec}
    assert body(response_format={"type": "json_object"})["response_format"] == {
        "type": "json_object"
    }
    error = refusal(response_format={"type": "json_schema", "json_schema": {"name": "n"}})
    assert error.field == "params.response_format.json_schema.schema"


def test_prediction_parts_are_joined() -> None:
    prediction = {
        "type": "content",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert body(prediction=prediction)["prediction"] == {"type": "content", "content": "ab"}


# -- embeddings, endpoints, provider_params -----------------------------------------------------


def embeddings(**params: Any) -> BatchRequest:
    return BatchRequest.from_dict(
        {
            "custom_id": "e1",
            "model": EMBED_MODEL,
            "endpoint": "/v1/embeddings",
            "params": params,
        }
    )


def test_embeddings_body() -> None:
    request = embeddings(input=["a", "b"], dimensions=256, encoding_format="float")
    assert wire.request_body(request, provider="mistral") == {
        "model": EMBED_MODEL,
        "input": ["a", "b"],
        "output_dimension": 256,
        "encoding_format": "float",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [({"input": [1, 2, 3]}, "params.input"), ({"input": "a", "user": "u"}, "params.user")],
)
def test_embeddings_refusals(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        wire.request_body(embeddings(**params), provider="mistral")
    assert caught.value.field == field


def test_other_endpoints_are_refused_naming_endpoint() -> None:
    request = BatchRequest.from_dict(
        {"custom_id": "m", "model": MODEL, "endpoint": "/v1/moderations", "params": {"input": "x"}}
    )
    with pytest.raises(InvalidRequestError) as caught:
        wire.request_body(request, provider="mistral")
    assert caught.value.field == "endpoint"
    assert "/v1/fim/completions" in str(caught.value)


def test_provider_params_pass_through_last() -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "p",
            "model": MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "params": {"seed": 1},
            "provider_params": {
                "mistral": {"safe_prompt": True, "random_seed": 9, "prompt_mode": "reasoning"},
                "openai": {"user": "ignored"},
            },
        }
    )
    converted = wire.request_body(request, provider="mistral")
    assert converted["safe_prompt"] is True
    assert converted["random_seed"] == 9
    assert converted["prompt_mode"] == "reasoning"
    assert "user" not in converted


def test_provider_params_cannot_change_the_model() -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "p",
            "model": MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "provider_params": {"mistral": {"model": "mistral-large-latest"}},
        }
    )
    with pytest.raises(InvalidRequestError) as caught:
        wire.request_body(request, provider="mistral")
    assert caught.value.field == "provider_params.mistral.model"
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_encode_line_is_custom_id_and_body() -> None:
    line = wire.encode_line("id é", {"model": MODEL, "messages": []})
    assert orjson.loads(line) == {"custom_id": "id é", "body": {"model": MODEL, "messages": []}}
    assert b"\n" not in line
    assert input_custom_id(line) == "id é"  # the core reads input lines back


# -- jobs ---------------------------------------------------------------------------------------


def job(status: str = "RUNNING", **fields: Any) -> dict[str, Any]:
    return {
        "id": "6f1d3a0e-0000-4000-8000-000000000001",
        "object": "batch",
        "input_files": ["e85980c9-409e-4a46-9304-36588f6292b0"],
        "endpoint": "/v1/chat/completions",
        "model": MODEL,
        "metadata": {
            wire.IDEMPOTENCY_METADATA_KEY: "key-1",
            wire.TIMEOUT_METADATA_KEY: "6",
        },
        "errors": [],
        "status": status,
        "created_at": 1_767_225_600,
        "total_requests": 10,
        "completed_requests": 4,
        "succeeded_requests": 3,
        "failed_requests": 1,
        "started_at": 1_767_225_660,
        "completed_at": None,
        **fields,
    }


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("QUEUED", BatchState.VALIDATING),
        ("RUNNING", BatchState.IN_PROGRESS),
        ("SUCCESS", BatchState.COMPLETED),
        ("FAILED", BatchState.FAILED),
        ("TIMEOUT_EXCEEDED", BatchState.EXPIRED),
        ("CANCELLATION_REQUESTED", BatchState.CANCELLING),
        ("CANCELLED", BatchState.CANCELLED),
        ("success", BatchState.COMPLETED),
    ],
)
def test_every_status_word_maps(word: str, state: BatchState) -> None:
    status = wire.job_status("mistral", job(word, completed_at=1_767_229_200))
    assert status.state is state
    assert status.raw_status == word
    assert (status.ended_at is not None) is state.is_terminal


def test_an_unknown_status_keeps_polling_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        status = wire.job_status("mistral", job("PAUSED"))
    assert status.state is BatchState.IN_PROGRESS
    assert not status.is_terminal
    assert "PAUSED" in caplog.text


def test_counts_and_times() -> None:
    status = wire.job_status("mistral", job())
    assert (status.total, status.completed, status.failed) == (10, 3, 1)
    assert status.created_at is not None and status.expires_at is not None
    assert (status.expires_at - status.created_at).total_seconds() == 6 * 3600
    assert status.timestamps["started_at"].timestamp() == 1_767_225_660


def test_job_errors_become_batch_errors() -> None:
    status = wire.job_status(
        "mistral", job("FAILED", errors=[{"message": "bad line", "count": 3}, {"message": "x"}])
    )
    assert [e.message for e in status.errors] == ["bad line (3 times)", "x"]


def test_job_handle_keeps_what_a_restart_needs() -> None:
    from datetime import datetime, timezone

    handle = wire.job_handle("mistral", job(), now=datetime.now(timezone.utc))
    assert handle.batch_id == job()["id"]
    assert handle.metadata["idempotency_key"] == "key-1"
    assert handle.metadata["timeout_hours"] == 6
    assert handle.metadata["input_files"] == job()["input_files"]


def test_jobs_made_for_matches_exactly() -> None:
    mine = job()
    other = job(id="x", metadata={wire.IDEMPOTENCY_METADATA_KEY: "key-10"}, input_files=[])
    by_file = job(id="y", metadata=None, input_files=["f-1"])
    found = wire.jobs_made_for([other, mine, by_file, "junk"], key="key-1", input_file_id="f-1")
    assert [j["id"] for j in found] == [mine["id"], "y"]


def test_a_long_key_is_written_as_its_digest() -> None:
    long_key = "k" * 600
    written = wire.metadata_value(long_key)
    assert written.startswith("sha256:") and len(written) <= 512
    assert wire.metadata_value("short") == "short"
    assert wire.jobs_made_for(
        [job(metadata={wire.IDEMPOTENCY_METADATA_KEY: written})], key=long_key, input_file_id=None
    )


# -- result lines -------------------------------------------------------------------------------


def chat_answer(content: Any, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "85bcfa450e5643f2a2aed46472d97ffd",
        "object": "chat.completion",
        "model": MODEL,
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "created": 1761577934,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "tool_calls": None},
            }
        ],
    }


def read(entry: dict[str, Any]) -> Any:
    return result_from_openai_line(entry, "job-1", error=_error, dialect=wire.RESULT_LINES)


def test_a_successful_line() -> None:
    result = read(
        {
            "id": "batch-1",
            "custom_id": "0",
            "response": {"status_code": 200, "body": chat_answer("Hello")},
            "error": None,
        }
    )
    assert result.ok and result.text == "Hello" and result.batch_id == "job-1"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (10, 5)
    assert result.usage.total_tokens == 15


def test_text_joins_every_text_chunk_and_leaves_thinking_out() -> None:
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Hel"},
        {"type": "text", "text": "lo"},
    ]
    result = read(
        {"custom_id": "0", "response": {"status_code": 200, "body": chat_answer(content)}}
    )
    assert result.text == "Hello"


def test_embeddings_have_usage_and_no_text() -> None:
    answer = {
        "id": "e",
        "object": "list",
        "data": [{"object": "embedding", "embedding": [0.1], "index": 0}],
        "model": EMBED_MODEL,
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
    }
    result = read({"custom_id": "0", "response": {"status_code": 200, "body": answer}})
    assert result.ok and result.text is None and result.usage.input_tokens == 3


def test_finish_reason_error_is_a_retryable_failure() -> None:
    result = read(
        {"custom_id": "0", "response": {"status_code": 200, "body": chat_answer("Hal", "error")}}
    )
    assert result.status is ResultStatus.ERRORED and result.retryable
    assert result.text == "Hal"
    assert result.error.code == "generation_error"


@pytest.mark.parametrize(
    ("entry", "code", "retryable"),
    [
        (
            {
                "response": {
                    "status_code": 429,
                    "body": {
                        "object": "error",
                        "message": "slow",
                        "type": "rate_limited",
                        "code": "1300",
                    },
                }
            },
            "rate_limited",
            True,
        ),
        (
            {
                "response": {
                    "status_code": 422,
                    "body": {
                        "detail": [{"type": "extra_forbidden", "loc": ["body", "x"], "msg": "no"}]
                    },
                }
            },
            "extra_forbidden",
            False,
        ),
        (
            {
                "response": {
                    "status_code": 400,
                    "body": {"object": "error", "message": "bad", "type": "invalid_request_error"},
                }
            },
            "invalid_request_error",
            False,
        ),
        ({"response": {"status_code": 503, "body": {}}}, "http_503", True),
        (
            {"response": None, "error": {"message": "boom", "code": "internal_error"}},
            "internal_error",
            True,
        ),
        ({"response": None, "error": "something broke"}, "error", False),
    ],
)
def test_error_lines(entry: dict[str, Any], code: str, retryable: bool) -> None:
    result = read({"custom_id": "0", **entry})
    assert result.status is ResultStatus.ERRORED
    assert result.error.code == code
    assert result.retryable is retryable


def test_a_validation_error_names_the_field() -> None:
    entry = {
        "custom_id": "0",
        "response": {
            "status_code": 422,
            "body": {"detail": [{"type": "extra_forbidden", "loc": ["body", "user"], "msg": "no"}]},
        },
    }
    assert read(entry).error.message == "body.user: no"


def _lines(*lines: bytes) -> list[Any]:
    return list(read_result_lines(lines, read, provider="mistral", batch_id="job-1"))


def test_lines_without_custom_id_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert _lines(b"{}", orjson.dumps({"response": {"status_code": 200, "body": {}}})) == []
    assert "line 1 of the results is not the result of a request" in caplog.text


@pytest.mark.parametrize("line", [b"nonsense", b'{"custom_id": "a", "resp', b"[1, 2]"])
def test_a_line_that_is_not_a_json_object_is_a_lost_download(line: bytes) -> None:
    good = orjson.dumps({"custom_id": "a", "error": {"message": "no", "code": "1"}})
    with pytest.raises(ResponseLostError, match="line 2 of the results"):
        _lines(good, line)
