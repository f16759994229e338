"""The one path every command takes: build a model for a dataset, train a run, load a run's
model and evaluate it (its sample grids are `mibzoo.samples`, its JSON records `mibzoo.run_records`).

``mibzoo train``, ``evaluate``, ``export``, ``compare``, ``quickstart`` and `mibzoo.compare` all go
through these functions, so a run trained by one command is read the same way by every other,
in any process.

Layout of ``RUN_DIR``::

    run.json            settings (entry, dataset, batch size, seed, overrides, ...), versions, times,
                        and the SHA-256 of model.keras
    model_config.json   model.get_config() (the zoo entry with its overrides applied)
    checkpoints/        manifest.json (history + checksums) and the newest epoch_NNNN.keras files
    model.keras         the final model (with its latent sampler fitted, `mibzoo.latent_samplers`)
    history.csv         every loss term per epoch (rewritten from the manifest: one row per epoch)
    metrics.json        written by `evaluate_run` (``mibzoo evaluate RUN_DIR``)
    plots/              sample grids (PNG) written by `evaluate_run`
    logs/               TensorBoard: train/ (loss terms per epoch), images/ (samples per epoch)
    data.npz            only for runs on in-memory arrays (so the run can be evaluated later)

Every setting is checked before anything is written; training again into a run directory resumes
it from its newest intact checkpoint (`mibzoo.checkpoints`), keeping its recorded settings.

Example:

```python
from mibzoo import experiment
experiment.train_run("wyner_vae", "mnist_label", epochs=5, out="runs/wyner")
experiment.evaluate_run("runs/wyner")        # {'cross_coherence/image->label': 0.95, ...}
model = experiment.load_run_model("runs/wyner")
```
"""
import math
import os
import pathlib
import time
import warnings

import numpy as np

from mibzoo.checkpoints import CorruptFileError, RunCheckpoints, save_model_atomic, verify
from mibzoo.experiment_data import aligned_steps_per_execution, fit_run_latent_sampler, repeated_training_dataset
from mibzoo.run_records import now, read_json, versions, write_json
from mibzoo.samples import write_sample_plots

# Settings of a run, with their defaults for a new run; a resumed run keeps its recorded values.
# learning_rate None: the entry's own (its config's ``optimizers``; Adam(1e-3) unless the entry sets one).
# restore_most_invariant None: the run keeps its last epoch (see `restore_most_invariant` for the other).
DEFAULTS = {"batch_size": 128, "seed": 0, "learning_rate": None, "limit": None, "overrides": {},
            "modality_options": {}, "hidden_labels": {}, "restore_most_invariant": None}
# The keys of the ``restore_most_invariant`` setting, with the defaults of the last two.
RESTORE_MOST_INVARIANT = {"from_epoch": None, "target": "label", "environment": "env"}
# The logs and history key of a selecting run's reading (`mibzoo.callbacks.InvarianceReading`).
_INVARIANCE_KEY = "invariance_gain"


def restore_most_invariant(from_epoch, target="label", environment="env"):
    """The ``restore_most_invariant`` setting of `train_run`: from epoch ``from_epoch`` (1-based) on,
    each epoch reads how far p(target | z) is from invariant across the ``environment`` column of the
    training split (`mibzoo.callbacks.InvarianceReading`, into the history as ``invariance_gain``),
    and the run ends with the weights of the epoch with the smallest reading instead of the last."""
    return {"from_epoch": from_epoch, "target": target, "environment": environment}


