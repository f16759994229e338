"""Maximum mean discrepancy (Gretton et al. 2012), a kernel two-sample divergence.

Used in the paper's fairness case study (Sec. 5, Table 3 "OURS-MMD") to estimate
and minimize a dependence between latent blocks (:func:`hsic`: the MMD between a joint
law and the product of its marginals), and as the ``C_T(q(z) || p(z))`` term of
Eq. (14) in the style of Wasserstein auto-encoders (Tolstikhin et al. 2018).
"""

from keras import ops

from mibzoo.estimators.conditional_means import label_weighted_pair_mean

__all__ = ["mmd", "hsic", "group_conditional_mmd", "unit_scale", "pairwise_squared_distances", "kernel_matrix"]

KERNELS = ("rbf", "imq")


def _flatten_2d(t):
    t = ops.cast(t, "float32")
    if len(t.shape) == 1:
        return ops.reshape(t, (-1, 1))
    if len(t.shape) > 2:
        return ops.reshape(t, (ops.shape(t)[0], -1))
    return t


def unit_scale(values):
    """``values`` divided by their batch standard deviation (root mean variance over dimensions),
    as a constant: the scale of a kernel's input, not a path for gradients, so that a penalty on
    a learned representation cannot be lowered by shrinking or growing it."""
    std = ops.sqrt(ops.mean(ops.var(values, axis=0)) + 1e-8)
    return values / ops.stop_gradient(std)


def pairwise_squared_distances(x, y):
    """``||x_i - y_j||^2`` for all pairs, via the Gram matrix, clamped at 0.

    Args:
      x: ``[m, d]`` float tensor.
      y: ``[n, d]`` float tensor.

    Returns:
      ``[m, n]`` float32 tensor.
    """
    xx = ops.sum(ops.square(x), axis=1)
    yy = ops.sum(ops.square(y), axis=1)
    d2 = xx[:, None] + yy[None, :] - 2.0 * ops.matmul(x, ops.transpose(y))
    return ops.maximum(d2, 0.0)


def kernel_matrix(x, y, kernel="rbf", scales=(1.0,)):
    """Kernel matrix ``k(x_i, y_j)``, averaged over bandwidths.

    * ``"rbf"``: ``k_s(x, y) = exp(-||x - y||^2 / (2 s^2))``.
    * ``"imq"``: ``k_s(x, y) = C_s / (C_s + ||x - y||^2)``, ``C_s = 2 d s^2``
      (inverse multiquadric, Tolstikhin et al. 2018, Sec. 4, with ``d`` the
      flattened dimension and ``s^2`` the variance scale).

    The multi-bandwidth kernel is the mean of ``k_s`` over ``scales`` (a mean of
    characteristic kernels is characteristic; ``k(x, x) = 1`` is kept).

    Args:
      x: ``[m, ...]`` samples (flattened to ``[m, d]``).
      y: ``[n, ...]`` samples, same trailing size as ``x``.
      kernel: ``"rbf"`` or ``"imq"``.
      scales: a positive float or a sequence of positive floats (bandwidths).

    Returns:
      ``[m, n]`` float32 kernel matrix.
    """
    if kernel not in KERNELS:
        raise ValueError(f"mmd: kernel got {kernel!r}, expected one of {KERNELS}")
    if isinstance(scales, (int, float)):
        scales = (scales,)
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"mmd: scales got {scales!r}, expected positive floats")
    x = _flatten_2d(x)
    y = _flatten_2d(y)
    d2 = pairwise_squared_distances(x, y)
    dim = x.shape[-1]
    if dim is None:
        dim = ops.cast(ops.shape(x)[-1], "float32")
    total = 0.0
    for s in scales:
        if kernel == "rbf":
            total = total + ops.exp(-d2 / (2.0 * s * s))
        else:
            c = 2.0 * dim * s * s
            total = total + c / (c + d2)
    return total / float(len(scales))


def mmd(x, y, kernel="rbf", scales=(1.0,)):
    """Unbiased estimate of the squared MMD between the laws of ``x`` and ``y``.

    ``MMD_u^2 = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j)
    - 2/(mn) Σ_{i,j} k(x_i, y_j)``  (Gretton et al. 2012, JMLR, Lemma 6).
    Unbiased, hence it can be slightly negative when both samples come from
    the same distribution.

    Args:
      x: ``[m, ...]`` samples from P, ``m >= 2``.
      y: ``[n, ...]`` samples from Q, ``n >= 2``, same trailing size.
      kernel: ``"rbf"`` (Gaussian) or ``"imq"`` (inverse multiquadric); see
        :func:`kernel_matrix`.
      scales: bandwidth(s) ``s``; several give a multi-bandwidth kernel (mean).

    Returns:
      Scalar float32 estimate of ``MMD^2(P, Q)``.
    """
    x = _flatten_2d(x)
    y = _flatten_2d(y)
    m = ops.cast(ops.shape(x)[0], "float32")
    n = ops.cast(ops.shape(y)[0], "float32")
    kxx = kernel_matrix(x, x, kernel, scales)
    kyy = kernel_matrix(y, y, kernel, scales)
    kxy = kernel_matrix(x, y, kernel, scales)
    sxx = ops.sum(kxx) - ops.sum(ops.diagonal(kxx))
    syy = ops.sum(kyy) - ops.sum(ops.diagonal(kyy))
    return sxx / (m * (m - 1.0)) + syy / (n * (n - 1.0)) - 2.0 * ops.mean(kxy)


