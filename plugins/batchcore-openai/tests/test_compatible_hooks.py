"""The public hooks a provider for another OpenAI-compatible Batch API builds on (completion
windows, account headers, the idempotency metadata key) and the emulator options that play such
an API (windows, endpoints, list shape, echoed metadata)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest
import requests
from openai_support import API_KEY, FINISHED, chat

import batchcore_openai
from batchcore.errors import ConfigurationError, InvalidRequestError
from batchcore.models import BatchHandle, BatchRequest, BatchState
from batchcore.testing import LoopbackServer, ManualClock, Request, Response
from batchcore_openai import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

LINE: dict[str, Any] = {
    "custom_id": "a",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
}
WINDOWS = {"24h": 86_400.0, "48h": 172_800.0, "3d": 259_200.0}


class CompatibleProvider(OpenAIBatchProvider):
    """A provider for an OpenAI-compatible API with longer windows and no OpenAI account."""

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"completion_window"})
    COMPLETION_WINDOWS: ClassVar[frozenset[str]] = frozenset(WINDOWS)
    DEFAULT_COMPLETION_WINDOW: ClassVar[str] = "48h"
    OPENAI_ACCOUNT_HEADERS: ClassVar[bool] = False


# -- the completion window -----------------------------------------------------------------


def test_openai_and_azure_take_24h_only() -> None:
    assert OpenAIBatchProvider().completion_window == "24h"
    assert OpenAIBatchProvider(config={"completion_window": "24h"}).completion_window == "24h"
    assert AzureOpenAIBatchProvider(config={"completion_window": "24h"}).completion_window == "24h"
    for provider_class in (OpenAIBatchProvider, AzureOpenAIBatchProvider):
        for window in ("48h", "1d", "24H", "", 24, None):
            with pytest.raises(ConfigurationError, match="must be '24h'") as caught:
                provider_class(config={"completion_window": window})
            assert repr(window) in str(caught.value)


def test_a_subclass_declares_its_windows_and_default() -> None:
    assert CompatibleProvider().completion_window == "48h"
    assert CompatibleProvider(config={"completion_window": "3d"}).completion_window == "3d"
    with pytest.raises(ConfigurationError, match="'24h' or '3d' or '48h', got '7d'"):
        CompatibleProvider(config={"completion_window": "7d"})


def test_a_description_replaces_the_listed_windows() -> None:
    class Described(CompatibleProvider):
        COMPLETION_WINDOWS_DESCRIPTION: ClassVar[str | None] = "one to three days"

    with pytest.raises(ConfigurationError) as caught:
        Described(config={"completion_window": "7d"})
    assert str(caught.value) == "config 'completion_window' must be one to three days, got '7d'"


def test_the_repr_names_the_window() -> None:
    shown = repr(OpenAIBatchProvider(config={"api_key": API_KEY}))
    assert "completion_window='24h'" in shown and "api_key=set" in shown
    assert API_KEY not in shown


@pytest.fixture
def compatible_emulator(clock: ManualClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(
        clock=clock, api_key=API_KEY, completion_windows=WINDOWS, processing_seconds=30 * 3600
    ) as running:
        yield running


def test_the_configured_window_is_sent_and_the_batch_lives_that_long(
    compatible_emulator: OpenAIEmulator,
) -> None:
    handles = {}
    with CompatibleProvider(
        config={"base_url": compatible_emulator.url + "/v1", "api_key": API_KEY}
    ) as provider:
        for window in ("24h", "48h"):
            provider.completion_window = window
            [payload] = provider.prepare_payloads([chat(f"{window}-{i}") for i in range(3)])
            handles[window] = provider.submit(payload)
        sent = [body["completion_window"] for body in compatible_emulator.created_batch_requests]
        assert sent == ["24h", "48h"]
        long = provider.poll_status(handles["48h"])
        assert long.expires_at is not None and long.created_at is not None
        assert (long.expires_at - long.created_at).total_seconds() == 48 * 3600
        # Processing takes 30 hours: past a 24h window, within a 48h one.
        compatible_emulator.advance(40 * 3600)
        assert provider.poll_status(handles["24h"]).state is BatchState.EXPIRED
        assert provider.poll_status(handles["48h"]).state is BatchState.COMPLETED


# -- the idempotency metadata key ----------------------------------------------------------


def test_the_idempotency_metadata_key_is_public_and_what_a_create_carries(
    emulator: OpenAIEmulator, provider: OpenAIBatchProvider
) -> None:
    assert batchcore_openai.IDEMPOTENCY_METADATA_KEY == "batchcore_idempotency_key"
    [payload] = provider.prepare_payloads([chat("a")])
    handle = provider.submit(payload)
    [created] = emulator.created_batch_requests
    assert created["metadata"] == {
        batchcore_openai.IDEMPOTENCY_METADATA_KEY: handle.metadata["idempotency_key"]
    }


# -- account headers -----------------------------------------------------------------------


@pytest.fixture
def header_recorder() -> Iterator[tuple[LoopbackServer, list[Request]]]:
    """A server answering retrieves, remembering the requests it got."""
    seen: list[Request] = []

    def retrieve(request: Request) -> Response:
        seen.append(request)
        return Response.json(
            {
                "id": "batch_1",
                "object": "batch",
                "status": "validating",
                "created_at": 1,
                "endpoint": "/v1/chat/completions",
            }
        )

    with LoopbackServer() as server:
        server.add_route("GET", "/v1/batches/{batch_id}", retrieve)
        yield server, seen


def _retrieve_once(provider: OpenAIBatchProvider) -> None:
    handle = BatchHandle(
        provider=provider.PROVIDER_NAME, batch_id="batch_1", created_at=datetime.now(timezone.utc)
    )
    with provider:
        assert provider.poll_status(handle).state is BatchState.VALIDATING


@pytest.mark.parametrize("provider_class", [OpenAIBatchProvider, CompatibleProvider])
def test_account_headers_reach_openai_only(
    monkeypatch: pytest.MonkeyPatch,
    header_recorder: tuple[LoopbackServer, list[Request]],
    caplog: pytest.LogCaptureFixture,
    provider_class: type[OpenAIBatchProvider],
) -> None:
    server, seen = header_recorder
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Gateway: gateway")
    caplog.set_level(logging.WARNING)
    _retrieve_once(provider_class(config={"base_url": server.url + "/v1", "api_key": API_KEY}))
    [request] = seen
    assert request.header("authorization") == f"Bearer {API_KEY}"
    warned = [r.name for r in caplog.records if "OPENAI_CUSTOM_HEADERS" in r.getMessage()]
    if provider_class.OPENAI_ACCOUNT_HEADERS:
        assert request.header("openai-organization") == "org-from-env"
        assert request.header("openai-project") == "proj-from-env"
        assert warned == []
    else:
        assert request.header("openai-organization") is None
        assert request.header("openai-project") is None
        # On the logger of the package the provider class lives in (this test module).
        assert warned == [__name__.partition(".")[0]]


# -- the emulator's options ----------------------------------------------------------------


class Client:
    """Plain HTTP to an emulator."""

    def __init__(self, emulator: OpenAIEmulator) -> None:
        self.root = emulator.url + "/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def upload(self, *lines: dict[str, Any]) -> str:
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        answer = self.session.post(
            self.root + "/files",
            data={"purpose": "batch"},
            files={"file": ("input.jsonl", content, "application/jsonl")},
        )
        assert answer.status_code == 200, answer.text
        file_id: str = answer.json()["id"]
        return file_id

    def create(self, **fields: Any) -> requests.Response:
        body = {"endpoint": "/v1/chat/completions", "completion_window": "24h", **fields}
        return self.session.post(self.root + "/batches", json=body)


def test_the_emulator_takes_the_windows_it_is_given(
    compatible_emulator: OpenAIEmulator,
) -> None:
    client = Client(compatible_emulator)
    for window, seconds in WINDOWS.items():
        batch = client.create(input_file_id=client.upload(LINE), completion_window=window).json()
        assert batch["completion_window"] == window
        assert batch["expires_at"] - batch["created_at"] == seconds
    refused = client.create(input_file_id=client.upload(LINE), completion_window="7d")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["param"], error["code"]) == ("completion_window", "invalid_value")
    assert "'24h', '48h', '3d'" in error["message"]
    assert compatible_emulator.batch_count() == len(WINDOWS)


def test_an_openai_emulator_refuses_other_windows_as_the_spec_does(
    emulator: OpenAIEmulator,
) -> None:
    client = Client(emulator)
    refused = client.create(input_file_id=client.upload(LINE), completion_window="48h")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Invalid value for 'completion_window': '48h'. Supported values are: '24h'."
    )


def test_the_emulator_takes_only_the_endpoints_it_is_given(clock: ManualClock) -> None:
    with OpenAIEmulator(clock=clock, api_key=API_KEY, endpoints=["/v1/chat/completions"]) as emu:
        client = Client(emu)
        refused = client.create(input_file_id=client.upload(LINE), endpoint="/v1/embeddings")
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert (error["param"], error["code"]) == ("endpoint", "invalid_value")
        assert client.create(input_file_id=client.upload(LINE)).status_code == 200
        assert emu.batch_count() == 1


@pytest.mark.parametrize(
    "options",
    [
        {"endpoints": ["/v1/images/generations"]},
        {"endpoints": []},
        {"completion_windows": {}},
        {"completion_windows": {"24h": 0}},
    ],
)
def test_options_the_emulator_cannot_play_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OpenAIEmulator(**options)


def test_a_plain_batch_list_has_every_batch_newest_first_and_no_cursors(
    clock: ManualClock,
) -> None:
    with OpenAIEmulator(clock=clock, api_key=API_KEY, batch_list_cursors=False) as emu:
        client = Client(emu)
        ids = [client.create(input_file_id=client.upload(LINE)).json()["id"] for _ in range(3)]
        listed = client.session.get(client.root + "/batches", params={"limit": 1}).json()
        assert set(listed) == {"object", "data"} and listed["object"] == "list"
        assert [batch["id"] for batch in listed["data"]] == ids[::-1]


def test_the_default_batch_list_pages_with_cursors(emulator: OpenAIEmulator) -> None:
    client = Client(emulator)
    ids = [client.create(input_file_id=client.upload(LINE)).json()["id"] for _ in range(3)]
    page = client.session.get(client.root + "/batches", params={"limit": 2}).json()
    assert [batch["id"] for batch in page["data"]] == ids[:0:-1]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (ids[2], ids[1], True)


def test_metadata_can_be_left_out_of_batch_objects(emulator: OpenAIEmulator) -> None:
    client = Client(emulator)
    shown = client.create(input_file_id=client.upload(LINE), metadata={"job": "1"}).json()
    assert shown["metadata"] == {"job": "1"}
    emulator.echo_metadata = False
    assert all("metadata" not in batch for batch in emulator.batches())
    hidden = client.create(input_file_id=client.upload(LINE), metadata={"job": "2"}).json()
    assert "metadata" not in hidden
    assert emulator.created_batch_requests[-1]["metadata"] == {"job": "2"}


def test_a_lost_create_is_found_by_its_file_on_a_plain_list_without_metadata(
    clock: ManualClock,
) -> None:
    with OpenAIEmulator(
        clock=clock, api_key=API_KEY, batch_list_cursors=False, echo_metadata=False
    ) as emu:
        provider = OpenAIBatchProvider(
            config={"base_url": emu.url + "/v1", "api_key": API_KEY, "timeout": 0.5}
        )
        provider.clock, provider.sleep = clock.now, clock.sleep
        with provider:
            [payload] = provider.prepare_payloads([chat("a"), chat("b")])
            emu.inject_fault("lost_create")
            handle = provider.submit(payload)
            assert emu.batch_count() == 1
            assert emu.server.count("POST", "/v1/batches") == 1
            emu.advance(FINISHED)
            assert {r.custom_id for r in provider.fetch_results(handle)} == {"a", "b"}


# -- what the vendor refuses that OpenAI takes -------------------------------------------------


class Picky(OpenAIBatchProvider):
    """A vendor that refuses message names and has structured output on some models only."""

    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = ("vendor/*",)
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("picky",)
    REFUSED_MESSAGE_KEYS: ClassVar[Mapping[str, str]] = {"name": "no names here"}
    STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = ("vendor/big*", "vendor/small")
    STRICT_STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = ("vendor/big*",)


def _schema(strict: bool | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "x", "schema": {"type": "object"}}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


@pytest.mark.parametrize(
    ("model", "params", "messages", "field"),
    [
        (
            "vendor/small",
            {},
            [{"role": "user", "content": "hi", "name": "ann"}],
            "messages[0].name",
        ),
        ("vendor/tiny", {"response_format": _schema(None)}, None, "params.response_format"),
        ("vendor/tiny", {"response_format": _schema(False)}, None, "params.response_format"),
        (
            "vendor/small",
            {"response_format": _schema(True)},
            None,
            "params.response_format.json_schema.strict",
        ),
    ],
)
def test_a_subclass_declares_what_its_vendor_refuses(
    model: str, params: dict[str, Any], messages: list[Any] | None, field: str
) -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "r",
            "model": model,
            "messages": messages or [{"role": "user", "content": "hi"}],
            "params": params,
        }
    )
    with pytest.raises(InvalidRequestError) as caught:
        Picky().prepare_payloads([request])
    assert (caught.value.custom_id, caught.value.field) == ("r", field)
    if field.startswith("params"):
        assert "provider_params={'picky'" in str(caught.value)  # how to send it anyway


@pytest.mark.parametrize(
    ("model", "strict"),
    [
        ("vendor/big-1", True),
        ("vendor/big-1", None),
        ("vendor/small", False),
        ("vendor/small", None),
    ],
)
def test_a_subclass_takes_structured_output_where_declared(model: str, strict: bool | None) -> None:
    request = BatchRequest.from_dict(
        {
            "custom_id": "r",
            "model": model,
            "messages": [{"role": "user", "content": "hi", "name": None}],
            "params": {"response_format": _schema(strict)},
        }
    )
    [payload] = Picky().prepare_payloads([request])
    payload.discard()


def test_openai_refuses_none_of_it() -> None:
    assert OpenAIBatchProvider.REFUSED_MESSAGE_KEYS == {}
    assert OpenAIBatchProvider.STRUCTURED_OUTPUT_MODELS is None
    assert OpenAIBatchProvider.STRICT_STRUCTURED_OUTPUT_MODELS is None
    request = BatchRequest.from_dict(
        {
            "custom_id": "r",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi", "name": "ann"}],
            "params": {"response_format": _schema(True)},
        }
    )
    [payload] = OpenAIBatchProvider().prepare_payloads([request])
    payload.discard()
