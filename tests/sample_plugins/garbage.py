from batchcore import hookimpl


@hookimpl
def batchcore_providers():
    return ["not a provider"]
