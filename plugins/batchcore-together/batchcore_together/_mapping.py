"""The one wire module of the Together provider: pure conversions in both directions.

Unified request (OpenAI chat format) -> one line of a Together batch input file,
``{"custom_id", "body"}``, the body being Together's chat completions request. It is
OpenAI-compatible but not identical; the differences are converted here:

* ``developer`` messages become ``system`` messages; system, assistant and tool content given as
  text parts becomes one string (Together takes parts only in user messages);
* user content parts ``text``, ``image_url`` (``detail`` ``auto`` only), ``input_audio``
  (``wav`` only), and Together's own ``video_url`` / ``audio_url`` parts;
* ``max_completion_tokens`` -> ``max_tokens``; ``stop`` as a string -> a one-item list;
  ``logprobs: true`` (+ ``top_logprobs``) -> ``logprobs: <how many>``;
* ``tools`` (functions), ``tool_choice``, ``response_format`` (text, JSON object, JSON schema),
  ``reasoning_effort`` (low, medium, high), ``seed``, ``n``, penalties, ``logit_bias``;
* OpenAI parameters at the value that changes nothing pass (``stream: false``,
  ``parallel_tool_calls: true``, ``store: false``, ``modalities: ["text"]``, ``service_tier``
  ``auto``/``default``), ``prompt_cache_key`` is dropped (a routing hint, no effect on answers);
* ``provider_params["together"]`` merged last, unchanged (``top_k``, ``repetition_penalty``,
  ``min_p``, ``safety_model``, ``chat_template_kwargs``, ``reasoning``, ...).

Anything Together cannot take is an :class:`InvalidRequestError` naming the custom_id and the
field, raised before any network call: a dropped parameter would silently change results.

Together's answers -> batchcore DTOs: a batch job (wrapped as ``{"job", "warning"}`` by create,
bare elsewhere) -> :class:`BatchStatus`; an output or error file line is OpenAI's, read by the
core (:func:`batchcore.plugin.result_from_openai_line`) with Together's difference
(:data:`RESULT_LINES`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    BatchError,
    BatchRequest,
    BatchState,
    BatchStatus,
    InvalidRequestError,
    OpenAILineDialect,
    RequestExtensions,
    parse_timestamp,
)

__all__ = [
    "CAPACITY_ERROR_CODES",
    "PROVIDER",
    "REQUEST_EXTENSIONS",
    "RESULT_LINES",
    "batch_state",
    "batch_status",
    "chat_body",
    "encode_line",
    "finished_estimate",
    "job_created_at",
    "unwrap_job",
]

PROVIDER = "together"
log = logging.getLogger("batchcore_together")

#: What the conversion takes beyond OpenAI's request format: Together's ``video_url`` and
#: ``audio_url`` user content parts, and ``name`` on every message (tool messages included).
REQUEST_EXTENSIONS = RequestExtensions(
    message_keys=frozenset({"name"}),
    part_types=frozenset({"video_url", "audio_url"}),
)

_HINT = f"Together-only parameters go under provider_params={{{PROVIDER!r}: {{...}}}}"

#: The code a failed batch's error gets when it speaks of the model's queue of enqueued tokens
#: (the core's word for it). Together's batch ``error`` is a bare message, and Together
#: documents the limit ("up to 30B tokens enqueued per model") but not the words of a batch
#: refused by it: an error that speaks of enqueued tokens or of a queue is read as that refusal.
QUEUE_FULL_CODE = "enqueued_limit_exceeded"
CAPACITY_ERROR_CODES = frozenset({QUEUE_FULL_CODE})
_QUEUE_WORDS = re.compile(r"\benqueued\b|\bqueue\b", re.IGNORECASE)


class _Bad(Exception):
    """A conversion problem at *field*; becomes an InvalidRequestError with the custom_id."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- unified request -> Together's chat body ------------------------------------------------------


def encode_line(custom_id: str, body: bytes) -> bytes:
    """One input file line, ``{"custom_id": ..., "body": ...}``, without the newline."""
    return b"".join((b'{"custom_id":', orjson.dumps(custom_id), b',"body":', body, b"}"))


