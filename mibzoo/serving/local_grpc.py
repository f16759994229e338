"""TF Serving's gRPC API (Predict, GetModelMetadata, GetModelStatus) for the local server.

Serves the same `ModelManager` as the REST API, so `GRPCClient` and
``serving/examples/grpc_client.py`` can be run without the TF Serving binary. Uses grpcio and
the TF Serving API protos (`mibzoo.serving.protos`).
"""
import logging
from concurrent import futures

from mibzoo.serving.errors import ServingStatusError, invalid_argument

logger = logging.getLogger("mibzoo.serving")

def _imports():
    from mibzoo.serving.protos import serving_apis

    apis = serving_apis()
    return (apis.grpc, apis.get_model_metadata_pb2, apis.get_model_status_pb2, apis.model_service_pb2_grpc,
            apis.predict_pb2, apis.prediction_service_pb2_grpc)


class _GrpcServer:
    def __init__(self, server, port):
        self._server = server
        self.port = port

    def stop(self, grace=None):
        return self._server.stop(grace)


def start_grpc_server(manager, api, host="127.0.0.1", port=8500, max_workers=8,
                      max_message_bytes=64 * 1024 * 1024):
    """Starts TF Serving's PredictionService and ModelService over `manager`.

    Args:
        manager: the `ModelManager`.
        api: the `RestApi` whose limits (max batch, timeout, slots) apply here too.
        host: the interface to bind.
        port: the port (0 picks a free one).
        max_workers: the gRPC thread pool size.
        max_message_bytes: the largest request and response message.

    Returns:
        A handle with ``port`` and ``stop(grace)``.
    """
    (grpc, get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
     predict_pb2, prediction_service_pb2_grpc) = _imports()
    import numpy as np
    import tensorflow as tf
    from google.protobuf import any_pb2

    def abort(context, err):
        context.abort(getattr(grpc.StatusCode, err.code), err.message)

    def version_of(spec):
        if spec.version_label:
            raise invalid_argument(
                f"Unrecognized servable version label: {spec.version_label} (the local server "
                "has no version labels)"
            )
        return spec.version.value if spec.HasField("version") else None

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                loaded = manager.get(request.model_spec.name, version_of(request.model_spec))
                try:
                    signature = request.model_spec.signature_name
                    specs = loaded.input_specs(signature)
                    arrays = {}
                    for key, proto in request.inputs.items():
                        try:
                            arrays[key] = tf.make_ndarray(proto)
                        except Exception as err:
                            raise invalid_argument(f"input {key!r}: bad TensorProto: {err}") from None
                        spec = specs.get(key)
                        if spec is not None and spec.dtype.kind == "O" and arrays[key].dtype.kind == "S":
                            arrays[key] = arrays[key].astype(object)
                    outputs = api.run_predict(loaded, signature, arrays)
                    wanted = list(request.output_filter) or sorted(outputs)
                    unknown = [k for k in wanted if k not in outputs]
                    if unknown:
                        raise invalid_argument(
                            f"output tensor alias not found in signature: {unknown[0]} Outputs "
                            f"expected to be in the set {{{','.join(sorted(outputs))}}}."
                        )
                    response = predict_pb2.PredictResponse()
                    response.model_spec.name = loaded.model
                    response.model_spec.version.value = loaded.version
                    response.model_spec.signature_name = signature or "serving_default"
                    for key in wanted:
                        response.outputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[key])))
                    return response
                finally:
                    loaded.release()
            except ServingStatusError as err:
                abort(context, err)

        def GetModelMetadata(self, request, context):
            try:
                if list(request.metadata_field) != ["signature_def"]:
                    raise invalid_argument("Metadata field signature_def is the only one supported")
                loaded = manager.get(request.model_spec.name, version_of(request.model_spec))
                try:
                    signature_map = get_model_metadata_pb2.SignatureDefMap()
                    for name, sig in loaded.signature_defs.items():
                        signature_map.signature_def[name].CopyFrom(sig)
                    packed = any_pb2.Any()
                    packed.Pack(signature_map)
                    response = get_model_metadata_pb2.GetModelMetadataResponse()
                    response.model_spec.name = loaded.model
                    response.model_spec.version.value = loaded.version
                    response.metadata["signature_def"].CopyFrom(packed)
                    return response
                finally:
                    loaded.release()
            except ServingStatusError as err:
                abort(context, err)

        def Classify(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify is not implemented locally")

        def Regress(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not implemented locally")

        def MultiInference(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not implemented locally")

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            try:
                statuses = manager.status(request.model_spec.name, version_of(request.model_spec))
                response = get_model_status_pb2.GetModelStatusResponse()
                for status in statuses:
                    entry = response.model_version_status.add()
                    entry.version = status.version
                    entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
                    entry.status.error_code = _error_code_value(status.error_code)
                    entry.status.error_message = status.error_message
                return response
            except ServingStatusError as err:
                abort(context, err)

        def HandleReloadConfigRequest(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          "the local server follows the directory; no config reloads")

    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC server to {host}:{port}")
    server.start()
    logger.info("gRPC API on %s:%d", host, bound)
    return _GrpcServer(server, bound)


def _error_code_value(name):
    from tensorflow_serving.apis import status_pb2

    # The enum is tensorflow.error.Code; read it through the field that uses it.
    enum = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    return enum.values_by_name[name].number
