"""The provider registry, filled from the ``batch_providers`` entry-point group.

Two phases, so that a broken plugin can never break the others:

1. *Discover* (cheap): read the entry points' metadata, sorted by name. Nothing is imported.
2. *Load* (lazily, on the first ``list()``/``get()``): import each plugin module, register it
   with pluggy, ``check_pending()``, and call its ``batchcore_providers`` hook, each plugin in
   its own try/except. A failure is recorded (:attr:`BatchProviderRegistry.failures`) and warned
   about with :class:`~batchcore.PluginLoadWarning`.

An entry point may target a plugin *module* (``acme_batch.plugin``, with hookimpls) or a provider
*class* (``acme_batch.provider:AcmeBatchProvider``, named by the entry point). Class targets are
imported only on the first ``get()`` of their name.

Environment:

* ``BATCHCORE_PLUGINS`` - comma-separated entry-point or distribution names: only these load.
* ``BATCHCORE_STRICT_PLUGINS`` - ``1`` re-raises the first load failure (for plugin CI).
"""

from __future__ import annotations

import builtins
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from batchcore import hookspecs
from batchcore.errors import (
    DuplicateProviderError,
    PluginLoadError,
    PluginLoadWarning,
    ProviderNotFoundError,
)
from batchcore.provider_spec import ProviderSpec

if TYPE_CHECKING:
    from batchcore.provider import BaseBatchProvider

__all__ = [
    "ALLOWLIST_ENV",
    "ENTRY_POINT_GROUP",
    "STRICT_ENV",
    "BatchProviderRegistry",
    "PluginFailure",
    "ProviderInfo",
    "batch_provider_registry",
]

ENTRY_POINT_GROUP = "batch_providers"
STRICT_ENV = "BATCHCORE_STRICT_PLUGINS"
ALLOWLIST_ENV = "BATCHCORE_PLUGINS"

_IN_PROCESS = "register()"


@attrs.frozen(kw_only=True)
class ProviderInfo:
    """Where a provider comes from, without importing it."""

    name: str
    factory: str
    source: str
    distribution: str | None = None
    version: str | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class PluginFailure:
    """A plugin (or one provider of it) that could not be loaded, and why."""

    plugin: str
    reason: str
    distribution: str | None = None
    version: str | None = None
    provider: str | None = None

    def __str__(self) -> str:
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        what = f"provider {self.provider!r} of plugin" if self.provider else "plugin"
        return f"{what} {self.plugin!r}{dist}: {self.reason}"


@attrs.define
class _Entry:
    info: ProviderInfo
    spec: ProviderSpec | None = None
    cls: type[BaseBatchProvider] | None = None
    error: PluginLoadError | None = None


