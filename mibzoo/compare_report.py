"""The `Report` of a comparison (`mibzoo.compare.compare`): its rows per model and seed, mean ± std
summaries over seeds, the markdown table with the budget and versions, CSV and JSON files, and
the plots (sample grids per model, metric bar charts with error bars).

Importing this module is cheap: plotting is imported when used.
"""
import csv
import io
import json
import math
import pathlib

from mibzoo.files import write_text


def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean = sum(values) / len(values)
    # Sample standard deviation over seeds (0 for a single seed).
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return {"mean": mean, "std": math.sqrt(var), "n": len(values)}


def _format(stat, digits):
    if stat["n"] == 0:
        return "—"
    if stat["n"] == 1:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _digits(metric):
    return 2 if metric.startswith("log_likelihood") else (4 if metric.startswith("reconstruction") else 3)


class Report:
    """Results of `compare`: one row per (model, seed), summaries, the budget and the versions.

    Attributes:
        rows: ``[{"model", "entry", "seed", "metrics": {name: value}, "train_seconds",
            "eval_seconds", "final_loss"}]``.
        budget: what every model got (dataset, epochs, batch size, seeds, examples, ...).
        versions: library versions, and the classifiers' checksums and test accuracies.
        chance: ``{metric: chance level}`` for the coherence and probe metrics.
        wall_seconds: wall time of the whole comparison.
        samples: per model (first seed): cross-modal and prior samples for `plot` (not saved to JSON).
        specs: ``{modality: spec}`` of the data (for drawing samples).
    """

    def __init__(self, rows, budget, versions, chance=None, wall_seconds=None, samples=None, specs=None):
        self.rows = list(rows)
        self.budget = dict(budget)
        self.versions = dict(versions)
        self.chance = dict(chance or {})
        self.wall_seconds = wall_seconds
        self.samples = samples or {}
        self.specs = specs or {}

    # ----- numbers ----------------------------------------------------------------------------
    @property
    def models(self):
        """Model labels in the order they were compared."""
        return list(dict.fromkeys(r["model"] for r in self.rows))

    @property
    def metric_names(self):
        """Every metric key that any run produced, in first-seen order."""
        return list(dict.fromkeys(k for r in self.rows for k in r["metrics"]))

    def summary(self):
        """``{model: {metric: {"mean", "std", "n"}}}`` over seeds (also ``train_seconds``)."""
        out = {}
        for model in self.models:
            rows = [r for r in self.rows if r["model"] == model]
            out[model] = {m: _mean_std([r["metrics"].get(m) for r in rows]) for m in self.metric_names}
            out[model]["train_seconds"] = _mean_std([r["train_seconds"] for r in rows])
        return out

    # ----- text -------------------------------------------------------------------------------
    def header(self):
        """The budget and versions as markdown lines."""
        b = self.budget
        lines = [f"Budget (same for every model): dataset `{b.get('dataset')}`, {b.get('epochs')} epochs, batch size "
                 f"{b.get('batch_size')}, seeds {b.get('seeds')}, {b.get('train_examples')} training examples, "
                 f"{b.get('test_examples')} test examples (log-likelihood on {b.get('likelihood_examples')}, IWAE "
                 f"K={b.get('iwae_k')}; joint coherence on {b.get('prior_samples')} prior samples; probe fit on "
                 f"{b.get('probe_train_examples')} training examples), optimizer {b.get('optimizer')}."]
        if b.get("overrides") or b.get("modality_options"):
            lines.append(f"Model overrides: {json.dumps(b.get('overrides') or {})}; modality options: "
                         f"{json.dumps(b.get('modality_options') or {})}.")
        v = self.versions
        libs = ", ".join(f"{k} {v[k]}" for k in ("mibzoo", "tensorflow", "keras", "tensorflow_probability",
                                                    "numpy", "python") if k in v)
        lines.append(f"Versions: {libs}.")
        for name, info in (v.get("classifiers") or {}).items():
            if info.get("test_accuracy") is not None:
                digest = (f"weights sha256 `{info['weights_sha256'][:16]}…`" if info.get("weights_sha256")
                          else f"sha256 `{str(info.get('sha256'))[:16]}…`")
                lines.append(f"Classifier `{name}`: test accuracy {info['test_accuracy']:.4f}, {digest}"
                             + (" (rows measured before weights digests matched by test accuracy)"
                                if info.get("matched_by") == "test_accuracy" else "") + ".")
        for (name, _), (info, models) in self.other_scorers().items():
            lines.append(f"Columns {', '.join(f'`{m}`' for m in models)}: scored by another copy of `{name}` "
                         f"(test accuracy {info.get('test_accuracy'):.4f}, weights sha256 "
                         f"`{str(info.get('weights_sha256'))[:16]}…`), trained from the same recipe on another "
                         "machine kind; two copies can read a generated digit differently.")
        if self.wall_seconds is not None:
            lines.append(f"Wall time: {self.wall_seconds / 60:.1f} min.")
        return lines

    def other_scorers(self):
        """``{(classifier name, weights digest): (record, [models])}`` of the rows scored by a classifier other than
        ``versions["classifiers"]`` names (a row's own ``"classifiers"``, set by a merge that accepted them)."""
        out = {}
        for row in self.rows:
            for name, info in (row.get("classifiers") or {}).items():
                models = out.setdefault((name, info.get("weights_sha256")), (info, []))[1]
                if row["model"] not in models:
                    models.append(row["model"])
        return out

    def table(self):
        """Markdown: the budget and versions, then metrics (rows) × models (columns), mean ± std over
        seeds, the best mean per row in bold, and chance levels where they exist."""
        from mibzoo.metrics import higher_is_better

        summary = self.summary()
        models = self.models
        with_chance = bool(self.chance)
        head = ["metric"] + models + (["chance"] if with_chance else [])
        n_seeds = len(self.budget.get("seeds") or [])
        lines = self.header() + ["", f"Mean ± std over {n_seeds} seed(s); ↑ higher is better, ↓ lower is better; "
                                     f"best in bold; chance: a model that ignores its input.", "",
                                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for metric in self.metric_names + ["train_seconds"]:
            stats = [summary[m][metric] for m in models]
            digits = 1 if metric == "train_seconds" else _digits(metric)
            cells = [_format(s, digits) for s in stats]
            # Best mean in bold, compared as printed: equal-looking numbers are all bold.
            shown = [round(s["mean"], digits) for s in stats if s["n"]]
            if metric != "train_seconds" and len(shown) > 1:
                best = max(shown) if higher_is_better(metric) else min(shown)
                cells = [f"**{c}**" if s["n"] and round(s["mean"], digits) == best else c
                         for c, s in zip(cells, stats)]
            arrow = "" if metric == "train_seconds" else (" ↑" if higher_is_better(metric) else " ↓")
            row = [f"{metric}{arrow}"] + cells
            if with_chance:
                row.append(f"{self.chance[metric]:.3f}" if metric in self.chance else "")
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def to_markdown(self, path=None):
        """The `table` as a string; also written to ``path`` if given."""
        text = self.table()
        if path is not None:
            write_text(path, text)
        return text

    def to_csv(self, path=None):
        """One row per (model, seed), one column per metric; returns the CSV text (and writes ``path``)."""
        buffer = io.StringIO()
        fields = ["model", "entry", "seed", "train_seconds", "eval_seconds", "final_loss"] + self.metric_names
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        for r in self.rows:
            writer.writerow({"model": r["model"], "entry": r["entry"], "seed": r["seed"],
                             "train_seconds": r["train_seconds"], "eval_seconds": r["eval_seconds"],
                             "final_loss": r.get("final_loss"), **r["metrics"]})
        if path is not None:
            write_text(path, buffer.getvalue())
        return buffer.getvalue()

    def to_dict(self):
        return {"rows": self.rows, "summary": self.summary(), "budget": self.budget, "versions": self.versions,
                "chance": self.chance, "wall_seconds": self.wall_seconds, "specs": self.specs}

    def to_json(self, path=None):
        """Everything but the samples as JSON; returns the text (and writes ``path``)."""
        text = json.dumps(self.to_dict(), indent=2, default=float) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_json(cls, path):
        """Reads a report written by `to_json` (without samples: `plot` then draws only metrics)."""
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return cls(data["rows"], data["budget"], data["versions"], data.get("chance"), data.get("wall_seconds"),
                   specs=data.get("specs"))

    # ----- figures ----------------------------------------------------------------------------
    def plot(self, out_dir):
        """Writes PNGs: ``metrics.png`` (bar charts, error bars = std over seeds) and, per model,
        ``samples_<model>_<A>-to-<B>.png`` (inputs beside generated samples) and
        ``prior_<model>.png`` (joint samples from the prior). Returns the paths."""
        from mibzoo import plots
        from mibzoo.metrics import higher_is_better

        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        if self.metric_names:
            path = out / "metrics.png"
            plots.metric_bars(self.summary(), self.metric_names, path, chance=self.chance,
                              title=f"{self.budget.get('dataset')}: mean ± std over seeds {self.budget.get('seeds')}",
                              higher_is_better=higher_is_better)
            paths.append(path)
        for model, samples in self.samples.items():
            for (source, target), (conditioning, generated) in samples.get("cross", {}).items():
                path = out / f"samples_{slug(model)}_{slug(source)}-to-{slug(target)}.png"
                plots.sample_grid(conditioning, generated, self.specs[source], self.specs[target],
                                  title=f"{model}: {source} -> {target}", path=path)
                paths.append(path)
            if samples.get("prior"):
                path = out / f"prior_{slug(model)}.png"
                plots.prior_grid(samples["prior"], self.specs, title=f"{model}: samples from the prior", path=path)
                paths.append(path)
        return paths

    def save(self, out_dir):
        """Writes ``results.md``, ``results.csv``, ``results.json`` and the PNGs into ``out_dir``."""
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.to_markdown(out / "results.md")
        self.to_csv(out / "results.csv")
        self.to_json(out / "results.json")
        return [out / "results.md", out / "results.csv", out / "results.json"] + self.plot(out)


def slug(text):
    """``text`` as a file-name part: letters, digits, ``-`` and ``_``, anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))
