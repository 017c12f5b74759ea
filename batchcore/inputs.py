"""Reading requests from the two input formats batchcore accepts.

* a **unified request**: ``{"custom_id", "model", "messages", ...}``, where every other key is a
  generation parameter (``max_tokens``, ...), except ``endpoint``, ``params`` (an explicit
  object of parameters) and ``provider_params``;
* an **OpenAI batch input line**: ``{"custom_id", "method", "url", "body"}``, so a user's
  existing OpenAI batch file runs on any provider.

Both are read by :func:`from_json`; ``BatchRequest.from_json`` is the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from batchcore.errors import InvalidRequestError
from batchcore.models import CHAT_COMPLETIONS, BatchRequest

__all__ = ["from_json", "from_openai_line"]


def _sid(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _load_object(line: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if type(line) is dict or isinstance(line, Mapping):  # the exact test skips the ABC check
        return line
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"a request line must be a JSON object, got {type(obj).__name__}")
    return obj


def from_openai_line(line: str | bytes | Mapping[str, Any]) -> BatchRequest:
    """Read one line of an OpenAI batch input file (``custom_id, method, url, body``)."""
    obj = _load_object(line)
    cid = obj.get("custom_id")
    method = obj.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        raise InvalidRequestError(
            f"request {cid!r}: method must be POST, got {method!r}",
            custom_id=_sid(cid),
            field="method",
        )
    url = obj.get("url")
    if not isinstance(url, str):
        raise InvalidRequestError(
            f"request {cid!r}: url is required", custom_id=_sid(cid), field="url"
        )
    # Azure's older samples omit the /v1 prefix; both spellings mean the same endpoint.
    endpoint = (
        url if url.startswith("/v1/") else "/v1" + (url if url.startswith("/") else "/" + url)
    )
    body = obj.get("body")
    if not isinstance(body, Mapping):
        raise InvalidRequestError(
            f"request {cid!r}: body must be an object", custom_id=_sid(cid), field="body"
        )
    params = dict(body)
    model = params.pop("model", None)
    messages = params.pop("messages", ()) if endpoint == CHAT_COMPLETIONS else ()
    if not isinstance(messages, (list, tuple)):
        raise InvalidRequestError(
            f"request {cid!r}: body.messages must be a list",
            custom_id=_sid(cid),
            field="body.messages",
        )
    return BatchRequest(
        custom_id=cid,  # type: ignore[arg-type]  # checked by BatchRequest, naming the field
        model=model,
        messages=messages,
        params=params,
        endpoint=endpoint,
    )


def from_json(line: str | bytes | Mapping[str, Any]) -> BatchRequest:
    """Read either input format (see the module docstring) from a JSON text or a decoded
    object. Raises :class:`InvalidRequestError` naming the custom_id and field at fault."""
    obj = _load_object(line)
    if "body" in obj or "url" in obj:
        return from_openai_line(obj)
    fields = dict(obj)
    pop = fields.pop
    cid = pop("custom_id", None)
    model = pop("model", None)
    messages = pop("messages", ())
    endpoint = pop("endpoint", CHAT_COMPLETIONS)
    provider_params = pop("provider_params", None)
    explicit = pop("params", None)
    if explicit is not None:
        if not isinstance(explicit, Mapping):
            raise InvalidRequestError(
                f"request {cid!r}: params must be an object",
                custom_id=_sid(cid),
                field="params",
            )
        fields = {**explicit, **fields}
    if not isinstance(messages, (list, tuple)):
        raise InvalidRequestError(
            f"request {cid!r}: messages must be a list", custom_id=_sid(cid), field="messages"
        )
    return BatchRequest(
        custom_id=cid,
        model=model,
        messages=messages,
        params=fields,
        endpoint=endpoint,
        provider_params=provider_params if provider_params is not None else {},
    )
