"""Benchmark: the multimodal zoo entries compared on MNIST-Label and MNIST-Plus-1, and the structure
that `mib_mm` learns on MNIST-Label-Unrelated; regenerates docs/results.md.

Runs `mibzoo.compare` for jmvae, mvae, wyner_vae, mib_mm, mvtcae, dmvae, mmvae and mopoe at their zoo defaults (no overrides)
on each data set with one budget, and `mib_mm` alone on `mnist_label_unrelated` over more seeds.
Seeds are the outer loop: after every (seed, data set) the reports so far are written under
``--out/<dataset>/`` (markdown, CSV, JSON, the Figure 3 sample grids of every entry) and
``--docs`` is regenerated, so an interrupted run still leaves every finished seed on disk, and
``--resume`` later runs only what is missing there: the (model, seed) pairs never measured and those
whose zoo config changed since (their rows are replaced; a changed budget is refused), so the seeds of
one column are always one model.

    python benchmarks/compare_mnist.py                                  # the full budget of docs/results.md
    python benchmarks/compare_mnist.py --limit 20000 --epochs 2 --seeds 0 --structure-seeds 0 \\
        --out /tmp/bench --docs /tmp/bench/results.md                   # a quick look
    python benchmarks/compare_mnist.py --runs ~/mibzoo-compare-runs     # keep run directories (resumable)
    python benchmarks/compare_mnist.py --resume --runs ~/mibzoo-compare-runs   # continue an interrupted run

Real MNIST comes from `mibzoo.data`; the digit classifier is trained on first use
(`mibzoo.classifiers`, cached with its checksum and test accuracy).
"""
import argparse
import functools
import os
import pathlib
import shlex
import sys
import time

MODELS = ["jmvae", "mvae", "wyner_vae", "mib_mm", "mvtcae", "dmvae", "mmvae", "mopoe"]
DATASETS = ["mnist_label", "mnist_plus1"]
STRUCTURE_DATASET = "mnist_label_unrelated"
# Figure 3 (right): generate image_b (digit m + 1) from image_a (digit m).
FIGURE3_METRIC = "cross_coherence/image_a->image_b"
# The targets of issue 10: (dataset, metric, models, threshold), mean over seeds >= threshold.
TARGETS = [
    ("mnist_label", "cross_coherence/image->label", ["jmvae", "mvae", "wyner_vae", "mib_mm"], 0.97),
    ("mnist_label", "cross_coherence/label->image", ["jmvae", "mvae", "wyner_vae", "mib_mm"], 0.95),
    ("mnist_label", "joint_coherence", ["jmvae", "mvae", "wyner_vae", "mib_mm"], 0.80),
    ("mnist_plus1", "cross_coherence/image_a->image_b", MODELS, 0.90),
    ("mnist_plus1", "cross_coherence/image_b->image_a", MODELS, 0.90),
]
STRUCTURE_LOW, STRUCTURE_HIGH = 0.1, 0.9


def machine():
    """A one-line description of the machine (CPU model, cores, memory, OS)."""
    from mibzoo.run_records import machine as describe
    head, _, system = describe().rpartition(", ")
    return f"{head}, no GPU, {system}"


# Budget fields that must agree before rows of two invocations share one table (`--resume`).
SAME_BUDGET = ["dataset", "epochs", "batch_size", "train_examples", "test_examples", "likelihood_examples",
               "probe_train_examples", "iwae_k", "prior_samples", "optimizer", "metrics", "overrides"]


