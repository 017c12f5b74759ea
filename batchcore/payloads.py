"""Writing converted requests into batch files that respect a provider's limits.

Every provider that uploads a file (OpenAI JSONL) or posts one big JSON body (Anthropic) shares
this writer: it streams encoded requests to disk, starts a new file before a limit would be
crossed, keeps one file per group (one model and endpoint per OpenAI file), records each file's
custom_ids beside it (one JSON string per line), and refuses duplicate custom_ids. Memory stays
flat in the number of requests: file contents go to disk, and duplicate detection keeps a
fixed-size filter plus the few ids it cannot clear, checked exactly at the end. A file that
cannot be written (a full disk above all) raises :class:`~batchcore.errors.StoreError` naming
the place, like the job store beside which these files live.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Hashable
from pathlib import Path
from types import TracebackType
from typing import IO

import attrs
import orjson

from batchcore.errors import InvalidRequestError, StoreError
from batchcore.models import BatchLimits, BatchPayload

__all__ = ["JSONL", "JSON_ARRAY_FIELD", "PayloadFraming", "PayloadWriter"]


@attrs.frozen(kw_only=True)
class PayloadFraming:
    """How encoded requests are joined into one payload file."""

    header: bytes = b""
    separator: bytes = b""
    terminator: bytes = b"\n"
    footer: bytes = b""
    suffix: str = ".jsonl"


#: One JSON object per line (OpenAI, Mistral, Together, ...).
JSONL = PayloadFraming()


def JSON_ARRAY_FIELD(field: str) -> PayloadFraming:
    """One JSON object whose *field* is the array of requests.

    Anthropic's create body is ``{"requests": [...]}``: ``JSON_ARRAY_FIELD("requests")``.
    """
    return PayloadFraming(
        header=b'{"' + field.encode() + b'":[',
        separator=b",",
        terminator=b"",
        footer=b"]}",
        suffix=".json",
    )


#: Errors that mean "no more room": no space, a quota, or a file-size limit (RLIMIT_FSIZE).
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _write_error(error: OSError, where: Path | str) -> StoreError:
    """A failure to write payload files at *where*, in a user's words."""
    if error.errno in _DISK_FULL:
        problem = f"disk full at {where}: no room for the batch payload files"
    else:
        problem = f"cannot use the batch payload files at {where}"
    return StoreError(f"{problem} ({error.strerror or error})", where=str(where))


class _OpenFile:
    """One payload file being written. Encoded requests are buffered and written in large
    blocks; its custom_ids (at most ``max_requests`` of them) are written when it closes."""

    __slots__ = (
        "buffer",
        "count",
        "data",
        "endpoint",
        "ids",
        "ids_path",
        "model",
        "path",
        "sequence",
        "size",
        "tokens",
    )

    def __init__(self, path: Path, ids_path: Path, model: str | None, endpoint: str) -> None:
        self.path = path
        self.ids_path = ids_path
        self.model = model
        self.endpoint = endpoint
        try:
            self.data: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as error:
            raise _write_error(error, path.parent) from error
        self.buffer = bytearray()
        self.ids: list[str] = []
        self.count = 0
        self.tokens = 0
        self.size = 0
        self.sequence = 0

    def _write_buffer(self) -> None:
        if self.buffer:
            self.data.write(self.buffer)
            self.buffer.clear()

    def flush(self) -> None:
        try:
            self._write_buffer()
        except OSError as error:
            raise _write_error(error, self.path.parent) from error

    def close(self) -> None:
        try:
            with self.data:  # closed even when a write fails (abort() then deletes it)
                self._write_buffer()
            # One JSON string per line: every id round-trips exactly, whatever characters it
            # holds (a raw id with a line break in it once split into two ids here, and the
            # request was never joined to its batch).
            with open(self.ids_path, "wb") as ids:
                ids.write(b"".join(orjson.dumps(cid) + b"\n" for cid in self.ids))
        except OSError as error:
            raise _write_error(error, self.path.parent) from error
        self.ids = []


_FLUSH_BYTES = 1 << 20
_BLOOM_BITS = 1 << 24  # 2 MiB
_BLOOM_MASK = _BLOOM_BITS - 1


