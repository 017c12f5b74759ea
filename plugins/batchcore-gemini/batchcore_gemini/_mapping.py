"""The one wire module of the Gemini provider: pure conversions in both directions.

Unified request (OpenAI chat-completions shape) -> a ``GenerateContentRequest`` in the REST
spelling of the Gemini API (camelCase, as the JSONL input file and the inline create body carry
it):

* ``system``/``developer`` messages before the conversation -> ``systemInstruction``;
* ``user``/``assistant`` turns -> ``contents`` with roles ``user``/``model`` (consecutive turns
  of one role merged, so the function responses of one model turn travel together);
* content parts: ``text``; ``image_url``, ``input_audio`` and ``file`` given as base64 data ->
  ``inlineData``; assistant ``tool_calls`` -> ``functionCall`` parts; ``tool`` messages ->
  ``functionResponse`` parts;
* ``max_tokens``/``max_completion_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop``,
  ``seed``, ``n``, penalties, logprobs -> ``generationConfig``;
* ``response_format`` -> ``responseMimeType`` (+ ``responseSchema``, converted from JSON Schema
  to Gemini's schema, refusing what it cannot express);
* ``tools``/``tool_choice`` -> ``tools[].functionDeclarations`` and ``toolConfig``;
* ``provider_params["gemini"]`` merged last (:func:`merge_native`).

Anything without a faithful Gemini spelling raises :class:`InvalidRequestError` naming the
custom_id and the field: a silently dropped parameter would change results.

Gemini's answers -> batchcore DTOs: a batch (a long-running operation) -> :class:`BatchStatus`
(:func:`batch_status`); one inline response or one line of a responses file ->
:class:`BatchResult` (:func:`batch_result`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import orjson

from batchcore.plugin import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    BatchError,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    InvalidRequestError,
    ResultErrorBuilder,
    ResultStatus,
    Usage,
    parse_timestamp,
)

__all__ = [
    "BATCH_STATES",
    "EXPIRY",
    "PROVIDER",
    "REFUSAL_FINISH_REASONS",
    "RPC_CODES",
    "RPC_HTTP_STATUS",
    "batch_created_at",
    "batch_result",
    "batch_state",
    "batch_status",
    "display_name",
    "encode_line",
    "entry_key",
    "gemini_schema",
    "generate_content_request",
    "inline_request_keys",
    "inlined_responses",
    "merge_native",
    "model_name",
    "model_resource",
    "raw_state",
    "responses_file",
    "rpc_status",
    "speaks_of_queue",
]

PROVIDER = "gemini"
log = logging.getLogger("batchcore_gemini")

_NATIVE_HINT = f"pass Gemini-only fields in provider_params[{PROVIDER!r}]"


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


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # Parsed JSON is made of dicts: check that first, the abstract Mapping check is slow.
    return value.__class__ is dict or isinstance(value, Mapping)


def _is_list(value: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, (list, tuple))


# -- models ------------------------------------------------------------------------------------


def model_name(model: str) -> str:
    """The model as batchcore records it: ``models/gemini-2.5-flash`` and ``gemini-2.5-flash``
    are one model (``gemini-2.5-flash``); tuned models keep their resource name."""
    return model[len("models/") :] if model.startswith("models/") else model


def model_resource(model: str) -> str:
    """The model's resource name, as the batch create path takes it (``models/...``)."""
    if model.startswith(("models/", "tunedModels/")):
        return model
    return f"models/{model}"


# -- unified request -> GenerateContentRequest -------------------------------------------------


