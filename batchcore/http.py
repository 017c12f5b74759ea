"""The shared HTTP transport for providers that speak to a vendor with ``requests``.

Retries, ``Retry-After``, ``x-should-retry`` and error classification live here once, so a
plugin only says which path to call. Importing this module imports ``requests``; the core
package never imports it at import time.
"""

from __future__ import annotations

import os
import secrets as _secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from batchcore.classify import error_from_response, transport_failure
from batchcore.errors import ProviderConnectionError, ProviderError, ResponseLostError, redact
from batchcore.jsonl import iter_lines
from batchcore.retry import RetryPolicy, retry_call

__all__ = ["HttpTransport", "MultipartUpload"]


_ERROR_BODY_LIMIT = 64 * 1024
_STREAM_CHUNK = 1 << 20
_AUTH_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_UPLOAD_BLOCK = 1 << 20


class HttpTransport:
    """A ``requests`` session bound to one vendor base URL, with retries and error mapping.

    *headers* (authentication included) are sent on every call and never logged. *sleep* is
    injectable so tests never wait for real time.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        secrets: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.provider = provider
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.policy = retry_policy or RetryPolicy(max_retries=max_retries)
        # Credentials in headers are secrets whether or not the caller listed them.
        self._secrets = tuple(secrets) + tuple(
            value.split(" ", 1)[-1]  # "Bearer sk-..." -> "sk-..."
            for name, value in (headers or {}).items()
            if name.lower() in _AUTH_HEADERS
        )
        self._sleep = sleep
        self._session = requests.Session()
        # requests' own retries are off: we retry with the vendor semantics below.
        adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=4)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(headers or {})
        self._session.trust_env = False

    def url(self, path: str) -> str:
        """The absolute URL of *path* under the base URL. Absolute URLs are refused unless they
        point at the base URL's own origin (a vendor-sent URL never redirects our key elsewhere)."""
        if "://" in path:
            base, target = urlsplit(self.base_url), urlsplit(path)
            if (base.scheme, base.netloc) != (target.scheme, target.netloc):
                raise ProviderConnectionError(
                    f"refusing to call {target.scheme}://{target.netloc}, which is not the "
                    f"configured base URL's host",
                    provider=self.provider,
                )
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | IO[bytes] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        action: str | None = None,
        retry: bool = True,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Call the vendor; return a 2xx response or raise a :class:`ProviderError` subclass.

        Transient failures are retried under the retry policy (file bodies are rewound), except
        that a call whose outcome is unknown (the request left, the answer was lost) is repeated
        only when *idempotent* (default: for GET, HEAD, PUT, DELETE and OPTIONS; pass True for
        a POST the vendor deduplicates). *action* names the operation in error messages.
        """
        url = self.url(path)
        call_headers = dict(headers or {})
        if json_body is not None:
            data = orjson.dumps(json_body)
            call_headers.setdefault("content-type", "application/json")
        start = data.tell() if data is not None and hasattr(data, "tell") else None
        rewindable = data is None or isinstance(data, (bytes, bytearray)) or start is not None

        # A request the vendor deduplicates or that changes nothing may be repeated after an
        # unknown outcome; a create may not (the caller reconciles it instead).
        safe_to_repeat = method.upper() in _IDEMPOTENT_METHODS if idempotent is None else idempotent

        def once() -> requests.Response:
            if start is not None:
                data.seek(start)  # type: ignore[union-attr]
            failure: Exception | None = None
            try:
                # Always stream, so an error body is read with a bound and a success body is
                # read inside this try (a truncated body is then retried like a reset).
                response = self._session.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=call_headers,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
                if response.status_code < 300 and not stream:
                    response.content  # noqa: B018 - reads the body now
            except requests.RequestException as exc:
                failure = exc
            if failure is not None:
                # Raised outside the except block: the requests exception (which holds the
                # request and its auth header) must not ride along as __context__.
                raise transport_failure(
                    failure,
                    provider=self.provider,
                    action=action or f"{method} {path}",
                    secrets=self._secrets,
                    timeout=self.timeout,
                )
            if response.status_code >= 300:
                raise self._error(response, action)
            return response

        if not (retry and rewindable):
            return once()
        return retry_call(
            once,
            policy=self.policy,
            sleep=lambda s: self._sleep(s),
            describe=f"{self.provider} {action or method + ' ' + path}",
            idempotent=safe_to_repeat,
        )

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the body parsed as JSON (a truncated body is transient)."""
        response = self.request(method, path, **kwargs)
        try:
            return orjson.loads(response.content)
        except (orjson.JSONDecodeError, requests.RequestException) as exc:
            problem = type(exc).__name__
        # The vendor answered 2xx, so it acted; what it said is unreadable.
        raise ResponseLostError(
            self._describe(kwargs.get("action"), f"unreadable response body ({problem})"),
            provider=self.provider,
            status_code=response.status_code,
        )

    def iter_jsonl(
        self, response: requests.Response, *, action: str | None = None
    ) -> Iterator[bytes]:
        """The raw lines of a streamed JSONL response body. A body cut short raises
        :class:`ProviderConnectionError` rather than ending quietly."""
        failure: str | None = None
        try:
            yield from iter_lines(response.iter_content(chunk_size=_STREAM_CHUNK))
        except requests.RequestException as exc:
            failure = type(exc).__name__
        finally:
            response.close()
        if failure is not None:
            raise ResponseLostError(
                self._describe(action, f"response body cut short ({failure})"),
                provider=self.provider,
                status_code=response.status_code,
            )

    def upload(
        self,
        path: str,
        file: Path,
        *,
        fields: Mapping[str, str],
        file_field: str = "file",
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        action: str | None = None,
        idempotent: bool = True,
    ) -> Any:
        """``POST`` *file* as a ``multipart/form-data`` form (the text *fields*, then the file
        under *file_field*), streamed from disk, and return the answer parsed as JSON (as
        :meth:`request_json`). An upload only adds a file, so by default it is repeated like a
        read when its answer is lost; the body is rewound for each attempt."""
        with MultipartUpload(
            file,
            fields=fields,
            file_field=file_field,
            filename=filename,
            content_type=content_type,
        ) as form:
            return self.request_json(
                "POST",
                path,
                data=cast(IO[bytes], form),
                headers={"content-type": form.content_type},
                action=action,
                idempotent=idempotent,
            )

    def close(self) -> None:
        self._session.close()

    def _describe(self, action: str | None, text: str) -> str:
        return redact(f"{action}: {text}" if action else text, self._secrets)

    def _error(self, response: requests.Response, action: str | None) -> ProviderError:
        try:
            body = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True)
        except Exception:
            body = b""
        finally:
            response.close()
        return error_from_response(
            provider=self.provider,
            status_code=response.status_code,
            body=body if body else response.reason,
            headers=response.headers,
            secrets=self._secrets,
            action=action,
        )


