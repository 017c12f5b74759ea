"""Reading results, the core's one way: a line that cannot be read raises (the download is
fetched again, never skipped), a line naming no request is skipped and logged, and OpenAI's
output and error lines become results with a vendor's differences as a dialect."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any, cast

import orjson
import pytest

from batchcore import BatchResult, ResponseLostError, ResultError, ResultStatus
from batchcore.plugin import (
    OPENAI_LINES,
    OpenAILineDialect,
    decode_result_line,
    input_custom_id,
    openai_error_fields,
    openai_usage,
    read_result_lines,
    result_error,
    result_from_openai_line,
)


def error(
    *, code: str | None, message: str | None = None, status_code: int | None = None
) -> ResultError:
    return result_error(code=code, message=message, status_code=status_code)


def read(line: dict[str, Any], dialect: OpenAILineDialect = OPENAI_LINES) -> Any:
    return result_from_openai_line(line, "batch_1", error=error, dialect=dialect)


def ok_line(custom_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = body or {"choices": [{"message": {"content": f"answer {custom_id}"}}]}
    return {"custom_id": custom_id, "response": {"status_code": 200, "body": body}}


# -- the lines of a download ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"custom_id": "a", "resp', "is not valid JSON"),  # cut short
        (b"\xff\xfe{}", "is not valid JSON"),  # garbled
        (b"[1, 2]", "is not a JSON object"),
        (b'"text"', "is not a JSON object"),
    ],
)
def test_a_line_that_is_not_a_json_object_is_a_lost_download(line: bytes, problem: str) -> None:
    with pytest.raises(ResponseLostError) as lost:
        decode_result_line(line, provider="acme", batch_id="b1", where="line 3 of the output")
    assert f"results of batch b1: line 3 of the output {problem}" in str(lost.value)
    assert lost.value.provider == "acme"
    assert lost.value.retryable  # the runner waits and fetches the results again
    assert lost.value.__context__ is None  # raised outside the decoder's except block


def test_reading_stops_at_the_garbled_line_after_delivering_the_ones_before() -> None:
    lines = [orjson.dumps(ok_line("a")), b'{"custom_id": "b", "respo', orjson.dumps(ok_line("c"))]
    delivered: list[BatchResult] = []
    with pytest.raises(ResponseLostError, match="line 2 of file f-1 is not valid JSON"):
        delivered.extend(
            read_result_lines(lines, read, provider="acme", batch_id="b1", source="file f-1")
        )
    assert [r.custom_id for r in delivered] == ["a"]


def test_a_line_naming_no_request_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    lines = [orjson.dumps({"id": "x"}), orjson.dumps(ok_line("a"))]
    with caplog.at_level(logging.WARNING, logger="batchcore.results"):
        results = list(read_result_lines(lines, read, provider="acme", batch_id="b1"))
    assert [r.custom_id for r in results] == ["a"]
    assert "acme: batch b1: line 1 of the results is not the result of a request" in caplog.text


def test_the_lines_are_closed_when_reading_ends_or_is_abandoned() -> None:
    closed: list[bool] = []

    def download() -> Iterator[bytes]:
        try:
            yield orjson.dumps(ok_line("a"))
            yield orjson.dumps(ok_line("b"))
        finally:
            closed.append(True)

    reading = cast(
        Generator[BatchResult, None, None],
        read_result_lines(download(), read, provider="acme", batch_id="b1"),
    )
    assert next(reading).custom_id == "a"
    reading.close()  # the caller stops early: the download's connection is released
    assert closed == [True]
    assert len(list(read_result_lines(download(), read, provider="acme", batch_id="b1"))) == 2
    assert closed == [True, True]


# -- OpenAI's output and error lines ------------------------------------------------------------


def test_a_success_with_text_usage_and_refusal() -> None:
    body = {
        "choices": [{"message": {"content": "Hi!", "refusal": None}}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    result = read(ok_line("a", body))
    assert result.status is ResultStatus.SUCCEEDED and result.error is None
    assert (result.text, result.refusal, result.batch_id) == ("Hi!", None, "batch_1")
    assert result.usage.input_tokens == 10 and result.usage.cache_read_tokens == 4


def test_cached_tokens_at_the_top_of_usage_count_too() -> None:
    usage = openai_usage({"usage": {"prompt_tokens": 9, "cached_tokens": 5}})
    assert usage is not None and usage.cache_read_tokens == 5


@pytest.mark.parametrize(
    ("response", "status", "retryable"),
    [
        ({"status_code": 429, "body": {"error": {"message": "slow", "type": "x"}}}, 429, True),
        ({"status_code": 400, "body": {"error": {"message": "bad", "code": "nope"}}}, 400, False),
        ({"body": {"error": {"message": "no status"}}}, 500, True),
        ({"status_code": 502, "body": "Bad gateway"}, 502, True),
    ],
)
def test_a_failed_response_keeps_its_status(
    response: dict[str, Any], status: int, retryable: bool
) -> None:
    result = read({"custom_id": "a", "response": response})
    assert result.status is ResultStatus.ERRORED
    assert result.error.status_code == status and result.retryable is retryable


@pytest.mark.parametrize(
    ("code", "status"),
    [("batch_expired", ResultStatus.EXPIRED), ("batch_cancelled", ResultStatus.CANCELLED)],
)
def test_an_unfinished_request_is_retryable_in_the_vendors_words(
    code: str, status: ResultStatus
) -> None:
    result = read({"custom_id": "a", "error": {"code": code, "message": "It never ran."}})
    assert result.status is status and result.retryable
    assert (result.error.code, result.error.message) == (code, "It never ran.")
    assert result.response == {"error": {"code": code, "message": "It never ran."}}
    bare = read({"custom_id": "a", "error": {"code": code}})
    assert bare.error.message  # the core's words when the vendor gives none


def test_a_vendor_dialect_changes_only_what_it_names() -> None:
    def bodies_say_why(body: Any) -> tuple[str | None, str | None]:
        return (
            ("vendor_code", f"said {body!r}")
            if isinstance(body, str)
            else openai_error_fields(body)
        )

    def finish_error(body: Any) -> tuple[str, str] | None:
        failed = body["choices"][0].get("finish_reason") == "error"
        return ("generation_error", "stopped") if failed else None

    dialect = OpenAILineDialect(
        error_fields=bodies_say_why,
        answer_failure=finish_error,
        expired_codes=frozenset({"expired"}),
    )
    expired = read({"custom_id": "a", "error": {"code": "expired"}}, dialect)
    assert expired.status is ResultStatus.EXPIRED
    assert read({"custom_id": "a", "error": {"code": "expired"}}).status is ResultStatus.ERRORED
    failed = read({"custom_id": "a", "error": "boom"}, dialect)
    assert (failed.error.code, failed.error.message) == ("vendor_code", "said 'boom'")
    body = {"choices": [{"finish_reason": "error", "message": {"content": "half"}}]}
    stopped = read(ok_line("a", body), dialect)
    assert stopped.status is ResultStatus.ERRORED and stopped.text == "half"
    assert (stopped.error.code, stopped.retryable) == ("generation_error", False)
    assert read(ok_line("a", body)).ok  # OpenAI's own lines know no such rule


def test_an_incomplete_responses_result_is_not_a_whole_answer() -> None:
    body = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    result = read(ok_line("a", body))
    assert result.status is ResultStatus.ERRORED and not result.retryable
    assert result.error.code == "response_incomplete"
    assert "max_output_tokens" in result.error.message


def test_a_line_without_a_custom_id_is_none() -> None:
    assert read({"response": {"status_code": 200, "body": {}}}) is None
    assert read({"custom_id": "", "error": {}}) is None


@pytest.mark.parametrize(
    ("line", "custom_id"),
    [
        (b'{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {}}', "q1"),
        (b'{"custom_id": "q2", "body": {}}', "q2"),
        (b'{"custom_id": ""}', None),
        (b'{"custom_id": 7}', None),
        (b"[1]", None),
        (b"not json", None),
    ],
)
def test_the_custom_id_of_an_input_line(line: bytes, custom_id: str | None) -> None:
    assert input_custom_id(line) == custom_id
