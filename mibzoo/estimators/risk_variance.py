"""The variance of a classifier's risk across groups, estimated without bias from a minibatch.

V-REx (Krueger et al. 2021, "Out-of-Distribution Generalization via Risk Extrapolation") penalizes
Var_e(R_e), the variance over the training environments of each environment's risk. A predictor
that reads a feature whose link with the label differs between environments (Colored-MNIST's
colour, which agrees with the label 90% of the time in one environment and 80% in the other) has a
lower risk where the link is stronger, so the risks differ; an invariant predictor's do not (on
Colored-MNIST both are the 25% label noise). It measures something other than IRMv1's penalty or a
per-environment recalibration of the logits, which can both vanish for a predictor that uses the
colour in a way each environment finds calibrated (Kamath et al. 2021's blind spot of IRMv1); the
risks of such a predictor can still differ. How much they differ is another matter: on
`ood_cmnist` a seed that keeps some colour ends with risks 0.001 nats apart (docs/results_ood.md,
twenty-first session).

On a minibatch, the square of each environment's mean risk is biased upwards by its variance; as
IRMv1's unbiased estimate (Arjovsky et al. 2019, Sec. 3.2), the deviations computed from the even
rows are multiplied by those from the odd rows, which is unbiased for (R_e − R̄)² since the two
halves are independent.

Near a predictor's landing that product is mostly noise: on Colored-MNIST at batch 2,500 a colour
use worth 5 points of test accuracy moves the two risks apart by about 0.01 nats, while one half's
deviation has a noise of about 0.02. `lagged_risk_variance` replaces one of the two factors by the
deviations of a reference the caller keeps across batches (a running mean of earlier batches'
risks, `mibzoo.running_mean.RunningMean`), independent of the batch, so the product stays unbiased
for Var_e(R_e) where the reference tracks the risks, and its gradient, the reference's deviations
times the batch risks' gradients, carries the reference's much smaller noise.
"""

from keras import ops

from mibzoo.estimators.halves import group_half_means, kept_group_deviations

__all__ = ["group_risks", "lagged_risk_variance", "risk_deviation_product", "risk_variance"]


def risk_variance(losses, groups, weights=None):
    """(1 / G') Σ_g (R_g − R̄)²: the variance over the groups present of their mean losses, R̄ the
    unweighted mean of the G' groups' risks, estimated as (1 / G') Σ_g (R_g^even − R̄^even)
    (R_g^odd − R̄^odd) from the means over the even and the odd rows of each group.

    For two groups it is (R_1 − R_2)² / 4 (V-REx's code takes the variance with Bessel's correction,
    (R_1 − R_2)² / 2: a factor of 2 in the weight).

    Args:
      losses: ``[B]`` each row's loss (e.g. the cross-entropy of the label).
      groups: ``[B, G]`` one-hot group (environment) of each row.
      weights: ``[B]`` 0/1 weights (0 where the loss is not defined, e.g. a hidden label);
        ``None``: all 1.

    Returns:
      A float32 scalar in squared units of the loss; groups without a weighted row in either half
      are left out, and fewer than two groups kept give 0.
    """
    losses = ops.cast(losses, "float32")
    groups = ops.cast(groups, "float32")
    weights = ops.ones_like(losses) if weights is None else ops.cast(weights, "float32")
    means, _, kept = group_half_means(losses[:, None], weights[:, None] * groups)
    risks = means[:, :, 0]  # [2, G]: the even and the odd rows' risk of each group
    groups_kept = ops.maximum(ops.sum(kept), 1.0)
    deviations = kept_group_deviations(risks, kept)
    return ops.sum(deviations[0] * deviations[1]) / groups_kept


def group_risks(losses, groups, weights=None):
    """``(risks [G], seen [G])``: each group's weighted mean loss over the whole batch (0 for a group
    without a weighted row) and 1.0 where the group has one (arguments as `risk_variance`)."""
    losses = ops.cast(losses, "float32")
    membership = ops.cast(groups, "float32")
    if weights is not None:
        membership = membership * ops.cast(weights, "float32")[:, None]
    counts = ops.sum(membership, axis=0)
    risks = ops.einsum("bg,b->g", membership, losses) / ops.maximum(counts, 1.0)
    return risks, ops.cast(counts > 0, "float32")


def lagged_risk_variance(losses, groups, reference, known, weights=None):
    """(1 / G') Σ_g (R_g − R̄)(m_g − m̄): the deviations of the batch's per-group risks R_g
    (`group_risks`) times those of a reference m_g independent of the batch (e.g. a running mean of
    earlier batches' risks), each centred on its mean over the G' groups kept (present in the batch
    and known in the reference). Unbiased for Var_g(R_g) where m equals the risks in expectation;
    its gradient is the reference's deviations times the batch risks' gradients.

    Args:
      losses, groups, weights: as `risk_variance`.
      reference: ``[G]`` each group's reference risk (taken as a constant: no gradient flows into it).
      known: ``[G]`` 1.0 where the reference of a group is defined, else 0.0.

    Returns:
      A float32 scalar; fewer than two groups kept give 0.
    """
    risks, seen = group_risks(losses, groups, weights)
    return risk_deviation_product(risks, seen, reference, known)


def risk_deviation_product(risks, seen, reference, known):
    """`lagged_risk_variance` from the batch's per-group risks and their ``seen`` flags
    (`group_risks`), for a caller that also needs the risks (e.g. to update the reference with them).

    Args:
      risks, seen: ``[G]`` as `group_risks` returns them.
      reference, known: as `lagged_risk_variance`.

    Returns:
      A float32 scalar; fewer than two groups kept give 0.
    """
    reference = ops.stop_gradient(ops.cast(reference, "float32"))
    kept = seen * ops.cast(known, "float32")
    deviations = kept_group_deviations(ops.stack([risks, reference]), kept)
    return ops.sum(deviations[0] * deviations[1]) / ops.maximum(ops.sum(kept), 1.0)
