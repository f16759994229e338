"""Cross generation read from a sample and from the mean of q(z | x_src), for any pair of modalities the
project's classifier reads (e.g. the two images of ``mnist_plus1``; `coherence_diagnostics.py` does the
image + label case with more detail).

    PYTHONPATH=$PWD python benchmarks/cross_read_diagnostics.py RUN [RUN ...] [--examples 2000]

For each ordered pair (src, dst) of read modalities, on the first ``--examples`` test pairs: the share of
dst's likelihood mean decoded from one z ~ q(z | src) (what `mibzoo evaluate`'s cross coherence scores)
and from the mean of q(z | src) that the classifier reads as dst's class; src reconstructed from that
mean; and the mean standard deviation of q(z | src). A gap between "sample" and "mean" says
q(z | src) is too wide; "mean" below the linear probe on the posterior mean (`mibzoo evaluate`'s
``probe/src``) says the decoder loses what the centre holds. Private latents are drawn from their prior
in these reads, as generation draws them.

Also, from a second random stream (so the reads above do not depend on it):

- ``joint``: dst decoded from one z ~ q(z | all modalities) (reconstruction through z);
- for a dst with a private latent u: ``own u``, z ~ q(z | src) with u at the mean of q(u | dst's own
  input), and ``own u, z of another pair``, the same with the batch's z's shuffled. The second is
  chance (0.1) when the class comes from z alone; the share above chance is how often the private
  latent, not z, decides the class of the decoded dst;
- the test accuracy of a logistic-regression probe (scikit-learn, fitted on ``--probe-examples``
  training examples) from the mean of q(z | x_i), and of q(u_i | x_i), to the class of x_i.

Nothing is trained but the probes.
"""
import argparse
import json

import numpy as np
from coherence_diagnostics import _read, load_run  # the benchmarks directory is on sys.path when run as a script
from sklearn.linear_model import LogisticRegression

from mibzoo import experiment_data
from mibzoo.metrics import _common


def _gaussian(post):
    return _common.to_numpy(post["loc"]), _common.to_numpy(post["logvar"])


def diagnose(run_dir, examples=2000, seed=0, probe_examples=5000):
    """``{"pairs": {"src->dst": {...}}, "probes": {"z of x_i": accuracy, ...}, "sd q(z|all)": float}``."""
    record, model, arrays, specs, spec, readers = load_run(run_dir, examples)
    names = [n for n in readers if n in arrays]
    rng, extra = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    joint_loc, joint_logvar = _gaussian(model.encode({n: arrays[n] for n in specs if n in arrays}))
    joint = joint_loc + np.exp(0.5 * joint_logvar) * extra.standard_normal(joint_loc.shape)
    pairs = {}
    for src in names:
        m, lv = _gaussian(model.encode({src: arrays[src]}))
        z = m + np.exp(0.5 * lv) * rng.standard_normal(m.shape)
        own = np.asarray(arrays[spec.labels[src].label_key]).astype(int)
        for dst in names:
            if dst == src:
                continue
            want = np.asarray(arrays[spec.labels[dst].label_key]).astype(int)
            row = pairs[f"{src}->{dst}"] = {
                "sample": float(np.mean(_read(model, readers, dst, z, rng) == want)),
                "mean": float(np.mean(_read(model, readers, dst, m, rng) == want)),
                "src from mean": float(np.mean(_read(model, readers, src, m, rng) == own)),
                "sd": float(np.exp(0.5 * lv).mean()),
            }
            row["joint"] = float(np.mean(_read(model, readers, dst, joint, extra) == want))
            if model.private_sizes[dst]:
                u = _common.to_numpy(model.encode({dst: arrays[dst]})["private"][dst]["loc"])
                row["own u"] = float(np.mean(_read(model, readers, dst, z, extra, u) == want))
                row["own u, z of another pair"] = float(np.mean(
                    _read(model, readers, dst, z[extra.permutation(len(z))], extra, u) == want))
    train = experiment_data.resolve(record["dataset"]).arrays("train", probe_examples)
    probes = {}
    for name in names:
        if specs[name]["kind"] == "categorical":
            continue
        key = spec.labels[name].label_key
        fitted, held = model.encode({name: train[name]}), model.encode({name: arrays[name]})
        parts = {"z": lambda p: _common.to_numpy(p["loc"])}
        if model.private_sizes[name]:
            parts["u"] = lambda p, n=name: _common.to_numpy(p["private"][n]["loc"])
        for part, read in parts.items():
            probe = LogisticRegression(max_iter=2000).fit(read(fitted), np.asarray(train[key]).reshape(-1))
            probes[f"{part} of {name}"] = float(probe.score(read(held), np.asarray(arrays[key]).reshape(-1)))
    return {"pairs": pairs, "probes": probes, "sd q(z|all)": float(np.exp(0.5 * joint_logvar).mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--probe-examples", type=int, default=5000)
    args = parser.parse_args()
    for run in args.runs:
        out = diagnose(run, args.examples, probe_examples=args.probe_examples)
        print(run)
        for pair, row in out["pairs"].items():
            print(f"  {pair:<22} sample {row['sample']:.4f}  mean {row['mean']:.4f}  "
                  f"src from mean {row['src from mean']:.4f}  sd q(z|src) {row['sd']:.3f}")
            print("  " + " " * 22 + "  ".join(f"{k} {v:.4f}" for k, v in row.items()
                                             if k not in ("sample", "mean", "src from mean", "sd")))
        print("  probes: " + json.dumps({k: round(v, 3) for k, v in out["probes"].items()}),
              f" sd q(z|all) {out['sd q(z|all)']:.3f}")


if __name__ == "__main__":
    main()
