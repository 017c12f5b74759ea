"""The conformance kit fails when it should: deliberately broken fakes each fail the tests for
what they break (and pass the rest); misuse of the kit is reported clearly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping

import pytest

from batchcore.testing.contract import KIT_TESTS
from batchcore.testing.contract_backend import FAULT_KINDS, TRANSIENT_FAULT_KINDS

PARAMETRISED = {
    "test_fault_maps_to_a_batchcore_error": FAULT_KINDS,
    "test_transient_fault_is_retried": TRANSIENT_FAULT_KINDS,
    "test_unknown_batch_raises_a_batchcore_error": ("poll_status", "fetch_results", "cancel"),
}
#: Every test the kit runs on one provider, parametrised ids included.
ALL_TESTS = frozenset(KIT_TESTS - set(PARAMETRISED)) | frozenset(
    f"{name}[{param}]" for name, params in PARAMETRISED.items() for param in params
)
ENTRY_POINT_TESTS = frozenset(
    {
        "test_entry_point_offers_the_provider",
        "test_entry_point_module_imports_no_vendor_sdk",
        "test_listing_providers_imports_no_vendor_sdk",
    }
)
FAULT_MAPPING = frozenset(t for t in ALL_TESTS if t.startswith("test_fault_maps"))
RETRIED = frozenset(t for t in ALL_TESTS if t.startswith("test_transient_fault_is_retried"))
UNKNOWN_BATCH = frozenset(t for t in ALL_TESTS if t.startswith("test_unknown_batch"))
#: Tests that never call prepare_payloads on the provider under test.
NO_PREPARE = frozenset({"test_provider_rebuilds_from_its_config"} | UNKNOWN_BATCH)


#: Plugins the inner runs do without: the cache, and hypothesis (slow to set up each run).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*QUIET, *args)


def outcomes(result: pytest.HookRecorder) -> dict[str, dict[str, str]]:
    """{test class: {test name: "passed" | "failed" | "skipped"}} from an inline run."""
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


def failed(results: Mapping[str, str]) -> set[str]:
    return {name for name, outcome in results.items() if outcome == "failed"}


# -- broken fakes ------------------------------------------------------------------------------

VENDOR_SDK = '''
class APIError(Exception):
    """An exception type of some vendor SDK."""
'''

BROKEN_FAKES = """
import attrs
import pytest

import vendor_sdk
from batchcore import BatchState, ProviderPermanentError, UnsupportedOperationError
from batchcore.testing import ProviderContractTests
from batchcore.testing.fake import FakeBackend, FakeBatchProvider


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
    def _translate(self, exc, operation):
        error = super()._translate(exc, operation)
        return type(error)(f"{error.message} (Authorization: Bearer {self._key()})",
                           provider=error.provider, status_code=error.status_code,
                           retry_after=error.retry_after)


class LetsVendorErrorsEscape(FakeBatchProvider):
    def _call(self, operation, call):
        return call()


class RaisesVendorHybrids(FakeBatchProvider):
    def _translate(self, exc, operation):
        error = super()._translate(exc, operation)
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


class CannotCancel(FakeBatchProvider):
    def cancel(self, handle):
        raise UnsupportedOperationError("the fake vendor cannot cancel", provider="fake")


class ForgetsCancellation(FakeBatchProvider):
    def _status(self, obj):
        status = super()._status(obj)
        if status.state is BatchState.CANCELLED:
            return attrs.evolve(status, state=BatchState.COMPLETED)
        return status


class PutsObjectsInHandles(FakeBatchProvider):
    def submit(self, payload):
        handle = super().submit(payload)
        return attrs.evolve(handle, metadata={**handle.metadata, "when": object()})


class RaisesOnFailedRequests(FakeBatchProvider):
    def fetch_results(self, handle):
        for result in super().fetch_results(handle):
            if result.error is not None:
                raise ProviderPermanentError(f"{result.custom_id} failed", provider="fake")
            yield result


class Contract(ProviderContractTests):
    __test__ = False
    expects_entry_point = False
    provider_class = FakeBatchProvider

    @pytest.fixture
    def fake_backend(self):
        return FakeBackend()

    @pytest.fixture
    def provider(self, fake_backend):
        return self.provider_class(
            config={"backend": fake_backend, "api_key": "contract-key-0123456789"}
        )

    @pytest.fixture
    def backend(self, fake_backend):
        return fake_backend