def merge(previous, report, models, first_seed, wall, other_classifier=False):
    """One `Report` of ``models`` over the rows of ``previous`` and ``report``: rows in model order, every
    seed with a row as its seeds (`write_docs` names the (model, seed) pairs still missing), samples (for
    the PNGs) from ``first_seed`` only.

    With ``other_classifier``, rows of ``report`` scored by another copy of a coherence classifier than
    the rows of ``previous`` are kept, each with its own ``"classifiers"`` record, and the table's header
    names their columns (`Report.header`); all seeds of one model must still share one copy.

    Raises:
        SystemExit: ``previous`` (e.g. read back by ``--resume``) was measured with another budget, or a
            model's config (``config_sha256`` of its rows) differs between rows: its seeds would not be one
            model's; or its rows were scored by another classifier (without ``other_classifier``, or
            within one model).
    """
    from mibzoo.compare import Report

    first = previous or report
    if previous is not None:
        changed = [k for k in SAME_BUDGET if previous.budget.get(k) != report.budget.get(k)]
        if changed:
            raise SystemExit(f"compare_mnist: cannot add seeds to the {report.budget.get('dataset')} results on disk: "
                             f"their budget differs in {changed} ({[previous.budget.get(k) for k in changed]} "
                             f"against {[report.budget.get(k) for k in changed]}); rerun without --resume")
    versions = first.versions
    if previous is not None:
        scorers, other = same_scorers(previous, report, other_classifier)
        versions = dict(previous.versions, classifiers=scorers)
        if other:
            report.rows = [dict(r, classifiers=other) for r in report.rows]
    rows = (previous.rows if previous is not None else []) + report.rows
    digests = {}
    for row in rows:
        digests.setdefault(row["model"], set()).add(row.get("config_sha256"))
    mixed = sorted(m for m, d in digests.items() if len(d) > 1 or None in d)
    if mixed:
        raise SystemExit(f"compare_mnist: the zoo config of {mixed} differs between rows (or rows predate config "
                         "digests), so their seeds would average different models; rerun without --resume")
    copies = {}
    for row in rows:
        copies.setdefault(row["model"], set()).add(
            tuple(sorted((n, i.get("weights_sha256")) for n, i in (row.get("classifiers") or {}).items())))
    mixed = sorted(m for m, c in copies.items() if len(c) > 1)
    if mixed:
        raise SystemExit(f"compare_mnist: the seeds of {mixed} would be scored by different copies of the coherence "
                         "classifier, so their mean would mix two measurements; measure all of a model's seeds "
                         "with one copy (a changed zoo config re-measures them all)")
    rows, versions = one_copy_for_all(rows, versions)
    order = {m: k for k, m in enumerate(models)}
    rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["seed"]))
    seeds = sorted({r["seed"] for r in rows})
    samples = dict(previous.samples if previous is not None else {})
    if report.budget.get("seeds") == [first_seed]:
        samples.update(report.samples)
    return Report(rows, dict(first.budget, seeds=seeds), versions, first.chance or report.chance, wall,
                  samples, first.specs or report.specs)


def one_copy_for_all(rows, versions):
    """``(rows, versions)`` with the classifiers' record of every row in ``versions`` and the rows unmarked
    when all rows carry the same ``"classifiers"`` mark (`merge` with ``other_classifier``): once every
    column has been measured again by this machine's copy, that copy is the table's, and the header
    should not name the copy that no row was read by any more. Otherwise unchanged."""
    marks = [r.get("classifiers") for r in rows]
    if not rows or not marks[0] or any(m != marks[0] for m in marks):
        return rows, versions
    return [{k: v for k, v in r.items() if k != "classifiers"} for r in rows], dict(versions, classifiers=marks[0])


LEGACY_MATCH = ("matched_by", "earlier_sha256")  # how rows from before weights digests were matched


def same_scorers(previous, report, accept_other=False):
    """The coherence classifiers' records of rows ``previous`` and ``report`` share, after checking that they
    are one classifier each: rows read by two classifiers would not be one measurement (a classifier is
    retrained on a machine whose cache lacks it; `mibzoo.classifiers`). Records written before classifiers
    had a ``weights_sha256`` can only be matched by their test accuracy; that is accepted, and said.

    Returns:
        ``(records, other)``: the table's records, and ``{name: record}`` of ``report``'s classifiers that
        differ from the table's (empty unless ``accept_other``; those rows keep their own record).

    Raises:
        SystemExit: the rows were scored by different classifiers and ``accept_other`` is false.
    """
    from mibzoo import classifiers

    before = previous.versions.get("classifiers") or {}
    now = report.versions.get("classifiers") or {}
    merged, other = dict(before), {}
    for name, record in now.items():
        old = before.get(name)
        if old is None or classifiers.same_classifier(old, record):
            # The newer record (it may add the weights digest), keeping how earlier rows were matched.
            merged[name] = dict(record, **{k: old[k] for k in LEGACY_MATCH if k in old}) if old else record
            continue
        legacy = not (old.get("weights_sha256") and record.get("weights_sha256"))
        if legacy and old.get("test_accuracy") is not None and old.get("test_accuracy") == record.get("test_accuracy"):
            print(f"compare_mnist: classifier {name!r}: the rows on disk name a file no longer here "
                  f"(sha256 {str(old.get('sha256'))[:16]}..., no weights digest); taken as this cache's "
                  f"(weights {str(record.get('weights_sha256'))[:16]}...) by its equal test accuracy "
                  f"{record.get('test_accuracy')}", flush=True)
            merged[name] = dict(record, matched_by="test_accuracy", earlier_sha256=old.get("sha256"))
            continue
        if accept_other:
            print(f"compare_mnist: classifier {name!r}: the new rows are scored by another copy (test accuracy "
                  f"{record.get('test_accuracy')}, weights {str(record.get('weights_sha256'))[:16]}...) than the "
                  f"rows on disk ({old.get('test_accuracy')}); kept with their own record (--other-classifier)",
                  flush=True)
            other[name] = record
            continue
        raise SystemExit(f"compare_mnist: cannot add rows to the {report.budget.get('dataset')} results on disk: "
                         f"they were scored by another {name!r} classifier (test accuracy {old.get('test_accuracy')}, "
                         f"sha256 {str(old.get('sha256'))[:16]}...) than this machine's cache holds (test accuracy "
                         f"{record.get('test_accuracy')}, weights {str(record.get('weights_sha256'))[:16]}...). "
                         "Put the classifier that scored them in the cache ($MIBZOO_CLASSIFIER_DIR), "
                         "keep the new rows marked as another copy's (--other-classifier), or rerun without --resume")
    return merged, other


