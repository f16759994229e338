"""Run a SavedModel version the way TF Serving does: the session loader, signatures by tensor name.

A Keras 3 object saved with ``tf.saved_model.save`` often loads fine with ``tf.saved_model.load``
and then fails in the server with "Could not find variable ...": the Python loader re-creates
variables from the object graph, the session loader only restores what the MetaGraph's saver
knows about. `verify_with_session_loader` catches that before a version is published.
"""
import contextlib
import warnings
from pathlib import Path

import numpy as np

from mibzoo.serving_contract import SERVE_TAG, ServingContractError
from mibzoo.warmup import read_warmup_requests


def load_session(export_dir, config=None):
    """Loads a version directory the way TF Serving does: a Session on a fresh Graph.

    ``tf.compat.v1.saved_model.loader.load`` imports the MetaGraphDef tagged ``serve``,
    restores the variables through its SaverDef and runs the init op -- the steps of TF
    Serving's C++ ``LoadSavedModel`` (and of ``saved_model_cli run``). Signatures then
    run by tensor name with ``session.run``; Session.run is thread-safe.

    Args:
        export_dir: a version directory.
        config: optional ``tf.compat.v1.ConfigProto``.

    Returns:
        ``(session, meta_graph_def)``; the caller closes the session.
    """
    import tensorflow as tf

    session = tf.compat.v1.Session(graph=tf.Graph(), config=config)
    try:
        with _quiet_deprecation():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], str(export_dir))
    except BaseException:
        session.close()
        raise
    return session, meta_graph


@contextlib.contextmanager
def _quiet_deprecation():
    # The TF1 loader is deprecated for Python users, but it is the serving path we
    # mean to exercise; silence the warning it logs on every call.
    try:
        from tensorflow.python.util import deprecation
    except ImportError:  # pragma: no cover
        yield
        return
    with deprecation.silence():
        yield


def serving_signatures(meta_graph):
    """The callable signatures of a MetaGraphDef: all but internal ``__...`` entries."""
    return {
        key: sig for key, sig in meta_graph.signature_def.items() if not key.startswith("__")
    }


def verify_with_session_loader(export_dir, feeds=None, *, batch_size=2, warmup=True):
    """Runs every signature of a version through the session loader, as TF Serving would.

    Args:
        export_dir: a version directory.
        feeds: optional ``{signature_name: {input_name: array}}``; signatures or inputs
            not given get dummy inputs (batch `batch_size`, other unknown dims 2, floats
            from a fixed-seed normal, integers zero).
        batch_size: the batch size of dummy inputs.
        warmup: also replay ``assets.extra/tf_serving_warmup_requests`` if present (TF
            Serving fails the load when a warm-up request fails).

    Returns:
        ``{signature_name: {output_name: np.ndarray}}``.

    Raises:
        ServingContractError: if the version does not load or a signature fails; the
            message names the signature and carries TensorFlow's error.
    """
    export_dir = Path(export_dir)
    feeds = feeds or {}
    try:
        session, meta_graph = load_session(export_dir)
    except Exception as err:
        raise ServingContractError(
            f"{export_dir}: the session loader (what TF Serving uses) cannot load this "
            f"SavedModel with tag {SERVE_TAG!r}: {_first_lines(err)}"
        ) from err
    results = {}
    try:
        signatures = serving_signatures(meta_graph)
        unknown = set(feeds) - set(signatures)
        if unknown:
            raise ServingContractError(
                f"{export_dir}: feeds name unknown signatures {sorted(unknown)}; the "
                f"export has {sorted(signatures)}"
            )
        for sig_name, sig in sorted(signatures.items()):
            given = feeds.get(sig_name, {})
            rng = np.random.default_rng(0)  # per signature: same input names, same values
            inputs = {
                key: np.asarray(given[key]) if key in given else _dummy(info, batch_size, rng)
                for key, info in sorted(sig.inputs.items())
            }
            results[sig_name] = _run_signature(session, export_dir, sig_name, sig, inputs)
            for out_name, value in results[sig_name].items():
                batch = next(iter(inputs.values())).shape[0]
                if value.ndim == 0 or value.shape[0] != batch:
                    raise ServingContractError(
                        f"{export_dir}: signature {sig_name!r}: output {out_name!r} has shape "
                        f"{list(value.shape)} for a batch of {batch}; every output must keep "
                        "the batch dimension first (TF Serving's row format needs it)"
                    )
        if warmup:
            try:
                records = read_warmup_requests(export_dir)
            except ImportError as err:
                warnings.warn(f"{export_dir}: warm-up records not replayed: {err}", stacklevel=2)
                records = []
            for i, (sig_name, inputs) in enumerate(records):
                if sig_name not in signatures:
                    raise ServingContractError(
                        f"{export_dir}: warm-up record {i} names signature {sig_name!r}, "
                        f"which the export does not have ({sorted(signatures)})"
                    )
                _run_signature(session, export_dir, sig_name, signatures[sig_name], inputs,
                               what=f"warm-up record {i}")
    finally:
        session.close()
    return results


def _run_signature(session, export_dir, sig_name, sig, inputs, what="signature"):
    import tensorflow as tf

    missing = set(sig.inputs) - set(inputs)
    extra = set(inputs) - set(sig.inputs)
    if missing or extra:
        raise ServingContractError(
            f"{export_dir}: {what} for {sig_name!r}: inputs missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    feed = {sig.inputs[key].name: value for key, value in inputs.items()}
    fetches = {key: info.name for key, info in sig.outputs.items()}
    try:
        return session.run(fetches, feed)
    except (tf.errors.OpError, ValueError, TypeError) as err:
        hint = ""
        if "Could not find variable" in str(err) or "uninitialized" in str(err).lower():
            hint = (
                " -- the variables this signature reads are not restored by the session "
                "loader: they are missing from the SavedModel's saver. Export with "
                "keras.export.ExportArchive and track() the model (tf.saved_model.save on a "
                "Keras 3 model loads in Python with tf.saved_model.load, then fails in TF "
                "Serving)."
            )
        raise ServingContractError(
            f"{export_dir}: {what} {sig_name!r} fails in the session loader: "
            f"{_first_lines(err)}{hint}"
        ) from err


def _first_lines(err, n=6):
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return " | ".join(lines[:n])


def _dummy(info, batch_size, rng):
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    if info.tensor_shape.unknown_rank:
        shape = [batch_size]
    else:
        shape = [d.size if d.size >= 0 else 2 for d in info.tensor_shape.dim]
        if shape:
            shape[0] = batch_size
    if dtype.is_floating:
        return rng.standard_normal(shape).astype(dtype.as_numpy_dtype)
    if dtype == tf.string:
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=dtype.as_numpy_dtype)
