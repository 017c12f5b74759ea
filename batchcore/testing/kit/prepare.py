"""``prepare_payloads``: validation before any network call, and splitting under limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from batchcore.errors import InvalidRequestError, UnsupportedModelError
from batchcore.models import ENDPOINTS, BatchPayload, BatchRequest
from batchcore.testing.kit.failures import fail
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["PrepareTests"]


def _enlarged(request: BatchRequest, size: int) -> BatchRequest:
    """*request* with an input of *size* characters, whatever its endpoint."""
    if request.messages:
        return attrs.evolve(request, messages=[{"role": "user", "content": "x" * size}])
    field = ENDPOINTS.get(request.endpoint)
    if field is None:
        fail(
            f"make_request built a request for {request.endpoint} without messages; the kit "
            "cannot enlarge it: override `make_request` to build chat or embeddings requests"
        )
    return attrs.evolve(request, params={**request.params, field: "x" * size})


def _check_split(
    payloads: Sequence[BatchPayload], requests: Sequence[BatchRequest], limit: str
) -> None:
    if len(payloads) < 3:
        fail(f"5 requests under {limit} must make at least 3 payloads, got {len(payloads)}")
    written = [cid for payload in payloads for cid in payload.iter_custom_ids()]
    expected = [request.custom_id for request in requests]
    if sorted(written) != sorted(expected):
        fail(f"the payloads hold custom_ids {sorted(written)}, expected {sorted(expected)}")


class PrepareTests(KitFixtures):
    """What ``prepare_payloads`` refuses, and how it splits."""

    __test__ = False

    def test_prepare_makes_no_network_call(self, contract_kit: ContractKit) -> None:
        backend = contract_kit.require_backend("count calls")
        before = backend.call_count()
        payloads = contract_kit.prepare(contract_kit.requests(5, "offline"))
        if sum(p.request_count for p in payloads) != 5:
            fail(f"5 requests became payloads holding {[p.request_count for p in payloads]}")
        made = backend.call_count() - before
        if made:
            fail(f"prepare_payloads made {made} call(s) to the backend; it must not")

    def test_prepare_rejects_empty_input(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging()
        contract_kit.expect_rejection(provider, [], InvalidRequestError, "no requests")
        contract_kit.expect_rejection(provider, iter(()), InvalidRequestError, "an empty iterator")

    def test_prepare_rejects_items_that_are_not_requests(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging()
        good = contract_kit.make_request("item-0")
        items: list[Any] = [good, good.to_dict()]
        contract_kit.expect_rejection(provider, items, InvalidRequestError, "a dict among requests")

    def test_prepare_rejects_duplicate_custom_ids(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging()
        first, second = contract_kit.requests(2, "dup")
        error = contract_kit.expect_rejection(
            provider, [first, second, first], InvalidRequestError, "a duplicated custom_id"
        )
        if error.custom_id != first.custom_id and first.custom_id not in str(error):
            fail(f"the duplicate-custom_id error does not name {first.custom_id!r}: {error}")

    def test_prepare_rejects_unsupported_model(self, contract_kit: ContractKit) -> None:
        name = contract_kit.unsupported_model
        provider = contract_kit.staging()
        if provider.supports_model(name):
            pytest.skip(
                f"the provider declares it serves every model, {name!r} included "
                "(SUPPORTED_MODELS or config models match it); override `unsupported_model` "
                "if some model is refused"
            )
        requests = contract_kit.requests(2, "model")
        requests.append(attrs.evolve(contract_kit.make_request("model-x"), model=name))
        error = contract_kit.expect_rejection(
            provider, requests, UnsupportedModelError, f"model {name!r}"
        )
        if getattr(error, "model", None) != name and name not in str(error):
            fail(f"the unsupported-model error does not name {name!r}: {error}")

    def test_prepare_rejects_oversized_request(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging(max_bytes_per_batch=1024)
        huge = _enlarged(contract_kit.make_request("huge-0"), 4096)
        requests = [contract_kit.make_request("huge-1"), huge]
        error = contract_kit.expect_rejection(
            provider, requests, InvalidRequestError, "a request larger than max_bytes_per_batch"
        )
        if error.custom_id != "huge-0" and "huge-0" not in str(error):
            fail(f"the request-too-large error does not name 'huge-0': {error}")

    def test_prepare_splits_under_request_limit(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging(max_requests_per_batch=2)
        requests = contract_kit.requests(5, "split")
        payloads = contract_kit.prepare(requests, provider)
        _check_split(payloads, requests, f"max_requests_per_batch=2, got {len(payloads)}")
        over = [p.request_count for p in payloads if p.request_count > 2]
        if over:
            fail(f"with max_requests_per_batch=2, payloads hold {over} requests")

    def test_prepare_splits_under_byte_limit(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging()
        requests = contract_kit.requests(5, "bytes")
        [probe] = contract_kit.prepare(requests[:2], provider)
        limit = probe.size_bytes  # room for two requests, not three
        probe.discard()
        limited = contract_kit.staging(max_bytes_per_batch=limit)
        payloads = contract_kit.prepare(requests, limited)
        _check_split(payloads, requests, f"max_bytes_per_batch={limit}")
        for payload in payloads:
            if payload.size_bytes > limit:
                fail(f"a {payload.size_bytes}-byte payload exceeds max_bytes_per_batch={limit}")
            if payload.path is not None and payload.path.stat().st_size != payload.size_bytes:
                fail(
                    f"payload.size_bytes is {payload.size_bytes} but its file holds "
                    f"{payload.path.stat().st_size} bytes"
                )
