"""TF Serving's API protos and gRPC stubs, imported in one place.

They come with ``tensorflow-serving-api`` (a dependency of mibzoo: exports write warm-up records
and ``models.config`` with them, and the gRPC client and server use them). Importing them is
deferred to first use, so the REST client stays free of gRPC and protobuf.
"""
import types


def serving_apis():
    """A namespace with ``grpc``, the ``tensorflow_serving.apis`` modules mibzoo uses and
    ``model_server_config_pb2``.

    Raises:
        ImportError: saying what is missing and how to install it.
    """
    try:
        import grpc
        from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                             predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc)
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as err:
        raise ImportError(f"TF Serving's API protos cannot be imported ({err}); they come with mibzoo's "
                          "dependency tensorflow-serving-api: pip install tensorflow-serving-api") from err
    return types.SimpleNamespace(
        grpc=grpc, get_model_metadata_pb2=get_model_metadata_pb2, get_model_status_pb2=get_model_status_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc, predict_pb2=predict_pb2,
        prediction_log_pb2=prediction_log_pb2, prediction_service_pb2_grpc=prediction_service_pb2_grpc,
        model_server_config_pb2=model_server_config_pb2)
