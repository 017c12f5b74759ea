"""The one wire module of the Anthropic provider: pure conversions in both directions.

Unified request (OpenAI chat-completions shape) -> Messages API ``params``:

* ``system``/``developer`` messages before the conversation -> ``system``;
* ``user``/``assistant`` turns, consecutive turns of one role merged into one (``tool`` messages
  become user turns of ``tool_result`` blocks, so one assistant turn's results travel together);
* content parts: ``text``, ``image_url`` (data URL -> base64 source, http(s) -> url source),
  ``file`` with PDF ``file_data`` -> ``document``; parts already in Anthropic's form pass as-is;
* assistant ``tool_calls`` -> ``tool_use`` blocks; ``tools``, ``tool_choice`` and
  ``parallel_tool_calls``;
* ``cache_control`` on a content part, or on a message (then on the last block it becomes);
* ``stop`` -> ``stop_sequences``; ``user`` / ``safety_identifier`` -> ``metadata.user_id``;
  ``max_completion_tokens`` as ``max_tokens`` (default and maximum per model:
  :mod:`batchcore_anthropic._models`); ``response_format`` json_schema ->
  ``output_config.format``; ``prompt_cache_key`` and ``store: false`` change nothing here;
* ``provider_params["anthropic"]`` merged last, unchanged.

:data:`REQUEST_EXTENSIONS` declares what of this goes beyond OpenAI's request format, for the
core's check.

Anything that has no faithful Anthropic spelling raises :class:`InvalidRequestError` naming the
custom_id and the field: a silently dropped parameter would change results.

Anthropic's answers -> batchcore DTOs: a ``message_batch`` object -> :class:`BatchStatus`
(:func:`batch_status`), one line of a results file -> :class:`BatchResult`
(:func:`batch_result`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeGuard, overload

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    FrozenDict,
    InvalidRequestError,
    QueueFullError,
    RateLimitError,
    RequestExtensions,
    ResultError,
    ResultStatus,
    Usage,
    parse_timestamp,
)
from batchcore_anthropic._models import model_facts

__all__ = [
    "ERROR_STATUS",
    "MESSAGES_PARAMS",
    "NATIVE_BLOCK_TYPES",
    "PROVIDER",
    "REQUEST_EXTENSIONS",
    "ResultErrorFactory",
    "batch_created_at",
    "batch_result",
    "batch_state",
    "batch_status",
    "encode_item",
    "message_params",
    "queue_full",
    "request_total",
]

PROVIDER = "anthropic"
log = logging.getLogger("batchcore_anthropic")

#: Top-level fields of the Messages API create body (``CreateMessageParams`` in the spec).
MESSAGES_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)

#: Content block types of Anthropic's request format (``InputContentBlock`` in the spec); a part
#: of one of these types (other than ``text``, which both formats share) passes unchanged.
NATIVE_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mid_conv_system",
    }
)

#: What the conversion takes beyond OpenAI's request format (the core refuses the rest):
#: ``cache_control`` on messages and content parts, ``citations`` on text parts, images and
#: PDFs in tool results, and content parts already in Anthropic's form.
REQUEST_EXTENSIONS = RequestExtensions(
    message_keys=frozenset({"cache_control"}),
    part_keys=frozenset({"cache_control", "citations"}),
    part_types=(NATIVE_BLOCK_TYPES - {"text"}) | {"image_url", "file"},
)

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:([^;,]+)(;[^,]*)?,(.*)$", re.DOTALL)
_BLOCK_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_NATIVE_HINT = "pass Anthropic-only parameters in provider_params['anthropic']"

#: OpenAI parameters that are accepted only at the value that changes nothing.
_NEUTRAL = {
    "n": 1,
    "stream": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
}


class _Bad(Exception):
    """A conversion problem at *field*; turned into InvalidRequestError with the custom_id."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _invalid(custom_id: str, field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"request {custom_id!r}: {field}: {message}",
        custom_id=custom_id,
        field=field,
        provider=PROVIDER,
    )


# -- unified request -> Messages API params ----------------------------------------------------


def message_params(
    request: BatchRequest, *, default_max_tokens: int | None = None
) -> dict[str, Any]:
    """The Messages API body for *request* (``model``, ``messages``, ``max_tokens``, ...).

    ``max_tokens`` is required by Anthropic: it comes from the request (``max_tokens`` or
    ``max_completion_tokens``, or ``provider_params``), else *default_max_tokens*, else the
    model's maximum output (OpenAI's meaning of leaving it out: as much as the model can
    write), capped at that maximum; for a model :mod:`~batchcore_anthropic._models` does not
    know, without a default, this raises. Raises :class:`InvalidRequestError` naming the
    custom_id and field for anything that cannot be converted.
    """
    try:
        return _message_params(request, default_max_tokens)
    except _Bad as bad:
        raise _invalid(request.custom_id, bad.field, bad.message) from None


