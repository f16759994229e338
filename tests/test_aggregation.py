"""Posterior aggregation strategies (`mibzoo.aggregation`) against independent NumPy/SciPy
computations, and the mmvae / mopoe entries' objectives on a small batch with the same noise."""
import itertools

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import norm

import keras
import mibzoo
from mibzoo import aggregation, inference, objectives
from mibzoo.errors import ConfigError
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, synthetic_batches

PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}
B, N, D = 5, 3, 4


def experts(rng, mask_values=(0.0, 1.0)):
    loc = rng.normal(size=(B, N, D)).astype("float32")
    logvar = rng.uniform(-1.5, 1.5, size=(B, N, D)).astype("float32")
    present = np.ones((B, N), "float32")
    present[1, 0] = present[2, 1] = present[3, :2] = 0.0  # partial presence; row 3 has x_2 only
    present[4] = 0.0  # nothing present: the prior
    mask = rng.choice(mask_values, size=(N, D)).astype("float32")
    mask[:, 0] = 1.0
    prior_loc = np.zeros(D, "float32")
    prior_logvar = np.zeros(D, "float32")
    return prior_loc, prior_logvar, loc, logvar, present, mask


def numpy_poe(prior_loc, prior_var, locs, variances, weights):
    """Eq. 13 with the prior expert: precision-weighted mean of the weighted experts."""
    precision = 1.0 / prior_var + np.sum(weights / variances, axis=-2)
    mean = (prior_loc / prior_var + np.sum(weights * locs / variances, axis=-2)) / precision
    return mean, 1.0 / precision


def numpy_components(name, prior_loc, prior_logvar, loc, logvar, present, mask):
    """``(means [B, K, D], variances [B, K, D], weights [B, K])`` of the mixtures, written out from their
    definitions: moe's component i is expert i alone where m_ij = 1 and the prior where m_ij = 0;
    mopoe's component s is the product of experts of the subset s with the prior."""
    var, prior_var = np.exp(logvar.astype("float64")), np.exp(prior_logvar.astype("float64"))
    means, variances, weights = [], [], []
    if name == "moe":
        for i in range(N):
            means.append(np.where(mask[i] == 1.0, loc[:, i], prior_loc))
            variances.append(np.where(mask[i] == 1.0, var[:, i], prior_var))
            weights.append(present[:, i])
    else:
        for size in range(1, N + 1):
            for subset in itertools.combinations(range(N), size):
                member = np.isin(np.arange(N), subset)[None, :, None]
                m, v = numpy_poe(prior_loc, prior_var, loc, var, present[:, :, None] * mask[None] * member)
                means.append(m)
                variances.append(v)
                weights.append(np.prod(present[:, list(subset)], axis=1))
    none = np.all(present == 0, axis=1).astype("float64")
    means.append(np.broadcast_to(prior_loc, (B, D)))
    variances.append(np.broadcast_to(prior_var, (B, D)))
    weights.append(none)
    weights = np.stack(weights, 1)
    return np.stack(means, 1), np.stack(variances, 1), weights / weights.sum(1, keepdims=True)


def numpy_mixture_log_prob(z, means, variances, weights):
    """log Σ_k π_k Π_d N(z_d; μ_kd, σ²_kd) with SciPy's densities and logsumexp (π_k = 0: dropped)."""
    comp = norm.logpdf(z[:, None, :], means, np.sqrt(variances)).sum(-1)
    with np.errstate(divide="ignore"):
        return logsumexp(comp + np.log(weights), axis=1)


def test_poe_is_todays_product_of_experts_bit_for_bit(rng, run_mode):
    prior_loc, prior_logvar, loc, logvar, present, _ = experts(rng)
    mask = rng.uniform(0, 1, size=(N, D)).astype("float32")  # continuous masks (structure learning)

    def both(*args):
        post = aggregation.get("poe").aggregate(*args)
        old = inference.product_of_experts(prior_loc, prior_logvar, loc, logvar, present[:, :, None] * mask[None])
        return post.loc, post.logvar, old[0], old[1]

    new_loc, new_logvar, old_loc, old_logvar = run_mode(both, prior_loc, prior_logvar, loc, logvar, present, mask)
    np.testing.assert_array_equal(np.asarray(new_loc), np.asarray(old_loc))
    np.testing.assert_array_equal(np.asarray(new_logvar), np.asarray(old_logvar))


