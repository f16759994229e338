"""Likelihoods per modality kind against SciPy log-densities."""
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, log_softmax, softplus

from mibzoo import likelihoods
from mibzoo.modalities import normalize_modality


def spec(**kwargs):
    return normalize_modality("m", kwargs)


@pytest.mark.parametrize("family", ["normal", "laplace"])
def test_real_valued_vectors(family, rng):
    params = rng.normal(size=(4, 6)).astype("float32")
    x = rng.normal(size=(4, 3)).astype("float32")
    dist = likelihoods.distribution(spec(kind="vector", size=3, likelihood=family), params)
    loc, scale = params[:, :3], softplus(params[:, 3:]) + likelihoods.MIN_SCALE
    ref = (stats.norm if family == "normal" else stats.laplace).logpdf(x, loc, scale).sum(-1)
    np.testing.assert_allclose(np.asarray(dist.log_prob(x)), ref, rtol=1e-5)


def test_bernoulli_image(rng):
    logits = rng.normal(size=(2, 4, 4, 1)).astype("float32")
    x = (rng.random((2, 4, 4, 1)) > 0.5).astype("float32")
    dist = likelihoods.distribution(spec(kind="image", shape=[4, 4, 1]), logits)
    ref = stats.bernoulli.logpmf(x, expit(logits)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(dist.log_prob(x)), ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dist.mean()), expit(logits), rtol=1e-5)


def test_categorical(rng):
    logits = rng.normal(size=(5, 3)).astype("float32")
    ids = rng.integers(0, 3, 5)
    dist = likelihoods.distribution(spec(kind="categorical", classes=3), logits)
    got = np.asarray(dist.log_prob(np.eye(3, dtype="float32")[ids]))
    np.testing.assert_allclose(got, log_softmax(logits, -1)[np.arange(5), ids], rtol=1e-5)


def test_tabular_is_a_product_of_normal_columns_and_categorical_groups(rng):
    s = spec(kind="tabular", numeric=2, categorical=[3, 2])
    params = rng.normal(size=(4, 2 * 2 + 3 + 2)).astype("float32")
    numeric = rng.normal(size=(4, 2)).astype("float32")
    a, b = rng.integers(0, 3, 4), rng.integers(0, 2, 4)
    x = np.concatenate([numeric, np.eye(3)[a], np.eye(2)[b]], axis=1).astype("float32")
    dist = likelihoods.distribution(s, params)
    ref = (stats.norm.logpdf(numeric, params[:, :2], softplus(params[:, 2:4]) + likelihoods.MIN_SCALE).sum(-1)
           + log_softmax(params[:, 4:7], -1)[np.arange(4), a] + log_softmax(params[:, 7:9], -1)[np.arange(4), b])
    np.testing.assert_allclose(np.asarray(dist.log_prob(x)), ref, rtol=1e-5)
    assert tuple(dist.mean().shape) == (4, 7)
