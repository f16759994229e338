"""Benchmark: the vae-family multimodal zoo entries compared on MNIST-Label and MNIST-Plus-1.

Runs `mibzoo.compare` for jmvae, mvae, wyner_vae and mib_mm on each data set with one budget,
writes every report (markdown, CSV, JSON, PNGs) under ``--out/<dataset>/`` and a combined
``--out/summary.md`` (the tables, the command, the machine, the wall time, and the check of the
paper's Figure 3 claim: from an image of digit m, the MNIST-Plus-1 models generate an m + 1).

    python benchmarks/compare_mnist.py                      # the budget of docs/results.md
    python benchmarks/compare_mnist.py --epochs 10 --seeds 0 1 2 --limit 0   # a full budget

Real MNIST comes from `mibzoo.data`; the digit classifier is trained on first use
(`mibzoo.classifiers`, cached with its checksum and test accuracy).
"""
import argparse
import pathlib
import shlex
import sys
import time

MODELS = ["jmvae", "mvae", "wyner_vae", "mib_mm"]
DATASETS = ["mnist_label", "mnist_plus1"]
# Figure 3 (right): generate image_b (digit m + 1) from image_a (digit m).
FIGURE3_METRIC = "cross_coherence/image_a->image_b"


def machine():
    """A one-line description of the machine (CPU model, cores, memory, OS)."""
    from mibzoo.experiment import machine as describe
    head, _, system = describe().rpartition(", ")
    return f"{head}, no GPU, {system}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=20000, help="training examples (0: all 60,000)")
    parser.add_argument("--test-limit", type=int, default=2000, help="test examples (0: all 10,000)")
    parser.add_argument("--likelihood-limit", type=int, default=500)
    parser.add_argument("--probe-train-limit", type=int, default=10000)
    parser.add_argument("--iwae-k", type=int, default=50)
    # Each entry's own beta by default (as zoo_configs/ sets it); --beta overrides it for all four.
    parser.add_argument("--beta", type=float, default=None, help="beta of every entry (default: the entry's own)")
    parser.add_argument("--entry-beta", action="store_true", help="keep each entry's own beta (the default)")
    args = parser.parse_args(argv)

    # `from ... import`: once mibzoo/__init__ exposes the function, `mibzoo.compare` names it.
    from mibzoo.compare import compare
    from mibzoo.experiment import versions

    out = pathlib.Path(args.out)
    command = "python benchmarks/compare_mnist.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                       " " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    started = time.perf_counter()
    sections = []
    figure3 = []
    for dataset in args.datasets:
        report = compare(
            args.models, dataset, epochs=args.epochs, seeds=args.seeds, batch_size=args.batch_size,
            limit=args.limit or None, test_limit=args.test_limit or None, likelihood_limit=args.likelihood_limit,
            probe_train_limit=args.probe_train_limit, iwae_k=args.iwae_k,
            overrides=None if args.entry_beta or args.beta is None else {"beta": args.beta}, out=out / dataset)
        print(report.table(), flush=True)
        sections.append(f"### {dataset}\n\n{report.table()}")
        if FIGURE3_METRIC in report.metric_names:
            summary = report.summary()
            chance = report.chance.get(FIGURE3_METRIC, 0.1)
            for model in report.models:
                stat = summary[model][FIGURE3_METRIC]
                figure3.append(f"- `{model}`: {stat['mean']:.3f} ± {stat['std']:.3f} (chance {chance:.2f}; "
                               f"{stat['mean'] / chance:.1f}× chance)")
    wall = time.perf_counter() - started
    v = versions()
    text = [f"Command: `{command}`", "",
            f"Machine: {machine()}.", "",
            f"Versions: " + ", ".join(f"{k} {v[k]}" for k in v) + ".", "",
            f"Total wall time: {wall / 60:.1f} min (training and evaluation of {len(args.models)} models × "
            f"{len(args.seeds)} seeds × {len(args.datasets)} data sets).", ""]
    if figure3:
        text += ["Figure 3 check (MNIST-Plus-1, generate image_b of digit m + 1 from image_a of digit m; "
                 "coherence of the generated digit with m + 1, read by the mnist_digit classifier):", ""] + figure3 + [""]
    text += sections
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text[:8] + ([""] + figure3 if figure3 else [])))
    print(f"written: {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