"""

BROKEN = (
    "DropsAResult",
    "DuplicatesAResult",
    "ShowsTheKeyInRepr",
    "PutsTheKeyInErrors",
    "LetsVendorErrorsEscape",
    "RaisesVendorHybrids",
    "CallsTheNetworkInPrepare",
    "IgnoresTheRequestLimit",
    "CancelsRudely",
    "CannotCancel",
    "ForgetsCancellation",
    "PutsObjectsInHandles",
    "RaisesOnFailedRequests",
)

LIFECYCLE_FETCHES = frozenset(
    {
        "test_fetch_results_returns_one_result_per_custom_id",
        "test_fetch_results_can_be_repeated",
        "test_handle_works_with_a_new_provider_instance",
        "test_per_request_failures_are_data",
        "test_cancelled_batch_returns_every_result",
        "test_secrets_never_shown",
    }
)

#: For each broken fake: the kit tests it must fail (all others pass or skip), and one of them
#: with a phrase its message must contain.
EXPECTED: Mapping[str, tuple[frozenset[str], str, str]] = {
    "DropsAResult": (
        LIFECYCLE_FETCHES,
        "test_fetch_results_returns_one_result_per_custom_id",
        "missing ['",
    ),
    "DuplicatesAResult": (
        LIFECYCLE_FETCHES,
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
        FAULT_MAPPING | RETRIED | UNKNOWN_BATCH | {"test_permanent_fault_is_not_retried"},
        "test_fault_maps_to_a_batchcore_error[rate_limit]",
        "raised batchcore.testing.fake:FakeAPIError: Rate limit reached for requests; expected "
        "a subclass of batchcore.RateLimitError",
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
        frozenset(
            {
                "test_cancel_works_or_is_unsupported",
                "test_cancelled_batch_returns_every_result",
                "test_unknown_batch_raises_a_batchcore_error[cancel]",
            }
        ),
        "test_cancel_works_or_is_unsupported",
        "cancel raised builtins:NotImplementedError: cancel; cancel must work or raise "
        "batchcore.UnsupportedOperationError",
    ),
    "CannotCancel": (frozenset(), "", ""),
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
}


def write_broken_fakes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(vendor_sdk=VENDOR_SDK)
    classes = "".join(
        f"\n\nclass Test{name}(Contract):\n    provider_class = {name}\n" for name in BROKEN
    )
    classes += "\n\nclass TestGoodFake(Contract):\n    pass\n"
    pytester.makepyfile(test_broken_fakes=BROKEN_FAKES + classes)
    pytester.syspathinsert()


def test_broken_fakes_fail_exactly_the_tests_for_what_they_break(
    pytester: pytest.Pytester,
) -> None:
    write_broken_fakes(pytester)
    recorder = pytester.inline_run(*QUIET)
    results = outcomes(recorder)

    good = results["TestGoodFake"]
    assert set(good) == ALL_TESTS
    assert failed(good) == set()
    assert {n for n, o in good.items() if o == "skipped"} == ENTRY_POINT_TESTS

    problems = []
    for name, (expected, test, phrase) in EXPECTED.items():
        got = failed(results[f"Test{name}"])
        if got != expected:
            problems.append(
                f"{name}: also failed {sorted(got - expected)}, "
                f"did not fail {sorted(expected - got)}"
            )
        text = failure_texts(recorder, f"Test{name}").get(test, "")
        if phrase not in text:
            problems.append(f"{name}: {test} does not say {phrase!r}:\n{text}")
    assert not problems, "\n".join(problems)

    assert results["TestCannotCancel"]["test_cancel_works_or_is_unsupported"] == "passed"
    assert results["TestCannotCancel"]["test_cancelled_batch_returns_every_result"] == "skipped"


# -- skips, overrides and misuse ---------------------------------------------------------------


def test_without_a_backend_the_tests_needing_one_skip_with_a_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import ProviderContractTests
        from batchcore.testing.fake import FakeBatchProvider

        class TestNoBackend(ProviderContractTests):
            expects_entry_point = False

            @pytest.fixture
            def provider(self):
                return FakeBatchProvider(config={"api_key": "contract-key-0123456789"})
        """
    )
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=15, skipped=20)
    text = result.stdout.str()
    for reason in (
        "[1] * needs a backend to count calls: override the `backend` fixture",
        "[2] * needs a backend to inject fault 'rate_limit'",
        "[1] * needs a backend to script a per-request failure",
        "[5] * the batch was still 'validating' after 60 polls and there is no backend",
    ):
        count, phrase = reason.split(" * ")
        assert any(count in line and phrase in line for line in text.splitlines()), reason


def test_overriding_a_kit_test_without_an_xfail_mark_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from batchcore.testing import ProviderContractTests
        from batchcore.testing.fake import FakeBatchProvider

        class TestSneaky(ProviderContractTests):
            @pytest.fixture
            def provider(self):
                return FakeBatchProvider()

            def test_cancel_works_or_is_unsupported(self, contract_kit):
                pass
        """
    )
    result = run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*TestSneaky.test_cancel_works_or_is_unsupported overrides a test of the batchcore "
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
        from batchcore.testing.fake import FakeBatchProvider

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
        from batchcore.testing.fake import FakeBatchProvider

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
    result.stdout.fnmatch_lines(["*which lacks ['advance', 'inject_fault', *"])


def test_importing_batchcore_testing_does_not_import_pytest() -> None:
    code = "import sys, batchcore.testing as t; t.ContractBackend; print('pytest' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# -- packaging -----------------------------------------------------------------------------


PROVIDER_MODULE = """
from batchcore.testing.fake import FakeBatchProvider


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
