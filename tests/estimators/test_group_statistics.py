"""The per-group reductions shared by the environment estimators, against NumPy loops."""

import itertools

import numpy as np

from mibzoo.estimators.group_statistics import group_pair_means, share_weighted_mean


def test_group_pair_means_is_the_u_statistic_of_any_pair_function(run_eagerly):
    rng = np.random.default_rng(2)
    pairs = rng.normal(size=(9, 9)).astype(np.float32)
    pairs = pairs + pairs.T
    members = np.eye(2, dtype=np.float32)[[0, 1, 0, 0, 1, 1, 0, 1, 1]]
    weights = np.array([1, 1, 0, 1, 1, 1, 1, 0, 1], np.float32)
    means, kept, counts = run_eagerly(group_pair_means, pairs, members, weights)
    for g in range(2):
        rows = [i for i in range(9) if members[i, g] and weights[i]]
        np.testing.assert_allclose(means[g], np.mean([pairs[i, j] for i, j in itertools.permutations(rows, 2)]),
                                   rtol=1e-5)
        assert counts[g] == len(rows) and kept[g] == 1.0


def test_share_weighted_mean_weights_each_kept_group_by_its_rows(run_eagerly):
    values = np.array([2.0, -1.0, 7.0], np.float32)
    counts = np.array([30.0, 10.0, 0.0], np.float32)  # the third group left out
    np.testing.assert_allclose(run_eagerly(share_weighted_mean, values, counts), (2.0 * 30 - 1.0 * 10) / 40, rtol=1e-6)
    assert float(run_eagerly(share_weighted_mean, values, np.zeros(3, np.float32))) == 0.0
