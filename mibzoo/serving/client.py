"""Clients for TF Serving (and the local server): REST with urllib, gRPC with the protos.

`Client` is built on urllib and numpy only (no gRPC or serving protos). `GRPCClient`
uses grpcio and the TF Serving API protos (`mibzoo.serving.protos`).

Cross-modal generation: a model exports ``generate_{source}_to_{target}`` (fresh samples)
and ``generate_{source}_to_{target}_seeded`` (reproducible: an extra int32 ``seed``
input of shape ``[batch, 2]``, one seed per example). `generate` picks the signature from
the one source modality given and the target.
"""
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from mibzoo.serving import jsonio
from mibzoo.serving.errors import ServingError

_NUMPY_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
}


def generate_signature_name(source, target, seeded=False):
    """The signature name for generating `target` from `source`."""
    return f"generate_{source}_to_{target}" + ("_seeded" if seeded else "")


def seeds_for_batch(seed, batch):
    """The ``[batch, 2]`` int32 seed input for a seeded signature.

    Args:
        seed: an int (row i gets ``[seed, i]``: rows differ, and the same seed gives the
            same batch again), a pair (every row gets it), or a ``[batch, 2]`` array.
        batch: the batch size.
    """
    array = np.asarray(seed)
    if array.ndim == 0:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"seed {seed!r}: expected an integer")
        array = np.stack([np.full(batch, int(array)), np.arange(batch)], axis=1)
    elif array.shape == (2,):
        array = np.tile(array, (batch, 1))
    elif array.shape != (batch, 2):
        raise ValueError(
            f"seed of shape {list(array.shape)}: expected an int, a pair, or [{batch}, 2]"
        )
    info = np.iinfo(np.int32)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"seed {seed!r}: values must fit in int32")
    return array.astype(np.int32)


def _generate_inputs(inputs, target, seed):
    if not isinstance(inputs, dict) or len(inputs) != 1:
        given = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            f"generate() takes exactly one source modality as {{name: array}}, got {given}; "
            "the exported signatures are generate_<source>_to_<target>[_seeded]"
        )
    (source, value), = inputs.items()
    if source == target:
        raise ValueError(f"source and target are both {source!r}")
    value = np.asarray(value)
    if value.ndim == 0:
        raise ValueError(f"input {source!r}: expected a batch (first dimension = examples)")
    request = {source: value}
    if seed is not None:
        request["seed"] = seeds_for_batch(seed, value.shape[0])
    return generate_signature_name(source, target, seed is not None), request


def _as_array(value, dtype_name=None):
    array = np.asarray(value)
    dtype = _NUMPY_DTYPES.get(dtype_name)
    if dtype is not None:
        return array.astype(dtype)
    if array.dtype == np.float64:
        return array.astype(np.float32)  # TF models compute in float32
    return array


