"""V-REx's variance of the per-group risks: a NumPy version with explicit loops, the known limits
(equal risks give 0, one group gives 0, weight 0 removes rows) and unbiasedness over the halves."""

import numpy as np
import pytest

from mibzoo.estimators.risk_variance import group_risks, lagged_risk_variance, risk_variance


def _np_risk_variance(losses, groups, weights):
    """float64 loops: per group kept, the mean loss of its even and of its odd weighted rows; the
    product of their deviations from the mean over the kept groups, averaged over those groups."""
    n = len(losses)
    means = {}
    for g in range(groups.shape[1]):
        even = [losses[i] for i in range(n) if groups[i, g] and weights[i] and i % 2 == 0]
        odd = [losses[i] for i in range(n) if groups[i, g] and weights[i] and i % 2 == 1]
        if even and odd:
            means[g] = (np.mean(even), np.mean(odd))
    if not means:
        return 0.0
    centre = [np.mean([m[h] for m in means.values()]) for h in (0, 1)]
    return float(np.mean([(m[0] - centre[0]) * (m[1] - centre[1]) for m in means.values()]))


def _sample(rng, n, shifts):
    group = rng.integers(0, len(shifts), n)
    losses = rng.exponential(1.0, n) + np.asarray(shifts)[group]
    return losses.astype(np.float32), np.eye(len(shifts), dtype=np.float32)[group]


@pytest.mark.parametrize("shifts", [(0.0, 0.3), (0.0, 0.3, -0.2), (0.1, 0.1)])
def test_matches_numpy_loops(run_eagerly, shifts):
    rng = np.random.default_rng(1)
    losses, groups = _sample(rng, 101, shifts)
    weights = (rng.random(101) > 0.3).astype(np.float32)
    got = run_eagerly(risk_variance, losses, groups, weights)
    np.testing.assert_allclose(got, _np_risk_variance(losses, groups, weights), rtol=1e-4, atol=1e-7)


def test_two_groups_is_a_quarter_of_the_squared_risk_difference(run_eagerly):
    """Rows whose loss is constant within each group: both halves see the exact risks."""
    groups = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 0, 0, 1]]
    losses = np.where(groups[:, 0] > 0, 0.4, 0.9).astype(np.float32)
    np.testing.assert_allclose(run_eagerly(risk_variance, losses, groups), (0.9 - 0.4) ** 2 / 4, rtol=1e-6)


def test_limits(run_eagerly):
    rng = np.random.default_rng(2)
    losses, groups = _sample(rng, 64, (0.0, 0.5))
    # Equal constant risks in every group: no variance.
    assert run_eagerly(risk_variance, np.full(64, 0.7, np.float32), groups) == pytest.approx(0.0, abs=1e-7)
    # One group present (the other's rows weighted 0): nothing to compare.
    assert run_eagerly(risk_variance, losses, groups, groups[:, 0].copy()) == pytest.approx(0.0, abs=1e-7)
    # A third group with no rows (Colored-MNIST's test environment) changes nothing.
    padded = np.concatenate([groups, np.zeros((64, 1), np.float32)], axis=1)
    np.testing.assert_allclose(run_eagerly(risk_variance, losses, padded), run_eagerly(risk_variance, losses, groups),
                               rtol=1e-6)


def test_unbiased_where_the_square_of_the_means_is_not():
    """Fresh batches of 200 rows from groups whose losses are 1 + Exponential(1) shifted by 0 and 0.2:
    the variance of the two risks is 0.01. The halves' estimate averages to it; the square of each
    group's batch mean (the naive estimate) is biased upwards by the variance of those means
    (about (1 / 100) / 2 here), half again as large as the signal."""
    rng = np.random.default_rng(3)
    estimates, naive = [], []
    for _ in range(1000):
        losses, groups = _sample(rng, 200, (0.0, 0.2))
        estimates.append(float(risk_variance(losses, groups)))
        naive.append(np.var([losses[groups[:, g] > 0].mean() for g in range(2)]))
    standard_error = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - 0.01) < 4 * standard_error
    assert np.mean(naive) - 0.01 > 0.003


