"""The schemas the emulator checks against (``_spec.json``): where each comes from, that they
are complete for what the emulator checks, and that they refuse what Together refuses."""

from __future__ import annotations

from typing import Any

from batchcore.testing.openapi import referenced_schemas
from batchcore_together._emulation import spec_document, spec_validator


def test_the_shipped_schemas_say_where_they_come_from() -> None:
    document = spec_document()
    sources = document["x-sources"]
    assert sources and all(set(item) == {"what", "source"} for item in sources)
    text = " ".join(item["source"] for item in sources)
    assert "docs.together.ai/reference/chat-completions" in text
    assert "together-py" in text
    assert "docs.together.ai/reference/batch-create" in text


def test_the_shipped_schemas_hold_what_their_roots_need_and_nothing_else(
    spec_schemas: dict[str, Any],
) -> None:
    roots = spec_document()["x-roots"]
    assert referenced_schemas(spec_schemas, roots) == sorted(spec_schemas)


def test_the_chat_schema_is_strict() -> None:
    validator = spec_validator()
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    assert not validator.problems("ChatCompletionRequest", body)
    for extra in ({"max_completion_tokens": 5}, {"user": "u"}, {"parallel_tool_calls": True}):
        assert validator.problems("ChatCompletionRequest", {**body, **extra})
    for message in (
        {"role": "developer", "content": "x"},
        {"role": "system", "content": [{"type": "text", "text": "x"}]},
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]},
        {"role": "assistant", "content": "x", "refusal": None},
    ):
        assert validator.problems("ChatCompletionRequest", {**body, "messages": [message]})


def test_tool_calls_need_no_index_and_tool_choice_no_arguments() -> None:
    validator = spec_validator()
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    assert not validator.problems("ChatCompletionRequest", body)