def check_settings(epochs, settings):
    """Raises `ValueError` naming the first setting that is out of range, and what is allowed."""
    def integer(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}: got {value!r}, expected an integer >= {low}")

    integer("epochs", epochs, 1)
    integer("batch_size", settings["batch_size"], 1)
    integer("seed", settings["seed"], 0)
    if settings["limit"] is not None:
        integer("limit", settings["limit"], 1)
    rate = settings["learning_rate"]
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate)
                             or rate <= 0):
        raise ValueError(f"learning_rate: got {rate!r}, expected a finite number > 0 (e.g. 1e-3) or None (the "
                         f"entry's own)")
    # Settings a caller does not use (compare has no hidden labels) take their defaults.
    for name in ("overrides", "modality_options", "hidden_labels"):
        if not isinstance(settings.get(name, DEFAULTS[name]), dict):
            raise ValueError(f"{name}: got {settings[name]!r}, expected a dict")
    for modality, fraction in settings.get("hidden_labels", {}).items():
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"hidden_labels: {modality}={fraction!r}, expected a fraction in [0, 1]")
    selection = settings.get("restore_most_invariant")
    if selection is not None:
        if not isinstance(selection, dict) or set(selection) != set(RESTORE_MOST_INVARIANT):
            raise ValueError(f"restore_most_invariant: got {selection!r}, expected None or a dict with the keys "
                             f"{sorted(RESTORE_MOST_INVARIANT)} (`mibzoo.experiment.restore_most_invariant`)")
        first = selection["from_epoch"]
        if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or not 1 <= first <= epochs:
            raise ValueError(f"restore_most_invariant: from_epoch {first!r}, expected an epoch from 1 to the run's "
                             f"{epochs} epochs")
        for key in ("target", "environment"):
            if not isinstance(selection[key], str) or not selection[key]:
                raise ValueError(f"restore_most_invariant: {key} {selection[key]!r}, expected a modality name")
        if selection["target"] == selection["environment"]:
            raise ValueError(f"restore_most_invariant: target and environment are both {selection['target']!r}; "
                             "the reading needs the predicted modality and another column of environment indices")


def build_model(entry, data, overrides=None, modality_options=None, seed=0, learning_rate=None):
    """A compiled zoo model for a dataset: the data's modalities, seeded weights and noise, and the
    entry's Adam settings (config ``optimizers``).

    Args:
        entry: zoo entry name (`mibzoo.list_models()`).
        data: a dataset name, arrays or ``.npz`` path (`mibzoo.experiment_data.resolve`).
        overrides: `mibzoo.load` overrides.
        modality_options: merged into every modality spec (``{"hidden": 32}``).
        seed: seeds the weights and the training noise.
        learning_rate: Adam learning rate of the networks (None: the entry's; a number replaces
            only the rate of the entry's ``dist`` optimizer, its β1 stays).
    """
    import keras

    import mibzoo
    from mibzoo.experiment_data import model_overrides, resolve

    data = resolve(data)
    kwargs = model_overrides(data, overrides, modality_options, seed)
    keras.utils.set_random_seed(seed)
    model = mibzoo.load(entry, **kwargs)
    settings = dict(model.model_config["optimizers"]["dist"])
    if learning_rate is not None:
        settings["learning_rate"] = learning_rate
    model.compile(optimizer=keras.optimizers.Adam(**settings))
    return model


def load_model(path, sha256=None):
    """Loads a ``.keras`` file of a zoo model in any process, checking its SHA-256 if given.

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: its bytes do not match ``sha256``, or Keras cannot read it.
    """
    import importlib

    import keras

    importlib.import_module("mibzoo.model")  # registers mibzoo>MIBModel and its layers with Keras

    path = pathlib.Path(path)
    if sha256 is not None:
        verify(path, sha256, "model file")
    elif not path.is_file():
        raise FileNotFoundError(f"model file {path} is missing")
    try:
        return keras.saving.load_model(path)
    except Exception as err:  # a truncated zip, a foreign file: say which file, not Keras' internals
        raise CorruptFileError(f"could not load the model file {path}: {type(err).__name__}: {err}") from err


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


def _recorded_data(run_dir, record, data_dir=None):
    from mibzoo.experiment_data import resolve
    dataset = record["dataset"]
    if dataset == "data.npz":
        dataset = str(pathlib.Path(run_dir) / "data.npz")
    return resolve(dataset, data_dir=data_dir)


