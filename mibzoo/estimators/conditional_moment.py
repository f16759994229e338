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

from mibzoo.estimators.group_statistics import group_pair_means, share_weighted_mean

__all__ = ["kernel_conditional_moment"]


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
    return share_weighted_mean(means, counts * kept)
