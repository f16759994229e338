"""Helpers shared by the metric modules: batching arrays, reading classes, checking inputs."""
import numpy as np


def to_numpy(value):
    """A numpy array from a numpy array, a tensor or anything `np.asarray` takes."""
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def modality_specs(model):
    """``{name: spec}`` of a model (an `MIBModel` or any object with ``modality_specs``)."""
    specs = getattr(model, "modality_specs", None)
    if not isinstance(specs, dict):
        raise TypeError(f"model: got {type(model).__name__} without a 'modality_specs' dict; metrics take an "
                        f"MIBModel (mibzoo.load) or an object with modality_specs and generate/sample/encode")
    return specs


def check_keys(arrays, keys, what):
    """Raises a ValueError naming the missing keys and the keys that are there."""
    if not isinstance(arrays, dict):
        raise TypeError(f"{what}: arrays must be a dict {{key: np.ndarray}}, got {type(arrays).__name__}")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{what}: the arrays have no key {missing[0]!r}; available keys: {sorted(arrays)}")


def check_modalities(model, names, what):
    specs = modality_specs(model)
    for name in names:
        if name not in specs:
            raise ValueError(f"{what}: {name!r} is not a modality of the model; its modalities are {list(specs)}")


def num_examples(arrays, keys):
    sizes = {len(arrays[k]) for k in keys}
    if len(sizes) != 1:
        raise ValueError(f"arrays {list(keys)} have different numbers of rows: {sorted(sizes)}")
    return sizes.pop()


def batches(arrays, keys, batch_size, limit=None):
    """Yields ``(start, {key: rows})`` over the first ``limit`` rows in order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size: got {batch_size!r}, expected a positive integer")
    n = num_examples(arrays, keys)
    if limit is not None:
        n = min(n, int(limit))
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield start, {k: np.asarray(arrays[k][start:stop]) for k in keys}


def read_classes(value, spec, classifier):
    """Class ids ``[B]`` of a batch of one modality: argmax for categoricals, else the classifier."""
    from mibzoo.classifiers import predict_classes

    value = to_numpy(value)
    if classifier is None:
        if spec["kind"] != "categorical":
            raise ValueError(f"modality of kind {spec['kind']!r} needs a classifier to be read as a class")
        if value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1):
            return value.reshape(-1).astype("int64")
        return np.argmax(value, axis=-1).astype("int64")
    return predict_classes(classifier, value)


def resolve_readers(specs, spec, classifiers, modalities, classifier_dir=None, data_dir=None):
    """``{modality: classifier or None}`` for the labelled modalities that can be read as classes.

    ``specs`` is ``{modality: spec}`` (a model's or a dataset's ``modality_specs``).

    ``classifiers`` (``{modality: classifier}``) wins over the spec's references; references
    are resolved with `mibzoo.classifiers.get` (cached, trained on first use).
    """
    from mibzoo import classifiers as registry

    given = dict(classifiers or {})
    readers = {}
    for name in modalities:
        if name not in spec.labels:
            continue  # no label to compare with
        ref = given.get(name, spec.labels[name].classifier)
        if ref is None and specs[name]["kind"] != "categorical":
            continue  # an image without a classifier cannot be read
        readers[name] = None if ref is None else registry.get(ref, classifier_dir, data_dir)
    return readers
