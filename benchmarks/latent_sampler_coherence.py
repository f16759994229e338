"""Joint coherence of trained runs with z from the prior and from a Gaussian mixture fitted to the
aggregate posterior (ex-post density estimation, `mibzoo.latent_samplers`; issue 10).

    PYTHONPATH=$PWD python benchmarks/latent_sampler_coherence.py RUN [RUN ...] [--components 10]
        [--covariance full] [--fit-on sample] [--prior-samples 1000] [--seed 0]

For each `mibzoo train` run directory it computes, with the code of `mibzoo evaluate`
(`mibzoo.metrics.evaluate`, groups ``joint_coherence`` and ``sample_quality``, the same
``prior_samples`` and seed):

- ``prior``: z ~ N(0, I) (the run's model with ``latent_sampler`` "prior");
- ``gmm``: z from the mixture: the run's own fitted sampler when it has one with these settings,
  else one fitted here on the run's training split (`fit_latent_sampler`, seeded with ``--seed``),
  on a copy of the model with the same weights (`with_sampler`).

Nothing is trained and the run directory is not written. Cross coherence and likelihoods do not
depend on the sampler (conditional generation draws z from q(z | x); the bounds use p(z)).
"""
import argparse
import json
import pathlib
import time

from mibzoo import experiment, latent_samplers
from mibzoo import metrics as metric_functions
from mibzoo.experiment_data import resolve


def _scores(model, test, train, data, prior_samples, seed):
    return metric_functions.evaluate(model, test, train, spec=data.spec, metrics=["joint_coherence", "sample_quality"],
                                     prior_samples=prior_samples, seed=seed)


def compare(run_dir, sampler, prior_samples=1000, seed=0):
    run_dir = pathlib.Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    model = experiment.load_run_model(run_dir)
    data = resolve(record["dataset"])
    test = data.arrays("test")
    train = data.arrays("train", record.get("limit"))
    own = model.model_config["latent_sampler"]
    prior_model = latent_samplers.with_sampler(model, "prior") if own["kind"] != "prior" else model
    if own == sampler and model.latent_sampler.is_fitted():
        gmm_model, fit = model, {**record.get("latent_sampler", {}), "source": "the run's own"}
    else:
        gmm_model = latent_samplers.with_sampler(model, sampler)
        fit = {**latent_samplers.fit_latent_sampler(gmm_model, train, seed=seed), "source": "fitted here"}
    started = time.perf_counter()
    out = {"run": str(run_dir), "entry": record["entry"], "dataset": record["dataset"], "fit": fit,
           "prior": _scores(prior_model, test, train, data, prior_samples, seed),
           "gmm": _scores(gmm_model, test, train, data, prior_samples, seed)}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--covariance", default="full")
    parser.add_argument("--fit-on", default="sample")
    parser.add_argument("--prior-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sampler = latent_samplers.validate({"kind": "gmm", "components": args.components, "covariance": args.covariance,
                                        "fit_on": args.fit_on}, "command line")
    print(f"sampler {sampler}, {args.prior_samples} samples, seed {args.seed}")
    for run in args.runs:
        out = compare(run, sampler, args.prior_samples, args.seed)
        fit = out["fit"]
        print(f"{out['entry']:10s} {out['dataset']:12s} joint coherence prior {out['prior'].get('joint_coherence'):.3f}"
              f"  gmm {out['gmm'].get('joint_coherence'):.3f}   ({fit['source']}: {fit.get('examples')} codes, "
              f"mean log-density {fit.get('mean_log_density', float('nan')):.2f} under the mixture, "
              f"{fit.get('prior_mean_log_density', float('nan')):.2f} under N(0, I), converged {fit.get('converged')})",
              flush=True)
        for key in sorted(out["prior"]):
            if key != "joint_coherence":
                print(f"    {key:40s} prior {out['prior'][key]:10.4f}  gmm {out['gmm'][key]:10.4f}")


if __name__ == "__main__":
    main()
