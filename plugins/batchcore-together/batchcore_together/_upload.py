"""A ``multipart/form-data`` body that streams its file from disk.

Together's upload (``POST /files/upload``) takes the file as a form part. Building the body in
memory would cost as much memory as the payload (up to 100 MB); :class:`MultipartBody` is a
readable, seekable file object over the form's fields, the file on disk and the closing
boundary, with a known length, so ``requests`` sends it with a ``Content-Length`` in blocks and
the transport can rewind it to retry.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import IO

__all__ = ["MultipartBody"]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


class MultipartBody:
    """A form of text *fields* and one file part named *file_field* whose content is *path*.

    Use it as a context manager (or :meth:`close` it); :attr:`content_type` carries the
    boundary.
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        *,
        file_field: str,
        path: Path,
        filename: str,
        file_content_type: str = "application/octet-stream",
    ) -> None:
        self.boundary = "batchcore-" + secrets.token_hex(16)
        dash = f"--{self.boundary}\r\n"
        head = "".join(
            f'{dash}Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f'{dash}Content-Disposition: form-data; name="{_quoted(file_field)}"; '
            f'filename="{_quoted(filename)}"\r\nContent-Type: {file_content_type}\r\n\r\n'
        )
        self._head = head.encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._path = path
        self._file_size = os.path.getsize(path)
        self._file: IO[bytes] | None = None
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

    def read(self, size: int = -1) -> bytes:
        remaining = len(self) - self._position
        wanted = remaining if size is None or size < 0 else min(size, remaining)
        chunks: list[bytes] = []
        while wanted > 0:
            chunk = self._read_at(self._position, wanted)
            self._position += len(chunk)
            wanted -= len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_at(self, position: int, size: int) -> bytes:
        head, body_end = len(self._head), len(self._head) + self._file_size
        if position < head:
            return self._head[position : position + size]
        if position < body_end:
            if self._file is None:
                self._file = open(self._path, "rb")  # noqa: SIM115 - closed by close()
            self._file.seek(position - head)
            chunk = self._file.read(min(size, body_end - position))
            if not chunk:
                raise OSError(f"{self._path} shrank while it was being uploaded")
            return chunk
        start = position - body_end
        return self._tail[start : start + size]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MultipartBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
