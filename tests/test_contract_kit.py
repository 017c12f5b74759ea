"""The conformance kit fails when it should: deliberately broken fakes each fail the tests for
what they break (and pass the rest); a provider that does nothing fails instead of skipping;
misuse of the kit is reported clearly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping

import pytest

from batchcore.testing.contract_backend import FAULT_KINDS, TRANSIENT_FAULT_KINDS
from batchcore.testing.kit import KIT_TESTS
from batchcore.testing.kit.custom_ids import AWKWARD_CUSTOM_IDS, CONTROL_CUSTOM_IDS

HANDLE_OPERATIONS = ("poll_status", "fetch_results", "cancel")
PARAMETRISED: Mapping[str, tuple[str, ...]] = {
    "test_fault_maps_to_a_batchcore_error": FAULT_KINDS,
    "test_transient_fault_is_retried": TRANSIENT_FAULT_KINDS,
    "test_unknown_batch_raises_a_batchcore_error": HANDLE_OPERATIONS,
    "test_what_belongs_to_another_provider_is_refused_before_any_call": (
        "submit",
        *HANDLE_OPERATIONS,
    ),
    "test_custom_id_round_trips_or_is_refused_offline": tuple(AWKWARD_CUSTOM_IDS),
    "test_custom_id_with_control_characters_is_refused_offline": tuple(CONTROL_CUSTOM_IDS),
}
#: Every test the kit runs on one provider, parametrised ids included.
ALL_TESTS = frozenset(KIT_TESTS - set(PARAMETRISED)) | frozenset(
    f"{name}[{param}]" for name, params in PARAMETRISED.items() for param in params
)


def kit_tests(prefix: str, *params: str) -> frozenset[str]:
    """The kit's tests starting with *prefix*; with *params*, only those parametrisations."""
    found = {t for t in ALL_TESTS if t.startswith(prefix)}
    if params:
        found = {t for t in found if any(t.endswith(f"[{p}]") for p in params)}
    assert found, prefix
    return frozenset(found)


ENTRY_POINT_TESTS = frozenset(
    {
        "test_entry_point_offers_the_provider",
        "test_entry_point_module_imports_no_vendor_sdk",
        "test_listing_providers_imports_no_vendor_sdk",
    }
)
FAULT_MAPPING = kit_tests("test_fault_maps")
RETRIED = kit_tests("test_transient_fault_is_retried")
UNKNOWN_BATCH = kit_tests("test_unknown_batch")
FOREIGN = kit_tests("test_what_belongs_to_another_provider")
CONTROL_IDS = kit_tests("test_custom_id_with_control_characters")
#: The awkward custom_id the safe alphabet accepts (the others are refused offline).
ROUND_TRIP_64 = kit_tests("test_custom_id_round_trips", "64-chars")
LOST_CREATE = frozenset({"test_a_lost_create_leaves_exactly_one_batch"})
CANCELS = frozenset(
    {
        "test_cancel_behaves_as_declared",
        "test_cancelled_batch_returns_every_result",
        "test_cancel_after_the_end_returns_the_final_status",
    }
)
#: Tests that never call prepare_payloads on the provider under test.
NO_PREPARE = frozenset({"test_provider_rebuilds_from_its_config"} | UNKNOWN_BATCH | CONTROL_IDS)
#: Tests that read every result of a batch.
FETCHES = (
    frozenset(
        {
            "test_fetch_results_returns_one_result_per_custom_id",
            "test_fetch_results_can_be_repeated",
            "test_handle_works_with_a_new_provider_instance",
            "test_per_request_failures_are_data",
            "test_cancelled_batch_returns_every_result",
            "test_secrets_never_shown",
            "test_a_garbled_results_line_raises_and_loses_nothing",
        }
    )
    | LOST_CREATE
    | ROUND_TRIP_64
)


#: Plugins the inner runs do without: the cache, and hypothesis (slow to set up each run).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*QUIET, *args)


def outcomes(result: pytest.HookRecorder) -> dict[str, dict[str, str]]:
    """{test class: {test name: "passed" | "failed" | "skipped"}} from an inline run (an error
    in setup counts as failed)."""
    seen: dict[str, dict[str, str]] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for report in result.getreports("pytest_runtest_logreport"):
        *_, cls, name = report.nodeid.split("::")
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            continue
        tests = seen.setdefault(cls, {})
        if rank[outcome] >= rank[tests.get(name, "passed")]:
            tests[name] = outcome
    return seen


