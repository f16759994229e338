"""The kernel conditional moment discrepancy of a classifier's residuals within groups: a NumPy version
with explicit loops over the pairs, a closed form (a constant kernel gives the squared mean residual of
each group), and its defining property: 0 in expectation when every group's labels follow the
classifier given its input, positive when one group's conditional law differs."""

import itertools

import numpy as np
import pytest

from mibzoo.estimators.conditional_moment import kernel_conditional_moment
from mibzoo.estimators.mmd import kernel_matrix


def _np_kernel_conditional_moment(probabilities, labels, kernel, groups, weights):
    """float64 loops: per group with two weighted rows or more, the mean over its ordered pairs of
    distinct rows of (y_i − p_i)ᵀ (y_j − p_j) k_ij; those groups' means weighted by their row shares."""
    values, sizes = [], []
    for g in range(groups.shape[1]):
        rows = [i for i in range(len(labels)) if groups[i, g] and weights[i]]
        if len(rows) < 2:
            continue
        terms = [(labels[i] - probabilities[i]) @ (labels[j] - probabilities[j]) * kernel[i, j]
                 for i, j in itertools.permutations(rows, 2)]
        values.append(np.mean(terms))
        sizes.append(len(rows))
    return float(np.dot(values, sizes) / np.sum(sizes)) if values else 0.0


def _sample(rng, n, groups, shift=0.0):
    """Inputs z ``[n, 2]``; a binary classifier π(z) = σ(z_0 − z_1); labels drawn from π in group 0
    and from π + ``shift`` (clipped) in the others; one-hot groups, group 0 for about half the rows."""
    z = rng.normal(size=(n, 2)).astype(np.float32)
    p1 = 1.0 / (1.0 + np.exp(-(z[:, 0] - z[:, 1])))
    group = np.where(rng.random(n) < 0.5, 0, rng.integers(1, groups, n) if groups > 1 else 0)
    truth = np.clip(p1 + np.where(group == 0, 0.0, shift), 0.0, 1.0)
    labels = (rng.random(n) < truth).astype(int)
    probabilities = np.stack([1.0 - p1, p1], axis=-1).astype(np.float32)
    return (z, probabilities, np.eye(2, dtype=np.float32)[labels],
            np.eye(groups, dtype=np.float32)[group])


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_matches_numpy_loops(run_eagerly, groups):
    rng = np.random.default_rng(groups)
    z, probabilities, labels, members = _sample(rng, 37, groups, shift=0.3)
    kernel = np.asarray(kernel_matrix(z, z, "imq", (1.0,)))
    weights = (rng.random(37) > 0.25).astype(np.float32)
    got = run_eagerly(kernel_conditional_moment, probabilities, labels, kernel, members, weights)
    np.testing.assert_allclose(got, _np_kernel_conditional_moment(probabilities, labels, kernel, members, weights),
                               rtol=1e-4, atol=1e-7)


def test_zero_weight_rows_and_single_row_groups_are_left_out(run_eagerly):
    rng = np.random.default_rng(5)
    z, probabilities, labels, members = _sample(rng, 30, 2, shift=0.2)
    kernel = np.asarray(kernel_matrix(z, z, "imq", (1.0,)))
    members = np.concatenate([members, np.zeros((30, 1), np.float32)], axis=1)
    members[4] = [0.0, 0.0, 1.0]  # the only row of the third group: no pair, no share
    weights = np.ones(30, np.float32)
    np.testing.assert_allclose(run_eagerly(kernel_conditional_moment, probabilities, labels, kernel, members, weights),
                               _np_kernel_conditional_moment(probabilities, labels, kernel, members, weights),
                               rtol=1e-4, atol=1e-7)
    dropped = weights.copy()
    dropped[[1, 8]] = 0.0
    flipped = labels.copy()
    flipped[[1, 8]] = 1.0 - flipped[[1, 8]]  # the rows' labels no longer matter once their weight is 0
    np.testing.assert_allclose(run_eagerly(kernel_conditional_moment, probabilities, flipped, kernel, members, dropped),
                               run_eagerly(kernel_conditional_moment, probabilities, labels, kernel, members, dropped),
                               rtol=1e-5, atol=1e-8)
    assert float(kernel_conditional_moment(probabilities[:1], labels[:1], kernel[:1, :1], members[:1])) == 0.0


def test_a_constant_kernel_gives_each_groups_squared_mean_residual():
    """k ≡ 1: D_g = ‖E_g[y − π]‖² (two classes: 2 δ² for a shift δ of the label probability), so over
    a large sample the estimate is P(group 1) · 2 δ², the closed form, where group 0 contributes 0."""
    rng = np.random.default_rng(0)
    shift, rows = 0.1, 200_000
    z, probabilities, labels, members = _sample(rng, rows, 2, shift=shift)
    # Clipping at 1 takes part of the shift from the rows with π > 0.9: the exact mean shift.
    p1 = probabilities[:, 1].astype(np.float64)
    group1 = members[:, 1] > 0
    mean_shift = np.mean(np.clip(p1[group1] + shift, 0.0, 1.0) - p1[group1])
    expected = group1.mean() * 2.0 * mean_shift ** 2
    # A constant kernel's pair sums only need each group's residual sum, so the large sample stays cheap.
    residuals = labels.astype(np.float64) - probabilities
    sums = members.T.astype(np.float64) @ residuals  # [G, K]
    counts = members.sum(0)
    own = members.T @ np.sum(residuals ** 2, axis=1)
    per_group = (np.sum(sums ** 2, axis=1) - own) / (counts * (counts - 1))
    estimate = float(np.dot(per_group, counts) / counts.sum())
    np.testing.assert_allclose(estimate, expected, rtol=0.15)
    small = slice(0, 400)  # the estimator itself on a batch, against the same sums
    got = float(kernel_conditional_moment(probabilities[small], labels[small], np.ones((400, 400), np.float32),
                                          members[small]))
    residuals = residuals[small]
    sums, counts = members[small].T @ residuals, members[small].sum(0)
    own = members[small].T @ np.sum(residuals ** 2, axis=1)
    np.testing.assert_allclose(got, float(np.dot((np.sum(sums ** 2, 1) - own) / (counts * (counts - 1)), counts)
                                          / counts.sum()), rtol=1e-4, atol=1e-7)


def test_unbiased_zero_when_every_group_follows_the_classifier_and_positive_when_one_does_not():
    """Over 300 batches of 160 rows in two groups, an inverse multiquadric kernel on z: labels drawn
    from π in both groups average to 0 within three standard errors; group 1 shifted by 0.15 is far
    above it."""
    rng = np.random.default_rng(0)
    for shift, positive in ((0.0, False), (0.15, True)):
        values = []
        for _ in range(300):
            z, probabilities, labels, members = _sample(rng, 160, 2, shift=shift)
            kernel = kernel_matrix(z, z, "imq", (1.0,))
            values.append(float(kernel_conditional_moment(probabilities, labels, kernel, members)))
        values = np.array(values)
        standard_error = values.std() / np.sqrt(len(values))
        if positive:
            assert values.mean() > 10 * standard_error
        else:
            assert abs(values.mean()) < 3 * standard_error
