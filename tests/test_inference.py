"""The weighted product of experts (Eq. 12-13) against an independent NumPy computation."""
import numpy as np
import pytest
import tensorflow as tf

import mibzoo
from mibzoo import inference


def numpy_poe(prior_loc, prior_var, locs, variances, weights):
    """Eq. 13 literally: 1/σ^q = Σ_{i∈S∪{0}} m_i/σ_i,  μ^q = σ^q Σ m_i μ_i/σ_i (σ = variance)."""
    precision = 1.0 / prior_var + np.sum(weights / variances, axis=1)
    mean = (prior_loc / prior_var + np.sum(weights * locs / variances, axis=1)) / precision
    return mean, 1.0 / precision


def random_experts(rng, batch=5, n=3, d=4):
    locs = rng.normal(size=(batch, n, d)).astype("float32")
    logvars = rng.uniform(-2, 2, size=(batch, n, d)).astype("float32")
    weights = rng.uniform(0, 1, size=(batch, n, d)).astype("float32")
    present = (rng.random((batch, n, 1)) < 0.6).astype("float32")
    return locs, logvars, weights * present


def test_poe_matches_numpy_for_random_weights_and_subsets(rng, run_mode):
    locs, logvars, weights = random_experts(rng)
    prior_loc = rng.normal(size=4).astype("float32")
    prior_logvar = rng.uniform(-1, 1, size=4).astype("float32")
    loc, logvar = run_mode(inference.product_of_experts, prior_loc, prior_logvar, locs, logvars, weights)
    want_mean, want_var = numpy_poe(prior_loc, np.exp(prior_logvar), locs, np.exp(logvars), weights)
    np.testing.assert_allclose(np.asarray(loc), want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(logvar)), want_var, rtol=1e-5)


