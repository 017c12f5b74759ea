"""Stands for a provider module that imports a vendor SDK: tests assert it loads only on get()."""

from sample_plugins.providers import NoNetworkProvider

LOADED = True


class GammaProvider(NoNetworkProvider):
    PROVIDER_NAME = "gamma"
