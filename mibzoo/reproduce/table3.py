"""`mibzoo reproduce table3`: fair representation learning on UCI Adult and German credit
(Sec. 5, Eq. 17, Figure 4, Table 3), our rows beside the published ones.

Protocol (Sec. 5, following Song et al. 2019 and Creager et al. 2019): every model learns from
``[x, a]`` (or ``x``) without the target; a logistic regression (`mibzoo.metrics.fairness`) is then
fit on the representation of the training split to predict the target and scored on the test
split: accuracy (ACC) and the difference of equal opportunity (DEO, Hardt et al. 2016), plus the
demographic-parity gap (DP). The representation of the fairness entries is the mean of
q(u_x | x), inferred from x alone.

- Adult: the official split (30,162 / 15,060), one run per seed.
- German: the published numbers are means over random 800 / 200 splits; run k draws its own split
  from seed k (stratified by (a, y), so every test split holds positives of both groups; the
  numerical columns are re-standardized with that split's training statistics) and trains with
  seed k.
- Rows: the three zoo entries (`fair_mmd`, `fair_tc`, `fair_mine`, at their zoo defaults), and
  baselines on the same splits: logistic regression on the raw features ``[x, a]``, on ``x``
  alone (the sensitive column removed), an MLP on ``[x, a]`` (the "NN" row) and a plain `vae`
  on ``x`` (its q(z | x) mean as the representation).
- The ACC/DEO trade-off of `fair_mmd` over a sweep of β2 on Adult (first seed).

```
mibzoo reproduce table3              # docs/results_fairness.md, .json, .png
mibzoo reproduce table3 --quick      # a pipeline check: tiny budget, writes *_quick.* files
```
"""
import dataclasses
import os
import pathlib
import sys
import time

import numpy as np

from mibzoo.reproduce import Table

ENTRIES = ("fair_mmd", "fair_tc", "fair_mine")
DATASETS = ("adult", "german")
MARKER_BEGIN = "<!-- mibzoo reproduce table3: begin (generated; text outside the markers is kept) -->"
MARKER_END = "<!-- mibzoo reproduce table3: end -->"

# Table 3 of the paper: (ACC, DEO) on Adult; ((ACC, std), (DEO, std)) on German.
PUBLISHED = [
    ("naive SVM", (0.80, 0.09), ((0.74, 0.05), (0.12, 0.05))),
    ("SVM", (0.79, 0.08), ((0.74, 0.03), (0.10, 0.06))),
    ("NN", (0.84, 0.14), ((0.74, 0.04), (0.47, 0.19))),
    ("NN + χ²", (0.83, 0.03), ((0.73, 0.03), (0.25, 0.14))),
    ("FERM", (0.77, 0.01), ((0.73, 0.04), (0.05, 0.03))),
    ("OURS-MMD", (0.83, 0.02), ((0.72, 0.07), (0.07, 0.09))),
    ("OURS-TC", (0.81, 0.02), ((0.74, 0.08), (0.08, 0.14))),
    ("OURS-MINE", (0.79, 0.01), ((0.70, 0.11), (0.05, 0.11))),
]
PAPER_NAMES = {"fair_mmd": "OURS-MMD", "fair_tc": "OURS-TC", "fair_mine": "OURS-MINE"}

LR_RAW, LR_X, MLP_RAW, VAE = "LR on [x, a]", "LR on x (a removed)", "NN: MLP on [x, a]", "VAE on x"
BASELINES = (LR_RAW, LR_X, MLP_RAW, VAE)

