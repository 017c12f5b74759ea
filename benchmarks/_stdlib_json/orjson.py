"""A stand-in for ``orjson`` built on the stdlib ``json`` module, for benchmarks only.

A worker whose ``PYTHONPATH`` starts with this directory imports it instead of the real
``orjson``, so the benchmarks can show what batchcore's hot paths would cost on the stdlib
alone: the evidence behind the core's dependency on orjson. It covers exactly what batchcore
uses: ``dumps`` (compact, UTF-8 bytes, ``OPT_APPEND_NEWLINE``), ``loads`` and
``JSONDecodeError``. The encoder is built once, as a careful stdlib user would.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["OPT_APPEND_NEWLINE", "OPT_INDENT_2", "JSONDecodeError", "dumps", "loads"]

OPT_APPEND_NEWLINE = 1 << 10
OPT_INDENT_2 = 1
JSONDecodeError = json.JSONDecodeError

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_indented = json.JSONEncoder(indent=2, ensure_ascii=False).encode


def dumps(value: Any, default: Any = None, option: int | None = None) -> bytes:
    text = (_indented if option and option & OPT_INDENT_2 else _compact)(value)
    if option and option & OPT_APPEND_NEWLINE:
        text += "\n"
    return text.encode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)
