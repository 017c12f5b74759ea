"""The conformance kit: ``ProviderContractTests`` proves a batch provider keeps the contract.

A provider author subclasses it and overrides two fixtures::

    class TestAcmeContract(ProviderContractTests):
        @pytest.fixture
        def provider(self, acme_emulator):
            return AcmeBatchProvider(
                config={"base_url": acme_emulator.url, "api_key": "test-key-123456"}
            )

        @pytest.fixture
        def backend(self, acme_emulator):       # drives time and faults, counts calls
            return acme_emulator

Everything runs offline. The tests are grouped by concern, one module each:

* :mod:`~batchcore.testing.kit.packaging` - entry point, no vendor SDK at discovery, rebuild;
* :mod:`~batchcore.testing.kit.prepare` - validation before any network call, splitting;
* :mod:`~batchcore.testing.kit.custom_ids` - unusual custom_ids round-trip or are refused
  offline, as declared;
* :mod:`~batchcore.testing.kit.lifecycle` - handles, statuses, one result per custom_id,
  failures as data, cancel as declared;
* :mod:`~batchcore.testing.kit.submit` - a lost create leaves exactly one batch;
* :mod:`~batchcore.testing.kit.errors` - vendor failures, retries, ownership checks, eager
  ``fetch_results``;
* :mod:`~batchcore.testing.kit.secrets` - the API key never shows.

The kit reads what the provider declares (:mod:`~batchcore.testing.kit.capabilities`) and
asserts the behaviour promised; it skips only for a capability declared absent. When it lacks
what it needs (a backend, a model it can use) the test fails and names the fixture to
override, so a provider that does nothing never passes.
"""

from __future__ import annotations

from batchcore.testing.kit.capabilities import Capabilities
from batchcore.testing.kit.harness import VENDOR_MODULES, ContractKit, KitFixtures
from batchcore.testing.kit.suite import KIT_TESTS, ProviderContractTests

__all__ = [
    "KIT_TESTS",
    "VENDOR_MODULES",
    "Capabilities",
    "ContractKit",
    "KitFixtures",
    "ProviderContractTests",
]