@pytest.mark.parametrize("name", ["poe", "moe", "mopoe"])
def test_log_prob_matches_scipy(name, rng, run_mode):
    args = experts(rng)
    z = rng.normal(size=(B, D)).astype("float32") * 1.5
    if name == "poe":
        mean, variance = numpy_poe(args[0], np.exp(args[1]), args[2], np.exp(args[3]), args[4][:, :, None] * args[5])
        means, variances, weights = mean[:, None], variance[:, None], np.ones((B, 1))
    else:
        means, variances, weights = numpy_components(name, *args)
    got = run_mode(lambda *a: aggregation.get(name).aggregate(*a).log_prob(z), *args)
    np.testing.assert_allclose(np.asarray(got), numpy_mixture_log_prob(z, means, variances, weights),
                               rtol=1e-5, atol=1e-4)
    post = aggregation.get(name).aggregate(*args)
    np.testing.assert_allclose(np.asarray(post.weights), weights, atol=1e-7)
    # The TFP distribution of the user API (`MIBModel.posterior`) is the same density.
    np.testing.assert_allclose(np.asarray(post.distribution().log_prob(z)), np.asarray(got), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["moe", "mopoe"])
def test_samples_have_the_mixture_moments(name, rng):
    args = experts(rng)
    post = aggregation.get(name).aggregate(*args)
    means, variances, weights = numpy_components(name, *args)
    seed = keras.random.SeedGenerator(3)
    draws = np.asarray(post.sample(lambda shape: keras.random.normal(shape, seed=seed), num_samples=20000))
    mean = np.sum(weights[..., None] * means, 1)
    var = np.sum(weights[..., None] * (variances + means ** 2), 1) - mean ** 2
    assert draws.shape == (20000, B, D)
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.08, atol=0.02)
    np.testing.assert_allclose(np.asarray(post.mean()), mean, atol=1e-5)
    np.testing.assert_allclose(np.exp(np.asarray(post.log_variance())), var, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["moe", "mopoe"])
def test_an_absent_modality_removes_its_components(name, rng):
    """Presence 0 (weight 0) removes expert i: the mixture equals the same strategy over the others."""
    prior_loc, prior_logvar, loc, logvar, present, mask = experts(rng)
    present = np.ones((B, N), "float32")
    present[:, 1] = 0.0
    z = rng.normal(size=(B, D)).astype("float32")
    full = aggregation.get(name).aggregate(prior_loc, prior_logvar, loc, logvar, present, mask)
    keep = [0, 2]
    fewer = aggregation.get(name).aggregate(prior_loc, prior_logvar, loc[:, keep], logvar[:, keep],
                                            present[:, keep], mask[keep])
    np.testing.assert_allclose(np.asarray(full.log_prob(z)), np.asarray(fewer.log_prob(z)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(full.mean()), np.asarray(fewer.mean()), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["moe", "mopoe"])
def test_monte_carlo_kl_is_unbiased(name, rng):
    """E_q[log q(z) − log p(z)] over many draws equals KL(q ‖ p) computed by NumPy quadrature-free
    sampling of the NumPy mixture (independent draws, same definition)."""
    args = experts(rng)
    post = aggregation.get(name).aggregate(*args)
    seed = keras.random.SeedGenerator(5)
    z = post.sample(lambda shape: keras.random.normal(shape, seed=seed), num_samples=4000)
    kl = np.asarray(post.kl_to_prior(args[0], args[1], lambda: z)).mean(0)
    means, variances, weights = numpy_components(name, *args)
    draws = np.random.default_rng(0)
    want = []
    for b in range(B):
        k = draws.choice(weights.shape[1], size=20000, p=weights[b])
        zb = means[b, k] + np.sqrt(variances[b, k]) * draws.standard_normal((20000, D))
        log_q = logsumexp(norm.logpdf(zb[:, None], means[b], np.sqrt(variances[b])).sum(-1)
                          + np.log(np.maximum(weights[b], 1e-300)), axis=1)
        want.append(np.mean(log_q - norm.logpdf(zb).sum(-1)))
    np.testing.assert_allclose(kl, want, atol=0.12)
    assert abs(kl[4]) < 1e-5  # nothing present: q is the prior


def test_config_refuses_terms_that_need_a_gaussian_posterior_and_unknown_strategies():
    with pytest.raises(ConfigError, match=r"dist\[1\]\[1\].*'C3'.*'mopoe'.*loc/logvar.*\['poe'\]"):
        mibzoo.load("mopoe", modalities=PAIR, shared=TINY_SHARED, dist=[[1.0, "C1"], [1.0, "C3"]])
    with pytest.raises(ConfigError, match=r"str_reg\[0\]\[1\].*'tc'.*'moe'"):
        mibzoo.load("mmvae", modalities=PAIR, shared=TINY_SHARED, str_reg=[[1.0, "tc"]])
    with pytest.raises(ConfigError, match=r"posterior.*'mope'.*Did you mean 'mopoe'"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, posterior="mope")
    # Terms with a Monte-Carlo KL work with a mixture (jmvae's cross KL with MoPoE's posterior).
    mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, posterior="mopoe")


