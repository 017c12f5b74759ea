"""A ``multipart/form-data`` upload body that streams its file from disk.

``POST /v1/files`` takes the batch input file as a form: the fields, then the file. The body is
built as a read-only stream over three pieces (the form's head, the file, its tail) so a file
of hundreds of megabytes is sent in blocks, never held in memory; it knows its length (the
request gets a Content-Length) and can be rewound (a retried upload sends it again).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

__all__ = ["MultipartUpload"]

_BLOCK = 1 << 20


def _quoted(value: str) -> str:
    # Form field names and file names travel in a quoted header parameter.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartUpload:
    """The form *fields* and the file at *path* (sent as *filename*, of *content_type*) as one
    ``multipart/form-data`` body. Use it as a context manager (it holds the file open); pass it
    as the request's data and :attr:`content_type` as its Content-Type."""

    def __init__(
        self,
        path: Path,
        *,
        fields: Mapping[str, str],
        file_field: str = "file",
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        self.boundary = "batchcore-" + secrets.token_hex(16)
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

    def read(self, size: int = -1) -> bytes:
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
        while block := self.read(_BLOCK):
            yield block

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MultipartUpload:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
