"""Streaming JSONL reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchcore import InvalidRequestError
from batchcore.jsonl import iter_file_objects, iter_lines

lines_strategy = st.lists(
    st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\n", b"x").strip() or b"y"),
    max_size=30,
)


@given(
    lines=lines_strategy,
    cuts=st.lists(st.integers(0, 400), max_size=10),
    final_newline=st.booleans(),
)
def test_iter_lines_is_independent_of_chunk_boundaries(
    lines: list[bytes], cuts: list[int], final_newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert list(iter_lines(chunks)) == [line for line in lines if line.strip()]


def test_iter_file_objects_numbers_lines_and_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_file_objects(path)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_iter_file_objects_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InvalidRequestError, match="line 2: not valid JSON"):
        list(iter_file_objects(path))
