"""TF Serving warm-up records: ``VERSION/assets.extra/tf_serving_warmup_requests``.

A TFRecord file of ``PredictionLog`` protos that TF Serving replays when it loads a version
(failing the load if one fails), so the first real request does not pay for graph warm-up.
Needs the tensorflow-serving-api protos (a dependency, `mibzoo.serving.protos`).
"""
from pathlib import Path

import numpy as np

from mibzoo.serving_contract import ASSETS_EXTRA, DEFAULT_SIGNATURE, WARMUP_FILE, ServingContractError, serving_protos

# TF Serving reads at most this many warm-up records and fails the load beyond it.
MAX_WARMUP_RECORDS = 1000


def normalize_warmup_requests(warmup_requests, signatures):
    if not warmup_requests:
        return []
    if len(warmup_requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"warmup_requests: {len(warmup_requests)} requests; TF Serving accepts at most "
            f"{MAX_WARMUP_RECORDS}"
        )
    normalized = []
    for i, entry in enumerate(warmup_requests):
        try:
            sig_name, inputs = entry
        except (TypeError, ValueError):
            raise ValueError(
                f"warmup_requests[{i}]: expected (signature_name, {{input_name: array}})"
            ) from None
        if sig_name not in signatures:
            raise ValueError(
                f"warmup_requests[{i}]: unknown signature {sig_name!r}; expected one of "
                f"{sorted(signatures)}"
            )
        specs = signatures[sig_name][1]
        if set(inputs) != set(specs):
            raise ValueError(
                f"warmup_requests[{i}] ({sig_name}): inputs {sorted(inputs)} must be exactly "
                f"{sorted(specs)}"
            )
        arrays = {}
        for key, value in inputs.items():
            array = np.asarray(value, dtype=specs[key].dtype.as_numpy_dtype)
            if not specs[key].shape.is_compatible_with(array.shape):
                raise ValueError(
                    f"warmup_requests[{i}] ({sig_name}): input {key!r} has shape "
                    f"{list(array.shape)}, signature expects {specs[key].shape}"
                )
            arrays[key] = array
        normalized.append((sig_name, arrays))
    return normalized


def write_warmup_requests(path, model_name, requests):
    """Writes TF Serving warm-up records: a TFRecord file of ``PredictionLog`` protos.

    Args:
        path: the output file (``VERSION/assets.extra/tf_serving_warmup_requests``).
        model_name: written into each request's ``model_spec.name``.
        requests: list of ``(signature_name, {input_name: np.ndarray})``.
    """
    import tensorflow as tf

    predict_pb2, prediction_log_pb2, _ = serving_protos()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for sig_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = sig_name
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def read_warmup_requests(export_dir):
    """Reads the warm-up records of a version directory.

    Args:
        export_dir: a version directory.

    Returns:
        A list of ``(signature_name, {input_name: np.ndarray})``; empty if the version has
        no warm-up file.
    """
    path = Path(export_dir) / ASSETS_EXTRA / WARMUP_FILE
    if not path.exists():
        return []
    import tensorflow as tf

    _, prediction_log_pb2, _ = serving_protos()
    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ServingContractError(
                f"{path}: record {i} is a {log.WhichOneof('log_type')}, mibzoo only writes "
                "predict_log records"
            )
        request = log.predict_log.request
        requests.append(
            (
                request.model_spec.signature_name or DEFAULT_SIGNATURE,
                {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()},
            )
        )
    return requests