def _quoted(value: str) -> str:
    # Field names and file names travel in a quoted header parameter.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartUpload:
    """A ``multipart/form-data`` body of text *fields* and the file at *path* (sent as
    *filename*, of *content_type*, under *file_field*), read from disk as it is sent.

    A readable, seekable file object over three pieces (the form's head, the file, its tail)
    with a known length: ``requests`` sends it in blocks with a Content-Length, so a payload of
    hundreds of megabytes is never held in memory, and the transport rewinds it to retry. Use it
    as a context manager (it holds the file open); :attr:`content_type` carries the boundary.
    """

    def __init__(
        self,
        path: Path,
        *,
        fields: Mapping[str, str],
        file_field: str = "file",
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        self.boundary = "batchcore-" + _secrets.token_hex(16)
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"'
            f"\r\n\r\n{value}\r\n".encode()
            for name, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
            f'filename="{_quoted(filename or path.name)}"\r\nContent-Type: {content_type}'
            "\r\n\r\n"
        ).encode()
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file_size = os.fstat(self._file.fileno()).st_size
        self._position = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + self._file_size + len(self._tail)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self)}[whence]
        self._position = min(max(base + offset, 0), len(self))
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = len(self) if size is None or size < 0 else min(self._position + size, len(self))
        pieces: list[bytes] = []
        head, file_end = len(self._head), len(self._head) + self._file_size
        while self._position < end:
            at = self._position
            if at < head:
                piece = self._head[at : min(end, head)]
            elif at < file_end:
                self._file.seek(at - head)
                piece = self._file.read(min(end, file_end) - at)
                if not piece:
                    raise OSError(f"the upload file shrank while it was being sent ({at - head})")
            else:
                piece = self._tail[at - file_end : end - file_end]
            pieces.append(piece)
            self._position += len(piece)
        return b"".join(pieces)

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(_UPLOAD_BLOCK):
            yield block

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MultipartUpload:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