def _settings(record, given, run_dir):
    """The run's settings: the record's (resume) or the given ones over the defaults (new run)."""
    if record is None:
        return {k: (v if v is not None else DEFAULTS[k]) for k, v in given.items()}
    recorded = {k: record.get(k, DEFAULTS[k]) for k in DEFAULTS}
    recorded = {k: (DEFAULTS[k] if v is None and k in ("overrides", "modality_options", "hidden_labels") else v)
                for k, v in recorded.items()}
    conflicts = [f"{k} {recorded[k]!r} (given {v!r})" for k, v in given.items() if v is not None and v != recorded[k]]
    if conflicts:
        raise ValueError(f"{run_dir}: this run was started with " + ", ".join(conflicts) + "; resuming keeps the "
                         "recorded settings, so pass the same values or none, or train into another --out directory")
    return recorded


def train_run(entry, dataset, epochs, out, batch_size=None, seed=None, overrides=None, limit=None,
              modality_options=None, learning_rate=None, modalities=None, data_dir=None, evaluate=False,
              image_examples=8, keep_checkpoints=2, verbose=0, hidden_labels=None, restore_most_invariant=None,
              **evaluate_kwargs):
    """Trains a zoo entry into a run directory, or resumes the run already there.

    Args:
        entry: zoo entry name; on resume it must match the run's.
        dataset: a dataset name, ``{"train", "test"}`` arrays (with ``modalities``) or an ``.npz`` path
            (`mibzoo.experiment_data`); on resume a name must match the run's.
        epochs: total epochs (resuming continues up to this number).
        out: the run directory.
        batch_size, seed, overrides, limit, modality_options, learning_rate: the run's settings
            (None: the recorded value when resuming, else `DEFAULTS`; a new run's batch size is the
            entry's config ``batch_size`` when it sets one). ``limit`` trains on the first
            ``limit`` training examples; ``overrides`` are `mibzoo.load` overrides.
        modalities: modality specs for in-memory arrays.
        hidden_labels: ``{modality: fraction}``: semi-supervised training, that share of the training
            examples lacks the modality (`mibzoo.experiment_data.hide_labels`, chosen by the seed).
        restore_most_invariant: `restore_most_invariant(from_epoch, target, environment)`: the run
            ends with the weights of its most invariant epoch from ``from_epoch`` on, read on the
            training examples whose target is present, instead of the last (``run.json`` records
            ``selected_epoch``). Its checkpoint is kept until a better one comes, so a resumed run
            selects among all its epochs.
        data_dir: data directory of named datasets.
        evaluate: run `evaluate_run` at the end (with ``**evaluate_kwargs``).
        image_examples: test examples in the TensorBoard image summaries (0: none).
        keep_checkpoints: how many epoch checkpoints to keep.
        verbose: Keras progress output.

    Returns:
        The run record (the content of ``run.json``).

    Raises:
        ValueError: a setting is out of range, conflicts with the recorded run, or the directory
            holds a run of another entry or dataset; nothing is written then.
    """
    import keras

    from mibzoo import registry
    from mibzoo.callbacks import CrossModalImages, EpochCheckpoint, StopOnNonFiniteLoss
    from mibzoo.experiment_data import model_overrides, resolve

    run_dir = pathlib.Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir}: exists and is not a directory")
    record = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else None
    if record is not None:
        if entry is not None and record["entry"] != entry:
            raise ValueError(f"{run_dir}: holds a run of entry {record['entry']!r}, not {entry!r}; use another "
                             f"--out directory to train {entry!r}")
        if isinstance(dataset, str) and not dataset.endswith(".npz") and dataset != record["dataset"]:
            raise ValueError(f"{run_dir}: holds a run on dataset {record['dataset']!r}, not {dataset!r}")
        data = _recorded_data(run_dir, record, data_dir)
    else:
        data = resolve(dataset, modalities=modalities, data_dir=data_dir)
    given = {"batch_size": batch_size, "seed": seed, "learning_rate": learning_rate, "limit": limit,
             "overrides": overrides, "modality_options": modality_options, "hidden_labels": hidden_labels,
             "restore_most_invariant": restore_most_invariant}
    settings = _settings(record, given, run_dir)
    check_settings(epochs, settings)
    unknown = sorted(set(settings["hidden_labels"]) - set(data.modalities))
    if unknown:
        raise ValueError(f"hidden_labels: {unknown[0]!r} is not a modality of {data.name!r} ({sorted(data.modalities)})")
    selection = settings["restore_most_invariant"]
    for key in ("target", "environment") if selection else ():
        if selection[key] not in data.modalities:
            raise ValueError(f"restore_most_invariant: {key} {selection[key]!r} is not a modality of {data.name!r} "
                             f"({sorted(data.modalities)})")
    if data.num_examples("train", settings["limit"]) == 0:
        raise ValueError(f"dataset {data.name!r}: its training split has no examples")
    entry = record["entry"] if record is not None else entry
    kwargs = model_overrides(data, settings["overrides"], settings["modality_options"], settings["seed"])
    config = registry.entry_config(entry, **kwargs)  # ConfigError for a bad override, before anything is written
    if record is None and batch_size is None:  # a new run without a batch size: the entry's, if it sets one
        settings["batch_size"] = config.get("batch_size", DEFAULTS["batch_size"])

    # Everything is valid: from here on the run directory is written.
    run_dir.mkdir(parents=True, exist_ok=True)
    if record is None:
        record = {"entry": entry, "dataset": _dataset_record(data, run_dir), **settings, "optimizer": "adam",
                  "versions": versions(), "started": now(), "finished": None, "epochs_completed": 0,
                  "train_seconds": 0.0, "model_sha256": None}
    record["epochs"] = epochs
    checkpoints = RunCheckpoints(run_dir, keep_checkpoints, select=_INVARIANCE_KEY if selection else None)
    done, checkpoint = checkpoints.resume_point()
    final = run_dir / "model.keras"
    if done >= epochs and _intact(final, record):
        return record
    if checkpoint is not None:
        model = load_model(checkpoint)
    else:
        model = build_model(entry, data, settings["overrides"], settings["modality_options"], settings["seed"],
                            settings["learning_rate"])
        write_json(run_dir / "model_config.json", model.get_config())
        record["optimizers"] = optimizer_settings(model)
    record["epochs_completed"] = done
    write_json(run_dir / "run.json", record)

    started = time.perf_counter()
    if done < epochs:
        keras.utils.set_random_seed(settings["seed"] + done)  # a resumed run draws fresh noise, reproducibly
        callbacks = [StopOnNonFiniteLoss(), EpochCheckpoint(checkpoints),
                     keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False,
                                                 update_freq="epoch", profile_batch=0)]
        if image_examples:
            test = data.arrays("test", limit=image_examples)
            callbacks.append(CrossModalImages(run_dir / "logs" / "images",
                                              {m: test[m] for m in model.modality_names if m in test},
                                              seed=settings["seed"]))
        if selection:  # first, so that the checkpoint's history row holds the epoch's reading
            callbacks.insert(0, _invariance_reading(model, data, settings))
        dataset, steps = repeated_training_dataset(data, settings)
        # The config's steps_per_execution (compile's default), cut to a divisor of the steps of a pass.
        model.steps_per_execution = aligned_steps_per_execution(steps, model.steps_per_execution)
        record["steps_per_execution"] = int(model.steps_per_execution)
        # The dataset is already shuffled with the run's seed; shuffle=False keeps Keras from warning.
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps, initial_epoch=done, callbacks=callbacks,
                  verbose=verbose, shuffle=False)
    if selection:
        chosen = checkpoints.selected()
        if chosen is None:
            raise RuntimeError(f"{run_dir}: no epoch from {selection['from_epoch']} on has a finite "
                               f"{_INVARIANCE_KEY} in its history; the run keeps its checkpoints")
        model = load_model(chosen["path"], chosen["sha256"])
        record["selected_epoch"] = chosen["epoch"]
    # Ex-post density estimation (`mibzoo.latent_samplers`): a configured sampler is fitted to the
    # aggregate posterior of the training examples the run trained on (with the same hidden labels),
    # and saved with the model.
    fitted = fit_run_latent_sampler(model, data, settings)
    if fitted is not None:
        record["latent_sampler"] = fitted
    record.update(epochs_completed=max(done, epochs), finished=now(), model_sha256=save_model_atomic(model, final),
                  train_seconds=round(record.get("train_seconds", 0.0) + time.perf_counter() - started, 2))
    write_json(run_dir / "run.json", record)
    if evaluate:
        evaluate_run(run_dir, data_dir=data_dir, **evaluate_kwargs)
    return record