def failure_texts(recorder: pytest.HookRecorder, cls: str) -> dict[str, str]:
    return {
        report.nodeid.split("::")[-1]: report.longreprtext
        for report in recorder.getreports("pytest_runtest_logreport")
        if report.failed and f"::{cls}::" in report.nodeid
    }


def named(results: Mapping[str, str], outcome: str) -> set[str]:
    return {name for name, got in results.items() if got == outcome}


# -- broken fakes ------------------------------------------------------------------------------

VENDOR_SDK = """
class APIError(Exception):
    \"\"\"An exception type of some vendor SDK.\"\"\"
"""

BROKEN_FAKES = """
import json
import time
import uuid

import attrs
import pytest

import vendor_sdk
from batchcore import (
    BatchResult,
    BatchState,
    InvalidRequestError,
    OutcomeUnknownError,
    ProviderPermanentError,
    UnsupportedOperationError,
)
from batchcore.testing import FakeBackend, FakeBatchProvider, ProviderContractTests


class DropsAResult(FakeBatchProvider):
    def fetch_results(self, handle):
        return iter(list(super().fetch_results(handle))[:-1])


class DuplicatesAResult(FakeBatchProvider):
    def fetch_results(self, handle):
        results = list(super().fetch_results(handle))
        return iter(results + results[:1])


class ShowsTheKeyInRepr(FakeBatchProvider):
    def __repr__(self):
        return f"ShowsTheKeyInRepr(api_key={self._key()!r})"


class PutsTheKeyInErrors(FakeBatchProvider):
    def _translate(self, exc, action):
        error = super()._translate(exc, action)
        return type(error)(f"{error.message} (Authorization: Bearer {self._key()})",
                           provider=error.provider, status_code=error.status_code,
                           retry_after=error.retry_after)


class LetsVendorErrorsEscape(FakeBatchProvider):
    def _call(self, action, call, *, idempotent=True):
        return call()


class RaisesVendorHybrids(FakeBatchProvider):
    def _translate(self, exc, action):
        error = super()._translate(exc, action)
        hybrid = type(type(error).__name__, (vendor_sdk.APIError, type(error)), {})
        return hybrid(error.message, provider=error.provider, status_code=error.status_code,
                      retry_after=error.retry_after)


class CallsTheNetworkInPrepare(FakeBatchProvider):
    def prepare_payloads(self, requests):
        self.backend.list_models(api_key=self._key())
        return super().prepare_payloads(requests)


class IgnoresTheRequestLimit(FakeBatchProvider):
    def __init__(self, config=None):
        super().__init__(config)
        self.limits = attrs.evolve(self.limits, max_requests=self.DEFAULT_LIMITS.max_requests)


class CancelsRudely(FakeBatchProvider):
    def cancel(self, handle):
        raise NotImplementedError("cancel")


class CannotCancelButSaysItCan(FakeBatchProvider):
    def cancel_batch(self, handle):
        raise UnsupportedOperationError("the fake vendor cannot cancel", provider="fake")


class DeclaresItCannotCancel(FakeBatchProvider):
    SUPPORTS_CANCEL = False


class CancelsThoughItSaysItCannot(FakeBatchProvider):
    SUPPORTS_CANCEL = False

    def cancel(self, handle):
        self.check_handle(handle)
        return self.cancel_batch(handle)


class RaisesWhenCancellingAnEndedBatch(FakeBatchProvider):
    def cancel(self, handle):
        self.check_handle(handle)
        return self.cancel_batch(handle)


class ForgetsCancellation(FakeBatchProvider):
    def get_status(self, handle):
        status = super().get_status(handle)
        if status.state is BatchState.CANCELLED:
            return attrs.evolve(status, state=BatchState.COMPLETED)
        return status


class PutsObjectsInHandles(FakeBatchProvider):
    def submit(self, payload, *, journal=None):
        handle = super().submit(payload, journal=journal)
        return attrs.evolve(handle, metadata={**handle.metadata, "when": object()})


class RaisesOnFailedRequests(FakeBatchProvider):
    def fetch_results(self, handle):
        results = super().fetch_results(handle)

        def checked():
            for result in results:
                if result.error is not None:
                    raise ProviderPermanentError(f"{result.custom_id} failed", provider="fake")
                yield result

        return checked()


class SkipsGarbledLines(FakeBatchProvider):
    # Reads its download leniently: a line it cannot read is dropped, and with it a result.
    def read_results(self, handle, status):
        lines = self.backend.read_result_lines(handle.batch_id, api_key=self._key())
        for line in lines:
            try:
                yield BatchResult.from_dict(json.loads(line))
            except ValueError:
                continue


class FetchesLazily(FakeBatchProvider):
    def fetch_results(self, handle):
        yield from super().fetch_results(handle)


class PaysTwiceOnALostCreate(FakeBatchProvider):
    def submit(self, payload, *, journal=None):
        self.check_payload(payload)
        while True:  # "the create failed": send it again, under a new key
            try:
                key = f"retry-{uuid.uuid4().hex}"
                return self.create_batch(payload, staged={}, idempotency_key=key)
            except OutcomeUnknownError:
                continue


class AcceptsForeignHandles(FakeBatchProvider):
    def check_handle(self, handle):
        pass


class AcceptsForeignPayloads(FakeBatchProvider):
    def check_payload(self, payload):
        pass


class AcceptsAnyId(FakeBatchProvider):
    CUSTOM_ID_PATTERN = None


class LosesNonAsciiIds(AcceptsAnyId):
    def read_results(self, handle, status):
        for result in super().read_results(handle, status):
            ascii_id = result.custom_id.encode("ascii", "backslashreplace").decode()
            yield attrs.evolve(result, custom_id=ascii_id)


class RefusesIdsItDoesNotDeclare(AcceptsAnyId):
    def check_request(self, request):
        super().check_request(request)
        if " " in request.custom_id:
            raise InvalidRequestError("no spaces, please", custom_id=request.custom_id,
                                      field="custom_id", provider="fake")


class ReadsRealTime(FakeBatchProvider):
    # As every provider does, until the kit gives it the backend's clock.

    def __init__(self, config=None):
        super().__init__(config)
        self.clock = time.time


class Contract(ProviderContractTests):
    __test__ = False
    expects_entry_point = False
    provider_class = FakeBatchProvider
    config = {}

    @pytest.fixture
    def fake_backend(self):
        return FakeBackend()

    @pytest.fixture
    def provider(self, fake_backend):
        return self.provider_class(
            config={"backend": fake_backend, "api_key": "contract-key-0123456789", **self.config}
        )

    @pytest.fixture
    def backend(self, fake_backend):
        return fake_backend

"""