class RecordedNoise:
    """A noise source that draws from a NumPy generator and records every draw, in order."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.draws = []

    def __call__(self, shape):
        value = self.rng.standard_normal(tuple(int(s) for s in shape)).astype("float32")
        self.draws.append(value)
        return value


def numpy_nll(name, params, arrays):
    """−log p(x | params) for the tiny pair: Bernoulli logits for x, a categorical for y."""
    params = np.asarray(params, "float64")
    if name == "x":
        return np.sum(np.logaddexp(0, params) - arrays["x"] * params, axis=-1)
    return -(params - logsumexp(params, axis=-1, keepdims=True))[np.arange(len(params)), arrays["y"]]


def experts_of(model, fp):
    """The encoders' experts as NumPy ``(loc [B, N, D], logvar [B, N, D])`` (network outputs)."""
    outs = fp.encoder_outputs()
    return (np.stack([np.asarray(outs[n][0], "float64") for n in model.modality_names], 1),
            np.stack([np.asarray(outs[n][1], "float64") for n in model.modality_names], 1))


def test_mmvae_objective_is_the_stratified_elbo_with_the_same_noise():
    """Shi et al. 2019: (1/N) Σ_m [Σ_i −w_i log p(x_i | z_m) − log p(z_m) + log q(z_m | X)], z_m = μ_m + σ_m ε_m
    from expert m alone, q(z | X) the uniform mixture of the experts, all in NumPy but the networks.
    (The entry's default adds `cross_generation`, tested below; ``str_reg=[]`` leaves MMVAE's own objective.)"""
    model = mibzoo.load("mmvae", modalities=PAIR, shared=TINY_SHARED, likelihood_weights={"y": 3.0}, str_reg=[])
    arrays = synthetic_batches(PAIR, n=16)
    noise = RecordedNoise(0)
    fp = model.forward_pass({k: arrays[k] for k in PAIR}, seed=noise)
    _, totals = model.compute_terms(fp)
    loc, logvar = experts_of(model, fp)
    eps = noise.draws[0]  # [B, K, D], the one draw of the pass: one sample per component
    std = np.exp(0.5 * logvar)
    want = 0.0
    for m in range(2):
        z = loc[:, m] + std[:, m] * eps[:, m]
        log_q = logsumexp(norm.logpdf(z[:, None], loc, std).sum(-1) + np.log(0.5), axis=1)
        recon = sum(w * numpy_nll(n, model.decode_modality(n, z.astype("float32")), arrays)
                    for n, w in (("x", 1.0), ("y", 3.0)))
        want = want + 0.5 * (recon + log_q - norm.logpdf(z).sum(-1))
    np.testing.assert_allclose(float(totals["loss"]), np.mean(want), rtol=1e-5)
    assert len(noise.draws) == 1


def test_mopoe_objective_is_the_mixture_elbo_with_a_sampled_kl():
    """Sutter et al. 2021: −E_{z ~ q_mix}[Σ_i w_i log p(x_i | z)] + KL(q_mix ‖ p), z drawn from the mixture
    over the subsets' products of experts (Gumbel-max choice of the component), the KL as
    log q_mix(z) − log p(z) at the same z; NumPy but the networks. (The entry's default adds
    `cross_generation`, tested below; ``str_reg=[]`` leaves MoPoE's own objective.)"""
    model = mibzoo.load("mopoe", modalities=PAIR, shared=TINY_SHARED, likelihood_weights={"y": 3.0}, str_reg=[])
    arrays = synthetic_batches(PAIR, n=16)
    noise = RecordedNoise(1)
    fp = model.forward_pass({k: arrays[k] for k in PAIR}, seed=noise)
    _, totals = model.compute_terms(fp)
    loc, logvar = experts_of(model, fp)
    var = np.exp(logvar)
    means, variances = [], []
    for subset in ((0,), (1,), (0, 1)):
        member = np.isin(np.arange(2), subset)[None, :, None] * np.ones((16, 2, 4))
        m, v = numpy_poe(0.0, 1.0, loc, var, member)
        means.append(m)
        variances.append(v)
    means, variances = np.stack(means + [np.zeros((16, 4))], 1), np.stack(variances + [np.ones((16, 4))], 1)
    weights = np.array([1 / 3, 1 / 3, 1 / 3, 0.0])
    select, eps = noise.draws[0], noise.draws[1]  # [B, K] component choice, then [B, D]
    gumbel = -np.log(-np.log(np.clip(norm.cdf(select), 1e-7, 1 - 1e-7)))
    k = np.argmax(np.log(np.maximum(weights, 1e-30)) + gumbel, axis=1)
    z = means[np.arange(16), k] + np.sqrt(variances[np.arange(16), k]) * eps
    recon = sum(w * numpy_nll(n, model.decode_modality(n, z.astype("float32")), arrays) for n, w in (("x", 1.0), ("y", 3.0)))
    kl = numpy_mixture_log_prob(z, means, variances, np.broadcast_to(weights, (16, 4))) - norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(float(totals["loss"]), np.mean(recon + kl), rtol=1e-5)
    assert set(k) == {0, 1, 2}  # every subset is drawn, the prior never


