from batchcore import ProviderSpec, hookimpl


@hookimpl
def batchcore_providers():
    return [ProviderSpec(name="alpha", factory="sample_plugins.providers:OtherAlphaProvider")]
