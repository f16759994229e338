"""Compare zoo entries on the same data under the same budget, and read one table.

```python
report = mibzoo.compare(["jmvae", "mvae", "wyner_vae", "mib_mm"], dataset="mnist_label",
                        epochs=10, seeds=[0, 1, 2])
print(report.table())           # markdown: mean ± std over seeds, budget and versions stated
report.to_csv("compare_out/results.csv"); report.to_json("compare_out/results.json")
report.plot("compare_out/")     # sample grids per model, metric bar charts with error bars
```

Every model gets the same training data, splits, seeds, epochs, batch size, optimizer and
evaluation (`mibzoo.metrics.evaluate`). A seed fixes the weights, the training noise and the
data order, so model A with seed 0 and model B with seed 0 see the batches in the same order.

Importing this module is cheap: TensorFlow-heavy work and plotting are imported when used.
"""
import hashlib
import itertools
import json
import pathlib
import time

# The report of a comparison lives in `compare_report`; `Report` is re-exported from here.
from mibzoo.compare_report import Report, slug

__all__ = ["Report", "compare"]
_SAMPLE_EXAMPLES = 8
_SAMPLE_DRAWS = 4


def _model_list(models):
    """``[(label, entry, overrides)]`` from names or a ``{label: entry or {"entry": ..., **overrides}}`` dict."""
    import mibzoo

    if isinstance(models, str):
        models = [models]
    items = list(models.items()) if isinstance(models, dict) else [(m, m) for m in models]
    if not items:
        raise ValueError("compare: no models given; pass zoo entries such as ['jmvae', 'mvae'] "
                         f"(available: {', '.join(mibzoo.list_models())})")
    out = []
    for label, value in items:
        if isinstance(value, str):
            entry, extra = value, {}
        elif isinstance(value, dict) and isinstance(value.get("entry"), str):
            entry, extra = value["entry"], {k: v for k, v in value.items() if k != "entry"}
        else:
            raise ValueError(f"compare: model {label!r}: got {value!r}, expected a zoo entry name or "
                             f"{{'entry': name, **overrides}}")
        if entry not in mibzoo.list_models():
            from mibzoo.registry import config_path
            config_path(entry)  # raises the registry's error: unknown entry, suggestions, available names
        out.append((str(label), entry, extra))
    if len({label for label, _, _ in out}) != len(out):
        raise ValueError(f"compare: model labels must be distinct, got {[label for label, _, _ in out]}")
    return out


def _chance(spec, specs, test_arrays):
    import numpy as np

    chance = {}
    readable = [m for m in specs if m in spec.labels]
    for source in specs:
        for target in readable:
            if target != source:
                chance[f"cross_coherence/{source}->{target}"] = 1.0 / spec.labels[target].classes
    if len(readable) >= 2 and len({spec.labels[m].classes for m in readable}) == 1:
        chance["joint_coherence"] = spec.labels[readable[0]].classes ** (1 - len(readable))
    if spec.probe_label and spec.probe_label in test_arrays:
        labels = np.asarray(test_arrays[spec.probe_label]).reshape(-1)
        majority = np.bincount(labels.astype("int64")).max() / len(labels)
        for key in ["joint"] + (list(specs) if len(specs) > 1 else []):
            chance[f"probe/{key}"] = float(majority)
    return chance



def config_digest(config):
    """sha256 of a model config (``model.get_config()``) without its seed: the rows of one model in a
    comparison (one per seed), also when merged across invocations, share it; a changed zoo default
    changes it. Top-level fields set to None (absent options) do not count, so adding an optional field
    to the zoo's configs does not change the digest of the models that leave it unset."""
    config = {k: v for k, v in config.items() if k != "seed" and v is not None}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def entry_digest(entry, dataset, overrides=None, modality_options=None, modalities=None, data_dir=None):
    """`config_digest` of what `compare` would train for ``entry`` on ``dataset`` now (nothing is
    trained; the arguments are `compare`'s)."""
    from mibzoo import experiment
    from mibzoo.experiment_data import resolve

    data = resolve(dataset, modalities=modalities, data_dir=data_dir)
    model = experiment.build_model(entry, data, overrides or {}, modality_options or {})
    digest = config_digest(model.get_config())
    _clear_keras_session()
    return digest


def _config_digest(run_dir):
    """`config_digest` of a run directory's ``model_config.json``."""
    return config_digest(json.loads((pathlib.Path(run_dir) / "model_config.json").read_text(encoding="utf-8")))