class PayloadWriter:
    """Streams encoded requests into limited payload files.

    Use as a context manager: leaving it with an exception deletes every file written so far.
    """

    def __init__(
        self,
        *,
        provider: str,
        limits: BatchLimits,
        framing: PayloadFraming = JSONL,
        workdir: Path | None = None,
        room_in_tokens: bool = False,
    ) -> None:
        """*room_in_tokens*: the ``room`` given to :meth:`add` counts estimated input tokens
        (a vendor queue capped in tokens), else requests."""
        self.provider = provider
        self.limits = limits
        self.framing = framing
        self.workdir = workdir
        self._open: dict[Hashable, _OpenFile] = {}
        self._closed: list[_OpenFile] = []
        self._started = 0
        # A fixed-size Bloom filter over custom_ids. A hit is only a *suspect*, confirmed or
        # cleared exactly against the id files at the end: the answer is exact while memory
        # stays constant (an exact set of a million ids would cost ~90 MB).
        self._bloom = bytearray(_BLOOM_BITS >> 3)
        self._suspects: set[str] = set()
        # Bytes a file costs besides its requests: the framing around them.
        self._overhead = len(framing.header) + len(framing.footer)
        # add() runs once per request: what it reads on every call, as plain attributes.
        self._max_requests = limits.max_requests
        self._max_bytes = limits.max_bytes
        self._separator = framing.separator
        self._terminator = framing.terminator
        self._room_in_tokens = room_in_tokens

    def add(
        self,
        custom_id: str,
        encoded: bytes,
        *,
        model: str | None,
        endpoint: str,
        group: Hashable,
        tokens: int = 0,
        room: int | None = None,
    ) -> None:
        """Append one encoded request to the open file of *group*; requests of different groups
        never share a file. *model* and *endpoint* are recorded on the payload, and *tokens*
        (its estimated input tokens) added to the payload's. *room*: the most of the vendor's
        queue one file of this group may hold (tokens or requests, see ``room_in_tokens``), so
        that each batch fits in the queue on its own; a request over it alone gets a file of
        its own."""
        separator = self._separator
        terminator = self._terminator
        cost = len(encoded) + len(terminator)
        current = self._open.get(group)
        if (
            current is None
            or current.count >= self._max_requests
            # size already counts the header and footer
            or current.size + len(separator) + cost > self._max_bytes
            or (
                room is not None
                and (current.tokens + tokens if self._room_in_tokens else current.count + 1) > room
            )
        ):
            if self._overhead + cost > self._max_bytes:
                raise InvalidRequestError(
                    f"request {custom_id!r} is {cost} bytes once encoded, more than the "
                    f"{self._max_bytes}-byte batch limit of {self.provider!r}",
                    custom_id=custom_id,
                    provider=self.provider,
                )
            if current is not None:
                self._close(group)
            current = self._open[group] = self._start(model, endpoint)
        elif separator:
            current.buffer += separator
            current.size += len(separator)
        buffer = current.buffer
        buffer += encoded
        if terminator:
            buffer += terminator
        current.ids.append(custom_id)
        current.size += cost
        current.count += 1
        current.tokens += tokens
        if len(buffer) > _FLUSH_BYTES:
            current.flush()
        h = hash(custom_id)
        i, j = h & _BLOOM_MASK, (h >> 32) & _BLOOM_MASK
        bloom = self._bloom
        bi, bj = 1 << (i & 7), 1 << (j & 7)
        i >>= 3
        j >>= 3
        if bloom[i] & bi and bloom[j] & bj:
            self._suspects.add(custom_id)
        bloom[i] |= bi
        bloom[j] |= bj

    def finish(self) -> list[BatchPayload]:
        """Close every file and return the payloads, in the order their files were started.

        Raises :class:`InvalidRequestError` (after deleting the files) if nothing was added or a
        custom_id was added twice.
        """
        for key in list(self._open):
            self._close(key)
        if not self._closed:
            raise InvalidRequestError(
                "no requests: a batch needs at least one request", provider=self.provider
            )
        try:
            duplicate = self._find_duplicate()
        except OSError as error:
            raise _write_error(error, self.workdir or tempfile.gettempdir()) from error
        if duplicate is not None:
            self.abort()
            raise InvalidRequestError(
                f"custom_id {duplicate!r} appears more than once; custom_ids must be unique",
                custom_id=duplicate,
                field="custom_id",
                provider=self.provider,
            )
        files = sorted(self._closed, key=lambda f: f.sequence)
        return [
            BatchPayload(
                provider=self.provider,
                model=f.model,
                endpoint=f.endpoint,
                request_count=f.count,
                size_bytes=f.size,
                path=f.path,
                ids_path=f.ids_path,
                tokens=f.tokens,
            )
            for f in files
        ]

    def abort(self) -> None:
        """Close and delete every file written (without writing more: the disk may be full)."""
        for f in [*self._open.values(), *self._closed]:
            with contextlib.suppress(OSError):
                f.data.close()
            f.path.unlink(missing_ok=True)
            f.ids_path.unlink(missing_ok=True)
        self._open.clear()
        self._closed.clear()

    def __enter__(self) -> PayloadWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()

    def _start(self, model: str | None, endpoint: str) -> _OpenFile:
        try:
            if self.workdir is not None:
                self.workdir.mkdir(parents=True, exist_ok=True)
            self._started += 1
            fd, name = tempfile.mkstemp(
                prefix=f"batchcore-{self.provider}-{self._started:05d}-",
                suffix=self.framing.suffix,
                dir=self.workdir,
            )
            os.close(fd)
        except OSError as error:
            raise _write_error(error, self.workdir or tempfile.gettempdir()) from error
        path = Path(name)
        opened = _OpenFile(path, path.with_name(path.name + ".ids"), model, endpoint)
        opened.sequence = self._started
        if self.framing.header:
            opened.buffer += self.framing.header
        opened.size = self._overhead
        return opened

    def _close(self, key: Hashable) -> None:
        opened = self._open.pop(key)
        self._closed.append(opened)  # first: a file whose close fails is still deleted by abort()
        if self.framing.footer:
            opened.buffer += self.framing.footer
        opened.close()

    def _find_duplicate(self) -> str | None:
        suspects = self._suspects
        if not suspects:
            return None
        seen: set[str] = set()
        for f in self._closed:
            with open(f.ids_path, "rb") as ids:
                for line in ids:
                    custom_id: str = orjson.loads(line)
                    if custom_id in suspects:
                        if custom_id in seen:
                            return custom_id
                        seen.add(custom_id)
        return None
