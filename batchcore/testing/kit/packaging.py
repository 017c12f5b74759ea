"""Packaging: the provider rebuilds from its config, one installed entry point offers it, and
discovering it imports no vendor SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points

import attrs
import pytest

from batchcore.provider import BaseBatchProvider
from batchcore.registry import ENTRY_POINT_GROUP, BatchProviderRegistry
from batchcore.testing.kit.failures import fail, qualified
from batchcore.testing.kit.harness import ContractKit, KitFixtures

__all__ = ["PackagingTests"]


@attrs.frozen
class _EntryPointSearch:
    found: tuple[tuple[EntryPoint, type[BaseBatchProvider]], ...]
    problems: tuple[str, ...]


def _search_entry_points(name: str) -> _EntryPointSearch:
    """Every installed ``batch_providers`` entry point offering a provider called *name*, each
    loaded alone in a fresh registry (so a broken neighbour cannot hide or break it)."""
    found: list[tuple[EntryPoint, type[BaseBatchProvider]]] = []
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        registry = BatchProviderRegistry(entry_points=[ep], strict=False, allowlist=[ep.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offered = registry.list()
            problems.extend(str(failure) for failure in registry.failures)
            if name in offered:
                try:
                    found.append((ep, registry.get(name)))
                except Exception as exc:
                    problems.append(f"entry point {ep.name!r}: {type(exc).__name__}: {exc}")
    return _EntryPointSearch(found=tuple(found), problems=tuple(problems))


_PROBE = r"""
import importlib, json, sys, warnings
from importlib.metadata import EntryPoint
import batchcore
mode, name, value, group = sys.argv[1:5]
ep = EntryPoint(name=name, value=value, group=group)
before = set(sys.modules)
if mode == "import":
    importlib.import_module(ep.module)
else:
    warnings.simplefilter("ignore")
    batchcore.BatchProviderRegistry(entry_points=[ep], allowlist=[ep.name]).list()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded_by(mode: str, ep: EntryPoint) -> list[str]:
    """Modules a fresh interpreter imports, after ``import batchcore``, to import the entry
    point's module (*mode* ``"import"``) or to list providers through it (``"list"``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, ep.name, ep.value, ep.group],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        fail(
            f"a fresh interpreter could not {mode} entry point {ep.name!r} ({ep.value}):\n"
            f"{completed.stderr.strip()}"
        )
    loaded: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return loaded


def _vendor_hits(modules: Iterable[str], vendors: Sequence[str]) -> list[str]:
    return sorted({v for m in modules for v in vendors if m == v or m.startswith(v + ".")})


class PackagingTests(KitFixtures):
    """How the provider is built and installed."""

    __test__ = False

    def test_provider_rebuilds_from_its_config(self, contract_kit: ContractKit) -> None:
        provider = contract_kit.provider
        name = getattr(type(provider), "PROVIDER_NAME", None)
        if not isinstance(name, str) or not name:
            fail(f"{type(provider).__name__}.PROVIDER_NAME must be a non-empty string")
        rebuilt = contract_kit.rebuild()
        if type(rebuilt) is not type(provider):
            fail(f"rebuilding gave a {type(rebuilt).__name__}")
        if rebuilt.base_url != provider.base_url or rebuilt.api_key != provider.api_key:
            fail("a provider rebuilt from provider.config reaches another base_url or api_key")

    def _entry_point(self, contract_kit: ContractKit) -> EntryPoint:
        if not self.expects_entry_point:
            pytest.skip(
                "expects_entry_point is False: this provider is not installed through a "
                f"{ENTRY_POINT_GROUP!r} entry point"
            )
        name = contract_kit.name
        search = _search_entry_points(name)
        problems = "".join(f"\n  load failure: {p}" for p in search.problems)
        if not search.found:
            fail(
                f"no installed {ENTRY_POINT_GROUP!r} entry point offers a provider named "
                f"{name!r}. Declare one in pyproject.toml:\n"
                f'  [project.entry-points.{ENTRY_POINT_GROUP}]\n  {name} = "your_package.plugin"'
                "\nand reinstall the distribution (pip install -e .), or set "
                f"expects_entry_point = False if it is deliberately not installed.{problems}"
            )
        if len(search.found) > 1:
            offers = ", ".join(f"{ep.name} = {ep.value}" for ep, _ in search.found)
            fail(f"provider {name!r} is offered by several entry points ({offers}){problems}")
        ep, cls = search.found[0]
        under_test = type(contract_kit.provider)
        if cls is not under_test and qualified(cls) != qualified(under_test):
            fail(
                f"entry point {ep.name} = {ep.value} offers {name!r} as {qualified(cls)}, but "
                f"the provider under test is {qualified(under_test)}"
            )
        return ep

    def test_entry_point_offers_the_provider(self, contract_kit: ContractKit) -> None:
        self._entry_point(contract_kit)

    def test_entry_point_module_imports_no_vendor_sdk(self, contract_kit: ContractKit) -> None:
        ep = self._entry_point(contract_kit)
        if ep.attr:
            pytest.skip(
                f"entry point {ep.value!r} names a class, which discovery does not import; "
                "test_listing_providers_imports_no_vendor_sdk covers discovery"
            )
        hits = _vendor_hits(_modules_loaded_by("import", ep), self.vendor_modules)
        if hits:
            fail(
                f"importing entry-point module {ep.module!r} imports {hits}. Keep the "
                "entry-point module free of vendor SDKs: offer the provider as "
                "ProviderSpec(name=..., factory='package.provider:Class') so the SDK is "
                "imported only when the provider is used."
            )

    def test_listing_providers_imports_no_vendor_sdk(self, contract_kit: ContractKit) -> None:
        ep = self._entry_point(contract_kit)
        hits = _vendor_hits(_modules_loaded_by("list", ep), self.vendor_modules)
        if hits:
            fail(
                f"listing providers through entry point {ep.value!r} imports {hits}. Return "
                "ProviderSpec objects from batchcore_providers() instead of classes, so "
                "`batchcore providers` imports no vendor SDK."
            )
