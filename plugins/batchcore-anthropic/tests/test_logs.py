"""The API key is in no log record: a whole batch (submit, poll, fetch) and the failures of a
server that echoes the key in its 401 and 400 bodies, run with every logger at DEBUG (this
package's, batchcore's, and those of ``requests``' HTTP library, urllib3)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from batchcore import AuthenticationError, BatchRequest, InvalidRequestError
from batchcore.testing import ManualClock
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator, error_fault

CREATE = ("POST", "/v1/messages/batches")
RETRIEVE = ("GET", "/v1/messages/batches/{batch_id}")
RESULTS = ("GET", "/v1/messages/batches/{batch_id}/results")
LOGGERS = ("", "batchcore", "batchcore_anthropic", "urllib3", "requests")


def chat(custom_id: str) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": f"Hi {custom_id}"}],
        params={"max_tokens": 16},
    )


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would see it: message, arguments, exception and stack."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        f"{formatter.format(record)} {record.args!r} {record.msg!r}" for record in records
    )


def test_the_key_is_in_no_log_record(
    make_provider: Callable[..., AnthropicBatchProvider],
    emulator: AnthropicEmulator,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = emulator.api_key
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    provider = make_provider()

    # A whole batch.
    [payload] = provider.prepare_payloads([chat("a"), chat("b")])
    handle = provider.submit(payload)
    payload.discard()
    clock.advance(120)
    assert provider.poll_status(handle).is_terminal
    assert len(list(provider.fetch_results(handle))) == 2

    # A server that echoes the key, on every kind of call.
    echoed = f"invalid x-api-key {key}: this key cannot be used here"

    def submit_again() -> None:
        [again] = provider.prepare_payloads([chat("c")])
        try:
            provider.submit(again)
        finally:
            again.discard()

    calls: dict[tuple[str, str], Callable[[], object]] = {
        CREATE: submit_again,
        RETRIEVE: lambda: provider.poll_status(handle),
        RESULTS: lambda: list(provider.fetch_results(handle)),
    }
    for route, call in calls.items():
        for status, error in ((401, AuthenticationError), (400, InvalidRequestError)):
            emulator.inject(*route, error_fault(status, message=echoed))
            with pytest.raises(error):
                call()

    records = caplog.records
    assert any(record.name.startswith("urllib3") for record in records)  # DEBUG was captured
    logged = _everything_logged(records)
    assert key not in logged
