"""InfoGAN variational lower bounds on I(c; x)."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from mibzoo.estimators.infogan import (
    categorical_code_mi_lower_bound,
    gaussian_code_mi_lower_bound,
    uniform_code_mi_lower_bound,
)

K = 10


def _onehot(idx, k=K):
    return np.eye(k, dtype=np.float32)[idx]


def test_perfect_q_gives_code_entropy(run_eagerly):
    idx = np.random.default_rng(0).integers(0, K, size=256)
    code = _onehot(idx)
    got = run_eagerly(categorical_code_mi_lower_bound, code, 40.0 * code)
    np.testing.assert_allclose(got, math.log(K), atol=1e-6)


def test_uniform_q_gives_zero(run_eagerly):
    code = _onehot(np.random.default_rng(1).integers(0, K, size=256))
    got = run_eagerly(categorical_code_mi_lower_bound, code, np.zeros_like(code))
    assert abs(got) < 1e-6


def test_non_uniform_prior(run_eagerly):
    p = np.array([0.5, 0.25, 0.125, 0.125, 0.0], np.float32)
    idx = np.random.default_rng(2).choice(5, size=512, p=p)
    code = _onehot(idx, 5)
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    perfect = run_eagerly(categorical_code_mi_lower_bound, code, 40.0 * code, p)
    np.testing.assert_allclose(perfect, entropy, atol=1e-5)
    # Q = the prior (ignores x): E log p(c) = -H(c) up to sampling noise.
    prior_logits = np.tile(np.log(np.maximum(p, 1e-30)), (512, 1)).astype(np.float32)
    useless = run_eagerly(categorical_code_mi_lower_bound, code, prior_logits, p)
    want = entropy + np.mean(np.log(p[idx]))
    np.testing.assert_allclose(useless, want, atol=1e-5)
    assert abs(useless) < 0.05


def test_categorical_matches_numpy(run_eagerly):
    rng = np.random.default_rng(3)
    code = _onehot(rng.integers(0, K, size=32))
    logits = (3 * rng.normal(size=(32, K))).astype(np.float32)
    log_q = special.log_softmax(logits.astype(np.float64), axis=1)
    want = math.log(K) + np.mean(np.sum(code * log_q, axis=1))
    np.testing.assert_allclose(run_eagerly(categorical_code_mi_lower_bound, code, logits), want, atol=1e-5)
    got16 = run_eagerly(categorical_code_mi_lower_bound, tf.cast(code, tf.bfloat16),
                        tf.cast(logits, tf.bfloat16))
    assert got16.dtype == np.float32
    np.testing.assert_allclose(got16, want, atol=0.1)


def test_gaussian_matches_numpy(run_eagerly):
    rng = np.random.default_rng(4)
    code, mean = rng.normal(size=(2, 16, 3)).astype(np.float32)
    logvar = rng.uniform(-2, 1, size=(16, 3)).astype(np.float32)
    prior_logvar = np.array([0.0, 0.5, -1.0], np.float32)
    want = (np.sum(0.5 * (np.log(2 * np.pi * np.e) + prior_logvar))
            + np.mean(stats.norm.logpdf(code, mean, np.exp(0.5 * logvar)).sum(1)))
    got = run_eagerly(gaussian_code_mi_lower_bound, code, mean, logvar, prior_logvar)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("prior_var,noise_var", [(1.0, 0.25), (4.0, 1.0)])
def test_gaussian_with_true_posterior_equals_channel_mi(run_eagerly, prior_var, noise_var):
    # c ~ N(0, a I), x = c + N(0, b I): the true posterior c | x is
    # N(x a/(a+b), ab/(a+b)) and I(c; x) = D/2 log(1 + a/b) (Gaussian channel).
    dim, n = 2, 200_000
    rng = np.random.default_rng(5)
    code = rng.normal(scale=math.sqrt(prior_var), size=(n, dim))
    x = code + rng.normal(scale=math.sqrt(noise_var), size=(n, dim))
    q_mean = (x * prior_var / (prior_var + noise_var)).astype(np.float32)
    q_logvar = np.full((n, dim), math.log(prior_var * noise_var / (prior_var + noise_var)), np.float32)
    got = run_eagerly(gaussian_code_mi_lower_bound, code.astype(np.float32), q_mean, q_logvar,
                      math.log(prior_var))
    want = 0.5 * dim * math.log(1 + prior_var / noise_var)
    assert abs(got - want) < 0.02, (got, want)
    # A Q that ignores x (the prior itself) gives ~0; a worse one gives less.
    useless = run_eagerly(gaussian_code_mi_lower_bound, code.astype(np.float32),
                          np.zeros_like(q_mean), np.full_like(q_logvar, math.log(prior_var)),
                          math.log(prior_var))
    assert abs(useless) < 0.02
    assert useless < got - 0.5


def test_uniform_matches_numpy(run_eagerly):
    rng = np.random.default_rng(6)
    half_width = np.array([1.0, 0.5, 2.0], np.float32)
    code = (rng.uniform(-1, 1, size=(16, 3)) * half_width).astype(np.float32)
    mean = rng.normal(size=(16, 3)).astype(np.float32)
    logvar = rng.uniform(-2, 1, size=(16, 3)).astype(np.float32)
    want = np.sum(np.log(2 * half_width)) + np.mean(stats.norm.logpdf(code, mean, np.exp(0.5 * logvar)).sum(1))
    got = run_eagerly(uniform_code_mi_lower_bound, code, mean, logvar, half_width)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_uniform_with_a_blind_q_is_at_most_zero_and_zero_only_at_the_best_gaussian(run_eagerly):
    # Q ignoring x: E log N(c; 0, s²) with c ~ U(−a, a) is largest at s² = a²/3; the bound there is
    # log 2a − ½ log(2πe a²/3) = ½ log(6 / (πe)) < 0 per dimension (the uniform's entropy is below
    # the Gaussian's of the same variance), and it is log 2a + E log Q(c) for any other Q.
    a, n = 1.0, 400_000
    code = np.random.default_rng(7).uniform(-a, a, size=(n, 1)).astype(np.float32)
    zeros = np.zeros_like(code)
    got = run_eagerly(uniform_code_mi_lower_bound, code, zeros, zeros + np.log(a * a / 3), a)
    np.testing.assert_allclose(got, 0.5 * np.log(6 / (np.pi * np.e)), atol=2e-3)
    assert run_eagerly(uniform_code_mi_lower_bound, code, zeros, zeros, a) < got
