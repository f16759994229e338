"""Write SavedModel versions that TF Serving loads, and prove it before publishing them.

TF Serving loads ``BASE/NAME/VERSION/`` with the tag ``serve`` through the session-based
SavedModel loader and runs each SignatureDef by tensor name in a Session. A Keras 3 object
saved with ``tf.saved_model.save`` often loads fine with ``tf.saved_model.load`` and then
fails in the server with "Could not find variable ...": the Python loader re-creates
variables from the object graph, the session loader only restores what the MetaGraph's
saver knows about. So this module

- exports with ``keras.export.ExportArchive`` (one endpoint per signature, dict outputs so
  every output tensor has a name, ``None`` batch dimension on every input),
- checks the graph statically (``check_servable``: core ops with CPU kernels only, no
  ``py_function``, batch dimensions) and dynamically (``verify_with_session_loader``: load
  with the session loader and run every signature by tensor name),
- publishes a version atomically (export into a hidden temporary directory inside
  ``BASE/NAME``, then ``rename`` it into place), so a polling server never sees half a
  version,
- keeps ``BASE/models.config`` (a ``ModelServerConfig`` text proto) listing every model.

The tensorflow-serving-api protos (a dependency, `mibzoo.serving.protos`) are needed for
warm-up records and to merge an existing ``models.config``; everything else needs TensorFlow only.
"""
import contextlib
import ctypes
import errno
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np

from mibzoo.files import atomic_path, remove_stale_temporaries, temporary_directory, temporary_tag

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
# TF Serving reads at most this many warm-up records and fails the load beyond it.
MAX_WARMUP_RECORDS = 1000
# Ops that call back into the Python interpreter: the TF Serving binary has no Python.
PY_FUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
# Model and signature names end up in URLs (/v1/models/NAME) and tensor names.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VERSION_RE = re.compile(r"^[0-9]+$")


class ServingContractError(RuntimeError):
    """An export breaks what TF Serving needs (see export/README.md); the message says what."""


def _tf():
    # Imported on use: the checks below import TensorFlow internals only when they run.
    import tensorflow as tf

    return tf


def _serving_protos():
    from mibzoo.serving.protos import serving_apis

    apis = serving_apis()
    return apis.predict_pb2, apis.prediction_log_pb2, apis.model_server_config_pb2


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def export_signatures(
    base,
    name,
    version,
    module,
    signatures,
    assets=None,
    warmup_requests=None,
    overwrite=False,
    *,
    verify=True,
    verify_feeds=None,
    update_config=True,
    config_prefix="/models",
):
    """Exports `signatures` as the SavedModel version ``BASE/NAME/VERSION/``, atomically.

    Args:
        base: the TF Serving base directory (mounted at ``/models`` in the container).
        name: the model name (``/v1/models/NAME``); letters, digits, ``_ . -``.
        version: a non-negative integer, or None for one more than the highest existing
            version (1 for a new model).
        module: the Keras model or layer (or a list of them) whose variables the
            signatures use; each is tracked by the ExportArchive.
        signatures: ``{signature_name: (fn, input_specs)}``. ``input_specs`` maps each
            input name to a ``tf.TensorSpec`` whose first dimension is None (the batch).
            ``fn`` receives a dict of tensors keyed by input name and must return a dict
            of tensors keyed by output name. The first signature is also served as
            ``serving_default`` unless one is named so.
        assets: optional ``{filename: str | bytes}`` written to ``VERSION/assets.extra/``
            (model card, config, ...); TF Serving ignores them, humans and tools do not.
        warmup_requests: optional list of ``(signature_name, {input_name: array})``
            written as ``assets.extra/tf_serving_warmup_requests``; TF Serving replays
            them at load time (and fails the load if one fails).
        overwrite: replace an existing version (atomically) instead of refusing.
        verify: run `check_servable` and `verify_with_session_loader` on the temporary
            export before publishing it; a failing export is never published.
        verify_feeds: ``{signature_name: {input_name: array}}`` valid inputs for that check
            (signatures that validate their inputs refuse random dummies).
        update_config: rewrite ``BASE/models.config`` after publishing.
        config_prefix: the base directory as the TF Serving container sees it.

    Returns:
        The Path of the published version directory.

    Raises:
        ValueError: on malformed names, versions or specs.
        FileExistsError: if the version exists and `overwrite` is False.
        ServingContractError: if verification fails (nothing is published then).
    """
    import keras

    _check_name(name, "model name")
    signatures = _normalize_signatures(signatures)
    warmup_requests = _normalize_warmup(warmup_requests, signatures)
    assets = dict(assets or {})
    for filename in assets:
        if not _NAME_RE.match(filename) or filename == WARMUP_FILE:
            raise ValueError(
                f"asset file name {filename!r}: expected a plain file name "
                f"(letters, digits, '_ . -') other than {WARMUP_FILE!r}"
            )

    if Path(base).exists() and not Path(base).is_dir():
        raise ValueError(f"base {base}: exists and is not a directory; give the TF Serving base directory "
                         "(NAME/VERSION/ are created inside it)")
    model_dir = Path(base) / name
    if model_dir.exists() and not model_dir.is_dir():
        raise ValueError(f"{model_dir}: exists and is not a directory; it must hold the versions of model {name!r}")
    model_dir.mkdir(parents=True, exist_ok=True)
    version = _next_version(model_dir) if version is None else _check_version(version)
    target = model_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True to replace it or version=None "
            f"for the next version ({_next_version(model_dir)})"
        )

    # The temporary directory lives next to its destination so that the final rename
    # stays inside one file system; its name is not a number, so TF Serving's version
    # scan ignores it.
    # Exports killed before publishing left their temporary directories here: remove them.
    remove_stale_temporaries(model_dir)
    tmp = temporary_directory(model_dir, f"tmp-{version}")
    try:
        archive = keras.export.ExportArchive()
        for tracked in module if isinstance(module, (list, tuple)) else [module]:
            archive.track(tracked)
        for sig_name, (fn, specs) in signatures.items():
            archive.add_endpoint(
                sig_name, _dict_endpoint(sig_name, fn), input_signature=[specs]
            )
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / ASSETS_EXTRA
        if assets or warmup_requests:
            extra.mkdir()
        for filename, content in assets.items():
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            (extra / filename).write_bytes(data)
        if warmup_requests:
            write_warmup_requests(extra / WARMUP_FILE, name, warmup_requests)
        if verify:
            check_servable(tmp)
            verify_with_session_loader(tmp, verify_feeds)
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_config:
        update_models_config(base, config_prefix)
    return target