def test_weight_zero_removes_an_expert(rng, run_mode):
    locs, logvars, weights = random_experts(rng)
    weights[:, 1] = 0.0
    full = run_mode(inference.product_of_experts, np.zeros(4, "float32"), np.zeros(4, "float32"), locs, logvars, weights)
    keep = [0, 2]
    without = run_mode(inference.product_of_experts, np.zeros(4, "float32"), np.zeros(4, "float32"),
                       locs[:, keep], logvars[:, keep], weights[:, keep])
    np.testing.assert_allclose(np.asarray(full[0]), np.asarray(without[0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(full[1]), np.asarray(without[1]), rtol=1e-6)


def test_no_modality_gives_the_prior_without_nan(rng, run_mode):
    locs, logvars, _ = random_experts(rng)
    logvars[:] = -50.0  # tiny variances are clamped, never overflow
    prior_loc = np.full(4, 0.5, "float32")
    prior_logvar = np.full(4, -0.3, "float32")
    loc, logvar = run_mode(inference.product_of_experts, prior_loc, prior_logvar, locs, logvars, np.zeros_like(locs))
    np.testing.assert_allclose(np.asarray(loc), np.broadcast_to(prior_loc, (5, 4)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(logvar), np.broadcast_to(prior_logvar, (5, 4)), rtol=1e-5)


def test_tiny_variances_and_full_weights_stay_finite_with_finite_gradients(rng):
    locs, logvars, weights = random_experts(rng)
    logvars[:] = -80.0
    weights = tf.Variable(np.ones_like(weights))
    with tf.GradientTape() as tape:
        loc, logvar = inference.product_of_experts(np.zeros(4, "float32"), np.zeros(4, "float32"), locs, logvars, weights)
        total = tf.reduce_sum(loc) + tf.reduce_sum(logvar)
    grad = tape.gradient(total, weights)
    assert np.all(np.isfinite(loc)) and np.all(np.isfinite(logvar)) and np.all(np.isfinite(grad))


def test_gaussian_log_density_matches_scipy(rng, run_mode):
    from scipy import stats

    z, loc = rng.normal(size=(2, 5, 3))
    logvar = rng.uniform(-3, 2, size=(5, 3))
    got = np.asarray(run_mode(inference.gaussian_log_density, z.astype("float32"), loc.astype("float32"),
                              logvar.astype("float32")))
    np.testing.assert_allclose(got, stats.norm.logpdf(z, loc, np.exp(0.5 * logvar)), rtol=1e-5, atol=1e-5)


def test_kl_closed_form_matches_numpy(rng):
    a, b = rng.normal(size=(2, 3, 5)).astype("float32")
    la, lb = rng.uniform(-1, 1, size=(2, 3, 5)).astype("float32")
    got = np.asarray(inference.kl_diagonal_gaussians(a, la, b, lb))
    va, vb = np.exp(la), np.exp(lb)
    want = 0.5 * np.sum(va / vb + (a - b) ** 2 / vb - 1 + np.log(vb / va), axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("entry", ["wyner_vae", "mib_mm"])
def test_encode_exposes_experts_and_weights_that_reproduce_the_posterior(entry, rng):
    """`encode` returns each expert and its weight; combining them outside (NumPy, Eq. 13) must
    give the returned posterior, with continuous weights and per-example missing modalities."""
    modalities = {"x": {"kind": "vector", "size": 6, "hidden": 16, "layers": 1},
                  "y": {"kind": "categorical", "classes": 3, "hidden": 16, "layers": 1}}
    shared = [{"name": "a", "size": 2}, {"name": "b", "size": 3}]
    overrides = {"modalities": modalities, "shared": shared, "private": 2}
    if entry == "wyner_vae":
        overrides["inference_structure"] = [[0.3, 1.0], [0.8, 0.0]]  # continuous fixed weights
    model = mibzoo.load(entry, **overrides)
    x = rng.normal(size=(7, 6)).astype("float32")
    y = rng.integers(0, 3, 7).astype("int32")
    present = {"y": np.array([1, 0, 1, 1, 0, 1, 0], bool)}
    enc = model.encode({"x": x, "y": y}, present=present)
    blocks = np.zeros((2, 5), "float32")
    blocks[0, :2] = 1
    blocks[1, 2:] = 1
    names = ["x", "y"]
    locs = np.stack([np.asarray(enc["experts"][n]["loc"]) for n in names], 1)
    variances = np.exp(np.clip(np.stack([np.asarray(enc["experts"][n]["logvar"]) for n in names], 1),
                               inference.LOGVAR_MIN, inference.LOGVAR_MAX))
    weights = np.stack([np.asarray(enc["experts"][n]["weight"]) @ blocks for n in names], 1)
    assert np.all(weights[~present["y"], 1] == 0), "an absent modality must have weight 0"
    mean, var = numpy_poe(0.0, 1.0, locs, variances, weights)
    np.testing.assert_allclose(np.asarray(enc["loc"]), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.exp(np.asarray(enc["logvar"])), var, rtol=1e-4)
    assert enc["blocks"] == {"a": (0, 2), "b": (2, 5)}


def test_user_api_decodes_z_gated_by_mp_as_sec_3_4_writes_it():
    """reconstruct and sample (through `ForwardPass.decode`) equal p(x_i | z ⊙ m_i^p, u_i) computed here
    with the gate built in NumPy from M^p and the blocks: reconstruct from the posterior means of z and
    u_i, sample from z ~ p(z) and u_i ~ p(u_i) drawn in that order from the same seeded noise."""
    from tests.model_test_case import TINY_LABEL, TINY_VECTOR, synthetic_batches

    model = mibzoo.load("wyner_vae", modalities={"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)},
                        shared=[{"name": "a", "size": 2}, {"name": "b", "size": 3}], private=2,
                        generation_structure=[[1.0, 0.0], [0.0, 1.0]])
    gate = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]], "float32")  # m_i^p spread over each block's dimensions
    arrays = synthetic_batches(model.modality_specs, n=6)
    x = {name: arrays[name] for name in model.modality_names}

    def decoded_mean(name, z, u):
        latent = np.concatenate([np.asarray(z) * gate[model.modality_names.index(name)], np.asarray(u)], -1)
        return np.asarray(model.likelihood(name, model.decode_modality(name, latent)).mean())

    encoded, reconstructed = model.encode(x), model.reconstruct(x)
    for name in model.modality_names:
        np.testing.assert_allclose(reconstructed[name],
                                   decoded_mean(name, encoded["loc"], encoded["private"][name]["loc"]), rtol=1e-5)
    noise = model.forward_pass(None, seed=7).noise
    z = model.prior_sample(4, noise)
    u = {name: noise((4, 2)) for name in model.modality_names}
    sampled = model.sample(4, seed=7)
    for name in model.modality_names:
        np.testing.assert_allclose(sampled[name], decoded_mean(name, z, u[name]), rtol=1e-5)
