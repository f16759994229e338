"""Ex-post density estimation of the aggregate posterior (`mibzoo.latent_samplers`): the Gaussian
mixture's density and draws against scikit-learn and NumPy, the unfitted sampler is the prior
exactly, and a fitted mixture survives `.keras` saving, traced sampling and `mibzoo train`."""
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

import mibzoo
from mibzoo import experiment, export, latent_samplers
from mibzoo.errors import ConfigError
from mibzoo.latent_samplers import GaussianMixtureSampler
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, synthetic_batches

from evaluation_testdata import IMAGE, LABEL, TINY_OPTIONS, label_arrays

PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}
GMM = {"kind": "gmm", "components": 3}


def clusters(n=300, seed=0):
    """Three separated 3-d Gaussian clusters of unequal size and shape."""
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0, 0.0, 0.0], [-3.0, 1.0, 0.0], [0.0, -3.0, 2.0]])
    c = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    scales = np.array([[0.3, 0.5, 0.2], [0.6, 0.2, 0.4], [0.2, 0.2, 0.7]])
    return centres[c] + scales[c] * rng.standard_normal((n, 3))


def numpy_mixture_log_density(z, weights, means, covariances):
    """log Σ_k π_k N(z; μ_k, Σ_k), written out."""
    terms = []
    for w, m, cov in zip(weights, means, covariances):
        diff = z - m
        _, logdet = np.linalg.slogdet(cov)
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
        terms.append(np.log(w) - 0.5 * (maha + logdet + len(m) * math.log(2 * math.pi)))
    return logsumexp(np.stack(terms), axis=0)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_fitted_log_density_equals_sklearn_and_the_written_out_mixture(covariance):
    z = clusters()
    sampler = GaussianMixtureSampler(3, components=3, covariance=covariance)
    record = sampler.fit(z, seed=0)
    reference = GaussianMixture(3, covariance_type=covariance, max_iter=500, random_state=0).fit(z)
    probe = np.concatenate([z[:20], np.random.default_rng(1).standard_normal((10, 3))])
    ours = np.asarray(sampler.log_prob(probe))
    np.testing.assert_allclose(ours, reference.score_samples(probe), rtol=1e-4, atol=1e-3)
    covariances = reference.covariances_ if covariance == "full" else np.stack(
        [np.diag(c) for c in reference.covariances_])
    np.testing.assert_allclose(ours, numpy_mixture_log_density(probe, reference.weights_, reference.means_,
                                                               covariances), rtol=1e-4, atol=1e-3)
    assert record["examples"] == 300 and record["converged"]
    np.testing.assert_allclose(record["mean_log_density"], reference.score(z), rtol=1e-6)
    assert record["mean_log_density"] > record["prior_mean_log_density"]


def test_n_init_keeps_the_most_likely_of_several_em_runs():
    """``n_init`` = scikit-learn's: the fit equals its best-of-``n_init`` reference, and it is at least as
    likely as EM from the first initialization alone (the ``n_init`` 1 fit with the same seed), strictly
    more on data where that initialization ends at a worse local optimum (six clusters, six components)."""
    rng = np.random.default_rng(16)  # a draw on which k-means from random_state 0 ends at a worse optimum
    centres = rng.normal(scale=4.0, size=(6, 3))
    z = centres[rng.integers(6, size=600)] + 0.4 * rng.standard_normal((600, 3))
    single = GaussianMixtureSampler(3, components=6).fit(z, seed=0)
    several = GaussianMixtureSampler(3, components=6, n_init=8)
    record = several.fit(z, seed=0)
    reference = GaussianMixture(6, max_iter=500, n_init=8, random_state=0).fit(z)
    np.testing.assert_allclose(record["mean_log_density"], reference.score(z), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(several.log_prob(z[:20])), reference.score_samples(z[:20]), rtol=1e-4, atol=1e-3)
    assert record["n_init"] == 8 and single["n_init"] == 1
    assert record["mean_log_density"] > single["mean_log_density"] + 0.05