#: For each broken fake: the kit tests it must fail (all others pass, or skip when a capability
#: is declared absent), and one of them with a phrase its message must contain.
EXPECTED: Mapping[str, tuple[frozenset[str], str, str]] = {
    "DropsAResult": (
        FETCHES,
        "test_fetch_results_returns_one_result_per_custom_id",
        "missing ['",
    ),
    "DuplicatesAResult": (
        FETCHES,
        "test_fetch_results_returns_one_result_per_custom_id",
        "more than once ['",
    ),
    "ShowsTheKeyInRepr": (
        frozenset({"test_secrets_never_shown"}),
        "test_secrets_never_shown",
        "the API key appears in repr(provider)",
    ),
    "PutsTheKeyInErrors": (
        FAULT_MAPPING
        | UNKNOWN_BATCH
        | {"test_permanent_fault_is_not_retried", "test_secrets_never_shown"},
        "test_fault_maps_to_a_batchcore_error[rate_limit]",
        "the API key appears in RateLimitError (the error itself)",
    ),
    "LetsVendorErrorsEscape": (
        FAULT_MAPPING
        | RETRIED
        | UNKNOWN_BATCH
        | LOST_CREATE
        | {
            "test_permanent_fault_is_not_retried",
            "test_cancel_after_the_end_returns_the_final_status",
        },
        "test_fault_maps_to_a_batchcore_error[rate_limit]",
        "raised batchcore.testing.fake_errors:FakeAPIError: Rate limit reached for requests; "
        "expected a subclass of batchcore.RateLimitError",
    ),
    "RaisesVendorHybrids": (
        FAULT_MAPPING | UNKNOWN_BATCH | {"test_permanent_fault_is_not_retried"},
        "test_fault_maps_to_a_batchcore_error[server_error]",
        "derives from vendor types ['vendor_sdk:APIError']",
    ),
    "CallsTheNetworkInPrepare": (
        ALL_TESTS - NO_PREPARE - ENTRY_POINT_TESTS,
        "test_prepare_makes_no_network_call",
        "prepare_payloads made 1 call(s) to the backend",
    ),
    "IgnoresTheRequestLimit": (
        frozenset({"test_prepare_splits_under_request_limit"}),
        "test_prepare_splits_under_request_limit",
        "5 requests under max_requests_per_batch=2, got 1 must make at least 3 payloads",
    ),
    "CancelsRudely": (
        CANCELS
        | kit_tests("test_unknown_batch", "cancel")
        | kit_tests("test_what_belongs_to_another_provider", "cancel"),
        "test_cancel_behaves_as_declared",
        "cancel raised builtins:NotImplementedError: cancel; CancelsRudely.SUPPORTS_CANCEL is "
        "True, so cancel must work",
    ),
    "CannotCancelButSaysItCan": (
        CANCELS,
        "test_cancel_behaves_as_declared",
        "cancel raised UnsupportedOperationError ([fake] the fake vendor cannot cancel), but "
        "CannotCancelButSaysItCan.SUPPORTS_CANCEL is True",
    ),
    "DeclaresItCannotCancel": (frozenset(), "", ""),
    "CancelsThoughItSaysItCannot": (
        frozenset({"test_cancel_behaves_as_declared"}),
        "test_cancel_behaves_as_declared",
        "but CancelsThoughItSaysItCannot.SUPPORTS_CANCEL is False",
    ),
    "RaisesWhenCancellingAnEndedBatch": (
        frozenset({"test_cancel_after_the_end_returns_the_final_status"}),
        "test_cancel_after_the_end_returns_the_final_status",
        "cancelling a batch that had ended ('completed') raised ProviderPermanentError",
    ),
    "ForgetsCancellation": (
        frozenset({"test_cancelled_batch_returns_every_result"}),
        "test_cancelled_batch_returns_every_result",
        "a cancelled batch ended completed ('cancelled')",
    ),
    "PutsObjectsInHandles": (
        frozenset(
            {
                "test_submit_returns_a_json_round_trippable_handle",
                "test_handle_works_with_a_new_provider_instance",
            }
        ),
        "test_submit_returns_a_json_round_trippable_handle",
        "handle.to_dict() is not JSON",
    ),
    "RaisesOnFailedRequests": (
        frozenset(
            {"test_per_request_failures_are_data", "test_cancelled_batch_returns_every_result"}
        ),
        "test_per_request_failures_are_data",
        "ProviderPermanentError: [fake] data-bad failed",
    ),
    "SkipsGarbledLines": (
        frozenset({"test_a_garbled_results_line_raises_and_loses_nothing"}),
        "test_a_garbled_results_line_raises_and_loses_nothing",
        "did not come back succeeded: a line that cannot be read must raise "
        "batchcore.ResponseLostError",
    ),
    "FetchesLazily": (
        frozenset({"test_fetch_results_of_a_running_batch_raises_when_called"})
        | kit_tests("test_unknown_batch", "fetch_results")
        | kit_tests("test_what_belongs_to_another_provider", "fetch_results"),
        "test_fetch_results_of_a_running_batch_raises_when_called",
        "returned an iterator instead of raising when called (it raised ResultsNotReadyError "
        "only once iterated)",
    ),
    "PaysTwiceOnALostCreate": (
        LOST_CREATE,
        "test_a_lost_create_leaves_exactly_one_batch",
        "a lost create left 2 batches at the vendor; expected exactly one",
    ),
    "AcceptsForeignHandles": (
        kit_tests("test_what_belongs_to_another_provider", *HANDLE_OPERATIONS),
        "test_what_belongs_to_another_provider_is_refused_before_any_call[poll_status]",
        "poll_status of a handle of provider 'batchcore-contract-other' did not raise",
    ),
    "AcceptsForeignPayloads": (
        kit_tests("test_what_belongs_to_another_provider", "submit"),
        "test_what_belongs_to_another_provider_is_refused_before_any_call[submit]",
        "submit of a payload prepared by provider 'batchcore-contract-other' did not raise",
    ),
    "AcceptsAnyId": (frozenset(), "", ""),
    "LosesNonAsciiIds": (
        kit_tests("test_custom_id_round_trips", "accents", "cjk", "emoji"),
        "test_custom_id_round_trips_or_is_refused_offline[cjk]",
        "missing ['请求-リクエスト-요청'], unexpected ['\\\\u8bf7",
    ),
    "RefusesIdsItDoesNotDeclare": (
        kit_tests("test_custom_id_round_trips", "spaces"),
        "test_custom_id_round_trips_or_is_refused_offline[spaces]",
        "but the provider's declarations accept it (CUSTOM_ID_PATTERN = None, "
        "MAX_CUSTOM_ID_LENGTH = None)",
    ),
}

#: Good fakes, each declared differently: they pass everything they declare. (The last one's
#: lost create is found by creation time only because the kit gives it the backend's clock.)
GOOD = {
    "GoodFake": "    pass\n",
    "NonIdempotentGoodFake": "    config = {'idempotent_submit': False}\n",
    "NonIdempotentOnRealTime": (
        "    provider_class = ReadsRealTime\n    config = {'idempotent_submit': False}\n"
    ),
}


def write_broken_fakes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(vendor_sdk=VENDOR_SDK)
    classes = "".join(
        f"\n\nclass Test{name}(Contract):\n    provider_class = {name}\n" for name in EXPECTED
    )
    classes += "".join(f"\n\nclass Test{name}(Contract):\n{body}" for name, body in GOOD.items())
    pytester.makepyfile(test_broken_fakes=BROKEN_FAKES + classes)
    pytester.syspathinsert()


def test_the_parametrisations_are_known() -> None:
    assert {name.split("[")[0] for name in ALL_TESTS} == KIT_TESTS


def test_broken_fakes_fail_exactly_the_tests_for_what_they_break(
    pytester: pytest.Pytester,
) -> None:
    write_broken_fakes(pytester)
    recorder = pytester.inline_run(*QUIET)
    results = outcomes(recorder)

    for name in GOOD:
        good = results[f"Test{name}"]
        assert set(good) == ALL_TESTS, name
        assert named(good, "failed") == set(), (name, failure_texts(recorder, f"Test{name}"))
        assert named(good, "skipped") == ENTRY_POINT_TESTS, name

    problems = []
    for name, (expected, test, phrase) in EXPECTED.items():
        got = named(results[f"Test{name}"], "failed")
        if got != expected:
            problems.append(
                f"{name}: also failed {sorted(got - expected)}, "
                f"did not fail {sorted(expected - got)}"
            )
        text = failure_texts(recorder, f"Test{name}").get(test, "")
        if phrase not in text:
            problems.append(f"{name}: {test} does not say {phrase!r}:\n{text}")
    assert not problems, "\n".join(problems)

    # Skips only for what is declared absent: a provider that cannot cancel, no entry point.
    declared_no_cancel = results["TestDeclaresItCannotCancel"]
    assert named(declared_no_cancel, "skipped") == ENTRY_POINT_TESTS | {
        "test_cancelled_batch_returns_every_result",
        "test_cancel_after_the_end_returns_the_final_status",
    }
    assert declared_no_cancel["test_cancel_behaves_as_declared"] == "passed"
    round_trips = kit_tests("test_custom_id_round_trips")
    assert named(results["TestAcceptsAnyId"], "passed") >= round_trips


