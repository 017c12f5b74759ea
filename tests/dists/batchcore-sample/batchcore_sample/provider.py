import json  # stands for a vendor SDK: imported only when the class is

from batchcore import BaseBatchProvider


class SampleProvider(BaseBatchProvider):
    PROVIDER_NAME = "sample"

    def encode_request(self, request):
        return json.dumps({"custom_id": request.custom_id}).encode()

    def submit(self, payload):
        raise NotImplementedError

    def poll_status(self, handle):
        raise NotImplementedError

    def fetch_results(self, handle):
        raise NotImplementedError

    def cancel(self, handle):
        raise NotImplementedError