def test_n_init_left_unset_keeps_the_normalized_config():
    """Configs that do not set ``n_init`` keep the form (and the comparison digest) they had before it."""
    assert latent_samplers.validate(GMM, "test") == {"kind": "gmm", "components": 3, "covariance": "full",
                                                     "fit_on": "sample", "max_iter": 500}
    assert latent_samplers.validate({**GMM, "n_init": 5}, "test")["n_init"] == 5
    layer = latent_samplers.make(latent_samplers.validate(GMM, "test"), 2)
    assert layer.n_init == 1 and layer.get_config()["n_init"] == 1


def test_draws_are_the_chosen_component_reparametrized():
    sampler = GaussianMixtureSampler(3, components=3)
    sampler.fit(clusters(), seed=0)
    rng = np.random.default_rng(2)
    eps, eta = rng.standard_normal((50, 3)).astype("float32"), rng.standard_normal(50).astype("float32")
    queue = [eps, eta]
    z = np.asarray(sampler.sample(50, lambda shape: queue.pop(0)))
    assert not queue  # exactly two draws: ε [n, D], then η [n]
    weights = np.exp(np.asarray(sampler.logits))
    weights /= weights.sum()
    uniform = 0.5 * (1.0 + np.vectorize(math.erf)(eta / math.sqrt(2.0)))
    component = np.searchsorted(np.cumsum(weights), uniform, side="right")
    loc, tril = np.asarray(sampler.loc), np.asarray(sampler.scale_tril)
    expected = loc[component] + np.einsum("nij,nj->ni", tril[component], eps)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)
    assert len(set(component)) == 3


def test_draws_have_the_mixture_moments():
    sampler = GaussianMixtureSampler(3, components=3)
    sampler.fit(clusters(), seed=0)
    z = np.asarray(sampler.sample(20000, lambda shape: tf.random.stateless_normal(shape, seed=[len(shape), 9])))
    w = np.exp(np.asarray(sampler.logits))
    w /= w.sum()
    loc, tril = np.asarray(sampler.loc, "float64"), np.asarray(sampler.scale_tril, "float64")
    mean = w @ loc
    cov = sum(wk * (t @ t.T + np.outer(m - mean, m - mean)) for wk, m, t in zip(w, loc, tril))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.12)


def test_an_unfitted_mixture_is_the_prior_exactly():
    keras.utils.set_random_seed(0)
    prior_model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler="prior")
    assert prior_model.model_config["latent_sampler"] == {"kind": "prior"}
    assert mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED).model_config["latent_sampler"]["kind"] == "gmm"
    model = latent_samplers.with_sampler(prior_model, GMM)
    assert not model.latent_sampler.is_fitted()
    np.testing.assert_array_equal(np.asarray(model.latent_sampler.log_prob(np.ones((2, 4)))),
                                  np.full(2, -0.5 * 4 * (1 + math.log(2 * math.pi)), "float32"))
    a, b = prior_model.sample(6, seed=3), model.sample(6, seed=3)
    for name in PAIR:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