def generate_content_request(request: BatchRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for *request*, in the REST spelling, without ``model``
    (a batch has one model, named in its create path).

    Raises :class:`InvalidRequestError` naming the custom_id and the field of anything that
    cannot be converted faithfully.
    """
    try:
        return _request(request)
    except _Bad as bad:
        raise _invalid(request.custom_id, bad.field, bad.message) from None


def encode_line(custom_id: str, body: Mapping[str, Any]) -> bytes:
    """One line of a batch input file: ``{"key": custom_id, "request": body}``."""
    return orjson.dumps({"key": custom_id, "request": body})


def _request(request: BatchRequest) -> dict[str, Any]:
    if request.endpoint != CHAT_COMPLETIONS:
        detail = (
            "embedding batches (asyncBatchEmbedContent) take one text per request and "
            "normalise shortened vectors differently from OpenAI, so OpenAI embeddings requests "
            "have no faithful Gemini equivalent"
            if request.endpoint == EMBEDDINGS
            else f"Gemini batches run chat requests ({CHAT_COMPLETIONS})"
        )
        raise _Bad("endpoint", f"{request.endpoint} is not supported: {detail}")
    system, contents = _messages(request.body_parts()[0])
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    params = _Params()
    for key, value in request.body_parts()[1].items():
        if value is None:
            continue  # JSON null: the parameter is unset
        convert = _PARAMS.get(key)
        if convert is None:
            raise _Bad(
                f"params.{key}",
                f"has no Gemini equivalent; {_NATIVE_HINT} (e.g. generationConfig entries)",
            )
        convert(value, params)
    params.finish(body)
    native = request.provider_params.get(PROVIDER) if request.provider_params else None
    if native is not None:
        merge_native(native, body)
    return body


# -- messages


def _messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    calls: dict[str, str] = {}  # tool_call id -> function name, for the tool messages after it
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        role = message.get("role")
        if role == "system" or role == "developer":
            _check_keys(message, field, {"role", "content"}, role)
            if contents:
                raise _Bad(
                    f"{field}.role",
                    f"a {role} message after the conversation started has no Gemini "
                    "equivalent (Gemini takes one systemInstruction, before all turns)",
                )
            system.extend(_text_parts(message.get("content"), f"{field}.content"))
        elif role == "user":
            _check_keys(message, field, {"role", "content"}, role)
            _append(contents, "user", _user_parts(message.get("content"), f"{field}.content"))
        elif role == "assistant":
            _check_keys(message, field, {"role", "content", "tool_calls"}, role)
            _append(contents, "model", _assistant_parts(message, field, calls))
        elif role == "tool":
            _check_keys(message, field, {"role", "content", "tool_call_id"}, role)
            _append(contents, "user", [_function_response(message, field, calls)])
        else:
            raise _Bad(
                f"{field}.role",
                f"role {role!r} has no Gemini equivalent (send tool results as 'tool' messages)",
            )
    if not contents:
        raise _Bad("messages", "Gemini needs at least one user or assistant message")
    return system, contents


def _check_keys(message: Mapping[str, Any], field: str, allowed: set[str], role: str) -> None:
    for key, value in message.items():
        if key in allowed or value is None:
            continue
        if key == "name":
            raise _Bad(f"{field}.name", "Gemini contents have no participant names")
        raise _Bad(f"{field}.{key}", f"{key!r} has no Gemini equivalent on a {role} message")


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if contents and contents[-1]["role"] == role:
        # One content per turn: the function responses answering one model turn must travel
        # together, and Gemini reads consecutive same-role contents as one turn anyway.
        contents[-1]["parts"].extend(parts)
        return
    contents.append({"role": role, "parts": parts})


def _text_parts(content: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content:
            raise _Bad(field, "is empty; Gemini rejects empty text parts")
        return [{"text": content}]
    if not _is_list(content) or not content:
        raise _Bad(field, "must be a non-empty string or a non-empty list of text parts")
    return [_text_part(part, f"{field}[{i}]") for i, part in enumerate(content)]


def _text_part(part: Any, field: str) -> dict[str, Any]:
    if not _is_mapping(part) or part.get("type") != "text":
        kind = part.get("type") if _is_mapping(part) else None
        raise _Bad(f"{field}.type", f"only text parts are allowed here, not {kind!r}")
    text = part.get("text")
    if not isinstance(text, str) or not text:
        raise _Bad(f"{field}.text", "must be a non-empty string")
    _only_keys(part, field, {"type", "text"}, "text")
    return {"text": text}


def _only_keys(spec: Mapping[str, Any], field: str, allowed: set[str], what: str) -> None:
    for key, value in spec.items():
        if key not in allowed and value is not None:
            raise _Bad(f"{field}.{key}", f"has no Gemini equivalent on a {what} part")


def _user_parts(content: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return _text_parts(content, field)
    if not _is_list(content) or not content:
        raise _Bad(field, "must be a non-empty string or a non-empty list of content parts")
    return [_user_part(part, f"{field}[{i}]") for i, part in enumerate(content)]


def _user_part(part: Any, field: str) -> dict[str, Any]:
    if not _is_mapping(part):
        raise _Bad(field, "a content part must be an object")
    kind = part.get("type")
    if kind == "text":
        return _text_part(part, field)
    if kind == "image_url":
        return _image(part, field)
    if kind == "input_audio":
        return _audio(part, field)
    if kind == "file":
        return _file(part, field)
    raise _Bad(f"{field}.type", f"content part type {kind!r} has no Gemini equivalent")


#: Image types Gemini reads (its vision documentation).
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}
_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*),(.*)$", re.DOTALL)


def _image(part: Mapping[str, Any], field: str) -> dict[str, Any]:
    _only_keys(part, field, {"type", "image_url"}, "image_url")
    spec = part.get("image_url")
    if not _is_mapping(spec):
        raise _Bad(f"{field}.image_url", "must be an object with a url")
    _only_keys(spec, f"{field}.image_url", {"url", "detail"}, "image_url")
    detail = spec.get("detail")
    if detail not in (None, "auto"):
        raise _Bad(
            f"{field}.image_url.detail",
            f"Gemini sets media resolution per request, not per image; remove "
            f"detail={detail!r} (or use 'auto') and set generationConfig.mediaResolution in "
            f"provider_params[{PROVIDER!r}]",
        )
    url = spec.get("url")
    where = f"{field}.image_url.url"
    if not isinstance(url, str) or not url:
        raise _Bad(where, "must be a non-empty string")
    if not url.startswith("data:"):
        raise _Bad(
            where,
            "Gemini cannot fetch images from a URL in a batch; send the image as a base64 "
            "data URL (data:image/png;base64,...)",
        )
    mime, data = _data_url(url, where)
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in _IMAGE_TYPES:
        raise _Bad(where, f"Gemini reads {', '.join(sorted(_IMAGE_TYPES))} images, not {mime}")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _audio(part: Mapping[str, Any], field: str) -> dict[str, Any]:
    _only_keys(part, field, {"type", "input_audio"}, "input_audio")
    spec = part.get("input_audio")
    if not _is_mapping(spec):
        raise _Bad(f"{field}.input_audio", "must be an object with data and format")
    _only_keys(spec, f"{field}.input_audio", {"data", "format"}, "input_audio")
    audio_format = spec.get("format")
    mime = _AUDIO_FORMATS.get(audio_format) if isinstance(audio_format, str) else None
    if mime is None:
        raise _Bad(f"{field}.input_audio.format", "must be 'wav' or 'mp3'")
    data = spec.get("data")
    return {"inlineData": {"mimeType": mime, "data": _base64(data, f"{field}.input_audio.data")}}


def _file(part: Mapping[str, Any], field: str) -> dict[str, Any]:
    _only_keys(part, field, {"type", "file"}, "file")
    spec = part.get("file")
    if not _is_mapping(spec):
        raise _Bad(f"{field}.file", "must be an object with file_data")
    _only_keys(spec, f"{field}.file", {"file_data", "filename", "file_id"}, "file")
    if spec.get("file_id") is not None:
        raise _Bad(
            f"{field}.file.file_id",
            "an OpenAI file id means nothing to Gemini; send the file as file_data (a base64 "
            "data URL)",
        )
    data_url = spec.get("file_data")
    where = f"{field}.file.file_data"
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise _Bad(where, "must be a base64 data URL (data:application/pdf;base64,...)")
    mime, data = _data_url(data_url, where)
    blob: dict[str, Any] = {"mimeType": mime, "data": data}
    filename = spec.get("filename")
    if filename is not None:
        if not isinstance(filename, str) or not filename:
            raise _Bad(f"{field}.file.filename", "must be a non-empty string")
        blob["displayName"] = filename  # Gemini's label for a blob, "a filename"
    return {"inlineData": blob}


def _data_url(url: str, field: str) -> tuple[str, str]:
    found = _DATA_URL.match(url)
    if found is None or ";base64" not in found.group(2).lower():
        raise _Bad(field, "must be a base64 data URL (data:<media type>;base64,<data>)")
    return found.group(1).strip().lower(), _base64(found.group(3), field)


def _base64(data: Any, field: str) -> str:
    if not isinstance(data, str) or not data:
        raise _Bad(field, "must be non-empty base64 data")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(field, "is not valid base64") from None
    return data


def _assistant_parts(
    message: Mapping[str, Any], field: str, calls: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif content is not None:
        if not _is_list(content):
            raise _Bad(f"{field}.content", "must be a string or a list of text parts")
        parts.extend(_text_part(p, f"{field}.content[{i}]") for i, p in enumerate(content))
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not _is_list(tool_calls):
            raise _Bad(f"{field}.tool_calls", "must be a list")
        for number, call in enumerate(tool_calls):
            parts.append(_function_call(call, f"{field}.tool_calls[{number}]", calls))
    if not parts:
        raise _Bad(f"{field}.content", "an assistant message needs text or tool_calls")
    return parts


def _function_call(call: Any, field: str, calls: dict[str, str]) -> dict[str, Any]:
    if not _is_mapping(call) or call.get("type", "function") != "function":
        kind = call.get("type") if _is_mapping(call) else None
        raise _Bad(
            f"{field}.type", f"only function tool calls have a Gemini equivalent, not {kind!r}"
        )
    _only_keys(call, field, {"id", "type", "function"}, "tool call")
    function = call.get("function")
    if not _is_mapping(function) or not isinstance(function.get("name"), str):
        raise _Bad(f"{field}.function", "must be an object with a name")
    _only_keys(function, f"{field}.function", {"name", "arguments"}, "tool call function")
    arguments = function.get("arguments") or "{}"
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        args = None
    if not _is_mapping(args):
        raise _Bad(f"{field}.function.arguments", "must be a JSON object, as a string")
    out: dict[str, Any] = {"name": function["name"], "args": args}
    call_id = call.get("id")
    if call_id is not None:
        if not isinstance(call_id, str) or not call_id:
            raise _Bad(f"{field}.id", "must be a non-empty string")
        out["id"] = call_id
        calls[call_id] = function["name"]
    return {"functionCall": out}


def _function_response(
    message: Mapping[str, Any], field: str, calls: Mapping[str, str]
) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = calls.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise _Bad(
            f"{field}.tool_call_id",
            f"{call_id!r} names no tool call of an earlier assistant message; Gemini needs the "
            "function's name with its response",
        )
    content = message.get("content")
    if isinstance(content, str):
        output = content
    else:
        output = "".join(p["text"] for p in _text_parts(content, f"{field}.content"))
    # Gemini reads a response's "output" key as the function's output (its documented form).
    return {"functionResponse": {"id": call_id, "name": name, "response": {"output": output}}}


# -- parameters


class _Params:
    """What the parameters convert to, collected before the body is assembled (tools,
    tool_choice and strictness depend on each other)."""

    def __init__(self) -> None:
        self.generation: dict[str, Any] = {}
        self.functions: list[dict[str, Any]] = []
        self.strict: set[bool] = set()
        self.tool_choice: Any = None

    def finish(self, body: dict[str, Any]) -> None:
        if self.functions:
            body["tools"] = [{"functionDeclarations": self.functions}]
        config = self._function_calling()
        if config:
            body["toolConfig"] = {"functionCallingConfig": config}
        if self.generation:
            body["generationConfig"] = self.generation

    def _function_calling(self) -> dict[str, Any] | None:
        choice = self.tool_choice
        field = "params.tool_choice"
        if choice is None or choice == "auto":
            mode, names = "AUTO", None
        elif choice == "none":
            mode, names = "NONE", None
        elif choice == "required":
            mode, names = "ANY", None
        elif _is_mapping(choice) and choice.get("type") == "function":
            function = choice.get("function")
            if not _is_mapping(function) or not isinstance(function.get("name"), str):
                raise _Bad(f"{field}.function", "must be an object with a name")
            mode, names = "ANY", [function["name"]]
        elif _is_mapping(choice) and choice.get("type") == "allowed_tools":
            mode, names = self._allowed_tools(choice.get("allowed_tools"), f"{field}.allowed_tools")
        else:
            raise _Bad(field, f"cannot be expressed for Gemini: {choice!r}")
        if names is not None:
            declared = {f["name"] for f in self.functions}
            for name in names:
                if name not in declared:
                    raise _Bad(
                        field, f"names function {name!r}, which params.tools does not declare"
                    )
        if not self.functions:
            if mode == "ANY":
                raise _Bad(field, "requires a tool call, but params.tools declares no function")
            return None  # "auto" and "none" without tools change nothing
        if True in self.strict and mode == "AUTO":
            if False in self.strict:
                raise _Bad(
                    "params.tools",
                    "mixes strict and non-strict functions; Gemini validates every function "
                    "call of a request against its schema, or none",
                )
            # Gemini's schema-validated calls; ANY already validates them.
            mode = "VALIDATED"
        config: dict[str, Any] = {"mode": mode}
        if names is not None:
            config["allowedFunctionNames"] = names
        if mode == "AUTO" and choice is None:
            return None  # Gemini's default
        return config

    @staticmethod
    def _allowed_tools(spec: Any, field: str) -> tuple[str, list[str]]:
        if not _is_mapping(spec):
            raise _Bad(field, "must be an object with mode and tools")
        if spec.get("mode") != "required":
            raise _Bad(
                f"{field}.mode",
                "Gemini restricts the callable functions only when a call is required "
                "(mode 'required')",
            )
        names: list[str] = []
        for number, tool in enumerate(spec.get("tools") or ()):
            function = tool.get("function") if _is_mapping(tool) else None
            name = function.get("name") if _is_mapping(function) else None
            if not isinstance(name, str):
                raise _Bad(f"{field}.tools[{number}]", "must be a function tool with a name")
            names.append(name)
        if not names:
            raise _Bad(f"{field}.tools", "must name at least one function")
        return "ANY", names


def _generation(name: str, check: Callable[[Any, str], Any]) -> Callable[[Any, _Params], None]:
    def convert(value: Any, params: _Params) -> None:
        params.generation[name] = check(value, name)

    return convert


def _number(value: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"params.{name}", f"must be a number, got {value!r}")
    return value


def _integer(value: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"params.{name}", f"must be an integer, got {value!r}")
    return value


def _set_max_tokens(key: str) -> Callable[[Any, _Params], None]:
    def convert(value: Any, params: _Params) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _Bad(f"params.{key}", f"must be an integer >= 1, got {value!r}")
        previous = params.generation.get("maxOutputTokens")
        if previous is not None and previous != value:
            raise _Bad(
                f"params.{key}",
                "max_tokens and max_completion_tokens differ; Gemini has one maxOutputTokens",
            )
        params.generation["maxOutputTokens"] = value

    return convert


def _set_stop(value: Any, params: _Params) -> None:
    stops = [value] if isinstance(value, str) else value
    if not _is_list(stops) or not all(isinstance(s, str) and s for s in stops):
        raise _Bad("params.stop", "must be a non-empty string or a list of them")
    if len(stops) > 5:
        raise _Bad("params.stop", f"Gemini takes at most 5 stop sequences, got {len(stops)}")
    if stops:
        params.generation["stopSequences"] = list(stops)


def _set_logprobs(value: Any, params: _Params) -> None:
    if not isinstance(value, bool):
        raise _Bad("params.logprobs", f"must be a boolean, got {value!r}")
    if value:
        params.generation["responseLogprobs"] = True


def _set_top_logprobs(value: Any, params: _Params) -> None:
    params.generation["logprobs"] = _integer(value, "top_logprobs")


def _neutral(name: str, neutral: Any, why: str) -> Callable[[Any, _Params], None]:
    """A parameter accepted only at the value that changes nothing for Gemini."""

    def convert(value: Any, params: _Params) -> None:
        if value != neutral or isinstance(value, bool) != isinstance(neutral, bool):
            raise _Bad(f"params.{name}", f"{why}; only {neutral!r} is accepted")

    return convert


def _set_modalities(value: Any, params: _Params) -> None:
    if not _is_list(value) or list(value) != ["text"]:
        raise _Bad(
            "params.modalities",
            f"only ['text'] is accepted; for other outputs set generationConfig."
            f"responseModalities in provider_params[{PROVIDER!r}]",
        )


def _set_parallel_tool_calls(value: Any, params: _Params) -> None:
    if value is not True:
        raise _Bad(
            "params.parallel_tool_calls",
            "Gemini cannot be told to make at most one function call per turn; only true "
            "(its behaviour) is accepted",
        )


def _set_tools(value: Any, params: _Params) -> None:
    if not _is_list(value):
        raise _Bad("params.tools", "must be a list")
    for number, tool in enumerate(value):
        params.functions.append(_function_declaration(tool, f"params.tools[{number}]", params))


def _set_tool_choice(value: Any, params: _Params) -> None:
    params.tool_choice = value


#: Gemini's rule for function names (its FunctionDeclaration documentation).
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")


def _function_declaration(tool: Any, field: str, params: _Params) -> dict[str, Any]:
    if not _is_mapping(tool) or tool.get("type") != "function":
        kind = tool.get("type") if _is_mapping(tool) else None
        raise _Bad(
            f"{field}.type",
            f"only function tools have a Gemini equivalent, not {kind!r}; Gemini's own tools "
            f"(googleSearch, codeExecution, ...) go in provider_params[{PROVIDER!r}]['tools']",
        )
    _only_keys(tool, field, {"type", "function"}, "tool")
    function = tool.get("function")
    if not _is_mapping(function):
        raise _Bad(f"{field}.function", "must be an object")
    name = function.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise _Bad(
            f"{field}.function.name",
            "must start with a letter or '_' and hold at most 64 letters, digits, '_', '.', "
            "':' or '-' (Gemini's rule)",
        )
    declaration: dict[str, Any] = {"name": name}
    for key, item in function.items():
        if key == "name" or item is None:
            continue
        if key == "description":
            if not isinstance(item, str):
                raise _Bad(f"{field}.function.description", "must be a string")
            declaration["description"] = item
        elif key == "parameters":
            schema = gemini_schema(item, f"{field}.function.parameters")
            if schema.get("type") != "OBJECT":
                raise _Bad(f"{field}.function.parameters", "must be a schema of type 'object'")
            if schema.get("properties"):
                declaration["parameters"] = schema
            # Gemini refuses an OBJECT without properties: a function without arguments
            # declares no parameters at all.
        elif key == "strict":
            if not isinstance(item, bool):
                raise _Bad(f"{field}.function.strict", "must be a boolean")
            params.strict.add(item)
        else:
            raise _Bad(f"{field}.function.{key}", "has no Gemini equivalent on a function")
    return declaration


def _set_response_format(value: Any, params: _Params) -> None:
    field = "params.response_format"
    if not _is_mapping(value):
        raise _Bad(field, "must be an object")
    kind = value.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        params.generation["responseMimeType"] = "application/json"
        return
    if kind != "json_schema":
        raise _Bad(f"{field}.type", f"{kind!r} cannot be expressed for Gemini")
    spec = value.get("json_schema")
    if not _is_mapping(spec):
        raise _Bad(f"{field}.json_schema", "must be an object with a schema")
    where = f"{field}.json_schema"
    _only_keys(spec, where, {"name", "description", "schema", "strict"}, "json_schema")
    if not _is_mapping(spec.get("schema")):
        raise _Bad(f"{where}.schema", "must be a JSON Schema object")
    schema = gemini_schema(spec["schema"], f"{where}.schema")
    name, description = spec.get("name"), spec.get("description")
    if isinstance(name, str) and name:
        schema.setdefault("title", name)
    if description is not None:
        if not isinstance(description, str):
            raise _Bad(f"{where}.description", "must be a string")
        if schema.setdefault("description", description) != description:
            raise _Bad(
                f"{where}.description",
                "the schema has a description of its own, and Gemini's schema has room for one",
            )
    if spec.get("strict") is not None and not isinstance(spec.get("strict"), bool):
        raise _Bad(f"{where}.strict", "must be a boolean")
    # strict or not, Gemini constrains its output to the schema.
    params.generation["responseMimeType"] = "application/json"
    params.generation["responseSchema"] = schema


def _set_top_k(value: Any, params: _Params) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad("params.top_k", f"must be an integer >= 1, got {value!r}")
    params.generation["topK"] = value


_PARAMS: dict[str, Callable[[Any, _Params], None]] = {
    "max_tokens": _set_max_tokens("max_tokens"),
    "max_completion_tokens": _set_max_tokens("max_completion_tokens"),
    "temperature": _generation("temperature", _number),
    "top_p": _generation("topP", _number),
    "top_k": _set_top_k,
    "stop": _set_stop,
    "seed": _generation("seed", _integer),
    "n": _generation("candidateCount", _integer),
    "presence_penalty": _generation("presencePenalty", _number),
    "frequency_penalty": _generation("frequencyPenalty", _number),
    "logprobs": _set_logprobs,
    "top_logprobs": _set_top_logprobs,
    "response_format": _set_response_format,
    "tools": _set_tools,
    "tool_choice": _set_tool_choice,
    "parallel_tool_calls": _set_parallel_tool_calls,
    "modalities": _set_modalities,
    "stream": _neutral("stream", False, "a batch cannot stream"),
    "store": _neutral("store", False, "Gemini keeps no OpenAI-style stored completions"),
}


# -- JSON Schema -> Gemini's Schema

#: Keywords copied as they are (Gemini's Schema spells them as JSON Schema does).
_SCHEMA_COPIED = frozenset(
    {
        "description",
        "title",
        "nullable",
        "pattern",
        "default",
        "example",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "propertyOrdering",
    }
)
#: Annotations with no effect on what is generated.
_SCHEMA_IGNORED = frozenset({"$schema", "$comment", "$id"})
_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
#: The formats Gemini's schema takes, by type (its Schema documentation).
_FORMATS = {
    "STRING": frozenset({"enum", "date-time", "date", "time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_WHY_NOT: Mapping[str, str] = {
    "oneOf": "Gemini has anyOf only (use anyOf when the alternatives cannot overlap)",
    "allOf": "Gemini has no allOf (merge the schemas)",
    "not": "Gemini has no 'not'",
    "if": "Gemini has no conditional schemas",
    "then": "Gemini has no conditional schemas",
    "else": "Gemini has no conditional schemas",
    "patternProperties": "Gemini's objects have named properties only",
    "prefixItems": "Gemini has no tuple schemas",
    "uniqueItems": "Gemini cannot require unique items",
    "multipleOf": "Gemini has no multipleOf",
    "exclusiveMinimum": "Gemini has inclusive minimum only",
    "exclusiveMaximum": "Gemini has inclusive maximum only",
    "additionalProperties": "the Gemini API accepts only additionalProperties: false",
    "examples": "Gemini's schema takes one 'example'",
}


def gemini_schema(schema: Any, field: str) -> dict[str, Any]:
    """*schema* (JSON Schema, as OpenAI takes it) as Gemini's ``Schema``.

    ``$ref`` into ``$defs``/``definitions`` is inlined (a recursive schema cannot be, and is
    refused); ``null`` in ``type`` or ``anyOf`` becomes ``nullable``; a string ``const``
    becomes a one-value ``enum``; properties keep their order (``propertyOrdering``);
    ``additionalProperties: false`` is Gemini's behaviour already (it generates the declared
    properties only) and is left out. Anything Gemini's schema cannot express raises, naming
    the keyword's path.
    """
    if not _is_mapping(schema):
        raise _Bad(field, "must be a JSON Schema object")
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if found is not None:
            if not _is_mapping(found):
                raise _Bad(f"{field}.{key}", "must be an object of schemas")
            defs.update({f"#/{key}/{name}": item for name, item in found.items()})
    return _schema(schema, field, defs, ())


def _schema(
    node: Any, field: str, defs: Mapping[str, Any], active: tuple[str, ...]
) -> dict[str, Any]:
    if not _is_mapping(node):
        raise _Bad(field, "must be a schema object")
    ref = node.get("$ref")
    if ref is not None:
        if ref not in defs:
            raise _Bad(f"{field}.$ref", f"{ref!r} names no schema under $defs or definitions")
        if ref in active:
            raise _Bad(
                f"{field}.$ref",
                f"{ref!r} is recursive; Gemini's schema has no references, and a recursive "
                "one cannot be written out",
            )
        # Keywords beside a $ref (a description) apply too, as in JSON Schema 2020-12.
        merged = {**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}}
        return _schema(merged, field, defs, (*active, ref))
    out: dict[str, Any] = {}
    nullable = False
    kind: str | None = None
    raw_type = node.get("type")
    if isinstance(raw_type, str):
        if raw_type == "null":
            raise _Bad(f"{field}.type", "a schema of type 'null' alone has no Gemini equivalent")
        kind = _gemini_type(raw_type, f"{field}.type")
    elif _is_list(raw_type):
        kinds = [t for t in raw_type if t != "null"]
        nullable = len(kinds) != len(raw_type)
        if len(kinds) != 1:
            raise _Bad(
                f"{field}.type",
                "Gemini's schema has one type (plus null); write alternatives with anyOf",
            )
        kind = _gemini_type(kinds[0], f"{field}.type")
    elif raw_type is not None:
        raise _Bad(f"{field}.type", "must be a string or a list of strings")
    for key, value in node.items():
        where = f"{field}.{key}"
        if key in ("type", "$defs", "definitions") or key in _SCHEMA_IGNORED:
            continue
        if key in _SCHEMA_COPIED:
            out[key] = list(value) if _is_list(value) else value
        elif key == "properties":
            if not _is_mapping(value):
                raise _Bad(where, "must be an object of schemas")
            out["properties"] = {
                name: _schema(item, f"{where}.{name}", defs, active) for name, item in value.items()
            }
            if len(value) > 1 and "propertyOrdering" not in node:
                out["propertyOrdering"] = list(value)
        elif key == "required":
            if not _is_list(value) or not all(isinstance(v, str) for v in value):
                raise _Bad(where, "must be a list of property names")
            out["required"] = list(value)
        elif key == "items":
            out["items"] = _schema(value, where, defs, active)
        elif key == "enum":
            if not _is_list(value) or not value or not all(isinstance(v, str) for v in value):
                raise _Bad(where, "Gemini's enums are non-empty lists of strings")
            out["enum"] = list(value)
        elif key == "const":
            if not isinstance(value, str):
                raise _Bad(where, "Gemini can only fix a string value (as a one-value enum)")
            out["enum"] = [value]
        elif key == "anyOf":
            nullable = _any_of(value, where, defs, active, out) or nullable
        elif key == "format":
            out["format"] = value
        elif key == "additionalProperties" and value is False:
            continue
        elif key in _WHY_NOT:
            raise _Bad(where, _WHY_NOT[key])
        else:
            raise _Bad(where, f"the JSON Schema keyword {key!r} has no Gemini equivalent")
    if kind is None:
        # A one-branch anyOf (besides null) was merged in, with its type.
        kind = out.get("type") or _implied_type(out)
    if kind is not None:
        out["type"] = kind
    elif "anyOf" not in out:
        raise _Bad(field, "Gemini's schema needs a type (or anyOf)")
    if "format" in out and out["format"] not in _FORMATS.get(kind or "", ()):
        allowed = ", ".join(sorted(_FORMATS.get(kind or "", ()))) or "none"
        raise _Bad(
            f"{field}.format",
            f"Gemini takes these formats for type {kind}: {allowed}; not {out['format']!r}",
        )
    if "enum" in out and kind not in (None, "STRING"):
        raise _Bad(f"{field}.enum", "Gemini's enums are strings")
    if nullable:
        out["nullable"] = True
    return out


def _gemini_type(name: Any, field: str) -> str:
    kind = _TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise _Bad(field, f"{name!r} is not a JSON Schema type Gemini has")
    return kind


def _implied_type(out: Mapping[str, Any]) -> str | None:
    if "properties" in out:
        return "OBJECT"
    if "items" in out:
        return "ARRAY"
    if "enum" in out:
        return "STRING"
    return None


def _any_of(
    value: Any,
    field: str,
    defs: Mapping[str, Any],
    active: tuple[str, ...],
    out: dict[str, Any],
) -> bool:
    """Convert an ``anyOf`` into *out*; True when one of its alternatives was ``null``."""
    if not _is_list(value) or not value:
        raise _Bad(field, "must be a non-empty list of schemas")
    nullable = False
    branches: list[dict[str, Any]] = []
    for number, branch in enumerate(value):
        if _is_mapping(branch) and branch.get("type") == "null" and len(branch) == 1:
            nullable = True
            continue
        branches.append(_schema(branch, f"{field}[{number}]", defs, active))
    if not branches:
        raise _Bad(field, "has only null alternatives")
    if len(branches) == 1:
        for key, item in branches[0].items():
            out.setdefault(key, item)
    else:
        out["anyOf"] = branches
    return nullable


# -- provider_params["gemini"]

#: Parts of the body whose entries merge with what the conversion wrote, instead of replacing it.
_MERGED = frozenset({"generationConfig", "toolConfig"})
_SNAKE = re.compile(r"_([a-z])")


def _camel(key: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def merge_native(native: Any, body: dict[str, Any]) -> None:
    """Merge ``provider_params["gemini"]`` (GenerateContentRequest fields, camelCase or
    snake_case) into *body*: its fields replace the converted ones, except that the entries of
    ``generationConfig`` and ``toolConfig`` merge into them and ``tools`` are added after the
    converted function declarations."""
    field = f"provider_params.{PROVIDER}"
    if not _is_mapping(native):
        raise _Bad(field, "must be an object of GenerateContentRequest fields")
    for raw_key, value in native.items():
        key = _camel(raw_key)
        if key == "model":
            raise _Bad(f"{field}.{raw_key}", "set the model on the request itself")
        if key in _MERGED:
            if not _is_mapping(value):
                raise _Bad(f"{field}.{raw_key}", "must be an object")
            merged = dict(body.get(key) or {})
            merged.update({_camel(k): v for k, v in value.items()})
            body[key] = merged
        elif key == "tools":
            if not _is_list(value):
                raise _Bad(f"{field}.{raw_key}", "must be a list of Gemini tools")
            body["tools"] = [*body.get("tools", ()), *value]
        else:
            body[key] = value


# -- Gemini's answers -> batchcore DTOs -------------------------------------------------------

#: google.rpc.Code numbers and names.
RPC_CODES: Mapping[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

#: The HTTP status Google APIs answer with for each google.rpc code (google/rpc/code.proto). A
#: request that failed inside a batch is classified as a call answered with that status would
#: be: RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED retryable; INVALID_ARGUMENT,
#: PERMISSION_DENIED, NOT_FOUND not.
RPC_HTTP_STATUS: Mapping[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
_HTTP_RPC = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def rpc_status(error: Mapping[str, Any]) -> str | None:
    """The google.rpc status name of a ``google.rpc.Status`` (``{"code": 8, ...}``) or of an
    HTTP-style error object (``{"code": 429, "status": "RESOURCE_EXHAUSTED"}``)."""
    status = error.get("status")
    if isinstance(status, str) and status:
        return status.upper()
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        return RPC_CODES.get(code) if code < 100 else _HTTP_RPC.get(code)
    return None


#: How a create refused for the model's queue of enqueued tokens speaks. Google answers it
#: like every quota, 429 ``RESOURCE_EXHAUSTED`` (often with the generic "You exceeded your
#: current quota"); only the message, or the quota a ``google.rpc.QuotaFailure`` detail names
#: (its metric, id or description: the rate limits page calls the limit "Batch enqueued
#: tokens"), tells it from a per-minute or spend limit.
_QUEUE_WORDS = re.compile(r"enqueued|\bqueue", re.IGNORECASE)


def speaks_of_queue(error: Mapping[str, Any]) -> bool:
    """Whether a Google error object (``{"code", "message", "status", "details"}``) is about
    the queue of enqueued tokens: its message, or a quota violation it details, says so."""
    texts = [error.get("message")]
    for detail in error.get("details") or ():
        if not isinstance(detail, Mapping) or not str(detail.get("@type", "")).endswith(
            "QuotaFailure"
        ):
            continue
        for violation in detail.get("violations") or ():
            if isinstance(violation, Mapping):
                texts += [violation.get(k) for k in ("quotaMetric", "quotaId", "description")]
    return any(isinstance(text, str) and _QUEUE_WORDS.search(text) for text in texts)


#: Wire states (``BATCH_STATE_*``) and the SDK's and documentation's (``JOB_STATE_*``, also
#: Vertex AI's), without the prefix.
BATCH_STATES: Mapping[str, BatchState] = {
    "PENDING": BatchState.VALIDATING,
    "QUEUED": BatchState.VALIDATING,
    "RUNNING": BatchState.IN_PROGRESS,
    "UPDATING": BatchState.IN_PROGRESS,
    "PAUSED": BatchState.IN_PROGRESS,
    "SUCCEEDED": BatchState.COMPLETED,
    "PARTIALLY_SUCCEEDED": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "CANCELLING": BatchState.CANCELLING,
    "CANCELLED": BatchState.CANCELLED,
    "EXPIRED": BatchState.EXPIRED,
}
_STATE_PREFIXES = ("BATCH_STATE_", "JOB_STATE_")
#: How long Gemini lets a batch run or wait before it expires (its batch documentation).
EXPIRY = timedelta(hours=48)


def _metadata(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    found = operation.get("metadata")
    return found if _is_mapping(found) else {}


def raw_state(operation: Mapping[str, Any]) -> str:
    state = _metadata(operation).get("state")
    return state if isinstance(state, str) and state else "BATCH_STATE_UNSPECIFIED"


def batch_state(operation: Mapping[str, Any]) -> BatchState:
    """The normalised state of a batch. An unknown (or unspecified) state is logged and read
    as in progress, so the batch keeps being polled until it says it has ended."""
    state = raw_state(operation)
    bare = state.upper()
    for prefix in _STATE_PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix) :]
            break
    found = BATCH_STATES.get(bare)
    if found is not None:
        return found
    log.warning(
        "gemini: batch %s has state %r, unknown to this version of batchcore-gemini; "
        "treating it as in progress",
        operation.get("name"),
        state,
    )
    return BatchState.IN_PROGRESS


def _count(value: Any) -> int | None:
    # int64 fields arrive as JSON strings in Google's JSON encoding.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def batch_created_at(operation: Mapping[str, Any]) -> datetime | None:
    """When the batch was created, or None when it does not say readably."""
    try:
        return parse_timestamp(_metadata(operation).get("createTime"))
    except ValueError:
        return None


def display_name(operation: Mapping[str, Any]) -> str | None:
    name = _metadata(operation).get("displayName")
    return name if isinstance(name, str) else None


_TIMESTAMPS = ("createTime", "updateTime", "endTime")


def batch_status(operation: Mapping[str, Any]) -> BatchStatus:
    """A batch (the long-running operation ``batches/...``) as a :class:`BatchStatus`.

    Counts come from ``batchStats`` (``requestCount``, ``successfulRequestCount``,
    ``failedRequestCount``); ``expires_at`` is 48 hours after creation (Gemini's documented
    limit); a failed batch's ``error`` becomes its one :class:`BatchError`. The operation is
    kept in ``raw``.
    """
    metadata = _metadata(operation)
    stats = metadata.get("batchStats")
    stats = stats if _is_mapping(stats) else {}
    timestamps: dict[str, Any] = {}
    for key in _TIMESTAMPS:
        try:
            parsed = parse_timestamp(metadata.get(key))
        except ValueError:
            parsed = None
        if parsed is not None:
            timestamps[key] = parsed
    created = timestamps.get("createTime")
    errors: list[BatchError] = []
    error = operation.get("error")
    if _is_mapping(error):
        message = error.get("message")
        errors.append(
            BatchError(
                code=rpc_status(error),
                message=message if isinstance(message, str) and message else "the batch failed",
            )
        )
    return BatchStatus(
        provider=PROVIDER,
        batch_id=str(operation.get("name") or metadata.get("name")),
        state=batch_state(operation),
        raw_status=raw_state(operation),
        total=_count(stats.get("requestCount")),
        completed=_count(stats.get("successfulRequestCount")),
        failed=_count(stats.get("failedRequestCount")),
        created_at=created,
        expires_at=None if created is None else created + EXPIRY,
        ended_at=timestamps.get("endTime"),
        timestamps=timestamps,
        errors=errors,
        raw=operation,
    )


def _output(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    output = _metadata(operation).get("output")
    if _is_mapping(output):
        return output
    response = operation.get("response")
    return response if _is_mapping(response) else {}


def inlined_responses(operation: Mapping[str, Any]) -> Sequence[Any] | None:
    """The inline responses of an ended inline batch, or None for a batch without them."""
    holder = _output(operation).get("inlinedResponses")
    found = holder.get("inlinedResponses") if _is_mapping(holder) else None
    return found if _is_list(found) else None


def responses_file(operation: Mapping[str, Any]) -> str | None:
    """The name of the responses file of an ended file batch (``files/...``), or None."""
    name = _output(operation).get("responsesFile")
    return name if isinstance(name, str) and name else None


def inline_request_keys(operation: Mapping[str, Any]) -> Iterator[str] | None:
    """The keys of an inline batch's requests, when the batch shows its input; else None."""
    config = _metadata(operation).get("inputConfig")
    holder = config.get("requests") if _is_mapping(config) else None
    requests = holder.get("requests") if _is_mapping(holder) else None
    if not _is_list(requests):
        return None
    return (key for key in map(entry_key, requests) if key is not None)


