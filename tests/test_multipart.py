"""batchcore.testing.multipart: parsing the form bodies real HTTP clients send to emulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from batchcore.http import MultipartUpload
from batchcore.testing.multipart import MultipartError, boundary_of, parse_multipart


def _encoded(files: dict[str, Any], data: dict[str, str]) -> tuple[bytes, str]:
    request = requests.Request("POST", "http://127.0.0.1/upload", files=files, data=data).prepare()
    assert isinstance(request.body, bytes)
    return request.body, request.headers["content-type"]


def test_parses_what_an_http_client_sends() -> None:
    content = b'{"custom_id": "a"}\r\n--not-a-boundary\r\n\x00\xff' * 50
    body, content_type = _encoded(
        {"file": ("input.jsonl", content, "application/jsonl")}, {"purpose": "batch"}
    )
    parts = {part.name: part for part in parse_multipart(body, content_type)}
    assert set(parts) == {"file", "purpose"}
    assert parts["purpose"].text() == "batch"
    assert parts["purpose"].filename is None
    upload = parts["file"]
    assert (upload.filename, upload.content_type) == ("input.jsonl", "application/jsonl")
    assert bytes(upload.data) == content
    assert upload.size == len(content)


def test_parts_are_views_not_copies() -> None:
    body, content_type = _encoded({"file": ("a.jsonl", b"x" * 1000)}, {})
    [part] = parse_multipart(body, content_type)
    assert part.data.obj is body


def test_quoted_and_extended_filenames() -> None:
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="f"; filename="say \\"hi\\".jsonl"\r\n\r\n'
        b"one\r\n"
        b'--b0\r\nContent-Disposition: form-data; name=g; filename="x"; '
        b"filename*=utf-8''na%C3%AFve.jsonl\r\n\r\ntwo\r\n--b0--\r\n"
    )
    first, second = parse_multipart(body, "multipart/form-data; boundary=b0")
    assert first.filename == 'say "hi".jsonl'
    assert second.name == "g"
    assert second.filename == "naïve.jsonl"
    assert bytes(second.data) == b"two"


def test_preamble_and_empty_parts() -> None:
    body = b'preamble text\r\n--zz\r\nContent-Disposition: form-data; name="e"\r\n\r\n\r\n--zz--'
    [part] = parse_multipart(body, 'multipart/form-data; boundary="zz"')
    assert part.size == 0


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/json", "expected a multipart/form-data body"),
        ("multipart/form-data", "no valid boundary"),
        ("multipart/form-data; boundary=", "no valid boundary"),
    ],
)
def test_bad_content_types(content_type: str, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        boundary_of(content_type)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary here", "does not contain the boundary"),
        (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished', "ends before"),
        (b'--b\r\nContent-Disposition: form-data; name="a"', "not terminated by a blank line"),
        (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "lacks a 'Content-Disposition"),
        (b"--b\r\nno colon\r\n\r\nx\r\n--b--", "malformed part header"),
        (b"--bjunk\r\n\r\nx\r\n--b--", "not followed by a line break"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, "multipart/form-data; boundary=b")


def test_it_reads_back_the_core_upload_body(tmp_path: Path) -> None:
    path = tmp_path / 'in "quoted".jsonl'
    path.write_bytes(b'{"custom_id": "a"}\r\n--batchcore-not-the-boundary\r\n' * 300 + "é".encode())
    with MultipartUpload(
        path, fields={"purpose": "batch"}, content_type="application/jsonl"
    ) as form:
        body = form.read()
        parts = {part.name: part for part in parse_multipart(body, form.content_type)}
    assert parts["purpose"].text() == "batch"
    assert bytes(parts["file"].data) == path.read_bytes()
    assert parts["file"].filename == path.name
    assert parts["file"].content_type == "application/jsonl"


def test_multipart_error_is_a_value_error() -> None:
    assert issubclass(MultipartError, ValueError)
