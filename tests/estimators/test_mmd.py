"""Unbiased MMD² with RBF and inverse-multiquadric kernels."""

import numpy as np
import pytest
import tensorflow as tf

from mibzoo.estimators.mmd import hsic, kernel_matrix, mmd

H0_TOL = 3e-3  # |MMD²_u| for two 1000-samples of one law; std of the estimator ~5e-4
SHIFT_TOL = 0.03  # vs the closed form, 2000 samples per side; std ~1e-2


def _np_mmd(x, y, kernel, scales):
    """Independent float64 reference with explicit loops over pairs."""
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    d = x.shape[1]
    scales = np.atleast_1d(scales).astype(np.float64)

    def k(a, b):
        r2 = np.sum((a - b) ** 2)
        if kernel == "rbf":
            vals = np.exp(-r2 / (2 * scales**2))
        else:
            c = 2 * d * scales**2
            vals = c / (c + r2)
        return vals.mean()

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def _gaussian_rbf_mmd2(mu1, cov1, mu2, cov2, s):
    """Population MMD² between two Gaussians for k = exp(-|x-y|²/(2 s²)).

    For x ~ N(a, A), y ~ N(b, B) independent, x - y ~ N(a - b, A + B) and
    E k = det(I + (A + B)/s²)^(-1/2) exp(-½ δᵀ (s² I + A + B)^(-1) δ).
    """
    def ek(a, A, b, B):
        delta, S = a - b, A + B
        dim = len(delta)
        return (np.linalg.det(np.eye(dim) + S / s**2) ** -0.5
                * np.exp(-0.5 * delta @ np.linalg.solve(s**2 * np.eye(dim) + S, delta)))
    return ek(mu1, cov1, mu1, cov1) + ek(mu2, cov2, mu2, cov2) - 2 * ek(mu1, cov1, mu2, cov2)


@pytest.mark.parametrize("kernel,scales", [
    ("rbf", 1.0), ("rbf", (0.3, 1.0, 2.5)), ("imq", 1.0), ("imq", (0.5, 2.0)),
])
def test_matches_numpy_reference(run_eagerly, kernel, scales):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    y = (rng.normal(size=(5, 3)) + 0.5).astype(np.float32)
    got = run_eagerly(mmd, x, y, kernel=kernel, scales=scales)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _np_mmd(x, y, kernel, scales), atol=1e-5)


@pytest.mark.parametrize("kernel,scales", [("rbf", 1.0), ("rbf", (0.5, 1.0, 2.0)), ("imq", 1.0)])
def test_same_distribution_near_zero(run_eagerly, kernel, scales):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    y = rng.normal(size=(1000, 2)).astype(np.float32)
    got = run_eagerly(mmd, x, y, kernel=kernel, scales=scales)
    assert abs(got) < H0_TOL, got


@pytest.mark.parametrize("scales", [1.0, (0.5, 1.0, 2.0)])
def test_shift_matches_gaussian_closed_form(run_eagerly, scales):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 2)).astype(np.float32)
    y = (rng.normal(size=(2000, 2)) + [1.0, 0.0]).astype(np.float32)
    got = run_eagerly(mmd, x, y, kernel="rbf", scales=scales)
    eye, zero, shift = np.eye(2), np.zeros(2), np.array([1.0, 0.0])
    want = np.mean([_gaussian_rbf_mmd2(zero, eye, shift, eye, s) for s in np.atleast_1d(scales)])
    assert abs(got - want) < SHIFT_TOL, (got, want)
    assert got > 10 * H0_TOL


def test_imq_shift_clearly_positive(run_eagerly):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 2)).astype(np.float32)
    y = (rng.normal(size=(2000, 2)) + [1.0, 0.0]).astype(np.float32)
    got = run_eagerly(mmd, x, y, kernel="imq", scales=1.0)
    assert got > 10 * H0_TOL, got