@functools.lru_cache(maxsize=None)
def zoo_digest(model, dataset):
    """`mibzoo.compare.entry_digest` of ``model`` on ``dataset``, computed once per process: it builds
    the model to read its config (seconds), and an invocation needs each digest for the rows on disk
    and again for every seed's run directory."""
    from mibzoo import compare

    return compare.entry_digest(model, dataset)


def current_rows(report, models, dataset, remeasure=()):
    """``report`` without the rows whose model config differs from what the zoo builds now (a default
    changed since they were measured): `--resume` measures those (model, seed) pairs again. Pairs in
    ``remeasure`` (``(model, seed)``, from ``--remeasure``) are dropped although current, so that they are
    measured again too (their run directories under ``--runs`` are reused, so only what is missing is
    trained, and this machine's classifier reads them). None when no row is current."""
    from mibzoo.compare import Report

    digests = {m: zoo_digest(m, dataset) for m in models}
    kept = [r for r in report.rows if r["model"] in digests and r.get("config_sha256") == digests[r["model"]]]
    asked = sorted({(r["model"], r["seed"]) for r in kept} & set(remeasure))
    kept = [r for r in kept if (r["model"], r["seed"]) not in asked]
    if asked:
        print(f"resume: {dataset}: measured again (--remeasure): {asked}", flush=True)
    stale = sorted({(r["model"], r["seed"]) for r in report.rows} - {(r["model"], r["seed"]) for r in kept} - set(asked))
    if stale:
        print(f"resume: {dataset}: measured again (their zoo config changed, or other models): {stale}", flush=True)
    if not kept:
        return None  # nothing on disk is still current: the budget of those rows does not matter either
    return Report(kept, report.budget, report.versions, report.chance, report.wall_seconds, specs=report.specs)


def resumed(out, datasets):
    """The reports under ``out`` of an earlier invocation, per data set."""
    from mibzoo.compare import Report

    found = {}
    for dataset in datasets:
        path = pathlib.Path(out) / dataset / "results.json"
        if path.exists():
            found[dataset] = Report.from_json(path)
    return found


def missing_models(report, models, seed):
    """The models of ``models`` without a row for ``seed`` in ``report``."""
    have = {r["model"] for r in report.rows if r["seed"] == seed} if report is not None else set()
    return [m for m in models if m not in have]


def _mean(report, model, metric):
    stat = report.summary().get(model, {}).get(metric)
    return None if stat is None or not stat["n"] else stat


def targets_table(reports):
    lines = ["| data set | metric | target | " + " | ".join(f"`{m}`" for m in MODELS) + " |",
             "|---|---|---|" + "---|" * len(MODELS)]
    for dataset, metric, models, threshold in TARGETS:
        report = reports.get(dataset)
        cells = []
        for model in MODELS:
            stat = _mean(report, model, metric) if report and model in models else None
            cells.append("—" if stat is None else f"{stat['mean']:.3f} {'✅' if stat['mean'] >= threshold else '❌'}")
        lines.append(f"| {dataset} | {metric} | ≥ {threshold:.2f} | " + " | ".join(cells) + " |")
    report = reports.get("mnist_label")
    if report:
        cells = []
        for metric in [m for m in report.metric_names if m.startswith(("cross_coherence", "joint_coherence"))] + \
                ["log_likelihood/joint"]:
            ours, base = _mean(report, "mib_mm", metric), _mean(report, "jmvae", metric)
            if ours and base:
                cells.append(f"{metric}: {ours['mean']:.3f} vs {base['mean']:.3f} "
                             f"{'✅' if ours['mean'] >= base['mean'] else '❌'}")
        lines += ["", "`mib_mm` ≥ `jmvae` on MNIST-Label: " + "; ".join(cells) + "."]
    return "\n".join(lines)