# Targets of issue 11 (mean over seeds, test split).
TARGETS = {"adult": (0.83, 0.02), "german": (0.74, 0.05)}


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
                    run_eagerly=False, present=None, compile_options=None):
    """Trains a zoo entry at its defaults (plus ``overrides``) on in-memory arrays; returns the model.

    The seed fixes the weights, the training noise and the data order, as `mibzoo train` does.
    ``present`` (``{modality: [N] 0/1}``) marks the examples that lack a modality (semi-supervised
    training, `mibzoo.experiment_data.hide_labels`); ``compile_options`` go to ``model.compile``.
    """
    import keras
    import tensorflow as tf

    import mibzoo

    keras.utils.set_random_seed(seed)
    specs = {name: {k: v for k, v in spec.items() if k != "description"} for name, spec in modalities.items()}
    model = mibzoo.load(entry, modalities=specs, seed=seed, **(overrides or {}))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), run_eagerly=run_eagerly, **(compile_options or {}))
    columns = {name: train[name] for name in specs}
    if present is not None:
        columns["present"] = {name: np.asarray(mask, "float32") for name, mask in present.items()}
    n = len(next(iter(columns.values())))
    ds = (tf.data.Dataset.from_tensor_slices(columns)
          .shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size).prefetch(tf.data.AUTOTUNE))
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # the dataset is shuffled with the seed
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


def run_table(seeds, budget, data_dir=None, entries=ENTRIES, baselines=BASELINES, progress=_log, on_row=None):
    """Every row of the table on both data sets, and the β2 sweep.

    ``on_row(results)`` is called after every finished run with the results so far (the command
    saves them, so a long run that stops keeps what it measured).

    Returns:
        ``{"rows": [{"model", "dataset", "seed", "acc", "deo", "dp", "seconds"}], "sweep": [{"beta2",
        "seed", "acc", "deo", "dp", "seconds"}]}``.
    """
    import mibzoo
    import mibzoo.data

    rows, sweep = [], []
    default_beta2 = float(mibzoo.describe("fair_mmd")["model"]["hyperparameters"]["beta2"])
    for dataset in DATASETS:
        modalities = mibzoo.data.info(dataset).modalities
        for seed, train, test in splits(dataset, seeds, budget, data_dir):
            for name in list(baselines) + list(entries):
                if name in BASELINES:
                    scores, seconds = _timed(baseline_scores, name, dataset, train, test, seed, budget, modalities)
                else:
                    scores, seconds = _timed(entry_scores, name, dataset, train, test, seed, budget, modalities)
                rows.append({"model": name, "dataset": dataset, "seed": seed, **scores, "seconds": seconds})
                if on_row:
                    on_row({"rows": rows, "sweep": sweep})
                progress(f"table3: {dataset} seed {seed} {name}: ACC {scores['acc']:.3f} DEO {scores['deo']:.3f} "
                         f"DP {scores['dp']:.3f} ({seconds:.0f} s)")
                if dataset == "adult" and name == "fair_mmd" and seed == seeds[0]:
                    sweep.append({"beta2": default_beta2, "seed": seed, **scores, "seconds": seconds})
            if dataset == "adult" and seed == seeds[0] and "fair_mmd" in entries:
                for beta2 in budget.sweep:
                    if float(beta2) == default_beta2:
                        continue
                    scores, seconds = _timed(entry_scores, "fair_mmd", dataset, train, test, seed, budget, modalities,
                                             {"beta2": float(beta2)})
                    sweep.append({"beta2": float(beta2), "seed": seed, **scores, "seconds": seconds})
                    if on_row:
                        on_row({"rows": rows, "sweep": sweep})
                    progress(f"table3: adult seed {seed} fair_mmd beta2={beta2:g}: ACC {scores['acc']:.3f} "
                             f"DEO {scores['deo']:.3f} ({seconds:.0f} s)")
    sweep.sort(key=lambda r: r["beta2"])
    return {"rows": rows, "sweep": sweep}


# ----- the report -------------------------------------------------------------------------------

def summarize(rows):
    """``{(model, dataset): {"acc": (mean, std), "deo": ..., "dp": ..., "n": runs}}`` (sample std)."""
    out = {}
    for key in dict.fromkeys((r["model"], r["dataset"]) for r in rows):
        group = [r for r in rows if (r["model"], r["dataset"]) == key]
        stats = {"n": len(group)}
        for metric in ("acc", "deo", "dp"):
            values = np.array([r[metric] for r in group], "float64")
            stats[metric] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
        out[key] = stats
    return out


def _cell(stat):
    return f"{stat[0]:.3f} ± {stat[1]:.3f}"


def _published_cell(value):
    return f"{value[0]:.2f} ± {value[1]:.2f}" if isinstance(value, tuple) else f"{value:.2f}"


