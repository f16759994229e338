"""The gRPC client for TF Serving (and the local server's gRPC API), with the calls of the REST
`mibzoo.serving.client.Client`; it needs grpcio and the TF Serving API protos (`mibzoo.serving.protos`)."""
import numpy as np

from mibzoo.serving.errors import ServingError
from mibzoo.serving.signature_names import generate_request


class GRPCClient:
    """A TF Serving gRPC client with the same calls as `Client`.

    Args:
        target: ``host:port`` of the gRPC API (TF Serving's default port is 8500).
        timeout: seconds per call.
        max_message_bytes: the largest request or response message.

    Raises:
        ImportError: naming the ``serving`` extra when grpcio or tensorflow-serving-api
            is missing.
    """

    def __init__(self, target="localhost:8500", timeout=30.0, max_message_bytes=64 * 1024 * 1024):
        from mibzoo.serving.protos import serving_apis

        apis = serving_apis()
        grpc = apis.grpc
        self._grpc = grpc
        self._predict_pb2 = apis.predict_pb2
        self._metadata_pb2 = apis.get_model_metadata_pb2
        self._status_pb2 = apis.get_model_status_pb2
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self._prediction = apis.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = apis.model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _invoke(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as err:
            raise ServingError(err.details(), status=err.code().name, url=self.target) from None

    @staticmethod
    def _spec(spec, model, version, signature_name=None):
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        if signature_name:
            spec.signature_name = signature_name

    def predict(self, model, inputs, signature_name=None, version=None):
        """Runs a signature (``PredictionService.Predict``); see `Client.predict`.

        Returns:
            ``{output_name: np.ndarray}``.
        """
        import tensorflow as tf

        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("inputs: expected a non-empty {input_name: array} dict")
        request = self._predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, signature_name)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        response = self._invoke(self._prediction.Predict, request)
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    def metadata(self, model, version=None):
        """The model's signatures (``GetModelMetadata``), as the REST API's JSON."""
        from google.protobuf import json_format

        request = self._metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version)
        response = self._invoke(self._prediction.GetModelMetadata, request)
        signature_map = self._metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": json_format.MessageToDict(
                response.model_spec, preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True),
            "metadata": {"signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True)},
        }

    def status(self, model, version=None):
        """The model's version status (``ModelService.GetModelStatus``), as REST's JSON."""
        request = self._status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version)
        response = self._invoke(self._models.GetModelStatus, request)
        state_names = self._status_pb2.ModelVersionStatus.State.Name
        return {
            "model_version_status": [
                {
                    "version": str(entry.version),
                    "state": state_names(entry.state),
                    "status": {
                        "error_code": entry.status.DESCRIPTOR.fields_by_name["error_code"]
                        .enum_type.values_by_number[entry.status.error_code].name,
                        "error_message": entry.status.error_message,
                    },
                }
                for entry in response.model_version_status
            ]
        }

    def generate(self, model, inputs, target, seed=None, version=None):
        """Cross-modal generation over gRPC; see `Client.generate`."""
        signature, request = generate_request(inputs, target, seed)
        outputs = self.predict(model, request, signature_name=signature, version=version)
        if target not in outputs:
            raise ServingError(
                f"signature {signature!r} has no output {target!r} (outputs: {sorted(outputs)})",
                url=self.target,
            )
        return outputs[target]