def structure_section(report):
    """Per seed, the learned M^q and M^p of `mib_mm` on MNIST-Label-Unrelated."""
    keys = [k for k in report.metric_names if k.startswith("structure/")]
    if not keys:
        return "No learned structure was reported."
    lines = ["| seed | " + " | ".join(k[len("structure/"):] for k in keys) + " |", "|---|" + "---|" * len(keys)]
    ok = True
    for row in report.rows:
        cells = []
        for key in keys:
            value = row["metrics"].get(key)
            independent = "/unrelated/" in key
            good = value is not None and (value <= STRUCTURE_LOW if independent else value >= STRUCTURE_HIGH)
            ok &= good
            cells.append("—" if value is None else f"{value:.3f}{'' if good else ' ❌'}")
        lines.append(f"| {row['seed']} | " + " | ".join(cells) + " |")
    lines += ["", f"Target: the unrelated image's edges ≤ {STRUCTURE_LOW}, the dependent ones ≥ {STRUCTURE_HIGH}, "
                  f"on every seed: **{'met' if ok else 'missed'}** over {len(report.rows)} seed(s)."]
    return "\n".join(lines)


def write_docs(path, reports, structure, command, wall, out, planned=None, planned_models=None):
    rel = os.path.relpath(out, pathlib.Path(path).parent)
    status = []
    for name, report in list(reports.items()) + ([(STRUCTURE_DATASET, structure)] if structure is not None else []):
        want = (planned or {}).get(name)
        if not want:
            continue
        models = (planned_models or {}).get(name, report.models)
        missing = [f"{m} seed {s}" for s in want for m in missing_models(report, models, s)]
        if missing:
            status.append(f"`{name}`: " + ", ".join(missing))
    if status:
        status = ["**Interrupted run**: these (model, seed) runs did not finish within the session and are "
                  "missing (not failed); `python benchmarks/compare_mnist.py --resume` measures them: "
                  + "; ".join(status) + ".", ""]
    text = ["# Results: the multimodal zoo entries on MNIST-Label and MNIST-Plus-1", "",
            "Generated by [`benchmarks/compare_mnist.py`](../benchmarks/compare_mnist.py) (do not edit by hand): "
            "every entry at its zoo defaults (`mibzoo.load(NAME)`, no overrides), trained and evaluated by "
            "`mibzoo.compare` on the same data, splits, seeds, epochs, batch size and optimizer. The raw "
            f"per-seed rows are in `{rel}/<dataset>/results.csv` and `results.json`. Why the defaults are "
            "what they are, and what `mib_mm` needed: [mib_mm.md](mib_mm.md).", "",
            f"Command: `{command}`", "", f"Machine: {machine()} (shared with other jobs while it ran).", "",
            f"Wall time so far: {wall / 60:.1f} min.", ""] + status + [
            "## Targets (issue 10)", "", targets_table(reports), ""]
    for dataset, report in reports.items():
        title = {"mnist_label": "MNIST-Label (`mnist_label`: image + digit label)",
                 "mnist_plus1": "MNIST-Plus-1 (`mnist_plus1`: image of m, image of m + 1)"}.get(dataset, dataset)
        text += [f"## {title}", "", report.table(), f"![metrics]({rel}/{dataset}/metrics.png)", ""]
        if dataset == "mnist_plus1":
            text += ["### Figure 3 (right): from a digit m, generate a digit m + 1", "",
                     "Inputs (left, `image_a`, digit m) and four samples of `image_b` generated from each, first seed:", ""]
            for model in report.models:
                text += [f"`{model}`:", "", f"![{model} image_a -> image_b]({rel}/{dataset}/samples_{model}_image_a-to-image_b.png)", ""]
        else:
            text += ["Label → image samples (first seed), every entry:", ""]
            for model in report.models:
                text += [f"`{model}`:", "", f"![{model} label -> image]({rel}/{dataset}/samples_{model}_label-to-image.png)", ""]
    if structure is not None:
        text += ["## Structure learning on real data (`mnist_label_unrelated`, `mib_mm`)", "",
                 "MNIST-Label plus a third modality, `unrelated`: an MNIST image drawn independently of the pair. "
                 "`mib_mm` learns M^q (which modality informs z) and M^p (which modality z generates); the edge "
                 "probabilities sigmoid(ρ) after training (`structure/<inference|generation>/<modality>/z`, "
                 "reported by `mibzoo evaluate`):", "", structure_section(structure), "", structure.table(), ""]
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text("\n".join(text) + "\n" + kept_section(path), encoding="utf-8")