# -- a kit that cannot test fails -------------------------------------------------------------

DOES_NOTHING = """
import pytest
from batchcore import BaseBatchProvider
from batchcore.testing import ProviderContractTests


class DoesNothing(BaseBatchProvider):
    PROVIDER_NAME = "nothing"

    def prepare_payloads(self, requests):
        raise NotImplementedError

    def submit(self, payload, *, journal=None):
        raise NotImplementedError

    def poll_status(self, handle):
        raise NotImplementedError

    def fetch_results(self, handle):
        raise NotImplementedError

    def cancel(self, handle):
        raise NotImplementedError


class TestDoesNothing(ProviderContractTests):
    @pytest.fixture
    def provider(self):
        return DoesNothing(config={"api_key": "nothing-key-0123456789"})
"""


def test_a_provider_that_does_nothing_fails_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing=DOES_NOTHING)
    recorder = pytester.inline_run(*QUIET)
    results = outcomes(recorder)["TestDoesNothing"]
    assert set(results) == ALL_TESTS
    assert named(results, "failed") == ALL_TESTS  # none passes, none skips
    texts = failure_texts(recorder, "TestDoesNothing")
    assert all("override the `model` fixture" in text for text in texts.values())


def test_without_a_backend_the_tests_needing_one_fail_naming_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import FakeBatchProvider, ProviderContractTests

        class TestNoBackend(ProviderContractTests):
            expects_entry_point = False

            @pytest.fixture
            def provider(self):
                return FakeBatchProvider(config={"api_key": "contract-key-0123456789"})
        """
    )
    recorder = pytester.inline_run(*QUIET)
    results = outcomes(recorder)["TestNoBackend"]
    assert named(results, "skipped") == ENTRY_POINT_TESTS
    failed = named(results, "failed")
    assert failed >= FETCHES | FAULT_MAPPING | LOST_CREATE | {"test_prepare_makes_no_network_call"}
    texts = failure_texts(recorder, "TestNoBackend")
    assert all("override the `backend` fixture" in texts[name] for name in failed)
    # What needs no backend still runs: validation before the network.
    assert results["test_prepare_rejects_duplicate_custom_ids"] == "passed"


# -- overrides and misuse ----------------------------------------------------------------------


def test_overriding_a_kit_test_without_an_xfail_mark_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import ProviderContractTests
        from batchcore.testing import FakeBatchProvider

        class TestSneaky(ProviderContractTests):
            @pytest.fixture
            def provider(self):
                return FakeBatchProvider()

            def test_cancel_behaves_as_declared(self, contract_kit):
                pass
        """
    )
    result = run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*TestSneaky.test_cancel_behaves_as_declared overrides a test of the batchcore "
            "conformance kit without marking it*",
        ]
    )


