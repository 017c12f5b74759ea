"""The registry: in-process registration, entry-point discovery and isolation of broken plugins."""

from __future__ import annotations

import pickle
import sys
import warnings
from importlib.metadata import EntryPoint

import pytest
from sample_plugins.providers import AlphaProvider, BetaProvider, DirectProvider, OtherAlphaProvider

from batchcore import (
    BatchProviderRegistry,
    DuplicateProviderError,
    PluginLoadError,
    PluginLoadWarning,
    ProviderNotFoundError,
    ProviderSpec,
)
from batchcore.registry import ALLOWLIST_ENV, STRICT_ENV, batch_provider_registry

GROUP = "batch_providers"


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def registry(*eps: EntryPoint, **kwargs: object) -> BatchProviderRegistry:
    return BatchProviderRegistry(entry_points=eps, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STRICT_ENV, raising=False)
    monkeypatch.delenv(ALLOWLIST_ENV, raising=False)


# -- in-process registration ------------------------------------------------------------------


def test_register_get_list_in_process() -> None:
    reg = registry()
    assert reg.list() == []
    assert reg.register(BetaProvider) is BetaProvider
    assert reg.register(AlphaProvider) is AlphaProvider
    assert reg.list() == ["alpha", "beta"]
    assert reg.get("alpha") is AlphaProvider
    assert "beta" in reg
    assert reg.info("alpha").source == "register()"
    assert reg.info("alpha").description == "Alpha: a sample provider."
    provider = reg.create("alpha", {"api_key": "sk-test-abcdefgh"})
    assert isinstance(provider, AlphaProvider)


def test_register_same_class_twice_is_harmless_but_a_rival_is_refused() -> None:
    reg = registry()
    reg.register(AlphaProvider)
    reg.register(AlphaProvider)
    with pytest.raises(DuplicateProviderError, match="OtherAlphaProvider"):
        reg.register(OtherAlphaProvider)


def test_register_refuses_non_providers() -> None:
    reg = registry()
    with pytest.raises(TypeError, match="not a BaseBatchProvider subclass"):
        reg.register(dict)  # type: ignore[arg-type]


def test_unregister() -> None:
    reg = registry()
    reg.register(AlphaProvider)
    reg.unregister("alpha")
    assert reg.list() == []
    with pytest.raises(ProviderNotFoundError):
        reg.unregister("alpha")


def test_not_found_lists_installed_and_failures() -> None:
    reg = registry(ep("good", "sample_plugins.good"), ep("boom", "sample_plugins.raises_on_import"))
    with pytest.warns(PluginLoadWarning):
        reg.list()
    with pytest.raises(ProviderNotFoundError) as info:
        reg.get("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "alpha, gamma" in message
    assert "boom" in message and "not installed" in message
    assert isinstance(info.value, LookupError)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == message and again.name == "nope"


# -- discovery --------------------------------------------------------------------------------


def test_plugin_module_specs_are_listed_without_importing_the_class() -> None:
    sys.modules.pop("sample_plugins.lazy_heavy", None)
    reg = registry(ep("good", "sample_plugins.good"))
    assert reg.list() == ["alpha", "gamma"]
    assert "sample_plugins.lazy_heavy" not in sys.modules
    assert reg.info("gamma").factory == "sample_plugins.lazy_heavy:GammaProvider"
    cls = reg.get("gamma")
    assert cls.PROVIDER_NAME == "gamma"
    assert "sample_plugins.lazy_heavy" in sys.modules


def test_plugin_module_may_offer_classes() -> None:
    reg = registry(ep("classes", "sample_plugins.classes"))
    assert reg.get("beta") is BetaProvider


def test_entry_point_may_target_a_class_directly_and_loads_it_lazily() -> None:
    reg = registry(ep("direct", "sample_plugins.providers:DirectProvider"))
    assert reg.list() == ["direct"]
    assert reg.get("direct") is DirectProvider


def test_class_entry_point_whose_name_differs_from_provider_name_fails_on_get() -> None:
    reg = registry(ep("other", "sample_plugins.providers:DirectProvider"))
    assert reg.list() == ["other"]
    with pytest.warns(PluginLoadWarning), pytest.raises(PluginLoadError, match="PROVIDER_NAME"):
        reg.get("other")
    assert any(f.provider == "other" for f in reg.failures)


def test_discovery_order_is_deterministic() -> None:
    a = registry(ep("good", "sample_plugins.good"), ep("classes", "sample_plugins.classes"))
    b = registry(ep("classes", "sample_plugins.classes"), ep("good", "sample_plugins.good"))
    assert a.list() == b.list() == ["alpha", "beta", "gamma"]


def test_registration_collides_with_discovered_name() -> None:
    reg = registry(ep("good", "sample_plugins.good"))
    with pytest.raises(DuplicateProviderError, match="entry point 'good'"):
        reg.register(OtherAlphaProvider)


# -- isolation of broken plugins --------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("sample_plugins.raises_on_import", "import failed: ImportError"),
        ("sample_plugins.misspelled", "unknown hook"),
        ("sample_plugins.garbage", "not a BaseBatchProvider subclass"),
        ("sample_plugins.returns_none", "not an iterable"),
        ("sample_plugins.no_such_module", "import failed: ModuleNotFoundError"),
    ],
)
def test_broken_plugin_is_recorded_and_warned_and_others_keep_working(
    module: str, reason: str
) -> None:
    reg = registry(ep("broken", module), ep("good", "sample_plugins.good"))
    with pytest.warns(PluginLoadWarning, match="broken"):
        names = reg.list()
    assert names == ["alpha", "gamma"]
    assert reg.get("alpha") is AlphaProvider
    (failure,) = reg.failures
    assert failure.plugin == "broken"
    assert reason in failure.reason