# Sections of docs/results.md measured by other commands (the single-modality entries) start at this
# line; regenerating the file keeps them.
KEPT_MARKER = "<!-- kept by compare_mnist.py: sections below are measured by other commands -->"


def kept_section(path):
    """The part of an existing docs file from `KEPT_MARKER` on ("" if there is none)."""
    try:
        old = pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    start = old.find(KEPT_MARKER)
    return "" if start < 0 else "\n" + old[start:]


# Options that choose which (model, seed) pairs an invocation measures, and options that only continue
# a run: neither changes the budget, so the command that reproduces the tables leaves them out.
SELECTION_OPTIONS = ("--datasets", "--models", "--seeds", "--structure-seeds")
CONTINUATION_OPTIONS = ("--resume", "--runs", "--other-classifier", "--remeasure")
FLAGS = ("--resume", "--other-classifier")  # options without a value


def reproducing_command(argv):
    """``python benchmarks/compare_mnist.py`` with the budget's options of ``argv`` (the selection and
    continuation options and their values dropped: the docs list what of the full plan is missing)."""
    given, dropping = [], False
    for a in argv:
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            dropping = name in SELECTION_OPTIONS + CONTINUATION_OPTIONS and "=" not in a and name not in FLAGS
            if name in SELECTION_OPTIONS + CONTINUATION_OPTIONS:
                continue
        elif dropping:
            continue
        given.append(a)
    return "python benchmarks/compare_mnist.py" + "".join(" " + shlex.quote(a) for a in given)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--structure-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                        help=f"seeds of mib_mm on {STRUCTURE_DATASET} (none: skip)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="training examples (0: all 60,000)")
    parser.add_argument("--test-limit", type=int, default=2000, help="test examples (0: all 10,000)")
    parser.add_argument("--likelihood-limit", type=int, default=500)
    parser.add_argument("--probe-train-limit", type=int, default=10000)
    parser.add_argument("--iwae-k", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--docs", default="docs/results.md")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows in --out/<dataset>/results.json whose model config is still the zoo's, "
                             "and measure only the missing (model, seed) pairs (refused if the budget changed)")
    parser.add_argument("--runs", default=None,
                        help="keep every (model, seed) run directory under RUNS/<dataset>/runs (checkpoints, "
                             "metrics), so that an interrupted invocation resumes inside a model; default: a "
                             "temporary directory")
    parser.add_argument("--other-classifier", action="store_true",
                        help="with --resume, keep rows scored by another copy of a coherence classifier than the "
                             "rows on disk (another machine kind trains another copy; mibzoo.classifiers), marked "
                             "per model column in the tables; a model's seeds must share one copy")
    parser.add_argument("--remeasure", nargs="+", default=[], metavar="MODEL",
                        help="with --resume, measure these models again for the seeds this invocation measures, "
                             "although their rows on disk are current (e.g. so that this machine's copy of the "
                             "coherence classifier reads every seed; with --other-classifier)")
    parser.add_argument("--docs-only", action="store_true",
                        help="rewrite --docs from the results.json files under --out, without training")
    args = parser.parse_args(argv)
    if args.remeasure and not args.resume:
        parser.error("--remeasure needs --resume (without it every pair is measured anyway)")
    unknown = sorted(set(args.remeasure) - set(args.models))
    if unknown:
        parser.error(f"--remeasure {unknown}: not among --models {args.models}, so they would be dropped and not "
                     "measured again")
    # The docs show every data set with results under --out and list what is missing against the full
    # plan (the defaults plus whatever this invocation adds): the selection options only choose which of
    # its (model, seed) pairs this invocation measures.
    defaults = parser.parse_args([])
    planned = {d: sorted(set(defaults.seeds) | set(args.seeds)) for d in DATASETS + args.datasets}
    planned_models = {d: list(dict.fromkeys(defaults.models + args.models)) for d in planned}
    planned_models[STRUCTURE_DATASET] = ["mib_mm"]
    planned[STRUCTURE_DATASET] = sorted(set(defaults.structure_seeds) | set(args.structure_seeds))

    from mibzoo.compare import compare

    out = pathlib.Path(args.out)
    if args.docs_only:
        # Only rows of the zoo's current configs, as a run would keep them (rows of an older config, or
        # without a config digest, would show another model under the entry's name).
        found = {d: current_rows(r, planned_models[d], d)
                 for d, r in resumed(out, DATASETS + args.datasets + [STRUCTURE_DATASET]).items()}
        found = {d: r for d, r in found.items() if r is not None}
        structure = found.pop(STRUCTURE_DATASET, None)
        wall = max(r.wall_seconds or 0.0 for r in list(found.values()) + ([structure] if structure else []))  # cumulative
        first = next(iter(found.values()), structure)
        write_docs(args.docs, found, structure, first.budget.get("command") or "python benchmarks/compare_mnist.py",
                   wall, out, planned, planned_models)
        print(f"written: {args.docs}")
        return 0
    command = reproducing_command(sys.argv[1:] if argv is None else argv)
    budget = dict(epochs=args.epochs, batch_size=args.batch_size, limit=args.limit or None,
                  test_limit=args.test_limit or None, likelihood_limit=args.likelihood_limit,
                  probe_train_limit=args.probe_train_limit, iwae_k=args.iwae_k, progress=False)
    started = time.perf_counter()
    reports, structure = {}, None
    if args.resume:
        reports = resumed(out, args.datasets + [STRUCTURE_DATASET])
        earlier = max((r.wall_seconds or 0.0 for r in reports.values()), default=0.0)
        # Rows of every planned model are kept (not only of --models): the files on disk lose nothing.
        again = {d: {(m, s) for m in args.remeasure
                     for s in (args.structure_seeds if d == STRUCTURE_DATASET else args.seeds)} for d in reports}
        reports = {d: current_rows(r, planned_models[d], d, again[d]) for d, r in reports.items()}
        reports = {d: r for d, r in reports.items() if r is not None}
        structure = reports.pop(STRUCTURE_DATASET, None)
        print("resuming: current rows on disk " + str({d: len(r.rows) for d, r in reports.items()}), flush=True)
        if reports or structure is not None:
            started -= earlier  # wall time is cumulative over invocations

    def run(dataset, models, seed, previous, first_seed):
        # One model at a time: every finished (model, seed) is saved (and in the docs) before the next
        # starts, and with --runs a killed invocation resumes inside the model it was training.
        merged = previous
        for model in missing_models(previous, models, seed):
            runs = None
            if args.runs is not None:  # a run directory is reused only by the config it was trained with
                runs = pathlib.Path(args.runs) / dataset / zoo_digest(model, dataset)[:16]
            report = compare([model], dataset, seeds=[seed], out=runs, **budget)
            merged = merge(merged, report, models, first_seed, time.perf_counter() - started, args.other_classifier)
            merged.save(out / dataset)
            if dataset == STRUCTURE_DATASET:
                print(structure_section(merged), flush=True)
                write_docs(args.docs, reports, merged, command, time.perf_counter() - started, out, planned,
                           planned_models)
            else:
                print(merged.table(), flush=True)
                write_docs(args.docs, {**reports, dataset: merged}, structure, command,
                           time.perf_counter() - started, out, planned, planned_models)
        return merged

    # Data sets this invocation does not train stay in the docs with their current rows on disk.
    for dataset, report in resumed(out, [d for d in DATASETS if d not in args.datasets and d not in reports]).items():
        report = current_rows(report, planned_models[dataset], dataset)
        if report is not None:
            reports[dataset] = report
    reports = {d: reports[d] for d in DATASETS + args.datasets if d in reports}  # the docs' order

    rounds = max(len(args.seeds), 1)
    for k, seed in enumerate(args.seeds):
        for dataset in args.datasets:
            reports[dataset] = run(dataset, args.models, seed, reports.get(dataset), args.seeds[0])
        # The structure seeds are spread over the rounds so that every round adds some.
        for s in args.structure_seeds[k::rounds]:
            structure = run(STRUCTURE_DATASET, ["mib_mm"], s, structure, args.structure_seeds[0])
    print(f"written: {args.docs} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
