"""The data of an experiment (a training run or a comparison), from a dataset name, arrays or a file.

`compare` and training runs take the same kinds of ``dataset``:

- a name from `mibzoo.data.list_datasets()` (``"mnist_label"``): streamed by `mibzoo.data`;
- a dict ``{"train": arrays, "test": arrays}`` of in-memory numpy arrays, with ``modalities=``
  (``{name: spec}``) naming which keys are modalities (the other keys are labels);
- a path to an ``.npz`` file written by `save_npz` (arrays, modalities and evaluation spec in one
  file: how a custom data set is handed to the command line).

Example:

```python
data = resolve("mnist_plus1")
data.modalities                    # {'image_a': {...}, 'image_b': {...}}
ds = data.train_dataset(batch_size=128, seed=0, limit=10000)
test = data.arrays("test", limit=2000)
```
"""
import dataclasses
import json
import math
import os

import numpy as np

from mibzoo.metrics.spec import EvaluationSpec, spec_for
from mibzoo.modalities import normalize_modalities

_META_KEY = "__meta__"


def save_npz(path, train, test, modalities, evaluation=None):
    """Writes a custom data set as one ``.npz`` file that `resolve` (and the CLI) reads.

    Args:
        path: output file (``.npz``).
        train: ``{key: np.ndarray}`` of the training split.
        test: ``{key: np.ndarray}`` of the test split (same keys).
        modalities: ``{name: spec}`` of the modality keys.
        evaluation: an `EvaluationSpec` (or its JSON form) for the metrics; None: categorical
            modalities read themselves.
    """
    specs = normalize_modalities(modalities, f"save_npz({path})")
    evaluation = spec_for(evaluation, specs)
    meta = {"modalities": specs, "evaluation": evaluation.to_json(), "train_keys": sorted(train),
            "test_keys": sorted(test)}
    arrays = {f"train__{k}": np.asarray(v) for k, v in train.items()}
    arrays.update({f"test__{k}": np.asarray(v) for k, v in test.items()})
    arrays[_META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@dataclasses.dataclass
class ExperimentData:
    """One experiment's data: modalities, evaluation spec and both splits.

    Attributes:
        name: the dataset name, or ``"arrays"`` / the ``.npz`` path for custom data.
        modalities: ``{name: spec}`` of the modalities (what models are built with).
        spec: the `EvaluationSpec` of the metrics.
        kind: ``"named"``, ``"arrays"`` or ``"npz"``.
        data_dir: data directory of named datasets.
    """

    name: str
    modalities: dict
    spec: EvaluationSpec
    kind: str
    data_dir: str = None
    _splits: dict = dataclasses.field(default_factory=dict, repr=False)

    def arrays(self, split, limit=None):
        """``{key: np.ndarray}`` of a split (its first ``limit`` examples)."""
        if split not in ("train", "test"):
            raise ValueError(f"split: got {split!r}, expected 'train' or 'test'")
        if self.kind == "named":
            import mibzoo.data
            return mibzoo.data.load_arrays(self.name, split, data_dir=self.data_dir, limit=limit)
        arrays = self._splits[split]
        return {k: v[:limit] for k, v in arrays.items()} if limit is not None else dict(arrays)

    def num_examples(self, split, limit=None):
        """Number of examples of a split after ``limit`` (None if the dataset does not declare it)."""
        if self.kind == "named":
            import mibzoo.data
            n = mibzoo.data.info(self.name).splits.get(split)
        else:
            n = len(next(iter(self._splits[split].values())))
        if n is None:
            return limit
        return min(n, limit) if limit is not None else n

    def train_dataset(self, batch_size, seed=0, limit=None, hidden_labels=None):
        """A shuffled ``tf.data.Dataset`` of dict batches of the training split; ``hidden_labels``
        (``{modality: fraction}``) hides that share of each modality's values (`hide_labels`, chosen
        by ``seed``) and adds the ``present`` masks (the split is then read into memory)."""
        if self.kind == "named" and not hidden_labels:
            import mibzoo.data
            return mibzoo.data.load(self.name, "train", batch_size=batch_size, shuffle=True, seed=seed,
                                    data_dir=self.data_dir, limit=limit)
        from mibzoo.data.pipeline import shuffled_batches

        arrays = self.arrays("train", limit)
        if hidden_labels:
            arrays, present = hide_all_labels(arrays, hidden_labels, seed)
            arrays = {k: v for k, v in arrays.items() if k in self.modalities}
            arrays["present"] = present
        return shuffled_batches(arrays, batch_size, seed)

    def describe(self):
        """A JSON-serializable description (what run.json and reports record)."""
        return {"name": self.name, "kind": self.kind}


def _from_arrays(name, kind, train, test, modalities, evaluation):
    if not isinstance(train, dict) or not isinstance(test, dict):
        raise ValueError(f"dataset {name!r}: 'train' and 'test' must be dicts {{key: np.ndarray}}")
    if not modalities:
        raise ValueError(f"dataset {name!r}: in-memory arrays need modalities={{name: spec}} naming which keys "
                         f"are modalities; keys: {sorted(train)}")
    specs = normalize_modalities(modalities, f"dataset {name!r}")
    for split, arrays in (("train", train), ("test", test)):
        missing = [m for m in specs if m not in arrays]
        if missing:
            raise ValueError(f"dataset {name!r}: the {split} arrays have no modality {missing[0]!r}; "
                             f"keys: {sorted(arrays)}")
    data = ExperimentData(name, specs, spec_for(evaluation, specs), kind)
    data._splits = {"train": {k: np.asarray(v) for k, v in train.items()},
                    "test": {k: np.asarray(v) for k, v in test.items()}}
    return data


def load_npz(path):
    """Reads a file written by `save_npz` as an `ExperimentData`."""
    with np.load(path, allow_pickle=False) as archive:
        if _META_KEY not in archive:
            raise ValueError(f"{path}: not a mibzoo data file (no {_META_KEY!r} entry); write it with "
                             f"mibzoo.experiment_data.save_npz")
        meta = json.loads(str(archive[_META_KEY]))
        train = {k: archive[f"train__{k}"] for k in meta["train_keys"]}
        test = {k: archive[f"test__{k}"] for k in meta["test_keys"]}
    return _from_arrays(str(path), "npz", train, test, meta["modalities"], meta["evaluation"])


def resolve(dataset, modalities=None, evaluation=None, data_dir=None):
    """An `ExperimentData` from a dataset name, a ``{"train", "test"}`` dict of arrays or an ``.npz`` path.

    Args:
        dataset: see the module docstring.
        modalities: ``{name: spec}`` for in-memory arrays (ignored for names and files).
        evaluation: an `EvaluationSpec` (or its JSON form) overriding the dataset's.
        data_dir: data directory of named datasets.

    Raises:
        ValueError: unknown dataset name (listing the names), malformed arrays or file.
    """
    if isinstance(dataset, ExperimentData):
        return dataset
    if isinstance(dataset, dict):
        if set(dataset) - {"train", "test"} or not {"train", "test"} <= set(dataset):
            raise ValueError(f"dataset: a dict must have exactly the keys 'train' and 'test', got {sorted(dataset)}")
        return _from_arrays("arrays", "arrays", dataset["train"], dataset["test"], modalities, evaluation)
    if isinstance(dataset, (str, os.PathLike)):
        text = str(dataset)
        if text.endswith(".npz"):
            if not os.path.isfile(text):
                raise FileNotFoundError(f"dataset file {text!r} does not exist")
            data = load_npz(text)
            if evaluation is not None:
                data.spec = spec_for(evaluation, data.modalities)
            return data
        import mibzoo.data
        info = mibzoo.data.info(text)  # ValueError listing the datasets for unknown names
        spec = spec_for(evaluation if evaluation is not None else text, info.modalities)
        return ExperimentData(text, dict(info.modalities), spec, "named", data_dir)
    raise ValueError(f"dataset: got {type(dataset).__name__}, expected a dataset name, a {{'train', 'test'}} dict "
                     f"of arrays, or a path to an .npz file written by save_npz")


def model_overrides(data, overrides=None, modality_options=None, seed=None):
    """`mibzoo.load` overrides that build a zoo entry for this data.

    The data's modalities replace the entry's (MNIST-Label by default), ``modality_options``
    (e.g. ``{"hidden": 32, "filters": [8, 16]}``) are merged into every modality spec, and
    ``seed`` sets the training noise.
    """
    overrides = dict(overrides or {})
    if "modalities" not in overrides:
        mods = {}
        for name, spec in data.modalities.items():
            spec = {k: v for k, v in spec.items() if k != "description"}
            for key, value in (modality_options or {}).items():
                if key == "filters" and spec["kind"] != "image":
                    continue  # convolution channels only mean something for images
                spec[key] = value
            mods[name] = spec
        overrides["modalities"] = mods
    if seed is not None and "seed" not in overrides:
        overrides["seed"] = int(seed)
    return overrides


def hide_labels(arrays, modality, fraction, seed):
    """Semi-supervised training data: hides ``modality`` (a label) for a ``fraction`` of the examples.

    Exactly ``round(fraction * N)`` examples, drawn without replacement by a generator seeded with
    ``seed`` (the same examples for the same seed and size), lose the value: it is set to 0 in the
    returned copy, so nothing can read it, and the returned presence mask is 0 there. The model
    then treats those examples as lacking the modality (its expert drops out of q(z | ·) and its
    likelihood term is 0, Eq. 12-13), the missing-modality machinery of every entry.

    Args:
        arrays: ``{key: array}`` with one row per example.
        modality: the key to hide (e.g. ``"label"``).
        fraction: share of examples whose value is hidden, in [0, 1].
        seed: seed of the choice.

    Returns:
        ``(arrays, present)``: a copy of ``arrays`` and ``{modality: float32 [N] 0/1}``.
    """
    from mibzoo.errors import ConfigError, did_you_mean

    if modality not in arrays:
        raise ConfigError("hide_labels", "modality", modality,
                          f"one of the array keys {sorted(arrays)}" + did_you_mean(modality, list(arrays)))
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ConfigError("hide_labels", "fraction", fraction, "a number in [0, 1] (the share of hidden labels)")
    values = np.asarray(arrays[modality])
    n = len(values)
    hidden = np.random.default_rng([int(seed), 12]).permutation(n)[:int(round(fraction * n))]
    present = np.ones(n, "float32")
    present[hidden] = 0.0
    out = dict(arrays)
    out[modality] = values.copy()
    out[modality][hidden] = 0
    return out, {modality: present}


def hide_all_labels(arrays, hidden_labels, seed):
    """`hide_labels` for every ``{modality: fraction}`` of ``hidden_labels``: ``(arrays, present)``
    with the ``present`` masks of those modalities (what training and the latent sampler's fit see)."""
    present = {}
    for modality, fraction in hidden_labels.items():
        arrays, mask = hide_labels(arrays, modality, fraction, seed)
        present.update(mask)
    return arrays, present


def repeated_training_dataset(data, settings):
    """The training split repeated, with the number of batches in one pass over it as
    ``steps_per_epoch``: Keras then keeps one iterator for the whole run instead of creating one per
    epoch, which stalled the first step of every epoch (measured: 0.7 s against 35 ms steady steps
    on 60 steps of MNIST-Label, none with the repeated dataset). Each pass is still reshuffled, and
    epochs stay aligned with passes (the last batch of a pass may be partial). Datasets that do not
    declare their size keep one finite pass per epoch."""
    batch_size, limit = settings["batch_size"], settings["limit"]
    dataset = data.train_dataset(batch_size, settings["seed"], limit, settings["hidden_labels"])
    n = data.num_examples("train", limit)
    if not n:
        return dataset, None
    return dataset.repeat(), math.ceil(n / batch_size)


def aligned_steps_per_execution(steps_per_epoch, wanted):
    """The largest number of steps per call, at most ``wanted``, that divides ``steps_per_epoch``:
    Keras runs whole calls, so with a repeated dataset an epoch of 469 steps at 10 per call would
    take 470 batches and drift off the passes. None (an epoch of unknown length): ``wanted``."""
    if steps_per_epoch is None:
        return wanted
    return max(k for k in range(1, min(wanted, steps_per_epoch) + 1) if steps_per_epoch % k == 0)


def run_training_arrays(data, settings):
    """``(arrays, present)``: the training split as a run with ``settings`` trains on it (its first
    ``limit`` examples, its hidden labels hidden by its seed; ``present`` None when none are)."""
    arrays = data.arrays("train", settings["limit"])
    if not settings["hidden_labels"]:
        return arrays, None
    return hide_all_labels(arrays, settings["hidden_labels"], settings["seed"])


def fit_run_latent_sampler(model, data, settings):
    """Fits the model's latent sampler on the run's training split; its record, or None (``"prior"``)."""
    from mibzoo.latent_samplers import fit_latent_sampler

    if not model.latent_sampler.needs_inference:
        return None
    arrays, present = run_training_arrays(data, settings)
    return fit_latent_sampler(model, arrays, seed=settings["seed"], present=present)
