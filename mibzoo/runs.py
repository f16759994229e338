"""Training runs as directories: everything needed to resume, inspect, evaluate and export a run.

Layout of ``RUN_DIR``::

    run.json            entry, dataset, epochs, batch size, seed, overrides, versions, times
    model_config.json   model.get_config() (the zoo entry with its overrides applied)
    checkpoints/        epoch_0001.keras, ... (the last few; written atomically each epoch)
    model.keras         the final model (after the last epoch)
    history.csv         every loss term per epoch (keras.callbacks.CSVLogger)
    metrics.json        filled in by `evaluate_run` (``mibzoo evaluate RUN_DIR``)
    plots/              sample grids (PNG) written by `evaluate_run`
    logs/               TensorBoard: train/ (every loss term per epoch), images/ (cross-modal
                        samples and prior samples per epoch)
    data.npz            only for runs on in-memory arrays (so the run can be evaluated later)

`train_run` on a directory that already holds a run resumes it from its last checkpoint
(the optimizer state is part of the ``.keras`` file). ``mibzoo export RUN_DIR`` (the serving
side) reads ``model.keras`` and ``run.json``.

Example:

```python
from mibzoo import runs
runs.train_run("wyner_vae", "mnist_label", epochs=5, out="runs/wyner")
runs.evaluate_run("runs/wyner")    # {'cross_coherence/image->label': 0.95, ...}
```
"""
import datetime
import json
import os
import pathlib
import platform
import re
import time

import keras
import numpy as np

from mibzoo.files import atomic_path

CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d{4,})\.keras$")


