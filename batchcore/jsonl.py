"""Reading JSON Lines, streamed: from byte chunks (HTTP bodies) or from files, line by line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from batchcore.errors import InvalidRequestError

__all__ = ["dumps", "iter_file_objects", "iter_line_batches", "iter_lines", "loads"]

dumps = orjson.dumps
loads = orjson.loads


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Complete non-blank lines from a stream of byte chunks, without the newline.

    Memory holds one chunk plus one partial line, whatever the stream's length.
    """
    for lines in iter_line_batches(chunks):
        yield from lines


def iter_line_batches(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """:func:`iter_lines`, a list per chunk: for a reader of many short lines, which flattens
    them with :func:`itertools.chain.from_iterable` instead of resuming a generator per line."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        if lines:
            yield [line for line in lines if line.strip()]
    if pending.strip():
        yield [pending]


def iter_file_objects(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, object)`` for each non-blank line of a JSONL file (1-based numbers).

    Raises :class:`InvalidRequestError` naming the file and line of the first bad line.
    """
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequestError(
                    f"{path}, line {number}: not valid JSON ({exc})", field=f"line {number}"
                ) from None
