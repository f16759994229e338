"""Divergence and mutual-information estimators, usable as named cost/regularizer terms.

Pure functions of tensors (``keras.ops``, float32, usable eagerly and inside
``tf.function``) plus small Keras critic networks:

* ``adversarial`` — C2 (Table 1), Jensen–Shannon between data and model through
  a discriminator: GAN discriminator / non-saturating generator losses.
* ``mmd`` — unbiased kernel MMD² (RBF, inverse multiquadric), HSIC, the MMD between a
  joint law and the product of its marginals, and the label-conditional MMD between groups.
* ``total_correlation`` — TC of the aggregate posterior: minibatch estimators
  (Chen et al. 2018) and the density-ratio discriminator (Kim & Mnih 2018).
* ``mine`` — MINE lower bound on I(X; Y) with the bias-corrected gradient.
* ``infogan`` — variational lower bounds on I(c; x) with an auxiliary Q(c | x).
* ``recalibration`` — the cross-entropy a per-group affine recalibration of a classifier's logits
  would save (G_ood's I(E; Y | Z) without a critic).
* ``risk_variance`` — the variance of a classifier's risk across groups (V-REx's penalty), from the
  batch's halves or against a reference kept across batches.
* ``gradient_variance`` — the squared distance between groups' variances of per-example gradients of a
  classifier's final layer (Fishr's penalty), from the batch's halves or on whole groups.
* ``calibration`` — the squared kernel calibration error of a classifier within each group
  (multi-environment calibration, Wald et al. 2021).
* ``conditional_moment`` — the kernel conditional moment discrepancy of a classifier's residuals
  within each group (Muandet et al. 2020): how far each group's labels are from following the
  classifier given its input (G_ood's E ⊥ Y | Z along every direction of z).
* ``conditional_means`` — the whitened (Mahalanobis) distance between groups' label-conditional
  means of a representation, paired across the batch's halves.
* ``group_statistics`` — per-group U-statistics of a pair function and the row-share-weighted mean
  over groups, shared by the calibration, conditional-moment and recalibration estimates.
* ``halves`` — per-group means over a batch's even and odd rows, the paired estimates that make the
  squared means above (and IRMv1's penalty) unbiased.
* ``critics`` — ``Discriminator`` and ``MINEStatistics`` networks.
"""

from mibzoo.estimators.adversarial import (
    discriminator_loss,
    generator_loss,
    js_divergence_estimate,
)
from mibzoo.estimators.calibration import kernel_calibration_error
from mibzoo.estimators.conditional_means import group_conditional_mean_gap
from mibzoo.estimators.conditional_moment import kernel_conditional_moment
from mibzoo.estimators.critics import Discriminator, MINEStatistics
from mibzoo.estimators.infogan import (
    categorical_code_mi_lower_bound,
    gaussian_code_mi_lower_bound,
)
from mibzoo.estimators.gradient_variance import gradient_variance_gap, last_layer_gradients
from mibzoo.estimators.mine import mine_loss, mine_lower_bound
from mibzoo.estimators.mmd import group_conditional_mmd, hsic, kernel_matrix, mmd
from mibzoo.estimators.recalibration import recalibration_gain
from mibzoo.estimators.risk_variance import lagged_risk_variance, risk_variance
from mibzoo.estimators.total_correlation import (
    aggregate_posterior_log_densities,
    density_ratio_discriminator_loss,
    group_total_correlation_mws,
    log_density_gaussian,
    permute_dims,
    tc_discriminator_estimate,
    total_correlation_mss,
    total_correlation_mws,
)

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "js_divergence_estimate",
    "mmd",
    "hsic",
    "group_conditional_mmd",
    "group_conditional_mean_gap",
    "kernel_matrix",
    "log_density_gaussian",
    "aggregate_posterior_log_densities",
    "total_correlation_mws",
    "total_correlation_mss",
    "group_total_correlation_mws",
    "permute_dims",
    "density_ratio_discriminator_loss",
    "tc_discriminator_estimate",
    "mine_lower_bound",
    "mine_loss",
    "categorical_code_mi_lower_bound",
    "gaussian_code_mi_lower_bound",
    "recalibration_gain",
    "risk_variance",
    "lagged_risk_variance",
    "kernel_calibration_error",
    "kernel_conditional_moment",
    "gradient_variance_gap",
    "last_layer_gradients",
    "Discriminator",
    "MINEStatistics",
]
