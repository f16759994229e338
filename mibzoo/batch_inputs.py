"""A batch as `MIBModel` takes it, checked: which modalities are given, their dtypes, shapes and
value ranges, and which examples have which modality (``present``).

Every check raises `mibzoo.errors.InputError` naming the model, the modality and what is allowed.
Eagerly the error is raised at once; inside a compiled train or test step a check becomes a graph
assertion whose message `input_errors_surfaced` turns back into the same `InputError`.
"""
import contextlib
import difflib

import keras
import tensorflow as tf
from keras import ops

from mibzoo.errors import InputError, did_you_mean, find_input_error, tagged_input_error
from mibzoo.modalities import event_shape


@contextlib.contextmanager
def input_errors_surfaced():
    """Turns a failed input assertion inside a compiled step back into an `InputError` with its
    message, instead of TensorFlow's graph-execution trace."""
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        message = find_input_error(err)
        if message is None:
            raise
        raise InputError(message) from None


def prepare(model, inputs, strict, present=None):
    """Validates a batch and returns ``(x, present)``.

    ``x`` maps each given modality to float32 (categoricals one-hot); ``present`` is
    ``[B, N]`` (0/1). With ``strict`` (encode/generate) keys that are not modalities are
    errors and any subset of the modalities may be given; otherwise (training and evaluation
    batches, which carry labels such as ``digit``) other keys are ignored but every modality
    must be there: examples that lack one say so in the batch's ``present`` mask.
    """
    if not isinstance(inputs, dict):
        raise InputError(f"{model.name}: inputs must be a dict {{modality: batch}} with modalities "
                         f"{model.modality_names}, got {type(inputs).__name__}")
    unknown = [k for k in inputs if k not in model.modality_specs and k != "present"]
    if strict and unknown:
        raise InputError(f"{model.name}: unknown modality {unknown[0]!r}; this model's modalities are "
                         f"{model.modality_names}." + did_you_mean(unknown[0], model.modality_names))
    present = present if present is not None else inputs.get("present")
    x = {}
    for name in model.modality_names:
        if name in inputs:
            x[name] = _validated(model, name, inputs[name])
    if not x:
        raise InputError(f"{model.name}: the batch has none of this model's modalities {model.modality_names}; "
                         f"got keys {sorted(inputs)}")
    missing = [n for n in model.modality_names if n not in x]
    if not strict and missing:
        typo = difflib.get_close_matches(missing[0], unknown, n=1, cutoff=0.6)
        raise InputError(
            f"{model.name}: the training batch has no modality {missing[0]!r} (keys: {sorted(inputs)})."
            + (f" Is {typo[0]!r} a misspelling of {missing[0]!r}?" if typo else "")
            + f" A batch for fit/evaluate carries every modality {model.modality_names}; mark examples that "
              f"lack one with a 'present' entry {{modality: [batch] of 0/1}}")
    batch = _batch_size(model, x)
    presence = _presence(model, present, x, batch, strict)
    columns = [presence[name] if name in presence else
               (ops.ones((batch,), "float32") if name in x else ops.zeros((batch,), "float32"))
               for name in model.modality_names]
    return x, ops.stack(columns, axis=1)

def _batch_size(model, x):
    """The common batch size of the given modalities; refuses empty and mismatched batches."""
    static = {name: value.shape[0] for name, value in x.items()}
    known = {name: size for name, size in static.items() if size is not None}
    if len(set(known.values())) > 1:
        raise InputError(f"{model.name}: modalities have different batch sizes "
                         f"{', '.join(f'{n}: {s}' for n, s in known.items())}; every modality needs one row "
                         "per example")
    if any(size == 0 for size in known.values()):
        raise InputError(f"{model.name}: the batch is empty (0 examples); give at least one example")
    sizes = [ops.shape(value)[0] for value in x.values()]
    batch = sizes[0]
    if len(known) < len(x):  # sizes only known when the step runs
        check(ops.all(ops.equal(ops.stack(sizes), batch)),
                    f"{model.name}: modalities {list(x)} have different batch sizes; every modality needs "
                    "one row per example")
    if not known:
        check(batch > 0, f"{model.name}: the batch is empty (0 examples); give at least one example")
    return batch