def _jsonable(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
        return jsonio.array_value(value)  # written by orjson without a list of Python floats
    if isinstance(value, bytes):
        import base64

        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Client:
    """A TF Serving REST client (urllib only).

    Args:
        url: the server, e.g. ``http://localhost:8501``.
        timeout: seconds per HTTP request.

    Example::

        client = Client("http://localhost:8501")
        client.status("mnist_mvae")
        images = client.generate("wyner_vae", {"label": [9]}, "image", seed=7)  # class ids
    """

    def __init__(self, url="http://localhost:8501", timeout=30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._signatures = {}  # (model, version, signature) -> (expires, info)

    # -- transport -----------------------------------------------------------------

    def _call(self, method, path, payload=None):
        url = self.url + path
        data = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            data = jsonio.dumps(payload)
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode("utf-8", errors="replace").strip() or err.reason
            raise ServingError(message, status=err.code, url=url) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServingError(f"cannot reach the server: {reason}", url=url) from None
        try:
            return jsonio.loads(body)
        except ValueError:
            raise ServingError(f"the server answered non-JSON: {body[:200]!r}", url=url) from None

    def _model_path(self, model, version):
        path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return path

    # -- model status and metadata ---------------------------------------------------

    def status(self, model, version=None):
        """The model's version status (``GET /v1/models/NAME``), as TF Serving's JSON."""
        return self._call("GET", self._model_path(model, version))

    def metadata(self, model, version=None):
        """The model's signatures (``GET /v1/models/NAME/metadata``), as TF Serving's JSON."""
        return self._call("GET", self._model_path(model, version) + "/metadata")

    def signature(self, model, signature_name=None, version=None, max_age=10.0):
        """One signature's inputs and outputs, from the metadata (cached).

        Args:
            model: the model name.
            signature_name: the signature (None: ``serving_default``).
            version: a version, or None for the latest (cached `max_age` seconds, since
                a new version may change it).
            max_age: seconds to cache latest-version answers.

        Returns:
            ``{"inputs": {name: {"dtype": "DT_FLOAT", "shape": [-1, 4]}}, "outputs": {...}}``.
        """
        name = signature_name or "serving_default"
        key = (model, version, name)
        cached = self._signatures.get(key)
        if cached and (version is not None or cached[0] > time.monotonic()):
            return cached[1]
        signatures = self.metadata(model, version)["metadata"]["signature_def"]["signature_def"]
        if name not in signatures:
            raise ServingError(
                f'Serving signature name: "{name}" not found in signature def (the model has '
                f"{sorted(k for k in signatures if not k.startswith('__'))})",
                url=self.url + self._model_path(model, version),
            )

        def describe(infos):
            return {
                key: {
                    "dtype": info.get("dtype"),
                    "shape": None
                    if info.get("tensor_shape", {}).get("unknown_rank")
                    else [int(d.get("size", -1)) for d in info.get("tensor_shape", {}).get("dim", [])],
                }
                for key, info in infos.items()
            }

        info = {
            "inputs": describe(signatures[name].get("inputs", {})),
            "outputs": describe(signatures[name].get("outputs", {})),
        }
        self._signatures[key] = (time.monotonic() + max_age, info)
        return info

    # -- predict -------------------------------------------------------------------

    def predict_json(self, model, body, version=None):
        """Posts a raw predict request body; returns the raw JSON answer."""
        return self._call("POST", self._model_path(model, version) + ":predict", body)

    def predict(self, model, inputs, signature_name=None, version=None, format="inputs"):
        """Runs a signature; returns its outputs as numpy arrays keyed by output name.

        Args:
            model: the model name.
            inputs: ``{input_name: array-like}`` (every input, first dimension = batch).
            signature_name: the signature (None: ``serving_default``).
            version: a version, or None for the latest.
            format: ``"inputs"`` (columnar request) or ``"instances"`` (row request; all
                inputs must share the batch size).

        Returns:
            ``{output_name: np.ndarray}`` in the signature's dtypes.

        Raises:
            ServingError: with the server's error text on a 4xx/5xx answer.
        """
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("inputs: expected a non-empty {input_name: array} dict")
        body = {}
        if signature_name:
            body["signature_name"] = signature_name
        if format == "inputs":
            body["inputs"] = {key: _jsonable(np.asarray(v)) for key, v in inputs.items()}
        elif format == "instances":
            arrays = {key: np.asarray(v) for key, v in inputs.items()}
            sizes = {key: (a.shape[0] if a.ndim else None) for key, a in arrays.items()}
            if None in sizes.values() or len(set(sizes.values())) != 1:
                raise ValueError(
                    f"format='instances' needs every input batched with one size, got {sizes}"
                )
            batch = next(iter(sizes.values()))
            body["instances"] = [
                {key: _jsonable(a[i]) for key, a in arrays.items()} for i in range(batch)
            ]
        else:
            raise ValueError(f"format {format!r}: expected 'inputs' or 'instances'")
        answer = self.predict_json(model, body, version)
        outputs = self.signature(model, signature_name, version)["outputs"]
        names = sorted(outputs)
        if format == "inputs":
            value = answer["outputs"]
            columns = value if isinstance(value, dict) and len(names) > 1 else {names[0]: value}
        else:
            rows = answer["predictions"]
            if len(names) > 1:
                columns = {key: [row[key] for row in rows] for key in names}
            else:
                columns = {names[0]: rows}
        return {
            key: _as_array(value, outputs.get(key, {}).get("dtype"))
            for key, value in columns.items()
        }

    def generate(self, model, inputs, target, seed=None, version=None):
        """Generates modality `target` from one source modality (cross-modal generation).

        Args:
            model: the model name.
            inputs: ``{source_modality: batch}``, exactly one entry.
            target: the modality to generate.
            seed: None for fresh samples (signature ``generate_<source>_to_<target>``); an
                int, a pair or a ``[batch, 2]`` array for reproducible ones (signature
                ``..._seeded``; see `seeds_for_batch`).
            version: a version, or None for the latest.

        Returns:
            The generated batch of `target`, a numpy array.
        """
        signature, request = _generate_inputs(inputs, target, seed)
        body = {
            "signature_name": signature,
            "inputs": {key: _jsonable(value) for key, value in request.items()},
        }
        outputs = self.predict_json(model, body, version)["outputs"]
        if isinstance(outputs, dict):
            if target not in outputs:
                raise ServingError(
                    f"signature {signature!r} has no output {target!r} (outputs: {sorted(outputs)})",
                    url=self.url,
                )
            outputs = outputs[target]
        return _as_array(outputs)


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
        signature, request = _generate_inputs(inputs, target, seed)
        outputs = self.predict(model, request, signature_name=signature, version=version)
        if target not in outputs:
            raise ServingError(
                f"signature {signature!r} has no output {target!r} (outputs: {sorted(outputs)})",
                url=self.target,
            )
        return outputs[target]
