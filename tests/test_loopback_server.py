"""The loopback server itself: binding, routing, records and fault scheduling."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from batchcore.testing import Fault, LoopbackServer, Request, Response


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_binds_to_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LoopbackServer(host="0.0.0.0")
    server = LoopbackServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:")


def test_routes_params_query_and_records(loopback_server: LoopbackServer) -> None:
    @loopback_server.route("GET", "/items/{item_id}")
    def item(request: Request) -> Response:
        return Response.json({"id": request.path_params["item_id"], "q": request.arg("q")})

    assert get(loopback_server.url + "/items/5?q=x") == (200, b'{"id":"5","q":"x"}')
    status, body = get(loopback_server.url + "/missing")
    assert status == 404 and b"no route" in body
    calls = loopback_server.calls
    assert [(c.path, c.route, c.status) for c in calls] == [
        ("/items/5", "/items/{item_id}", 200),
        ("/missing", None, 404),
    ]


def test_wrong_method_is_405(loopback_server: LoopbackServer) -> None:
    loopback_server.add_route("POST", "/only-post", lambda r: Response.json({}))
    assert get(loopback_server.url + "/only-post")[0] == 405


def test_faults_by_call_number_count_from_injection(loopback_server: LoopbackServer) -> None:
    loopback_server.add_route("GET", "/x", lambda r: Response.json({"ok": True}))
    assert get(loopback_server.url + "/x")[0] == 200
    loopback_server.inject("GET", "/x", Fault.status(503), calls=[2, 3])
    loopback_server.inject("GET", "*", Fault.status(418), calls=[3])
    assert [get(loopback_server.url + "/x")[0] for _ in range(4)] == [200, 503, 503, 200]
    assert [c.fault for c in loopback_server.calls[-4:]] == [None, "status", "status", None]
    loopback_server.inject("GET", "/x", Fault.status(500), times=5)
    loopback_server.clear_faults()
    assert get(loopback_server.url + "/x")[0] == 200


def test_status_fault_body_and_headers(loopback_server: LoopbackServer) -> None:
    loopback_server.add_route("GET", "/x", lambda r: Response.json({}))
    loopback_server.inject(
        "GET",
        "/x",
        Fault.status(429, headers={"retry-after": "2"}, body={"error": {"message": "slow"}}),
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(loopback_server.url + "/x", timeout=5)
    assert info.value.code == 429 and info.value.headers["retry-after"] == "2"
    assert json.loads(info.value.read()) == {"error": {"message": "slow"}}


def test_handler_errors_become_500_not_hangs(loopback_server: LoopbackServer) -> None:
    def broken(request: Request) -> Response:
        raise RuntimeError("emulator bug")

    loopback_server.add_route("GET", "/broken", broken)
    status, body = get(loopback_server.url + "/broken")
    assert status == 500 and b"emulator bug" in body


def test_chunked_request_bodies_are_read(loopback_server: LoopbackServer) -> None:
    import requests

    loopback_server.add_route("POST", "/echo", lambda r: Response(body=r.body))
    sent = requests.post(loopback_server.url + "/echo", data=iter([b"ab", b"cd"]), timeout=5)
    assert sent.content == b"abcd"


def test_lose_response_runs_the_route_but_never_answers(loopback_server: LoopbackServer) -> None:
    import requests

    created: list[bytes] = []

    def create(request: Request) -> Response:
        created.append(request.body)
        return Response.json({"id": "b1"})

    loopback_server.add_route("POST", "/create", create)
    loopback_server.inject("POST", "/create", Fault.lose_response())
    with pytest.raises(requests.RequestException):
        requests.post(loopback_server.url + "/create", data=b"x", timeout=0.2)
    assert created == [b"x"]


def test_stall_sends_part_of_the_body_then_nothing(loopback_server: LoopbackServer) -> None:
    import requests

    loopback_server.add_route("GET", "/big", lambda r: Response(body=b"0123456789" * 100))
    loopback_server.inject("GET", "/big", Fault.stall(keep_bytes=25))
    response = requests.get(loopback_server.url + "/big", stream=True, timeout=0.2)
    got: list[bytes] = []

    def read_all() -> None:
        got.extend(response.iter_content(1))

    with pytest.raises(requests.RequestException):
        read_all()
    assert b"".join(got) == (b"0123456789" * 3)[:25]


def test_corrupt_line_sends_the_whole_body_with_one_line_cut(
    loopback_server: LoopbackServer,
) -> None:
    lines = [b'{"n": %d, "text": "line number %d"}' % (i, i) for i in range(4)]
    loopback_server.add_route(
        "GET", "/lines", lambda r: Response(body=iter([line + b"\n" for line in lines]))
    )
    loopback_server.inject("GET", "/lines", Fault.corrupt_line(2))
    status, body = get(loopback_server.url + "/lines")
    got = body.split(b"\n")
    assert status == 200 and got[0] == lines[0] and got[2:4] == lines[2:4]
    assert lines[1].startswith(got[1]) and len(got[1]) == len(lines[1]) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(got[1])
    assert loopback_server.calls[-1].fault == "corrupt_line"
    assert get(loopback_server.url + "/lines")[1] == b"\n".join(lines) + b"\n"  # once only
    loopback_server.inject("GET", "/lines", Fault.corrupt_line(9))  # past the end: the last
    last = get(loopback_server.url + "/lines")[1].split(b"\n")
    assert last[:3] == lines[:3] and last[3] == lines[3][: len(lines[3]) // 2]
    with pytest.raises(ValueError, match="counted from 1"):
        Fault.corrupt_line(0)
