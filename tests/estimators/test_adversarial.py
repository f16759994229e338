"""C2 through a discriminator: GAN losses and the Jensen–Shannon estimate."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, stats

from mibzoo.estimators.adversarial import (
    discriminator_loss,
    generator_loss,
    js_divergence_estimate,
)

N_SAMPLES = 200_000
JS_TOL = 0.01  # Monte Carlo error with 2e5 samples per side is ~2e-3


def _js_by_quadrature(p, q):
    def integrand(x):
        px, qx = p.pdf(x), q.pdf(x)
        m = 0.5 * (px + qx)
        out = 0.0
        if px > 0:
            out += 0.5 * px * math.log(px / m)
        if qx > 0:
            out += 0.5 * qx * math.log(qx / m)
        return out
    lo = min(p.ppf(1e-12), q.ppf(1e-12))
    hi = max(p.isf(1e-12), q.isf(1e-12))
    value, _ = integrate.quad(integrand, lo, hi, limit=400, points=[p.mean(), q.mean()])
    return value


def _optimal_logits(p, q, seed):
    """Samples of p (data) and q (model) and the Bayes-optimal logits log p/q on them."""
    rng = np.random.default_rng(seed)
    x_real = p.rvs(N_SAMPLES, random_state=rng)
    x_fake = q.rvs(N_SAMPLES, random_state=rng)
    real = (p.logpdf(x_real) - q.logpdf(x_real)).astype(np.float32)
    fake = (p.logpdf(x_fake) - q.logpdf(x_fake)).astype(np.float32)
    return real, fake


CASES = [
    (stats.norm(0.0, 1.0), stats.norm(1.5, 0.7)),
    (stats.norm(0.0, 1.0), stats.norm(0.3, 1.0)),
    (stats.norm(-1.0, 2.0), stats.norm(2.0, 0.5)),
    (stats.norm(0.0, 1.0), stats.norm(12.0, 1.0)),  # nearly disjoint: JS -> log 2
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_js_estimate_matches_quadrature(run_eagerly, case):
    p, q = CASES[case]
    real, fake = _optimal_logits(p, q, seed=case)
    expected = _js_by_quadrature(p, q)
    estimate = run_eagerly(js_divergence_estimate, real, fake)
    assert estimate.dtype == np.float32
    assert abs(estimate - expected) < JS_TOL, (estimate, expected)


def test_js_estimate_zero_for_identical_distributions(run_eagerly):
    logits = np.zeros(100, np.float32)  # optimal D = 1/2 everywhere
    assert abs(run_eagerly(js_divergence_estimate, logits, logits)) < 1e-7


@pytest.mark.parametrize("case", [0, 2])
def test_discriminator_loss_minimal_at_optimal_logits(run_eagerly, case):
    p, q = CASES[case]
    real, fake = _optimal_logits(p, q, seed=case)
    best = run_eagerly(discriminator_loss, real, fake)
    # Minimum value of the value function: log 4 - 2 JS (Goodfellow et al. 2014, Thm. 1).
    assert abs(best - (math.log(4.0) - 2.0 * _js_by_quadrature(p, q))) < 2 * JS_TOL
    perturbations = {
        "scale 0.5": lambda t: 0.5 * t,
        "scale 1.5": lambda t: 1.5 * t,
        "shift +0.5": lambda t: t + 0.5,
        "shift -0.5": lambda t: t - 0.5,
        "zeros": lambda t: 0.0 * t,
    }
    for name, f in perturbations.items():
        worse = run_eagerly(discriminator_loss, f(real), f(fake))
        assert worse > best + 1e-3, (name, worse, best)


def _np_softplus(t):
    return np.logaddexp(0.0, t.astype(np.float64))


def test_losses_match_numpy_including_extreme_logits(run_eagerly):
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(size=50) * 4, [90.0, -90.0, 1e4, -1e4]]).astype(np.float32)
    fake = np.concatenate([rng.normal(size=30) * 4, [95.0, -95.0]]).astype(np.float32)
    d = run_eagerly(discriminator_loss, real, fake)
    g = run_eagerly(generator_loss, fake)
    js = run_eagerly(js_divergence_estimate, real, fake)
    np_d = _np_softplus(-real).mean() + _np_softplus(fake).mean()
    np_g = _np_softplus(-fake).mean()
    np_js = 0.5 * (-_np_softplus(-real).mean() - _np_softplus(fake).mean()) + math.log(2.0)
    for got, want in [(d, np_d), (g, np_g), (js, np_js)]:
        assert np.isfinite(got)
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_any_logit_shape_and_bfloat16(run_eagerly):
    rng = np.random.default_rng(4)
    real = rng.normal(size=(16, 1)).astype(np.float32)
    fake = rng.normal(size=(16,)).astype(np.float32)
    want = run_eagerly(discriminator_loss, real[:, 0], fake)
    got = run_eagerly(discriminator_loss, real, fake[:, None])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    got16 = run_eagerly(discriminator_loss, tf.cast(real, tf.bfloat16), tf.cast(fake, tf.bfloat16))
    assert got16.dtype == np.float32
    np.testing.assert_allclose(got16, want, rtol=2e-2)


def test_generator_loss_is_non_saturating():
    # When D confidently rejects samples (very negative logits), the gradient of
    # -log D(G(z)) stays ~ -1/n per sample; that of log(1 - D(G(z))) vanishes.
    fake = tf.constant([-10.0, -12.0, -15.0, -20.0])
    with tf.GradientTape() as tape:
        tape.watch(fake)
        loss = generator_loss(fake)
    grad = tape.gradient(loss, fake).numpy()
    np.testing.assert_allclose(grad, -0.25 * np.ones(4), rtol=1e-4)