def test_image_shaped_inputs_are_flattened_and_bfloat16_cast(run_eagerly):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2, 2, 1)).astype(np.float32)
    y = rng.normal(size=(4, 2, 2, 1)).astype(np.float32)
    flat = run_eagerly(mmd, x.reshape(6, 4), y.reshape(4, 4), kernel="imq")
    np.testing.assert_allclose(run_eagerly(mmd, x, y, kernel="imq"), flat, atol=1e-6)
    np.testing.assert_allclose(flat, _np_mmd(x, y, "imq", 1.0), atol=1e-5)
    got16 = run_eagerly(mmd, tf.cast(x, tf.bfloat16), tf.cast(y, tf.bfloat16), kernel="imq")
    assert got16.dtype == np.float32
    np.testing.assert_allclose(got16, flat, atol=2e-2)


def test_dynamic_batch_under_tf_function():
    fn = tf.function(lambda a, b: mmd(a, b, scales=(1.0, 2.0)),
                     input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([None, 3])])
    rng = np.random.default_rng(4)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    y = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(fn(x, y).numpy(), _np_mmd(x, y, "rbf", (1.0, 2.0)), atol=1e-5)


def test_kernel_matrix_diagonal_is_one_and_bad_args_raise():
    x = np.random.default_rng(5).normal(size=(5, 3)).astype(np.float32)
    for kernel in ("rbf", "imq"):
        k = np.asarray(kernel_matrix(x, x, kernel, (0.5, 1.0)))
        np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="kernel"):
        mmd(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="scales"):
        mmd(x, x, scales=(1.0, -2.0))


# ----- HSIC: MMD between a joint law and the product of its marginals (I(z; u) of Eq. 17) ---------

def _np_hsic_u_statistic(x, y, kernel="imq"):
    """Reference: the U-statistic over distinct 4-tuples, h = k_ij l_ij + k_ij l_qr − 2 k_ij l_iq
    (Song et al. 2012, Theorem 2; symmetrization leaves the mean over all 4-tuples unchanged)."""
    import itertools
    k = np.asarray(kernel_matrix(x, x, kernel, (1.0,)), np.float64)
    l = np.asarray(kernel_matrix(y, y, kernel, (1.0,)), np.float64)
    values = [k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
              for i, j, q, r in itertools.permutations(range(len(x)), 4)]
    return float(np.mean(values))


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_hsic_matches_the_u_statistic_over_four_tuples(run_eagerly, kernel):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    y = np.concatenate([x[:, :1] + 0.3 * rng.normal(size=(9, 1)), rng.normal(size=(9, 1))], 1).astype(np.float32)
    got = run_eagerly(hsic, x, y, kernel=kernel)
    np.testing.assert_allclose(got, _np_hsic_u_statistic(x, y, kernel), rtol=1e-4)


def test_hsic_near_zero_for_independent_and_positive_for_dependent_samples(run_eagerly):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    independent = rng.normal(size=(1000, 3)).astype(np.float32)
    dependent = np.concatenate([x[:, :1] + 0.5 * rng.normal(size=(1000, 1)), independent[:, 1:]], 1)
    null = run_eagerly(hsic, x, independent)
    alternative = run_eagerly(hsic, x, dependent.astype(np.float32))
    # Measured: |null| ≈ 1e-5 (its std over seeds ≈ 3e-5), alternative ≈ 8e-3.
    assert abs(null) < 2e-4 and alternative > 20 * 2e-4, (null, alternative)


def _np_group_conditional_mmd(x, labels, groups, weights, kernel, scales):
    """Independent reference: the P(y)-weighted mean over labels of the mean over group pairs of
    `_np_mmd` on the slices themselves (rows with weight 0 dropped)."""
    total = share = 0.0
    for y in np.unique(labels):
        values = []
        for g in range(groups.max() + 1):
            for h in range(g + 1, groups.max() + 1):
                a = x[(labels == y) & (groups == g) & (weights > 0)]
                b = x[(labels == y) & (groups == h) & (weights > 0)]
                if len(a) >= 2 and len(b) >= 2:
                    values.append(_np_mmd(a, b, kernel, scales))
        if values:
            n = np.sum((labels == y) & (weights > 0))
            total, share = total + n * np.mean(values), share + n
    return total / share