@pytest.mark.parametrize("entry", ["mmvae", "mopoe"])
def test_default_adds_cross_generation_from_the_other_modalitys_component(entry):
    """The entries' default L_str_reg, [1, cross_generation]: Σ_i −w_i log p(x_i | z), z ~ q(z | x_{\\i}). With two
    modalities q(z | x_{\\i}) is the other modality's component alone: its expert (mmvae) or its expert times
    the prior (mopoe). NumPy but the networks, with the term's own recorded draws; the default loss is the
    entry's objective plus the term, and without it (``str_reg=[]``) the objective alone."""
    model = mibzoo.load(entry, modalities=PAIR, shared=TINY_SHARED, likelihood_weights={"y": 3.0})
    arrays = synthetic_batches(PAIR, n=16)
    noise = RecordedNoise(3)
    fp = model.forward_pass({k: arrays[k] for k in PAIR}, seed=noise)
    values = np.asarray(objectives.TERMS["cross_generation"].fn(fp))
    assert len(noise.draws) == 4  # per generated modality: the component choice, then ε
    loc, logvar = experts_of(model, fp)
    var = np.exp(logvar)
    for i, (name, other, weight) in enumerate((("x", 1, 1.0), ("y", 0, 3.0))):
        if entry == "mmvae":
            mean, variance = loc[:, other], var[:, other]
        else:
            mean, variance = numpy_poe(0.0, 1.0, loc[:, other:other + 1], var[:, other:other + 1], np.ones((16, 1, 1)))
        z = mean + np.sqrt(variance) * noise.draws[2 * i + 1]
        want = weight * numpy_nll(name, model.decode_modality(name, z.astype("float32")), arrays)
        np.testing.assert_allclose(values[i], np.mean(want), rtol=1e-4)
    terms, totals = model.compute_terms(fp)
    np.testing.assert_allclose(float(terms["cross_generation"]), values.sum(), rtol=1e-5)
    own = "mmvae" if entry == "mmvae" else "C1"
    np.testing.assert_allclose(float(totals["loss"]), float(terms[own]) + values.sum(), rtol=1e-5)
    bare = mibzoo.load(entry, modalities=PAIR, shared=TINY_SHARED, str_reg=[])
    assert "cross_generation" not in bare.compute_terms(bare.forward_pass({k: arrays[k] for k in PAIR}))[0]