@pytest.mark.parametrize(
    "decorator", ["@pytest.mark.xfail", "@pytest.mark.xfail(reason='')", "@pytest.mark.skip"]
)
def test_an_xfail_mark_without_a_reason_does_not_count(
    pytester: pytest.Pytester, decorator: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from batchcore.testing import ProviderContractTests

        class TestSneaky(ProviderContractTests):
            {decorator}
            def test_fetch_results_can_be_repeated(self, contract_kit):
                pass
        """
    )
    result = run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*test_fetch_results_can_be_repeated overrides a test*"])


def test_a_kit_test_marked_xfail_with_a_reason_may_be_overridden(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import ProviderContractTests
        from batchcore.testing import FakeBatchProvider

        class TestDeviates(ProviderContractTests):
            expects_entry_point = False

            @pytest.fixture
            def provider(self):
                return FakeBatchProvider()

            @pytest.mark.xfail(reason="the vendor keeps results one hour", strict=True)
            def test_fetch_results_can_be_repeated(self, contract_kit):
                raise AssertionError("results are gone")
        """
    )
    result = run(pytester, "-k", "repeated", "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*the vendor keeps results one hour*"])


def test_forgetting_the_provider_fixture_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from batchcore.testing import ProviderContractTests

        class TestForgetful(ProviderContractTests):
            pass
        """
    )
    result = run(pytester, "-k", "rebuilds")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TestForgetful must override the `provider` fixture*"])


def test_the_kit_class_itself_is_never_collected(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npython_classes = Test* *Tests\n")
    pytester.makepyfile("from batchcore.testing import ProviderContractTests\n")
    result = run(pytester)
    result.assert_outcomes()


def test_a_backend_that_is_not_a_contract_backend_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import ProviderContractTests
        from batchcore.testing import FakeBatchProvider

        class TestOddBackend(ProviderContractTests):
            @pytest.fixture
            def provider(self):
                return FakeBatchProvider()

            @pytest.fixture
            def backend(self):
                return object()
        """
    )
    result = run(pytester, "-k", "rebuilds")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*which lacks ['FAULTS', 'now', 'advance', 'inject_fault', 'call_count', 'batch_count', *"]
    )


def test_importing_batchcore_testing_does_not_import_pytest() -> None:
    code = "import sys, batchcore.testing as t; t.ContractBackend; print('pytest' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# -- packaging -----------------------------------------------------------------------------


PROVIDER_MODULE = """
from batchcore.testing import FakeBatchProvider


class AcmeProvider(FakeBatchProvider):
    PROVIDER_NAME = "acme"
    SUPPORTED_MODELS = ("acme-1",)
"""

