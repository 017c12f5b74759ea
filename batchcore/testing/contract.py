"""The conformance kit: ``ProviderContractTests`` proves a batch provider keeps the contract.

A provider author subclasses it and overrides one fixture::

    class TestAcmeContract(ProviderContractTests):
        @pytest.fixture
        def provider(self, acme_emulator):
            return AcmeBatchProvider(
                config={"base_url": acme_emulator.url, "api_key": "test-key-123456"}
            )

        @pytest.fixture
        def backend(self, acme_emulator):       # optional: lets the kit drive time and faults
            return acme_emulator

Everything runs offline. The kit checks packaging (entry point, no vendor SDK at discovery),
``prepare_payloads`` (validation before any network call, splitting under limits), the batch
lifecycle (handles, normalised statuses, one result per custom_id, per-request failures as
data, cancel), the mapping of vendor failures to batchcore errors, retries through
``provider.sleep``, and that the API key never shows. A test that does not apply skips with the
reason. Overriding a kit test is allowed only with ``@pytest.mark.xfail(reason=...)``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import attrs
import pytest

from batchcore.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderError,
    UnsupportedModelError,
    UnsupportedOperationError,
)
from batchcore.models import (
    BatchHandle,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
    ResultStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.registry import ENTRY_POINT_GROUP, BatchProviderRegistry
from batchcore.testing.clock import SleepRecorder
from batchcore.testing.contract_backend import (
    EXPECTED_FAULT_ERRORS,
    FAULT_KINDS,
    TRANSIENT_FAULT_KINDS,
    ContractBackend,
)

__all__ = ["KIT_TESTS", "VENDOR_MODULES", "ContractKit", "ProviderContractTests"]

#: Packages a provider's entry-point module must not import (discovery must stay cheap).
VENDOR_MODULES: tuple[str, ...] = (
    "openai",
    "anthropic",
    "google.genai",
    "mistralai",
    "httpx",
    "httpx2",
    "requests",
)

_GLOB_CHARS = frozenset("*?[")
_MISSING_BATCH_ID = "batchcore-contract-missing"


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def _qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """*exc* and every exception it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _foreign_classes(exc_type: type[BaseException], own_package: str) -> list[str]:
    """Classes in *exc_type*'s MRO from outside builtins, batchcore and the provider's own
    package: a vendor SDK's exception types, which callers should never have to catch."""
    allowed = ("batchcore", own_package)
    return [
        _qualified(cls)
        for cls in exc_type.__mro__
        if cls.__module__ != "builtins"
        and not any(cls.__module__ == p or cls.__module__.startswith(p + ".") for p in allowed)
    ]


# -- entry points ----------------------------------------------------------------------------


@attrs.frozen
class _EntryPointSearch:
    found: tuple[tuple[EntryPoint, type[BaseBatchProvider]], ...]
    problems: tuple[str, ...]