def entry_key(entry: Any) -> str | None:
    """The key of one inline response (``metadata.key``) or responses-file line (``key``)."""
    if not _is_mapping(entry):
        return None
    key = entry.get("key")
    if key is None:
        metadata = entry.get("metadata")
        key = metadata.get("key") if _is_mapping(metadata) else None
    return key if isinstance(key, str) else None


#: Finish reasons that mean Gemini withheld (part of) the answer: read as a refusal.
REFUSAL_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)


def batch_result(
    entry: Any, *, result_error: ResultErrorBuilder, batch_id: str | None = None
) -> BatchResult:
    """One inline response or responses-file line as a :class:`BatchResult`.

    ``response``: ``text`` is every text part of the first candidate, in order (thought parts
    left out); a blocked prompt or a finish reason of :data:`REFUSAL_FINISH_REASONS` sets
    ``refusal`` (the request ran and was billed: it succeeded); ``usage`` from
    ``usageMetadata``. ``error`` (a google.rpc.Status): errored, classified by its code's HTTP
    equivalent (:data:`RPC_HTTP_STATUS`); ``CANCELLED`` means the request never ran (cancelled,
    retryable). Raises ValueError for an entry without a key or without either.
    """
    key = entry_key(entry)
    if key is None:
        raise ValueError("the entry has no key")
    response = entry.get("response")
    error = entry.get("error")
    if _is_mapping(error):
        status = rpc_status(error)
        if status == "CANCELLED":
            return BatchResult.unfinished(key, ResultStatus.CANCELLED, batch_id=batch_id)
        message = error.get("message")
        return BatchResult(
            custom_id=key,
            status=ResultStatus.ERRORED,
            response=error,
            error=result_error(
                code=None if status is None else status.lower(),
                message=message if isinstance(message, str) and message else None,
                status_code=None if status is None else RPC_HTTP_STATUS.get(status),
            ),
            batch_id=batch_id,
        )
    if not _is_mapping(response):
        raise ValueError(f"the entry of {key!r} has neither a response nor an error")
    return BatchResult(
        custom_id=key,
        status=ResultStatus.SUCCEEDED,
        response=response,
        text=_text(response),
        usage=_usage(response.get("usageMetadata")),
        batch_id=batch_id,
        refusal=_refusal(response),
    )


