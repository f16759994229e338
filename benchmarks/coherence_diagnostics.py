"""Why is a multimodal run's coherence low? Cheap diagnostics on a trained run (issue 10 follow-up).

    PYTHONPATH=$PWD python benchmarks/coherence_diagnostics.py RUN [RUN ...] [--examples 2000]

For each run (a `mibzoo train` directory on an image + label data set such as ``mnist_label``) it
prints, on the first ``--examples`` test pairs:

1. Cross-modal prediction from the image alone, through q(z | image):
   - ``x->y sample``: the label decoded from one z ~ q(z | image) (what `mibzoo evaluate`'s
     cross coherence scores);
   - ``x->y mean``: the label decoded from the posterior mean of q(z | image);
   - ``xy->y``: the label decoded from z ~ q(z | image, label) (reconstruction);
   so a gap between "mean" and "sample" says q(z | image) is too wide, a gap between "mean" and
   ``xy->y`` says its centre is in the wrong place.
2. Per latent dimension (sorted by the joint rate): the rate KL(q(z | x, y) ‖ p(z)), the cross
   divergence KL(q(z | x, y) ‖ q(z | image)), the standard deviation of q(z | image) and of
   q(z | x, y), and for a product of experts the precision each expert contributes
   (exp(−logvar) of q̃(z | x_i), averaged over examples).
3. The prior hole (Hoffman & Johnson 2016; Rosca et al. 2018): joint coherence of samples decoded
   from z ~ p(z) against z drawn from the aggregate posterior q(z) = mean_n q(z | x_n, y_n) of
   the test pairs, and from the aggregate of q(z | image) (one z per test example, decoded to both
   modalities and read by the project's classifier, as `mibzoo.metrics.joint_coherence` does), with
   the KL of the moment-matched aggregate N(m_d, v_d) to N(0, 1) per dimension.

Nothing is trained; everything is read from the run's final model.
"""
import argparse
import json

import numpy as np

from mibzoo import experiment, experiment_data, inference
from mibzoo.metrics import _common
from mibzoo.metrics.spec import spec_for


def _kl_diag(m1, lv1, m2, lv2):
    """Elementwise KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) per dimension (NumPy)."""
    return 0.5 * (lv2 - lv1 + (np.exp(lv1) + (m1 - m2) ** 2) / np.exp(lv2) - 1.0)


def _decode(model, name, z, rng, u=None):
    """The likelihood mean of ``name`` at ``z`` [B, Dz] and its private latent ``u`` (from its prior
    when not given)."""
    du = model.private_sizes[name]
    if du and u is None:
        u = rng.standard_normal((len(z), du)).astype("float32")
    return _common.to_numpy(model.forward_pass(None).decode(name, z.astype("float32"), u).mean())


def _read(model, readers, name, z, rng, u=None):
    specs = _common.modality_specs(model)
    return _common.read_classes(_decode(model, name, z, rng, u), specs[name], readers[name])


def _joint_agreement(model, readers, z, rng):
    classes = [_read(model, readers, name, z, rng) for name in readers]
    return float(np.mean(np.all(np.stack(classes) == classes[0][None], axis=0)))


def load_run(run_dir, examples):
    """``(record, model, arrays, specs, spec, readers)`` of a `mibzoo train` run: its record, model,
    first ``examples`` test arrays, modality specs, metric spec and the classifiers that read them."""
    record = json.loads((__import__("pathlib").Path(run_dir) / "run.json").read_text())
    model = experiment.load_run_model(run_dir)
    data = experiment_data.resolve(record["dataset"])
    arrays = data.arrays("test", examples)
    specs = _common.modality_specs(model)
    spec = spec_for(data.spec, specs)
    readers = _common.resolve_readers(specs, spec, None, list(specs))
    return record, model, arrays, specs, spec, readers


