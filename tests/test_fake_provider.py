"""FakeBatchProvider: it passes the whole conformance kit, in each way it can be declared, and
behaves as documented."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import pytest

from batchcore import (
    AmbiguousSubmitError,
    AuthenticationError,
    BatchHandle,
    BatchPayload,
    BatchRequest,
    BatchState,
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    OverloadedError,
    ProviderConnectionError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ResponseLostError,
    ResponseTimeoutError,
    ResultsNotReadyError,
    ResultStatus,
    UnsupportedModelError,
)
from batchcore.testing import (
    ContractBackend,
    FakeBackend,
    FakeBatchProvider,
    ManualClock,
    Outcome,
    ProviderContractTests,
)
from batchcore.testing.fake_backend import FAKE_MODEL
from batchcore.testing.fake_errors import ReadTimeout

KEY = "fake-key-0123456789"


class TestFakeContract(ProviderContractTests):
    """The fake as it comes: idempotent submit, the safe custom_id alphabet, cancel."""

    expects_entry_point = False  # a test double: not installed through an entry point
    config: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def fake_backend(self) -> FakeBackend:
        return FakeBackend()

    @pytest.fixture
    def provider(self, fake_backend: FakeBackend) -> FakeBatchProvider:
        return FakeBatchProvider(config={"backend": fake_backend, "api_key": KEY, **self.config})

    @pytest.fixture
    def backend(self, fake_backend: FakeBackend) -> FakeBackend:
        return fake_backend


class TestNonIdempotentFakeContract(TestFakeContract):
    """Declared non-idempotent: a lost create is found by request count and creation time."""

    config: ClassVar[dict[str, Any]] = {"idempotent_submit": False}


class AnyIdNoCancelFake(FakeBatchProvider):
    """The fake declaring a vendor that takes any custom_id and cannot cancel."""

    PROVIDER_NAME: ClassVar[str] = "fake-any-id"
    CUSTOM_ID_PATTERN: ClassVar[re.Pattern[str] | None] = None
    SUPPORTS_CANCEL: ClassVar[bool] = False


class TestAnyIdNoCancelFakeContract(TestFakeContract):
    @pytest.fixture
    def provider(self, fake_backend: FakeBackend) -> FakeBatchProvider:
        return AnyIdNoCancelFake(config={"backend": fake_backend, "api_key": KEY})


# -- helpers -----------------------------------------------------------------------------------


def request(custom_id: str, content: str = "hello there", **params: Any) -> BatchRequest:
    return BatchRequest.from_dict(
        {
            "custom_id": custom_id,
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": content}],
            "params": params,
        }
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def provider(backend: FakeBackend) -> FakeBatchProvider:
    return FakeBatchProvider(config={"backend": backend})


@pytest.fixture
def submit(provider: FakeBatchProvider) -> Iterator[Callable[..., BatchHandle]]:
    made: list[BatchPayload] = []

    def run(*ids: str, key: str | None = None, via: FakeBatchProvider | None = None) -> BatchHandle:
        submitter = via or provider
        [payload] = submitter.prepare_payloads([request(cid) for cid in ids])
        if key is not None:
            payload = attrs.evolve(payload, idempotency_key=key)
        made.append(payload)
        try:
            return submitter.submit(payload)
        finally:
            payload.discard()

    yield run
    for payload in made:
        payload.discard()


def statuses(provider: FakeBatchProvider, handle: BatchHandle) -> str:
    return provider.poll_status(handle).raw_status


# -- the lifecycle -------------------------------------------------------------------------------


def test_a_batch_moves_through_its_states_on_the_backend_clock(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a", "b", "c", "d")
    seen = [statuses(provider, handle)]
    for seconds in (30, 150, 150, 150, 150, 30):
        backend.advance(seconds)
        seen.append(statuses(provider, handle))
    assert seen == [
        "validating",
        "in_progress",
        "in_progress",
        "in_progress",
        "in_progress",
        "finalizing",
        "completed",
    ]
    status = provider.poll_status(handle)
    assert (status.state, status.total, status.completed, status.failed) == (
        BatchState.COMPLETED,
        4,
        4,
        0,
    )
    assert status.ended_at is not None and status.created_at is not None
    assert (status.ended_at - status.created_at).total_seconds() == 660
    assert set(status.timestamps) >= {"created_at", "in_progress_at", "finalizing_at"}


def test_requests_finish_one_by_one_while_in_progress(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a", "b", "c", "d")
    backend.advance(30)
    done = []
    for _ in range(4):
        backend.advance(150)
        done.append(provider.poll_status(handle).completed)
    assert done == [1, 2, 3, 4]


def test_results_come_back_shuffled_but_repeatably(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    ids = [f"r{i}" for i in range(20)]
    handle = submit(*ids)
    backend.advance(3600)
    order = [r.custom_id for r in provider.fetch_results(handle)]
    assert sorted(order) == sorted(ids) and order != ids
    assert [r.custom_id for r in provider.fetch_results(handle)] == order


def test_success_has_deterministic_text_cut_to_max_tokens(
    provider: FakeBatchProvider, backend: FakeBackend
) -> None:
    long = request("long", "one two three four five six", max_tokens=4)
    [payload] = provider.prepare_payloads([request("short", "hi"), long])
    handle = provider.submit(payload)
    payload.discard()
    backend.advance(3600)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    short = results["short"]
    assert short.ok and short.text == "Fake reply to: hi"
    assert short.response is not None and short.response["stop_reason"] == "end"
    assert short.usage is not None
    assert (short.usage.input_tokens, short.usage.output_tokens) == (1, 4)
    assert results["long"].text == "Fake reply to: one"
    assert results["long"].response is not None
    assert results["long"].response["stop_reason"] == "max_tokens"


def test_scripted_outcomes_latest_script_wins(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    backend.script(lambda r: r.custom_id.startswith("x"), Outcome.error(code="bad_input"))
    backend.script("x2", Outcome.succeed(text="scripted"))
    backend.script(["y1"], Outcome.error(code="busy", message="try later", retryable=True))
    handle = submit("x1", "x2", "y1", "z1")
    backend.advance(3600)
    status = provider.poll_status(handle)
    assert (status.state, status.completed, status.failed) == (BatchState.COMPLETED, 2, 2)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["x1"].status is ResultStatus.ERRORED
    assert results["x1"].error is not None
    assert (results["x1"].error.code, results["x1"].retryable) == ("bad_input", False)
    assert results["x2"].text == "scripted"
    assert results["y1"].error is not None
    assert (results["y1"].error.code, results["y1"].error.status_code) == ("busy", 500)
    assert results["y1"].retryable
    assert results["z1"].ok


def test_outcome_error_refuses_a_contradictory_status() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        Outcome.error(retryable=True, status_code=400)


def test_expiry_returns_finished_results_and_marks_the_rest_expired(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    backend.script("stuck", Outcome.never())
    handle = submit("ok1", "ok2", "stuck")
    backend.advance(3600)
    assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
    backend.advance(23 * 3600)
    status = provider.poll_status(handle)
    assert (status.state, status.completed) == (BatchState.EXPIRED, 2)
    results = {r.custom_id: r for r in provider.fetch_results(handle)}
    assert results["ok1"].ok and results["ok2"].ok
    assert results["stuck"].status is ResultStatus.EXPIRED and results["stuck"].retryable


def test_cancel_is_cancelling_then_cancelled_keeping_finished_results(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a", "b", "c", "d")
    backend.advance(30 + 300)  # half of the requests have finished
    assert provider.cancel(handle).state is BatchState.CANCELLING
    assert provider.poll_status(handle).state is BatchState.CANCELLED
    results = [r.status for r in provider.fetch_results(handle)]
    assert sorted(results) == sorted([ResultStatus.SUCCEEDED] * 2 + [ResultStatus.CANCELLED] * 2)


def test_cancelling_an_ended_batch_is_refused_by_the_vendor_and_returns_its_status(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a")
    backend.advance(3600)
    calls = len(backend.calls)
    assert provider.cancel(handle).state is BatchState.COMPLETED
    assert backend.calls[calls:] == ["cancel", "poll_status"]  # a 409, not retried


def test_advance_also_completes_a_cancellation(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a")
    provider.cancel(handle)
    backend.advance(1)
    assert backend.batch(handle.batch_id).cancelled_at is not None


def test_results_of_a_running_batch_are_refused_when_asked_for(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a")
    with pytest.raises(ResultsNotReadyError, match="validating"):
        provider.fetch_results(handle)
    assert "fetch_results" not in backend.calls


def test_a_rejected_batch_fails_with_its_error_and_every_request_is_reported(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    backend.reject_next_batch("invalid_file", "no good")
    handle = submit("a", "b")
    backend.advance(60)
    status = provider.poll_status(handle)
    assert status.state is BatchState.FAILED
    assert [(e.code, e.message) for e in status.errors] == [("invalid_file", "no good")]
    results = list(provider.fetch_results(handle))  # the vendor returns none; the core says why
    assert sorted(r.custom_id for r in results) == ["a", "b"]
    for result in results:
        assert result.status is ResultStatus.ERRORED and result.error is not None
        assert result.error.code == "batch_failed" and "no good" in result.error.message
        assert not result.retryable


# -- submit ----------------------------------------------------------------------------------


def test_idempotent_submit_returns_the_existing_batch(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    first = submit("a", "b", key="job-1:0")
    again = submit("a", "b", key="job-1:0")
    other = submit("a", "b", key="job-1:1")
    assert again == first and other.batch_id != first.batch_id
    assert backend.submitted_count == backend.batch_count() == 2
    assert first.metadata["idempotency_key"] == "job-1:0"


@pytest.mark.parametrize("idempotent", [True, False])
@pytest.mark.parametrize("lose", ["reset", "timeout", "lose_next_create"])
def test_a_lost_create_is_found_not_paid_twice(
    backend: FakeBackend, submit: Callable[..., BatchHandle], idempotent: bool, lose: str
) -> None:
    provider = FakeBatchProvider(config={"backend": backend, "idempotent_submit": idempotent})
    submit("other")  # another batch, of the same size, made a minute earlier
    backend.advance(61)
    if lose == "lose_next_create":
        backend.lose_next_create()
    else:
        backend.fail_next("submit", lose, after=True)
    handle = submit("b", via=provider)
    assert backend.batch_count() == 2
    assert backend.batch(handle.batch_id).custom_ids == ("b",)
    assert backend.calls[-2:] == ["submit", "list_batches"]


def test_nothing_sent_is_simply_sent_again(
    backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    backend.fail_next("submit", "reset")  # before the vendor saw it: nothing was sent
    handle = submit("a")
    assert backend.batch_count() == 1 and backend.batch(handle.batch_id).custom_ids == ("a",)
    assert backend.calls == ["submit", "submit"]


def test_a_non_idempotent_provider_refuses_to_guess_between_candidates(
    backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    provider = FakeBatchProvider(config={"backend": backend, "idempotent_submit": False})
    submit("first")  # the same size, at the same time: indistinguishable by what is echoed
    backend.lose_next_create()
    with pytest.raises(AmbiguousSubmitError) as info:
        submit("second", via=provider)
    assert info.value.candidates == ("fakebatch_000002", "fakebatch_000001")
    assert backend.batch_count() == 2


def test_an_unknown_outcome_without_a_batch_waits_out_the_settle_window(
    backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    provider = FakeBatchProvider(config={"backend": backend, "idempotent_submit": False})
    backend.fail_next("submit", ReadTimeout("read timed out"))  # lost before the vendor acted
    start = backend.clock.now()
    handle = submit("a", via=provider)
    assert backend.batch_count() == 1 and backend.batch(handle.batch_id).custom_ids == ("a",)
    assert backend.clock.now() - start >= provider.SUBMIT_SETTLE_SECONDS


def test_the_idempotency_switch_is_declared_per_provider(backend: FakeBackend) -> None:
    assert FakeBatchProvider(config={"backend": backend}).IDEMPOTENT_SUBMIT is True
    loose = FakeBatchProvider(config={"backend": backend, "idempotent_submit": "false"})
    assert loose.IDEMPOTENT_SUBMIT is False and FakeBatchProvider.IDEMPOTENT_SUBMIT is True
    with pytest.raises(ConfigurationError, match="idempotent_submit"):
        FakeBatchProvider(config={"backend": backend, "idempotent_submit": "maybe"})


def test_providers_sharing_a_backend_see_the_same_batches(
    backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a")
    resumed = FakeBatchProvider(config=FakeBatchProvider(config={"backend": backend}).config)
    backend.advance(3600)
    assert resumed.poll_status(BatchHandle.from_dict(handle.to_dict())).is_terminal
    assert [r.custom_id for r in resumed.fetch_results(handle)] == ["a"]


def test_a_default_backend_is_kept_in_config() -> None:
    provider = FakeBatchProvider()
    assert provider.config["backend"] is provider.backend
    assert FakeBatchProvider(config=provider.config).backend is provider.backend


def test_the_backend_receives_the_requests_the_base_class_wrote(
    provider: FakeBatchProvider, backend: FakeBackend
) -> None:
    req = BatchRequest.from_dict(
        {
            "custom_id": "p1",
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "provider_params": {"fake": {"seed": 7}, "other": {"top_k": 2}},
        }
    )
    [payload] = provider.prepare_payloads([req])
    assert payload.path is not None and payload.path.read_bytes().startswith(b'{"custom_id":"p1"')
    handle = provider.submit(payload)
    payload.discard()
    [sent] = backend.batch(handle.batch_id).requests
    assert sent == attrs.evolve(req, params={"seed": 7}, provider_params={})
    with pytest.raises(InvalidRequestError, match="is gone"):
        provider.submit(payload)


def test_the_backend_enforces_the_vendor_limits(backend: FakeBackend) -> None:
    small = FakeBackend(limits=backend.limits.with_overrides({"max_requests_per_batch": 2}))
    provider = FakeBatchProvider(config={"backend": small, "max_requests_per_batch": 5})
    [payload] = provider.prepare_payloads([request(f"r{i}") for i in range(3)])
    try:
        with pytest.raises(InvalidRequestError, match="at most 2"):
            provider.submit(payload)
    finally:
        payload.discard()
    assert small.batch_count() == 0


def test_embeddings_are_served_and_other_endpoints_refused(
    provider: FakeBatchProvider, backend: FakeBackend
) -> None:
    embed = BatchRequest.from_dict(
        {
            "custom_id": "e1",
            "model": FAKE_MODEL,
            "endpoint": "/v1/embeddings",
            "params": {"input": ["some text", "more"]},
        }
    )
    [payload] = provider.prepare_payloads([embed])
    handle = provider.submit(payload)
    payload.discard()
    backend.advance(3600)
    [result] = provider.fetch_results(handle)
    assert result.ok and result.text is None
    assert result.response is not None
    assert [len(vector) for vector in result.response["embeddings"]] == [8, 8]
    moderation = BatchRequest.from_dict(
        {
            "custom_id": "m1",
            "model": FAKE_MODEL,
            "endpoint": "/v1/moderations",
            "params": {"input": "x"},
        }
    )
    with pytest.raises(InvalidRequestError, match="serves") as info:
        provider.prepare_payloads([moderation])
    assert info.value.field == "endpoint"


def test_models_outside_fake_star_are_refused_unless_configured(backend: FakeBackend) -> None:
    other = BatchRequest.from_dict(
        {"custom_id": "a", "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    with pytest.raises(UnsupportedModelError):
        FakeBatchProvider(config={"backend": backend}).prepare_payloads([other])
    payloads = FakeBatchProvider(config={"backend": backend, "models": ["gpt-*"]}).prepare_payloads(
        [other]
    )
    for payload in payloads:
        payload.discard()
    assert backend.call_count() == 0


def test_handles_of_other_providers_are_refused_before_any_call(
    provider: FakeBatchProvider, backend: FakeBackend
) -> None:
    handle = BatchHandle(provider="openai", batch_id="batch_1", created_at=0)
    with pytest.raises(InvalidRequestError, match="belongs to provider 'openai'"):
        provider.poll_status(handle)
    assert backend.call_count() == 0


def test_bad_backend_config_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="FakeBackend"):
        FakeBatchProvider(config={"backend": "not a backend"})


# -- faults, retries and keys ---------------------------------------------------------------


def test_fail_next_targets_one_operation_and_retries_sleep_on_the_backend_clock(
    provider: FakeBatchProvider, backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    handle = submit("a")
    backend.fail_next("fetch_results", "server_error")  # not for poll_status
    backend.fail_next("poll_status", "overloaded", times=2)
    start = backend.clock.now()
    assert provider.poll_status(handle).raw_status == "validating"  # after 2 retries
    assert backend.calls[-3:] == ["poll_status"] * 3
    assert 0.5 < backend.clock.now() - start < 2.0  # backoff slept on the fake clock
    backend.fail_next("poll_status", "overloaded", times=3)
    with pytest.raises(OverloadedError) as info:
        provider.poll_status(handle)
    # Translated outside the vendor exception's handler: nothing of it (its request, its key)
    # stays reachable from the error.
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize(
    ("kind", "after", "error"),
    [
        ("rate_limit", False, RateLimitError),
        ("quota", False, QuotaExceededError),
        ("unauthorized", False, AuthenticationError),
        ("reset", False, ProviderConnectionError),
        ("reset", True, ResponseLostError),
        ("timeout", False, ProviderTimeoutError),
        ("timeout", True, ResponseTimeoutError),
    ],
)
def test_fault_kinds_map_to_batchcore_errors(
    backend: FakeBackend,
    submit: Callable[..., BatchHandle],
    kind: str,
    after: bool,
    error: type[Exception],
) -> None:
    handle = submit("a")
    strict = FakeBatchProvider(config={"backend": backend, "max_retries": 0})
    backend.fail_next("*", kind, after=after)
    with pytest.raises(error) as info:
        strict.poll_status(handle)
    # Only a failure after the vendor received the call leaves its outcome unknown.
    assert isinstance(info.value, OutcomeUnknownError) is (after and kind in ("reset", "timeout"))


def test_fail_next_and_inject_fault_validate_their_arguments(backend: FakeBackend) -> None:
    with pytest.raises(ValueError, match="operation"):
        backend.fail_next("upload", "reset")
    with pytest.raises(ValueError, match="unknown fault"):
        backend.fail_next("submit", "meteor")
    with pytest.raises(ValueError, match="cannot inject fault 'meteor'"):
        backend.inject_fault("meteor")
    assert backend.calls == []


def test_inject_fault_lost_create_carries_out_the_next_create_only(
    backend: FakeBackend, submit: Callable[..., BatchHandle]
) -> None:
    assert "lost_create" in backend.FAULTS
    handle = submit("a")
    backend.inject_fault("lost_create")
    strict = FakeBatchProvider(config={"backend": backend, "max_retries": 0})
    assert strict.poll_status(handle).batch_id == handle.batch_id  # not a create: unaffected
    submit("b")
    assert backend.batch_count() == 2
    assert backend.calls[-3:] == ["poll_status", "submit", "list_batches"]


def test_a_backend_with_a_key_refuses_others_without_showing_them(backend: FakeBackend) -> None:
    guarded = FakeBackend(api_key=KEY)
    wrong = FakeBatchProvider(config={"backend": guarded, "api_key": "wrong-key-9876543210"})
    [payload] = wrong.prepare_payloads([request("a")])
    try:
        with pytest.raises(AuthenticationError) as info:
            wrong.submit(payload)
        assert "wrong-key-9876543210" not in f"{info.value} {info.value!r}"
        right = FakeBatchProvider(config={"backend": guarded, "api_key": KEY})
        assert right.submit(payload).batch_id == "fakebatch_000001"
    finally:
        payload.discard()


def test_the_backend_is_a_contract_backend(backend: FakeBackend) -> None:
    assert isinstance(backend, ContractBackend)
    kinds = {"rate_limit", "server_error", "overloaded", "unauthorized", "reset", "lost_create"}
    assert set(backend.FAULTS) == kinds | {"corrupt_result_line"}
    failing = backend.failing_request("f1", FAKE_MODEL)
    assert failing.custom_id == "f1"
    assert backend.call_count() == 0 and backend.batch_count() == 0


def test_a_shared_clock_drives_the_backend() -> None:
    clock = ManualClock(start=0.0)
    backend = FakeBackend(
        clock=clock, validating_seconds=0, in_progress_seconds=10, finalizing_seconds=0
    )
    provider = FakeBatchProvider(config={"backend": backend})
    [payload] = provider.prepare_payloads([request("a")])
    handle = provider.submit(payload)
    payload.discard()
    clock.advance(10)
    assert provider.poll_status(handle).state is BatchState.COMPLETED
    assert provider.clock() == 10.0
    with pytest.raises(ValueError, match="validating_seconds"):
        FakeBackend(validating_seconds=-1)


def test_the_former_module_still_offers_the_fake() -> None:
    from batchcore.testing import fake

    assert fake.FakeBatchProvider is FakeBatchProvider and fake.FakeBackend is FakeBackend
