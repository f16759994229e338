"""Fishr's penalty (Rame, Dancette & Cord, ICML 2022, "Fishr: Invariant Gradient Variances for
Out-of-distribution Generalization", Eq. 4): the distance between the environments' variances of the
per-example gradients of the risk with respect to a classifier's final layer.

IRMv1 asks the mean gradient along one direction (a rescaling of the logits) to vanish in every
environment; Fishr asks the second moments of the per-example gradients of every parameter of the
final layer to agree across environments, which on Colored-MNIST (IRM's settings) scores 69.5 on the
test environment where IRMv1 scores 65.6 (Fishr's reproduction, both with IRM's hyperparameters). For
a final dense layer ``logits = W h + b`` and the cross-entropy −log softmax(logits)[y] the
per-example gradient is closed form, (p − y) ⊗ [h, 1] (``last_layer_gradients``), so no per-example
backward pass is needed.

Fishr computes the variances on whole environments (IRM's full batches of 25,000 images); on a
minibatch the square of one estimate of a variance gap is biased upwards by the estimate's noise. As
IRMv1's unbiased penalty (Arjovsky et al. 2019, Sec. 3.2) and `risk_variance`, the deviations from
the even rows are multiplied by those from the odd rows, which is unbiased for the squared gap since
the two halves are independent (``gradient_variance_gap``).
"""

from keras import ops

from mibzoo.estimators.halves import group_half_means, kept_group_deviations

__all__ = ["GAP_PAIRINGS", "gradient_variance_gap", "last_layer_gradients"]

# How `gradient_variance_gap` squares the variances' deviations: the first is the default.
GAP_PAIRINGS = ("halves", "none")


def last_layer_gradients(residuals, features):
    """``[B, K (H + 1)]``: each row's gradient of −log softmax(W h + b)[y] with respect to the final
    layer's kernel ``W`` (``[H, K]``) and bias ``b``, (p − y) ⊗ h and p − y, flattened kernel first.

    Args:
      residuals: ``[B, K]`` softmax(logits) − one-hot(y), the gradient with respect to the logits.
      features: ``[B, H]`` the final layer's input h.
    """
    residuals = ops.cast(residuals, "float32")
    features = ops.cast(features, "float32")
    kernel = features[:, :, None] * residuals[:, None, :]  # [B, H, K], the layout of W
    batch = ops.shape(residuals)[0]
    return ops.concatenate([ops.reshape(kernel, (batch, -1)), residuals], axis=-1)


def gradient_variance_gap(gradients, groups, weights=None, pairs="halves"):
    """Σ_g ‖v_g − v̄‖²: Fishr's distance between each group's variance v_g of the per-row gradients
    (every coordinate's variance, the diagonal of the covariance, as Fishr uses) and their mean v̄
    over the groups present, each variance with Bessel's correction.

    Args:
      gradients: ``[B, P]`` each row's gradient (`last_layer_gradients`).
      groups: ``[B, G]`` one-hot group (environment) of each row.
      weights: ``[B]`` 0/1 weights (0 where the gradient is not defined, e.g. a hidden label);
        ``None``: all 1.
      pairs: ``"halves"`` (default) estimates Σ_g (v_g^even − v̄^even) · (v_g^odd − v̄^odd), unbiased
        for the squared distance of the population variances, for minibatches; ``"none"`` squares the
        deviations of the variances of all rows, Fishr's own form, biased upwards by their noise
        (negligible on whole environments, as IRM's full-batch training has).

    Returns:
      A float32 scalar; groups without two weighted rows (in each half, with ``"halves"``) are left
      out, and fewer than two groups kept give 0.
    """
    if pairs not in GAP_PAIRINGS:
        raise ValueError(f"gradient_variance_gap: pairs={pairs!r}; allowed: {list(GAP_PAIRINGS)}")
    gradients = ops.cast(gradients, "float32")
    groups = ops.cast(groups, "float32")
    weights = ops.ones((ops.shape(gradients)[0],), "float32") if weights is None else ops.cast(weights, "float32")
    membership = weights[:, None] * groups
    moments = ops.concatenate([gradients, gradients * gradients], axis=-1)
    if pairs == "halves":
        means, counts, _ = group_half_means(moments, membership)  # [2, G, 2P], [2, G]
    else:
        counts = ops.sum(membership, axis=0)[None]  # [1, G]
        means = ops.einsum("bg,bp->gp", membership, moments)[None] / ops.maximum(counts, 1.0)[:, :, None]
    size = ops.shape(gradients)[-1]
    first, second = means[:, :, :size], means[:, :, size:]
    # Bessel's correction: n / (n − 1) times the mean square about the rows' own mean.
    variances = (second - first * first) * (counts / ops.maximum(counts - 1.0, 1.0))[:, :, None]
    deviations = kept_group_deviations(variances, ops.cast(ops.all(counts > 1, axis=0), "float32"))
    return ops.sum(deviations[0] * deviations[-1])