def _invariance_reading(model, data, settings):
    """The `InvarianceReading` of a run with ``restore_most_invariant``: the training split the run
    trains on, its hidden labels hidden, p(target | z) from every other modality of the model."""
    from mibzoo.callbacks import InvarianceReading
    from mibzoo.experiment_data import run_training_arrays

    selection = settings["restore_most_invariant"]
    arrays, present = run_training_arrays(data, settings)
    inputs = [m for m in model.modality_names if m not in (selection["target"], selection["environment"])]
    return InvarianceReading(arrays, selection["target"], selection["environment"], inputs, present=present,
                             start_from_epoch=selection["from_epoch"] - 1, seed=settings["seed"],
                             monitor=_INVARIANCE_KEY)


def optimizer_settings(model):
    """``{phase: {"learning_rate", "beta_1", "beta_2", "epsilon"}}`` of a compiled model's Adam
    optimizers (the ``dist`` phase's and each ``critic:<term>`` phase's): what a run trained with."""
    def adam(optimizer):
        config = optimizer.get_config()
        # float32 variables: 2e-4 reads back as 1.9999999e-4; 7 significant digits recover the setting.
        return {k: float(f"{float(config[k]):.7g}") for k in ("learning_rate", "beta_1", "beta_2", "epsilon")
                if k in config}

    out = {"dist": adam(model.optimizer)}
    out.update({phase: adam(optimizer) for phase, optimizer in model.critic_optimizers.items()})
    return out


