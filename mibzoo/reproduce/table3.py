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

A command that stops resumes when it is given again: the runs it finished are kept in
``results_fairness.partial.json`` (`stopped_command`).
"""
import dataclasses
import json
import os
import pathlib
import time

import numpy as np

from mibzoo.reproduce import Table, write_generated_block

# The experiment (budget, splits, training and scoring) lives in `table3_runs`; its names are
# re-exported here.
from mibzoo.reproduce.table3_runs import (BASELINES, DATASETS, ENTRIES, FULL, LR_RAW, LR_X, MLP_RAW, QUICK, VAE,
                                          Budget, _log, german_split, run_table, splits, train_zoo_model)

__all__ = ["BASELINES", "DATASETS", "ENTRIES", "FULL", "LR_RAW", "LR_X", "MLP_RAW", "QUICK", "TABLE", "VAE", "Budget",
           "german_split", "plot", "render", "run", "run_table", "splits", "summarize", "target_lines",
           "train_zoo_model", "write_markdown"]
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

# Targets of issue 11 (mean over seeds, test split).
TARGETS = {"adult": (0.83, 0.02), "german": (0.74, 0.05)}


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


def render(results, budget, seeds, command, wall_seconds, versions, machine_text, load_text, suffix="", jobs=1):
    """The generated part of docs/results_fairness.md (between the markers)."""
    summary = summarize(results["rows"])
    n_german = summary.get((ENTRIES[0], "german"), {}).get("n", len(seeds))
    lines = [MARKER_BEGIN, "", "## Measured (generated by the command below)", "",
             "```", command, "```", "",
             f"Machine: {machine_text}; load average (1 / 5 / 15 min) {load_text} at start and end. "
             f"Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
             f"**Wall time: {wall_seconds / 60:.1f} min**"
             + (f" ({jobs} worker processes sharing the runs)." if jobs > 1 else "."), "",
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
    write_generated_block(path, generated, title, MARKER_BEGIN, MARKER_END)


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


def default_jobs():
    """Worker processes of `mibzoo reproduce table3` when ``--jobs`` is not given: one per CPU core
    (at most 4) on a machine without a GPU, where each small model's step is bound by one thread's
    op dispatch; 1 with a GPU, which the workers would otherwise compete for."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def stopped_command(partial, command, budget, here):
    """What a command resumes of a stopped one: ``{"runs", "wall_seconds", "machine"}``.

    A command that stops (killed, out of time) leaves its finished runs in ``partial``
    (``results_fairness.partial.json``, rewritten after every run). The same command again (same
    words, same budget) keeps those runs and trains the rest; its wall time is the stopped part's (up
    to its last finished run) plus the rest's, and its machine is named for both parts when they
    differ. Any other command starts afresh (no runs, 0 seconds, this machine).
    """
    from mibzoo.run_records import read_json

    fresh = {"runs": [], "wall_seconds": 0.0, "machine": here}
    if not partial.exists():
        return fresh
    record = read_json(partial)
    if record.get("command") != command or record.get("budget") != json.loads(json.dumps(dataclasses.asdict(budget))):
        _log(f"table3: {partial} holds the runs of another command or budget ({record.get('command')!r}); "
             "this command starts afresh")
        return fresh
    where = record["machine"] if record["machine"] == here else f"{record['machine']} (stopped), resumed on {here}"
    return {"runs": record["runs"], "wall_seconds": record["wall_seconds"], "machine": where}


def run(out_dir, seeds, quick, data_dir=None, jobs=None):
    """`mibzoo reproduce table3`: runs the table and writes the report, its JSON and its figure.

    Args:
        out_dir: folder of ``results_fairness.md`` (``_quick`` files with ``quick``).
        seeds: seeds (Adult: one run each; German: one split and run each).
        quick: a tiny budget that checks the pipeline (``train_limit`` rows, one epoch).
        data_dir: data directory (None: ``$MIBZOO_DATA_DIR`` or ``~/.cache/mibzoo/data``).
        jobs: worker processes that share the runs (`run_table`; None: `default_jobs`, 1 with ``quick``).

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
    given_jobs, jobs = jobs, ((1 if quick else default_jobs()) if jobs is None else int(jobs))
    if jobs < 1:
        raise ValueError(f"table3: jobs got {jobs}, expected a positive number of worker processes")
    command = "mibzoo reproduce table3" + (" --quick" if quick else "") + (
        f" --seeds {' '.join(map(str, seeds))}" if seeds != list(TABLE.default_seeds) else "") + (
        f" --out {out_dir}" if str(out_dir) != "docs" else "") + (f" --data-dir {data_dir}" if data_dir else "") + (
        f" --jobs {given_jobs}" if given_jobs is not None else "")
    stopped = stopped_command(partial, command, budget, machine_text)
    started -= stopped["wall_seconds"]
    machine_text = stopped["machine"]

    def save(so_far, finished_runs):
        # The runs a stopped command finished: the same command again resumes from them (`stopped_command`).
        write_json(partial, {"command": command, "budget": dataclasses.asdict(budget), "machine": machine_text,
                             "wall_seconds": round(time.perf_counter() - started, 1), "runs": finished_runs,
                             **so_far})

    results = run_table(seeds, budget, data_dir, on_row=save, jobs=jobs, finished_runs=stopped["runs"])
    wall = time.perf_counter() - started
    record = {"command": command, "wall_seconds": round(wall, 1), "machine": machine_text,
              "load_average": [load_start, _load()], "budget": dataclasses.asdict(budget), "seeds": seeds,
              "jobs": jobs,
              "versions": versions(), **results}
    write_json(out / f"results_fairness{suffix}.json", record)
    partial.unlink(missing_ok=True)
    plot(results, out / f"results_fairness{suffix}.png")
    path = out / f"results_fairness{suffix}.md"
    write_markdown(path, render(results, budget, seeds, command, wall, record["versions"], machine_text,
                                f"{load_start} and {_load()}", suffix, jobs),
                   "Results: fair representation learning on Adult and German credit (Table 3)")
    return path


def _add_arguments(parser):
    parser.add_argument("--data-dir", default=None, help="data directory (default $MIBZOO_DATA_DIR or ~/.cache/mibzoo/data)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes sharing the runs (default: one per CPU core, at most 4; 1 with a GPU)")


TABLE = Table(name="table3", title="Fair representation learning on Adult and German credit (Sec. 5, Table 3)",
              run=run, add_arguments=_add_arguments)
