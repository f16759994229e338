"""The experiment of `mibzoo reproduce table3` (`mibzoo.reproduce.table3`): the budget, the splits
of UCI Adult and German credit, the zoo entries and baselines trained on them, and their scores
(ACC, DEO, DP of a logistic regression on each representation, `mibzoo.metrics.fairness`).
`mibzoo.reproduce.table3` turns the rows into the report.
"""
import dataclasses
import sys
import time

import numpy as np

ENTRIES = ("fair_mmd", "fair_tc", "fair_mine")
DATASETS = ("adult", "german")
LR_RAW, LR_X, MLP_RAW, VAE = "LR on [x, a]", "LR on x (a removed)", "NN: MLP on [x, a]", "VAE on x"
BASELINES = (LR_RAW, LR_X, MLP_RAW, VAE)

@dataclasses.dataclass(frozen=True)
class Budget:
    """What every model gets.

    Attributes:
        epochs: ``{dataset: epochs}`` of every zoo model (entries and the VAE baseline).
        batch_size: ``{dataset: batch size}``.
        learning_rate: Adam's learning rate.
        sweep: β2 values of the `fair_mmd` trade-off on Adult.
        train_limit: use only the first training examples (None: all).
        test_limit: use only the first test examples (None: all).
        mlp_hidden: hidden layer sizes of the MLP baseline.
        mlp_iterations: its maximum number of epochs (early stopping on 10% of the training data).
        mlp_batch_size: its minibatch size (scikit-learn's loop over minibatches runs in Python).
        run_eagerly: train without compiling the step (the quick path: at a few steps per model,
            tracing the step would cost more than the training).
    """

    epochs: dict
    batch_size: dict
    learning_rate: float = 1e-3
    sweep: tuple = (0.0, 300.0, 1000.0, 3000.0, 10000.0)
    train_limit: int = None
    test_limit: int = None
    mlp_hidden: tuple = (64,)
    mlp_iterations: int = 30
    mlp_batch_size: int = 256
    run_eagerly: bool = False


FULL = Budget(epochs={"adult": 10, "german": 60}, batch_size={"adult": 128, "german": 64})
QUICK = Budget(epochs={"adult": 1, "german": 1}, batch_size={"adult": 64, "german": 32}, sweep=(),
               train_limit=128, test_limit=128, mlp_hidden=(8,), mlp_iterations=3, run_eagerly=True)


# ----- data -------------------------------------------------------------------------------------

def _take(arrays, rows):
    return {key: np.asarray(value)[rows] for key, value in arrays.items()}


def _restandardize(train, test, numeric):
    """Numerical columns of x standardized with the training rows' mean and std (an affine map of
    the prepared columns, so the same as standardizing the raw values)."""
    mean = train["x"][:, :numeric].mean(0)
    std = train["x"][:, :numeric].std(0)
    std = np.where(std > 1e-12, std, 1.0)
    for part in (train, test):
        part["x"] = part["x"].copy()
        part["x"][:, :numeric] = ((part["x"][:, :numeric] - mean) / std).astype("float32")
    return train, test