def _np_lagged_risk_variance(losses, groups, reference, known, weights):
    """float64 loops: per group with a weighted row in the batch and a known reference, the batch's
    mean loss and the reference; the product of their deviations from their means over those
    groups, averaged over them."""
    kept = {}
    for g in range(groups.shape[1]):
        rows = [losses[i] for i in range(len(losses)) if groups[i, g] and weights[i]]
        if rows and known[g]:
            kept[g] = (np.mean(rows), reference[g])
    if not kept:
        return 0.0
    centre = [np.mean([k[h] for k in kept.values()]) for h in (0, 1)]
    return float(np.mean([(k[0] - centre[0]) * (k[1] - centre[1]) for k in kept.values()]))


@pytest.mark.parametrize("known", [(1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0)])
def test_lagged_matches_numpy_loops(run_eagerly, known):
    rng = np.random.default_rng(4)
    losses, groups = _sample(rng, 90, (0.0, 0.3, -0.2))
    weights = (rng.random(90) > 0.3).astype(np.float32)
    reference = np.array([1.05, 1.2, 0.7], np.float32)
    known = np.asarray(known, np.float32)
    got = run_eagerly(lagged_risk_variance, losses, groups, reference, known, weights)
    np.testing.assert_allclose(got, _np_lagged_risk_variance(losses, groups, reference, known, weights),
                               rtol=1e-4, atol=1e-7)


def test_lagged_limits(run_eagerly):
    rng = np.random.default_rng(5)
    losses, groups = _sample(rng, 64, (0.0, 0.5))
    # A reference equal in every group has no deviation: 0 whatever the batch.
    assert run_eagerly(lagged_risk_variance, losses, groups, np.full(2, 0.9, np.float32),
                       np.ones(2, np.float32)) == pytest.approx(0.0, abs=1e-7)
    # One group kept: nothing to compare.
    assert run_eagerly(lagged_risk_variance, losses, groups, np.array([1.0, 1.5], np.float32),
                       np.array([1.0, 0.0], np.float32)) == pytest.approx(0.0, abs=1e-7)
    # Two groups with the exact risks as reference: (R_1 − R_2)² / 4, as `risk_variance`.
    constant = np.where(groups[:, 0] > 0, 0.4, 0.9).astype(np.float32)
    np.testing.assert_allclose(run_eagerly(lagged_risk_variance, constant, groups, np.array([0.4, 0.9], np.float32),
                                           np.ones(2, np.float32)), (0.9 - 0.4) ** 2 / 4, rtol=1e-6)


def test_group_risks_are_the_weighted_means(run_eagerly):
    rng = np.random.default_rng(6)
    losses, groups = _sample(rng, 40, (0.0, 0.3, 0.1))
    weights = (rng.random(40) > 0.5).astype(np.float32)
    weights[groups[:, 2] > 0] = 0.0
    risks, seen = run_eagerly(group_risks, losses, groups, weights)
    want = [losses[(groups[:, g] > 0) & (weights > 0)].mean() for g in range(2)]
    np.testing.assert_allclose(risks, want + [0.0], rtol=1e-5)
    np.testing.assert_array_equal(seen, [1.0, 1.0, 0.0])


def test_lagged_is_unbiased_and_its_gradient_carries_the_references_noise_only():
    """Fresh batches as above (true variance 0.01), the true risks (1.0 and 1.2) as reference: the
    lagged estimate averages to 0.01. Its gradient in each row's loss is the reference's deviation
    over the group's rows, the same on every batch, where the halves' gradient multiplies by the
    other half's deviation, whose noise at 100 rows a group is larger than the signal 0.1."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    reference, known = np.array([1.0, 1.2], np.float32), np.ones(2, np.float32)
    estimates, lagged_grads, halves_grads = [], [], []
    for _ in range(400):
        losses, groups = _sample(rng, 200, (0.0, 0.2))
        estimates.append(float(lagged_risk_variance(losses, groups, reference, known)))
        for fn, out in ((lambda v: lagged_risk_variance(v, groups, reference, known), lagged_grads),
                        (lambda v: risk_variance(v, groups), halves_grads)):
            v = tf.constant(losses)
            with tf.GradientTape() as tape:
                tape.watch(v)
                value = fn(v)
            grad = tape.gradient(value, v).numpy()
            # Per row of group 1: the lagged estimate's is (m_1 − m̄) / (2 n_1) with m_1 − m̄ = 0.1.
            out.append(grad[groups[:, 1] > 0].sum())
    standard_error = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - 0.01) < 4 * standard_error
    np.testing.assert_allclose(lagged_grads, 0.05, rtol=1e-4)
    assert np.std(halves_grads) > 10 * np.std(lagged_grads) and np.std(halves_grads) > 0.02
