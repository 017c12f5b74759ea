"""How the job store keeps a request: its OpenAI body bytes, once.

A request row holds the bytes :meth:`BatchRequest.openai_body_json` already computed (checked
JSON, the model inside), and ``extra`` only for what the body does not say: an endpoint other
than chat completions, ``provider_params``. A job's requests usually share a long start (the
model, a system prompt, few-shot examples): the job keeps that start once
(``jobs.body_prefix``, the longest start most of its first requests share) and each row only
the rest. A stored body that starts with ``{`` is whole (every JSON object does); anything else
is the rest after the job's prefix, so rows that do not share the prefix are simply kept whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from batchcore.models import CHAT_COMPLETIONS, BatchRequest

__all__ = ["common_prefix", "decode", "encode_extra", "strip_prefix"]

#: How many of a job's first requests decide the start its requests share.
_SAMPLE = 1000


def common_prefix(bodies: Sequence[bytes]) -> bytes:
    """The longest start that at least half of *bodies* share (kept once per job): a few
    requests unlike the others (another model, another endpoint) do not spoil it."""
    ordered = sorted(bodies[:_SAMPLE])
    span = max(2, (len(ordered) + 1) // 2)
    best = b""
    # Sorted, the bodies sharing a start sit together: a run of `span` of them shares what
    # its first and last share.
    for first in range(len(ordered) - span + 1):
        shared = _shared_start(ordered[first], ordered[first + span - 1])
        if len(shared) > len(best):
            best = shared
    return best


def _shared_start(a: bytes, b: bytes) -> bytes:
    low, high = 0, min(len(a), len(b))
    while low < high:  # compared a slice at a time (in C), not a byte at a time
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return a[:low]


def strip_prefix(body: bytes, prefix: bytes) -> bytes:
    """*body* as a row keeps it: without *prefix* when it starts with it (and what is left
    cannot be taken for a whole body), else whole."""
    if prefix and body.startswith(prefix):
        rest = body[len(prefix) :]
        if rest[:1] != b"{":
            return rest
    return body


def encode_extra(request: BatchRequest) -> bytes | None:
    """What a row keeps besides the body: the endpoint and provider_params when not default."""
    if request.endpoint == CHAT_COMPLETIONS and not request.provider_params:
        return None
    extra: dict[str, Any] = {}
    if request.endpoint != CHAT_COMPLETIONS:
        extra["endpoint"] = request.endpoint
    if request.provider_params:
        extra["provider_params"] = request.provider_params
    return orjson.dumps(extra)


def decode(
    custom_id: str, stored: bytes, extra: bytes | None, prefix: bytes | None
) -> BatchRequest:
    """The request a row keeps (see :func:`strip_prefix`, :func:`encode_extra`)."""
    body = orjson.loads(stored if stored[:1] == b"{" or not prefix else prefix + stored)
    more = orjson.loads(extra) if extra else {}
    return BatchRequest(
        custom_id=custom_id,
        model=body.pop("model"),
        messages=body.pop("messages", ()),
        params=body,
        endpoint=more.get("endpoint", CHAT_COMPLETIONS),
        provider_params=more.get("provider_params") or {},
    )