@pytest.fixture(scope="module")
def fitted():
    """A tiny jmvae with a 3-component mixture fitted to q(z | x, y) of 200 synthetic pairs."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler=GMM)
    arrays = synthetic_batches(model.modality_specs, n=200)
    record = latent_samplers.fit_latent_sampler(model, arrays, seed=0)
    return model, arrays, record


def test_fit_uses_the_posterior_and_changes_what_sample_draws(fitted):
    model, arrays, record = fitted
    assert model.latent_sampler.is_fitted() and record["examples"] == 200
    # Fitted on one draw of q(z | x, y) per example, with the per-batch stateless seeds.
    codes = latent_samplers.posterior_codes(model, arrays, "sample", seed=0)
    expected = np.asarray(model.posterior({"x": arrays["x"], "y": arrays["y"]}).sample(
        seed=tf.constant([0, 0], tf.int32)))
    np.testing.assert_array_equal(codes, expected)
    reference = GaussianMixture(3, max_iter=500, random_state=0).fit(codes.astype("float64"))
    np.testing.assert_allclose(np.asarray(model.latent_sampler.loc), reference.means_, rtol=1e-4, atol=1e-5)
    # `sample` draws z through the mixture: the same seed's first draw ε mapped by a component.
    noise = model._noise_source(4)
    z = np.asarray(model.latent_sample(5, noise))
    eps = np.asarray(tf.random.stateless_normal((5, 4), seed=[4, 1]))
    tril = np.asarray(model.latent_sampler.scale_tril)
    loc = np.asarray(model.latent_sampler.loc)
    offsets = [np.linalg.solve(tril[k], (z - loc[k]).T).T for k in range(3)]
    assert all(any(np.allclose(o[i], eps[i], atol=1e-4) for o in offsets) for i in range(5))
    with pytest.raises(NotImplementedError, match="conditional"):
        model.sample(2, seed=0, latents={"z": np.zeros((2, 4))})


def test_saving_keeps_the_fitted_mixture_and_traced_sampling_uses_it(fitted, tmp_path):
    model, _, _ = fitted
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert restored.get_config() == model.get_config()
    assert restored.latent_sampler.is_fitted()
    for name in ("logits", "loc", "scale_tril"):
        np.testing.assert_array_equal(np.asarray(getattr(restored.latent_sampler, name)),
                                      np.asarray(getattr(model.latent_sampler, name)))
    a, b = model.sample(8, seed=5), restored.sample(8, seed=5)
    for name in PAIR:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    # The exported `sample_seeded` signature's function (traced) draws from the fitted mixture.
    seeds = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int32)
    fn, _ = export.build_signatures(restored)["sample_seeded"]
    traced = tf.function(fn)({"seed": seeds})
    eager = restored.sample(3, seed=export.per_example_noise(seeds))
    prior = latent_samplers.with_sampler(restored, "prior").sample(3, seed=export.per_example_noise(seeds))
    np.testing.assert_allclose(np.asarray(traced["x"]), np.asarray(eager["x"]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(traced["x"]), np.asarray(prior["x"]))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="latent_sampler.kind.*Did you mean 'gmm'"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler={"kind": "gnm"})
    with pytest.raises(ConfigError, match="latent_sampler.components"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler={"kind": "gmm", "components": 0})
    with pytest.raises(ConfigError, match="latent_sampler.covariance"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler={"kind": "gmm", "covariance": "tied"})
    with pytest.raises(ConfigError, match="latent_sampler.n_init.*positive integer"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler={"kind": "gmm", "n_init": 0})
    with pytest.raises(ConfigError, match="latent_sampler.n_components"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, latent_sampler={"kind": "gmm", "n_components": 3})
    with pytest.raises(ConfigError, match="inference network"):
        mibzoo.load("gan", modalities={"x": dict(TINY_VECTOR)}, latent_sampler="gmm")


@pytest.mark.slow
def test_train_fits_the_sampler_and_records_it(tmp_path):
    """`mibzoo train`'s path: the run's final model holds the fitted mixture, run.json its record
    (slow: a whole tiny run with its callbacks and a reload)."""
    data = {"train": label_arrays(64, seed=1), "test": label_arrays(32, seed=2)}
    run = tmp_path / "run"
    record = experiment.train_run("jmvae", data, 1, run, modalities={"image": IMAGE, "label": LABEL}, batch_size=32,
                                  overrides={"shared": TINY_SHARED, "latent_sampler": GMM},
                                  modality_options=TINY_OPTIONS, image_examples=0)
    assert record["latent_sampler"]["examples"] == 64 and record["latent_sampler"]["components"] == 3
    assert json.loads((run / "run.json").read_text())["latent_sampler"] == record["latent_sampler"]
    model = experiment.load_run_model(run)
    assert model.latent_sampler.is_fitted()
    np.testing.assert_allclose(np.exp(np.asarray(model.latent_sampler.logits)), record["latent_sampler"]["weights"],
                               atol=1e-4)