def _check_name(name, what):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r}: expected letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
        raise ValueError(f"version {version!r}: expected a non-negative integer or None")
    return int(version)


def list_versions(model_dir):
    """Returns the sorted integer versions under `model_dir` (TF Serving's view of it).

    Args:
        model_dir: ``BASE/NAME``.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in model_dir.iterdir()
        if _VERSION_RE.match(child.name) and child.is_dir()
    )


def _next_version(model_dir):
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _normalize_signatures(signatures):
    tf = _tf()
    if not signatures:
        raise ValueError("signatures: expected at least one {name: (fn, input_specs)} entry")
    normalized = {}
    for sig_name, entry in signatures.items():
        _check_name(sig_name, "signature name")
        if sig_name.startswith("__"):
            raise ValueError(f"signature name {sig_name!r}: names starting with '__' are reserved")
        try:
            fn, specs = entry
        except (TypeError, ValueError):
            raise ValueError(
                f"signature {sig_name!r}: expected a (fn, {{input_name: tf.TensorSpec}}) pair"
            ) from None
        if not callable(fn) or not isinstance(specs, dict) or not specs:
            raise ValueError(
                f"signature {sig_name!r}: expected a callable and a non-empty dict of "
                "input specs"
            )
        named = {}
        for key, spec in specs.items():
            if not isinstance(key, str) or not _KEY_RE.match(key):
                raise ValueError(
                    f"signature {sig_name!r}: input name {key!r}: expected a Python "
                    "identifier (it becomes a JSON key and a tensor name)"
                )
            if not isinstance(spec, tf.TensorSpec):
                raise ValueError(
                    f"signature {sig_name!r}: input {key!r}: expected a tf.TensorSpec, "
                    f"got {type(spec).__name__}"
                )
            if spec.shape.rank is None or spec.shape.rank == 0 or spec.shape[0] is not None:
                raise ValueError(
                    f"signature {sig_name!r}: input {key!r} has shape {spec.shape}; every "
                    "input needs a leading None batch dimension (TF Serving batches rows "
                    "along it; a seed is int32 [None, 2], one seed per example)"
                )
            # The spec name becomes the SignatureDef input key.
            named[key] = tf.TensorSpec(spec.shape, spec.dtype, name=key)
        normalized[sig_name] = (fn, named)
    return normalized


def _dict_endpoint(sig_name, fn):
    """Wraps `fn` so the endpoint returns a dict of named tensors, or fails clearly."""
    tf = _tf()

    def endpoint(inputs):
        outputs = fn(dict(inputs))
        if not isinstance(outputs, dict) or not outputs:
            raise TypeError(
                f"signature {sig_name!r}: the function must return a non-empty dict of "
                f"named tensors (TF Serving names outputs by key), got {type(outputs).__name__}"
            )
        for key in outputs:
            if not isinstance(key, str) or not _KEY_RE.match(key):
                raise ValueError(
                    f"signature {sig_name!r}: output name {key!r}: expected a Python identifier"
                )
        return {key: tf.convert_to_tensor(value) for key, value in outputs.items()}

    endpoint.__name__ = f"endpoint_{sig_name}"
    return endpoint


def _publish(tmp, target, overwrite):
    if not target.exists():
        os.rename(tmp, target)
        return
    if not overwrite:
        raise FileExistsError(f"{target} appeared while exporting; not replacing it")
    # Swap the two directories in one step so the version never disappears; the old
    # content then sits at `tmp` and is removed.
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # No renameat2 (non-Linux or old libc): two renames leave a window of a few
    # microseconds in which the version is missing.
    retired = target.with_name(f".old-{target.name}-{temporary_tag()}-retired")
    os.rename(target, retired)
    os.rename(tmp, target)
    shutil.rmtree(retired, ignore_errors=True)


def _exchange(a, b):
    """Atomically swaps two paths with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


# --------------------------------------------------------------------------------------
# Warm-up records and models.config
# --------------------------------------------------------------------------------------


def _normalize_warmup(warmup_requests, signatures):
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
    tf = _tf()
    predict_pb2, prediction_log_pb2, _ = _serving_protos()
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
    tf = _tf()
    _, prediction_log_pb2, _ = _serving_protos()
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


def update_models_config(base, base_path_prefix="/models"):
    """Writes ``BASE/models.config`` listing every model directory under `base`.

    A model directory is a subdirectory (not hidden) holding at least one numeric version
    directory with a ``saved_model.pb``. Entries of an existing config are kept with their
    extra settings (version policy, labels) when the tensorflow-serving-api protos are
    installed; entries whose directory is gone are dropped.

    Args:
        base: the TF Serving base directory.
        base_path_prefix: where `base` is mounted inside the TF Serving container; each
            model's ``base_path`` is ``PREFIX/NAME``.

    Returns:
        The Path of the config file.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    prefix = base_path_prefix.rstrip("/") or "/"
    names = sorted(
        child.name
        for child in base.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and _NAME_RE.match(child.name)
        and any((child / str(v) / "saved_model.pb").exists() for v in list_versions(child))
    )
    path = base / MODELS_CONFIG
    header = (
        "# TF Serving model config (ModelServerConfig text proto), written by\n"
        "# mibzoo.export_archive.update_models_config: one entry per model under the base\n"
        f"# directory. Load it with --model_config_file={_join(prefix, MODELS_CONFIG)}\n"
    )
    try:
        _, _, model_server_config_pb2 = _serving_protos()
    except ImportError:
        model_server_config_pb2 = None
    if model_server_config_pb2 is None:
        body = "model_config_list {\n" + "".join(
            "  config {\n"
            f'    name: "{n}"\n'
            f'    base_path: "{_join(prefix, n)}"\n'
            '    model_platform: "tensorflow"\n'
            "  }\n"
            for n in names
        ) + "}\n"
    else:
        from google.protobuf import text_format

        config = model_server_config_pb2.ModelServerConfig()
        if path.exists():
            text_format.Parse(path.read_text(encoding="utf-8"), config)
            if config.WhichOneof("config") == "custom_model_config":
                raise ValueError(f"{path}: holds a custom_model_config; not rewriting it")
        kept = {c.name: c for c in config.model_config_list.config if c.name in names}
        fresh = model_server_config_pb2.ModelServerConfig()
        for n in names:
            entry = fresh.model_config_list.config.add()
            if n in kept:
                entry.CopyFrom(kept[n])
            entry.name = n
            entry.base_path = _join(prefix, n)
            entry.model_platform = "tensorflow"
        # `model_config_list {}` must be present even when empty, or TF Serving reads
        # an empty config as "no config list".
        fresh.model_config_list.SetInParent()
        body = text_format.MessageToString(fresh)
    _atomic_write(path, header + body)
    return path


def _join(prefix, name):
    return f"{prefix.rstrip('/')}/{name}"


def _atomic_write(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


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
    tf = _tf()
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
    tf = _tf()
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
    tf = _tf()
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


def _read_meta_graph(export_dir):
    from tensorflow.core.protobuf import saved_model_pb2
    from google.protobuf import text_format

    export_dir = Path(export_dir)
    saved_model = saved_model_pb2.SavedModel()
    if (export_dir / "saved_model.pb").exists():
        saved_model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    elif (export_dir / "saved_model.pbtxt").exists():
        text_format.Parse((export_dir / "saved_model.pbtxt").read_text(), saved_model)
    else:
        raise ServingContractError(f"{export_dir}: no saved_model.pb; not a SavedModel version")
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {SERVE_TAG}:
            return meta_graph
    tags = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingContractError(
        f"{export_dir}: no MetaGraph tagged exactly {{'{SERVE_TAG}'}} (found {tags}); TF "
        "Serving loads the 'serve' tag set"
    )


# Ops that read, write or list files. A signature must not reach them: TF Serving runs every
# warm-up record at load time and every request afterwards, so such an op would touch the
# server's file system on behalf of whoever wrote the export or sends the request. The
# SavedModel's own saver (SaveV2, RestoreV2, ...) lives outside the signatures and is allowed.
FILE_SYSTEM_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2",
    "RestoreSlice", "MergeV2Checkpoints", "ImmutableConst", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "WholeFileReader", "WholeFileReaderV2", "TextLineReader",
    "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2",
    "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
    "SnapshotDataset", "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter", "DebugIdentityV2",
    "DebugIdentityV3",
})


def signature_ops(meta_graph):
    """Op types that the signatures of a MetaGraphDef can run (the saver's graph left out).

    Walks back from every signature input and output tensor through the graph and into every
    library function a reached node calls (``PartitionedCall`` attributes, direct function
    calls, functions nested in control flow), counting every op inside a reached function.
    """
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}
    pending_nodes = [info.name.split(":")[0] for sig in serving_signatures(meta_graph).values()
                     for infos in (sig.inputs, sig.outputs) for info in infos.values()]
    pending_functions, seen_nodes, seen_functions, ops = [], set(), set(), set()

    def called_functions(node_def):
        names = [node_def.op] if node_def.op in functions else []
        for attr in node_def.attr.values():
            if attr.HasField("func"):
                names.append(attr.func.name)
            names.extend(f.name for f in attr.list.func)
        return names

    while pending_nodes or pending_functions:
        if pending_nodes:
            name = pending_nodes.pop()
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            ops.add(node.op)
            pending_nodes.extend(i.lstrip("^").split(":")[0] for i in node.input)
            pending_functions.extend(called_functions(node))
        else:
            name = pending_functions.pop()
            if name in seen_functions or name not in functions:
                continue
            seen_functions.add(name)
            for node_def in functions[name].node_def:
                ops.add(node_def.op)
                pending_functions.extend(called_functions(node_def))
    return ops - set(functions)


def audit_ops(export_dir):
    """Lists the op types of a version's serving graph, function library included.

    Args:
        export_dir: a version directory.

    Returns:
        The set of op type names (calls of library functions are not op types and are
        left out; the ops inside those functions are in).
    """
    graph_def = _read_meta_graph(export_dir).graph_def
    functions = {f.signature.name for f in graph_def.library.function}
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops - functions


def check_servable(export_dir):
    """Checks statically that TF Serving can load and batch a version; raises otherwise.

    Checks: a MetaGraph tagged ``serve``; every op is a registered core TensorFlow op
    with a CPU kernel and none calls back into Python (``py_function``); no signature can
    reach an op that reads or writes files (`FILE_SYSTEM_OPS`); a
    ``serving_default`` signature; every input and output of every signature has a
    leading None batch dimension; warm-up records (if any) name existing signatures and
    their exact inputs.

    Args:
        export_dir: a version directory.

    Returns:
        The sorted list of op types (see `audit_ops`).

    Raises:
        ServingContractError: listing every problem found.
    """
    tf = _tf()
    from tensorflow.python.framework import kernels, op_def_registry

    export_dir = Path(export_dir)
    meta_graph = _read_meta_graph(export_dir)
    problems = []
    ops = audit_ops(export_dir)
    core_ops = set(dir(tf.raw_ops))
    for op in sorted(ops):
        if op in PY_FUNC_OPS:
            problems.append(
                f"op {op} calls back into Python (tf.py_function / tf.numpy_function); the "
                "TF Serving binary has no Python interpreter"
            )
        elif op not in core_ops or op_def_registry.get(op) is None:
            problems.append(f"op {op} is not a core TensorFlow op (custom op?); TF Serving "
                            "cannot load it")
        else:
            devices = {k.device_type for k in kernels.get_registered_kernels_for_op(op).kernel}
            if not devices & {"CPU", "DEFAULT"}:
                problems.append(f"op {op} has no CPU kernel")
    for op in sorted(signature_ops(meta_graph) & FILE_SYSTEM_OPS):
        problems.append(f"op {op} reads or writes files and a signature can run it; TF Serving would "
                        "execute it at load time (warm-up) and on requests, so it is refused")
    signatures = serving_signatures(meta_graph)
    if DEFAULT_SIGNATURE not in signatures:
        problems.append(
            f"no {DEFAULT_SIGNATURE!r} signature: requests without signature_name would fail"
        )
    for sig_name, sig in sorted(signatures.items()):
        if sig.method_name != PREDICT_METHOD:
            problems.append(
                f"signature {sig_name!r}: method {sig.method_name!r}, expected {PREDICT_METHOD!r}"
            )
        if not sig.inputs:
            problems.append(f"signature {sig_name!r} has no inputs")
        for kind, infos in (("input", sig.inputs), ("output", sig.outputs)):
            for key, info in sorted(infos.items()):
                shape = info.tensor_shape
                if shape.unknown_rank:
                    problems.append(
                        f"signature {sig_name!r}: {kind} {key!r} has unknown rank; give it a "
                        "static rank with a None batch dimension (tf.ensure_shape)"
                    )
                elif not shape.dim or shape.dim[0].size != -1:
                    dims = [d.size for d in shape.dim]
                    problems.append(
                        f"signature {sig_name!r}: {kind} {key!r} has shape {dims}; the first "
                        "dimension must be the None batch dimension (-1)"
                    )
    if (export_dir / ASSETS_EXTRA / WARMUP_FILE).exists():
        try:
            records = read_warmup_requests(export_dir)
        except ImportError:
            records = []  # cannot read them without the protos; the server will
        if len(records) > MAX_WARMUP_RECORDS:
            problems.append(f"{len(records)} warm-up records; TF Serving reads at most "
                            f"{MAX_WARMUP_RECORDS}")
        for i, (sig_name, inputs) in enumerate(records):
            if sig_name not in signatures:
                problems.append(f"warm-up record {i}: unknown signature {sig_name!r}")
            elif set(inputs) != set(signatures[sig_name].inputs):
                problems.append(
                    f"warm-up record {i} ({sig_name}): inputs {sorted(inputs)}, signature "
                    f"expects {sorted(signatures[sig_name].inputs)}"
                )
    if problems:
        raise ServingContractError(
            f"{export_dir} is not servable by TF Serving:\n  - " + "\n  - ".join(problems)
        )
    return sorted(ops)


# --------------------------------------------------------------------------------------
# Graph helpers for seeded signatures
# --------------------------------------------------------------------------------------


def per_example_stateless_normal(seeds, event_shape, dtype="float32"):
    """Draws one standard-normal sample of `event_shape` per row of `seeds`, statelessly.

    Each example has its own seed so that a row's sample does not depend on which other
    rows share its batch -- which TF Serving's request batching would otherwise change --
    and a request is reproducible. Uses only core ops (``StatelessRandomNormalV2`` inside
    a ``StatelessWhile``), identical on CPU and GPU.

    Args:
        seeds: int32 tensor ``[batch, 2]``.
        event_shape: the shape of one sample (list of ints or a 1-D int32 tensor).
        dtype: a floating dtype.

    Returns:
        A tensor ``[batch, *event_shape]``.
    """
    tf = _tf()
    seeds = tf.convert_to_tensor(seeds, dtype=tf.int32)
    dtype = tf.dtypes.as_dtype(dtype)
    shape = tf.convert_to_tensor(event_shape, dtype=tf.int32)
    static = tf.get_static_value(shape)
    spec_shape = [None] * shape.shape[0] if static is None else [int(d) for d in static]
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal(shape, seed=seed, dtype=dtype),
        seeds,
        fn_output_signature=tf.TensorSpec(spec_shape, dtype),
    )