def _intact(path, record):
    """Whether the run's final model file exists with the checksum its run recorded (warns if not)."""
    if not path.is_file():
        return False
    try:
        verify(path, record.get("model_sha256") or "", "model file")
        return True
    except CorruptFileError as err:
        warnings.warn(f"{err}; restoring it from the newest intact checkpoint", RuntimeWarning, stacklevel=3)
        return False


def load_run_model(run_dir):
    """The final model of a run (``model.keras``), checked against the checksum in ``run.json``."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no run.json); create one with mibzoo train")
    record = read_json(run_dir / "run.json")
    path = run_dir / "model.keras"
    if not path.is_file():
        kept = RunCheckpoints(run_dir).manifest()["checkpoints"]
        last = f"its last checkpoint is epoch {kept[-1]['epoch']}" if kept else "it has no checkpoint"
        raise FileNotFoundError(f"{run_dir}: the run has not finished (no model.keras; {last}); run "
                                f"mibzoo train again with the same --out to resume it")
    try:
        return load_model(path, record.get("model_sha256"))
    except CorruptFileError as err:
        raise CorruptFileError(f"{err}. Run `mibzoo train {record['entry']} --dataset {record['dataset']} "
                               f"--epochs {record['epochs']} --out {run_dir}` again to restore it from the "
                               "newest intact checkpoint") from None


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
    data = _recorded_data(run_dir, record, data_dir)
    started = time.perf_counter()
    test = data.arrays("test", limit=limit)
    train = data.arrays("train", limit=probe_train_limit)
    values = metric_functions.evaluate(model, test, train, spec=data.spec, classifiers=classifiers,
                                       metrics=metrics, iwae_k=iwae_k, likelihood_limit=likelihood_limit,
                                       prior_samples=prior_samples, seed=seed, classifier_dir=classifier_dir,
                                       data_dir=data_dir)
    write_json(run_dir / "metrics.json", {
        "metrics": values, "evaluated": now(), "seconds": round(time.perf_counter() - started, 2),
        "settings": evaluation_settings(iwae_k, len(next(iter(test.values()))), likelihood_limit,
                                        probe_train_limit, prior_samples, seed, metrics),
        "classifiers": classifier_records(data.spec, classifier_dir, classifiers), "versions": versions(),
        "latent_sampler": {"kind": model.latent_sampler.kind, "fitted": model.latent_sampler.is_fitted()}})
    if plot_examples:
        write_sample_plots(model, {m: v[:plot_examples] for m, v in test.items() if m in model.modality_specs},
                           run_dir / "plots", seed)
    return values


def evaluation_settings(iwae_k, test_examples, likelihood_limit, probe_train_limit, prior_samples, seed,
                        metrics=None):
    """What an evaluation depended on (stored in ``metrics.json``; `compare` reuses equal ones)."""
    return {"iwae_k": iwae_k, "test_examples": test_examples, "likelihood_examples": likelihood_limit,
            "probe_train_examples": probe_train_limit, "prior_samples": prior_samples, "seed": seed,
            "metrics": list(metrics) if metrics is not None else None}


def classifier_records(spec, classifier_dir=None, readers=None):
    """Checksums and test accuracies of the classifiers a dataset's metrics read modalities with.

    Args:
        spec: the dataset's `EvaluationSpec`.
        classifier_dir: the classifier cache.
        readers: ``{modality: classifier}`` actually used, when given: a reader whose weights are not
            the cached classifier's (the cache changed since it was loaded, or it was passed in) is
            recorded by its own ``weights_sha256``, so that a record always names what scored; a
            reader without weights (a callable) is recorded by its type only, which matches nothing.
    """
    from mibzoo import classifiers
    out, cached = {}, {}
    for modality, label in spec.labels.items():
        ref = label.classifier
        if isinstance(ref, str) and ref in classifiers.CLASSIFIERS:
            if ref not in cached:  # modalities read by one classifier (image_a, image_b) share its record
                cached[ref] = _cached_classifier_record(ref, classifier_dir)
            entry = cached[ref]
            reader = (readers or {}).get(modality)
            if reader is not None and not hasattr(reader, "get_weights"):  # a callable: nothing identifies it
                entry = {"sha256": None, "test_accuracy": None, "weights_sha256": None,
                         "reader": type(reader).__name__}
            elif reader is not None:
                used = classifiers.weights_sha256(reader)
                if used != entry["weights_sha256"]:
                    entry = {"sha256": None, "test_accuracy": None, "weights_sha256": used}
            out[ref] = entry
        elif isinstance(ref, str):
            out[ref] = {"sha256": classifiers.sha256_file(ref) if os.path.isfile(ref) else None}
    return out


def _cached_classifier_record(ref, classifier_dir):
    """``{"sha256", "test_accuracy", "weights_sha256"}`` of the cached classifier ``ref`` (Nones when
    it is not cached); a cache from before weights digests has them read off its file."""
    from mibzoo import classifiers

    info = classifiers.record(ref, classifier_dir) or {}
    weights = info.get("weights_sha256")
    if weights is None and info:
        model = classifiers.load_cached(ref, classifier_dir)
        weights = classifiers.weights_sha256(model) if model is not None else None
    return {"sha256": info.get("sha256"), "test_accuracy": info.get("test_accuracy"), "weights_sha256": weights}
