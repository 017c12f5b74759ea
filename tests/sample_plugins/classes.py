from batchcore import hookimpl
from sample_plugins.providers import BetaProvider


@hookimpl
def batchcore_providers():
    return [BetaProvider]