def _first_candidate(response: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = response.get("candidates")
    if _is_list(candidates) and candidates and _is_mapping(candidates[0]):
        return candidates[0]
    return None


def _text(response: Mapping[str, Any]) -> str | None:
    candidate = _first_candidate(response)
    content = candidate.get("content") if candidate is not None else None
    parts = content.get("parts") if _is_mapping(content) else None
    if not _is_list(parts):
        return None
    texts = [
        part["text"]
        for part in parts
        if _is_mapping(part) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    return "".join(texts) if texts else None


def _refusal(response: Mapping[str, Any]) -> str | None:
    feedback = response.get("promptFeedback")
    blocked = feedback.get("blockReason") if _is_mapping(feedback) else None
    if isinstance(blocked, str) and blocked and blocked != "BLOCKED_REASON_UNSPECIFIED":
        detail = feedback.get("blockReasonMessage") if _is_mapping(feedback) else None
        return _sentence(f"Gemini blocked the prompt ({blocked})", detail, feedback)
    candidate = _first_candidate(response)
    if candidate is not None and candidate.get("finishReason") in REFUSAL_FINISH_REASONS:
        reason = candidate["finishReason"]
        return _sentence(
            f"Gemini withheld the answer (finishReason {reason})",
            candidate.get("finishMessage"),
            candidate,
        )
    return None


def _sentence(what: str, detail: Any, holder: Any) -> str:
    ratings = holder.get("safetyRatings") if _is_mapping(holder) else None
    categories = [
        str(rating.get("category"))
        for rating in (ratings if _is_list(ratings) else ())
        if _is_mapping(rating) and rating.get("blocked")
    ]
    text = what
    if categories:
        text += f"; blocked categories: {', '.join(categories)}"
    if isinstance(detail, str) and detail:
        text += f": {detail}"
    return text + "."


def _usage(usage: Any) -> Usage | None:
    """Gemini's ``usageMetadata`` in batchcore's terms: ``promptTokenCount`` is the whole input
    (cached tokens included), the output is the answer plus the thinking (both billed as
    output)."""
    if not _is_mapping(usage):
        return None
    prompt = _count(usage.get("promptTokenCount"))
    answer = _count(usage.get("candidatesTokenCount"))
    thoughts = _count(usage.get("thoughtsTokenCount"))
    output = None if answer is None and thoughts is None else (answer or 0) + (thoughts or 0)
    total = _count(usage.get("totalTokenCount"))
    if total is None and prompt is not None and output is not None:
        total = prompt + output
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=total,
        cache_read_tokens=_count(usage.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )
