"""Publish SavedModel versions that TF Serving loads, proven before they are published.

`export_signatures` exports with ``keras.export.ExportArchive`` (one endpoint per signature, dict
outputs so every output tensor has a name, a ``None`` batch dimension on every input) into a hidden
temporary directory inside ``BASE/NAME``, checks it statically (`mibzoo.servable_checks`) and by
running every signature through the session loader TF Serving uses (`mibzoo.session_loader`), then
renames it into place, so a polling server never sees half a version, and rewrites
``BASE/models.config``. The layout and names it follows are `mibzoo.serving_contract`; warm-up
records are `mibzoo.warmup`.
"""
import ctypes
import errno
import os
import shutil
from pathlib import Path

from mibzoo.files import remove_stale_temporaries, temporary_directory, temporary_tag
from mibzoo.servable_checks import check_servable
from mibzoo.serving_contract import (ASSETS_EXTRA, KEY_RE, NAME_RE, WARMUP_FILE, check_name, check_version,
                                     next_version, update_models_config)
from mibzoo.session_loader import verify_with_session_loader
from mibzoo.warmup import normalize_warmup_requests, write_warmup_requests


def _tf():
    # Imported on use: TensorFlow loads when an export or a graph helper runs.
    import tensorflow as tf

    return tf


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

    check_name(name, "model name")
    signatures = _normalize_signatures(signatures)
    warmup_requests = normalize_warmup_requests(warmup_requests, signatures)
    assets = dict(assets or {})
    for filename in assets:
        if not NAME_RE.match(filename) or filename == WARMUP_FILE:
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
    version = next_version(model_dir) if version is None else check_version(version)
    target = model_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True to replace it or version=None "
            f"for the next version ({next_version(model_dir)})"
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


def _normalize_signatures(signatures):
    tf = _tf()
    if not signatures:
        raise ValueError("signatures: expected at least one {name: (fn, input_specs)} entry")
    normalized = {}
    for sig_name, entry in signatures.items():
        check_name(sig_name, "signature name")
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
            if not isinstance(key, str) or not KEY_RE.match(key):
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
            if not isinstance(key, str) or not KEY_RE.match(key):
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
