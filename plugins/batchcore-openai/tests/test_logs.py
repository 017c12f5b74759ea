"""The API key is in no log record: a whole batch (submit, poll, fetch) and the failures of a
server that echoes the key in its 401 and 400 bodies, run with every logger at DEBUG (this
package's, batchcore's, the ``openai`` SDK's and those of its HTTP stack, httpx and httpcore)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from openai_support import API_KEY, FINISHED, chat

from batchcore.errors import AuthenticationError, InvalidRequestError
from batchcore.testing import Fault
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

LOGGERS = ("", "batchcore", "batchcore_openai", "openai", "httpx", "httpcore", "urllib3")


def _echoing(status: int) -> Fault:
    return Fault.status(
        status,
        body={
            "error": {
                "message": f"Incorrect API key provided: {API_KEY}. You can find your key at ...",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would see it: message, arguments, exception and stack."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        f"{formatter.format(record)} {record.args!r} {record.msg!r}" for record in records
    )


@pytest.mark.parametrize("flavour", ["openai", "azure"])
def test_the_key_is_in_no_log_record(
    flavour: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    azure = flavour == "azure"
    emulator: OpenAIEmulator = request.getfixturevalue("azure_emulator" if azure else "emulator")
    make: Callable[..., OpenAIBatchProvider] = request.getfixturevalue(
        "make_azure_provider" if azure else "make_provider"
    )
    model, prefix = ("batch-gpt4o", "/openai/v1") if azure else ("gpt-4o-mini", "/v1")
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    provider = make()

    # A whole batch.
    [payload] = provider.prepare_payloads([chat("a", model=model), chat("b", model=model)])
    handle = provider.submit(payload)
    payload.discard()
    emulator.advance(FINISHED)
    assert provider.poll_status(handle).is_terminal
    assert len(list(provider.fetch_results(handle))) == 2

    # A server that echoes the key, on every kind of call.
    routes = {
        "create": ("POST", prefix + "/batches"),
        "retrieve": ("GET", prefix + "/batches/{batch_id}"),
        "content": ("GET", prefix + "/files/{file_id}/content"),
    }

    def submit_again() -> None:
        [again] = provider.prepare_payloads([chat("c", model=model)])
        try:
            provider.submit(again)
        finally:
            again.discard()

    calls: dict[str, Callable[[], object]] = {
        "create": submit_again,
        "retrieve": lambda: provider.poll_status(handle),
        "content": lambda: list(provider.fetch_results(handle)),
    }
    for call, (method, route) in routes.items():
        for status, error in ((401, AuthenticationError), (400, InvalidRequestError)):
            emulator.server.inject(method, route, _echoing(status))
            with pytest.raises(error):
                calls[call]()

    records = caplog.records
    assert any(record.name.startswith("openai") for record in records)  # DEBUG was captured
    assert any(record.name.startswith("httpcore") for record in records)
    assert API_KEY not in _everything_logged(records)
