"""Deeply immutable JSON values: what a :class:`~batchcore.models.BatchRequest` holds.

A request is encoded once (its OpenAI body bytes are computed when it is built) and every
provider must encode the same request the same way, so nothing reachable from it may change
afterwards. JSON objects become :class:`FrozenDict` and arrays :class:`FrozenList`: a ``dict`` and a
``list`` that refuse every mutation, so orjson still writes them at C speed, ``isinstance``
checks still work, and they compare equal to the plain dicts and lists they were built from.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]


class FrozenDict(dict[str, Any]):
    """A ``dict`` that cannot be changed after it is built. Hashable (by content).

    ``dict(frozen)`` or ``{**frozen, ...}`` gives an ordinary, mutable copy.
    """

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "this mapping belongs to an immutable BatchRequest; build a changed copy with "
            "attrs.evolve(request, params={**request.params, ...})"
        )

    __setitem__ = _immutable
    __delitem__ = _immutable
    __ior__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle rebuild through the constructor, never through __setitem__
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset((key, _hashable(value)) for key, value in self.items()))


class FrozenList(list[Any]):
    """A ``list`` that cannot be changed after it is built. Hashable (by content)."""

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "this list belongs to an immutable BatchRequest; build a changed copy with "
            "attrs.evolve(request, ...)"
        )

    __setitem__ = _immutable
    __delitem__ = _immutable
    __iadd__ = _immutable
    __imul__ = _immutable
    append = _immutable
    extend = _immutable
    insert = _immutable
    pop = _immutable
    remove = _immutable
    reverse = _immutable
    sort = _immutable
    clear = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, list) else tuple(_hashable(v) for v in value)


_ATOMS = (str, int, float, bool, type(None))


def freeze(value: Any) -> Any:
    """*value* with every dict (any Mapping) turned into a :class:`FrozenDict` and every list
    or tuple into a :class:`FrozenList`, recursively. Other values are returned as they are
    (strings, numbers, and anything a later JSON check will refuse by name)."""
    cls = value.__class__
    # Exact type tests first: this runs over every message of every request.
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value
    if cls is dict or cls is FrozenDict:
        # Most objects (a chat message, a request's params) hold only atoms: one C-level copy.
        for item in value.values():
            kind = item.__class__
            if (
                kind is not str
                and kind is not int
                and kind is not float
                and kind is not bool
                and item is not None
            ):
                return FrozenDict({key: freeze(item) for key, item in value.items()})
        return FrozenDict(value)
    if cls is list or cls is tuple or cls is FrozenList:
        return FrozenList([freeze(item) for item in value])
    if isinstance(value, _ATOMS):
        return value
    if isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        return FrozenDict({key: freeze(value[key]) for key in value.keys()})  # noqa: SIM118
    if isinstance(value, (list, tuple)):
        return FrozenList([freeze(item) for item in value])
    return value


def thaw(value: Any) -> Any:
    """A mutable deep copy of a frozen value (dicts and lists), for code that edits it."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value
