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
  a limit Groq might set).

Each difference is one of the OpenAI emulator's options; everything else (upload, lifecycle on
the clock, per-request failures on demand, faults, ``lost_create``, inspection) is the OpenAI
emulator's; see its documentation.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from batchcore.testing import ManualClock
from batchcore.testing.emulation import QueueCap
from batchcore_groq import _mapping as groq
from batchcore_openai.testing import OpenAIEmulator

__all__ = ["API_PATH", "GroqEmulator", "sandbox"]

#: The path prefix of Groq's API.
API_PATH = groq.API_PATH


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
