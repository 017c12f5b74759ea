"""An emulator of Groq's Files and Batches API, for tests and demos, and the ``groq`` sandbox.

Groq's Batch API is OpenAI's, so :class:`GroqEmulator` is batchcore-openai's
:class:`~batchcore_openai.testing.OpenAIEmulator` with Groq's differences::

    from batchcore.testing import ManualClock
    from batchcore_groq import GroqBatchProvider
    from batchcore_groq.testing import GroqEmulator

    with GroqEmulator(clock=ManualClock()) as emulator:
        provider = GroqBatchProvider(
            config={"base_url": emulator.url + "/openai/v1", "api_key": "gsk-test-key"}
        )
        ...

What differs from the OpenAI emulator, as Groq does it:

* the API lives under ``/openai/v1`` (``CREATE_ROUTE`` is ``POST /openai/v1/batches``; the
  OpenAI emulator's other prefixes, ``/v1`` and ``/openai``, still answer);
* ``completion_window`` takes any duration from ``24h`` to ``7d`` (hours or days), and each
  batch expires at the end of its own window; other values get a 400;
* only ``/v1/chat/completions`` batches are created; other endpoints get a 400;
* an input file holds at most 50,000 requests and 100,000,000 bytes (constructor options);
* ``GET /openai/v1/batches`` answers ``{"object": "list", "data": [...]}``, newest first, with
  no cursor fields, as Groq's SDK types it;
* ``echo_metadata=False`` leaves ``metadata`` out of Batch objects, to check that a lost create
  is still found (by its uploaded file) if Groq ever stops echoing it;
* Groq documents no batch queue limit, so there is none unless ``queue_cap`` asks for one
  (then a batch over it fails validation with OpenAI's ``token_limit_exceeded``, to rehearse
  a limit Groq might set);
* what Groq refuses in a request, answered when the request runs as an error-file line with
  HTTP 400 (:func:`groq_request_rules`, the emulator's own table, written from Groq's
  documentation and not read from the provider): ``logprobs``, ``top_logprobs``,
  ``logit_bias``, a message ``name``, ``n`` other than 1, and ``response_format``
  ``json_schema`` on models without structured output (``strict: true`` only on GPT-OSS 20B
  and 120B). A request for structured output that Groq takes is answered with JSON valid
  against its schema.

Each difference is one of the OpenAI emulator's options; everything else (upload, lifecycle on
the clock, per-request failures on demand, faults, ``lost_create``, inspection) is the OpenAI
emulator's; see its documentation.
"""

from __future__ import annotations

import contextlib
import fnmatch
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from batchcore.plugin import CHAT_COMPLETIONS
from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap
from batchcore_groq import _mapping as groq
from batchcore_openai.testing import OpenAIEmulator, Refusal

__all__ = [
    "API_PATH",
    "BEST_EFFORT_JSON_SCHEMA_MODELS",
    "REFUSED_PARAMS",
    "STRICT_JSON_SCHEMA_MODELS",
    "GroqEmulator",
    "groq_request_rules",
    "sandbox",
]

#: The path prefix of Groq's API.
API_PATH = groq.API_PATH

# -- what Groq refuses in a request -----------------------------------------------------------
# The emulator's own table, written from Groq's documentation (not read from the provider,
# whose offline check it exists to test). Groq's exact wording is known only for logprobs
# ("`logprobs` is not supported with this model", groq/groq-python#25) and json_schema ("This
# model does not support response format `json_schema`"); the other messages are the
# emulator's.

#: "will result in a 400 error if they are supplied" (console.groq.com/docs/openai); a null
#: value is taken as not supplied.
REFUSED_PARAMS = ("logprobs", "top_logprobs", "logit_bias")
#: console.groq.com/docs/structured-outputs, "Supported models": strict mode (constrained
#: decoding) and best-effort mode.
STRICT_JSON_SCHEMA_MODELS = ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
BEST_EFFORT_JSON_SCHEMA_MODELS = (
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-safeguard-20b",
    "moonshotai/kimi-k2-instruct",
    "moonshotai/kimi-k2-instruct-0905",
    "meta-llama/llama-4-scout-17b-16e-instruct",
)


