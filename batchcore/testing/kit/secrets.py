"""Secrets: the API key shows nowhere a user or a log can see."""

from __future__ import annotations

import json
import logging

import pytest

from batchcore.testing.kit.failures import fail
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["SecretTests"]


def _check_not_shown(secret: str, shown: dict[str, str]) -> None:
    leaks = [where for where, text in shown.items() if secret in text]
    if leaks:
        fail(f"the API key appears in {', '.join(leaks)}")


class SecretTests(KitFixtures):
    """Where the API key must never appear."""

    __test__ = False

    def test_secrets_never_shown(
        self, contract_kit: ContractKit, caplog: pytest.LogCaptureFixture
    ) -> None:
        secret = contract_kit.require_secret()
        caplog.set_level(logging.DEBUG)
        provider = contract_kit.provider
        shown: dict[str, str] = {
            "repr(provider)": repr(provider),
            "str(provider)": str(provider),
            "provider.config": repr(dict(provider.config)),
        }
        requests = contract_kit.requests(2, "secret")
        for payload in contract_kit.prepare(requests):
            shown["repr(payload)"] = repr(payload)
            if payload.path is not None:
                shown["the payload file"] = payload.path.read_text("utf-8", errors="replace")
        handle = contract_kit.submit(requests)
        shown["the handle"] = json.dumps(handle.to_dict(), default=repr) + repr(handle)
        _check_not_shown(secret, shown)  # before the rest, which needs a backend
        status = contract_kit.wait_terminal(handle)
        shown["the status"] = (
            json.dumps(status.to_dict(), default=repr) + repr(status) + repr(status.raw)
        )
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        shown["the results"] = json.dumps(
            [r.to_dict() for r in results.values()], default=repr
        ) + repr(list(results.values()))
        if "unauthorized" in contract_kit.capabilities.faults:
            rejected = contract_kit.rebuild(max_retries=0)
            contract_kit.inject("unauthorized")
            error = contract_kit.expect_error(lambda: rejected.poll_status(handle), "a 401")
            contract_kit.check_no_secret_in_error(error, "the error of a 401")
        shown["the logs"] = caplog.text
        _check_not_shown(secret, shown)