def encode_item(custom_id: str, params: Mapping[str, Any]) -> bytes:
    """One element of the create body's ``requests`` array."""
    return orjson.dumps({"custom_id": custom_id, "params": params})


def _message_params(request: BatchRequest, default_max_tokens: int | None) -> dict[str, Any]:
    if request.endpoint != CHAT_COMPLETIONS:
        raise _Bad(
            "endpoint",
            f"Anthropic's Message Batches only run chat requests ({CHAT_COMPLETIONS}), "
            f"not {request.endpoint}",
        )
    out: dict[str, Any] = {"model": request.model}
    messages, params = request.body_parts()  # read, never changed: the output is built anew
    plain = _plain_messages(messages)
    if plain is not None:
        system, turns = plain
        if system is not None:
            out["system"] = system
        out["messages"] = turns  # serialised as they are: no copy
    else:
        blocks, converted = _convert_messages(messages)
        if blocks is not None:
            out["system"] = blocks
        out["messages"] = converted
    if params and not _copy_plain_params(params, out):
        _convert_params(params, out)
    limit = _max_output(request.model)
    if request.provider_params:
        native = request.provider_params.get(PROVIDER)
        if native is not None:
            _merge_native(native, out)
    max_tokens = out.get("max_tokens")
    if max_tokens is None:
        if default_max_tokens is not None:
            max_tokens = default_max_tokens if limit is None else min(default_max_tokens, limit)
        elif limit is not None:
            max_tokens = limit
        else:
            raise _Bad(
                "params.max_tokens",
                f"Anthropic requires max_tokens and model {request.model!r} has no known "
                "maximum to default to: set it (or max_completion_tokens) on the request, or "
                "configure the provider's default_max_tokens",
            )
        out["max_tokens"] = max_tokens
    if max_tokens.__class__ is not int or max_tokens < 1:
        raise _Bad("params.max_tokens", f"must be an integer >= 1, got {max_tokens!r}")
    if out.get("stream"):
        raise _Bad("params.stream", "streaming is not available inside a batch")
    return out


def _max_output(model: str) -> int | None:
    """The model's maximum output (:mod:`batchcore_anthropic._models`), or None when unknown.
    What the model refuses is checked before conversion (``model_problem``, called by the
    provider's ``check_request``)."""
    facts = model_facts(model)
    return None if facts is None else facts.max_output_tokens


def _copy_plain_params(params: Mapping[str, Any], out: dict[str, Any]) -> bool:
    """Copy *params* into *out* when they are only the parameters both APIs spell alike
    (``max_tokens``, ``temperature``, ``top_p``) with values Anthropic accepts; False, copying
    nothing, for anything else (which :func:`_convert_params` converts or refuses)."""
    for key, value in params.items():
        if key == "max_tokens":
            if value.__class__ is not int or value < 1:
                return False
        elif key == "temperature" or key == "top_p":
            if (value.__class__ is not float and value.__class__ is not int) or not 0 <= value <= 1:
                return False
        else:
            return False
    out.update(params)
    return True


def _plain_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | None, Sequence[Mapping[str, Any]]] | None:
    """``(system, turns)`` when the messages are valid Anthropic input as they are (the common
    case: at most one leading system prompt of non-empty text, then alternating user/assistant
    turns of non-empty text), so the hot path copies nothing; None when they need converting."""
    if not messages:
        return None
    system = None
    turns = messages
    first = messages[0]
    if (first.__class__ is FrozenDict or first.__class__ is dict) and len(first) == 2:
        role = first.get("role")
        if role == "system" or role == "developer":
            system = first.get("content")
            if system.__class__ is not str or not system:
                return None
            turns = messages[1:]
            if not turns:
                return None
    previous = None
    for message in turns:
        cls = message.__class__
        if (cls is not FrozenDict and cls is not dict) or len(message) != 2:
            return None
        role = message.get("role")
        content = message.get("content")
        if (
            role == previous
            or (role != "user" and role != "assistant")
            or content.__class__ is not str
            or not content
        ):
            return None
        previous = role
    return system, turns


# -- messages


def _convert_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        role = message.get("role")
        if role == "system" or role == "developer":
            _check_keys(message, field, {"role", "content", "cache_control"}, role)
            if turns:
                raise _Bad(
                    f"{field}.role",
                    f"a {role} message after the conversation started has no Anthropic "
                    "equivalent (Anthropic takes one system prompt, before all turns)",
                )
            content = message.get("content")
            if isinstance(content, str):
                blocks = [{"type": "text", "text": content}] if content else []
            else:
                blocks = _text_parts(content, f"{field}.content")
            system.extend(_mark_cache(blocks, message, field))
        elif role == "user":
            _check_keys(message, field, {"role", "content", "cache_control"}, role)
            content = _user_content(message.get("content"), f"{field}.content")
            _append_turn(turns, "user", _mark_cache(content, message, field))
        elif role == "assistant":
            _check_keys(
                message,
                field,
                {"role", "content", "tool_calls", "refusal", "audio", "cache_control"},
                role,
            )
            content = _assistant_content(message, field)
            _append_turn(turns, "assistant", _mark_cache(content, message, field))
        elif role == "tool":
            _check_keys(message, field, {"role", "content", "tool_call_id", "cache_control"}, role)
            _append_turn(turns, "user", _mark_cache([_tool_result(message, field)], message, field))
        else:
            raise _Bad(
                f"{field}.role",
                f"role {role!r} has no Anthropic equivalent (use 'tool' messages for tool results)",
            )
    if not turns:
        raise _Bad("messages", "Anthropic needs at least one user or assistant message")
    if not system:
        return None, turns
    if len(system) == 1 and len(system[0]) == 2:  # one plain text block: the string form
        return str(system[0]["text"]), turns
    return system, turns