@pytest.mark.parametrize("kernel,scales", [("rbf", (0.5, 2.0)), ("imq", 1.0)])
def test_group_conditional_mmd_matches_slices_of_the_numpy_reference(run_eagerly, kernel, scales):
    """Three groups (one pair of them left with a single row for label 1, so that pair is skipped),
    two labels, some rows weighted 0."""
    from mibzoo.estimators.mmd import group_conditional_mmd

    rng = np.random.default_rng(3)
    rows = 40
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    labels, groups = rng.integers(0, 2, rows), rng.integers(0, 3, rows)
    groups[(labels == 1) & (groups == 2)] = 0
    groups[np.flatnonzero(labels == 1)[0]] = 2  # a single labelled row of label 1 in group 2
    weights = (rng.random(rows) > 0.25).astype(np.float32)
    weights[np.flatnonzero(labels == 1)[0]] = 1.0
    x[groups == 1] += 0.7 * labels[groups == 1, None]
    got = run_eagerly(group_conditional_mmd, x, np.eye(2, dtype=np.float32)[labels],
                      np.eye(3, dtype=np.float32)[groups], weights, kernel=kernel, scales=scales)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _np_group_conditional_mmd(x, labels, groups, weights, kernel, scales),
                               atol=1e-5)


def test_group_conditional_mmd_is_zero_for_label_driven_shifts_and_matches_the_closed_form_of_a_colour(
        run_eagerly, coloured_groups):
    """x depends on the label alike in both groups (a 'shape'): ≈ 0, although x's marginal law differs
    between the groups, whose label shares differ. Then x also carries a 'colour' that agrees with the
    label 90 % of the time in one group and 80 % in the other (Colored-MNIST's construction): within
    a label the two groups' laws are the mixtures (1 − f_g) P_agree + f_g P_flip, whose MMD² is
    (f_0 − f_1)² ‖μ_agree − μ_flip‖², with ‖μ_agree − μ_flip‖² = 2 (E k(same colour) − E k(other
    colour)) in closed form for the RBF kernel (Gaussian shape and colour noise); f_g are the flip
    shares the sample realized."""
    from mibzoo.estimators.mmd import group_conditional_mmd

    groups, labels, shape, flip, rng = coloured_groups(4000)
    one_hot = np.eye(2, dtype=np.float32)
    invariant = run_eagerly(group_conditional_mmd, shape.astype(np.float32), one_hot[labels], one_hot[groups],
                            kernel="rbf", scales=1.0)
    assert abs(invariant) < H0_TOL
    noise, gap = 0.1, 3.0
    colour = np.where(flip, 1 - labels, labels)[:, None] * gap + noise * rng.normal(size=(len(labels), 1))
    leaking = run_eagerly(group_conditional_mmd, np.concatenate([shape, colour], 1).astype(np.float32),
                          one_hot[labels], one_hot[groups], kernel="rbf", scales=1.0)
    # E exp(-|d|²/2) for d ~ N(m, v) in one dimension: (1 + v)^(-1/2) exp(-m² / (2 (1 + v)))
    expected_k = lambda m, v: (1 + v) ** -0.5 * np.exp(-m ** 2 / (2 * (1 + v)))  # noqa: E731
    same = expected_k(0.0, 2.0) * expected_k(0.0, 2 * noise ** 2)
    other = expected_k(0.0, 2.0) * expected_k(gap, 2 * noise ** 2)
    want = 0.0
    for y in (0, 1):
        shares = [flip[(labels == y) & (groups == g)].mean() for g in (0, 1)]
        want += np.mean(labels == y) * (shares[0] - shares[1]) ** 2 * 2 * (same - other)
    assert want > 5 * H0_TOL / 3
    np.testing.assert_allclose(leaking, want, atol=H0_TOL / 3)