def target_lines(summary, entries=ENTRIES):
    """Plain statements of which targets of issue 11 are met, from the measured means."""
    lines = []
    for dataset, (acc, deo) in TARGETS.items():
        hits = [e for e in entries if (e, dataset) in summary and summary[(e, dataset)]["acc"][0] >= acc
                and summary[(e, dataset)]["deo"][0] <= deo]
        verdict = f"met by {', '.join(hits)}" if hits else "missed by every entry"
        lines.append(f"- {dataset}: ACC ≥ {acc} with DEO ≤ {deo} for one entry: **{verdict}**.")
        raw = summary.get((LR_RAW, dataset))
        if raw:
            above = [e for e in entries if (e, dataset) in summary and summary[(e, dataset)]["deo"][0] >= raw["deo"][0]]
            verdict = "met" if not above else f"missed by {', '.join(above)}"
            lines.append(f"- {dataset}: every entry's DEO below the raw-feature logistic regression's "
                         f"({raw['deo'][0]:.3f}): **{verdict}**.")
    return lines


def _load():
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "unknown"


def render(results, budget, seeds, command, wall_seconds, versions, machine_text, load_text, suffix=""):
    """The generated part of docs/results_fairness.md (between the markers)."""
    summary = summarize(results["rows"])
    n_german = summary.get((ENTRIES[0], "german"), {}).get("n", len(seeds))
    lines = [MARKER_BEGIN, "", "## Measured (generated by the command below)", "",
             "```", command, "```", "",
             f"Machine: {machine_text}; load average (1 / 5 / 15 min) {load_text} at start and end. "
             f"Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
             f"**Wall time: {wall_seconds / 60:.1f} min.**", "",
             f"Budget: every zoo model (the entries at their zoo defaults and the VAE baseline) trains "
             f"{budget.epochs['adult']} epochs at batch size {budget.batch_size['adult']} on Adult and "
             f"{budget.epochs['german']} epochs at batch size {budget.batch_size['german']} on German, "
             f"Adam({budget.learning_rate:g}); seeds {list(seeds)}. Adult: the official split, one run per seed. "
             f"German: run k draws its own stratified 800 / 200 split from seed k and trains with seed k "
             f"({n_german} splits). The representation is scored by scikit-learn's LogisticRegression "
             f"(standardized inputs, C = 1) fit on the whole training split. MLP baseline: "
             f"MLPClassifier{tuple(budget.mlp_hidden)}, batch size {budget.mlp_batch_size}, at most "
             f"{budget.mlp_iterations} epochs, early stopping."
             + (f" Training examples limited to {budget.train_limit}, test examples to {budget.test_limit}."
                if budget.train_limit or budget.test_limit else ""), "",
             "### Table 3: ACC ↑ / DEO ↓ on the test split (mean ± std over runs; published beside ours)", "",
             "| model | Adult ACC | Adult DEO | German ACC | German DEO | Adult DP | German DP |",
             "|---|---|---|---|---|---|---|"]
    for name, adult, german in PUBLISHED:
        lines.append(f"| {name} (published) | {_published_cell(adult[0])} | {_published_cell(adult[1])} | "
                     f"{_published_cell(german[0])} | {_published_cell(german[1])} | | |")
    for model in dict.fromkeys(r["model"] for r in results["rows"]):
        label = f"**{model}** (ours, {PAPER_NAMES[model]})" if model in PAPER_NAMES else f"{model} (ours)"
        adult, german = summary.get((model, "adult")), summary.get((model, "german"))
        cells = [(_cell(s[m]) if s else "—") for s, m in ((adult, "acc"), (adult, "deo"), (german, "acc"),
                                                          (german, "deo"), (adult, "dp"), (german, "dp"))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "### Targets (issue 11; mean over runs, test split)", ""] + target_lines(summary)
    if results["sweep"]:
        lines += ["", f"### `fair_mmd` on Adult over β2 (seed {results['sweep'][0]['seed']}; the zoo default is "
                      f"β2 = {float(_default_beta2()):g})", "",
                  "| β2 | ACC | DEO | DP |", "|---|---|---|---|"]
        lines += [f"| {r['beta2']:g} | {r['acc']:.3f} | {r['deo']:.3f} | {r['dp']:.3f} |" for r in results["sweep"]]
    lines += ["", f"![ACC against DEO](results_fairness{suffix}.png)", "",
              f"Per-run numbers: `results_fairness{suffix}.json` beside this file.", "", MARKER_END]
    return "\n".join(lines) + "\n"