def compare(models, dataset, epochs=10, seeds=(0,), batch_size=128, limit=None, test_limit=None,
            likelihood_limit=1000, probe_train_limit=10000, prior_samples=1000, iwae_k=50, learning_rate=None,
            overrides=None, modality_options=None, metrics=None, classifiers=None, modalities=None, evaluation=None,
            out=None, progress=True, data_dir=None, classifier_dir=None, verbose=0):
    """Trains and evaluates zoo entries on the same data under the same budget.

    Args:
        models: zoo entry names (``["jmvae", "mvae"]``) or ``{label: entry or {"entry": name,
            **overrides}}`` to compare variants of one entry (``{"b1": {"entry": "beta_vae", "beta": 1}}``).
        dataset: a dataset name, ``{"train": arrays, "test": arrays}`` (with ``modalities``), or an
            ``.npz`` path (`mibzoo.experiment_data`).
        epochs: training epochs of every model.
        seeds: one training run per seed and model; the table shows mean ± std over seeds.
        batch_size: training batch size.
        limit: train on the first ``limit`` training examples (None: all).
        test_limit: evaluate coherence, probe and reconstruction on the first test examples.
        likelihood_limit: test examples for the IWAE log-likelihood (K decoder passes each).
        probe_train_limit: training examples the linear probe is fit on.
        prior_samples: prior samples for joint coherence.
        iwae_k: importance samples K.
        learning_rate: Adam learning rate of the networks (None: each entry's own, from its zoo config's
            ``optimizers``; 1e-3 unless it sets one).
        overrides: `mibzoo.load` overrides applied to every model (``{"shared": [...]}``).
        modality_options: merged into every modality spec (``{"hidden": 32, "filters": [8, 16]}``).
        metrics: metric groups (default: all of `mibzoo.metrics.METRICS`).
        classifiers: ``{modality: classifier}`` overriding the dataset's classifiers.
        modalities: modality specs when ``dataset`` is in-memory arrays.
        evaluation: an `EvaluationSpec` overriding the dataset's.
        out: if given, the report (markdown, CSV, JSON, PNGs) is saved there, each (model, seed) is
            trained as a run directory ``OUT/runs/<model>/seed_<k>`` (`mibzoo.experiment.train_run`),
            and ``partial.json`` holds the rows finished so far. Calling `compare` again with the same
            ``out`` resumes: finished runs and their evaluations are reused, an interrupted run
            resumes from its last checkpoint. Without ``out`` the runs live in a temporary directory.
        progress: show a progress bar over models × seeds.
        data_dir, classifier_dir: data and classifier caches.
        verbose: Keras progress output while training.

    Returns:
        A `Report`.

    Raises:
        ValueError: unknown entry, dataset or metric (the message lists what is available).
    """
    import tempfile

    from tqdm.auto import tqdm

    from mibzoo import experiment, run_records
    from mibzoo.samples import cross_modal_samples
    from mibzoo import metrics as metric_functions
    from mibzoo.checkpoints import RunCheckpoints
    from mibzoo.experiment_data import resolve, save_npz
    from mibzoo.metrics._common import resolve_readers

    plan = _model_list(models)
    seeds = [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    if not seeds:
        raise ValueError("compare: seeds must name at least one seed, e.g. [0, 1, 2]")
    experiment.check_settings(epochs, {"batch_size": batch_size, "seed": min(seeds), "limit": limit,
                                       "learning_rate": learning_rate, "overrides": overrides or {},
                                       "modality_options": modality_options or {}})
    metric_groups = metric_functions.check_metrics(metrics)
    data = resolve(dataset, modalities=modalities, evaluation=evaluation, data_dir=data_dir)
    test = data.arrays("test", limit=test_limit)
    n_test = len(next(iter(test.values())))
    # Classifiers are resolved (trained on first use) once, before the clock of any model starts.
    readers = resolve_readers(data.modalities, data.spec, classifiers, list(data.modalities), classifier_dir, data_dir)
    readers = {m: c for m, c in readers.items() if c is not None}

    budget = {"dataset": data.name, "epochs": epochs, "batch_size": batch_size, "seeds": seeds,
              "train_examples": data.num_examples("train", limit), "test_examples": n_test,
              "likelihood_examples": min(n_test, likelihood_limit) if likelihood_limit else n_test,
              "probe_train_examples": data.num_examples("train", probe_train_limit), "iwae_k": iwae_k,
              "prior_samples": prior_samples, "optimizer": (f"Adam(learning_rate={learning_rate})" if learning_rate is not None
                            else "Adam, each entry's zoo settings"),
              "metrics": metric_groups, "overrides": overrides or {}, "modality_options": modality_options or {}}
    report_versions = dict(run_records.versions(),
                           classifiers=experiment.classifier_records(data.spec, classifier_dir, readers))
    # Each (model, seed) is a run directory: a comparison killed half-way resumes where it stopped.
    scratch = tempfile.TemporaryDirectory(prefix="mibzoo-compare-") if out is None else None
    runs_root = pathlib.Path(scratch.name if scratch else out) / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    if data.kind == "arrays":  # one copy of in-memory data for every run
        save_npz(runs_root / "data.npz", data.arrays("train"), data.arrays("test"), data.modalities, data.spec)
        run_data = str(runs_root / "data.npz")
    else:
        run_data = data.name
    wanted = experiment.evaluation_settings(iwae_k, n_test, likelihood_limit, probe_train_limit, prior_samples, None,
                                            metric_groups)
    rows, samples = [], {}
    examples = {m: v[:_SAMPLE_EXAMPLES] for m, v in test.items() if m in data.modalities}
    started = time.perf_counter()
    runs = list(itertools.product(plan, seeds))
    bar = tqdm(runs, desc="compare", unit="run", disable=not progress)
    try:
        for (label, entry, extra), seed in bar:
            bar.set_postfix_str(f"{label} seed {seed}")
            run_dir = runs_root / slug(label) / f"seed_{seed}"
            record = experiment.train_run(entry, run_data, epochs, run_dir, batch_size=batch_size, seed=seed,
                                          overrides={**(overrides or {}), **extra}, limit=limit,
                                          modality_options=modality_options or {}, learning_rate=learning_rate,
                                          data_dir=data_dir, image_examples=0, verbose=verbose)
            t0 = time.perf_counter()
            values = _reusable_metrics(run_dir, {**wanted, "seed": seed}, report_versions["classifiers"])
            if values is None:
                values = experiment.evaluate_run(run_dir, metrics=metric_groups, iwae_k=iwae_k, limit=test_limit,
                                                 likelihood_limit=likelihood_limit, probe_train_limit=probe_train_limit,
                                                 prior_samples=prior_samples, classifiers=readers,
                                                 classifier_dir=classifier_dir, data_dir=data_dir, seed=seed,
                                                 plot_examples=0)
            history = RunCheckpoints(run_dir).history()
            rows.append({"model": label, "entry": entry, "seed": seed, "metrics": values,
                         "config_sha256": _config_digest(run_dir),
                         "train_seconds": record["train_seconds"], "eval_seconds": round(time.perf_counter() - t0, 2),
                         "final_loss": float(history[-1]["loss"]) if history else None})
            if seed == seeds[0]:
                samples[label] = cross_modal_samples(experiment.load_run_model(run_dir), examples, seed, _SAMPLE_DRAWS,
                                                     _SAMPLE_EXAMPLES)
            if out is not None:
                partial = Report(rows, budget, report_versions, wall_seconds=time.perf_counter() - started)
                partial.to_json(pathlib.Path(out) / "partial.json")
            _clear_keras_session()  # keep memory flat over many runs
    finally:
        if scratch is not None:
            scratch.cleanup()
    report = Report(rows, budget, report_versions, _chance(data.spec, data.modalities, test),
                    time.perf_counter() - started, samples, {m: dict(s) for m, s in data.modalities.items()})
    if out is not None:
        report.save(out)
        (pathlib.Path(out) / "partial.json").unlink(missing_ok=True)  # superseded by results.json
    return report


def _reusable_metrics(run_dir, settings, classifier_records):
    """The metrics of an earlier evaluation of this run with the same settings and the same coherence
    classifiers (`mibzoo.classifiers.same_classifier`; another machine's cache may hold another), or None."""
    from mibzoo import classifiers, run_records

    path = pathlib.Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    stored = run_records.read_json(path)
    if stored.get("settings") != settings:
        return None
    scored_by = stored.get("classifiers") or {}
    if set(scored_by) != set(classifier_records) or not all(
            classifiers.same_classifier(scored_by[name], record) for name, record in classifier_records.items()):
        return None
    return stored["metrics"]


def _clear_keras_session():
    import keras
    keras.backend.clear_session()