def versions():
    """Versions of everything a number depends on."""
    import tensorflow as tf

    import mibzoo
    from mibzoo.tfp import tfp
    return {"mibzoo": mibzoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "tensorflow_probability": tfp.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path, data):
    """Writes JSON atomically (temporary file, then rename): readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_model_atomic(model, path):
    """Saves a ``.keras`` file under a temporary name and renames it into place."""
    with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the extension
        model.save(tmp)


def load_keras(path):
    """Loads a ``.keras`` file of an `MIBModel` (importing `mibzoo.model` registers the class first,
    which a fresh process would otherwise lack)."""
    import mibzoo.model  # noqa: F401  (registers mibzoo>MIBModel for deserialization)

    return keras.saving.load_model(path)


def checkpoints(run_dir):
    """``[(epoch, path)]`` of the run's checkpoints, oldest first."""
    folder = pathlib.Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = CHECKPOINT_PATTERN.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves ``checkpoints/epoch_NNNN.keras`` after every epoch, atomically, keeping the last ``keep``.

    Keras' ``ModelCheckpoint`` writes in place: a run killed mid-write would leave a truncated
    file as its newest checkpoint. Here a checkpoint exists whole or not at all.
    """

    def __init__(self, folder, keep=2):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.model, self.folder / f"epoch_{epoch + 1:04d}.keras")
        for _, old in checkpoints(self.folder.parent)[:-self.keep]:
            old.unlink(missing_ok=True)


class CrossModalImages(keras.callbacks.Callback):
    """Writes TensorBoard image summaries each epoch: for every ordered pair of modalities the
    conditioning inputs beside samples generated from them, and joint samples from the prior.

    Args:
        log_dir: summary directory (``RUN_DIR/logs/images``).
        examples: ``{modality: [n, ...]}`` a few fixed test examples.
        num_samples: generated samples per input.
        seed: sampling seed (fixed, so epochs are comparable).
    """

    def __init__(self, log_dir, examples, num_samples=3, seed=0):
        super().__init__()
        self.log_dir = str(log_dir)
        self.examples = examples
        self.num_samples = num_samples
        self.seed = seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from mibzoo import plots

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        specs = self.model.modality_specs
        with self._writer.as_default(step=epoch):
            for source in specs:
                for target in specs:
                    if source == target or source not in self.examples:
                        continue
                    generated = self.model.generate({source: self.examples[source]}, target,
                                                    num_samples=self.num_samples, seed=self.seed)
                    fig = plots.sample_grid(self.examples[source], keras.ops.convert_to_numpy(generated),
                                            specs[source], specs[target], title=f"{source} -> {target}")
                    tf.summary.image(f"cross/{source}->{target}", plots.figure_to_array(fig)[None], step=epoch)
            prior = {k: keras.ops.convert_to_numpy(v) for k, v in
                     self.model.sample(len(next(iter(self.examples.values()))), seed=self.seed).items()}
            tf.summary.image("prior", plots.figure_to_array(plots.prior_grid(prior, specs))[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _dataset_record(data, run_dir):
    if data.kind == "named":
        return data.name
    if data.kind == "npz":
        return os.path.abspath(data.name)
    # In-memory arrays: store them with the run so that `evaluate_run` can find them again.
    from mibzoo.experiment_data import save_npz
    save_npz(pathlib.Path(run_dir) / "data.npz", data.arrays("train"), data.arrays("test"), data.modalities,
             data.spec)
    return "data.npz"


def _resolve_recorded_dataset(run_dir, record, data_dir=None):
    from mibzoo.experiment_data import resolve
    dataset = record["dataset"]
    if dataset == "data.npz":
        dataset = str(pathlib.Path(run_dir) / "data.npz")
    return resolve(dataset, data_dir=data_dir)


def train_run(entry, dataset, epochs, out, batch_size=128, seed=0, overrides=None, limit=None,
              modality_options=None, learning_rate=1e-3, modalities=None, data_dir=None, evaluate=False,
              image_examples=8, keep_checkpoints=2, verbose=0, **evaluate_kwargs):
    """Trains a zoo entry into a run directory (or resumes the run already there).

    Args:
        entry: zoo entry name (`mibzoo.list_models()`); on resume it must match the run's.
        dataset: a dataset name, ``{"train", "test"}`` arrays (with ``modalities``) or an ``.npz``
            path (`mibzoo.experiment_data`); on resume it must match the run's.
        epochs: total epochs (resuming continues up to this number).
        out: the run directory.
        batch_size: training batch size.
        seed: seeds the weights, the training noise and the data order.
        overrides: `mibzoo.load` overrides (``{"shared": [...], "beta": 4}``).
        limit: train on the first ``limit`` training examples only.
        modality_options: merged into every modality spec (``{"hidden": 32, "filters": [8, 16]}``).
        learning_rate: Adam learning rate.
        modalities: modality specs for in-memory arrays.
        data_dir: data directory of named datasets.
        evaluate: run `evaluate_run` at the end.
        image_examples: test examples shown in the TensorBoard image summaries (0: none).
        keep_checkpoints: how many epoch checkpoints to keep.
        verbose: Keras progress output.
        **evaluate_kwargs: passed to `evaluate_run` when ``evaluate``.

    Returns:
        The run record (the content of ``run.json``).

    Raises:
        ValueError: the directory holds a different run (entry or dataset differ).
    """
    import mibzoo
    from mibzoo.experiment_data import model_overrides, resolve

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs: got {epochs!r}, expected a positive integer")
    try:
        import tensorboard  # noqa: F401  (tf.summary writes nothing without it)
    except ImportError:
        raise RuntimeError("training runs write TensorBoard logs, which need the 'tensorboard' package: "
                           "pip install tensorboard") from None
    run_dir = pathlib.Path(out)
    run_json = run_dir / "run.json"
    if run_json.is_file():
        record = read_json(run_json)
        if entry is not None and record["entry"] != entry:
            raise ValueError(f"{run_dir}: holds a run of entry {record['entry']!r}, not {entry!r}; use another "
                             f"--out directory to train {entry!r}")
        data = _resolve_recorded_dataset(run_dir, record, data_dir)
        if isinstance(dataset, str) and not dataset.endswith(".npz") and dataset != record["dataset"]:
            raise ValueError(f"{run_dir}: holds a run on dataset {record['dataset']!r}, not {dataset!r}")
        batch_size, seed, limit = record["batch_size"], record["seed"], record.get("limit")
        learning_rate = record.get("learning_rate", learning_rate)
        record["epochs"] = epochs
    else:
        data = resolve(dataset, modalities=modalities, data_dir=data_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {"entry": entry, "dataset": _dataset_record(data, run_dir), "epochs": epochs,
                  "batch_size": batch_size, "seed": seed, "overrides": overrides or {},
                  "modality_options": modality_options or {}, "limit": limit, "learning_rate": learning_rate,
                  "optimizer": "adam", "versions": versions(), "started": _now(), "finished": None,
                  "epochs_completed": 0, "train_seconds": 0.0}

    found = checkpoints(run_dir)
    initial_epoch = found[-1][0] if found else 0
    if initial_epoch >= epochs and (run_dir / "model.keras").is_file():
        return record  # nothing left to train
    keras.utils.set_random_seed(seed)
    if found:
        model = load_keras(found[-1][1])
    else:
        model = mibzoo.load(record["entry"], **model_overrides(data, record["overrides"],
                                                               record["modality_options"], seed))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        write_json(run_dir / "model_config.json", model.get_config())
    write_json(run_json, record)

    callbacks = [EpochCheckpoint(run_dir / "checkpoints", keep_checkpoints),
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=bool(found)),
                 keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False, update_freq="epoch",
                                             profile_batch=0)]
    if image_examples:
        test = data.arrays("test", limit=image_examples)
        callbacks.append(CrossModalImages(run_dir / "logs" / "images",
                                          {m: test[m] for m in model.modality_names if m in test}, seed=seed))
    started = time.perf_counter()
    if initial_epoch < epochs:
        # The dataset is already shuffled with the run's seed; shuffle=False keeps Keras from warning.
        model.fit(data.train_dataset(batch_size, seed, limit), epochs=epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    save_model_atomic(model, run_dir / "model.keras")
    record.update(epochs_completed=epochs, finished=_now(),
                  train_seconds=round(record.get("train_seconds", 0.0) + time.perf_counter() - started, 2))
    write_json(run_json, record)
    if evaluate:
        evaluate_run(run_dir, data_dir=data_dir, **evaluate_kwargs)
    return record


def load_run_model(run_dir):
    """The final model of a run (``model.keras``); a clear error if the run has not finished."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no run.json); create one with mibzoo train")
    path = run_dir / "model.keras"
    if not path.is_file():
        found = checkpoints(run_dir)
        last = f"its last checkpoint is epoch {found[-1][0]}" if found else "it has no checkpoint"
        raise FileNotFoundError(f"{run_dir}: the run has not finished (no model.keras; {last}); run "
                                f"mibzoo train again with the same --out to resume it")
    return load_keras(path)