@pytest.mark.parametrize("entry", ["mmvae", "mopoe"])
def test_iwae_proposal_is_the_mixture(entry):
    """log w = log p(x, z) − log q_mix(z | x) at z drawn from the mixture with the metric's noise."""
    from mibzoo.metrics.likelihood import draw_noise, log_importance_weights

    model = mibzoo.load(entry, modalities=PAIR, shared=TINY_SHARED)
    arrays = synthetic_batches(PAIR, n=6)
    x = {k: arrays[k] for k in PAIR}
    post = model.forward_pass(x).aggregate()
    noise = draw_noise(model, ["x", "y"], 3, 6, seed=2, components=int(post.component_loc.shape[1]))
    got = log_importance_weights(model, x, noise=noise)
    means = np.asarray(post.component_loc, "float64")
    variances = np.exp(np.asarray(post.component_logvar, "float64"))
    weights = np.asarray(post.weights, "float64")
    for s in range(3):
        gumbel = -np.log(-np.log(np.clip(norm.cdf(np.asarray(noise["select"][s])), 1e-7, 1 - 1e-7)))
        k = np.argmax(np.log(np.maximum(weights, 1e-30)) + gumbel, axis=1)
        z = means[np.arange(6), k] + np.sqrt(variances[np.arange(6), k]) * np.asarray(noise["z"][s])
        log_px = sum(-numpy_nll(n, model.decode_modality(n, z.astype("float32")), arrays) for n in ("x", "y"))
        want = log_px + norm.logpdf(z).sum(-1) - numpy_mixture_log_prob(z, means, variances, weights)
        np.testing.assert_allclose(got[s], want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("entry", ["mmvae", "mopoe"])
def test_config_round_trip_keeps_the_strategy_and_generation(entry):
    """The strategy is part of the config and seeded generation follows the weights. (Fitting
    and `.keras` round trips of every entry: tests/test_zoo.py.)"""
    model = mibzoo.load(entry, modalities=PAIR, shared=TINY_SHARED)
    config = model.get_config()
    restored = mibzoo.load(entry, modalities=PAIR, shared=TINY_SHARED, posterior=str(config["posterior"]))
    restored.set_weights(model.get_weights())
    assert restored.get_config()["posterior"] == model.get_config()["posterior"] == model.aggregation.name
    x = {"x": synthetic_batches(PAIR, n=4)["x"]}
    a = model.generate(x, target="y", num_samples=2, seed=9)
    b = restored.generate(x, target="y", num_samples=2, seed=9)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a).sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="mixture.*not one Gaussian"):
        model.forward_pass(x).posterior()


@pytest.mark.slow  # an export and a session-loader run: about 25 s
def test_exported_encode_serves_the_mixture_components(tmp_path):
    """The `encode` signature of a mixture-posterior model (export/README.md): moment-matched loc/logvar
    and the components, as the Python model gives them, in the C++ session loader."""
    from mibzoo import export, export_archive

    model = mibzoo.load("mopoe", modalities=PAIR, shared=TINY_SHARED)
    path = export.export_model(model, tmp_path, "mopoe", version=1)
    arrays = synthetic_batches(PAIR, n=3)
    feeds = {"x": arrays["x"], "y": arrays["y"], "present": np.array([[1, 1], [1, 0], [0, 1]], "float32")}
    session, meta_graph = export_archive.load_session(path)
    try:
        sig = meta_graph.signature_def["encode"]
        served = session.run({k: v.name for k, v in sig.outputs.items()},
                             {sig.inputs[k].name: v for k, v in feeds.items()})
    finally:
        session.close()
    local = model.encode({"x": arrays["x"], "y": arrays["y"]},
                         present={"x": feeds["present"][:, 0], "y": feeds["present"][:, 1]})
    assert set(served) == {"loc", "logvar", "component_loc", "component_logvar", "component_weight"}
    for key, value in (("loc", local["loc"]), ("logvar", local["logvar"]), ("component_loc", local["components"]["loc"]),
                       ("component_weight", local["components"]["weight"])):
        np.testing.assert_allclose(served[key], np.asarray(value), rtol=1e-5, atol=1e-6)
    # Row 1 has x alone: only the subset {x} has weight; row 2 y alone.
    np.testing.assert_allclose(served["component_weight"][1:], [[1, 0, 0, 0], [0, 1, 0, 0]], atol=1e-7)


@pytest.mark.parametrize("name", ["moe", "mopoe"])
def test_learned_inference_structure_gets_gradients_through_a_mixture(name):
    """M^q keeps a meaning in a mixture (module docstring), so structure learning works: the loss
    has finite, non-zero gradients with respect to the inference-structure logits."""
    model = mibzoo.load("mopoe", modalities=PAIR, shared=[{"name": "a", "size": 2}, {"name": "b", "size": 2}],
                        posterior=name, inference_structure={"learned": True, "init": 0.5}, kl_schedule=None)
    arrays = synthetic_batches(PAIR, n=16)
    x, present = model._prepare({k: arrays[k] for k in PAIR}, strict=True)
    variables = model.phase_variables("structure")
    with tf.GradientTape() as tape:
        _, totals = model.compute_terms(model.forward(x, present, training=True, phase="structure"))
    grads = [np.asarray(g) for g in tape.gradient(totals["score"], variables) if g is not None]
    assert grads and all(np.all(np.isfinite(g)) for g in grads)
    assert any(np.any(g != 0) for g in grads)
