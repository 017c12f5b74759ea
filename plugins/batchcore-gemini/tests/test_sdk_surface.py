"""The one private part of google-genai the provider uses, ``Client._api_client.request``: it
is there in the installed release, it still speaks REST the way the provider calls it, the
release is inside the pinned range, and a release without it is refused with a message that
says what to install. When a new google-genai breaks any of this, these tests say so first."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import orjson
import pytest
from google import genai
from packaging.specifiers import SpecifierSet

from batchcore.plugin import ConfigurationError
from batchcore_gemini.provider import SUPPORTED_GENAI, api_request
from batchcore_gemini.testing import GeminiEmulator

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
INSTALLED = version("google-genai")


def test_the_pin_is_the_range_the_provider_names() -> None:
    pinned = re.search(r'"google-genai([^"]*)"', PYPROJECT.read_text(encoding="utf-8"))
    assert pinned is not None, "pyproject.toml no longer depends on google-genai"
    assert SpecifierSet(pinned[1]) == SpecifierSet(SUPPORTED_GENAI)


def test_the_installed_sdk_is_in_the_supported_range() -> None:
    assert INSTALLED in SpecifierSet(SUPPORTED_GENAI), (
        f"google-genai {INSTALLED} is installed, outside the range batchcore-gemini supports "
        f"({SUPPORTED_GENAI})"
    )


def test_the_private_entry_point_is_there_and_speaks_rest(emulator: GeminiEmulator) -> None:
    client = genai.Client(
        api_key=emulator.api_key, http_options={"base_url": emulator.url, "timeout": 5000}
    )
    try:
        request = api_request(client)
    except ConfigurationError as exc:
        pytest.fail(f"google-genai {INSTALLED}: {exc}")
    parameters = list(inspect.signature(request).parameters)
    assert parameters[:3] == ["http_method", "path", "request_dict"], (
        f"google-genai {INSTALLED} changed Client._api_client.request{inspect.signature(request)}"
        "; batchcore-gemini calls it as request(method, path, body): update provider._json"
    )
    response = request("get", "batches?pageSize=1", {})
    body = getattr(response, "body", None)
    assert isinstance(body, str), (
        f"google-genai {INSTALLED}: Client._api_client.request no longer answers an "
        f"HttpResponse with the JSON body as text (got {type(response).__name__}); "
        "update provider._json"
    )
    assert isinstance(orjson.loads(body or "{}"), dict)
    client.close()


def test_a_release_without_it_is_refused_saying_what_to_install() -> None:
    class WithoutIt:
        """What a google-genai client would look like without the private entry point."""

    with pytest.raises(ConfigurationError) as refused:
        api_request(WithoutIt())  # type: ignore[arg-type]
    assert "Client._api_client.request" in str(refused.value)
    assert f"install google-genai{SUPPORTED_GENAI}" in str(refused.value)
