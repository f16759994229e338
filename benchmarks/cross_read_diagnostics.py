"""Cross generation read from a sample and from the mean of q(z | x_src), for any pair of modalities the
project's classifier reads (e.g. the two images of ``mnist_plus1``; `coherence_diagnostics.py` does the
image + label case with more detail).

    PYTHONPATH=$PWD python benchmarks/cross_read_diagnostics.py RUN [RUN ...] [--examples 2000]

For each ordered pair (src, dst) of read modalities, on the first ``--examples`` test pairs: the share of
dst's likelihood mean decoded from one z ~ q(z | src) (what `mibzoo evaluate`'s cross coherence scores)
and from the mean of q(z | src) that the classifier reads as dst's class; src reconstructed from that
mean; and the mean standard deviation of q(z | src). A gap between "sample" and "mean" says
q(z | src) is too wide; "mean" below the linear probe on the posterior mean (`mibzoo evaluate`'s
``probe/src``) says the decoder loses what the centre holds. Nothing is trained.
"""
import argparse

import numpy as np
from coherence_diagnostics import _read, load_run  # the benchmarks directory is on sys.path when run as a script

from mibzoo.metrics import _common


def diagnose(run_dir, examples=2000, seed=0):
    """``{"src->dst": {"sample", "mean", "src from mean", "sd"}}`` for every ordered pair of read modalities."""
    _, model, arrays, specs, spec, readers = load_run(run_dir, examples)
    names = [n for n in readers if n in arrays]
    rng = np.random.default_rng(seed)
    out = {}
    for src in names:
        enc = model.encode({src: arrays[src]})
        m, lv = _common.to_numpy(enc["loc"]), _common.to_numpy(enc["logvar"])
        z = m + np.exp(0.5 * lv) * rng.standard_normal(m.shape)
        own = np.asarray(arrays[spec.labels[src].label_key]).astype(int)
        for dst in names:
            if dst == src:
                continue
            want = np.asarray(arrays[spec.labels[dst].label_key]).astype(int)
            out[f"{src}->{dst}"] = {
                "sample": float(np.mean(_read(model, readers, dst, z, rng) == want)),
                "mean": float(np.mean(_read(model, readers, dst, m, rng) == want)),
                "src from mean": float(np.mean(_read(model, readers, src, m, rng) == own)),
                "sd": float(np.exp(0.5 * lv).mean()),
            }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    for run in args.runs:
        print(run)
        for pair, row in diagnose(run, args.examples).items():
            print(f"  {pair:<22} sample {row['sample']:.4f}  mean {row['mean']:.4f}  "
                  f"src from mean {row['src from mean']:.4f}  sd q(z|src) {row['sd']:.3f}")


if __name__ == "__main__":
    main()
