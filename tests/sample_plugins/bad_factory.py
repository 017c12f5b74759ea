from batchcore import ProviderSpec, hookimpl


@hookimpl
def batchcore_providers():
    return [ProviderSpec(name="broken", factory="sample_plugins.providers:NoSuchClass")]
