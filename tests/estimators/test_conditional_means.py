"""The whitened distance between groups' label-conditional means, against NumPy and a closed form."""

import numpy as np

from mibzoo.estimators.conditional_means import group_conditional_mean_gap


def _np_gap(x, labels, groups, weights, ridge):
    """Independent float64 reference: explicit even/odd row sets per (label, group) cell, the pooled
    within-cell covariance of each label, and the mean over kept group pairs, weighted by P(y)."""
    x = x.astype(np.float64)
    rows = np.arange(len(x))
    total = share = 0.0
    for y in np.unique(labels):
        cells = [(labels == y) & (groups == g) & (weights > 0) for g in range(groups.max() + 1)]
        centred = np.concatenate([x[c] - x[c].mean(0) for c in cells if c.any()])
        precision = np.linalg.inv(centred.T @ centred / len(centred) + ridge * np.eye(x.shape[1]))
        half = lambda c, parity: x[c & (rows % 2 == parity)]  # noqa: E731
        values = []
        for g in range(len(cells)):
            for h in range(g + 1, len(cells)):
                parts = [half(cells[g], 0), half(cells[g], 1), half(cells[h], 0), half(cells[h], 1)]
                if min(len(p) for p in parts) == 0:
                    continue
                even, odd = parts[0].mean(0) - parts[2].mean(0), parts[1].mean(0) - parts[3].mean(0)
                values.append(even @ precision @ odd)
        if values:
            n = sum(c.sum() for c in cells)
            total, share = total + n * np.mean(values), share + n
    return total / share


def test_matches_numpy_reference(run_eagerly):
    """Three groups (group 2 has label 1 in one half only, so its pairs for label 1 are skipped),
    two labels, some rows weighted 0."""
    rng = np.random.default_rng(4)
    rows = 60
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    labels, groups = rng.integers(0, 2, rows), rng.integers(0, 3, rows)
    groups[(labels == 1) & (groups == 2) & (np.arange(rows) % 2 == 1)] = 0
    weights = (rng.random(rows) > 0.2).astype(np.float32)
    x[groups == 1] += 0.5 * labels[groups == 1, None]
    got = run_eagerly(group_conditional_mean_gap, x, np.eye(2, dtype=np.float32)[labels],
                      np.eye(3, dtype=np.float32)[groups], weights, ridge=0.1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _np_gap(x, labels, groups, weights, 0.1), rtol=1e-4, atol=1e-6)


def test_near_zero_for_label_driven_shifts_and_amplitude_free_for_a_colour(run_eagerly, coloured_groups):
    """A 'shape' that depends on the label alike in both groups: ≈ 0, although the groups' label
    shares differ. A 'colour' agreeing with the label 90 % / 80 % of the time in the two groups counts
    the same whether it is encoded at amplitude 1 or 0.01 (with its noise scaled alike): the distance
    is invariant to a feature's scale, and near its population value (f₀ − f₁)² / Var(colour | y) with
    f_g the sample's flip shares (the colour's within-label variance is f(1 − f) times its amplitude
    squared, plus its noise)."""
    groups, labels, shape, flip, rng = coloured_groups(20000)
    one_hot = np.eye(2, dtype=np.float32)
    invariant = run_eagerly(group_conditional_mean_gap, shape.astype(np.float32), one_hot[labels], one_hot[groups],
                            ridge=1e-8)
    assert abs(invariant) < 2e-3
    unit = np.where(flip, 1 - labels, labels)[:, None] + 0.1 * rng.normal(size=(len(labels), 1))
    gaps = [run_eagerly(group_conditional_mean_gap, np.concatenate([shape, a * unit], 1).astype(np.float32),
                        one_hot[labels], one_hot[groups], ridge=1e-10) for a in (1.0, 0.01)]
    np.testing.assert_allclose(gaps[0], gaps[1], rtol=1e-3)
    want = 0.0
    for y in (0, 1):
        shares = [flip[(labels == y) & (groups == g)].mean() for g in (0, 1)]
        spread = np.mean([s * (1 - s) for s in shares]) + 0.01
        want += np.mean(labels == y) * (shares[0] - shares[1]) ** 2 / spread
    assert want > 0.03
    np.testing.assert_allclose(gaps[0], want, rtol=0.25)