#: Blocks that cannot carry a cache breakpoint themselves (the API caches them with the turn).
_UNCACHEABLE = frozenset({"thinking", "redacted_thinking"})


@overload
def _mark_cache(
    content: list[dict[str, Any]], message: Mapping[str, Any], field: str
) -> list[dict[str, Any]]: ...


@overload
def _mark_cache(
    content: str | list[dict[str, Any]], message: Mapping[str, Any], field: str
) -> str | list[dict[str, Any]]: ...


def _mark_cache(
    content: str | list[dict[str, Any]], message: Mapping[str, Any], field: str
) -> str | list[dict[str, Any]]:
    """A message's ``cache_control`` (an extension of the unified request) set on the last
    block the message became: Anthropic caches the prompt up to and including a marked block,
    so marking a message's last block caches everything up to the end of that message."""
    marker = message.get("cache_control")
    if marker is None:
        return content
    where = f"{field}.cache_control"
    if not isinstance(marker, Mapping):
        raise _Bad(where, "must be an object, e.g. {'type': 'ephemeral'}")
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else content
    )
    if not blocks:
        raise _Bad(where, "marks a message without content")
    last = blocks[-1]
    kind = last.get("type")
    if kind in _UNCACHEABLE:
        raise _Bad(where, f"the message ends with a {kind} block, which cannot be cached")
    if last.get("cache_control", marker) != marker:
        raise _Bad(where, "differs from the cache_control of the message's last content part")
    blocks[-1] = {**last, "cache_control": marker}
    return blocks


def _check_keys(message: Mapping[str, Any], field: str, allowed: set[str], role: str) -> None:
    for key, value in message.items():
        if key in allowed:
            continue
        if value is None:
            continue
        if key == "name":
            raise _Bad(f"{field}.name", "Anthropic messages have no participant names")
        raise _Bad(f"{field}.{key}", f"{key!r} is not supported on a {role} message")


def _append_turn(
    turns: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]
) -> None:
    if turns and turns[-1]["role"] == role:
        # The API merges consecutive same-role turns itself; merging here keeps tool results
        # of one assistant turn in one user turn, where the API requires them.
        previous = turns[-1]
        blocks = previous["content"]
        if isinstance(blocks, str):
            blocks = previous["content"] = [{"type": "text", "text": blocks}] if blocks else []
        if isinstance(content, str):
            if content:
                blocks.append({"type": "text", "text": content})
        else:
            blocks.extend(content)
        return
    turns.append({"role": role, "content": content})


