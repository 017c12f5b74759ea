"""Submit safety: a create whose answer was lost is never paid for twice."""

from __future__ import annotations

from batchcore.errors import AmbiguousSubmitError
from batchcore.testing.contract_backend import LOST_CREATE
from batchcore.testing.kit.failures import fail, qualified
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["SubmitSafetyTests"]


class SubmitSafetyTests(KitFixtures):
    """What ``submit`` does when the vendor carried out a create the client never heard of."""

    __test__ = False

    def test_a_lost_create_leaves_exactly_one_batch(self, contract_kit: ContractKit) -> None:
        backend = contract_kit.require_backend("lose the answer to a create")
        provider = contract_kit.rebuild(timeout=self.lost_create_timeout)
        requests = contract_kit.requests(2, "lost")
        payload = contract_kit.prepare_one(requests, provider)
        before = backend.batch_count()
        contract_kit.inject(LOST_CREATE)
        try:
            handle = provider.submit(payload)
        except AmbiguousSubmitError as exc:
            fail(
                f"submit raised AmbiguousSubmitError after one lost create ({exc}); with one "
                "batch at the vendor, find_batches must find exactly it"
            )
        except Exception as exc:
            fail(
                f"submit raised {qualified(type(exc))}: {exc} after the vendor carried out the "
                "create and its answer was lost; it must find the batch the create made "
                "(find_batches) and return its handle"
            )
        finally:
            payload.discard()
        made = backend.batch_count() - before
        if made != 1:
            fail(
                f"a lost create left {made} batches at the vendor; expected exactly one (an "
                "outcome-unknown create must be reconciled through find_batches, never sent "
                "again blindly)"
            )
        contract_kit.check_handle(handle)
        contract_kit.wait_terminal(handle, provider)
        contract_kit.fetch(handle, [r.custom_id for r in requests], provider)
