"""Reading ``multipart/form-data`` request bodies (RFC 7578), for emulators' file uploads.

Vendors take uploads (``POST /v1/files``) as multipart forms. An emulator's
:class:`~batchcore.testing.LoopbackServer` hands it the whole body as bytes; this module splits it
into parts without copying them::

    parts = parse_multipart(request.body, request.header("content-type") or "")
    form = {part.name: part for part in parts}
    purpose = form["purpose"].text()
    path.write_bytes(form["file"].data)

Malformed bodies raise :class:`MultipartError` (a ``ValueError``) saying what is wrong, so the
emulator can answer 400 the way the API would.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

import attrs

__all__ = ["FormPart", "MultipartError", "boundary_of", "parse_multipart"]


class MultipartError(ValueError):
    """The body is not a well-formed ``multipart/form-data`` body."""


@attrs.frozen(kw_only=True)
class FormPart:
    """One field of a form. ``data`` is a view into the request body (no copy)."""

    name: str
    filename: str | None
    content_type: str | None
    headers: Mapping[str, str]  # lower-cased names
    data: memoryview = attrs.field(repr=False, eq=False)

    @property
    def size(self) -> int:
        return self.data.nbytes

    def text(self, encoding: str = "utf-8") -> str:
        """The content as text (form fields that are not files)."""
        return bytes(self.data).decode(encoding)


# A header parameter: name=token or name="quoted string" (with backslash escapes).
_PARAM = re.compile(
    r';\s*(?P<name>[A-Za-z0-9_.*-]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^;\s]*))'
)
_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")


def _params(value: str) -> tuple[str, dict[str, str]]:
    """``'form-data; name="a"'`` -> ``("form-data", {"name": "a"})`` (names lower-cased)."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for found in _PARAM.finditer(";" + rest):
        quoted = found.group("quoted")
        text = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else found.group("token") or ""
        params[found.group("name").lower()] = text
    # RFC 5987 ``filename*=utf-8''na%C3%AFve.jsonl`` wins over a plain ``filename``.
    extended = params.get("filename*")
    if extended is not None:
        charset, _, encoded = extended.partition("''")
        if encoded:
            params["filename"] = urllib.parse.unquote(encoded, encoding=charset or "utf-8")
    return head.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type header value."""
    kind, params = _params(content_type or "")
    if kind != "multipart/form-data":
        raise MultipartError(
            f"expected a multipart/form-data body, got {kind or 'no'} content type"
        )
    boundary = params.get("boundary")
    if not boundary or not _BOUNDARY_CHARS.match(boundary) or boundary.endswith(" "):
        raise MultipartError("the multipart/form-data content type has no valid boundary")
    return boundary.encode("ascii")


def _headers(block: memoryview) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in bytes(block).split(b"\r\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(b":")
        if not sep or not name.strip():
            raise MultipartError(f"malformed part header line {raw[:80]!r}")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    return headers


def parse_multipart(body: bytes | bytearray | memoryview, content_type: str) -> list[FormPart]:
    """Split a ``multipart/form-data`` *body* into its parts, in order.

    *content_type* is the request's Content-Type header (it carries the boundary). Every part
    must have a ``Content-Disposition: form-data`` header with a ``name``.
    """
    delimiter = b"--" + boundary_of(content_type)
    raw = body if isinstance(body, (bytes, bytearray)) else bytes(body)
    view = memoryview(raw)
    # The first delimiter starts the body or follows a preamble line.
    if raw.startswith(delimiter):
        position = len(delimiter)
    else:
        found = raw.find(b"\r\n" + delimiter)
        if found < 0:
            raise MultipartError("the body does not contain the boundary")
        position = found + 2 + len(delimiter)
    parts: list[FormPart] = []
    separator = b"\r\n" + delimiter
    while True:
        if raw[position : position + 2] == b"--":
            break  # the close delimiter
        line_end = raw.find(b"\r\n", position)
        if line_end < 0 or raw[position:line_end].strip(b" \t"):
            raise MultipartError("a boundary line is not followed by a line break")
        header_end = raw.find(b"\r\n\r\n", line_end)
        if header_end < 0:
            raise MultipartError("a part's headers are not terminated by a blank line")
        headers = _headers(view[line_end + 2 : header_end])
        data_start = header_end + 4
        data_end = raw.find(separator, data_start)
        if data_end < 0:
            raise MultipartError("the body ends before the closing boundary")
        disposition, params = _params(headers.get("content-disposition", ""))
        if disposition != "form-data" or not params.get("name"):
            raise MultipartError("a part lacks a 'Content-Disposition: form-data; name=...' header")
        parts.append(
            FormPart(
                name=params["name"],
                filename=params.get("filename"),
                content_type=headers.get("content-type"),
                headers=headers,
                data=view[data_start:data_end],
            )
        )
        position = data_end + len(separator)
    return parts
