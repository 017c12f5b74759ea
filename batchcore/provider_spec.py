"""A lazy reference to a provider class, so plugin modules need not import vendor SDKs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import attrs

from batchcore.errors import PluginLoadError

if TYPE_CHECKING:
    from batchcore.provider import BaseBatchProvider

__all__ = ["ProviderSpec"]


def _check_factory(instance: ProviderSpec, attribute: attrs.Attribute[str], value: str) -> None:
    module, sep, attr = value.partition(":")
    if not (module and sep and attr):
        raise ValueError(f"factory must look like 'package.module:ClassName', got {value!r}")


def _check_name(instance: ProviderSpec, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"provider name must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class ProviderSpec:
    """Names a provider and where its class lives, without importing it.

    ``ProviderSpec(name="acme", factory="acme_batch.provider:AcmeBatchProvider")``
    """

    name: str = attrs.field(validator=_check_name)
    factory: str = attrs.field(validator=_check_factory)
    description: str = ""

    def load(self) -> type[BaseBatchProvider]:
        """Import and check the class. Raises :class:`PluginLoadError` saying what is wrong."""
        from batchcore.provider import BaseBatchProvider

        module_name, _, qualname = self.factory.partition(":")
        try:
            target: object = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except Exception as exc:
            raise PluginLoadError(
                f"provider {self.name!r}: cannot import {self.factory}: {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(target, type) and issubclass(target, BaseBatchProvider)):
            raise PluginLoadError(
                f"provider {self.name!r}: {self.factory} is not a BaseBatchProvider subclass"
            )
        if self.name != target.PROVIDER_NAME:
            raise PluginLoadError(
                f"provider {self.name!r}: {self.factory} has PROVIDER_NAME "
                f"{target.PROVIDER_NAME!r}, not {self.name!r}"
            )
        return target