def hsic(x, y, kernel="imq", scales=(1.0,)):
    """Unbiased estimate of HSIC, the squared MMD between ``P_xy`` and ``P_x ⊗ P_y``.

    With the product kernel ``k((x, y), (x', y')) = k_x(x, x') k_y(y, y')``,
    ``MMD²(P_xy, P_x P_y)`` is the Hilbert-Schmidt independence criterion (Gretton et
    al. 2005; Smola et al. 2007); it is zero iff ``x`` and ``y`` are independent
    (characteristic kernels). Every pair of the batch serves as a draw of the product
    of marginals, not one shuffle, and the estimator is unbiased (Song et al. 2012,
    Eq. 5): with ``K̃, L̃`` the kernel matrices with zeroed diagonals and ``n`` rows,

    ``HSIC_u = [tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3))``.

    Args:
      x: ``[n, ...]`` samples of the first variable, ``n >= 4``.
      y: ``[n, ...]`` paired samples of the second variable.
      kernel, scales: the kernel of each variable (see :func:`kernel_matrix`; the IMQ
        constant uses each variable's own dimension).

    Returns:
      Scalar float32 estimate (unbiased, so it can be slightly negative at independence).
    """
    x = _flatten_2d(x)
    y = _flatten_2d(y)
    n = ops.cast(ops.shape(x)[0], "float32")
    off_diagonal = 1.0 - ops.eye(ops.shape(x)[0], dtype="float32")
    k = kernel_matrix(x, x, kernel, scales) * off_diagonal
    l = kernel_matrix(y, y, kernel, scales) * off_diagonal
    trace = ops.sum(k * l)  # tr(K̃ L̃), both symmetric
    sums = ops.sum(k) * ops.sum(l) / ((n - 1.0) * (n - 2.0))
    cross = 2.0 / (n - 2.0) * ops.sum(ops.sum(k, axis=0) * ops.sum(l, axis=1))  # 1ᵀ K̃ L̃ 1
    return (trace + sums - cross) / (n * (n - 3.0))


def group_conditional_mmd(x, labels, groups, weights=None, kernel="rbf", scales=(1.0,)):
    """Σ_y P(y) · mean over pairs of groups g < h of MMD_u²(x | y, g ; x | y, h): how far the law of
    ``x`` given the label still differs between groups (0 iff x ⊥ G | Y, for a characteristic kernel).

    Each pair's MMD² is the unbiased estimate of `mmd` (Gretton et al. 2012, Lemma 6) computed with
    0/1 row weights instead of slices, so one kernel matrix over the batch serves every (label,
    group) cell and the shapes stay static under ``tf.function``: with a, b the weights of the two
    cells and K the kernel matrix with a zeroed diagonal,
    ``aᵀKa / ((Σa)² − Σa²) + bᵀKb / ((Σb)² − Σb²) − 2 aᵀK°b / (Σa Σb)`` (K° keeps the diagonal;
    two cells of one batch share no row). A (label, pair) term needs at least two weighted rows in
    both cells; labels without a usable pair are left out and P(y) is renormalized over the rest
    (`mibzoo.estimators.conditional_means.label_weighted_pair_mean`).

    Args:
      x: ``[B, D]`` samples (e.g. a representation z).
      labels: ``[B, K]`` one-hot labels (the conditioning variable).
      groups: ``[B, G]`` one-hot groups (e.g. environments), G ≥ 2.
      weights: ``[B]`` 0/1 row weights (0 where the label is missing); ``None``: all 1.
      kernel, scales: as `kernel_matrix`.

    Returns:
      Scalar float32 estimate (unbiased per term, so it can be slightly negative under x ⊥ G | Y).
    """
    x = _flatten_2d(x)
    labels = ops.cast(labels, "float32")
    groups = ops.cast(groups, "float32")
    rows = ops.shape(x)[0]
    weights = ops.ones((rows,), "float32") if weights is None else ops.cast(weights, "float32")
    k = kernel_matrix(x, x, kernel, scales)
    cells = weights[:, None, None] * labels[:, :, None] * groups[:, None, :]  # [B, K, G]
    n_labels, n_groups = ops.shape(labels)[-1], ops.shape(groups)[-1]
    flat = ops.reshape(cells, (rows, n_labels * n_groups))
    k_cells = ops.reshape(ops.matmul(k, flat), (rows, n_labels, n_groups))  # K a for every cell a
    k_off_cells = k_cells - ops.diagonal(k)[:, None, None] * cells  # the same without each row's own k(x, x)
    counts = ops.sum(cells, axis=0)  # [K, G]
    squares = ops.sum(ops.square(cells), axis=0)
    within = ops.sum(cells * k_off_cells, axis=0) / ops.maximum(ops.square(counts) - squares, 1e-12)  # [K, G]
    between = ops.einsum("bkg,bkh->kgh", cells, k_cells) / ops.maximum(counts[:, :, None] * counts[:, None, :], 1e-12)
    usable = ops.cast(counts > 1.5, "float32")  # two weighted rows at least
    return label_weighted_pair_mean(within[:, :, None] + within[:, None, :] - 2.0 * between, usable, counts)