def _user_content(content: Any, field: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        if not content:
            raise _Bad(field, "is empty; Anthropic rejects empty text")
        return content
    if not isinstance(content, list) or not content:
        raise _Bad(field, "must be a non-empty string or a non-empty list of content parts")
    return [_part(part, f"{field}[{i}]", media=True) for i, part in enumerate(content)]


def _text_parts(content: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise _Bad(field, "must be a string or a list of text parts")
    return [
        _part(part, f"{field}[{i}]", media=False, native=False) for i, part in enumerate(content)
    ]


def _part(part: Any, field: str, *, media: bool, native: bool = True) -> dict[str, Any]:
    """One content part. *media*: images and files are allowed (user turns, tool results);
    *native*: parts already in Anthropic's form pass unchanged (not in the system prompt)."""
    if not isinstance(part, Mapping):
        raise _Bad(field, "a content part must be an object")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str) or not text:
            raise _Bad(f"{field}.text", "must be a non-empty string")
        block: dict[str, Any] = {"type": "text", "text": text}
        for key, value in part.items():
            if key in ("cache_control", "citations"):
                block[key] = value
            elif key not in ("type", "text"):
                raise _Bad(f"{field}.{key}", f"{key!r} is not supported on a text part")
        return block
    if kind == "image_url" and media:
        return _image(part, field)
    if kind == "file" and media:
        return _file(part, field)
    if native and isinstance(kind, str) and kind in NATIVE_BLOCK_TYPES:
        return dict(part)
    raise _Bad(f"{field}.type", f"content part type {kind!r} has no Anthropic equivalent here")


def _image(part: Mapping[str, Any], field: str) -> dict[str, Any]:
    spec = part.get("image_url")
    url: Any
    detail: Any
    if isinstance(spec, str):
        url, detail = spec, None
    elif isinstance(spec, Mapping):
        url, detail = spec.get("url"), spec.get("detail")
        extra = set(spec) - {"url", "detail"}
        if extra:
            raise _Bad(f"{field}.image_url.{sorted(extra)[0]}", "is not supported")
    else:
        raise _Bad(f"{field}.image_url", "must be an object with a url")
    if detail not in (None, "auto"):
        raise _Bad(
            f"{field}.image_url.detail",
            f"Anthropic has no image detail setting; remove detail={detail!r} (or use 'auto')",
        )
    extra = set(part) - {"type", "image_url", "cache_control"}
    if extra:
        raise _Bad(f"{field}.{sorted(extra)[0]}", "is not supported on an image part")
    if not isinstance(url, str) or not url:
        raise _Bad(f"{field}.image_url.url", "must be a non-empty string")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{field}.image_url.url")
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in _IMAGE_TYPES:
            raise _Bad(
                f"{field}.image_url.url",
                f"image type {media_type!r} is not one Anthropic accepts "
                f"({', '.join(sorted(_IMAGE_TYPES))})",
            )
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _Bad(f"{field}.image_url.url", "must be a data: URL or an http(s) URL")
    block = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _file(part: Mapping[str, Any], field: str) -> dict[str, Any]:
    spec = part.get("file")
    if not isinstance(spec, Mapping):
        raise _Bad(f"{field}.file", "must be an object")
    if spec.get("file_id") is not None:
        raise _Bad(
            f"{field}.file.file_id",
            "OpenAI file ids do not exist at Anthropic; inline the file as file_data",
        )
    data_url = spec.get("file_data")
    if not isinstance(data_url, str):
        raise _Bad(f"{field}.file.file_data", "must be a data: URL")
    media_type, data = _data_url(data_url, f"{field}.file.file_data")
    if media_type != "application/pdf":
        raise _Bad(
            f"{field}.file.file_data", f"Anthropic documents must be PDF, got {media_type!r}"
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    filename = spec.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename[:500]
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _data_url(url: str, field: str) -> tuple[str, str]:
    found = _DATA_URL.match(url)
    if found is None or ";base64" not in (found.group(2) or ""):
        raise _Bad(field, "a data: URL must be base64-encoded (data:<type>;base64,<data>)")
    data = found.group(3)
    if not data:
        raise _Bad(field, "the data: URL holds no data")
    return found.group(1).strip().lower(), data


def _assistant_content(message: Mapping[str, Any], field: str) -> str | list[dict[str, Any]]:
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    refusal = message.get("refusal")
    if refusal is not None:
        raise _Bad(f"{field}.refusal", "an assistant refusal has no Anthropic equivalent")
    if message.get("audio") is not None:
        raise _Bad(f"{field}.audio", "audio has no Anthropic equivalent")
    blocks: list[dict[str, Any]]
    if content is None or content == "":
        blocks = []
    elif isinstance(content, str):
        if not tool_calls:
            return content
        blocks = [{"type": "text", "text": content}]
    elif isinstance(content, list):
        blocks = [
            _part(part, f"{field}.content[{i}]", media=False) for i, part in enumerate(content)
        ]
    else:
        raise _Bad(f"{field}.content", "must be a string, a list of content parts or null")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise _Bad(f"{field}.tool_calls", "must be a list")
        blocks.extend(
            _tool_use(call, f"{field}.tool_calls[{i}]") for i, call in enumerate(tool_calls)
        )
    if not blocks:
        raise _Bad(f"{field}.content", "an assistant message needs content or tool_calls")
    return blocks


def _tool_use(call: Any, field: str) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise _Bad(field, "must be an object")
    if call.get("type", "function") != "function":
        raise _Bad(f"{field}.type", f"tool call type {call.get('type')!r} is not 'function'")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not _BLOCK_ID.match(call_id):
        raise _Bad(f"{field}.id", "must be a string of letters, digits, '_' and '-'")
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _Bad(f"{field}.function", "must be an object with a name")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        tool_input: Any = {}
    elif isinstance(arguments, str):
        try:
            tool_input = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise _Bad(f"{field}.function.arguments", "is not valid JSON") from None
    else:
        tool_input = arguments
    if not isinstance(tool_input, dict):
        raise _Bad(f"{field}.function.arguments", "must encode a JSON object")
    return {"type": "tool_use", "id": call_id, "name": function["name"], "input": tool_input}


def _tool_result(message: Mapping[str, Any], field: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not _BLOCK_ID.match(call_id):
        raise _Bad(f"{field}.tool_call_id", "must be a string of letters, digits, '_' and '-'")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        block["content"] = [
            _part(part, f"{field}.content[{i}]", media=True) for i, part in enumerate(content)
        ]
    elif content is not None:
        raise _Bad(f"{field}.content", "must be a string or a list of content parts")
    return block


# -- generation parameters


def _convert_params(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    tool_choice: Any = None
    parallel = True
    max_completion_tokens = None
    for key, value in params.items():
        if value is None:
            continue  # OpenAI's null means "the default"
        handler = _PARAMS.get(key)
        if handler is not None:
            handler(value, out)
        elif key == "tool_choice":
            tool_choice = value
        elif key == "max_completion_tokens":
            max_completion_tokens = _positive_int("params.max_completion_tokens", value)
        elif key == "parallel_tool_calls":
            if not isinstance(value, bool):
                raise _Bad("params.parallel_tool_calls", "must be a boolean")
            parallel = value
        elif key in _NEUTRAL:
            if not _is_neutral(value, _NEUTRAL[key]):
                raise _Bad(
                    f"params.{key}",
                    f"Anthropic has no equivalent of {key}={value!r} (only {_NEUTRAL[key]!r} "
                    "is accepted)",
                )
        elif key == "stream_options" or key == "top_logprobs":
            raise _Bad(f"params.{key}", f"Anthropic has no equivalent of {key}")
        elif key in MESSAGES_PARAMS:
            raise _Bad(f"params.{key}", f"{key!r} is an Anthropic field; {_NATIVE_HINT}")
        else:
            raise _Bad(
                f"params.{key}",
                f"Anthropic has no equivalent of the parameter {key!r}; remove it or "
                f"{_NATIVE_HINT}",
            )
    if (
        max_completion_tokens is not None
        and out.setdefault("max_tokens", max_completion_tokens) != max_completion_tokens
    ):
        raise _Bad("params.max_completion_tokens", "differs from max_tokens; set only one of them")
    choice = _tool_choice(tool_choice, has_tools="tools" in out)
    if not parallel and "tools" in out:
        if choice is None:
            choice = {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _set_max_tokens(value: Any, out: dict[str, Any]) -> None:
    out["max_tokens"] = _positive_int("params.max_tokens", value)


def _is_neutral(value: Any, neutral: Any) -> bool:
    if isinstance(neutral, bool) or isinstance(value, bool):
        return value is neutral
    return bool(isinstance(value, (int, float)) and value == neutral)


def _positive_int(field: str, value: Any) -> int:
    if value.__class__ is not int or value < 1:
        raise _Bad(field, f"must be an integer >= 1, got {value!r}")
    return int(value)


def _unit_number(name: str) -> Callable[[Any, dict[str, Any]], None]:
    def convert(value: Any, out: dict[str, Any]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"params.{name}", "must be a number")
        if not 0 <= value <= 1:
            raise _Bad(
                f"params.{name}",
                f"Anthropic accepts {name} between 0 and 1, got {value!r} (rescaling would "
                "change results)",
            )
        out[name] = value

    return convert


def _set_stop(value: Any, out: dict[str, Any]) -> None:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _Bad("params.stop", "must be a non-empty string or a list of them")
    if stops:
        out["stop_sequences"] = list(stops)


def _user_id(field: str, *, limit: int = 512) -> Callable[[Any, dict[str, Any]], None]:
    """``user``, ``safety_identifier`` and ``metadata.user_id`` all identify the end user: all
    become Anthropic's ``metadata.user_id``, so they must agree."""

    def convert(value: Any, out: dict[str, Any]) -> None:
        if not isinstance(value, str) or len(value) > limit:
            raise _Bad(field, f"must be a string of at most {limit} characters")
        metadata = out.setdefault("metadata", {})
        known = metadata.get("user_id", value)
        if known != value:
            raise _Bad(
                field,
                f"{value!r} differs from the end-user id {known!r} given in the same request "
                "(user, safety_identifier and metadata.user_id all become Anthropic's "
                "metadata.user_id); set one of them",
            )
        metadata["user_id"] = value

    return convert


_set_user = _user_id("params.user")
_set_safety_identifier = _user_id("params.safety_identifier")
_set_metadata_user_id = _user_id("params.metadata.user_id")


def _set_store(value: Any, out: dict[str, Any]) -> None:
    if value is True:
        raise _Bad(
            "params.store",
            "Anthropic keeps no completions for you (OpenAI's store feeds its evals and "
            "distillation products); remove store or set it to false",
        )
    if value is not False:
        raise _Bad("params.store", f"must be a boolean, got {value!r}")


def _ignore_prompt_cache_key(value: Any, out: dict[str, Any]) -> None:
    # OpenAI's routing hint for its automatic prompt cache: Anthropic caches at cache_control
    # breakpoints, matched by exact prefix, with no key to route by. Dropping the hint changes
    # neither the answer nor what is cached or billed here.
    if not isinstance(value, str):
        raise _Bad("params.prompt_cache_key", f"must be a string, got {value!r}")


def _set_metadata(value: Any, out: dict[str, Any]) -> None:
    if not isinstance(value, Mapping):
        raise _Bad("params.metadata", "must be an object")
    for key, item in value.items():
        if key != "user_id":
            raise _Bad(
                f"params.metadata.{key}",
                "Anthropic metadata holds only user_id (OpenAI's free-form metadata has no "
                "equivalent)",
            )
        _set_metadata_user_id(item, out)


def _set_tools(value: Any, out: dict[str, Any]) -> None:
    if not isinstance(value, list):
        raise _Bad("params.tools", "must be a list")
    if value:
        out["tools"] = [_tool(tool, f"params.tools[{i}]") for i, tool in enumerate(value)]


def _tool(tool: Any, field: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise _Bad(field, "must be an object")
    if tool.get("type") != "function" and "function" not in tool:
        if "custom" in tool or not isinstance(tool.get("name"), str):
            raise _Bad(
                field,
                "neither an OpenAI function tool nor an Anthropic tool definition (which has "
                "a name)",
            )
        return dict(tool)  # an Anthropic tool (custom or server tool), as the API spells it
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise _Bad(f"{field}.function", "must be an object")
    extra = set(tool) - {"type", "function"}
    if extra:
        raise _Bad(f"{field}.{sorted(extra)[0]}", "is not supported on a function tool")
    name = function.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise _Bad(
            f"{field}.function.name",
            "must be 1-128 letters, digits, '_' or '-' (Anthropic's rule)",
        )
    converted: dict[str, Any] = {"name": name}
    for key, item in function.items():
        if key == "name" or item is None:
            continue
        if key == "description":
            if not isinstance(item, str):
                raise _Bad(f"{field}.function.description", "must be a string")
            converted["description"] = item
        elif key == "parameters":
            if not isinstance(item, Mapping) or item.get("type", "object") != "object":
                raise _Bad(
                    f"{field}.function.parameters",
                    "must be a JSON Schema of type 'object' (Anthropic's input_schema)",
                )
            converted["input_schema"] = item if "type" in item else {"type": "object", **item}
        elif key == "strict":
            if not isinstance(item, bool):
                raise _Bad(f"{field}.function.strict", "must be a boolean")
            converted["strict"] = item
        else:
            raise _Bad(f"{field}.function.{key}", "is not supported on a function tool")
    converted.setdefault("input_schema", {"type": "object", "properties": {}})
    return converted


def _tool_choice(value: Any, *, has_tools: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("auto", "none") and not has_tools:
            return None  # OpenAI's meaning without tools is the plain default
        mapped = {"auto": "auto", "required": "any", "none": "none"}.get(value)
        if mapped is None:
            raise _Bad(
                "params.tool_choice",
                f"must be 'auto', 'required', 'none' or an object, got {value!r}",
            )
        return {"type": mapped}
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "function":
            function = value.get("function")
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise _Bad("params.tool_choice.function", "must be an object with a name")
            return {"type": "tool", "name": function["name"]}
    raise _Bad(
        "params.tool_choice",
        f"cannot be expressed for Anthropic: {value!r} (Anthropic's own spelling goes under "
        "provider_params['anthropic']['tool_choice'])",
    )


_FORMAT = "params.response_format"


def _set_response_format(value: Any, out: dict[str, Any]) -> None:
    """``json_schema`` -> ``output_config.format`` (Anthropic's structured output, which has a
    schema and nothing else): the ``description`` becomes the schema's own root
    ``description``, ``strict`` must be true or absent (Anthropic always constrains the output
    to the schema), the ``name`` (a label OpenAI requires) has no place and no effect."""
    if not isinstance(value, Mapping):
        raise _Bad(_FORMAT, "must be an object")
    kind = value.get("type")
    extra = sorted(set(value) - {"type", "json_schema"})
    if extra:
        raise _Bad(f"{_FORMAT}.{extra[0]}", "is not part of OpenAI's response_format")
    if kind == "text":
        return
    if kind == "json_object":
        raise _Bad(
            f"{_FORMAT}.type",
            "Anthropic has no schema-free JSON mode (its structured output needs a schema that "
            "names the properties); use {'type': 'json_schema', 'json_schema': {...}}",
        )
    if kind != "json_schema":
        raise _Bad(f"{_FORMAT}.type", f"{kind!r} cannot be expressed for Anthropic")
    where = f"{_FORMAT}.json_schema"
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise _Bad(where, "must be an object with a schema")
    extra = sorted(set(spec) - {"name", "description", "schema", "strict"})
    if extra:
        raise _Bad(f"{where}.{extra[0]}", "is not part of OpenAI's json_schema format")
    schema = spec.get("schema")
    if not isinstance(schema, Mapping):
        raise _Bad(f"{where}.schema", "must be a JSON Schema object")
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise _Bad(f"{where}.name", "must be a string")
    strict = spec.get("strict")
    if strict is False:
        raise _Bad(
            f"{where}.strict",
            "Anthropic always constrains the output to the schema and has no best-effort "
            "mode; remove strict or set it to true",
        )
    if strict is not None and strict is not True:
        raise _Bad(f"{where}.strict", f"must be a boolean, got {strict!r}")
    description = spec.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise _Bad(f"{where}.description", "must be a string")
        own = schema.get("description", description)
        if own != description:
            raise _Bad(
                f"{where}.description",
                "differs from the schema's own description; Anthropic's output format has no "
                "description besides the schema's, so keep one of them",
            )
        schema = {**schema, "description": description}
    out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}


_PARAMS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "max_tokens": _set_max_tokens,
    "temperature": _unit_number("temperature"),
    "top_p": _unit_number("top_p"),
    "stop": _set_stop,
    "user": _set_user,
    "safety_identifier": _set_safety_identifier,
    "metadata": _set_metadata,
    "store": _set_store,
    "prompt_cache_key": _ignore_prompt_cache_key,
    "tools": _set_tools,
    "response_format": _set_response_format,
}


def _merge_native(native: Any, out: dict[str, Any]) -> None:
    """``provider_params["anthropic"]`` over the converted body: its fields replace ours,
    except ``output_config``, whose entries merge (a converted ``format`` and a native
    ``effort`` are both kept)."""
    field = f"provider_params.{PROVIDER}"
    if not isinstance(native, Mapping):
        raise _Bad(field, "must be an object of Messages API fields")
    for key, value in native.items():
        if key == "model":
            raise _Bad(f"{field}.model", "set the model on the request itself")
        if key == "output_config" and isinstance(value, Mapping) and "output_config" in out:
            out["output_config"] = {**out["output_config"], **value}
        else:
            out[key] = value


# -- Anthropic's answers -> batchcore DTOs -------------------------------------------------------

#: The HTTP status the API answers with for each error type (its errors documentation). A
#: request that failed inside a batch with one of these types is classified as a call answered
#: with that status would be: hopeless for 400-404 and 413, retryable for 429, 500, 504, 529.
ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


#: How a create refused for the processing queue speaks. Anthropic answers it, like its other
#: rate limits, with a 429 ``rate_limit_error``; only the message tells the queue ("maximum
#: batch requests in processing queue", as its rate limits page names the limit) from the
#: requests-per-minute limit.
_QUEUE_WORDS = re.compile(r"\bqueue\b", re.IGNORECASE)


def queue_full(error: RateLimitError) -> QueueFullError | None:
    """The :class:`QueueFullError` a 429 on a batch create means when its message speaks of
    the processing queue, or None for an ordinary rate limit."""
    if isinstance(error, QueueFullError):
        return error
    if error.status_code != 429 or not _QUEUE_WORDS.search(error.message):
        return None
    return QueueFullError(
        error.message,
        provider=error.provider,
        status_code=error.status_code,
        retry_after=error.retry_after,
        code=error.code,
        request_id=error.request_id,
    )


class ResultErrorFactory(Protocol):
    """Builds the :class:`ResultError` of one failed request (the provider's ``result_error``,
    which applies the core's one rule for what is retryable)."""

    def __call__(
        self, *, code: str | None, message: str | None = None, status_code: int | None = None
    ) -> ResultError: ...


def request_total(batch: Mapping[str, Any]) -> int:
    """How many requests a ``message_batch`` holds: the sum of its ``request_counts`` (which
    the API keeps equal to the total at every stage)."""
    counts = batch.get("request_counts")
    if not _is_mapping(counts):
        return 0
    return sum(value for value in counts.values() if value.__class__ is int)


def batch_created_at(batch: Mapping[str, Any]) -> datetime | None:
    """When a ``message_batch`` was created, or None when it does not say readably."""
    try:
        return parse_timestamp(batch.get("created_at"))
    except ValueError:
        return None


def batch_state(batch: Mapping[str, Any]) -> BatchState:
    """The normalised state of a ``message_batch`` object.

    ``ended`` becomes CANCELLED when a cancel was initiated (whatever the counts: the batch was
    asked to stop), else EXPIRED when any request expired (only the 24-hour limit expires
    requests), else COMPLETED. Errored requests do not fail a batch: they are per-request
    results. A ``processing_status`` newer than this code is logged and read as IN_PROGRESS, so
    the batch keeps being polled until it says ``ended``.
    """
    status = batch.get("processing_status")
    if status == "in_progress":
        return BatchState.IN_PROGRESS
    if status == "canceling":
        return BatchState.CANCELLING
    if status == "ended":
        if batch.get("cancel_initiated_at"):
            return BatchState.CANCELLED
        counts = batch.get("request_counts")
        if _is_mapping(counts) and counts.get("expired"):
            return BatchState.EXPIRED
        return BatchState.COMPLETED
    log.warning(
        "anthropic: batch %s has processing_status %r, unknown to this version of "
        "batchcore-anthropic; treating it as in progress",
        batch.get("id"),
        status,
    )
    return BatchState.IN_PROGRESS


_TIMESTAMPS = ("created_at", "expires_at", "ended_at", "cancel_initiated_at", "archived_at")


def batch_status(batch: Mapping[str, Any]) -> BatchStatus:
    """A ``message_batch`` object as a :class:`BatchStatus` (raw object kept in ``raw``).

    Counts: ``total`` is the sum of ``request_counts``, ``completed`` the succeeded requests,
    ``failed`` the errored, expired and canceled ones. Anthropic reports them only once the
    batch has ended; before that everything is ``processing``.
    """
    counts = batch.get("request_counts")
    counts = counts if _is_mapping(counts) else {}
    succeeded = int(counts.get("succeeded") or 0)
    failed = sum(int(counts.get(k) or 0) for k in ("errored", "expired", "canceled"))
    return BatchStatus(
        provider=PROVIDER,
        batch_id=str(batch["id"]),
        state=batch_state(batch),
        raw_status=str(batch.get("processing_status")),
        total=request_total(batch),
        completed=succeeded,
        failed=failed,
        created_at=batch.get("created_at"),
        expires_at=batch.get("expires_at"),
        ended_at=batch.get("ended_at"),
        timestamps={k: batch[k] for k in _TIMESTAMPS if batch.get(k)},
        raw=batch,
    )


def batch_result(
    line: Any, *, result_error: ResultErrorFactory, batch_id: str | None = None
) -> BatchResult:
    """One line of a batch's results file (``MessageBatchIndividualResponse``).

    ``succeeded``: ``text`` is every text block of the message in order (citations split one
    answer into several blocks), ``refusal`` is set when ``stop_reason`` is ``refusal``.
    ``errored``: *result_error* classifies the error type with its HTTP-equivalent status
    (:data:`ERROR_STATUS`). ``canceled`` and ``expired`` requests never ran (retryable).
    Raises ValueError for a line that is not a result at all.
    """
    if not _is_mapping(line):
        raise ValueError("a results line must be a JSON object")
    custom_id = line.get("custom_id")
    result = line.get("result")
    if not isinstance(custom_id, str) or not _is_mapping(result):
        raise ValueError("a results line needs a custom_id and a result object")
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        if not _is_mapping(message):
            raise ValueError(f"succeeded result {custom_id!r} has no message")
        text = _text(message.get("content"))
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.SUCCEEDED,
            response=message,
            text=text,
            usage=_usage(message.get("usage")),
            batch_id=batch_id,
            refusal=_refusal(message) if message.get("stop_reason") == "refusal" else None,
        )
    if kind == "errored":
        body = result.get("error")
        inner = body.get("error") if _is_mapping(body) else None
        inner = inner if _is_mapping(inner) else {}
        code = inner.get("type")
        code = code if isinstance(code, str) and code else None
        message_text = inner.get("message")
        return BatchResult(
            custom_id=custom_id,
            status=ResultStatus.ERRORED,
            response=body if _is_mapping(body) else None,
            error=result_error(
                code=code,
                message=message_text if isinstance(message_text, str) else None,
                status_code=None if code is None else ERROR_STATUS.get(code),
            ),
            batch_id=batch_id,
        )
    if kind == "canceled":
        return BatchResult.unfinished(custom_id, ResultStatus.CANCELLED, batch_id=batch_id)
    if kind == "expired":
        return BatchResult.unfinished(custom_id, ResultStatus.EXPIRED, batch_id=batch_id)
    # A result type newer than this code: keep it (with the vendor's object) rather than drop
    # it. Whether it was billed is unknown, so it is not marked retryable.
    return BatchResult(
        custom_id=custom_id,
        status=ResultStatus.ERRORED,
        response=result,
        error=result_error(
            code=f"unknown_result_type:{kind}",
            message=f"result type {kind!r} is not known to this version of batchcore-anthropic",
        ),
        batch_id=batch_id,
    )


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # Parsed JSON is made of dicts: check that first, the abstract Mapping check is slow.
    return value.__class__ is dict or isinstance(value, Mapping)


def _text(content: Any) -> str | None:
    if not isinstance(content, Iterable):
        return None
    parts = [
        block["text"]
        for block in content
        if _is_mapping(block) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    return "".join(parts) if parts else None


def _refusal(message: Mapping[str, Any]) -> str:
    details = message.get("stop_details")
    details = details if _is_mapping(details) else {}
    explanation = details.get("explanation")
    if isinstance(explanation, str) and explanation:
        return explanation
    category = details.get("category")
    about = f" (category: {category})" if isinstance(category, str) and category else ""
    return f"The model declined to answer{about}."


def _count(value: Any) -> int | None:
    return value if value.__class__ is int else None


def _usage(usage: Any) -> Usage | None:
    """Anthropic's ``usage`` in batchcore's terms: ``input_tokens`` is the whole input, the
    uncached part plus what was written to and read from the prompt cache."""
    if not _is_mapping(usage):
        return None
    uncached = _count(usage.get("input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    outputs = _count(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if _is_mapping(details) else None
    inputs = None if uncached is None else uncached + (written or 0) + (read or 0)
    return Usage(
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=None if inputs is None or outputs is None else inputs + outputs,
        cache_read_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=thinking,
    )