def chat_body(request: BatchRequest) -> bytes:
    """Together's chat completions body for *request*, as compact JSON.

    Raises :class:`InvalidRequestError` naming the custom_id and the field for anything
    Together cannot take.
    """
    if request.endpoint != CHAT_COMPLETIONS:
        raise _invalid(
            request,
            "endpoint",
            f"Together batches chat requests ({CHAT_COMPLETIONS}) only, not {request.endpoint}",
        )
    native = request.provider_params.get(PROVIDER) if request.provider_params else None
    if native is None and _plain(request):
        # The common case is valid Together input as it is: reuse the cached OpenAI body.
        return request.openai_body_json()
    try:
        return orjson.dumps(_convert(request, native))
    except _Bad as bad:
        problem = bad
    raise _invalid(request, problem.field, problem.message)


def _invalid(request: BatchRequest, field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"request {request.custom_id!r}: {field}: {message}",
        custom_id=request.custom_id,
        field=field,
        provider=PROVIDER,
    )


#: Parameters both APIs spell and type alike, copied when they hold a number.
_PLAIN_NUMBERS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})


def _plain(request: BatchRequest) -> bool:
    """Whether the OpenAI body is already a valid Together body (no copy needed)."""
    for key, value in request.body_parts()[1].items():
        if key in _PLAIN_NUMBERS:
            if value.__class__ is not float and value.__class__ is not int:
                return False
        elif key in ("max_tokens", "seed", "n"):
            if value.__class__ is not int:
                return False
        else:
            return False
    for message in request.body_parts()[0]:
        if (
            len(message) != 2
            or message.get("role") not in _PLAIN_ROLES
            or message.get("content").__class__ is not str
        ):
            return False
    return True


def _convert(request: BatchRequest, native: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(i, m) for i, m in enumerate(request.body_parts()[0])],
    }
    params = request.body_parts()[1]
    for key, value in params.items():
        handler = _PARAMS.get(key)
        if handler is None:
            raise _Bad(f"params.{key}", f"Together's chat API has no {key!r}; {_HINT}")
        handler(value, out)
    _set_logprobs(params, out)
    if native is not None:
        _merge_native(native, out)
    return out


# -- messages


