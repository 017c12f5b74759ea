"""What a provider and its backend declare they can do, read once per test.

The kit never finds out by trying: a provider states its capabilities in class attributes
(``SUPPORTS_CANCEL``, ``IDEMPOTENT_SUBMIT``, ``CUSTOM_ID_PATTERN``, ``MAX_CUSTOM_ID_LENGTH``)
and its backend the faults it can inject (``FAULTS``); each test then asserts the behaviour the
declaration promises (a provider declaring that it cancels must cancel; one declaring that it
cannot must raise :class:`~batchcore.errors.UnsupportedOperationError`). A test skips only for
a capability declared absent.
"""

from __future__ import annotations

import re

import attrs

from batchcore.provider import BaseBatchProvider
from batchcore.testing.contract_backend import ContractBackend
from batchcore.testing.kit.failures import fail

__all__ = ["Capabilities"]


@attrs.frozen(kw_only=True)
class Capabilities:
    """The declarations the kit's tests go by."""

    supports_cancel: bool
    idempotent_submit: bool
    custom_id_pattern: re.Pattern[str] | None
    max_custom_id_length: int | None
    faults: frozenset[str]

    @classmethod
    def declared(cls, provider: BaseBatchProvider, backend: ContractBackend | None) -> Capabilities:
        """Read the declarations of *provider* (its class, or the instance where it declares
        per instance) and *backend*, failing the test on one that is not well formed."""
        name = type(provider).__name__
        flags: dict[str, bool] = {}
        for attribute in ("SUPPORTS_CANCEL", "IDEMPOTENT_SUBMIT"):
            value = getattr(provider, attribute)
            if not isinstance(value, bool):
                fail(f"{name}.{attribute} must be True or False, got {value!r}")
            flags[attribute] = value
        pattern = provider.CUSTOM_ID_PATTERN
        if pattern is not None and not isinstance(pattern, re.Pattern):
            fail(
                f"{name}.CUSTOM_ID_PATTERN must be a compiled regular expression "
                f"(re.compile(...)) or None, got {pattern!r}"
            )
        length = provider.MAX_CUSTOM_ID_LENGTH
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
            fail(f"{name}.MAX_CUSTOM_ID_LENGTH must be a positive int or None, got {length!r}")
        if length is not None and length < 1:
            fail(f"{name}.MAX_CUSTOM_ID_LENGTH must be a positive int or None, got {length!r}")
        faults: frozenset[str] = frozenset()
        if backend is not None:
            declared: object = backend.FAULTS
            if not isinstance(declared, (frozenset, set)) or not all(
                isinstance(kind, str) for kind in declared
            ):
                fail(
                    f"{type(backend).__name__}.FAULTS must be a frozenset of fault kinds, got "
                    f"{declared!r}"
                )
            faults = frozenset(declared)
        return cls(
            supports_cancel=flags["SUPPORTS_CANCEL"],
            idempotent_submit=flags["IDEMPOTENT_SUBMIT"],
            custom_id_pattern=pattern,
            max_custom_id_length=length,
            faults=faults,
        )

    def custom_id_refusal(self, custom_id: str) -> str | None:
        """Why the declarations refuse *custom_id*, or None when they accept it."""
        limit = self.max_custom_id_length
        if limit is not None and len(custom_id) > limit:
            return f"MAX_CUSTOM_ID_LENGTH = {limit} ({len(custom_id)} characters)"
        pattern = self.custom_id_pattern
        if pattern is not None and not pattern.match(custom_id):
            return f"CUSTOM_ID_PATTERN = {pattern.pattern!r}"
        return None

    def describe_custom_ids(self) -> str:
        return (
            f"CUSTOM_ID_PATTERN = "
            f"{None if self.custom_id_pattern is None else self.custom_id_pattern.pattern!r}, "
            f"MAX_CUSTOM_ID_LENGTH = {self.max_custom_id_length}"
        )