def write_sample_plots(model, examples, folder, seed=0, num_samples=4):
    """PNG sample grids of a model: ``samples_<A>-to-<B>.png`` for every ordered pair of modalities
    (inputs beside generated samples) and ``prior.png`` (joint samples from the prior).

    Args:
        model: an `MIBModel`.
        examples: ``{modality: [n, ...]}`` conditioning inputs.
        folder: output folder.
        seed: sampling seed.
        num_samples: samples per input.

    Returns:
        The written paths.
    """
    from mibzoo import plots

    folder = pathlib.Path(folder)
    specs = model.modality_specs
    paths = []
    for source in specs:
        for target in specs:
            if source != target and source in examples:
                generated = keras.ops.convert_to_numpy(
                    model.generate({source: examples[source]}, target, num_samples=num_samples, seed=seed))
                path = folder / f"samples_{source}-to-{target}.png"
                plots.sample_grid(examples[source], generated, specs[source], specs[target],
                                  title=f"{model.name}: {source} -> {target}", path=path)
                paths.append(path)
    prior = {k: keras.ops.convert_to_numpy(v) for k, v in
             model.sample(len(next(iter(examples.values()))), seed=seed).items()}
    plots.prior_grid(prior, specs, title=f"{model.name}: samples from the prior", path=folder / "prior.png")
    return paths + [folder / "prior.png"]


def evaluate_run(run_dir, metrics=None, iwae_k=50, limit=None, likelihood_limit=1000, probe_train_limit=10000,
                 prior_samples=1000, classifiers=None, classifier_dir=None, data_dir=None, seed=0, plot_examples=8):
    """Computes the metrics of a finished run and writes ``RUN_DIR/metrics.json`` (and sample grids
    of the first ``plot_examples`` test examples in ``RUN_DIR/plots/``).

    Args:
        run_dir: a run directory written by `train_run`.
        metrics: metric groups (default: all of `mibzoo.metrics.METRICS`).
        iwae_k: importance samples of the log-likelihood.
        limit: test examples for coherence, probe and reconstruction (None: all).
        likelihood_limit: test examples for the log-likelihood.
        probe_train_limit: training examples the linear probe is fit on.
        prior_samples: samples for joint coherence.
        classifiers: ``{modality: classifier}`` overriding the dataset's.
        classifier_dir, data_dir: caches of the classifiers and the data.
        seed: seed of every sampled quantity.
        plot_examples: test examples in the sample grids (0: no plots).

    Returns:
        ``{metric: value}``.
    """
    from mibzoo import metrics as metric_functions

    run_dir = pathlib.Path(run_dir)
    model = load_run_model(run_dir)
    record = read_json(run_dir / "run.json")
    data = _resolve_recorded_dataset(run_dir, record, data_dir)
    started = time.perf_counter()
    test = data.arrays("test", limit=limit)
    train = data.arrays("train", limit=probe_train_limit)
    values = metric_functions.evaluate(model, test, train, spec=data.spec, classifiers=classifiers,
                                       metrics=metrics, iwae_k=iwae_k, likelihood_limit=likelihood_limit,
                                       prior_samples=prior_samples, seed=seed, classifier_dir=classifier_dir,
                                       data_dir=data_dir)
    write_json(run_dir / "metrics.json", {
        "metrics": values, "evaluated": _now(), "seconds": round(time.perf_counter() - started, 2),
        "settings": {"iwae_k": iwae_k, "test_examples": len(next(iter(test.values()))),
                     "likelihood_examples": likelihood_limit, "probe_train_examples": probe_train_limit,
                     "prior_samples": prior_samples, "seed": seed},
        "classifiers": _classifier_records(data.spec, classifier_dir), "versions": versions()})
    if plot_examples:
        write_sample_plots(model, {m: v[:plot_examples] for m, v in test.items() if m in model.modality_specs},
                           run_dir / "plots", seed)
    return values


def _classifier_records(spec, classifier_dir=None):
    from mibzoo import classifiers
    out = {}
    for label in spec.labels.values():
        ref = label.classifier
        if isinstance(ref, str) and ref in classifiers.CLASSIFIERS:
            info = classifiers.record(ref, classifier_dir) or {}
            out[ref] = {"sha256": info.get("sha256"), "test_accuracy": info.get("test_accuracy")}
        elif isinstance(ref, str):
            out[ref] = {"sha256": classifiers.sha256_file(ref) if os.path.isfile(ref) else None}
    return out
