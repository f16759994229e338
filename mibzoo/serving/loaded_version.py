"""One SavedModel version in its own Session on its own Graph, loaded with the session loader
(`mibzoo.session_loader.load_session`) -- the path TF Serving takes -- with its signatures ready
to run by tensor name, as the local server's `mibzoo.serving.servables.ModelManager` keeps them."""
import threading
from pathlib import Path

import numpy as np

from mibzoo import serving_contract, session_loader
from mibzoo.errors import find_input_error
from mibzoo.serving.errors import ServingStatusError, invalid_argument
from mibzoo.serving.rest_json import TensorSpecInfo, check_inputs


def _tf():
    import tensorflow as tf

    return tf


def _error_code_name(err):
    """The canonical code name of a ``tf.errors.OpError`` (``INVALID_ARGUMENT``, ...)."""
    tf = _tf()
    names = {
        tf.errors.CANCELLED: "CANCELLED",
        tf.errors.UNKNOWN: "UNKNOWN",
        tf.errors.INVALID_ARGUMENT: "INVALID_ARGUMENT",
        tf.errors.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
        tf.errors.NOT_FOUND: "NOT_FOUND",
        tf.errors.ALREADY_EXISTS: "ALREADY_EXISTS",
        tf.errors.PERMISSION_DENIED: "PERMISSION_DENIED",
        tf.errors.RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
        tf.errors.FAILED_PRECONDITION: "FAILED_PRECONDITION",
        tf.errors.ABORTED: "ABORTED",
        tf.errors.OUT_OF_RANGE: "OUT_OF_RANGE",
        tf.errors.UNIMPLEMENTED: "UNIMPLEMENTED",
        tf.errors.INTERNAL: "INTERNAL",
        tf.errors.UNAVAILABLE: "UNAVAILABLE",
        tf.errors.DATA_LOSS: "DATA_LOSS",
        tf.errors.UNAUTHENTICATED: "UNAUTHENTICATED",
    }
    return names.get(getattr(err, "error_code", None), "UNKNOWN")


def _spec_info(key, info):
    tf = _tf()
    from tensorflow.core.framework import types_pb2

    try:
        dtype = np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype)
    except TypeError:
        dtype = np.dtype("V")  # a dtype JSON cannot carry; rejected per request
    shape = (
        None
        if info.tensor_shape.unknown_rank
        else tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    )
    return TensorSpecInfo(key, info.name, dtype, types_pb2.DataType.Name(info.dtype), shape)


class LoadedVersion:
    """One model version in a Session, with its signatures ready to run.

    Session.run is thread-safe, so one instance serves concurrent requests. A reference
    count keeps the session open until the last in-flight request finishes after the
    version was unloaded.

    Args:
        model: the model name.
        version: the integer version.
        path: the version directory.
        identity: what the directory looked like when loaded (to notice replacement).
        session_config: optional ``tf.compat.v1.ConfigProto``.
    """

    def __init__(self, model, version, path, identity=None, session_config=None):
        self.model = model
        self.version = version
        self.path = Path(path)
        self.identity = identity
        self.session, self.meta_graph = session_loader.load_session(path, session_config)
        try:
            self.signature_defs = dict(self.meta_graph.signature_def)
            self.signatures = session_loader.serving_signatures(self.meta_graph)
            self.inputs = {
                name: {k: _spec_info(k, v) for k, v in sig.inputs.items()}
                for name, sig in self.signatures.items()
            }
            self.outputs = {
                name: {k: _spec_info(k, v) for k, v in sig.outputs.items()}
                for name, sig in self.signatures.items()
            }
        except BaseException:
            self.session.close()
            raise
        self._callables = {}
        self._lock = threading.Lock()
        self._refs = 1  # the manager's reference
        self._closed = False

    # -- lifetime ------------------------------------------------------------------

    def acquire(self):
        with self._lock:
            if self._closed or self._refs == 0:
                return False
            self._refs += 1
            return True

    def release(self):
        with self._lock:
            self._refs -= 1
            close = self._refs == 0 and not self._closed
            if close:
                self._closed = True
        if close:
            self.session.close()

    # -- running -------------------------------------------------------------------

    def input_specs(self, signature):
        """``{input_key: TensorSpecInfo}`` of `signature` ('' = serving_default).

        Raises:
            ServingStatusError: INVALID_ARGUMENT with TF Serving's text if unknown.
        """
        key = signature or serving_contract.DEFAULT_SIGNATURE
        if key in self.inputs:
            return self.inputs[key]
        if key in self.signature_defs:  # e.g. __saved_model_init_op: no inputs to feed
            raise invalid_argument(f"Failed to get input map for signature: {key}")
        raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')

    def _callable(self, signature):
        with self._lock:
            entry = self._callables.get(signature)
            if entry is None:
                sig = self.signatures[signature]
                in_keys = sorted(sig.inputs)
                out_keys = sorted(sig.outputs)
                # A callable binds feeds and fetches once: no name lookups per request.
                run = self.session.make_callable(
                    [sig.outputs[k].name for k in out_keys],
                    feed_list=[sig.inputs[k].name for k in in_keys],
                    accept_options=True,
                )
                entry = self._callables[signature] = (in_keys, out_keys, run)
            return entry

    def predict(self, signature, arrays, max_batch, timeout_ms=None):
        """Checks `arrays` against the signature and runs it.

        Args:
            signature: the signature name ('' = serving_default).
            arrays: ``{input_key: np.ndarray}``.
            max_batch: the largest accepted batch size.
            timeout_ms: the Session.run deadline, or None.

        Returns:
            ``{output_key: np.ndarray}``.

        Raises:
            ServingStatusError: bad inputs (INVALID_ARGUMENT) or a failed run (the
                TensorFlow error's code: e.g. DEADLINE_EXCEEDED, INTERNAL).
        """
        tf = _tf()
        key = signature or serving_contract.DEFAULT_SIGNATURE
        specs = self.input_specs(key)
        check_inputs(arrays, specs, key, max_batch)
        in_keys, out_keys, run = self._callable(key)
        options = tf.compat.v1.RunOptions(timeout_in_ms=int(timeout_ms)) if timeout_ms else None
        try:
            values = run(*[arrays[k] for k in in_keys], options=options)
        except tf.errors.OpError as err:
            message = find_input_error(err.message)
            if message is not None:  # a model's input check (NaN pixels, bad class ids, ...)
                raise invalid_argument(message) from None
            raise ServingStatusError(_error_code_name(err), err.message) from None
        except (ValueError, TypeError) as err:  # feed conversion errors
            raise invalid_argument(str(err)) from None
        return dict(zip(out_keys, values))

    def metadata(self):
        """TF Serving's GetModelMetadataResponse for this version, as a JSON object."""
        from google.protobuf import json_format

        signature_defs = {
            name: json_format.MessageToDict(
                sig,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for name, sig in sorted(self.signature_defs.items())
        }
        return {
            "model_spec": {"name": self.model, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }
