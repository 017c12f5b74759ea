from batchcore import ProviderSpec, hookimpl


@hookimpl
def batchcore_providers():
    return [
        ProviderSpec(
            name="sample",
            factory="batchcore_sample.provider:SampleProvider",
            description="The sample provider",
        )
    ]
