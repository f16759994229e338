"""The per-group recalibration gain: a NumPy version of the formula, the calibrated limit (0) and
the exact risk drop of refitting the recalibration to convergence."""

import numpy as np
import pytest

from mibzoo.estimators.recalibration import paired_gain, recalibration_gain, recalibration_half_means


def _np_row(logit, label, x):
    """One row's gradient and Hessian of −log softmax(a · l + b + W x)[y] along (a, b_1..b_{K-1},
    W's first K − 1 rows) at (1, 0, 0), in float64 with explicit features."""
    k = len(logit)
    p = np.exp(logit - logit.max())
    p /= p.sum()
    phi = np.array([[logit[c]] + [1.0 if c == j else 0.0 for j in range(k - 1)]
                    + [x[d] if c == j else 0.0 for j in range(k - 1) for d in range(len(x))]
                    for c in range(k)])
    mu = p @ phi
    return (p - label) @ phi, phi.T @ np.diag(p) @ phi - np.outer(mu, mu)


def _np_gain(logits, labels, groups, weights, inputs=None, ridge=1e-4, pairs="halves", step="newton"):
    """Independent float64 version with explicit loops: per group, the gradient and Hessian of the
    mean cross-entropy of softmax(a · l + b + W x) (b_K = 0, W's last row 0) at (1, 0, 0), even
    rows against odd rows (``pairs="halves"``) or the mean over every ordered pair of distinct rows
    (``"all"``); ``step="gradient"``: the identity in place of the Hessian."""
    logits, labels = logits.astype(np.float64), labels.astype(np.float64)
    n, k = logits.shape
    x = np.zeros((n, 0)) if inputs is None else inputs.astype(np.float64)
    gains, counts = [], []
    for g in range(groups.shape[1]):
        rows = [i for i in range(n) if groups[i, g] and weights[i]]
        even = [i for i in rows if i % 2 == 0]
        odd = [i for i in rows if i % 2 == 1]
        if (pairs == "halves" and (not even or not odd)) or len(rows) < 2:
            continue
        def grad(i):
            return _np_row(logits[i], labels[i], x[i])
        size = k + (k - 1) * x.shape[1]
        hess = np.eye(size) if step == "gradient" else sum(grad(i)[1] for i in rows) / len(rows) + ridge * np.eye(size)
        if pairs == "halves":
            g_even = sum(grad(i)[0] for i in even) / len(even)
            g_odd = sum(grad(i)[0] for i in odd) / len(odd)
            gains.append(0.5 * g_even @ np.linalg.solve(hess, g_odd))
        else:
            g = [grad(i)[0] for i in rows]
            cross = [g[i] @ np.linalg.solve(hess, g[j]) for i in range(len(g)) for j in range(len(g)) if i != j]
            gains.append(0.5 * np.mean(cross))
        counts.append(len(rows))
    counts = np.array(counts, np.float64)
    return float(np.sum(counts / counts.sum() * np.array(gains)))


def _sample(rng, n, scales, shifts, classes=2):
    """Logits, one-hot labels drawn from softmax(scale_g · logits + shift_g e_0) in group g, one-hot groups."""
    logits = rng.normal(0.0, 1.5, (n, classes)).astype(np.float32)
    group = rng.integers(0, len(scales), n)
    true = logits * np.asarray(scales)[group, None]
    true[:, 0] += np.asarray(shifts)[group]
    probs = np.exp(true - true.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(probs, 1)).sum(1)
    return logits, np.eye(classes, dtype=np.float32)[y], np.eye(len(scales), dtype=np.float32)[group]


