"""Configuration: the completion window, the key and URL variables, what Groq never receives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from groq_support import API_KEY, Factory, chat

from batchcore.errors import AuthenticationError, ConfigurationError
from batchcore.models import BatchHandle, BatchState
from batchcore.testing import LoopbackServer, Request, Response
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator

# -- the completion window -----------------------------------------------------------------


def test_the_completion_window_defaults_to_24h() -> None:
    assert GroqBatchProvider().completion_window == "24h"


@pytest.mark.parametrize("window", ["24h", "25h", "48h", "168h", "1d", "2d", "7d"])
def test_completion_windows_from_24h_to_7d_are_accepted(window: str) -> None:
    assert GroqBatchProvider(config={"completion_window": window}).completion_window == window


@pytest.mark.parametrize(
    "window",
    ["23h", "169h", "8d", "0d", "0h", "-1d", "1w", "24", "24 h", " 24h", "24H", "7D", "", "1.5d"],
)
def test_other_completion_windows_are_refused_when_the_provider_is_built(window: str) -> None:
    with pytest.raises(ConfigurationError, match="'24h' to '7d'") as caught:
        GroqBatchProvider(config={"completion_window": window})
    assert repr(window) in str(caught.value)


@pytest.mark.parametrize("window", [24, 7.0, None, True, ["24h"]])
def test_a_completion_window_that_is_not_a_string_is_refused(window: Any) -> None:
    with pytest.raises(ConfigurationError, match="completion_window"):
        GroqBatchProvider(config={"completion_window": window})


@pytest.mark.parametrize("window", ["48h", "7d"])
def test_the_window_is_sent_on_create_and_shown_by_groq(
    emulator: GroqEmulator, make_provider: Factory, window: str
) -> None:
    provider = make_provider(completion_window=window)
    [payload] = provider.prepare_payloads([chat("a")])
    handle = provider.submit(payload)
    [created] = emulator.created_batch_requests
    assert created["completion_window"] == window
    status = provider.poll_status(handle)
    assert status.raw is not None and status.raw["completion_window"] == window
    assert status.created_at is not None and status.expires_at is not None
    hours = int(window[:-1]) * (24 if window.endswith("d") else 1)
    assert (status.expires_at - status.created_at).total_seconds() == hours * 3600


def test_a_batch_runs_until_the_end_of_the_window_it_asked_for(clock: Any) -> None:
    # Processing takes 30 hours: past a 24h window, within a 48h one.
    with GroqEmulator(clock=clock, api_key=API_KEY, processing_seconds=30 * 3600) as emulator:
        states = {}
        for window in ("24h", "48h"):
            provider = GroqBatchProvider(
                config={
                    "base_url": emulator.url + API_PATH,
                    "api_key": API_KEY,
                    "completion_window": window,
                }
            )
            [payload] = provider.prepare_payloads([chat(f"{window}-{i}") for i in range(4)])
            handles = provider.submit(payload)
            states[window] = (provider, handles)
        emulator.advance(40 * 3600)
        short, long = (provider.poll_status(handle) for provider, handle in states.values())
        assert short.state is BatchState.EXPIRED
        assert long.state is BatchState.COMPLETED
        for provider, _ in states.values():
            provider.close()


# -- key, URL and the SDK client ---------------------------------------------------------------


def test_defaults() -> None:
    provider = GroqBatchProvider()
    assert provider.base_url == "https://api.groq.com/openai/v1"
    assert provider.api_key is None
    assert provider.timeout == 60.0 and provider.max_retries == 2


def test_the_key_comes_from_groq_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", API_KEY)
    provider = GroqBatchProvider()
    assert provider.api_key is not None and provider.api_key.reveal() == API_KEY


def test_an_openai_key_is_never_taken_for_a_groq_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-0123456789abcdef")
    provider = GroqBatchProvider(config={"base_url": "http://127.0.0.1:9/openai/v1"})
    assert provider.api_key is None
    [payload] = provider.prepare_payloads([chat("a")])  # offline work needs no key
    with pytest.raises(AuthenticationError, match="GROQ_API_KEY") as caught:
        provider.submit(payload)
    assert "sk-openai" not in str(caught.value)


def test_environment_variables_reach_the_emulator(
    monkeypatch: pytest.MonkeyPatch, emulator: GroqEmulator
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", API_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", emulator.url + API_PATH)
    with GroqBatchProvider() as provider:
        [payload] = provider.prepare_payloads([chat("a")])
        handle = provider.submit(payload)
        assert provider.poll_status(handle).state is BatchState.VALIDATING
    assert emulator.batch_count() == 1


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("https://api.groq.com", "https://api.groq.com/openai/v1"),  # the groq SDK's spelling
        ("https://api.groq.com/", "https://api.groq.com/openai/v1"),
        ("https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1"),
        ("https://gateway.example/groq/v1", "https://gateway.example/groq/v1"),
    ],
)
def test_a_bare_host_gets_groqs_api_path(
    monkeypatch: pytest.MonkeyPatch, given: str, used: str
) -> None:
    assert GroqBatchProvider(config={"base_url": given}).base_url == used
    monkeypatch.setenv("GROQ_BASE_URL", given)
    assert GroqBatchProvider().base_url == used


def test_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_from_env_0000000")
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:1/openai/v1")
    provider = GroqBatchProvider(
        config={"api_key": API_KEY, "base_url": "http://127.0.0.1:2/openai/v1", "timeout": "9"}
    )
    assert provider.api_key is not None and provider.api_key.reveal() == API_KEY
    assert provider.base_url == "http://127.0.0.1:2/openai/v1"
    assert provider.timeout == 9.0


@pytest.mark.parametrize("key", ["organization", "project", "azure_endpoint"])
def test_openai_only_config_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigurationError, match=repr(key)):
        GroqBatchProvider(config={key: "x"})


def test_the_repr_names_the_window_and_never_the_key() -> None:
    shown = repr(GroqBatchProvider(config={"api_key": API_KEY, "completion_window": "3d"}))
    assert "completion_window='3d'" in shown and "api_key=set" in shown
    assert API_KEY not in shown


@pytest.fixture
def header_recorder() -> Iterator[tuple[LoopbackServer, list[Request]]]:
    """A server answering one retrieve, remembering the requests it got."""
    seen: list[Request] = []
    batch = {"id": "batch_1", "object": "batch", "status": "validating", "created_at": 1}

    def retrieve(request: Request) -> Response:
        seen.append(request)
        return Response.json({**batch, "endpoint": "/v1/chat/completions"})

    with LoopbackServer() as server:
        server.add_route("GET", API_PATH + "/batches/{batch_id}", retrieve)
        yield server, seen


def test_openai_account_settings_never_reach_groq(
    monkeypatch: pytest.MonkeyPatch, header_recorder: tuple[LoopbackServer, list[Request]]
) -> None:
    server, seen = header_recorder
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-openai-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-openai-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-0123456789abcdef")
    with GroqBatchProvider(
        config={"base_url": server.url + API_PATH, "api_key": API_KEY}
    ) as provider:
        handle = BatchHandle(
            provider="groq", batch_id="batch_1", created_at=datetime.now(timezone.utc)
        )
        assert provider.poll_status(handle).state is BatchState.VALIDATING
    [request] = seen
    assert request.header("authorization") == f"Bearer {API_KEY}"
    assert request.header("openai-organization") is None
    assert request.header("openai-project") is None
    assert not any(
        "openai-env" in value or "sk-openai" in value for value in request.headers.values()
    )


def test_openai_custom_headers_are_warned_about(
    monkeypatch: pytest.MonkeyPatch,
    header_recorder: tuple[LoopbackServer, list[Request]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, _ = header_recorder
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Gateway: openai-gateway")
    with GroqBatchProvider(
        config={"base_url": server.url + API_PATH, "api_key": API_KEY}
    ) as provider:
        handle = BatchHandle(
            provider="groq", batch_id="batch_1", created_at=datetime.now(timezone.utc)
        )
        provider.poll_status(handle)
    assert "OPENAI_CUSTOM_HEADERS" in caplog.text
    assert [r.name for r in caplog.records if "OPENAI_CUSTOM_HEADERS" in r.getMessage()] == [
        "batchcore_groq"
    ]
