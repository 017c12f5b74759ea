"""The upload's form body: streamed from disk with a known length, rewindable for a retry, and
read back exactly by a form parser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchcore_together._emulation import FormError, parse_form
from batchcore_together._upload import MultipartBody


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "batch.jsonl"
    # Bytes that look like form syntax must come through untouched.
    path.write_bytes(b'{"custom_id":"a"}\r\n--not-the-boundary\r\n' + bytes(range(256)) * 40)
    return path


def form(payload: Path) -> MultipartBody:
    return MultipartBody(
        {"purpose": "batch-api", "file_name": "batch.jsonl"},
        file_field="file",
        path=payload,
        filename='we"ird.jsonl',
        file_content_type="application/jsonl",
    )


def test_the_body_reads_back_exactly(payload: Path) -> None:
    with form(payload) as body:
        data = body.read()
        assert len(data) == len(body)
        parts = parse_form(data, body.content_type)
    assert parts["purpose"].text() == "batch-api"
    assert parts["file_name"].text() == "batch.jsonl"
    assert parts["purpose"].filename is None
    assert parts["file"].data == payload.read_bytes()
    assert parts["file"].filename == 'we"ird.jsonl'
    assert parts["file"].content_type == "application/jsonl"


def test_small_reads_and_rewinding_give_the_same_bytes(payload: Path) -> None:
    with form(payload) as body:
        whole = body.read()
        body.seek(0)
        assert body.tell() == 0
        pieces = []
        while chunk := body.read(97):
            pieces.append(chunk)
        assert b"".join(pieces) == whole
        body.seek(-10, os.SEEK_END)
        assert body.read() == whole[-10:]
        assert body.read() == b""


def test_each_body_has_its_own_boundary(payload: Path) -> None:
    with form(payload) as first, form(payload) as second:
        assert first.boundary != second.boundary
        assert first.boundary.encode() not in payload.read_bytes()


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"x", "text/plain"),
        (b"x", "multipart/form-data"),
        (b"--b\r\nno blank line--b--\r\n", "multipart/form-data; boundary=b"),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ],
)
def test_malformed_forms_are_refused(data: bytes, content_type: str) -> None:
    with pytest.raises(FormError):
        parse_form(data, content_type)
