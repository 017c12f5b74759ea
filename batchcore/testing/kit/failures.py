"""How the kit reports a broken contract: one failure message that says what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

__all__ = ["exception_chain", "fail", "failure", "foreign_classes", "qualified"]


def fail(message: str) -> NoReturn:
    """Fail the current test with *message* alone (the kit's own frames help nobody)."""
    raise failure(message)


def failure(message: str) -> BaseException:
    """The exception :func:`fail` raises, for a function whose last word is a failure."""
    return pytest.fail.Exception(message, pytrace=False)


def qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """*exc* and every exception it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def foreign_classes(exc_type: type[BaseException], own_package: str) -> list[str]:
    """Classes in *exc_type*'s MRO from outside builtins, batchcore and the provider's own
    package: a vendor SDK's exception types, which callers should never have to catch."""
    allowed = ("batchcore", own_package)
    return [
        qualified(cls)
        for cls in exc_type.__mro__
        if cls.__module__ != "builtins"
        and not any(cls.__module__ == p or cls.__module__.startswith(p + ".") for p in allowed)
    ]
