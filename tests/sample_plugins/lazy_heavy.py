"""Stands for a provider module that imports a vendor SDK: tests assert it loads only on get()."""

from sample_plugins.providers import _Stub

LOADED = True


class GammaProvider(_Stub):
    PROVIDER_NAME = "gamma"