def _presence(model, present, x, batch, strict):
    """``{modality: [B] float32 0/1}`` from a ``present`` dict, checked."""
    if present is None:
        return {}
    if not isinstance(present, dict):
        raise InputError(f"{model.name}: 'present' must be a dict {{modality: [batch] of 0/1}}, got "
                         f"{type(present).__name__}")
    unknown = [k for k in present if k not in model.modality_specs]
    if unknown:
        raise InputError(f"{model.name}: 'present' names unknown modality {unknown[0]!r}; modalities are "
                         f"{model.modality_names}." + did_you_mean(unknown[0], model.modality_names))
    out = {}
    for name, value in present.items():
        if name not in x:
            continue  # a modality that is not given is absent whatever its mask says
        value = ops.reshape(ops.cast(ops.convert_to_tensor(value), "float32"), (-1,))
        if value.shape[0] is not None and x[name].shape[0] is not None and value.shape[0] != x[name].shape[0]:
            raise InputError(f"{model.name}: 'present' for {name!r} has {value.shape[0]} entries for a batch of "
                             f"{x[name].shape[0]}; give one 0/1 entry per example")
        check(ops.all(ops.logical_or(ops.equal(value, 0.0), ops.equal(value, 1.0))),
                    f"{model.name}: 'present' for {name!r} must hold 0 or 1 per example (NaN, fractions and "
                    "other numbers are not presence values)")
        out[name] = value
    return out

def _validated(model, name, value):
    spec = model.modality_specs[name]
    try:
        value = ops.convert_to_tensor(value)
    except (ValueError, TypeError) as err:
        raise InputError(f"{model.name}: modality {name!r} is not a numeric array ({err})") from None
    dtype = keras.backend.standardize_dtype(value.dtype)
    shape = tuple(value.shape)
    expected = event_shape(spec)
    if spec["kind"] == "categorical":
        classes = spec["classes"]
        if ("int" in dtype or "float" in dtype) and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            if "float" in dtype:  # ids stored as floats (Keras' symbolic build feeds float dummies)
                check(ops.all(ops.isfinite(value)), f"{model.name}: modality {name!r} contains NaN or Inf")
                check(ops.all(ops.equal(value, ops.round(value))),
                            f"{model.name}: modality {name!r}: class ids must be whole numbers (got a fraction "
                            f"such as 3.7); give integer ids in [0, {classes}) or one-hot rows")
                value = ops.cast(ops.round(value), "int32")
            ids = ops.reshape(value, (-1,))
            check(ops.all(ops.logical_and(ids >= 0, ids < classes)),
                        f"{model.name}: modality {name!r}: class ids must lie in [0, {classes})")
            return ops.one_hot(ids, classes)
        if "float" in dtype and len(shape) == 2 and shape[1] == classes:
            value = ops.cast(value, "float32")
            _check_probability_rows(model, name, value, f"one-hot rows over {classes} classes")
            return value
        raise InputError(f"{model.name}: modality {name!r} (categorical, {classes} classes) expects integer class "
                         f"ids of shape [batch] or one-hot floats [batch, {classes}]; got {dtype} {list(shape)}")
    if "float" not in dtype:
        raise InputError(f"{model.name}: modality {name!r} ({spec['kind']}) expects floating-point values; got "
                         f"{dtype}" + (" (scale uint8 images to [0, 1] floats)" if dtype == "uint8" else ""))
    if len(shape) != len(expected) + 1 or tuple(shape[1:]) != expected:
        raise InputError(f"{model.name}: modality {name!r} ({spec['kind']}) expects shape [batch, "
                         f"{', '.join(map(str, expected))}]; got {list(shape)}")
    value = ops.cast(value, "float32")
    check(ops.all(ops.isfinite(value)), f"{model.name}: modality {name!r} contains NaN or Inf values")
    if spec.get("likelihood") == "bernoulli":
        check(ops.all(ops.logical_and(value >= 0.0, value <= 1.0)),
                    f"{model.name}: modality {name!r} has a Bernoulli likelihood, so its values must lie in "
                    "[0, 1] (scale 8-bit images by 1/255)")
    if spec["kind"] == "tabular":
        start = spec["numeric"]
        for k, size in enumerate(spec["categorical"]):
            _check_probability_rows(model, name, value[:, start:start + size],
                                         f"one-hot group {k} (columns {start}..{start + size - 1})")
            start += size
    return value

def _check_probability_rows(model, name, value, what):
    """Checks that every row is finite, non-negative and sums to 1 (one-hot or soft labels)."""
    check(ops.all(ops.isfinite(value)), f"{model.name}: modality {name!r} contains NaN or Inf")
    check(ops.logical_and(ops.all(value >= 0.0), ops.all(ops.abs(ops.sum(value, axis=-1) - 1.0) <= 1e-3)),
                f"{model.name}: modality {name!r}: {what} must be non-negative and sum to 1 in every row")

def check(condition, message):
    # Eagerly: a Python InputError. Inside a compiled train/test step: a graph assertion whose
    # error carries the same message (TensorFlow-only, like the rest of the training step).
    if tf.executing_eagerly():
        if not bool(ops.convert_to_numpy(condition)):
            raise InputError(message)
    else:
        tf.debugging.Assert(condition, [tagged_input_error(message)])