def german_split(pooled, seed, test_size, numeric):
    """A random ``(train, test)`` split of the pooled German rows, stratified by (a, target).

    Args:
        pooled: ``{key: array}`` of all rows.
        seed: the split's seed.
        test_size: rows in the test split (200 for the real data).
        numeric: number of numerical columns at the front of ``x`` (re-standardized).
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(pooled["x"]))
    strata = 2 * np.asarray(pooled["a"]) + np.asarray(pooled["target"])
    train_rows, test_rows = train_test_split(rows, test_size=test_size, random_state=seed, stratify=strata)
    return _restandardize(_take(pooled, train_rows), _take(pooled, test_rows), numeric)


def _limited(arrays, limit):
    return arrays if limit is None else {key: value[:limit] for key, value in arrays.items()}


def splits(dataset, seeds, budget, data_dir=None):
    """Yields ``(seed, train, test)``: Adult's official split for every seed; for German one split
    per seed (`german_split`)."""
    import mibzoo.data

    train = mibzoo.data.load_arrays(dataset, "train", data_dir=data_dir)
    test = mibzoo.data.load_arrays(dataset, "test", data_dir=data_dir)
    if dataset == "german":
        pooled = {key: np.concatenate([train[key], test[key]]) for key in train}
        numeric = mibzoo.data.info(dataset).modalities["x"]["numeric"]
        for seed in seeds:
            split_train, split_test = german_split(pooled, seed, len(test["x"]), numeric)
            yield seed, _limited(split_train, budget.train_limit), _limited(split_test, budget.test_limit)
    else:
        for seed in seeds:
            yield seed, _limited(train, budget.train_limit), _limited(test, budget.test_limit)


# ----- models -----------------------------------------------------------------------------------

def train_zoo_model(entry, modalities, train, epochs, batch_size, seed, learning_rate=1e-3, overrides=None,
                    run_eagerly=False, present=None, compile_options=None, callbacks=None, adam_options=None):
    """Trains a zoo entry at its defaults (plus ``overrides``) on in-memory arrays; returns the model.

    The seed fixes the weights, the training noise and the data order, as `mibzoo train` does.
    ``present`` (``{modality: [N] 0/1}``) marks the examples that lack a modality (semi-supervised
    training, `mibzoo.experiment_data.hide_labels`); ``compile_options`` go to ``model.compile``,
    ``callbacks`` (Keras callbacks, e.g. scoring after every epoch) to ``model.fit``, ``adam_options``
    (e.g. ``{"beta_1": 0.99}``) to the networks' ``keras.optimizers.Adam`` beside ``learning_rate``
    (a number or a Keras learning-rate schedule); with ``"restarts"`` among them the optimizer is a
    `mibzoo.optimizers.RestartingAdam`.
    """
    import keras

    import mibzoo
    from mibzoo.data.pipeline import shuffled_batches

    keras.utils.set_random_seed(seed)
    specs = {name: {k: v for k, v in spec.items() if k != "description"} for name, spec in modalities.items()}
    model = mibzoo.load(entry, modalities=specs, seed=seed, **(overrides or {}))
    from mibzoo.optimizers import RestartingAdam

    adam = RestartingAdam if "restarts" in (adam_options or {}) else keras.optimizers.Adam
    model.compile(optimizer=adam(learning_rate, **(adam_options or {})), run_eagerly=run_eagerly,
                  **(compile_options or {}))
    columns = {name: train[name] for name in specs}
    if present is not None:
        columns["present"] = {name: np.asarray(mask, "float32") for name, mask in present.items()}
    ds = shuffled_batches(columns, batch_size, seed)
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)  # the dataset is shuffled with the seed
    return model


def _raw(arrays):
    return np.concatenate([arrays["x"], np.asarray(arrays["a"], "float32")[:, None]], axis=1)


def baseline_scores(name, dataset, train, test, seed, budget, modalities):
    """``{"acc", "deo", "dp"}`` of baseline ``name`` on one split of ``dataset``."""
    from sklearn.neural_network import MLPClassifier

    from mibzoo.metrics import fairness

    if name == LR_RAW:
        return fairness.classifier_fairness(_raw(train), train["target"], _raw(test), test["target"], test["a"],
                                            fairness.linear_classifier(seed))
    if name == LR_X:
        return fairness.classifier_fairness(train["x"], train["target"], test["x"], test["target"], test["a"],
                                            fairness.linear_classifier(seed))
    if name == MLP_RAW:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        mlp = MLPClassifier(hidden_layer_sizes=budget.mlp_hidden, max_iter=budget.mlp_iterations,
                            batch_size=budget.mlp_batch_size, early_stopping=True, random_state=seed)
        with warnings.catch_warnings():  # the iteration cap is the budget, stated in the report
            warnings.simplefilter("ignore", ConvergenceWarning)
            return fairness.classifier_fairness(_raw(train), train["target"], _raw(test), test["target"], test["a"],
                                                mlp)
    if name == VAE:
        model = train_zoo_model("vae", {"x": modalities["x"]}, train, budget.epochs[dataset],
                                budget.batch_size[dataset], seed, budget.learning_rate, run_eagerly=budget.run_eagerly)
        return fairness.representation_fairness(model, train, test)
    raise ValueError(f"unknown baseline {name!r}; baselines are {list(BASELINES)}")


def entry_scores(entry, dataset, train, test, seed, budget, modalities, overrides=None):
    """``{"acc", "deo", "dp"}`` of a zoo entry's representation U_x on one split."""
    from mibzoo.metrics import fairness

    model = train_zoo_model(entry, modalities, train, budget.epochs[dataset], budget.batch_size[dataset], seed,
                            budget.learning_rate, overrides, budget.run_eagerly)
    return fairness.representation_fairness(model, train, test)


# ----- the run ----------------------------------------------------------------------------------

def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    scores = fn(*args, **kwargs)
    return scores, round(time.perf_counter() - started, 1)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def planned_runs(seeds, budget, entries=ENTRIES, baselines=BASELINES):
    """The table's runs in report order, each ``(dataset, seed, model, beta2)``: every baseline and
    entry per data set and seed, then on Adult's first seed the `fair_mmd` runs of the β2 sweep
    (``beta2`` None: the entry's own β2; the sweep's point at the zoo default is the table's run)."""
    import mibzoo

    default_beta2 = float(mibzoo.describe("fair_mmd")["model"]["hyperparameters"]["beta2"])
    planned = []
    for dataset in DATASETS:
        for seed in seeds:
            planned += [(dataset, seed, name, None) for name in list(baselines) + list(entries)]
            if dataset == "adult" and seed == seeds[0] and "fair_mmd" in entries:
                planned += [(dataset, seed, "fair_mmd", float(b)) for b in budget.sweep if float(b) != default_beta2]
    return planned, default_beta2


