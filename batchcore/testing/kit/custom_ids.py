"""custom_ids: each one either comes back exactly as it was sent, or is refused before any
network call, as the provider's declarations (``CUSTOM_ID_PATTERN``, ``MAX_CUSTOM_ID_LENGTH``)
say; control characters are refused for every provider."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from batchcore.errors import InvalidRequestError
from batchcore.testing.kit.failures import fail
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["AWKWARD_CUSTOM_IDS", "CONTROL_CUSTOM_IDS", "CustomIdTests"]

_HEX = "0123456789abcdef"

#: custom_ids a user may well have, which some vendors refuse: each round-trips or is refused
#: offline.
AWKWARD_CUSTOM_IDS: Mapping[str, str] = {
    "spaces": "order 1042 line 3",
    "accents": "réservation-Ærøskøbing-ñ",
    "cjk": "请求-リクエスト-요청",
    "emoji": "row-🚀-✨-👩‍💻",
    "64-chars": ("id-" + _HEX * 4)[:64],
    "200-chars": ("long-" + _HEX * 13)[:200],
}

#: custom_ids no provider may accept: they break line-based files, logs and joins.
CONTROL_CUSTOM_IDS: Mapping[str, str] = {
    "tab": "a\tb",
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "nul": "a\x00b",
    "delete": "a\x7fb",
    "c1-next-line": "a\x85b",
    "line-separator": "a\u2028b",
}


class CustomIdTests(KitFixtures):
    """What becomes of unusual custom_ids."""

    __test__ = False

    @pytest.mark.parametrize("kind", list(AWKWARD_CUSTOM_IDS))
    def test_custom_id_round_trips_or_is_refused_offline(
        self, contract_kit: ContractKit, kind: str
    ) -> None:
        custom_id = AWKWARD_CUSTOM_IDS[kind]
        capabilities = contract_kit.capabilities
        refusal = capabilities.custom_id_refusal(custom_id)
        plain = contract_kit.make_request(f"plain-{kind}")
        awkward = contract_kit.make_request(custom_id)
        if refusal is not None:
            error = contract_kit.expect_rejection(
                contract_kit.staging(),
                [plain, awkward],
                InvalidRequestError,
                f"custom_id {custom_id!r}, which the provider's {refusal} refuses",
            )
            if error.custom_id != custom_id and custom_id not in str(error):
                fail(f"the error refusing custom_id {custom_id!r} does not name it: {error}")
            return
        provider = contract_kit.staging()
        try:
            payloads = contract_kit.prepare([plain, awkward], provider)
        except InvalidRequestError as exc:
            fail(
                f"prepare_payloads refused custom_id {custom_id!r} ({exc}), but the provider's "
                f"declarations accept it ({capabilities.describe_custom_ids()}): declare what "
                "the vendor refuses, so it is refused for that reason, before any call"
            )
        for payload in payloads:
            payload.discard()
        handle = contract_kit.submit([plain, awkward])
        contract_kit.wait_terminal(handle)
        results = contract_kit.fetch(handle, [plain.custom_id, custom_id])
        if results[custom_id].custom_id != custom_id:
            fail(f"custom_id {custom_id!r} came back as {results[custom_id].custom_id!r}")

    @pytest.mark.parametrize("kind", list(CONTROL_CUSTOM_IDS))
    def test_custom_id_with_control_characters_is_refused_offline(
        self, contract_kit: ContractKit, kind: str
    ) -> None:
        custom_id = CONTROL_CUSTOM_IDS[kind]
        with contract_kit.no_network(f"building a request with custom_id {custom_id!r}"):
            try:
                request = contract_kit.make_request(custom_id)
            except InvalidRequestError as exc:
                if exc.field != "custom_id":
                    fail(f"custom_id {custom_id!r} was refused naming field {exc.field!r}: {exc}")
                return
            except Exception as exc:
                fail(
                    f"building a request with custom_id {custom_id!r} raised "
                    f"{type(exc).__name__}: {exc}; expected batchcore.InvalidRequestError"
                )
        contract_kit.expect_rejection(
            contract_kit.staging(), [request], InvalidRequestError, f"custom_id {custom_id!r}"
        )