def _exact_refit_drop(logits, labels, groups):
    """Σ_g P(g) (CE(logits) − min_{a, b} CE(a · logits + b)) on group g, refitted by Newton to
    convergence in float64: the risk drop the one-step estimate approximates."""
    logits, labels = logits.astype(np.float64), labels.astype(np.float64)
    k = logits.shape[1]
    total = 0.0
    for g in range(groups.shape[1]):
        rows = groups[:, g] > 0
        l, y = logits[rows], labels[rows]
        phi = np.concatenate([l[:, :, None], np.broadcast_to(np.eye(k, k - 1), (len(l), k, k - 1))], -1)
        def risk(theta):
            o = np.einsum("nkp,p->nk", phi, theta)
            o -= o.max(1, keepdims=True)
            return -np.mean(np.sum(y * (o - np.log(np.exp(o).sum(1, keepdims=True))), 1))
        theta = np.concatenate([[1.0], np.zeros(k - 1)])
        start = risk(theta)
        for _ in range(50):
            o = np.einsum("nkp,p->nk", phi, theta)
            p = np.exp(o - o.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            mu = np.einsum("nk,nkp->np", p, phi)
            grad = np.einsum("nk,nkp->p", p - y, phi) / len(l)
            hess = (np.einsum("nk,nkp,nkq->pq", p, phi, phi) - mu.T @ mu) / len(l)
            theta = theta - np.linalg.solve(hess, grad)
        total += rows.mean() * (start - risk(theta))
    return total


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("with_inputs", [False, True])
@pytest.mark.parametrize("pairs", ["halves", "all"])
@pytest.mark.parametrize("step", ["newton", "gradient"])
def test_matches_numpy_reference(run_eagerly, classes, with_inputs, pairs, step):
    rng = np.random.default_rng(0)
    logits, labels, groups = _sample(rng, 64, [1.3, 0.8, 1.0], [0.2, -0.1, 0.0], classes)
    weights = (rng.random(64) > 0.2).astype(np.float32)
    inputs = rng.normal(size=(64, 3)).astype(np.float32) if with_inputs else None
    got = run_eagerly(recalibration_gain, logits, labels, groups, weights, inputs, pairs=pairs, step=step)
    want = _np_gain(logits, labels, groups, weights, inputs, pairs=pairs, step=step)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_gradient_step_against_pooled_is_the_spread_of_the_groups_mean_gradients(run_eagerly):
    """A closed form at large n: with ``step="gradient"`` and ``relative_to="pooled"`` the estimate
    tends to ½ Σ_g P(g) ‖μ_g − μ‖², μ_g group g's mean gradient along (scale, shift) and μ their
    share-weighted mean (the U-statistics' difference from it is O(1 / n)). A miscalibration that
    every group shares (both scales 1.6) has μ_g = μ, so the estimate is ≈ 0 although each group's
    gradient is not."""
    rng = np.random.default_rng(12)
    for scales, shared in (([1.6, 0.7], False), ([1.6, 1.6], True)):
        logits, labels, groups = _sample(rng, 40000, scales, [0.0, 0.0])
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        rows = np.stack([np.sum((probs - labels) * logits, 1), (probs - labels)[:, 0]], 1)  # ∂CE/∂(a, b_0)
        shares = groups.mean(0)
        means = (groups.T @ rows) / groups.sum(0)[:, None]
        spread = 0.5 * float(np.sum(shares * np.sum((means - shares @ means) ** 2, 1)))
        got = run_eagerly(recalibration_gain, logits, labels, groups, pairs="all", relative_to="pooled", step="gradient")
        if shared:
            assert abs(got) < 2e-4 and np.abs(means).max() > 0.05, (got, means)  # each group's gradient is not 0
        else:
            assert spread > 2e-3
            np.testing.assert_allclose(got, spread, rtol=0.05)


def test_all_pairs_halve_the_variance_of_the_halves():
    """Batches of 200 rows from a calibrated classifier (true gain 0): both pairings are unbiased
    (their means are 0 within a few standard errors), and the U-statistic over every pair has
    about half the variance of the even-odd product (2 tr((H⁻¹Σ)²) / n² against 4 tr((H⁻¹Σ)²) / n²)."""
    rng = np.random.default_rng(5)
    estimates = {"halves": [], "all": []}
    for _ in range(300):
        logits, labels, groups = _sample(rng, 200, [1.0, 1.0], [0.0, 0.0])
        for pairs in estimates:
            estimates[pairs].append(float(recalibration_gain(logits, labels, groups, pairs=pairs)))
    for values in estimates.values():
        values = np.asarray(values)
        assert abs(values.mean()) < 4 * values.std() / np.sqrt(len(values))
    ratio = np.var(estimates["all"]) / np.var(estimates["halves"])
    assert 0.35 < ratio < 0.7, ratio


def test_unknown_pairing_is_refused():
    rng = np.random.default_rng(6)
    logits, labels, groups = _sample(rng, 8, [1.0], [0.0])
    with pytest.raises(ValueError, match="pairs='odd'.*halves"):
        recalibration_gain(logits, labels, groups, pairs="odd")


def test_a_linear_recalibration_sees_a_spurious_part_the_scale_misses(run_eagerly):
    """The logit is shape + colour, and each group wants the colour's part scaled its own way while
    the shape's stays: with the logit alone the correction must rescale both and recovers only part
    of the gain; reading [shape, colour] linearly it can reach the groups' true laws, and the gain is
    close to E KL(p(y | x, g) ‖ p(y | x)), computed in closed form from the two Bernoulli laws."""
    rng = np.random.default_rng(4)
    n = 40000
    group = rng.integers(0, 2, n)
    shape, colour = rng.normal(0.0, 1.0, n), rng.choice([-1.0, 1.0], n)
    base = 0.8 * shape + 1.7 * colour
    true = 0.8 * shape + np.array([2.2, 1.4])[group] * colour
    y = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(int)
    logits = np.stack([np.zeros(n), base], 1).astype(np.float32)
    labels, groups = np.eye(2, dtype=np.float32)[y], np.eye(2, dtype=np.float32)[group]
    inputs = np.stack([shape, colour], 1).astype(np.float32)
    scale_only = run_eagerly(recalibration_gain, logits, labels, groups)
    linear = run_eagerly(recalibration_gain, logits, labels, groups, None, inputs)
    p_true, p_base = 1 / (1 + np.exp(-true)), 1 / (1 + np.exp(-base))
    kl = np.mean(p_true * np.log(p_true / p_base) + (1 - p_true) * np.log((1 - p_true) / (1 - p_base)))
    np.testing.assert_allclose(linear, kl, rtol=0.15)
    assert 0 < scale_only < 0.85 * linear


@pytest.mark.parametrize("pairs", ["halves", "all"])
def test_calibrated_classifier_gains_nothing(run_eagerly, pairs):
    """Labels drawn from softmax(logits) in every group (E ⊥ Y | Z): the gain is 0 up to noise,
    where the square of the full-batch gradient would be biased upwards by about K / (2 n_g)."""
    rng = np.random.default_rng(1)
    logits, labels, groups = _sample(rng, 20000, [1.0, 1.0], [0.0, 0.0])
    got = run_eagerly(recalibration_gain, logits, labels, groups, pairs=pairs)
    assert abs(got) < 2e-4


@pytest.mark.parametrize("pairs", ["halves", "all"])
def test_approximates_the_exact_refit_for_group_dependent_scales(run_eagerly, pairs):
    """Each group's labels follow its own scale of the logits: the one-step gain is close to the
    risk drop of the exact per-group refit (second order: within 10% for scales 0.8 and 1.25)."""
    rng = np.random.default_rng(2)
    logits, labels, groups = _sample(rng, 40000, [1.25, 0.8], [0.15, -0.15])
    exact = _exact_refit_drop(logits, labels, groups)
    got = run_eagerly(recalibration_gain, logits, labels, groups, pairs=pairs)
    assert exact > 0.005
    np.testing.assert_allclose(got, exact, rtol=0.1)


@pytest.mark.parametrize("pairs", ["halves", "all"])
def test_weight_zero_rows_and_empty_groups_are_left_out(run_eagerly, pairs):
    rng = np.random.default_rng(3)
    logits, labels, groups = _sample(rng, 200, [1.4, 0.7], [0.0, 0.0])
    weights = (np.arange(200) % 5 != 0).astype(np.float32)
    base = run_eagerly(recalibration_gain, logits, labels, groups, weights, pairs=pairs)
    flipped = labels.copy()
    flipped[weights == 0] = flipped[weights == 0, ::-1]
    assert run_eagerly(recalibration_gain, logits, flipped, groups, weights, pairs=pairs) == pytest.approx(base, rel=1e-5)
    with_empty = np.concatenate([groups, np.zeros((200, 1), np.float32)], axis=1)
    assert run_eagerly(recalibration_gain, logits, labels, with_empty, weights, pairs=pairs) == pytest.approx(base,
                                                                                                     rel=1e-5)


def _np_half_means(logits, labels, groups, weights, inputs=None, ridge=1e-4):
    """Independent float64 version of `recalibration_half_means`: per group, the mean row gradient
    of the even and of the odd rows (0 where a half is empty), their counts, and the Hessian."""
    logits, labels = logits.astype(np.float64), labels.astype(np.float64)
    x = np.zeros((len(logits), 0)) if inputs is None else inputs.astype(np.float64)
    size = logits.shape[1] + (logits.shape[1] - 1) * x.shape[1]
    means, counts = np.zeros((2, groups.shape[1], size)), np.zeros((2, groups.shape[1]))
    hessians = np.tile(ridge * np.eye(size), (groups.shape[1], 1, 1))
    for g in range(groups.shape[1]):
        rows = [i for i in range(len(logits)) if groups[i, g] and weights[i]]
        for i in rows:
            grad, hess = _np_row(logits[i], labels[i], x[i])
            means[i % 2, g] += grad
            counts[i % 2, g] += 1
            hessians[g] += hess / len(rows)
    return means / np.maximum(counts, 1)[:, :, None], counts, hessians


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("with_inputs", [False, True])
def test_half_means_and_their_pairing_match_numpy_and_the_halves_gain(run_eagerly, classes, with_inputs):
    """`recalibration_half_means` against explicit loops (a fourth group has no rows), and
    `paired_gain` of the batch's own halves with the counts of the groups kept is
    `recalibration_gain` with ``pairs="halves"``."""

    rng = np.random.default_rng(7)
    logits, labels, groups = _sample(rng, 48, [1.3, 0.8, 1.0], [0.2, -0.1, 0.0], classes)
    groups = np.concatenate([groups, np.zeros((48, 1), np.float32)], 1)
    weights = (rng.random(48) > 0.2).astype(np.float32)
    inputs = rng.normal(size=(48, 3)).astype(np.float32) if with_inputs else None
    half_means, half_counts, hessian, counts = run_eagerly(recalibration_half_means, logits, labels, groups,
                                                           weights, inputs)
    want_means, want_counts, want_hessian = _np_half_means(logits, labels, groups, weights, inputs)
    np.testing.assert_allclose(half_means, want_means, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(half_counts, want_counts)
    np.testing.assert_allclose(hessian, want_hessian, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(counts, want_counts.sum(0))
    kept = counts * (half_counts[0] > 0) * (half_counts[1] > 0)
    paired = run_eagerly(paired_gain, half_means[0], half_means[1], hessian, kept)
    np.testing.assert_allclose(paired, _np_gain(logits, labels, groups, weights, inputs), rtol=1e-4, atol=1e-6)


def test_paired_gain_weighs_groups_by_share_and_leaves_out_weight_zero():
    """Σ_g P(g) ½ a_gᵀ H_g⁻¹ b_g in closed form for diagonal Hessians; a group of weight 0 is left out."""

    first = np.array([[1.0, 2.0], [0.5, -1.0], [9.0, 9.0]], np.float32)
    second = np.array([[2.0, 1.0], [1.0, 1.0], [9.0, 9.0]], np.float32)
    hessian = np.stack([np.diag([2.0, 4.0]), np.diag([1.0, 0.5]), np.eye(2)]).astype(np.float32)
    gain = float(paired_gain(first, second, hessian, np.array([30.0, 10.0, 0.0], np.float32)))
    want = 0.75 * 0.5 * (1.0 * 2.0 / 2.0 + 2.0 * 1.0 / 4.0) + 0.25 * 0.5 * (0.5 * 1.0 / 1.0 - 1.0 * 1.0 / 0.5)
    np.testing.assert_allclose(gain, want, rtol=1e-6)


@pytest.mark.parametrize("pairs", ["halves", "all"])
@pytest.mark.parametrize("with_inputs", [False, True])
def test_relative_to_pooled_is_the_group_gain_minus_the_pooled_gain(run_eagerly, pairs, with_inputs):
    """Against NumPy: the per-group gain minus the gain of one recalibration for every weighted row
    of the kept groups, pooled (the same pairing, the pooled Hessian)."""
    rng = np.random.default_rng(9)
    logits, labels, groups = _sample(rng, 60, [1.3, 0.8, 1.0], [0.2, -0.1, 0.0])
    weights = (rng.random(60) > 0.2).astype(np.float32)
    inputs = rng.normal(size=(60, 2)).astype(np.float32) if with_inputs else None
    got = run_eagerly(recalibration_gain, logits, labels, groups, weights, inputs, pairs=pairs, relative_to="pooled")
    pooled = np.ones((60, 1), np.float32)
    want = (_np_gain(logits, labels, groups, weights, inputs, pairs=pairs)
            - _np_gain(logits, labels, pooled, weights, inputs, pairs=pairs))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_relative_to_pooled_ignores_a_miscalibration_shared_by_every_group():
    """40,000 rows whose true law rescales the logits by 1.6 in both groups: each group gains from
    a recalibration (the identity gain is large), but no group more than the pooled one does (the
    pooled-relative gain is ≈ 0). With scales 1.6 and 0.7 the pooled-relative gain is close to the
    exact refits' difference, Σ_g P(g) CE_g(best pooled) − Σ_g P(g) CE_g(best own)."""
    rng = np.random.default_rng(10)
    logits, labels, groups = _sample(rng, 40000, [1.6, 1.6], [0.0, 0.0])
    shared = float(recalibration_gain(logits, labels, groups))
    relative = float(recalibration_gain(logits, labels, groups, relative_to="pooled"))
    assert shared > 0.01 and abs(relative) < 0.001, (shared, relative)

    logits, labels, groups = _sample(rng, 40000, [1.6, 0.7], [0.0, 0.0])
    relative = float(recalibration_gain(logits, labels, groups, relative_to="pooled"))
    exact = _exact_refit_drop(logits, labels, groups) - _exact_refit_drop(logits, labels, np.ones((40000, 1)))
    assert exact > 0.01
    np.testing.assert_allclose(relative, exact, rtol=0.25)


def test_unknown_step_is_refused():
    rng = np.random.default_rng(13)
    logits, labels, groups = _sample(rng, 8, [1.0], [0.0])
    with pytest.raises(ValueError, match="step='newtn'.*gradient"):
        recalibration_gain(logits, labels, groups, step="newtn")


def test_unknown_reference_is_refused():
    rng = np.random.default_rng(11)
    logits, labels, groups = _sample(rng, 8, [1.0], [0.0])
    with pytest.raises(ValueError, match="relative_to='mean'.*pooled"):
        recalibration_gain(logits, labels, groups, relative_to="mean")
