from batchcore import ProviderSpec, hookimpl


@hookimpl
def batchcore_providers():
    return [
        ProviderSpec(name="alpha", factory="sample_plugins.providers:AlphaProvider"),
        ProviderSpec(name="gamma", factory="sample_plugins.lazy_heavy:GammaProvider"),
    ]
