"""The REST client for TF Serving (and the local server), built on urllib and numpy only (no gRPC
or serving protos); the gRPC client with the same calls is `mibzoo.serving.grpc_client`.

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
from mibzoo.serving.signature_names import generate_request

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
        signature, request = generate_request(inputs, target, seed)
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
