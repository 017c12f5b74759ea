"""Errors: vendor failures become batchcore errors, transient ones are retried through
``provider.sleep``, what belongs to another provider is refused before any call,
``fetch_results`` raises when called, not once iterated, and a garbled results download raises
instead of losing a result."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import attrs
import pytest

from batchcore.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderError,
    ResponseLostError,
    ResultsNotReadyError,
)
from batchcore.models import BatchHandle, BatchResult
from batchcore.testing.contract_backend import (
    CORRUPT_RESULT_LINE,
    EXPECTED_FAULT_ERRORS,
    FAULT_KINDS,
    TRANSIENT_FAULT_KINDS,
)
from batchcore.testing.kit.failures import fail, qualified
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["ErrorTests"]

_MISSING_BATCH_ID = "batchcore-contract-missing"
_OTHER_PROVIDER = "batchcore-contract-other"


class ErrorTests(KitFixtures):
    """How calls fail."""

    __test__ = False

    @pytest.mark.parametrize("kind", FAULT_KINDS)
    def test_fault_maps_to_a_batchcore_error(self, contract_kit: ContractKit, kind: str) -> None:
        provider = contract_kit.rebuild(max_retries=0)
        handle = contract_kit.submit(contract_kit.requests(1, f"fault-{kind}"), provider)
        backend = contract_kit.inject(kind)
        before = backend.call_count()
        error = contract_kit.expect_error(
            lambda: provider.poll_status(handle), f"poll_status after fault {kind!r}"
        )
        expected = EXPECTED_FAULT_ERRORS[kind]
        contract_kit.check_batchcore_error(error, expected, f"poll_status after fault {kind!r}")
        if backend.call_count() - before != 1:
            fail(f"with max_retries=0 the provider made {backend.call_count() - before} calls")
        contract_kit.check_status(provider.poll_status(handle), handle)

    @pytest.mark.parametrize("kind", TRANSIENT_FAULT_KINDS)
    def test_transient_fault_is_retried(self, contract_kit: ContractKit, kind: str) -> None:
        provider = contract_kit.rebuild(max_retries=2)
        handle = contract_kit.submit(contract_kit.requests(1, f"retry-{kind}"), provider)
        backend = contract_kit.inject(kind)
        contract_kit.sleeps.clear()
        before = backend.call_count()
        try:
            status = provider.poll_status(handle)
        except Exception as exc:
            fail(f"one fault {kind!r} with max_retries=2 failed poll_status: {exc!r}")
        contract_kit.check_status(status, handle)
        if backend.call_count() - before < 2:
            fail(f"after fault {kind!r} the provider did not call again")
        if len(contract_kit.sleeps) != 1:
            fail(
                f"one retry should wait once through provider.sleep; it waited "
                f"{contract_kit.sleeps} (retry with batchcore.retry.retry_call and sleep="
                "self.sleep, and turn any SDK's own retries off)"
            )
        if kind == "rate_limit" and contract_kit.sleeps != [0.0]:
            fail(f"the server said retry-after: 0, the provider waited {contract_kit.sleeps}")

    def test_permanent_fault_is_not_retried(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.rebuild(max_retries=2)
        handle = contract_kit.submit(contract_kit.requests(1, "permanent"), provider)
        backend = contract_kit.inject("unauthorized")
        contract_kit.sleeps.clear()
        before = backend.call_count()
        error = contract_kit.expect_error(lambda: provider.poll_status(handle), "a 401")
        contract_kit.check_batchcore_error(error, AuthenticationError, "poll_status after a 401")
        if backend.call_count() - before != 1 or contract_kit.sleeps:
            fail(
                f"a 401 was retried: {backend.call_count() - before} calls, waits "
                f"{contract_kit.sleeps}"
            )

    @pytest.mark.parametrize("operation", ["poll_status", "fetch_results", "cancel"])
    def test_unknown_batch_raises_a_batchcore_error(
        self, contract_kit: ContractKit, operation: str
    ) -> None:
        provider = contract_kit.rebuild(max_retries=0)
        handle = BatchHandle(
            provider=contract_kit.name,
            batch_id=_MISSING_BATCH_ID,
            created_at=datetime.now(timezone.utc),
        )
        method = getattr(provider, operation)
        what = f"{operation} of a batch that does not exist"
        error = contract_kit.expect_error(
            lambda: method(handle), what, eager=operation == "fetch_results"
        )
        contract_kit.check_batchcore_error(error, ProviderError, what)

    def test_a_garbled_results_line_raises_and_loses_nothing(
        self, contract_kit: ContractKit
    ) -> None:
        # Skipping the line would bring its request back missing: resubmitted, paid twice.
        requests = contract_kit.requests(4, "garbled")
        ids = [r.custom_id for r in requests]
        handle = contract_kit.submit(requests)
        contract_kit.wait_terminal(handle)
        contract_kit.inject(CORRUPT_RESULT_LINE)
        what = "fetch_results of a download with one garbled line"
        got: list[BatchResult] = []
        raised: Exception | None = None
        try:
            got.extend(contract_kit.provider.fetch_results(handle))
        except Exception as exc:
            raised = exc
        if raised is not None:
            contract_kit.check_batchcore_error(raised, ResponseLostError, what)
        else:
            # A provider may download again by itself; then nothing may be missing.
            answered = {r.custom_id for r in got if r.ok}
            lost = sorted(set(ids) - answered)
            if lost:
                fail(
                    f"{what} returned without raising, and {lost} did not come back succeeded: "
                    "a line that cannot be read must raise batchcore.ResponseLostError (read "
                    "results with batchcore.plugin.read_result_lines), so the results are "
                    "fetched again instead of the request being resubmitted and paid twice"
                )
        # The download was garbled once: fetching again gives every result.
        contract_kit.fetch(handle, ids)

    def test_fetch_results_of_a_running_batch_raises_when_called(
        self, contract_kit: ContractKit
    ) -> None:
        handle = contract_kit.submit(contract_kit.requests(2, "early"))
        status = contract_kit.check_status(contract_kit.provider.poll_status(handle), handle)
        if status.is_terminal:
            fail(
                f"the batch had already ended ({status.raw_status!r}) right after submit; give "
                "the backend's batches some validating or processing time so the kit can fetch "
                "before the end"
            )
        what = f"fetch_results of a batch that is {status.raw_status!r}"
        error = contract_kit.expect_error(
            lambda: contract_kit.provider.fetch_results(handle), what, eager=True
        )
        contract_kit.check_batchcore_error(error, ResultsNotReadyError, what)

    @pytest.mark.parametrize("operation", ["submit", "poll_status", "fetch_results", "cancel"])
    def test_what_belongs_to_another_provider_is_refused_before_any_call(
        self, contract_kit: ContractKit, operation: str
    ) -> None:
        backend = contract_kit.require_backend("count calls")
        provider = contract_kit.provider
        call: Callable[[], object]
        if operation == "submit":
            payload = contract_kit.prepare_one(contract_kit.requests(1, "foreign"))
            foreign_payload = attrs.evolve(payload, provider=_OTHER_PROVIDER)
            what = f"submit of a payload prepared by provider {_OTHER_PROVIDER!r}"
            call = lambda: provider.submit(foreign_payload)  # noqa: E731
        else:
            handle = contract_kit.submit(contract_kit.requests(1, "foreign"))
            foreign_handle = attrs.evolve(handle, provider=_OTHER_PROVIDER)
            what = f"{operation} of a handle of provider {_OTHER_PROVIDER!r}"
            method = getattr(provider, operation)
            call = lambda: method(foreign_handle)  # noqa: E731
        calls, batches = backend.call_count(), backend.batch_count()
        error = contract_kit.expect_error(call, what, eager=True)
        if not isinstance(error, InvalidRequestError):
            fail(
                f"{what} raised {qualified(type(error))}: {error}; expected "
                "batchcore.InvalidRequestError, before any call"
            )
        made = backend.call_count() - calls
        if made or backend.batch_count() != batches:
            fail(f"{what} made {made} call(s) to the backend before refusing it; it must make none")
