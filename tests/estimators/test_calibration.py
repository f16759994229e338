"""The per-group squared kernel calibration error: a NumPy version with explicit loops over the pairs,
the known limits (weight 0 removes rows, a group of one row is left out), and its defining property:
0 in expectation for a calibrated classifier, positive for a miscalibrated one."""

import itertools

import numpy as np
import pytest

from mibzoo.estimators.calibration import kernel_calibration_error


def _np_kernel_calibration_error(probabilities, labels, groups, weights, bandwidth):
    """float64 loops: per group with two weighted rows or more, the mean over its ordered pairs of
    distinct rows of (y_i − p_i)ᵀ (y_j − p_j) exp(−½ Σ_k |p_ik − p_jk| / ν); the mean over those groups."""
    per_group = []
    for g in range(groups.shape[1]):
        rows = [i for i in range(len(labels)) if groups[i, g] and weights[i]]
        if len(rows) < 2:
            continue
        terms = [(labels[i] - probabilities[i]) @ (labels[j] - probabilities[j])
                 * np.exp(-0.5 * np.abs(probabilities[i] - probabilities[j]).sum() / bandwidth)
                 for i, j in itertools.permutations(rows, 2)]
        per_group.append(np.mean(terms))
    return float(np.mean(per_group)) if per_group else 0.0


def _sample(rng, n, classes, groups, miscalibration=0.0):
    """Class probabilities p, labels drawn from p shifted towards class 0 by ``miscalibration``."""
    probabilities = rng.dirichlet(np.ones(classes), n)
    truth = probabilities.copy()
    truth[:, 0] += miscalibration
    truth = np.clip(truth, 1e-6, None)
    truth /= truth.sum(-1, keepdims=True)
    labels = np.array([rng.choice(classes, p=t) for t in truth])
    return (probabilities.astype(np.float32), np.eye(classes, dtype=np.float32)[labels],
            np.eye(groups, dtype=np.float32)[rng.integers(0, groups, n)])


@pytest.mark.parametrize("classes, groups, bandwidth", [(2, 2, 0.4), (3, 3, 0.4), (2, 3, 1.5)])
def test_matches_numpy_loops(run_eagerly, classes, groups, bandwidth):
    rng = np.random.default_rng(classes + groups)
    probabilities, labels, members = _sample(rng, 41, classes, groups, miscalibration=0.2)
    weights = (rng.random(41) > 0.25).astype(np.float32)
    got = run_eagerly(kernel_calibration_error, probabilities, labels, members, weights, bandwidth=bandwidth)
    np.testing.assert_allclose(got, _np_kernel_calibration_error(probabilities, labels, members, weights, bandwidth),
                               rtol=1e-4, atol=1e-7)


def test_zero_weight_rows_and_single_row_groups_are_left_out(run_eagerly):
    rng = np.random.default_rng(3)
    probabilities, labels, members = _sample(rng, 30, 2, 2)
    weights = np.ones(30, np.float32)
    members = np.concatenate([members, np.zeros((30, 1), np.float32)], axis=1)
    members[7] = [0.0, 0.0, 1.0]  # the only row of the third group
    expected = _np_kernel_calibration_error(probabilities, labels, members, weights, 0.4)
    np.testing.assert_allclose(run_eagerly(kernel_calibration_error, probabilities, labels, members, weights),
                               expected, rtol=1e-4, atol=1e-7)
    dropped = weights.copy()
    dropped[[2, 9]] = 0.0
    flipped = labels.copy()
    flipped[[2, 9]] = 1.0 - flipped[[2, 9]]  # the rows' labels no longer matter once their weight is 0
    np.testing.assert_allclose(run_eagerly(kernel_calibration_error, probabilities, flipped, members, dropped),
                               run_eagerly(kernel_calibration_error, probabilities, labels, members, dropped),
                               rtol=1e-5, atol=1e-8)
    assert float(kernel_calibration_error(probabilities[:1], labels[:1], members[:1])) == 0.0


def test_unbiased_zero_when_calibrated_and_positive_when_not():
    """Over 300 batches of 120 rows in two groups: labels drawn from the predicted probabilities
    average to 0 within three standard errors; a shift of 0.15 towards one class is far above it."""
    rng = np.random.default_rng(0)
    for miscalibration, positive in ((0.0, False), (0.15, True)):
        values = np.array([float(kernel_calibration_error(*_sample(rng, 120, 2, 2, miscalibration)))
                           for _ in range(300)])
        standard_error = values.std() / np.sqrt(len(values))
        if positive:
            assert values.mean() > 10 * standard_error
        else:
            assert abs(values.mean()) < 3 * standard_error


def test_refuses_a_non_positive_bandwidth():
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        kernel_calibration_error(np.ones((2, 2), np.float32) / 2, np.eye(2, dtype=np.float32),
                                 np.ones((2, 1), np.float32), bandwidth=0.0)
