"""The kit's harness: :class:`ContractKit`, what every kit test works through, and
:class:`KitFixtures`, the fixtures a provider's test class overrides.

Every provider the harness hands out lives in the backend's time: its ``clock`` reads the
backend's clock and its ``sleep`` is a :class:`SleepRecorder` that advances that clock. Retries
never wait, a wait until some time has passed (the settle window after a lost create) passes at
once, and the times the provider compares with the vendor's agree. (Without a backend, a
:class:`ManualClock` started at the provider's own time stands in.)
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from batchcore.errors import InvalidRequestError, ProviderError, UnsupportedOperationError
from batchcore.models import (
    BatchHandle,
    BatchPayload,
    BatchRequest,
    BatchResult,
    BatchState,
    BatchStatus,
)
from batchcore.provider import BaseBatchProvider
from batchcore.testing.clock import ManualClock, SleepRecorder
from batchcore.testing.contract_backend import CONTRACT_BACKEND_MEMBERS, ContractBackend
from batchcore.testing.kit.capabilities import Capabilities
from batchcore.testing.kit.failures import (
    exception_chain,
    fail,
    failure,
    foreign_classes,
    qualified,
)

__all__ = ["VENDOR_MODULES", "ContractKit", "KitFixtures"]

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


class ContractKit:
    """What the kit's tests share: the provider under test, its backend, the declared
    capabilities and the fixtures' values, with helpers to rebuild the provider, run a batch to
    the end and check what comes back."""

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
        self.capabilities = Capabilities.declared(provider, backend)
        if backend is not None:
            self.now: Callable[[], float] = backend.now
            self.sleeps = SleepRecorder(backend)
        else:
            clock = ManualClock(start=provider.clock())
            self.now = clock.now
            self.sleeps = SleepRecorder(clock)
        self._bind(provider)
        self._payloads: list[BatchPayload] = []

    @property
    def name(self) -> str:
        return type(self.provider).PROVIDER_NAME

    @property
    def secret(self) -> str | None:
        key = self.provider.api_key
        return None if key is None else key.reveal()

    # -- providers -------------------------------------------------------------------------

    def _bind(self, provider: BaseBatchProvider) -> None:
        provider.sleep = self.sleeps
        provider.clock = self.now

    def rebuild(self, **overrides: Any) -> BaseBatchProvider:
        """A new provider of the same class from the provider's config plus *overrides*."""
        config: dict[str, Any] = dict(self.provider.config)
        if self.provider.api_key is not None:
            config["api_key"] = self.provider.api_key
        config.update(overrides)
        try:
            rebuilt = type(self.provider)(config=config)
        except Exception as exc:
            fail(
                f"{type(self.provider).__name__}(config={{**provider.config, 'api_key': ..., "
                f"{', '.join(f'{k!r}: ...' for k in overrides)}}}) raised {type(exc).__name__}: "
                f"{exc}. The kit rebuilds providers from their config; keep everything needed "
                "to reach the same backend in provider.config."
            )
        self._bind(rebuilt)
        return rebuilt

    def staging(self, **overrides: Any) -> BaseBatchProvider:
        """A rebuilt provider writing its payload files into an empty :attr:`workdir`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.rebuild(workdir=str(self.workdir), **overrides)

    # -- what the test needs ---------------------------------------------------------------

    def require_backend(self, purpose: str) -> ContractBackend:
        """The backend; without one the test fails, naming the fixture to provide."""
        if self.backend is None:
            fail(
                f"the kit needs a backend to {purpose}: override the `backend` fixture to return "
                "the emulator your provider talks to (a batchcore.testing.ContractBackend)"
            )
        return self.backend

    def inject(self, kind: str) -> ContractBackend:
        """Inject fault *kind*; the test skips when the backend declares it cannot."""
        backend = self.require_backend(f"inject fault {kind!r}")
        if kind not in self.capabilities.faults:
            pytest.skip(
                f"the backend does not declare fault {kind!r} in its FAULTS "
                f"({', '.join(sorted(self.capabilities.faults)) or 'none'})"
            )
        try:
            backend.inject_fault(kind)
        except Exception as exc:
            fail(
                f"{type(backend).__name__} declares fault {kind!r} in FAULTS, but "
                f"inject_fault({kind!r}) raised {type(exc).__name__}: {exc}"
            )
        return backend

    def require_cancel(self) -> None:
        if not self.capabilities.supports_cancel:
            pytest.skip(f"{type(self.provider).__name__} declares SUPPORTS_CANCEL = False")

    def require_secret(self) -> str:
        secret = self.secret
        if secret is None or len(secret) < 8:
            given = "no api_key" if secret is None else f"an api_key of {len(secret)} characters"
            fail(
                f"the provider has {given}: give it one of at least 8 characters in the "
                "`provider` fixture, so the kit can check that it never shows"
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
                fail(f"{what} made {made} call(s) to the backend; it must not use the network")

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
            fail(f"prepare_payloads must return a list of BatchPayload, got {payloads!r}")
        self._payloads.extend(payloads)
        for payload in payloads:
            if payload.provider != self.name:
                fail(f"payload.provider is {payload.provider!r}, not {self.name!r}")
            ids = list(payload.iter_custom_ids())
            if len(ids) != payload.request_count:
                fail(
                    f"a payload says request_count={payload.request_count} but lists "
                    f"{len(ids)} custom_ids"
                )
        return payloads

    def prepare_one(
        self, requests: Sequence[BatchRequest], provider: BaseBatchProvider | None = None
    ) -> BatchPayload:
        payloads = self.prepare(requests, provider)
        if len(payloads) != 1:
            fail(
                f"{len(requests)} small requests for one model made {len(payloads)} payloads; "
                "expected one"
            )
        return payloads[0]

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
                fail(
                    f"prepare_payloads of {what} raised {type(exc).__name__}: {exc}; expected "
                    f"batchcore.{expected.__name__}"
                )
            else:
                self._payloads.extend(payloads)
                fail(f"prepare_payloads accepted {what}; expected batchcore.{expected.__name__}")
        left = sorted(p.name for p in self.workdir.iterdir()) if self.workdir.exists() else []
        if left:
            fail(f"prepare_payloads of {what} failed but left files behind: {left}")
        return error

    def submit(
        self, requests: Sequence[BatchRequest], provider: BaseBatchProvider | None = None
    ) -> BatchHandle:
        """Prepare *requests* into one payload, submit it and discard the payload's files
        (a runner does, so nothing may read them after ``submit``)."""
        provider = provider or self.provider
        payload = self.prepare_one(requests, provider)
        try:
            handle = provider.submit(payload)
        finally:
            payload.discard()
        return self.check_handle(handle)

    def check_handle(self, handle: object) -> BatchHandle:
        if not isinstance(handle, BatchHandle):
            fail(f"submit must return a BatchHandle, got {type(handle).__name__}")
        if handle.provider != self.name:
            fail(f"handle.provider is {handle.provider!r}, not {self.name!r}")
        if not isinstance(handle.batch_id, str) or not handle.batch_id:
            fail(f"handle.batch_id must be a non-empty string, got {handle.batch_id!r}")
        return handle

    # -- the lifecycle ---------------------------------------------------------------------

    def check_status(self, status: object, handle: BatchHandle) -> BatchStatus:
        if not isinstance(status, BatchStatus):
            fail(f"expected a BatchStatus, got {type(status).__name__}")
        if not isinstance(status.state, BatchState):
            fail(f"status.state must be a BatchState, got {status.state!r}")
        if not isinstance(status.raw_status, str) or not status.raw_status:
            fail(f"status.raw_status must be the vendor's status word, got {status.raw_status!r}")
        if status.batch_id != handle.batch_id:
            fail(f"status.batch_id is {status.batch_id!r}, the handle's is {handle.batch_id!r}")
        if status.provider != self.name:
            fail(f"status.provider is {status.provider!r}, not {self.name!r}")
        return status

    def wait_terminal(
        self, handle: BatchHandle, provider: BaseBatchProvider | None = None
    ) -> BatchStatus:
        """Poll (advancing the backend's clock between polls) until the batch is terminal."""
        backend = self.require_backend("advance time until a batch ends")
        provider = provider or self.provider
        step, elapsed = 1.0, 0.0
        seen: list[str] = []
        for _ in range(self.max_polls):
            status = self.check_status(provider.poll_status(handle), handle)
            if not seen or seen[-1] != status.raw_status:
                seen.append(status.raw_status)
            if status.is_terminal:
                return status
            backend.advance(step)
            elapsed += step
            step = min(step * 4, 3600.0)
        raise failure(
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
            fail(
                f"fetch_results must return an iterator (results are streamed), got "
                f"{type(stream).__name__}"
            )
        results = list(stream)
        for result in results:
            if not isinstance(result, BatchResult):
                fail(f"fetch_results yielded {type(result).__name__}, not BatchResult")
        counts = collections.Counter(result.custom_id for result in results)
        expected = collections.Counter(expected_ids)
        missing = sorted(set(expected) - set(counts))
        extra = sorted(set(counts) - set(expected))
        doubled = sorted(cid for cid, n in counts.items() if n > 1)
        if missing or extra or doubled:
            fail(
                "fetch_results must yield exactly one result per custom_id: "
                f"missing {missing}, unexpected {extra}, more than once {doubled}"
            )
        for result in results:
            if result.batch_id not in (None, handle.batch_id):
                fail(f"result {result.custom_id!r} names batch {result.batch_id!r}")
            try:
                again = BatchResult.from_dict(json.loads(json.dumps(result.to_dict())))
            except (TypeError, ValueError) as exc:
                fail(f"result {result.custom_id!r} does not survive JSON: {exc}")
            if again != result:
                fail(f"result {result.custom_id!r} changes through to_dict/from_dict/JSON")
        return {result.custom_id: result for result in results}

    def cancel(
        self, handle: BatchHandle, provider: BaseBatchProvider | None = None
    ) -> BatchStatus | None:
        """``cancel`` as the provider declares it: its status when it ``SUPPORTS_CANCEL``, else
        None after checking it raised :class:`UnsupportedOperationError`."""
        provider = provider or self.provider
        declared = type(provider).__name__ + ".SUPPORTS_CANCEL"
        try:
            status = provider.cancel(handle)
        except UnsupportedOperationError as exc:
            if self.capabilities.supports_cancel:
                fail(
                    f"cancel raised UnsupportedOperationError ({exc}), but {declared} is True: "
                    "cancel must work, or declare SUPPORTS_CANCEL = False"
                )
            self.check_batchcore_error(exc, UnsupportedOperationError, "cancel")
            return None
        except Exception as exc:
            expected = (
                "cancel must work"
                if self.capabilities.supports_cancel
                else "it must raise batchcore.UnsupportedOperationError"
            )
            fail(
                f"cancel raised {qualified(type(exc))}: {exc}; {declared} is "
                f"{self.capabilities.supports_cancel}, so {expected}"
            )
        if not self.capabilities.supports_cancel:
            fail(
                f"cancel returned {status!r}, but {declared} is False: declare "
                "SUPPORTS_CANCEL = True, or let cancel raise UnsupportedOperationError"
            )
        return self.check_status(status, handle)

    # -- errors ----------------------------------------------------------------------------

    def expect_error(
        self, call: Callable[[], object], what: str, *, eager: bool = False
    ) -> Exception:
        """The exception *call* raises. An iterator it returns is consumed, unless *eager*:
        then the call itself must raise, before the first item is asked for."""
        try:
            outcome = call()
        except Exception as exc:
            return exc
        if isinstance(outcome, Iterator):
            if eager:
                later = self._error_when_consumed(outcome)
                fail(
                    f"{what} returned an iterator instead of raising when called"
                    + (f" (it raised {type(later).__name__} only once iterated)" if later else "")
                    + "; errors must come from the call itself, before the first result"
                )
            later = self._error_when_consumed(outcome)
            if later is not None:
                return later
        raise failure(f"{what} did not raise")

    @staticmethod
    def _error_when_consumed(stream: Iterator[object]) -> Exception | None:
        try:
            for _ in stream:
                pass
        except Exception as exc:
            return exc
        return None

    def check_batchcore_error(
        self, error: Exception, expected: type[ProviderError], what: str
    ) -> ProviderError:
        """*error* must be an *expected* whose type owes nothing to a vendor SDK, naming the
        provider and not showing the API key."""
        if not isinstance(error, expected):
            fail(
                f"{what} raised {qualified(type(error))}: {error}; expected a subclass of "
                f"batchcore.{expected.__name__} (translate vendor exceptions into batchcore's)"
            )
        own_package = type(self.provider).__module__.split(".", 1)[0]
        foreign = foreign_classes(type(error), own_package)
        if foreign:
            fail(
                f"{what} raised {qualified(type(error))}, which derives from vendor types "
                f"{foreign}; callers must never need to catch a vendor SDK's exceptions"
            )
        if error.provider != self.name:
            fail(f"{what} raised an error naming provider {error.provider!r}, not {self.name!r}")
        self.check_no_secret_in_error(error, what)
        return error

    def check_no_secret_in_error(self, error: BaseException, what: str) -> None:
        secret = self.secret
        if secret is None:
            return
        for link in exception_chain(error):
            texts = [str(link), repr(link), repr(link.args)]
            texts.extend(repr(value) for value in getattr(link, "__dict__", {}).values())
            if any(secret in text for text in texts):
                fail(
                    f"{what}: the API key appears in {type(link).__name__} "
                    f"({'the error itself' if link is error else 'its cause or context'})"
                )

    def close(self) -> None:
        for payload in self._payloads:
            payload.discard()


class KitFixtures:
    """The fixtures of the kit. A provider's test class overrides ``provider`` and ``backend``
    (and ``model`` when ``SUPPORTED_MODELS`` holds only patterns)."""

    __test__ = False

    #: Whether the provider is installed through a ``batch_providers`` entry point (set False
    #: for providers that are not distributed, such as test doubles).
    expects_entry_point: ClassVar[bool] = True
    #: Top-level modules an entry-point module must not import.
    vendor_modules: ClassVar[tuple[str, ...]] = VENDOR_MODULES
    #: Polls before a batch that never ends fails the test (the backend's clock advances
    #: 1, 4, 16 ... seconds between polls, capped at an hour).
    max_polls: ClassVar[int] = 60
    #: The provider's ``timeout`` (seconds) in the lost-create test: how long it waits for the
    #: answer that never comes.
    lost_create_timeout: ClassVar[float] = 1.0

    @pytest.fixture
    def provider(self) -> BaseBatchProvider:
        """The provider under test, pointed at an offline emulator. Override it."""
        fail(
            f"{type(self).__name__} must override the `provider` fixture to return the "
            "provider under test"
        )

    @pytest.fixture
    def backend(self) -> ContractBackend | None:
        """The emulator's :class:`ContractBackend`. Override it: the tests that drive time,
        faults or count calls fail without one."""
        return None

    @pytest.fixture
    def model(self, provider: BaseBatchProvider) -> str:
        """A model the provider serves: by default its first SUPPORTED_MODELS pattern without
        glob characters."""
        patterns = type(provider).SUPPORTED_MODELS
        for pattern in patterns:
            if not _GLOB_CHARS & set(pattern):
                return pattern
        raise failure(
            f"{type(provider).__name__}.SUPPORTED_MODELS has only patterns {patterns}, so the "
            "kit cannot pick a model: override the `model` fixture to return one the provider "
            "serves"
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
            fail(f"the provider fixture returned {given!r}, not a BaseBatchProvider")
        given_backend: object = backend
        if given_backend is not None and not isinstance(given_backend, ContractBackend):
            missing = [
                name
                for name in CONTRACT_BACKEND_MEMBERS
                if getattr(given_backend, name, None) is None
            ]
            fail(f"the backend fixture returned {given_backend!r}, which lacks {missing}")
        if not provider.supports_model(model):
            fail(f"the model fixture returned {model!r}, which the provider does not serve")
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
