"""The shared requests transport against a real loopback server: retries, Retry-After,
classification, redaction, streaming and cut-short bodies."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from batchcore import (
    AuthenticationError,
    OutcomeUnknownError,
    OverloadedError,
    ProviderConnectionError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
)
from batchcore.http import HttpTransport, MultipartUpload
from batchcore.retry import RetryPolicy
from batchcore.testing import Fault, LoopbackServer, Request, Response
from batchcore.testing.multipart import parse_multipart

KEY = "sk-test-transport-0123456789"
THING = "/v1/things/{thing_id}"


@pytest.fixture
def server() -> LoopbackServer:
    server = LoopbackServer()

    @server.route("GET", THING)
    def get_thing(request: Request) -> Response:
        return Response.json(
            {"id": request.path_params["thing_id"], "auth": request.header("authorization")}
        )

    @server.route("POST", "/v1/echo")
    def echo(request: Request) -> Response:
        return Response(body=request.body, headers={"content-type": "application/octet-stream"})

    @server.route("GET", "/v1/lines")
    def lines(request: Request) -> Response:
        return Response(body=(b'{"i": %d}\n' % i for i in range(20_000)))

    with server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def transport(server: LoopbackServer, sleeps: list[float]) -> HttpTransport:
    return HttpTransport(
        provider="acme",
        base_url=server.url,
        headers={"authorization": f"Bearer {KEY}"},
        timeout=0.3,
        sleep=sleeps.append,
        retry_policy=RetryPolicy(max_retries=2, jitter=lambda: 0.0),
    )


def test_success_and_auth_header(transport: HttpTransport) -> None:
    assert transport.request_json("GET", "/v1/things/7") == {"id": "7", "auth": f"Bearer {KEY}"}


def test_429_with_retry_after_is_waited_out(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("GET", THING, Fault.status(429, headers={"retry-after": "3"}))
    assert transport.request_json("GET", "/v1/things/1")["id"] == "1"
    assert sleeps == [3.0]
    assert server.count("GET", THING) == 2


def test_transient_failures_back_off_then_give_up(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("GET", THING, Fault.status(500), times=3)
    with pytest.raises(ProviderServerError) as info:
        transport.request("GET", "/v1/things/1", action="get thing")
    assert sleeps == [0.5, 1.0]
    assert server.count("GET", THING) == 3
    assert str(info.value).startswith("[acme] get thing:")


def test_overload_reset_and_truncation_are_retried(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("GET", THING, Fault.status(529), calls=[1])
    server.inject("GET", THING, Fault.reset(), calls=[2])
    server.inject("GET", THING, Fault.truncate(5), calls=[3])
    with pytest.raises(ResponseLostError, match="connection broke"):
        transport.request_json("GET", "/v1/things/1")
    assert len(sleeps) == 2
    assert transport.request_json("GET", "/v1/things/1")["id"] == "1"


def test_overloaded_is_its_own_class(server: LoopbackServer, transport: HttpTransport) -> None:
    server.inject("GET", THING, Fault.status(529))
    with pytest.raises(OverloadedError):
        transport.request("GET", "/v1/things/1", retry=False)


def test_retry_after_beyond_the_cap_is_not_waited(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("GET", THING, Fault.status(429, headers={"retry-after": "3600"}))
    with pytest.raises(RateLimitError) as info:
        transport.request("GET", "/v1/things/1")
    assert info.value.retry_after == 3600.0
    assert sleeps == []


def test_permanent_errors_are_not_retried_and_never_show_the_key(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject(
        "GET",
        THING,
        Fault.status(
            401,
            body={
                "error": {
                    "message": f"Incorrect API key provided: {KEY}",
                    "type": "authentication_error",
                }
            },
        ),
    )
    with pytest.raises(AuthenticationError) as info:
        transport.request("GET", "/v1/things/1")
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert sleeps == [] and server.count("GET", THING) == 1


def test_timeout_is_transient(server: LoopbackServer, transport: HttpTransport) -> None:
    server.inject("GET", THING, Fault.hang(), times=3)
    with pytest.raises(ProviderTimeoutError, match="timed out"):
        transport.request("GET", "/v1/things/1")


def test_file_bodies_are_rewound_for_retries(
    server: LoopbackServer, transport: HttpTransport
) -> None:
    server.inject("POST", "/v1/echo", Fault.status(503))
    body = io.BytesIO(b"payload-bytes")
    assert transport.request("POST", "/v1/echo", data=body).content == b"payload-bytes"


def test_unrewindable_bodies_are_not_retried(
    server: LoopbackServer, transport: HttpTransport
) -> None:
    server.inject("POST", "/v1/echo", Fault.status(503))

    def chunks():  # type: ignore[no-untyped-def]
        yield b"once"

    with pytest.raises(OverloadedError):
        transport.request("POST", "/v1/echo", data=chunks())  # type: ignore[arg-type]


def test_streamed_lines_and_cut_short_bodies(
    server: LoopbackServer, transport: HttpTransport
) -> None:
    response = transport.request("GET", "/v1/lines", stream=True)
    assert sum(1 for _ in transport.iter_jsonl(response)) == 20_000
    server.inject("GET", "/v1/lines", Fault.truncate(50_000))
    response = transport.request("GET", "/v1/lines", stream=True)
    with pytest.raises(ProviderConnectionError, match="cut short"):
        for _ in transport.iter_jsonl(response):
            pass


def test_unknown_route_is_a_clear_error(transport: HttpTransport) -> None:
    from batchcore import NotFoundError

    with pytest.raises(NotFoundError, match="no route"):
        transport.request("GET", "/v1/nothing-here")


def test_absolute_urls_to_other_hosts_are_refused(
    server: LoopbackServer, transport: HttpTransport
) -> None:
    assert transport.url(server.url + "/v1/x") == server.url + "/v1/x"
    with pytest.raises(ProviderConnectionError, match="not the configured base URL"):
        transport.request("GET", "https://results.elsewhere.invalid/v1/x")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpTransport(provider="p", base_url="ftp://x")


def _chain(exc: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


@pytest.mark.parametrize("fault", [Fault.lose_response(), Fault.reset()])
def test_a_post_whose_answer_is_lost_is_never_repeated(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float], fault: Fault
) -> None:
    server.inject("POST", "/v1/echo", fault)
    with pytest.raises(OutcomeUnknownError):
        transport.request("POST", "/v1/echo", data=b"create a batch")
    assert server.count("POST", "/v1/echo") == 1
    assert sleeps == []


def test_a_post_the_vendor_deduplicates_is_repeated(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("POST", "/v1/echo", Fault.reset())
    response = transport.request("POST", "/v1/echo", data=b"upload", idempotent=True)
    assert response.content == b"upload"
    assert server.count("POST", "/v1/echo") == 2


def test_a_read_timeout_is_an_unknown_outcome_and_a_refused_connection_is_not(
    sleeps: list[float],
) -> None:
    with LoopbackServer() as server:
        url = server.url  # a port that refuses connections once the server has stopped
    transport = HttpTransport(provider="acme", base_url=url, timeout=0.3, sleep=sleeps.append)
    with pytest.raises(ProviderConnectionError) as info:
        transport.request("POST", "/v1/echo", data=b"x")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "could not connect" in str(info.value)
    assert len(sleeps) == 2  # nothing was sent: repeating it is safe, even for a POST


def test_a_hung_post_times_out_as_an_unknown_outcome(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("POST", "/v1/echo", Fault.hang())
    with pytest.raises(ResponseTimeoutError, match="may have taken effect"):
        transport.request("POST", "/v1/echo", data=b"x")
    assert sleeps == []


def test_failures_carry_no_http_library_exception_and_no_key(
    server: LoopbackServer, transport: HttpTransport
) -> None:
    server.inject("GET", THING, Fault.reset(), times=3)
    with pytest.raises(ProviderConnectionError) as info:
        transport.request("GET", "/v1/things/1")
    chain = _chain(info.value)
    assert [type(e).__module__.split(".")[0] for e in chain] == ["batchcore"]
    assert all(KEY not in repr(vars(e)) and KEY not in str(e) for e in chain)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("retry-after", "nan"),
        ("retry-after", "NaN"),
        ("retry-after", "-inf"),
        ("retry-after-ms", "nan"),
        ("retry-after", "soon"),
    ],
)
def test_an_unreadable_retry_after_backs_off_as_if_absent(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float], header: str, value: str
) -> None:
    server.inject("GET", THING, Fault.status(429, headers={header: value}))
    assert transport.request_json("GET", "/v1/things/1")["id"] == "1"
    assert sleeps == [0.5]  # the usual first backoff, never sleep(nan)


def test_a_negative_retry_after_means_now(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    server.inject("GET", THING, Fault.status(503, headers={"retry-after": "-30"}))
    assert transport.request_json("GET", "/v1/things/1")["id"] == "1"
    assert sleeps == [0.0]


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e300", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_endless_retry_after_is_over_the_cap_and_raised_at_once(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float], value: str
) -> None:
    import math

    from batchcore.retry import LONGEST_RETRY_AFTER

    server.inject("GET", THING, Fault.status(429, headers={"retry-after": value}))
    with pytest.raises(RateLimitError) as info:
        transport.request("GET", "/v1/things/1")
    assert info.value.retry_after == LONGEST_RETRY_AFTER  # a year: finite, over every cap
    assert info.value.retry_after is not None and math.isfinite(info.value.retry_after)
    assert sleeps == [] and server.count("GET", THING) == 1


def test_a_long_wait_inside_a_call_reaches_the_wait_reporter(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float]
) -> None:
    from batchcore.retry import Wait, reporting_waits

    reported: list[Wait] = []
    server.inject("GET", THING, Fault.status(429, headers={"retry-after": "100"}))
    server.inject("GET", THING, Fault.status(500), calls=[2])
    with reporting_waits(reported.append):
        assert transport.request_json("GET", "/v1/things/1", action="get thing")["id"] == "1"
    assert sleeps == [100.0, 1.0]
    (wait,) = reported  # the 1 s backoff is too short to be worth a line
    assert wait.seconds == 100.0 and wait.reason == "vendor asked: Retry-After"
    assert "acme get thing" in wait.what and "HTTP 429" in (wait.error or "")
    # Outside the block nobody is told (and nothing breaks).
    server.inject("GET", THING, Fault.status(429, headers={"retry-after": "100"}))
    transport.request_json("GET", "/v1/things/1")
    assert len(reported) == 1


# -- multipart uploads, streamed from disk --------------------------------------------------------


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / 'in "quoted".jsonl'
    # Bytes that look like form syntax must come through untouched.
    path.write_bytes(b'{"custom_id": "a"}\r\n--batchcore-x\r\n' * 3000 + bytes(range(256)))
    return path


def test_an_upload_sends_a_form_the_server_reads_back_and_is_rewound_to_retry(
    server: LoopbackServer, transport: HttpTransport, sleeps: list[float], payload_file: Path
) -> None:
    received: list[dict[str, Any]] = []

    def upload(request: Request) -> Response:
        kind = request.header("content-type") or ""
        parts = {p.name: p for p in parse_multipart(request.body, kind)}
        got = {
            "purpose": parts["purpose"].text(),
            "filename": parts["file"].filename,
            "content_type": parts["file"].content_type,
            "data": bytes(parts["file"].data),
            "length": int(request.header("content-length") or -1),
        }
        received.append(got)
        return Response.json({"id": f"file-{len(received)}"})

    server.add_route("POST", "/v1/files", upload)
    server.inject("POST", "/v1/files", Fault.truncate(5))  # the first answer is cut short
    answer = transport.upload(
        "/v1/files",
        payload_file,
        fields={"purpose": "batch"},
        content_type="application/jsonl",
        action="upload",
    )
    assert answer == {"id": "file-2"}  # an upload only adds a file: repeated like a read
    assert len(received) == 2 and sleeps == [0.5]
    for got in received:  # the second attempt sent the whole body again
        assert got["data"] == payload_file.read_bytes()
        assert (got["purpose"], got["filename"]) == ("batch", payload_file.name)
        assert got["content_type"] == "application/jsonl"
        assert got["length"] == received[0]["length"] > payload_file.stat().st_size


@pytest.mark.parametrize("block", [1, 7, 8192, 1 << 20])
def test_the_upload_body_reads_the_same_bytes_in_any_block_size(
    payload_file: Path, block: int
) -> None:
    with MultipartUpload(payload_file, fields={"purpose": "batch"}) as form:
        whole = form.read()
        assert len(whole) == len(form)
        form.seek(0)
        pieces = []
        while chunk := form.read(block):
            assert len(chunk) <= block
            pieces.append(chunk)
        assert b"".join(pieces) == whole
        form.seek(0)
        assert b"".join(form) == whole


def test_the_upload_body_seeks_like_a_file(payload_file: Path) -> None:
    with MultipartUpload(payload_file, fields={}, filename="x.jsonl") as form:
        form.read(100)
        assert form.tell() == 100
        assert form.seek(-10, io.SEEK_END) == len(form) - 10
        assert form.read().endswith(b"--\r\n")
        assert form.read() == b""
        assert form.seek(5, io.SEEK_SET) == 5 and form.seek(3, io.SEEK_CUR) == 8
        assert form.seek(-100) == 0


def test_each_upload_body_has_its_own_boundary(payload_file: Path) -> None:
    with (
        MultipartUpload(payload_file, fields={}) as first,
        MultipartUpload(payload_file, fields={}) as second,
    ):
        assert first.boundary != second.boundary
        assert first.boundary.encode() not in payload_file.read_bytes()
        assert first.content_type == f"multipart/form-data; boundary={first.boundary}"
