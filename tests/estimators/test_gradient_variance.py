"""Fishr's gradient-variance gap: the per-example final-layer gradients against automatic
differentiation, the gap against NumPy loops, its known limits (one group, equal laws, weight 0) and
its unbiasedness for the squared gap of the population variances."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.estimators.gradient_variance import gradient_variance_gap, last_layer_gradients


def test_last_layer_gradients_match_automatic_differentiation(run_eagerly):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 5)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    layer = keras.layers.Dense(3)
    layer.build((None, 5))
    logits = layer(features)
    residuals = (tf.nn.softmax(logits) - labels).numpy()
    got = run_eagerly(last_layer_gradients, residuals, features)
    for i in range(6):
        with tf.GradientTape() as tape:
            loss = tf.nn.softmax_cross_entropy_with_logits(labels[i:i + 1], layer(features[i:i + 1]))
        kernel, bias = tape.gradient(loss, [layer.kernel, layer.bias])
        np.testing.assert_allclose(got[i], np.concatenate([kernel.numpy().ravel(), bias.numpy()]), rtol=1e-5, atol=1e-6)


def _np_gap(gradients, groups, weights, halves=True):
    """float64 loops: per group with two weighted rows in each half (``halves``) or in all, each part's
    variance of every coordinate (Bessel's correction); the even half's deviations from the mean over
    those groups times the odd half's (or the deviations squared), summed."""
    n = len(gradients)
    parts = (0, 1) if halves else (None,)
    variances = {}
    for g in range(groups.shape[1]):
        rows = [[gradients[i] for i in range(n) if groups[i, g] and weights[i] and (h is None or i % 2 == h)]
                for h in parts]
        if all(len(r) > 1 for r in rows):
            variances[g] = [np.var(np.asarray(r, np.float64), axis=0, ddof=1) for r in rows]
    if not variances:
        return 0.0
    centre = [np.mean([v[h] for v in variances.values()], axis=0) for h in range(len(parts))]
    return float(sum(np.sum((v[0] - centre[0]) * (v[-1] - centre[-1])) for v in variances.values()))


@pytest.mark.parametrize("pairs", ["halves", "none"])
@pytest.mark.parametrize("scales", [(1.0, 2.0), (1.0, 1.5, 0.5), (1.0, 1.0)])
def test_matches_numpy_loops(run_eagerly, scales, pairs):
    rng = np.random.default_rng(1)
    group = rng.integers(0, len(scales), 203)
    gradients = (rng.normal(size=(203, 4)) * np.asarray(scales)[group][:, None] + 0.3).astype(np.float32)
    groups = np.eye(len(scales), dtype=np.float32)[group]
    weights = (rng.random(203) > 0.3).astype(np.float32)
    got = run_eagerly(gradient_variance_gap, gradients, groups, weights, pairs=pairs)
    np.testing.assert_allclose(got, _np_gap(gradients, groups, weights, pairs == "halves"), rtol=1e-4, atol=1e-6)


def test_unknown_pairing_is_refused():
    with pytest.raises(ValueError, match="pairs='thirds'.*'halves', 'none'"):
        gradient_variance_gap(np.zeros((4, 2), np.float32), np.eye(2, dtype=np.float32)[[0, 1, 0, 1]], pairs="thirds")


def test_limits(run_eagerly):
    rng = np.random.default_rng(2)
    group = rng.integers(0, 2, 64)
    groups = np.eye(2, dtype=np.float32)[group]
    gradients = (rng.normal(size=(64, 3)) * np.where(group == 0, 1.0, 3.0)[:, None]).astype(np.float32)
    # One group present (the other's rows weighted 0): nothing to compare.
    assert run_eagerly(gradient_variance_gap, gradients, groups, groups[:, 0].copy()) == pytest.approx(0.0, abs=1e-7)
    # A third group without rows (Colored-MNIST's test environment) changes nothing.
    padded = np.concatenate([groups, np.zeros((64, 1), np.float32)], axis=1)
    np.testing.assert_allclose(run_eagerly(gradient_variance_gap, gradients, padded),
                               run_eagerly(gradient_variance_gap, gradients, groups), rtol=1e-6)
    # A shift of a group's gradients moves its mean, not its variance.
    shifted = gradients + 5.0 * groups[:, :1]
    np.testing.assert_allclose(run_eagerly(gradient_variance_gap, shifted, groups),
                               run_eagerly(gradient_variance_gap, gradients, groups), rtol=1e-3, atol=1e-4)


def test_unbiased_for_the_squared_gap_of_the_variances():
    """Two groups with per-coordinate standard deviations 1 and 2: the population gap is
    Σ_g ‖v_g − v̄‖² = 2 · P · ((4 − 1) / 2)² = 4.5 P; equal laws give 0. The halves' product averages
    to the truth over many batches; the square of the whole batch's deviations (``pairs="none"``) is
    biased upwards, clearly so where the truth is 0."""
    rng = np.random.default_rng(3)
    fn = tf.function(gradient_variance_gap)
    for scale, truth in ((2.0, 4.5 * 3), (1.0, 0.0)):
        estimates, squared = [], []
        for _ in range(400):
            group = rng.integers(0, 2, 200)
            gradients = (rng.normal(size=(200, 3)) * np.where(group == 0, 1.0, scale)[:, None]).astype(np.float32)
            groups = np.eye(2, dtype=np.float32)[group]
            estimates.append(float(fn(gradients, groups)))
            squared.append(float(fn(gradients, groups, pairs="none")))
        standard_error = np.std(estimates) / np.sqrt(len(estimates))
        assert abs(np.mean(estimates) - truth) < 4 * standard_error + 1e-6
        if truth == 0.0:
            assert np.mean(squared) > 10 * np.std(squared) / np.sqrt(len(squared))
