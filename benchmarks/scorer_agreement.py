"""How much a coherence figure depends on which copy of the digit classifier scores it.

`mibzoo.classifiers` trains its classifier from one recipe and seed, but the floating-point order of
the training sums depends on the CPU's instruction set and the thread count, so two machine kinds get
two classifiers (docs/results.md section 9). This script scores the same generations with several
cached copies and prints, per run and ordered pair of read modalities, the cross coherence each copy
gives and how often the copies agree on a generated sample; and the same for the first
``--examples`` real test images.

    PYTHONPATH=$PWD python benchmarks/scorer_agreement.py --classifier-dirs DIR1 DIR2 [...] RUN [RUN ...]

Each DIR is a classifier cache (what ``$MIBZOO_CLASSIFIER_DIR`` names) holding ``mnist_digit``. The
generations are one z ~ q(z | source) per test pair (private latents from their prior), as
`mibzoo evaluate` draws them, decoded once and read by every copy; nothing is trained.
"""
import argparse
import itertools
import json

import numpy as np
from coherence_diagnostics import _decode, load_run  # the benchmarks directory is on sys.path when run as a script
from cross_read_diagnostics import _gaussian

from mibzoo import classifiers
from mibzoo.metrics import _common


def _copies(dirs, name):
    copies = {}
    for directory in dirs:
        model = classifiers.load_cached(name, directory)
        if model is None:
            raise SystemExit(f"scorer_agreement: {directory} holds no valid {name!r} classifier")
        copies[classifiers.record(name, directory)["weights_sha256"][:8]] = model
    return copies


def score(run_dir, dirs, examples=2000, seed=0):
    """``{"real": {...}, "pairs": {"src->dst": {"coherence": {copy: share}, "agreement": share}}}``."""
    record, model, arrays, specs, spec, readers = load_run(run_dir, examples)
    names = [n for n in readers if n in arrays]
    rng = np.random.default_rng(seed)
    out = {"run": str(run_dir), "entry": record["entry"], "examples": examples, "pairs": {}}
    copies_by_name = {}
    for src in names:
        m, lv = _gaussian(model.encode({src: arrays[src]}))
        z = m + np.exp(0.5 * lv) * rng.standard_normal(m.shape)
        for dst in names:
            if dst == src:
                continue
            reference = spec.labels[dst].classifier
            if reference is None:
                continue  # a categorical is read by its argmax, the same whatever the classifier
            if reference not in copies_by_name:  # load each classifier's copies once, not once per pair
                copies_by_name[reference] = _copies(dirs, reference)
            copies = copies_by_name[reference]
            generated = _decode(model, dst, z, rng)
            reads = {k: _common.read_classes(generated, specs[dst], c) for k, c in copies.items()}
            want = np.asarray(arrays[spec.labels[dst].label_key]).astype(int)
            out["pairs"][f"{src}->{dst}"] = {
                "coherence": {k: float(np.mean(r == want)) for k, r in reads.items()},
                "agreement": _agreement(reads)}
    for reference, copies in copies_by_name.items():
        name = next(n for n in names if spec.labels[n].classifier == reference)
        reads = {k: _common.read_classes(arrays[name], specs[name], c) for k, c in copies.items()}
        want = np.asarray(arrays[spec.labels[name].label_key]).astype(int)
        out["real"] = {"modality": name, "accuracy": {k: float(np.mean(r == want)) for k, r in reads.items()},
                       "agreement": _agreement(reads)}
    return out


def _agreement(reads):
    """The smallest share of samples on which two copies read the same class, over all pairs of copies."""
    return min((float(np.mean(a == b)) for a, b in itertools.combinations(reads.values(), 2)), default=1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--classifier-dirs", nargs="+", required=True)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.classifier_dirs) < 2:
        parser.error("--classifier-dirs: give at least two classifier caches to compare")
    for run in args.runs:
        result = score(run, args.classifier_dirs, args.examples, args.seed)
        print(json.dumps(result))
        for pair, row in result["pairs"].items():
            values = " / ".join(f"{k} {v:.4f}" for k, v in row["coherence"].items())
            spread = max(row["coherence"].values()) - min(row["coherence"].values())
            print(f"{result['entry']} {pair}: coherence {values} (spread {spread:.4f}); agreement {row['agreement']:.4f}")
        real = result.get("real")
        if real is None:
            continue
        print(f"real {real['modality']}: accuracy " + " / ".join(f"{k} {v:.4f}" for k, v in real["accuracy"].items())
              + f"; agreement {real['agreement']:.4f}")


if __name__ == "__main__":
    main()
