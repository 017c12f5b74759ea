"""Provider configuration: secrets that never print, and typed reading of config values.

Config values may arrive as strings (``batchcore run --config timeout=30``), so the readers here
accept the string spelling of numbers and booleans and reject everything else by name.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from batchcore.errors import ConfigurationError

__all__ = [
    "Secret",
    "env_first",
    "is_secret_key",
    "read_bool",
    "read_float",
    "read_int",
    "read_str",
    "read_str_list",
]


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or pickles.

    Call :meth:`reveal` at the one place the value is needed (an HTTP header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigurationError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; pass configuration, not providers")


def env_first(names: Iterable[str]) -> str | None:
    """The first non-empty environment variable among *names*."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


# "tokens" (plural) counts tokens (max_enqueued_tokens, default_max_tokens): not a credential.
_SECRET_KEY = re.compile(r"(key|secret|token(?!s)|password|credential)", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a config key names something that must never be shown or stored."""
    return bool(_SECRET_KEY.search(key))


def _bad(key: str, expected: str, value: Any) -> ConfigurationError:
    # A mistyped secret is still a secret: name its type, never its value.
    shown = f"a {type(value).__name__}" if is_secret_key(key) else repr(value)
    return ConfigurationError(f"config {key!r} must be {expected}, got {shown}")


def read_str(config: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise _bad(key, "a non-empty string", value)
    return value


def read_float(
    config: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0
) -> float:
    value = config.get(key)
    if value is None:
        return default
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number or number < minimum:
        raise _bad(key, f"a number >= {minimum}", value)
    return number


def read_int(config: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(key, f"an integer >= {minimum}", value)
    return value


def read_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    }:
        return value.lower() in {"1", "true", "yes", "on"}
    raise _bad(key, "a boolean", value)


def read_str_list(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings, also accepted as one comma-separated string."""
    value = config.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _bad(key, "a list of strings or a comma-separated string", value)
