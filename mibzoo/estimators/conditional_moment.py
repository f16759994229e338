"""How far a classifier's residuals are from mean zero given its input, within each group: the kernel
conditional moment discrepancy (Muandet et al. 2020, "A kernel test for conditional moment
restrictions", Eq. 5 and its U-statistic), estimated without bias from a minibatch.

Used for the paper's G_ood (Sec. 6, Eq. 18), whose E ⊥ Y | Z makes p(y | z) the conditional law of Y
given Z in every environment. For a classifier π(z) = p(y | z) and one-hot labels y, the residual
r = y − π(z) has conditional mean E_g[r | z] = p(y | z, g) − π(z) in group g, so every group's
residuals have mean zero given z exactly when p(y | z, g) = π(z) for all g: when G ⊥ Y | Z and π is
that common conditional. With a kernel k on z the squared RKHS norm of the group's residual embedding,

    D_g = E_g[r(z)ᵀ r(z') k(z, z')] = E_g[(p_g − π)(z)ᵀ k(z, z') (p_g − π)(z')],

two independent draws z, z' of group g, is ≥ 0 and, for a characteristic k, 0 only then. It is a
kernel-smoothed form of Σ_k (p_k − π_k)², p = p(y | z, g): the χ² between p and π(z) without its
weights 1 / π_k. The share-weighted mean of that χ² is, to second order, 2 · I(G; Y | Z) when π is
the pooled conditional (KL(p ‖ π) ≈ ½ Σ_k (p_k − π_k)² / π_k).

Unlike the recalibration gain (`mibzoo.estimators.recalibration`) it is not restricted to what a
rescaling of π's logits can correct, so a use of Z that both groups find calibrated along the logit
still shows wherever the residuals follow z; and it divides by no curvature.
"""

from keras import ops

__all__ = ["group_pair_means", "kernel_conditional_moment"]


def group_pair_means(pairs, groups, weights=None):
    """Per group, the weighted mean of ``pairs[i, j]`` over its ordered pairs of distinct rows:
    (Σ_ij w_i w_j h_ij − Σ_i w_i² h_ii) / ((Σ_i w_i)² − Σ_i w_i²), i.e. / (n_g (n_g − 1)) for 0/1
    weights, the U-statistic of a symmetric pair function h.

    Args:
      pairs: ``[B, B]`` the pair function h_ij.
      groups: ``[B, G]`` one-hot group of each row.
      weights: ``[B]`` row weights (0 leaves a row out); ``None``: all 1.

    Returns:
      ``(means, kept, counts)``, each ``[G]``: the per-group mean (0 where left out), 1 where the group
      has two weighted rows or more, and the weighted row counts.
    """
    groups = ops.cast(groups, "float32")
    weights = ops.ones_like(groups[:, 0]) if weights is None else ops.cast(weights, "float32")
    members = weights[:, None] * groups  # [B, G]
    squared = members * members  # w_i² per group: what the diagonal i = j adds to the sums of pairs
    all_pairs = ops.sum(members * ops.matmul(pairs, members), axis=0)  # [G]: Σ_ij w_i w_j h_ij
    diagonal = ops.sum(squared * ops.diagonal(pairs)[:, None], axis=0)  # [G]: Σ_i w_i² h_ii
    counts = ops.sum(members, axis=0)
    pair_counts = counts * counts - ops.sum(squared, axis=0)
    kept = ops.cast(pair_counts > 0.5, "float32")
    return (all_pairs - diagonal) / ops.maximum(pair_counts, 1.0) * kept, kept, counts


def kernel_conditional_moment(probabilities, labels, kernel, groups, weights=None):
    """Σ_g P(g) D_g: the share-weighted mean over the groups of the U-statistic
    D_g = Σ_{i ≠ j in g} (y_i − π_i)ᵀ (y_j − π_j) k_ij / (n_g (n_g − 1)) (module docstring).

    Args:
      probabilities: ``[B, K]`` the classifier's class probabilities π.
      labels: ``[B, K]`` one-hot labels.
      kernel: ``[B, B]`` the kernel k(z_i, z_j) between the rows' inputs (e.g.
        `mibzoo.estimators.mmd.kernel_matrix`).
      groups: ``[B, G]`` one-hot group (environment) of each row.
      weights: ``[B]`` 0/1 weights (0 where the label is not defined, e.g. hidden); ``None``: all 1.

    Returns:
      A float32 scalar; groups with fewer than two weighted rows are left out, and P(g) is the
      weighted share of the rows of the groups kept (none kept gives 0). Unbiased, so a minibatch
      estimate can be negative.
    """
    residuals = ops.cast(labels, "float32") - ops.cast(probabilities, "float32")
    pairs = ops.cast(kernel, "float32") * ops.matmul(residuals, ops.transpose(residuals))
    means, kept, counts = group_pair_means(pairs, groups, weights)
    shares = counts * kept / ops.maximum(ops.sum(counts * kept), 1.0)
    return ops.sum(shares * means)
