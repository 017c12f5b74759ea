"""``ProviderContractTests``: every group of the kit in one class a provider's tests subclass."""

from __future__ import annotations

from typing import Any

from batchcore.testing.kit.custom_ids import CustomIdTests
from batchcore.testing.kit.errors import ErrorTests
from batchcore.testing.kit.lifecycle import LifecycleTests
from batchcore.testing.kit.packaging import PackagingTests
from batchcore.testing.kit.prepare import PrepareTests
from batchcore.testing.kit.secrets import SecretTests
from batchcore.testing.kit.submit import SubmitSafetyTests

__all__ = ["KIT_TESTS", "ProviderContractTests"]


def _xfail_reason(test: object) -> str | None:
    """The reason of the xfail mark on *test*, when it has one."""
    for mark in getattr(test, "pytestmark", None) or ():
        if getattr(mark, "name", None) == "xfail":
            reason = getattr(mark, "kwargs", {}).get("reason")
            if isinstance(reason, str) and reason.strip():
                return reason
    return None


class ProviderContractTests(
    PackagingTests,
    PrepareTests,
    CustomIdTests,
    LifecycleTests,
    SubmitSafetyTests,
    ErrorTests,
    SecretTests,
):
    """Conformance tests every batch provider must pass. Subclass it in a ``Test*`` class and
    override the ``provider`` and ``backend`` fixtures (see :mod:`batchcore.testing.kit`).

    A kit test may be overridden only to mark it ``@pytest.mark.xfail(reason=...)``.
    """

    __test__ = False  # the kit itself is not a test class; its subclasses are

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


#: The names of the kit's tests (a subclass overrides one only with an xfail mark).
KIT_TESTS = frozenset(name for name in dir(ProviderContractTests) if name.startswith("test_"))
