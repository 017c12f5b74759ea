"""A small HTTP server on 127.0.0.1 for emulating vendor APIs, with fault injection.

Plugin emulators are built on it; users and tests drive real HTTP clients (the ``openai`` SDK,
``requests``) against it. It binds only to loopback on an ephemeral port::

    server = LoopbackServer()

    @server.route("GET", "/v1/things/{thing_id}")
    def get_thing(request: Request) -> Response:
        return Response.json({"id": request.path_params["thing_id"]})

    with server:
        requests.get(server.url + "/v1/things/1")
        server.inject("GET", "/v1/things/{thing_id}", Fault.status(429))

Faults are matched by route and by call number counted from the moment they are injected:
``Fault.status`` (any status, headers and body), ``Fault.reset`` (connection reset, no
response), ``Fault.hang`` (no response until the client gives up), ``Fault.truncate`` (the body
stops short of its Content-Length), ``Fault.lose_response`` (the route runs, the answer never
comes), ``Fault.stall`` (part of the body, then nothing), ``Fault.corrupt_line`` (the whole
answer arrives, one of its lines garbled).
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

__all__ = ["Fault", "LoopbackServer", "RecordedCall", "Request", "Response"]

Handler = Callable[["Request"], "Response"]

# Faults served after the route has run (its side effects happen).
_AFTER_ROUTE = frozenset({"truncate", "lose_response", "stall", "corrupt_line"})
# Upper bound of a hang, so a forgotten fault cannot keep a thread forever.
_HANG_SECONDS = 60.0


@attrs.frozen(kw_only=True)
class Request:
    """An incoming request, fully read."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = attrs.field(repr=False)
    path_params: Mapping[str, str] = attrs.field(factory=dict)

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@attrs.define(kw_only=True)
class Response:
    """What a route returns. ``body`` may be bytes or an iterable of chunks (sent chunked, so a
    huge body never sits in memory)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(
        cls, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return cls(
            status=status,
            body=orjson.dumps(obj),
            headers={"content-type": "application/json", **(headers or {})},
        )


@attrs.frozen(kw_only=True)
class Fault:
    """A failure to serve instead of (or in the middle of) a route's answer."""

    kind: str
    http_status: int = 500
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    keep_bytes: int = 0
    line: int = 0

    @classmethod
    def status(
        cls, status: int, *, headers: Mapping[str, str] | None = None, body: Any = None
    ) -> Fault:
        """Answer with *status* (a JSON *body* is encoded; default: an error object)."""
        if body is None:
            body = {
                "error": {"message": f"injected fault {status}", "type": "injected", "code": None}
            }
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return cls(kind="status", http_status=status, headers=dict(headers or {}), body=raw)

    @classmethod
    def reset(cls) -> Fault:
        """Reset the connection without answering."""
        return cls(kind="reset")

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (until the server stops); the client's timeout must fire."""
        return cls(kind="hang")

    @classmethod
    def truncate(cls, keep_bytes: int = 10) -> Fault:
        """Run the route, announce its full Content-Length, send *keep_bytes* and close."""
        return cls(kind="truncate", keep_bytes=keep_bytes)

    @classmethod
    def lose_response(cls) -> Fault:
        """Run the route (its effects happen: a batch is created) but never answer, as when a
        response is lost in transit. The client times out not knowing it succeeded."""
        return cls(kind="lose_response")

    @classmethod
    def stall(cls, keep_bytes: int) -> Fault:
        """Run the route, send *keep_bytes* of its body, then stall until the server stops
        (a download interrupted midway)."""
        return cls(kind="stall", keep_bytes=keep_bytes)

    @classmethod
    def corrupt_line(cls, line: int = 2) -> Fault:
        """Run the route and send its whole body, with its *line*-th non-blank line (counted
        from 1; the last one when there are fewer) cut in half: a download garbled on the way,
        whose connection ends cleanly."""
        if line < 1:
            raise ValueError("lines are counted from 1")
        return cls(kind="corrupt_line", line=line)


@attrs.frozen(kw_only=True)
class RecordedCall:
    method: str
    path: str
    route: str | None
    status: int | None
    fault: str | None


@attrs.define
class _Injection:
    method: str
    pattern: str
    fault: Fault
    calls: frozenset[int]
    seen: int = 0


@attrs.frozen
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*\})", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


