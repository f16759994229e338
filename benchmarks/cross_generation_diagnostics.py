"""Where does a run's cross-modal generation lose the class? Cheap diagnostics on a trained run.

    PYTHONPATH=$PWD python benchmarks/cross_generation_diagnostics.py RUN [RUN ...] [--examples 2000]

For every ordered pair source → target of a `mibzoo train` run whose target can be read as a class
(MNIST-Label, MNIST-Plus-1, ...), on the first ``--examples`` test pairs, it prints the cross
coherence of the target decoded (likelihood mean, read by the project's classifier or by argmax)

- ``sample``: from one z ~ q(z | source), the target's private latent (if any) from its prior —
  what `mibzoo evaluate`'s cross coherence scores;
- ``mean``: from the mean of q(z | source) (a gap to ``sample`` says q(z | source) is too wide);
- ``joint``: from one z ~ q(z | all modalities) (reconstruction through z; private latent from its
  prior);
- for a target with a private latent u: ``own u``, z ~ q(z | source) with u at the mean of
  q(u | target's own input), and ``own u, z of another pair``, the same with the z's of the batch
  shuffled. The second is chance (0.1) when the class comes from z alone; the share above
  chance is how often the private latent, not z, decides the class of the decoded target.

and the test accuracy of a logistic-regression probe (scikit-learn) from the mean of q(z | x_i),
and of q(u_i | x_i), to the class of x_i (fitted on 5,000 training examples).
Nothing is trained but the probes; everything else is read from the run's final model.
"""
import argparse
import json
import pathlib

import numpy as np
from sklearn.linear_model import LogisticRegression

from mibzoo import experiment, experiment_data
from mibzoo.metrics import _common
from mibzoo.metrics.spec import spec_for


def _gaussian(post):
    return _common.to_numpy(post["loc"]), _common.to_numpy(post["logvar"])


def diagnose(run_dir, examples=2000, probe_examples=5000, seed=0):
    record = json.loads((pathlib.Path(run_dir) / "run.json").read_text())
    model = experiment.load_run_model(run_dir)
    data = experiment_data.resolve(record["dataset"])
    test, train = data.arrays("test", examples), data.arrays("train", probe_examples)
    specs = _common.modality_specs(model)
    spec = spec_for(data.spec, specs)
    readers = _common.resolve_readers(specs, spec, None, list(specs))
    names = [n for n in specs if n in test]
    rng = np.random.default_rng(seed)

    def decode_read(name, z, u=None):
        du = model.private_sizes[name]
        if du and u is None:
            u = rng.standard_normal((len(z), du)).astype("float32")
        x = _common.to_numpy(model.forward_pass(None).decode(name, z.astype("float32"), u).mean())
        return _common.read_classes(x, specs[name], readers[name])

    def draw(loc, logvar):
        return loc + np.exp(0.5 * logvar) * rng.standard_normal(loc.shape)

    out = {"run": str(run_dir), "entry": record["entry"], "examples": len(test[names[0]]), "pairs": {},
           "probes": {}}
    joint_loc, joint_logvar = _gaussian(model.encode({n: test[n] for n in names}))
    joint = draw(joint_loc, joint_logvar)
    for source in names:
        post = model.encode({source: test[source]})
        loc, logvar = _gaussian(post)
        z = draw(loc, logvar)
        for target in readers:
            if target == source:
                continue
            labels = np.asarray(test[spec.labels[target].label_key]).reshape(-1)
            row = {"sample": np.mean(decode_read(target, z) == labels),
                   "mean": np.mean(decode_read(target, loc) == labels),
                   "joint": np.mean(decode_read(target, joint) == labels),
                   "sd q(z|source)": float(np.exp(0.5 * logvar).mean())}
            if model.private_sizes[target]:
                own = _common.to_numpy(model.encode({target: test[target]})["private"][target]["loc"])
                row["own u"] = np.mean(decode_read(target, z, own) == labels)
                row["own u, z of another pair"] = np.mean(
                    decode_read(target, z[rng.permutation(len(z))], own) == labels)
            out["pairs"][f"{source}->{target}"] = {k: round(float(v), 3) for k, v in row.items()}
    for name in names:
        if name not in spec.labels or specs[name]["kind"] == "categorical":
            continue
        key = spec.labels[name].label_key
        fitted, held = model.encode({name: train[name]}), model.encode({name: test[name]})
        parts = {"z": lambda p: _common.to_numpy(p["loc"])}
        if model.private_sizes[name]:
            parts["u"] = lambda p, n=name: _common.to_numpy(p["private"][n]["loc"])
        for part, read in parts.items():
            probe = LogisticRegression(max_iter=2000).fit(read(fitted), np.asarray(train[key]).reshape(-1))
            out["probes"][f"{part} of {name}"] = round(float(probe.score(read(held), np.asarray(test[key]).reshape(-1))), 3)
    out["sd q(z|all)"] = round(float(np.exp(0.5 * joint_logvar).mean()), 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--probe-examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(diagnose(run, args.examples, args.probe_examples, args.seed), indent=1))


if __name__ == "__main__":
    main()
