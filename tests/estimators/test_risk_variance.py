"""V-REx's variance of the per-group risks: a NumPy version with explicit loops, the known limits
(equal risks give 0, one group gives 0, weight 0 removes rows) and unbiasedness over the halves."""

import numpy as np
import pytest

from mibzoo.estimators.risk_variance import risk_variance


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