class LoopbackServer:
    """An HTTP/1.1 server on 127.0.0.1 with routes, call records and fault injection."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("LoopbackServer binds to loopback only")
        self._host = host
        self._port = port
        self._routes: list[_Route] = []
        self._injections: list[_Injection] = []
        self._calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: How to answer a call no route matches ``(status, message) -> Response``; an
        #: emulator sets it to answer 404/405 in its vendor's error shape, headers included.
        self.unknown_route: Callable[[int, str], Response] | None = None

    # -- routes ----------------------------------------------------------------------------

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator registering *handler* for *method* and a path *pattern* with
        ``{name}`` placeholders (available as ``request.path_params``)."""

        def register(handler: Handler) -> Handler:
            self.add_route(method, pattern, handler)
            return handler

        return register

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(_Route(method.upper(), pattern, _compile(pattern), handler))

    # -- faults and records ----------------------------------------------------------------

    def inject(
        self,
        method: str,
        pattern: str,
        fault: Fault,
        *,
        times: int = 1,
        calls: Iterable[int] | None = None,
    ) -> None:
        """Serve *fault* on calls to the route ``method pattern`` (the same pattern string the
        route was registered with; ``"*"`` matches any). Calls are counted from now, 1-based:
        by default the next *times* calls, or exactly the numbers in *calls*."""
        chosen = frozenset(calls) if calls is not None else frozenset(range(1, times + 1))
        with self._lock:
            self._injections.append(_Injection(method.upper(), pattern, fault, chosen))

    def clear_faults(self) -> None:
        with self._lock:
            self._injections.clear()

    @property
    def calls(self) -> list[RecordedCall]:
        """Every call served so far (method, path, matched route, status, fault)."""
        with self._lock:
            return list(self._calls)

    def count(self, method: str, pattern: str) -> int:
        """How many calls the route ``method pattern`` has received."""
        method = method.upper()
        return sum(1 for c in self.calls if c.method == method and c.route == pattern)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        server = self

        class _Handler(_RequestHandler):
            owner = server

        httpd = ThreadingHTTPServer((self._host, self._port), _Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="batchcore-loopback",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- dispatch --------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], bool]:
        path_known = False
        for route in self._routes:
            found = route.regex.match(path)
            if found:
                path_known = True
                if route.method == method:
                    return route, found.groupdict(), True
        return None, {}, path_known

    def _take_fault(self, method: str, route: _Route | None) -> Fault | None:
        pattern = route.pattern if route else None
        chosen: Fault | None = None
        with self._lock:
            # Every matching injection counts every call, so call numbers mean the same thing
            # whatever else was injected; the earliest injection wins a tie.
            for injection in self._injections:
                if injection.method not in {method, "*"}:
                    continue
                if injection.pattern != "*" and injection.pattern != pattern:
                    continue
                injection.seen += 1
                if chosen is None and injection.seen in injection.calls:
                    chosen = injection.fault
        return chosen

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self._calls.append(call)


class _RequestHandler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"
    server_version = "batchcore-loopback"
    # Headers and body go out in separate writes; with Nagle's algorithm on, each keep-alive
    # call then waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        body = self._read_body()
        route, params, path_known = owner._match(self.command, split.path)
        fault = owner._take_fault(self.command, route)
        pattern = route.pattern if route else None
        if fault is not None and fault.kind not in _AFTER_ROUTE:
            owner._record(
                RecordedCall(
                    method=self.command,
                    path=split.path,
                    route=pattern,
                    status=fault.http_status if fault.kind == "status" else None,
                    fault=fault.kind,
                )
            )
            self._serve_fault(fault)
            return
        if route is None:
            status = 405 if path_known else 404
            message = f"no route for {self.command} {split.path}"
            fallback = owner.unknown_route
            response = (
                fallback(status, message)
                if fallback is not None
                else Response.json(
                    {
                        "error": {
                            "message": message,
                            "type": "invalid_request_error",
                            "code": "unknown_url",
                        }
                    },
                    status=status,
                )
            )
        else:
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                path_params=params,
            )
            try:
                response = route.handler(request)
            except Exception as exc:  # an emulator bug must show, not hang the client
                response = Response.json(
                    {
                        "error": {
                            "message": f"emulator error: {type(exc).__name__}: {exc}",
                            "type": "api_error",
                            "code": None,
                        }
                    },
                    status=500,
                )
        owner._record(
            RecordedCall(
                method=self.command,
                path=split.path,
                route=pattern,
                status=response.status,
                fault=fault.kind if fault is not None else None,
            )
        )
        if fault is None:
            self._send(response)
        elif fault.kind == "corrupt_line":
            self._send(_with_corrupt_line(response, fault.line))
        elif fault.kind == "lose_response":
            self.owner._stopping.wait(timeout=_HANG_SECONDS)
            self.close_connection = True
            self._hard_close(reset=True)
        else:
            self._send_truncated(response, fault.keep_bytes, stall=fault.kind == "stall")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {k.lower(): v for k, v in response.headers.items()}
        headers.pop("content-length", None)
        headers.pop("transfer-encoding", None)
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(response.body, (bytes, bytearray)):
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in _coalesce(response.body):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _send_truncated(self, response: Response, keep: int, *, stall: bool = False) -> None:
        body = (
            response.body
            if isinstance(response.body, (bytes, bytearray))
            else b"".join(response.body)
        )
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in {"content-length", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: min(keep, max(len(body) - 1, 0))])
        self.wfile.flush()
        if stall:
            self.owner._stopping.wait(timeout=_HANG_SECONDS)
        self.close_connection = True
        self._hard_close()

    def _serve_fault(self, fault: Fault) -> None:
        if fault.kind == "status":
            self._send(
                Response(
                    status=fault.http_status,
                    body=fault.body,
                    headers={"content-type": "application/json", **fault.headers},
                )
            )
            return
        if fault.kind == "hang":
            self.owner._stopping.wait(timeout=_HANG_SECONDS)
        self.close_connection = True
        self._hard_close(reset=True)

    def _hard_close(self, *, reset: bool = False) -> None:
        try:
            if reset:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the client may have gone (resets, timeouts)
            super().finish()


def _with_corrupt_line(response: Response, line: int) -> Response:
    body = (
        response.body if isinstance(response.body, (bytes, bytearray)) else b"".join(response.body)
    )
    lines = bytes(body).split(b"\n")
    filled = [index for index, text in enumerate(lines) if text.strip()]
    if filled:
        index = filled[min(line, len(filled)) - 1]
        lines[index] = lines[index][: len(lines[index]) // 2]
    return Response(status=response.status, body=b"\n".join(lines), headers=response.headers)


def _coalesce(chunks: Iterable[bytes], size: int = 1 << 16) -> Iterator[bytes]:
    """Group small chunks so a body of many short lines is not sent as many tiny frames."""
    buffer: list[bytes] = []
    held = 0
    for chunk in chunks:
        if not chunk:
            continue
        buffer.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(buffer)
            buffer.clear()
            held = 0
    if buffer:
        yield b"".join(buffer)
