"""The batch lifecycle: handles, statuses, one result per custom_id, failures as data, and
cancel as the provider declares it (``SUPPORTS_CANCEL``)."""

from __future__ import annotations

import json

import pytest

from batchcore.models import BatchHandle, BatchState, BatchStatus, ResultStatus
from batchcore.testing.kit.failures import fail
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["LifecycleTests"]


class LifecycleTests(KitFixtures):
    """Submit, poll, fetch and cancel, on batches that behave."""

    __test__ = False

    def test_submit_returns_a_json_round_trippable_handle(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(2, "handle"))
        try:
            text = json.dumps(handle.to_dict())
        except (TypeError, ValueError) as exc:
            fail(f"handle.to_dict() is not JSON ({exc}); keep handle.metadata to JSON values")
        if BatchHandle.from_dict(json.loads(text)) != handle:
            fail("the handle changes through to_dict/JSON/from_dict")

    def test_poll_status_reaches_a_terminal_state(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(3, "poll"))
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.COMPLETED:
            fail(f"a batch of valid requests ended {status.state} ({status.raw_status!r})")
        if status.total is not None and status.total != 3:
            fail(f"status.total is {status.total} for a batch of 3 requests")
        if status.completed is not None and status.completed != 3:
            fail(f"status.completed is {status.completed} after 3 requests succeeded")
        again = BatchStatus.from_dict(json.loads(json.dumps(status.to_dict())))
        if again != status:
            fail("the status changes through to_dict/JSON/from_dict")

    def test_fetch_results_returns_one_result_per_custom_id(
        self, contract_kit: ContractKit
    ) -> None:
        requests = contract_kit.requests(4, "fetch")
        handle = contract_kit.submit(requests)
        contract_kit.wait_terminal(handle)
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        for result in results.values():
            if not result.ok or result.error is not None:
                fail(f"valid request {result.custom_id!r} came back {result.status}")
            if not isinstance(result.text, str):
                fail(f"succeeded result {result.custom_id!r} has no text")

    def test_fetch_results_can_be_repeated(self, contract_kit: ContractKit) -> None:
        requests = contract_kit.requests(3, "again")
        handle = contract_kit.submit(requests)
        contract_kit.wait_terminal(handle)
        ids = [r.custom_id for r in requests]
        first = contract_kit.fetch(handle, ids)
        second = contract_kit.fetch(handle, ids)
        if first != second:
            fail("fetching the results of an ended batch twice gave different results")

    def test_handle_works_with_a_new_provider_instance(self, contract_kit: ContractKit) -> None:
        requests = contract_kit.requests(2, "resume")
        handle = contract_kit.submit(requests)
        stored = BatchHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
        fresh = contract_kit.rebuild()
        contract_kit.wait_terminal(stored, fresh)
        contract_kit.fetch(stored, [r.custom_id for r in requests], fresh)

    def test_per_request_failures_are_data(self, contract_kit: ContractKit) -> None:
        backend = contract_kit.require_backend("script a per-request failure")
        bad = backend.failing_request("data-bad", contract_kit.model)
        if bad is None:
            pytest.skip("the backend declares it cannot fail a request (failing_request is None)")
        requests = [*contract_kit.requests(2, "data"), bad]
        handle = contract_kit.submit(requests)
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.COMPLETED:
            fail(f"a batch with one failing request ended {status.state}; expected completed")
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        failed = results[bad.custom_id]
        if failed.status is not ResultStatus.ERRORED or failed.ok or failed.error is None:
            fail(f"the failing request came back {failed.status} with error {failed.error!r}")
        if not isinstance(failed.error.code, str) or not failed.error.code:
            fail(f"the failed request's error has no code: {failed.error!r}")
        others = [r for cid, r in results.items() if cid != bad.custom_id and not r.ok]
        if others:
            fail(f"valid requests came back failed: {[r.custom_id for r in others]}")

    def test_cancel_behaves_as_declared(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(3, "cancel"))
        status = contract_kit.cancel(handle)
        if status is None:
            return  # declared unsupported, and cancel() checked it raised so
        if status.state not in (BatchState.CANCELLING, BatchState.CANCELLED):
            fail(f"cancelling a running batch returned state {status.state}")

    def test_cancelled_batch_returns_every_result(self, contract_kit: ContractKit) -> None:
        contract_kit.require_cancel()
        requests = contract_kit.requests(4, "cancelled")
        handle = contract_kit.submit(requests)
        contract_kit.cancel(handle)
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.CANCELLED:
            fail(f"a cancelled batch ended {status.state} ({status.raw_status!r})")
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        allowed = (ResultStatus.SUCCEEDED, ResultStatus.ERRORED, ResultStatus.CANCELLED)
        for result in results.values():
            if result.status not in allowed:
                fail(f"result {result.custom_id!r} of a cancelled batch is {result.status}")
            if result.status is ResultStatus.CANCELLED and not result.retryable:
                fail(f"cancelled request {result.custom_id!r} must be retryable")

    def test_cancel_after_the_end_returns_the_final_status(self, contract_kit: ContractKit) -> None:
        contract_kit.require_cancel()
        handle = contract_kit.submit(contract_kit.requests(2, "ended"))
        final = contract_kit.wait_terminal(handle)
        try:
            status = contract_kit.provider.cancel(handle)
        except Exception as exc:
            fail(
                f"cancelling a batch that had ended ({final.raw_status!r}) raised "
                f"{type(exc).__name__}: {exc}; it must return the batch's final status"
            )
        contract_kit.check_status(status, handle)
        if status.state is not final.state:
            fail(
                f"cancelling a batch that had ended {final.state} returned state {status.state}; "
                "expected its final status"
            )