def _search_entry_points(name: str) -> _EntryPointSearch:
    """Every installed ``batch_providers`` entry point offering a provider called *name*, each
    loaded alone in a fresh registry (so a broken neighbour cannot hide or break it)."""
    found: list[tuple[EntryPoint, type[BaseBatchProvider]]] = []
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        registry = BatchProviderRegistry(entry_points=[ep], strict=False, allowlist=[ep.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offered = registry.list()
            problems.extend(str(failure) for failure in registry.failures)
            if name in offered:
                try:
                    found.append((ep, registry.get(name)))
                except Exception as exc:
                    problems.append(f"entry point {ep.name!r}: {type(exc).__name__}: {exc}")
    return _EntryPointSearch(found=tuple(found), problems=tuple(problems))


_PROBE = r"""
import importlib, json, sys, warnings
from importlib.metadata import EntryPoint
import batchcore
mode, name, value, group = sys.argv[1:5]
ep = EntryPoint(name=name, value=value, group=group)
before = set(sys.modules)
if mode == "import":
    importlib.import_module(ep.module)
else:
    warnings.simplefilter("ignore")
    batchcore.BatchProviderRegistry(entry_points=[ep], allowlist=[ep.name]).list()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded_by(mode: str, ep: EntryPoint) -> list[str]:
    """Modules a fresh interpreter imports, after ``import batchcore``, to import the entry
    point's module (*mode* ``"import"``) or to list providers through it (``"list"``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, ep.name, ep.value, ep.group],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        _fail(
            f"a fresh interpreter could not {mode} entry point {ep.name!r} ({ep.value}):\n"
            f"{completed.stderr.strip()}"
        )
    loaded: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return loaded


def _vendor_hits(modules: Iterable[str], vendors: Sequence[str]) -> list[str]:
    return sorted({v for m in modules for v in vendors if m == v or m.startswith(v + ".")})


# -- the harness -----------------------------------------------------------------------------


class ContractKit:
    """What the kit's tests share: the provider under test, its backend and the fixtures'
    values, with helpers to rebuild the provider, run a batch to the end and check results.

    Every provider it hands out sleeps into :attr:`sleeps` instead of waiting.
    """

    def __init__(
        self,
        *,
        provider: BaseBatchProvider,
        backend: ContractBackend | None,
        model: str,
        unsupported_model: str,
        make_request: Callable[[str], BatchRequest],
        workdir: Path,
        max_polls: int,
    ) -> None:
        self.provider = provider
        self.backend = backend
        self.model = model
        self.unsupported_model = unsupported_model
        self.make_request = make_request
        self.workdir = workdir
        self.max_polls = max_polls
        self.sleeps = SleepRecorder()
        self.provider.sleep = self.sleeps
        self._payloads: list[BatchPayload] = []

    @property
    def name(self) -> str:
        return type(self.provider).PROVIDER_NAME

    @property
    def secret(self) -> str | None:
        key = self.provider.api_key
        return None if key is None else key.reveal()

    # -- providers -------------------------------------------------------------------------

    def rebuild(self, **overrides: Any) -> BaseBatchProvider:
        """A new provider of the same class from the provider's config plus *overrides*."""
        config: dict[str, Any] = dict(self.provider.config)
        if self.provider.api_key is not None:
            config["api_key"] = self.provider.api_key
        config.update(overrides)
        try:
            rebuilt = type(self.provider)(config=config)
        except Exception as exc:
            _fail(
                f"{type(self.provider).__name__}(config={{**provider.config, 'api_key': ..., "
                f"{', '.join(f'{k!r}: ...' for k in overrides)}}}) raised {type(exc).__name__}: "
                f"{exc}. The kit rebuilds providers from their config; keep everything needed "
                "to reach the same backend in provider.config."
            )
        rebuilt.sleep = self.sleeps
        rebuilt.clock = self.provider.clock
        return rebuilt

    def staging(self, **overrides: Any) -> BaseBatchProvider:
        """A rebuilt provider writing its payload files into an empty :attr:`workdir`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.rebuild(workdir=str(self.workdir), **overrides)

    def require_backend(self, purpose: str) -> ContractBackend:
        if self.backend is None:
            pytest.skip(
                f"needs a backend to {purpose}: override the `backend` fixture with an object "
                "implementing batchcore.testing.ContractBackend"
            )
        return self.backend

    def inject(self, kind: str) -> ContractBackend:
        backend = self.require_backend(f"inject fault {kind!r}")
        if not backend.inject_fault(kind):
            pytest.skip(f"the backend cannot inject fault {kind!r} (inject_fault returned False)")
        return backend

    def require_secret(self) -> str:
        secret = self.secret
        if secret is None:
            pytest.skip("the provider has no api_key: give it one in the `provider` fixture")
        if len(secret) < 8:
            pytest.skip(
                f"the provider's api_key is {len(secret)} characters; use one of at least 8 so "
                "finding it in text means something"
            )
        return secret

    @contextlib.contextmanager
    def no_network(self, what: str) -> Iterator[None]:
        """Fail if the backend receives a call inside the block (no-op without a backend)."""
        before = None if self.backend is None else self.backend.call_count()
        yield
        if self.backend is not None and before is not None:
            made = self.backend.call_count() - before
            if made:
                _fail(f"{what} made {made} call(s) to the backend; it must not use the network")

    # -- requests and payloads -------------------------------------------------------------

    def requests(self, count: int, prefix: str) -> list[BatchRequest]:
        return [self.make_request(f"{prefix}-{index}") for index in range(count)]

    def prepare(
        self, requests: Iterable[BatchRequest], provider: BaseBatchProvider | None = None
    ) -> list[BatchPayload]:
        """``prepare_payloads``, with the payloads discarded at teardown."""
        provider = provider or self.provider
        with self.no_network("prepare_payloads"):
            payloads = provider.prepare_payloads(requests)
        if not isinstance(payloads, list) or not all(isinstance(p, BatchPayload) for p in payloads):
            _fail(f"prepare_payloads must return a list of BatchPayload, got {payloads!r}")
        self._payloads.extend(payloads)
        for payload in payloads:
            if payload.provider != self.name:
                _fail(f"payload.provider is {payload.provider!r}, not {self.name!r}")
            ids = list(payload.iter_custom_ids())
            if len(ids) != payload.request_count:
                _fail(
                    f"a payload says request_count={payload.request_count} but lists "
                    f"{len(ids)} custom_ids"
                )
        return payloads

    def expect_rejection(
        self,
        provider: BaseBatchProvider,
        requests: Iterable[BatchRequest],
        expected: type[InvalidRequestError],
        what: str,
    ) -> InvalidRequestError:
        """``prepare_payloads`` must raise *expected*, without network and leaving no file."""
        with self.no_network(f"prepare_payloads of {what}"):
            try:
                payloads = provider.prepare_payloads(requests)
            except expected as exc:
                error = exc
            except Exception as exc:
                _fail(
                    f"prepare_payloads of {what} raised {type(exc).__name__}: {exc}; expected "
                    f"batchcore.{expected.__name__}"
                )
            else:
                self._payloads.extend(payloads)
                _fail(f"prepare_payloads accepted {what}; expected batchcore.{expected.__name__}")
        left = sorted(p.name for p in self.workdir.iterdir()) if self.workdir.exists() else []
        if left:
            _fail(f"prepare_payloads of {what} failed but left files behind: {left}")
        return error

    def submit(
        self, requests: Sequence[BatchRequest], provider: BaseBatchProvider | None = None
    ) -> BatchHandle:
        """Prepare *requests* into one payload, submit it and discard the payload's files
        (a runner does, so nothing may read them after ``submit``)."""
        provider = provider or self.provider
        payloads = self.prepare(requests, provider)
        if len(payloads) != 1:
            _fail(
                f"{len(requests)} small requests for one model made {len(payloads)} payloads; "
                "expected one"
            )
        handle = provider.submit(payloads[0])
        payloads[0].discard()
        if not isinstance(handle, BatchHandle):
            _fail(f"submit must return a BatchHandle, got {type(handle).__name__}")
        if handle.provider != self.name:
            _fail(f"handle.provider is {handle.provider!r}, not {self.name!r}")
        if not isinstance(handle.batch_id, str) or not handle.batch_id:
            _fail(f"handle.batch_id must be a non-empty string, got {handle.batch_id!r}")
        return handle

    # -- the lifecycle ---------------------------------------------------------------------

    def check_status(self, status: object, handle: BatchHandle) -> BatchStatus:
        if not isinstance(status, BatchStatus):
            _fail(f"expected a BatchStatus, got {type(status).__name__}")
        if not isinstance(status.state, BatchState):
            _fail(f"status.state must be a BatchState, got {status.state!r}")
        if not isinstance(status.raw_status, str) or not status.raw_status:
            _fail(f"status.raw_status must be the vendor's status word, got {status.raw_status!r}")
        if status.batch_id != handle.batch_id:
            _fail(f"status.batch_id is {status.batch_id!r}, the handle's is {handle.batch_id!r}")
        if status.provider != self.name:
            _fail(f"status.provider is {status.provider!r}, not {self.name!r}")
        return status

    def wait_terminal(
        self, handle: BatchHandle, provider: BaseBatchProvider | None = None
    ) -> BatchStatus:
        """Poll (advancing the backend's clock between polls) until the batch is terminal."""
        provider = provider or self.provider
        step, elapsed = 1.0, 0.0
        seen: list[str] = []
        for _ in range(self.max_polls):
            status = self.check_status(provider.poll_status(handle), handle)
            if not seen or seen[-1] != status.raw_status:
                seen.append(status.raw_status)
            if status.is_terminal:
                return status
            if self.backend is not None:
                self.backend.advance(step)
                elapsed += step
                step = min(step * 4, 3600.0)
        if self.backend is None:
            pytest.skip(
                f"the batch was still {seen[-1]!r} after {self.max_polls} polls and there is no "
                "backend to advance time: override the `backend` fixture"
            )
        _fail(
            f"the batch never reached a terminal state: statuses {seen} over {self.max_polls} "
            f"polls and {elapsed:.0f}s of backend time"
        )

    def fetch(
        self,
        handle: BatchHandle,
        expected_ids: Iterable[str],
        provider: BaseBatchProvider | None = None,
    ) -> dict[str, BatchResult]:
        """Fetch results; exactly one per expected custom_id, each JSON round-trippable."""
        provider = provider or self.provider
        stream = provider.fetch_results(handle)
        if not isinstance(stream, Iterator):
            _fail(
                f"fetch_results must return an iterator (results are streamed), got "
                f"{type(stream).__name__}"
            )
        results = list(stream)
        for result in results:
            if not isinstance(result, BatchResult):
                _fail(f"fetch_results yielded {type(result).__name__}, not BatchResult")
        counts = collections.Counter(result.custom_id for result in results)
        expected = collections.Counter(expected_ids)
        missing = sorted(set(expected) - set(counts))
        extra = sorted(set(counts) - set(expected))
        doubled = sorted(cid for cid, n in counts.items() if n > 1)
        if missing or extra or doubled:
            _fail(
                "fetch_results must yield exactly one result per custom_id: "
                f"missing {missing}, unexpected {extra}, more than once {doubled}"
            )
        for result in results:
            if result.batch_id not in (None, handle.batch_id):
                _fail(f"result {result.custom_id!r} names batch {result.batch_id!r}")
            try:
                again = BatchResult.from_dict(json.loads(json.dumps(result.to_dict())))
            except (TypeError, ValueError) as exc:
                _fail(f"result {result.custom_id!r} does not survive JSON: {exc}")
            if again != result:
                _fail(f"result {result.custom_id!r} changes through to_dict/from_dict/JSON")
        return {result.custom_id: result for result in results}

    def cancel(self, handle: BatchHandle) -> BatchStatus | None:
        """``cancel``: its status, or None when the provider says it cannot cancel."""
        try:
            status = self.provider.cancel(handle)
        except UnsupportedOperationError as exc:
            self.check_batchcore_error(exc, UnsupportedOperationError, "cancel")
            return None
        except Exception as exc:
            _fail(
                f"cancel raised {_qualified(type(exc))}: {exc}; cancel must work or raise "
                "batchcore.UnsupportedOperationError"
            )
        return self.check_status(status, handle)

    def expect_error(self, call: Callable[[], object], what: str) -> Exception:
        try:
            outcome = call()
            if isinstance(outcome, Iterator):
                list(outcome)
        except Exception as exc:
            return exc
        _fail(f"{what} did not raise")

    def check_batchcore_error(
        self, error: Exception, expected: type[ProviderError], what: str
    ) -> ProviderError:
        """*error* must be an *expected* whose type owes nothing to a vendor SDK, naming the
        provider and not showing the API key."""
        if not isinstance(error, expected):
            _fail(
                f"{what} raised {_qualified(type(error))}: {error}; expected a subclass of "
                f"batchcore.{expected.__name__} (translate vendor exceptions with "
                "`raise <batchcore error> from exc`)"
            )
        own_package = type(self.provider).__module__.split(".", 1)[0]
        foreign = _foreign_classes(type(error), own_package)
        if foreign:
            _fail(
                f"{what} raised {_qualified(type(error))}, which derives from vendor types "
                f"{foreign}; callers must never need to catch a vendor SDK's exceptions"
            )
        if error.provider != self.name:
            _fail(f"{what} raised an error naming provider {error.provider!r}, not {self.name!r}")
        self.check_no_secret_in_error(error, what)
        return error

    def check_no_secret_in_error(self, error: BaseException, what: str) -> None:
        secret = self.secret
        if secret is None:
            return
        for link in _chain(error):
            for text in (str(link), repr(link), repr(link.args)):
                if secret in text:
                    _fail(
                        f"{what}: the API key appears in {type(link).__name__} "
                        f"({'the error itself' if link is error else 'its cause'})"
                    )

    def close(self) -> None:
        for payload in self._payloads:
            payload.discard()


# -- the kit ---------------------------------------------------------------------------------


def _xfail_reason(test: object) -> str | None:
    """The reason of the xfail mark on *test*, when it has one."""
    for mark in getattr(test, "pytestmark", None) or ():
        if getattr(mark, "name", None) == "xfail":
            reason = getattr(mark, "kwargs", {}).get("reason")
            if isinstance(reason, str) and reason.strip():
                return reason
    return None


class ProviderContractTests:
    """Conformance tests every batch provider must pass. Subclass it in a ``Test*`` class and
    override the ``provider`` fixture; see the module docstring."""

    __test__ = False  # the kit itself is not a test class; its subclasses are

    #: Whether the provider is installed through a ``batch_providers`` entry point (set False
    #: for providers that are not distributed, such as test doubles).
    expects_entry_point: ClassVar[bool] = True
    #: Top-level modules an entry-point module must not import.
    vendor_modules: ClassVar[tuple[str, ...]] = VENDOR_MODULES
    #: Polls before a batch that never ends fails the test (the backend's clock advances
    #: 1, 4, 16 ... seconds between polls, capped at an hour).
    max_polls: ClassVar[int] = 60

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in vars(cls):
            cls.__test__ = True
        for name in sorted(KIT_TESTS & set(vars(cls))):
            if _xfail_reason(vars(cls)[name]) is None:
                raise TypeError(
                    f"{cls.__qualname__}.{name} overrides a test of the batchcore conformance "
                    "kit without marking it: decorate it with "
                    "@pytest.mark.xfail(reason='why this provider deviates') or remove it"
                )

    # -- fixtures a subclass overrides -----------------------------------------------------

    @pytest.fixture
    def provider(self) -> BaseBatchProvider:
        """The provider under test, pointed at an offline emulator. Override it."""
        _fail(
            f"{type(self).__name__} must override the `provider` fixture to return the "
            "provider under test"
        )

    @pytest.fixture
    def backend(self) -> ContractBackend | None:
        """The emulator's :class:`ContractBackend`, or None (tests needing it skip)."""
        return None

    @pytest.fixture
    def model(self, provider: BaseBatchProvider) -> str:
        """A model the provider serves: by default its first SUPPORTED_MODELS pattern without
        glob characters."""
        patterns = type(provider).SUPPORTED_MODELS
        for pattern in patterns:
            if not _GLOB_CHARS & set(pattern):
                return pattern
        pytest.skip(
            f"{type(provider).__name__}.SUPPORTED_MODELS has only patterns {patterns}: "
            "override the `model` fixture with a model the provider serves"
        )

    @pytest.fixture
    def unsupported_model(self) -> str:
        """A model name the provider must refuse."""
        return "batchcore-contract-no-such-model"

    @pytest.fixture
    def make_request(self, model: str) -> Callable[[str], BatchRequest]:
        """Builds a small request for a custom_id."""

        def build(custom_id: str) -> BatchRequest:
            return BatchRequest.from_dict(
                {
                    "custom_id": custom_id,
                    "model": model,
                    "messages": [{"role": "user", "content": f"Say hello {custom_id}"}],
                    "params": {"max_tokens": 16},
                }
            )

        return build

    @pytest.fixture
    def invalid_custom_id(self, provider: BaseBatchProvider) -> str | None:
        """A custom_id the provider must refuse, or None when it accepts any. Default: one
        that does not match ``CUSTOM_ID_PATTERN``."""
        pattern = type(provider).CUSTOM_ID_PATTERN
        if pattern is None:
            return None
        candidates = ("has space", "slash/inside", "dot.ted", "ünïcode", "x" * 300)
        return next((c for c in candidates if not pattern.match(c)), None)

    @pytest.fixture
    def contract_kit(
        self,
        provider: BaseBatchProvider,
        backend: ContractBackend | None,
        model: str,
        unsupported_model: str,
        make_request: Callable[[str], BatchRequest],
        tmp_path: Path,
    ) -> Iterator[ContractKit]:
        """The harness every kit test uses."""
        given: object = provider  # whatever the subclass's fixture really returned
        if not isinstance(given, BaseBatchProvider):
            _fail(f"the provider fixture returned {given!r}, not a BaseBatchProvider")
        given_backend: object = backend
        if given_backend is not None and not isinstance(given_backend, ContractBackend):
            missing = [
                name
                for name in ("advance", "inject_fault", "call_count", "failing_request")
                if not callable(getattr(given_backend, name, None))
            ]
            _fail(f"the backend fixture returned {given_backend!r}, which lacks {missing}")
        if not provider.supports_model(model):
            _fail(f"the model fixture returned {model!r}, which the provider does not serve")
        kit = ContractKit(
            provider=provider,
            backend=backend,
            model=model,
            unsupported_model=unsupported_model,
            make_request=make_request,
            workdir=tmp_path / "batchcore-contract-payloads",
            max_polls=self.max_polls,
        )
        yield kit
        kit.close()

    # -- packaging -------------------------------------------------------------------------

    def test_provider_rebuilds_from_its_config(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.provider
        name = getattr(type(provider), "PROVIDER_NAME", None)
        if not isinstance(name, str) or not name:
            _fail(f"{type(provider).__name__}.PROVIDER_NAME must be a non-empty string")
        rebuilt = contract_kit.rebuild()
        if type(rebuilt) is not type(provider):
            _fail(f"rebuilding gave a {type(rebuilt).__name__}")
        if rebuilt.base_url != provider.base_url or rebuilt.api_key != provider.api_key:
            _fail("a provider rebuilt from provider.config reaches another base_url or api_key")

    def _entry_point(self, contract_kit: ContractKit) -> EntryPoint:
        if not self.expects_entry_point:
            pytest.skip(
                "expects_entry_point is False: this provider is not installed through a "
                f"{ENTRY_POINT_GROUP!r} entry point"
            )
        name = contract_kit.name
        search = _search_entry_points(name)
        problems = "".join(f"\n  load failure: {p}" for p in search.problems)
        if not search.found:
            _fail(
                f"no installed {ENTRY_POINT_GROUP!r} entry point offers a provider named "
                f"{name!r}. Declare one in pyproject.toml:\n"
                f'  [project.entry-points.{ENTRY_POINT_GROUP}]\n  {name} = "your_package.plugin"'
                "\nand reinstall the distribution (pip install -e .), or set "
                f"expects_entry_point = False if it is deliberately not installed.{problems}"
            )
        if len(search.found) > 1:
            offers = ", ".join(f"{ep.name} = {ep.value}" for ep, _ in search.found)
            _fail(f"provider {name!r} is offered by several entry points ({offers}){problems}")
        ep, cls = search.found[0]
        if cls is not type(contract_kit.provider) and _qualified(cls) != _qualified(
            type(contract_kit.provider)
        ):
            _fail(
                f"entry point {ep.name} = {ep.value} offers {name!r} as {_qualified(cls)}, but "
                f"the provider under test is {_qualified(type(contract_kit.provider))}"
            )
        return ep

    def test_entry_point_offers_the_provider(self, contract_kit: ContractKit) -> None:
        self._entry_point(contract_kit)

    def test_entry_point_module_imports_no_vendor_sdk(self, contract_kit: ContractKit) -> None:
        ep = self._entry_point(contract_kit)
        if ep.attr:
            pytest.skip(
                f"entry point {ep.value!r} names a class, which discovery does not import; "
                "test_listing_providers_imports_no_vendor_sdk covers discovery"
            )
        hits = _vendor_hits(_modules_loaded_by("import", ep), self.vendor_modules)
        if hits:
            _fail(
                f"importing entry-point module {ep.module!r} imports {hits}. Keep the "
                "entry-point module free of vendor SDKs: offer the provider as "
                "ProviderSpec(name=..., factory='package.provider:Class') so the SDK is "
                "imported only when the provider is used."
            )

    def test_listing_providers_imports_no_vendor_sdk(self, contract_kit: ContractKit) -> None:
        ep = self._entry_point(contract_kit)
        hits = _vendor_hits(_modules_loaded_by("list", ep), self.vendor_modules)
        if hits:
            _fail(
                f"listing providers through entry point {ep.value!r} imports {hits}. Return "
                "ProviderSpec objects from batchcore_providers() instead of classes, so "
                "`batchcore providers` imports no vendor SDK."
            )

    # -- prepare_payloads ------------------------------------------------------------------

    def test_prepare_makes_no_network_call(self, contract_kit: ContractKit) -> None:
        backend = contract_kit.require_backend("count calls")
        before = backend.call_count()
        payloads = contract_kit.prepare(contract_kit.requests(5, "offline"))
        if sum(p.request_count for p in payloads) != 5:
            _fail(f"5 requests became payloads holding {[p.request_count for p in payloads]}")
        made = backend.call_count() - before
        if made:
            _fail(f"prepare_payloads made {made} call(s) to the backend; it must not")

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
            _fail(f"the duplicate-custom_id error does not name {first.custom_id!r}: {error}")

    def test_prepare_rejects_invalid_custom_id(
        self, contract_kit: ContractKit, invalid_custom_id: str | None
    ) -> None:
        if invalid_custom_id is None:
            pytest.skip(
                "the provider accepts every non-empty custom_id (no CUSTOM_ID_PATTERN); "
                "override `invalid_custom_id` if it refuses some"
            )
        provider = contract_kit.staging()
        bad = attrs.evolve(contract_kit.make_request("valid-0"), custom_id=invalid_custom_id)
        requests = [contract_kit.make_request("valid-1"), bad]
        error = contract_kit.expect_rejection(
            provider, requests, InvalidRequestError, f"custom_id {invalid_custom_id!r}"
        )
        if error.custom_id != invalid_custom_id and invalid_custom_id not in str(error):
            _fail(f"the invalid-custom_id error does not name {invalid_custom_id!r}: {error}")

    def test_prepare_rejects_unsupported_model(self, contract_kit: ContractKit) -> None:
        name = contract_kit.unsupported_model
        provider = contract_kit.staging()
        if provider.supports_model(name):
            pytest.skip(
                f"the provider accepts model {name!r} (a '*' pattern?); override "
                "`unsupported_model` with a name it refuses"
            )
        requests = contract_kit.requests(2, "model")
        requests.append(attrs.evolve(contract_kit.make_request("model-x"), model=name))
        error = contract_kit.expect_rejection(
            provider, requests, UnsupportedModelError, f"model {name!r}"
        )
        if getattr(error, "model", None) != name and name not in str(error):
            _fail(f"the unsupported-model error does not name {name!r}: {error}")

    def test_prepare_rejects_oversized_request(self, contract_kit: ContractKit) -> None:
        base = contract_kit.make_request("huge-0")
        if not base.messages:
            pytest.skip("make_request builds requests without messages; cannot enlarge one")
        provider = contract_kit.staging(max_bytes_per_batch=1024)
        huge = BatchRequest.from_dict(
            {**base.to_dict(), "messages": [{"role": "user", "content": "x" * 4096}]}
        )
        requests = [contract_kit.make_request("huge-1"), huge]
        error = contract_kit.expect_rejection(
            provider, requests, InvalidRequestError, "a request larger than max_bytes_per_batch"
        )
        if error.custom_id != "huge-0" and "huge-0" not in str(error):
            _fail(f"the request-too-large error does not name 'huge-0': {error}")

    def test_prepare_splits_under_request_limit(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging(max_requests_per_batch=2)
        requests = contract_kit.requests(5, "split")
        payloads = contract_kit.prepare(requests, provider)
        self._check_split(payloads, requests, f"max_requests_per_batch=2, got {len(payloads)}")
        over = [p.request_count for p in payloads if p.request_count > 2]
        if over:
            _fail(f"with max_requests_per_batch=2, payloads hold {over} requests")

    def test_prepare_splits_under_byte_limit(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.staging()
        requests = contract_kit.requests(5, "bytes")
        [probe] = contract_kit.prepare(requests[:2], provider)
        limit = probe.size_bytes  # room for two requests, not three
        probe.discard()
        limited = contract_kit.staging(max_bytes_per_batch=limit)
        payloads = contract_kit.prepare(requests, limited)
        self._check_split(payloads, requests, f"max_bytes_per_batch={limit}")
        for payload in payloads:
            if payload.size_bytes > limit:
                _fail(f"a {payload.size_bytes}-byte payload exceeds max_bytes_per_batch={limit}")
            if payload.path is not None and payload.path.stat().st_size != payload.size_bytes:
                _fail(
                    f"payload.size_bytes is {payload.size_bytes} but its file holds "
                    f"{payload.path.stat().st_size} bytes"
                )

    @staticmethod
    def _check_split(
        payloads: Sequence[BatchPayload], requests: Sequence[BatchRequest], limit: str
    ) -> None:
        if len(payloads) < 3:
            _fail(f"5 requests under {limit} must make at least 3 payloads, got {len(payloads)}")
        written = [cid for payload in payloads for cid in payload.iter_custom_ids()]
        expected = [request.custom_id for request in requests]
        if sorted(written) != sorted(expected):
            _fail(f"the payloads hold custom_ids {sorted(written)}, expected {sorted(expected)}")

    # -- the lifecycle ---------------------------------------------------------------------

    def test_submit_returns_a_json_round_trippable_handle(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(2, "handle"))
        try:
            text = json.dumps(handle.to_dict())
        except (TypeError, ValueError) as exc:
            _fail(f"handle.to_dict() is not JSON ({exc}); keep handle.metadata to JSON values")
        if BatchHandle.from_dict(json.loads(text)) != handle:
            _fail("the handle changes through to_dict/JSON/from_dict")

    def test_poll_status_reaches_a_terminal_state(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(3, "poll"))
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.COMPLETED:
            _fail(f"a batch of valid requests ended {status.state} ({status.raw_status!r})")
        if status.total is not None and status.total != 3:
            _fail(f"status.total is {status.total} for a batch of 3 requests")
        if status.completed is not None and status.completed != 3:
            _fail(f"status.completed is {status.completed} after 3 requests succeeded")
        again = BatchStatus.from_dict(json.loads(json.dumps(status.to_dict())))
        if again != status:
            _fail("the status changes through to_dict/JSON/from_dict")

    def test_fetch_results_returns_one_result_per_custom_id(
        self, contract_kit: ContractKit
    ) -> None:
        requests = contract_kit.requests(4, "fetch")
        handle = contract_kit.submit(requests)
        contract_kit.wait_terminal(handle)
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        for result in results.values():
            if not result.ok or result.error is not None:
                _fail(f"valid request {result.custom_id!r} came back {result.status}")
            if not isinstance(result.text, str):
                _fail(f"succeeded result {result.custom_id!r} has no text")

    def test_fetch_results_can_be_repeated(self, contract_kit: ContractKit) -> None:
        requests = contract_kit.requests(3, "again")
        handle = contract_kit.submit(requests)
        contract_kit.wait_terminal(handle)
        ids = [r.custom_id for r in requests]
        first = contract_kit.fetch(handle, ids)
        second = contract_kit.fetch(handle, ids)
        if first != second:
            _fail("fetching the results of an ended batch twice gave different results")

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
            pytest.skip("the backend cannot script a per-request failure (failing_request)")
        requests = [*contract_kit.requests(2, "data"), bad]
        handle = contract_kit.submit(requests)
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.COMPLETED:
            _fail(f"a batch with one failing request ended {status.state}; expected completed")
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        failed = results[bad.custom_id]
        if failed.status is not ResultStatus.ERRORED or failed.ok or failed.error is None:
            _fail(f"the failing request came back {failed.status} with error {failed.error!r}")
        if not isinstance(failed.error.code, str) or not failed.error.code:
            _fail(f"the failed request's error has no code: {failed.error!r}")
        others = [r for cid, r in results.items() if cid != bad.custom_id and not r.ok]
        if others:
            _fail(f"valid requests came back failed: {[r.custom_id for r in others]}")

    def test_cancel_works_or_is_unsupported(self, contract_kit: ContractKit) -> None:
        handle = contract_kit.submit(contract_kit.requests(3, "cancel"))
        status = contract_kit.cancel(handle)
        if status is None:
            return  # UnsupportedOperationError, checked by cancel()
        if status.state not in (BatchState.CANCELLING, BatchState.CANCELLED):
            _fail(f"cancelling a running batch returned state {status.state}")

    def test_cancelled_batch_returns_every_result(self, contract_kit: ContractKit) -> None:
        requests = contract_kit.requests(4, "cancelled")
        handle = contract_kit.submit(requests)
        if contract_kit.cancel(handle) is None:
            pytest.skip("the provider cannot cancel (it raises UnsupportedOperationError)")
        status = contract_kit.wait_terminal(handle)
        if status.state is not BatchState.CANCELLED:
            _fail(f"a cancelled batch ended {status.state} ({status.raw_status!r})")
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        allowed = (ResultStatus.SUCCEEDED, ResultStatus.ERRORED, ResultStatus.CANCELLED)
        for result in results.values():
            if result.status not in allowed:
                _fail(f"result {result.custom_id!r} of a cancelled batch is {result.status}")
            if result.status is ResultStatus.CANCELLED and not result.retryable:
                _fail(f"cancelled request {result.custom_id!r} must be retryable")

    # -- errors ----------------------------------------------------------------------------

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
            _fail(f"with max_retries=0 the provider made {backend.call_count() - before} calls")
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
            _fail(f"one fault {kind!r} with max_retries=2 failed poll_status: {exc!r}")
        contract_kit.check_status(status, handle)
        if backend.call_count() - before < 2:
            _fail(f"after fault {kind!r} the provider did not call again")
        if len(contract_kit.sleeps) != 1:
            _fail(
                f"one retry should wait once through provider.sleep; it waited "
                f"{contract_kit.sleeps} (retry with batchcore.retry.retry_call and sleep="
                "self.sleep, and turn any SDK's own retries off)"
            )
        if kind == "rate_limit" and contract_kit.sleeps != [0.0]:
            _fail(f"the server said retry-after: 0, the provider waited {contract_kit.sleeps}")

    def test_permanent_fault_is_not_retried(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.rebuild(max_retries=2)
        handle = contract_kit.submit(contract_kit.requests(1, "permanent"), provider)
        backend = contract_kit.inject("unauthorized")
        contract_kit.sleeps.clear()
        before = backend.call_count()
        error = contract_kit.expect_error(lambda: provider.poll_status(handle), "a 401")
        contract_kit.check_batchcore_error(error, AuthenticationError, "poll_status after a 401")
        if backend.call_count() - before != 1 or contract_kit.sleeps:
            _fail(
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
        error = contract_kit.expect_error(
            lambda: method(handle), f"{operation} of a batch that does not exist"
        )
        contract_kit.check_batchcore_error(
            error, ProviderError, f"{operation} of a batch that does not exist"
        )

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
        payloads = contract_kit.prepare(requests)
        for payload in payloads:
            shown["repr(payload)"] = repr(payload)
            if payload.path is not None:
                shown["the payload file"] = payload.path.read_text("utf-8", errors="replace")
        handle = contract_kit.submit(requests)
        shown["the handle"] = json.dumps(handle.to_dict(), default=repr) + repr(handle)
        self._check_not_shown(secret, shown)  # before waiting: that may skip without a backend
        status = contract_kit.wait_terminal(handle)
        shown["the status"] = (
            json.dumps(status.to_dict(), default=repr) + repr(status) + repr(status.raw)
        )
        results = contract_kit.fetch(handle, [r.custom_id for r in requests])
        shown["the results"] = json.dumps(
            [r.to_dict() for r in results.values()], default=repr
        ) + repr(list(results.values()))
        if contract_kit.backend is not None and contract_kit.backend.inject_fault("unauthorized"):
            rejected = contract_kit.rebuild(max_retries=0)
            error = contract_kit.expect_error(lambda: rejected.poll_status(handle), "a 401")
            contract_kit.check_no_secret_in_error(error, "the error of a 401")
        shown["the logs"] = caplog.text
        self._check_not_shown(secret, shown)

    @staticmethod
    def _check_not_shown(secret: str, shown: dict[str, str]) -> None:
        leaks = [where for where, text in shown.items() if secret in text]
        if leaks:
            _fail(f"the API key appears in {', '.join(leaks)}")


#: The names of the kit's tests (a subclass overrides one only with an xfail mark).
KIT_TESTS = frozenset(name for name in vars(ProviderContractTests) if name.startswith("test_"))
