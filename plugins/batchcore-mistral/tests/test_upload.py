"""The streamed multipart upload body: the bytes a form of its fields and file makes, read in
any block size, rewound for a retry, never held whole in memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchcore_mistral._emulation import parse_form
from batchcore_mistral._upload import MultipartUpload


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / 'in "quoted".jsonl'
    path.write_bytes(b'{"custom_id": "a", "body": {}}\n' * 5000 + "é\r\n".encode())
    return path


def test_the_body_is_a_form_the_server_reads_back(payload: Path) -> None:
    with MultipartUpload(
        payload, fields={"purpose": "batch"}, content_type="application/jsonl"
    ) as form:
        body = form.read()
        assert len(body) == len(form)
        parts = {p.name: p for p in parse_form(body, form.content_type)}
    assert parts["purpose"].data == b"batch"
    assert parts["file"].data == payload.read_bytes()
    assert parts["file"].filename == payload.name
    assert parts["file"].content_type == "application/jsonl"


@pytest.mark.parametrize("block", [1, 7, 8192, 1 << 20])
def test_reading_in_blocks_gives_the_same_bytes(payload: Path, block: int) -> None:
    with MultipartUpload(payload, fields={"purpose": "batch"}) as form:
        whole = form.read()
        form.seek(0)
        pieces = []
        while chunk := form.read(block):
            assert len(chunk) <= block
            pieces.append(chunk)
        assert b"".join(pieces) == whole
        form.seek(0)
        assert b"".join(form) == whole


def test_seek_and_tell_for_a_retry(payload: Path) -> None:
    with MultipartUpload(payload, fields={"purpose": "batch"}) as form:
        form.read(100)
        assert form.tell() == 100
        assert form.seek(0) == 0
        first = form.read(50)
        assert form.seek(-10, os.SEEK_END) == len(form) - 10
        assert form.read().endswith(b"--\r\n")
        form.seek(0)
        assert form.read(50) == first