def groq_request_rules(endpoint: str, body: Mapping[str, Any]) -> Refusal | None:
    """What Groq's API refuses in a chat completions *body* (see the module documentation)."""
    if endpoint != CHAT_COMPLETIONS:
        return None
    for param in REFUSED_PARAMS:
        if body.get(param) is not None:
            return Refusal(
                message=f"`{param}` is not supported with this model",
                param=param,
                code="unsupported_parameter",
            )
    n = body.get("n")
    if n is not None and n != 1:
        return Refusal(message="'n' : number must be at most 1", param="n", code="invalid_value")
    messages = body.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else ()):
        if isinstance(message, Mapping) and message.get("name") is not None:
            return Refusal(
                message=f"'messages.{index}.name' : property 'name' is unsupported",
                param=f"messages[{index}].name",
                code="unsupported_parameter",
            )
    return _json_schema_refusal(body)


def _json_schema_refusal(body: Mapping[str, Any]) -> Refusal | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    strict = isinstance(spec, Mapping) and spec.get("strict") is True
    models = STRICT_JSON_SCHEMA_MODELS if strict else BEST_EFFORT_JSON_SCHEMA_MODELS
    model = body.get("model")
    if isinstance(model, str) and any(fnmatch.fnmatchcase(model, m) for m in models):
        return None
    what = "strict mode for response format" if strict else "response format"
    return Refusal(
        message=f"This model does not support {what} `json_schema`. See supported models at "
        "https://console.groq.com/docs/structured-outputs#supported-models",
        param="response_format",
        code=None,
    )


class GroqEmulator(OpenAIEmulator):
    """Groq's Files and Batches API on 127.0.0.1 (see the module docs). Clients use
    ``url + "/openai/v1"``.

    Takes the OpenAI emulator's *clock*, phase durations, *api_key*, *echo_metadata*,
    *queue_cap* and *seed*, plus *max_requests* / *max_bytes* (Groq's limits by default). Also a
    ``ContractBackend`` for batchcore's conformance kit.
    """

    WORKDIR_PREFIX = "batchcore-groq-emulator-"
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = ("POST", API_PATH + "/batches")

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        validating_seconds: float = 60.0,
        processing_seconds: float = 600.0,
        finalizing_seconds: float = 60.0,
        cancelling_seconds: float = 60.0,
        api_key: str | None = None,
        max_requests: int = groq.GROQ_LIMITS.max_requests,
        max_bytes: int = groq.GROQ_LIMITS.max_bytes,
        echo_metadata: bool = True,
        queue_cap: QueueCap | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            clock=clock,
            validating_seconds=validating_seconds,
            processing_seconds=processing_seconds,
            finalizing_seconds=finalizing_seconds,
            cancelling_seconds=cancelling_seconds,
            api_key=api_key,
            max_requests=max_requests,
            max_bytes=max_bytes,
            completion_windows=groq.COMPLETION_WINDOWS,
            endpoints=groq.BATCH_ENDPOINTS,
            batch_list_cursors=False,  # Groq's SDK types the list as {"object", "data"}
            echo_metadata=echo_metadata,
            queue_cap=queue_cap,
            request_rules=groq_request_rules,
            seed=seed,
        )


# -- the sandbox (the CLI runs on it with --sandbox) ------------------------------------------


@contextlib.contextmanager
def sandbox(*, clock: ManualClock | Callable[[], float] | None = None) -> Iterator[dict[str, Any]]:
    """Run a Groq emulator on the real clock (or *clock*), where a batch ends within a few
    seconds, and yield the ``groq`` provider config that points at it."""
    key = "gsk_sandbox_" + secrets.token_hex(16)
    with GroqEmulator(
        clock=clock or time.time,
        api_key=key,
        validating_seconds=0.5,
        processing_seconds=2.0,
        finalizing_seconds=0.5,
        cancelling_seconds=0.5,
    ) as emulator:
        yield {"base_url": emulator.url + API_PATH, "api_key": key}