def test_misspelled_hook_does_not_poison_later_plugins() -> None:
    # check_pending() looks at every registered plugin; the broken one must be unregistered
    # so the plugin loaded after it is not blamed.
    reg = registry(
        ep("a-misspelled", "sample_plugins.misspelled"), ep("z-good", "sample_plugins.good")
    )
    with pytest.warns(PluginLoadWarning):
        assert reg.list() == ["alpha", "gamma"]
    assert [f.plugin for f in reg.failures] == ["a-misspelled"]


def test_bad_factory_fails_on_get_with_the_reason() -> None:
    reg = registry(ep("bad", "sample_plugins.bad_factory"))
    assert reg.list() == ["broken"]
    with pytest.warns(PluginLoadWarning), pytest.raises(PluginLoadError, match="NoSuchClass"):
        reg.get("broken")
    # The failure is remembered: a second get raises the same error without re-importing.
    with pytest.raises(PluginLoadError, match="NoSuchClass"):
        reg.get("broken")
    assert len(reg.failures) == 1


def test_same_name_from_two_plugins_is_a_conflict_naming_both() -> None:
    reg = registry(ep("dup", "sample_plugins.duplicate"), ep("good", "sample_plugins.good"))
    with pytest.warns(PluginLoadWarning, match="alpha"):
        names = reg.list()
    assert names == ["gamma"]
    with pytest.raises(DuplicateProviderError) as info:
        reg.get("alpha")
    assert "entry point 'dup'" in str(info.value)
    assert "entry point 'good'" in str(info.value)
    assert "OtherAlphaProvider" in str(info.value) and "AlphaProvider" in str(info.value)


def test_strict_mode_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    reg = registry(
        ep("broken", "sample_plugins.raises_on_import"), ep("good", "sample_plugins.good")
    )
    with pytest.raises(PluginLoadError, match="import failed") as info:
        reg.list()
    assert isinstance(info.value.__cause__, ImportError)
    # Still strict on the next call: the partial load was forgotten.
    with pytest.raises(PluginLoadError):
        reg.list()


def test_strict_argument_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    reg = registry(ep("broken", "sample_plugins.raises_on_import"), strict=False)
    with pytest.warns(PluginLoadWarning):
        assert reg.list() == []


def test_allowlist_environment_restricts_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWLIST_ENV, "classes")
    reg = registry(
        ep("broken", "sample_plugins.raises_on_import"), ep("classes", "sample_plugins.classes")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is never even imported
        assert reg.list() == ["beta"]
    assert reg.failures == ()


def test_allowlist_argument() -> None:
    reg = registry(
        ep("good", "sample_plugins.good"),
        ep("classes", "sample_plugins.classes"),
        allowlist=["good"],
    )
    assert reg.list() == ["alpha", "gamma"]


def test_reload_rediscovers() -> None:
    reg = registry(ep("classes", "sample_plugins.classes"))
    reg.register(AlphaProvider)
    assert reg.list() == ["alpha", "beta"]
    reg.reload()
    assert reg.list() == ["beta"]


def test_job_event_hook_reaches_plugin_observers() -> None:
    from datetime import datetime, timezone

    from sample_plugins import observer

    from batchcore import JobEvent

    reg = registry(ep("observer", "sample_plugins.observer"))
    event = JobEvent(kind="submitted", job_id="j1", provider="x", at=datetime.now(timezone.utc))
    reg.plugin_manager.hook.batchcore_job_event(event=event)
    assert observer.EVENTS[-1] is event


def test_provider_spec_validates_its_fields() -> None:
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        ProviderSpec(name="x", factory="no_colon_here")
    with pytest.raises(ValueError, match="non-empty"):
        ProviderSpec(name="", factory="a:b")


def test_global_registry_is_a_registry() -> None:
    assert isinstance(batch_provider_registry, BatchProviderRegistry)
    assert isinstance(batch_provider_registry.list(), list)
