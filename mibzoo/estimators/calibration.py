"""How far a classifier is from calibrated within each group, estimated without bias from a minibatch.

Wald et al. (2021, "On Calibration and Out-of-Domain Generalization") show that a predictor
calibrated in every training environment is, under their assumptions, invariant: E ⊥ Y | p(y | z)
is the calibration of p(y | z) in each environment. A per-environment affine recalibration of the
logits (`mibzoo.estimators.recalibration`) tests two moments of that; a predictor that reads
Colored-MNIST's colour can pass it while its calibration curves still differ between the
environments (docs/results_ood.md, twentieth session). The squared kernel calibration error tests
the whole curve.

Widmann, Lindsten & Zachariah (2019, "Calibration tests in multi-class classification", Eq. 3 and
the unbiased estimator of Sec. 3) define for a matrix-valued kernel k(p, p') = κ(p, p') I

    SKCE = E[(e_Y − p(X))ᵀ κ(p(X), p(X')) (e_Y' − p(X'))],

the expectation over two independent draws, which is 0 for a calibrated classifier (and, for a
characteristic κ, only then). Its U-statistic over the distinct pairs of a sample is unbiased. κ is
the Laplacian kernel exp(−TV(p, p') / ν) on the total-variation distance between the two
probability vectors, ν = 0.4 as the MMCE of Kumar et al. (2018) and Wald et al.'s CLOvE use.
"""

from keras import ops

from mibzoo.estimators.group_statistics import group_pair_means

__all__ = ["kernel_calibration_error"]


def kernel_calibration_error(probabilities, labels, groups, weights=None, bandwidth=0.4):
    """(1 / G') Σ_g SKCE_g: the mean over the groups present of each group's squared kernel calibration
    error, each the U-statistic Σ_{i ≠ j in g} (y_i − p_i)ᵀ (y_j − p_j) κ(p_i, p_j) / (n_g (n_g − 1)).

    Args:
      probabilities: ``[B, K]`` the classifier's class probabilities.
      labels: ``[B, K]`` one-hot labels.
      groups: ``[B, G]`` one-hot group (environment) of each row.
      weights: ``[B]`` 0/1 weights (0 where the label is not defined, e.g. hidden); ``None``: all 1.
      bandwidth: ν of the Laplacian kernel exp(−TV(p, p') / ν), TV(p, p') = ½ Σ_k |p_k − p'_k|.

    Returns:
      A float32 scalar; groups with fewer than two weighted rows are left out, and none kept gives 0.
      Unbiased, so a minibatch estimate can be negative.
    """
    if bandwidth <= 0:
        raise ValueError(f"kernel_calibration_error: bandwidth must be positive, got {bandwidth}")
    probabilities = ops.cast(probabilities, "float32")
    residuals = ops.cast(labels, "float32") - probabilities
    distance = 0.5 * ops.sum(ops.abs(probabilities[:, None, :] - probabilities[None, :, :]), axis=-1)
    pairs = ops.exp(-distance / bandwidth) * ops.matmul(residuals, ops.transpose(residuals))  # [B, B]
    per_group, kept, _ = group_pair_means(pairs, groups, weights)
    return ops.sum(per_group) / ops.maximum(ops.sum(kept), 1.0)