def diagnose(run_dir, examples=2000, seed=0):
    record, model, arrays, specs, spec, readers = load_run(run_dir, examples)
    names = [n for n in specs if n in arrays]
    image = next(n for n in names if specs[n]["kind"] != "categorical")
    label = next(n for n in names if specs[n]["kind"] == "categorical")
    y = np.asarray(arrays[spec.labels[label].label_key]).astype(int)
    rng = np.random.default_rng(seed)
    out = {"run": str(run_dir), "entry": record["entry"], "examples": len(y)}

    def post(inputs):
        enc = model.encode(inputs)
        return enc, _common.to_numpy(enc["loc"]), _common.to_numpy(enc["logvar"])

    enc_xy, m_xy, lv_xy = post({image: arrays[image], label: arrays[label]})
    enc_x, m_x, lv_x = post({image: arrays[image]})
    _, m_y, lv_y = post({label: arrays[label]})
    z_x = m_x + np.exp(0.5 * lv_x) * rng.standard_normal(m_x.shape)
    z_xy = m_xy + np.exp(0.5 * lv_xy) * rng.standard_normal(m_xy.shape)
    out["x->y sample"] = float(np.mean(_read(model, readers, label, z_x, rng) == y))
    out["x->y mean"] = float(np.mean(_read(model, readers, label, m_x, rng) == y))
    out["xy->y sample"] = float(np.mean(_read(model, readers, label, z_xy, rng) == y))
    if image in readers:
        z_y = m_y + np.exp(0.5 * lv_y) * rng.standard_normal(m_y.shape)
        out["y->x sample"] = float(np.mean(_read(model, readers, image, z_y, rng) == y))
        out["y->x mean"] = float(np.mean(_read(model, readers, image, m_y, rng) == y))

    # 2. per dimension
    prior_m, prior_lv = np.zeros(m_xy.shape[1]), np.zeros(m_xy.shape[1])
    rate = _kl_diag(m_xy, lv_xy, prior_m, prior_lv).mean(0)
    cross_x = _kl_diag(m_xy, lv_xy, m_x, lv_x).mean(0)
    cross_y = _kl_diag(m_xy, lv_xy, m_y, lv_y).mean(0)
    dims = {"rate": rate, "KL(xy||x)": cross_x, "KL(xy||y)": cross_y,
            "sd q(z|x)": np.exp(0.5 * lv_x).mean(0), "sd q(z|xy)": np.exp(0.5 * lv_xy).mean(0)}
    for name, expert in enc_xy["experts"].items():
        lv = inference.clip_logvar(_common.to_numpy(expert["logvar"]))
        dims[f"prec {name}"] = np.exp(-_common.to_numpy(lv)).mean(0)
    # 3. prior hole: moment-matched aggregate posterior per dimension
    agg_m = m_xy.mean(0)
    agg_v = np.exp(lv_xy).mean(0) + m_xy.var(0)
    dims["KL(agg||p)"] = _kl_diag(agg_m, np.log(agg_v), 0.0, 0.0)
    order = np.argsort(-rate)
    out["dims"] = {k: [round(float(v[d]), 3) for d in order] for k, v in dims.items()}
    out["total rate"] = float(rate.sum())
    out["total KL(xy||x)"] = float(cross_x.sum())
    out["total KL(xy||y)"] = float(cross_y.sum())
    out["total KL(agg||p)"] = float(dims["KL(agg||p)"].sum())
    if len(readers) >= 2:
        z_prior = rng.standard_normal(m_xy.shape)
        out["joint coherence, z ~ p(z)"] = _joint_agreement(model, readers, z_prior, rng)
        out["joint coherence, z ~ agg q(z|x,y)"] = _joint_agreement(model, readers, z_xy, rng)
        out["joint coherence, z ~ agg q(z|x)"] = _joint_agreement(model, readers, z_x, rng)
        moment = agg_m + np.sqrt(agg_v) * rng.standard_normal(m_xy.shape)
        out["joint coherence, z ~ N(agg mean, agg var)"] = _joint_agreement(model, readers, moment, rng)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for run in args.runs:
        out = diagnose(run, args.examples, args.seed)
        dims = out.pop("dims")
        for key, value in out.items():
            print(f"{key:42s} {value:.3f}" if isinstance(value, float) else f"{key:42s} {value}")
        print("per latent dimension, sorted by the joint rate:")
        for key, values in dims.items():
            print(f"  {key:12s} " + " ".join(f"{v:6.2f}" for v in values))
        print()


if __name__ == "__main__":
    main()