def _env_strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_allowlist() -> frozenset[str] | None:
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None or not raw.strip():
        return None
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _describe_class(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_provider_class(cls: Any) -> type[BaseBatchProvider]:
    # Imported here: listing providers offered as ProviderSpec never needs the base class (nor
    # the DTOs and payload writer behind it), which keeps discovery cheap.
    from batchcore.provider import BaseBatchProvider

    if not (isinstance(cls, type) and issubclass(cls, BaseBatchProvider)):
        raise PluginLoadError(f"{cls!r} is not a BaseBatchProvider subclass")
    name = getattr(cls, "PROVIDER_NAME", None)
    if not isinstance(name, str) or not name:
        raise PluginLoadError(f"{_describe_class(cls)} does not set PROVIDER_NAME")
    return cls


class BatchProviderRegistry:
    """Provider classes by name: installed plugins (discovered automatically) plus any
    registered in-process with :meth:`register`.

    ``entry_points``, ``strict`` and ``allowlist`` default to the installed entry points and the
    environment variables; tests pass them explicitly.
    """

    def __init__(
        self,
        *,
        group: str = ENTRY_POINT_GROUP,
        entry_points: Iterable[EntryPoint] | None = None,
        strict: bool | None = None,
        allowlist: Iterable[str] | None = None,
    ) -> None:
        self._group = group
        self._explicit_eps = None if entry_points is None else tuple(entry_points)
        self._strict = strict
        self._allowlist = None if allowlist is None else frozenset(allowlist)
        self._lock = threading.RLock()
        self._loaded = False
        self._entries: dict[str, _Entry] = {}
        self._conflicts: dict[str, DuplicateProviderError] = {}
        self._failures: list[PluginFailure] = []
        self._pm = self._new_plugin_manager()

    # -- public API ------------------------------------------------------------------------

    def register(self, cls: type[BaseBatchProvider]) -> type[BaseBatchProvider]:
        """Register a provider class in this process. Returns the class (usable as decorator).

        Registering the same class twice is harmless; a different class under a name already
        taken raises :class:`DuplicateProviderError` naming both.
        """
        try:
            cls = _check_provider_class(cls)
        except PluginLoadError as exc:
            raise TypeError(str(exc)) from None
        with self._lock:
            self._ensure_loaded()
            name = cls.PROVIDER_NAME
            existing = self._entries.get(name)
            if existing is not None:
                if existing.cls is cls:
                    return cls
                raise DuplicateProviderError(
                    f"provider {name!r} is already provided by {existing.info.source} "
                    f"({existing.info.factory}); cannot also register {_describe_class(cls)}",
                    name=name,
                )
            info = ProviderInfo(
                name=name,
                factory=_describe_class(cls),
                source=_IN_PROCESS,
                description=_first_line(cls.__doc__),
            )
            self._entries[name] = _Entry(info=info, cls=cls)
            return cls

    def unregister(self, name: str) -> None:
        """Forget a provider registered with :meth:`register` (tests use this)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.info.source != _IN_PROCESS:
                raise ProviderNotFoundError(
                    f"no provider {name!r} was registered in-process", name=name
                )
            del self._entries[name]

    def get(self, name: str) -> type[BaseBatchProvider]:
        """The provider class registered as *name*, imported now if it was not yet."""
        with self._lock:
            self._ensure_loaded()
            if name in self._conflicts:
                raise self._conflicts[name]
            entry = self._entries.get(name)
            if entry is None:
                raise ProviderNotFoundError(self._not_found_message(name), name=name)
            if entry.cls is None:
                if entry.error is None:
                    assert entry.spec is not None
                    try:
                        entry.cls = entry.spec.load()
                    except PluginLoadError as exc:
                        entry.error = exc
                        self._record(
                            PluginFailure(
                                plugin=entry.info.source,
                                reason=str(exc),
                                distribution=entry.info.distribution,
                                version=entry.info.version,
                                provider=name,
                            ),
                            exc,
                        )
                if entry.error is not None:
                    raise entry.error
            assert entry.cls is not None
            return entry.cls

    def create(self, name: str, config: Any = None) -> BaseBatchProvider:
        """Shorthand for ``registry.get(name)(config=config)``."""
        return self.get(name)(config=config)

    def list(self) -> list[str]:
        """Names of every available provider, sorted."""
        with self._lock:
            self._ensure_loaded()
            return sorted(self._entries)

    def info(self, name: str) -> ProviderInfo:
        """Where provider *name* comes from (distribution, version, factory), without importing."""
        with self._lock:
            self._ensure_loaded()
            if name in self._conflicts:
                raise self._conflicts[name]
            entry = self._entries.get(name)
            if entry is None:
                raise ProviderNotFoundError(self._not_found_message(name), name=name)
            return entry.info

    def providers(self) -> builtins.list[ProviderInfo]:
        """:class:`ProviderInfo` of every available provider, sorted by name."""
        return [self.info(name) for name in self.list()]

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Plugins (or providers) that failed to load, with the reason."""
        with self._lock:
            self._ensure_loaded()
            return tuple(self._failures)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding every loaded plugin module (for the job-event hook)."""
        with self._lock:
            self._ensure_loaded()
            return self._pm

    def reload(self) -> None:
        """Forget everything discovered (in-process registrations too) and discover again on the
        next call. Useful after installing a plugin into the running interpreter."""
        with self._lock:
            self._loaded = False
            self._entries.clear()
            self._conflicts.clear()
            self._failures.clear()
            self._pm = self._new_plugin_manager()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.list()

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __repr__(self) -> str:
        state = f"{len(self._entries)} providers" if self._loaded else "not loaded"
        return f"<BatchProviderRegistry group={self._group!r} {state}>"

    # -- loading ---------------------------------------------------------------------------

    @staticmethod
    def _new_plugin_manager() -> pluggy.PluginManager:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        return pm

    @property
    def strict(self) -> bool:
        return _env_strict() if self._strict is None else self._strict

    def _discover(self) -> builtins.list[EntryPoint]:
        if self._explicit_eps is not None:
            eps = list(self._explicit_eps)
        else:
            eps = list(entry_points(group=self._group))
        allow = _env_allowlist() if self._allowlist is None else self._allowlist
        if allow is not None:
            eps = [ep for ep in eps if ep.name in allow or (_dist(ep)[0] or "") in allow]
        return sorted(eps, key=lambda ep: (ep.name, _dist(ep)[0] or "", ep.value))

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            self._load_all()
        except BaseException:
            # Strict mode raised: forget the partial load so the next call raises again.
            self.reload()
            raise

    def _load_all(self) -> None:
        offered: dict[str, builtins.list[_Entry]] = {}
        for ep in self._discover():
            for entry in self._load_entry_point(ep):
                offered.setdefault(entry.info.name, []).append(entry)
        for name, entries in offered.items():
            if len(entries) == 1:
                self._entries[name] = entries[0]
                continue
            sources = " and ".join(f"{e.info.source} ({e.info.factory})" for e in entries)
            error = DuplicateProviderError(
                f"provider {name!r} is offered by {sources}; uninstall one of them "
                f"(or restrict loading with {ALLOWLIST_ENV})",
                name=name,
            )
            self._conflicts[name] = error
            self._record(
                PluginFailure(plugin=entries[0].info.source, reason=str(error), provider=name),
                error,
            )

    def _load_entry_point(self, ep: EntryPoint) -> builtins.list[_Entry]:
        dist_name, dist_version = _dist(ep)
        source = f"entry point {ep.name!r}" + (
            f" of {dist_name} {dist_version}" if dist_name else ""
        )

        def fail(reason: str, exc: BaseException | None = None) -> builtins.list[_Entry]:
            error = PluginLoadError(f"{source}: {reason}")
            if exc is not None:
                error.__cause__ = exc
            self._record(
                PluginFailure(
                    plugin=ep.name, reason=reason, distribution=dist_name, version=dist_version
                ),
                error,
            )
            return []

        if ep.attr:
            # "module:Class": a provider class named by the entry point, imported on get().
            try:
                spec = ProviderSpec(name=ep.name, factory=ep.value)
            except ValueError as exc:
                return fail(str(exc), exc)
            info = ProviderInfo(
                name=ep.name,
                factory=ep.value,
                source=source,
                distribution=dist_name,
                version=dist_version,
            )
            return [_Entry(info=info, spec=spec)]

        try:
            module = ep.load()
        except Exception as exc:
            return fail(f"import failed: {type(exc).__name__}: {exc}", exc)
        if not isinstance(module, ModuleType):
            return fail(f"target {ep.value!r} is not a module")
        try:
            self._pm.register(module, name=f"{ep.name}:{ep.value}")
        except Exception as exc:
            return fail(f"invalid hook implementation: {exc}", exc)
        try:
            self._pm.check_pending()
        except Exception as exc:
            self._pm.unregister(module)
            return fail(f"unknown hook (misspelled?): {exc}", exc)

        entries: builtins.list[_Entry] = []
        for impl in self._pm.hook.batchcore_providers.get_hookimpls():
            if impl.plugin is not module:
                continue
            try:
                offers = impl.function()
                if (
                    offers is None
                    or isinstance(offers, (str, bytes))
                    or not isinstance(offers, Iterable)
                ):
                    raise PluginLoadError(
                        f"batchcore_providers() returned {offers!r}, not an iterable of "
                        "provider classes or ProviderSpec"
                    )
                for offer in offers:
                    entries.append(self._entry_for(offer, source, dist_name, dist_version))
            except Exception as exc:
                self._pm.unregister(module)
                return fail(f"batchcore_providers() failed: {type(exc).__name__}: {exc}", exc)
        names = [e.info.name for e in entries]
        if len(names) != len(set(names)):
            self._pm.unregister(module)
            return fail(f"offers the same provider name twice: {sorted(names)}")
        return entries

    @staticmethod
    def _entry_for(offer: Any, source: str, dist: str | None, version: str | None) -> _Entry:
        if isinstance(offer, ProviderSpec):
            info = ProviderInfo(
                name=offer.name,
                factory=offer.factory,
                source=source,
                distribution=dist,
                version=version,
                description=offer.description,
            )
            return _Entry(info=info, spec=offer)
        cls = _check_provider_class(offer)
        info = ProviderInfo(
            name=cls.PROVIDER_NAME,
            factory=_describe_class(cls),
            source=source,
            distribution=dist,
            version=version,
            description=_first_line(cls.__doc__),
        )
        return _Entry(info=info, cls=cls)

    def _record(self, failure: PluginFailure, error: BaseException) -> None:
        self._failures.append(failure)
        if self.strict:
            if isinstance(error, PluginLoadError | DuplicateProviderError):
                raise error
            raise PluginLoadError(str(failure)) from error
        warnings.warn(f"batchcore: skipped {failure}", PluginLoadWarning, stacklevel=4)

    def _not_found_message(self, name: str) -> str:
        installed = ", ".join(sorted(self._entries)) or "none"
        message = f"no batch provider named {name!r}; installed: {installed}"
        if self._failures:
            message += "; failed to load: " + "; ".join(str(f) for f in self._failures)
        return message


def _dist(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"], dist.version
    except Exception:
        return None, None


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


#: The registry everyone shares: every installed provider plus in-process registrations.
batch_provider_registry = BatchProviderRegistry()