PLUGIN_MODULES = {
    "clean": """
        from batchcore import ProviderSpec, hookimpl

        @hookimpl
        def batchcore_providers():
            return [ProviderSpec(name="acme", factory="acme_provider:AcmeProvider")]
    """,
    "imports_requests": """
        import requests
        from batchcore import ProviderSpec, hookimpl

        @hookimpl
        def batchcore_providers():
            return [ProviderSpec(name="acme", factory="acme_provider:AcmeProvider")]
    """,
    "returns_the_class": """
        from batchcore import hookimpl

        @hookimpl
        def batchcore_providers():
            from acme_provider import AcmeProvider
            return [AcmeProvider]
    """,
}

CONTRACT = """
import pytest
from batchcore.testing import ProviderContractTests
from acme_provider import AcmeProvider


class TestAcme(ProviderContractTests):
    @pytest.fixture
    def provider(self):
        return AcmeProvider()
"""


def install_acme(pytester: pytest.Pytester, plugin: str | None, target: str) -> None:
    """A distribution "acme" on sys.path whose batch_providers entry point is *target*."""
    provider_module = PROVIDER_MODULE
    if plugin == "returns_the_class":
        provider_module = "import requests\n" + provider_module
    pytester.makepyfile(acme_provider=provider_module, test_acme=CONTRACT)
    if plugin is not None:
        pytester.makepyfile(acme_plugin=textwrap.dedent(PLUGIN_MODULES[plugin]))
    info = pytester.mkdir("acme-0.1.dist-info")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 0.1\n")
    if target:
        (info / "entry_points.txt").write_text(f"[batch_providers]\nacme = {target}\n")
    pytester.syspathinsert()


def packaging_outcomes(pytester: pytest.Pytester) -> tuple[dict[str, str], str]:
    result = run(pytester, "-v", "-rs", "-k", "entry_point or listing")
    recorder_text = result.stdout.str()
    found: dict[str, str] = {}
    for name in ENTRY_POINT_TESTS:
        for outcome in ("PASSED", "FAILED", "SKIPPED"):
            if f"::{name} {outcome}" in recorder_text:
                found[name] = outcome.lower()
    return found, recorder_text


@pytest.mark.parametrize(
    ("plugin", "target", "expected", "phrase"),
    [
        (
            "clean",
            "acme_plugin",
            {"offers": "passed", "module": "passed", "listing": "passed"},
            "",
        ),
        (
            "imports_requests",
            "acme_plugin",
            {"offers": "passed", "module": "failed", "listing": "failed"},
            "importing entry-point module 'acme_plugin' imports ['requests']",
        ),
        (
            "returns_the_class",
            "acme_plugin",
            {"offers": "passed", "module": "passed", "listing": "failed"},
            "listing providers through entry point 'acme_plugin' imports ['requests']",
        ),
        (
            None,
            "acme_provider:AcmeProvider",
            {"offers": "passed", "module": "skipped", "listing": "passed"},
            "names a class, which discovery does not import",
        ),
        (
            None,
            "",
            {"offers": "failed", "module": "failed", "listing": "failed"},
            "no installed 'batch_providers' entry point offers a provider named 'acme'",
        ),
    ],
)
def test_packaging_checks(
    pytester: pytest.Pytester,
    plugin: str | None,
    target: str,
    expected: dict[str, str],
    phrase: str,
) -> None:
    install_acme(pytester, plugin, target)
    found, text = packaging_outcomes(pytester)
    short = {
        "offers": found.get("test_entry_point_offers_the_provider"),
        "module": found.get("test_entry_point_module_imports_no_vendor_sdk"),
        "listing": found.get("test_listing_providers_imports_no_vendor_sdk"),
    }
    assert short == expected, text
    assert phrase in text


def test_an_entry_point_offering_another_class_is_caught(pytester: pytest.Pytester) -> None:
    install_acme(pytester, None, "acme_provider:AcmeProvider")
    pytester.makepyfile(
        test_acme="""
        import pytest
        from batchcore.testing import ProviderContractTests
        from acme_provider import AcmeProvider

        class Impostor(AcmeProvider):
            pass

        class TestAcme(ProviderContractTests):
            @pytest.fixture
            def provider(self):
                return Impostor()
        """
    )
    result = run(pytester, "-k", "offers")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*offers 'acme' as acme_provider:AcmeProvider, but the provider under test is *Impostor*"]
    )