_SPLITS = {}


def _split(dataset, seed, budget, data_dir):
    # Each (data set, seed) split is read once per process (every model of a seed trains on it).
    key = (dataset, seed, budget.train_limit, budget.test_limit, data_dir)
    if key not in _SPLITS:
        _SPLITS.clear()  # one split at a time: the runs come grouped by split
        _SPLITS[key] = next(splits(dataset, [seed], budget, data_dir))[1:]
    return _SPLITS[key]


def measure(planned_run, budget, data_dir=None):
    """Trains and scores one run of `planned_runs`; returns ``(scores, seconds)``."""
    import mibzoo.data

    dataset, seed, name, beta2 = planned_run
    modalities = mibzoo.data.info(dataset).modalities
    train, test = _split(dataset, seed, budget, data_dir)
    if name in BASELINES:
        return _timed(baseline_scores, name, dataset, train, test, seed, budget, modalities)
    return _timed(entry_scores, name, dataset, train, test, seed, budget, modalities,
                  None if beta2 is None else {"beta2": beta2})


def run_table(seeds, budget, data_dir=None, entries=ENTRIES, baselines=BASELINES, progress=_log, on_row=None,
              jobs=1, finished_runs=()):
    """Every row of the table on both data sets, and the β2 sweep.

    ``on_row(results, runs)`` is called after every finished run with the results so far and the
    finished runs (``[{"run": [dataset, seed, model, beta2], "scores", "seconds"}]``; the command
    saves them, so a long run that stops keeps what it measured). Runs of ``finished_runs`` (those
    of a stopped command, as ``on_row`` gave them) are kept and not trained again.

    With ``jobs`` > 1 the runs are shared among that many worker processes (started with "spawn":
    TensorFlow is not fork-safe), each with ``cores // jobs`` TensorFlow threads: the models are
    small, so a step is bound by per-op dispatch in one thread rather than by arithmetic, and two
    processes finish about twice the runs of one on two cores. Every run is seeded on its own, so
    the rows do not depend on which worker trains them (only, as always, on the thread settings:
    docs/results_fairness.md, finding 9).

    Returns:
        ``{"rows": [{"model", "dataset", "seed", "acc", "deo", "dp", "seconds"}], "sweep": [{"beta2",
        "seed", "acc", "deo", "dp", "seconds"}]}``, rows in `planned_runs` order.
    """
    planned, default_beta2 = planned_runs(seeds, budget, entries, baselines)
    earlier = {tuple(run["run"]): (run["scores"], run["seconds"]) for run in finished_runs}
    finished = {k: earlier[run] for k, run in enumerate(planned) if run in earlier}
    if finished:
        progress(f"table3: resuming: {len(finished)} of {len(planned)} runs were finished, "
                 f"{len(planned) - len(finished)} to train")

    def results():
        rows, sweep = [], []
        for k in sorted(finished):
            (dataset, seed, name, beta2), (scores, seconds) = planned[k], finished[k]
            if beta2 is None:
                rows.append({"model": name, "dataset": dataset, "seed": seed, **scores, "seconds": seconds})
            if name == "fair_mmd" and dataset == "adult" and seed == seeds[0]:
                sweep.append({"beta2": default_beta2 if beta2 is None else beta2, "seed": seed, **scores,
                              "seconds": seconds})
        sweep.sort(key=lambda r: r["beta2"])
        return {"rows": rows, "sweep": sweep}

    def done(k, outcome):
        finished[k] = outcome
        (dataset, seed, name, beta2), (scores, seconds) = planned[k], outcome
        if on_row:
            on_row(results(), [{"run": list(planned[i]), "scores": finished[i][0], "seconds": finished[i][1]}
                               for i in sorted(finished)])
        label = name if beta2 is None else f"{name} beta2={beta2:g}"
        progress(f"table3: {dataset} seed {seed} {label}: ACC {scores['acc']:.3f} DEO {scores['deo']:.3f} "
                 f"DP {scores['dp']:.3f} ({seconds:.0f} s)")

    from mibzoo.reproduce.workers import run_shared

    todo = [k for k in range(len(planned)) if k not in finished]
    for i, outcome in run_shared(measure, [(planned[k], budget, data_dir) for k in todo], jobs):
        done(todo[i], outcome)
    return results()