def _default_beta2():
    import mibzoo
    return mibzoo.describe("fair_mmd")["model"]["hyperparameters"]["beta2"]


def write_markdown(path, generated, title):
    """Writes the generated block into ``path``, keeping any text outside the markers."""
    from mibzoo.files import atomic_path

    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARKER_BEGIN in text and MARKER_END in text:
        head, rest = text.split(MARKER_BEGIN, 1)
        tail = rest.split(MARKER_END, 1)[1]
        text = head + generated.rstrip("\n") + tail
    else:
        text = f"# {title}\n\n" + generated
    with atomic_path(path, suffix=".md") as tmp:
        tmp.write_text(text, encoding="utf-8")


def plot(results, path):
    """ACC against DEO for every model on both data sets (means with std bars, published points
    hollow), and the β2 trade-off of `fair_mmd` on Adult."""
    from mibzoo import plots

    summary = summarize(results["rows"])
    panels = {}
    for dataset in DATASETS:
        ours = {model: (stats["deo"], stats["acc"]) for (model, d), stats in summary.items() if d == dataset}
        published = {name: ((adult[1], 0.0), (adult[0], 0.0)) if dataset == "adult" else (german[1], german[0])
                     for name, adult, german in PUBLISHED}
        panels[dataset] = (ours, published)
    sweep = [(r["beta2"], r["deo"], r["acc"]) for r in results["sweep"]]
    plots.accuracy_fairness(panels, sweep, path)


def run(out_dir, seeds, quick, data_dir=None):
    """`mibzoo reproduce table3`: runs the table and writes the report, its JSON and its figure.

    Args:
        out_dir: folder of ``results_fairness.md`` (``_quick`` files with ``quick``).
        seeds: seeds (Adult: one run each; German: one split and run each).
        quick: a tiny budget that checks the pipeline (``train_limit`` rows, one epoch).
        data_dir: data directory (None: ``$MIBZOO_DATA_DIR`` or ``~/.cache/mibzoo/data``).

    Returns:
        The path of the written markdown file.
    """
    from mibzoo.run_records import machine, versions, write_json

    budget = QUICK if quick else FULL
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("table3: give at least one seed")
    started, load_start, machine_text = time.perf_counter(), _load(), machine()
    suffix = "_quick" if quick else ""
    out = pathlib.Path(out_dir)
    partial = out / f"results_fairness{suffix}.partial.json"
    results = run_table(seeds, budget, data_dir, on_row=lambda so_far: write_json(partial, so_far))
    wall = time.perf_counter() - started
    command = "mibzoo reproduce table3" + (" --quick" if quick else "") + (
        f" --seeds {' '.join(map(str, seeds))}" if seeds != list(TABLE.default_seeds) else "") + (
        f" --out {out_dir}" if str(out_dir) != "docs" else "") + (f" --data-dir {data_dir}" if data_dir else "")
    record = {"command": command, "wall_seconds": round(wall, 1), "machine": machine_text,
              "load_average": [load_start, _load()], "budget": dataclasses.asdict(budget), "seeds": seeds,
              "versions": versions(), **results}
    write_json(out / f"results_fairness{suffix}.json", record)
    partial.unlink(missing_ok=True)
    plot(results, out / f"results_fairness{suffix}.png")
    path = out / f"results_fairness{suffix}.md"
    write_markdown(path, render(results, budget, seeds, command, wall, record["versions"], machine_text,
                                f"{load_start} and {_load()}", suffix),
                   "Results: fair representation learning on Adult and German credit (Table 3)")
    return path


def _add_arguments(parser):
    parser.add_argument("--data-dir", default=None, help="data directory (default $MIBZOO_DATA_DIR or ~/.cache/mibzoo/data)")


TABLE = Table(name="table3", title="Fair representation learning on Adult and German credit (Sec. 5, Table 3)",
              run=run, add_arguments=_add_arguments)