def _message(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    where = f"messages[{index}]"
    role = message.get("role")
    if role in ("system", "developer"):
        out: dict[str, Any] = {
            "role": "system",
            "content": _joined_text(message.get("content"), f"{where}.content", role),
        }
        _copy_name(message, out, where)
        _only(message, where, {"role", "content", "name"})
        return out
    if role == "user":
        _only(message, where, {"role", "content", "name"})
        out = {"role": "user", "content": _user_content(message.get("content"), where)}
        _copy_name(message, out, where)
        return out
    if role == "assistant":
        return _assistant(message, where)
    if role == "tool":
        _only(message, where, {"role", "content", "tool_call_id", "name"})
        out = {
            "role": "tool",
            "content": _joined_text(message.get("content"), f"{where}.content", role),
            "tool_call_id": _string(message.get("tool_call_id"), f"{where}.tool_call_id"),
        }
        _copy_name(message, out, where)
        return out
    if role == "function":
        _only(message, where, {"role", "content", "name"})
        content = message.get("content")
        if not isinstance(content, str):
            raise _Bad(f"{where}.content", "Together needs the function result as a string")
        return {
            "role": "function",
            "content": content,
            "name": _string(message.get("name"), f"{where}.name"),
        }
    raise _Bad(f"{where}.role", f"Together has no {role!r} role")


def _only(message: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in message:
        if key not in allowed:
            raise _Bad(
                f"{where}.{key}",
                f"a {message.get('role')} message has no {key!r} in Together's chat API",
            )


def _copy_name(message: Mapping[str, Any], out: dict[str, Any], where: str) -> None:
    if "name" in message:
        out["name"] = _string(message["name"], f"{where}.name")


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Bad(field, f"must be a string, got {value!r}"[:200])
    return value


def _joined_text(content: Any, field: str, role: Any) -> str:
    """A string content as it is; text parts joined (Together takes only strings here)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence) or isinstance(content, (bytes, Mapping)):
        raise _Bad(field, f"must be a string or a list of text parts, got {content!r}"[:200])
    texts: list[str] = []
    for number, part in enumerate(content):
        spot = f"{field}[{number}]"
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else part
            raise _Bad(
                f"{spot}.type",
                f"a {role} message takes only text on Together, not {kind!r}"[:200],
            )
        _no_cache_breakpoint(part, spot)
        _only_part_keys(part, spot, {"type", "text"})
        texts.append(_string(part.get("text"), f"{spot}.text"))
    return "".join(texts)


def _no_cache_breakpoint(part: Mapping[str, Any], spot: str) -> None:
    if part.get("prompt_cache_breakpoint") is not None:
        raise _Bad(
            f"{spot}.prompt_cache_breakpoint",
            "Together has no prompt cache breakpoints (its cache needs no markers); remove it",
        )


def _only_part_keys(part: Mapping[str, Any], spot: str, allowed: set[str]) -> None:
    for key in part:
        if key not in allowed and not (key == "prompt_cache_breakpoint" and part[key] is None):
            raise _Bad(f"{spot}.{key}", f"a {part.get('type')} part has no {key!r} on Together")


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    field = f"{where}.content"
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence) or isinstance(content, (bytes, Mapping)):
        raise _Bad(field, f"must be a string or a list of content parts, got {content!r}"[:200])
    return [_user_part(part, f"{field}[{number}]") for number, part in enumerate(content)]


def _user_part(part: Any, spot: str) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise _Bad(spot, "a content part must be an object")
    kind = part.get("type")
    _no_cache_breakpoint(part, spot)
    if kind == "text":
        _only_part_keys(part, spot, {"type", "text"})
        return {"type": "text", "text": _string(part.get("text"), f"{spot}.text")}
    if kind == "image_url":
        _only_part_keys(part, spot, {"type", "image_url"})
        image = _url_object(part.get("image_url"), f"{spot}.image_url", {"url", "detail"})
        detail = image.get("detail")
        if detail not in (None, "auto"):
            raise _Bad(
                f"{spot}.image_url.detail",
                f"Together has no image detail setting (only 'auto' passes), got {detail!r}",
            )
        return {"type": "image_url", "image_url": {"url": image["url"]}}
    if kind == "input_audio":
        _only_part_keys(part, spot, {"type", "input_audio"})
        audio = part.get("input_audio")
        if not isinstance(audio, Mapping):
            raise _Bad(f"{spot}.input_audio", "must be an object with data and format")
        for key in audio:
            if key not in ("data", "format"):
                raise _Bad(f"{spot}.input_audio.{key}", "is not part of an input_audio part")
        if audio.get("format") != "wav":
            raise _Bad(
                f"{spot}.input_audio.format",
                f"Together takes base64 audio as wav only, got {audio.get('format')!r}; send "
                "other formats by URL in an audio_url part",
            )
        data = _string(audio.get("data"), f"{spot}.input_audio.data")
        return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    if kind in ("video_url", "audio_url"):
        _only_part_keys(part, spot, {"type", kind})
        media = _url_object(part.get(kind), f"{spot}.{kind}", {"url"})
        return {"type": kind, kind: {"url": media["url"]}}
    if kind == "file":
        raise _Bad(
            f"{spot}.type",
            "Together's chat API takes no file parts; send the text itself, or an image, video "
            "or audio by URL",
        )
    raise _Bad(f"{spot}.type", f"Together has no {kind!r} content part")


def _url_object(value: Any, field: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(field, "must be an object with a url")
    for key in value:
        if key not in allowed:
            raise _Bad(f"{field}.{key}", f"is not part of {field.rsplit('.', 1)[-1]} on Together")
    _string(value.get("url"), f"{field}.url")
    return value


def _assistant(message: Mapping[str, Any], where: str) -> dict[str, Any]:
    _only(
        message,
        where,
        {"role", "content", "name", "tool_calls", "function_call", "refusal", "audio"},
    )
    if message.get("refusal") is not None:
        raise _Bad(
            f"{where}.refusal",
            "Together's assistant messages have no refusal field; put the text in content",
        )
    if message.get("audio") is not None:
        raise _Bad(f"{where}.audio", "Together cannot replay an audio answer; send its text")
    out: dict[str, Any] = {"role": "assistant"}
    content = message.get("content")
    if content is None:
        if "content" in message:
            out["content"] = None
    else:
        out["content"] = _assistant_text(content, f"{where}.content")
    _copy_name(message, out, where)
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes, Mapping)):
            raise _Bad(f"{where}.tool_calls", "must be a list of tool calls")
        out["tool_calls"] = [
            _tool_call(call, f"{where}.tool_calls[{n}]") for n, call in enumerate(calls)
        ]
    function_call = message.get("function_call")
    if function_call is not None:
        if not isinstance(function_call, Mapping):
            raise _Bad(f"{where}.function_call", "must be an object with name and arguments")
        out["function_call"] = {
            "name": _string(function_call.get("name"), f"{where}.function_call.name"),
            "arguments": _string(
                function_call.get("arguments"), f"{where}.function_call.arguments"
            ),
        }
    return out


def _assistant_text(content: Any, field: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, Mapping)):
        for number, part in enumerate(content):
            if isinstance(part, Mapping) and part.get("type") == "refusal":
                raise _Bad(
                    f"{field}[{number}].type",
                    "Together's assistant messages have no refusal parts; send the refusal "
                    "as a text part",
                )
    return _joined_text(content, field, "assistant")


def _tool_call(call: Any, field: str) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise _Bad(field, "must be an object")
    if call.get("type") != "function":
        raise _Bad(
            f"{field}.type",
            f"Together replays function tool calls only, got {call.get('type')!r}",
        )
    for key in call:
        if key not in ("id", "type", "function"):
            raise _Bad(f"{field}.{key}", "is not part of a tool call")
    function = call.get("function")
    if not isinstance(function, Mapping):
        raise _Bad(f"{field}.function", "must be an object with name and arguments")
    for key in function:
        if key not in ("name", "arguments"):
            raise _Bad(f"{field}.function.{key}", "is not part of a function call")
    return {
        "id": _string(call.get("id"), f"{field}.id"),
        "type": "function",
        "function": {
            "name": _string(function.get("name"), f"{field}.function.name"),
            "arguments": _string(function.get("arguments"), f"{field}.function.arguments"),
        },
    }


# -- parameters


def _copy(name: str) -> Callable[[Any, dict[str, Any]], None]:
    def copy(value: Any, out: dict[str, Any]) -> None:
        if value is not None:
            out[name] = value

    return copy


def _set_max_tokens(value: Any, out: dict[str, Any]) -> None:
    if value is None:
        return
    if "max_tokens" in out and out["max_tokens"] != value:
        # Whichever came first, the one Together does not spell is the one to drop.
        raise _Bad(
            "params.max_completion_tokens",
            "differs from max_tokens; Together has one token limit (max_tokens): set only one "
            "of the two",
        )
    out["max_tokens"] = value


def _set_stop(value: Any, out: dict[str, Any]) -> None:
    if value is None:
        return
    out["stop"] = [value] if isinstance(value, str) else list(value)


def _neutral(name: str, *allowed: Any, why: str) -> Callable[[Any, dict[str, Any]], None]:
    """A parameter Together lacks, accepted only at the values that change nothing."""

    def check(value: Any, out: dict[str, Any]) -> None:
        if value is not None and value not in allowed:
            raise _Bad(f"params.{name}", f"{why} (got {value!r})"[:300])

    return check


def _refused(name: str, why: str) -> Callable[[Any, dict[str, Any]], None]:
    """A parameter Together has no equivalent for (None passes: OpenAI's "not set")."""

    def check(value: Any, out: dict[str, Any]) -> None:
        if value is not None:
            raise _Bad(f"params.{name}", why)

    return check


def _ignore(value: Any, out: dict[str, Any]) -> None:
    # OpenAI's routing hint for its prompt cache: Together caches without one; dropping it
    # changes neither the answer nor the bill.
    return


def _set_logprobs(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    """OpenAI's ``logprobs: true`` (+ ``top_logprobs: k``) is Together's ``logprobs: k``, the
    number of top tokens to report (at least the sampled one)."""
    wanted, top = params.get("logprobs"), params.get("top_logprobs")
    if wanted is True:
        out["logprobs"] = top if isinstance(top, int) and top >= 1 else 1
    elif top is not None:
        raise _Bad("params.top_logprobs", "needs logprobs: true (as in OpenAI's API)")


def _set_reasoning_effort(value: Any, out: dict[str, Any]) -> None:
    if value is None:
        return
    if value not in ("low", "medium", "high"):
        raise _Bad(
            "params.reasoning_effort",
            f"Together takes 'low', 'medium' or 'high', got {value!r}; to turn reasoning off "
            f"where a model allows it, use provider_params={{{PROVIDER!r}: {{'reasoning': "
            "{'enabled': False}}}",
        )
    out["reasoning_effort"] = value


def _set_response_format(value: Any, out: dict[str, Any]) -> None:
    field = "params.response_format"
    if not isinstance(value, Mapping):
        raise _Bad(field, "must be an object")
    kind = value.get("type")
    allowed = {"type", "json_schema"} if kind == "json_schema" else {"type"}
    for key in value:
        if key not in allowed:
            raise _Bad(f"{field}.{key}", f"is not part of a {kind!r} response format")
    if kind in ("text", "json_object"):
        out["response_format"] = {"type": kind}
        return
    if kind != "json_schema":
        raise _Bad(f"{field}.type", f"Together has no {kind!r} response format")
    spec = value.get("json_schema")
    where = f"{field}.json_schema"
    if not isinstance(spec, Mapping):
        raise _Bad(where, "must be an object with a name and a schema")
    for key in spec:
        if key not in ("name", "description", "schema", "strict"):
            raise _Bad(f"{where}.{key}", "is not part of Together's json_schema format")
    converted: dict[str, Any] = {"name": _string(spec.get("name"), f"{where}.name")}
    if spec.get("description") is not None:
        converted["description"] = _string(spec["description"], f"{where}.description")
    if spec.get("schema") is not None:
        if not isinstance(spec["schema"], Mapping):
            raise _Bad(f"{where}.schema", "must be a JSON Schema object")
        converted["schema"] = spec["schema"]
    if spec.get("strict") is not None:
        if not isinstance(spec["strict"], bool):
            raise _Bad(f"{where}.strict", f"must be a boolean, got {spec['strict']!r}")
        converted["strict"] = spec["strict"]
    out["response_format"] = {"type": "json_schema", "json_schema": converted}


def _set_tools(value: Any, out: dict[str, Any]) -> None:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, Mapping)):
        raise _Bad("params.tools", "must be a list of tools")
    out["tools"] = [_tool(tool, f"params.tools[{n}]") for n, tool in enumerate(value)]


def _tool(tool: Any, field: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, Mapping) else tool
        raise _Bad(f"{field}.type", f"Together takes function tools only, got {kind!r}"[:200])
    for key in tool:
        if key not in ("type", "function"):
            raise _Bad(f"{field}.{key}", "is not part of a function tool")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise _Bad(f"{field}.function", "must be an object with a name")
    converted: dict[str, Any] = {"name": _string(function.get("name"), f"{field}.function.name")}
    for key, item in function.items():
        if key == "name":
            continue
        if key == "description":
            converted["description"] = _string(item, f"{field}.function.description")
        elif key == "parameters":
            if not isinstance(item, Mapping):
                raise _Bad(f"{field}.function.parameters", "must be a JSON Schema object")
            converted["parameters"] = item
        elif key == "strict":
            if item is True:
                raise _Bad(
                    f"{field}.function.strict",
                    "Together has no strict mode for tool arguments; remove strict or set it "
                    "to false",
                )
            if item not in (False, None):
                raise _Bad(f"{field}.function.strict", f"must be a boolean, got {item!r}")
        else:
            raise _Bad(f"{field}.function.{key}", "is not part of a function tool")
    return {"type": "function", "function": converted}


def _set_tool_choice(value: Any, out: dict[str, Any]) -> None:
    field = "params.tool_choice"
    if value is None:
        return
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise _Bad(field, f"must be 'auto', 'none', 'required' or an object, got {value!r}")
        out["tool_choice"] = value
        return
    if isinstance(value, Mapping) and value.get("type") == "function":
        function = value.get("function")
        if not isinstance(function, Mapping) or set(value) - {"type", "function"}:
            raise _Bad(field, "must be {'type': 'function', 'function': {'name': ...}}")
        name = _string(function.get("name"), f"{field}.function.name")
        if set(function) - {"name"}:
            raise _Bad(f"{field}.function", "takes only a name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
        return
    kind = value.get("type") if isinstance(value, Mapping) else value
    raise _Bad(f"{field}.type", f"Together has no {kind!r} tool choice"[:200])


_NO_USER_FIELD = (
    "Together's chat API has no end-user or metadata field to carry it; remove it (it does "
    "not change the answer)"
)

_PARAMS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "temperature": _copy("temperature"),
    "top_p": _copy("top_p"),
    "frequency_penalty": _copy("frequency_penalty"),
    "presence_penalty": _copy("presence_penalty"),
    "seed": _copy("seed"),
    "n": _copy("n"),
    "logit_bias": _copy("logit_bias"),
    "function_call": _copy("function_call"),
    "max_tokens": _set_max_tokens,
    "max_completion_tokens": _set_max_tokens,
    "stop": _set_stop,
    "logprobs": _neutral("logprobs", True, False, why="must be a boolean"),
    "top_logprobs": _ignore,  # read with logprobs (_set_logprobs)
    "response_format": _set_response_format,
    "tools": _set_tools,
    "tool_choice": _set_tool_choice,
    "reasoning_effort": _set_reasoning_effort,
    "parallel_tool_calls": _neutral(
        "parallel_tool_calls",
        True,
        why="Together cannot be told to call tools one at a time; remove it or set it to true",
    ),
    "stream": _neutral(
        "stream", False, why="a batch cannot stream; remove stream or set it to false"
    ),
    "stream_options": _refused("stream_options", "a batch cannot stream; remove it"),
    "store": _neutral(
        "store",
        False,
        why="Together keeps no completions for you (OpenAI's store feeds its evals); remove "
        "store or set it to false",
    ),
    "modalities": _neutral(
        "modalities", ["text"], ("text",), why="Together's chat API answers in text only"
    ),
    "service_tier": _neutral(
        "service_tier",
        "auto",
        "default",
        why="Together has no service tiers (a batch is its own, discounted tier)",
    ),
    "prompt_cache_key": _ignore,
    "functions": _refused(
        "functions", "Together takes the deprecated functions list as tools=[...]; convert it"
    ),
    "user": _refused("user", _NO_USER_FIELD),
    "safety_identifier": _refused("safety_identifier", _NO_USER_FIELD),
    "metadata": _refused("metadata", _NO_USER_FIELD),
    "audio": _refused("audio", "Together's chat API answers in text only"),
    "prediction": _refused("prediction", "Together has no predicted outputs"),
    "web_search_options": _refused("web_search_options", "Together's chat API has no web search"),
    "verbosity": _refused("verbosity", "Together has no verbosity setting"),
    "moderation": _refused(
        "moderation",
        f"Together moderates with a safety model: provider_params={{{PROVIDER!r}: "
        "{'safety_model': ...}}",
    ),
    "prompt_cache_retention": _refused(
        "prompt_cache_retention", "Together has no prompt cache retention setting"
    ),
    "prompt_cache_options": _refused(
        "prompt_cache_options", "Together has no prompt cache options"
    ),
}


def _merge_native(native: Any, out: dict[str, Any]) -> None:
    field = f"provider_params.{PROVIDER}"
    if not isinstance(native, Mapping):
        raise _Bad(field, "must be an object of Together chat body fields")
    for key, value in native.items():
        if key in ("model", "messages"):
            raise _Bad(f"{field}.{key}", "set it on the request itself")
        out[key] = value


# -- Together's answers -> batchcore DTOs ----------------------------------------------------------


_STATES = {
    "VALIDATING": BatchState.VALIDATING,
    "IN_PROGRESS": BatchState.IN_PROGRESS,
    "COMPLETED": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "EXPIRED": BatchState.EXPIRED,
    "CANCELLED": BatchState.CANCELLED,
    "CANCELED": BatchState.CANCELLED,
}
_TIMESTAMPS = ("created_at", "job_deadline", "completed_at")


def unwrap_job(answer: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    """``(job, warning)`` from an answer that is either a batch job (retrieve, list, cancel) or
    the create's ``{"job": {...}, "warning": "..."}``. The job is None when the answer names
    none (a create that made no batch says why in the warning)."""
    if not isinstance(answer, Mapping):
        return None, None
    warning = answer.get("warning")
    warning = warning if isinstance(warning, str) and warning else None
    if "job" in answer:
        job = answer.get("job")
        return (job if isinstance(job, Mapping) else None), warning
    return answer, warning


def batch_state(raw: Any) -> BatchState | None:
    """The state for a Together status word (any case); None for a word this code does not
    know."""
    return _STATES.get(raw.upper()) if isinstance(raw, str) else None


def _batch_error(message: str) -> BatchError:
    code = QUEUE_FULL_CODE if _QUEUE_WORDS.search(message) else None
    return BatchError(code=code, message=message)


def batch_status(job: Mapping[str, Any], *, total: int | None) -> BatchStatus:
    """A :class:`BatchStatus` from a Together batch job (kept in ``raw``).

    Together reports ``progress`` (0-100) but no request counts, so ``total`` is the number of
    requests submitted (from the handle) and ``completed`` an estimate from the percentage
    (:func:`finished_estimate`); ``failed`` stays unknown. An unknown status word is logged and
    read as IN_PROGRESS, so the batch keeps being polled: taking a new word for an end could
    drop results.
    """
    raw_status = str(job.get("status") or "")
    state = batch_state(raw_status)
    if state is None:
        log.warning(
            "together: batch %s has status %r, unknown to this version of batchcore-together; "
            "treating it as in progress",
            job.get("id"),
            raw_status,
        )
        state = BatchState.IN_PROGRESS
    stamps = {}
    for name in _TIMESTAMPS:
        moment = _timestamp(job.get(name))
        if moment is not None:
            stamps[name] = moment
    error = job.get("error")
    errors = (_batch_error(error),) if isinstance(error, str) and error else ()
    return BatchStatus(
        provider=PROVIDER,
        batch_id=str(job.get("id") or ""),
        state=state,
        raw_status=raw_status or "UNKNOWN",
        total=total,
        completed=finished_estimate(job.get("progress"), total),
        created_at=stamps.get("created_at"),
        expires_at=stamps.get("job_deadline"),
        ended_at=stamps.get("completed_at") if state.is_terminal else None,
        timestamps=stamps,
        errors=errors,
        raw=job,
    )


def finished_estimate(progress: Any, total: int | None) -> int | None:
    """How many of *total* requests have finished, estimated from Together's ``progress``
    percentage: ``floor(progress x total / 100)``, so it never claims more than the vendor said
    (a percentage rounded down by the vendor may count one request fewer). None when either is
    unknown."""
    if total is None or progress.__class__ not in (int, float):
        return None
    share = min(max(float(progress), 0.0), 100.0)
    return math.floor(share * total / 100)


def job_created_at(job: Mapping[str, Any]) -> datetime | None:
    """When a batch job was created, or None when it does not say readably."""
    return _timestamp(job.get("created_at"))


def _timestamp(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return None


#: Together's output and error lines are OpenAI's (``custom_id``, ``response: {status_code,
#: body}``, ``error``), read by the core; its difference: an error line's ``expired`` code.
RESULT_LINES = OpenAILineDialect(expired_codes=frozenset({"batch_expired", "expired"}))
