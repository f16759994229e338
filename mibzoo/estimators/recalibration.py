"""How much a classifier would gain from being recalibrated per group: the drop of its
cross-entropy that a per-group affine map of its logits (optionally plus a linear function of its
inputs) gives, in one Newton step.

Used for the paper's G_ood (Sec. 6, Eq. 18), whose E ⊥ Y | Z makes the label decoder p(y | z) the
best predictor of Y in every environment: then no environment can lower its risk by rescaling or
shifting p's logits, and the gain is 0. When Z leaks E's information about Y (on Colored-MNIST: the
colour, which agrees with the label 90% of the time in one environment and 80% in the other), each
environment wants the colour's part of the logits scaled its own way, and the gain is what
I_q(E; Y | Z) = E_z KL(p(y | z, e) ‖ p(y | z)) is within that family of corrections. Unlike a
trained critic r(y | z, e) it is a closed-form function of the logits, so it cannot lag behind
the representation nor be played against.

The scale parameter links it to IRMv1 (Arjovsky et al. 2019): IRM penalizes the squared gradient of
each environment's risk along the scale of the logits; the Newton step divides it by the risk's
curvature along the same direction. The gain is the Newton decrement: a risk drop in nats, the same
whatever units the scale and shift are measured in, where IRMv1's squared gradient grows or shrinks
with them. ``step="gradient"`` keeps IRMv1's units instead: the drop of one gradient step, to first
order, ½ gᵀ g; against the pooled recalibration, the spread of the groups' gradients around the
pooled gradient.
"""

from keras import ops

from mibzoo.estimators.group_statistics import share_weighted_mean
from mibzoo.estimators.halves import group_half_means

__all__ = ["PAIRINGS", "REFERENCES", "STEPS", "paired_gain", "recalibration_gain", "recalibration_half_means"]

# How the squared mean gradient is estimated without any row's own square: within the batch
# (`recalibration_gain`: "halves", "all"), or from running means of the even and the odd halves'
# gradients over batches that the caller keeps ("running": `recalibration_half_means`,
# `paired_gain`).
PAIRINGS = ("halves", "all", "running")

# What each group's own recalibration is compared with (`recalibration_gain`'s ``relative_to``):
# no recalibration at all, or the one recalibration that is best for all groups pooled.
REFERENCES = ("identity", "pooled")

# Which step of the recalibration parameters the gain is the risk drop of (`recalibration_gain`'s
# ``step``): Newton's, ½ gᵀ H⁻¹ g, or a gradient step's, ½ gᵀ g.
STEPS = ("newton", "gradient")


def _features(logits, inputs=None):
    """``[B, K, P]``: for each class k the derivatives of the recalibrated logit
    a · l_k + b_k + w_kᵀ x along the parameters (a, b_1..b_{K-1}, w_1..w_{K-1}): (l_k, e_k, e_k ⊗ x),
    e_k the first K − 1 entries of class k's one-hot (b_K = 0 and w_K = 0 fix softmax's shift
    invariance); without ``inputs`` x, (l_k, e_k), P = K."""
    rows, classes = ops.shape(logits)[0], ops.shape(logits)[-1]
    offsets = ops.eye(classes, classes - 1, dtype=logits.dtype)  # [K, K-1]
    offsets = ops.broadcast_to(offsets[None], (rows, classes, classes - 1))
    parts = [logits[..., None], offsets]
    if inputs is not None:
        blocks = offsets[..., None] * inputs[:, None, None, :]  # [B, K, K-1, D]
        parts.append(ops.reshape(blocks, (rows, classes, (classes - 1) * ops.shape(inputs)[-1])))
    return ops.concatenate(parts, axis=-1)


def recalibration_gain(logits, labels, groups, weights=None, inputs=None, ridge=1e-4, pairs="halves",
                       relative_to="identity", step="newton"):
    """Σ_g P(g) · ½ ĝ_gᵀ (H_g + ridge · I)⁻¹ ĝ_g: the cross-entropy a per-group affine
    recalibration softmax(a_g · logits + b_g [+ W_g x]) would save, to second order around
    (a, b, W) = (1, 0, 0).

    ĝ_g and H_g are the gradient and Hessian of group g's mean cross-entropy along (a, b, W) at
    (1, 0, 0): with π = softmax(logits) and φ_k = (l_k, e_k[, e_k ⊗ x]) (`_features`),
    ĝ_g = mean_{n ∈ g} Σ_k (π_nk − y_nk) φ_nk and H_g = mean_{n ∈ g} Cov_{π_n}(φ_n). One Newton step
    from there lowers the risk by ½ ĝᵀ H⁻¹ ĝ, exactly so for a quadratic risk. The square of a
    minibatch mean is biased upwards by its variance (about K / (2 n_g) nats, the size of the
    signal on Colored-MNIST at a batch of 250), so the quadratic form is estimated without the
    square of any one row's gradient: ``pairs="halves"`` pairs the gradients of the even and the odd
    rows of each group (IRMv1's unbiased estimate, its Sec. 3.2), ``pairs="all"`` averages
    g_iᵀ H⁻¹ g_j over every pair of distinct rows i ≠ j (the U-statistic
    (SᵀH⁻¹S − Σ_i g_iᵀH⁻¹g_i) / (n(n − 1)), S = Σ_i g_i). Both are unbiased; the U-statistic has
    about half the variance of the halves' product (when the mean gradient is 0, 2 tr((H⁻¹Σ)²) / n²
    against 4 tr((H⁻¹Σ)²) / n², Σ the rows' gradient covariance), so the same batch gives a
    penalty whose gradient is about √2 times less noisy.

    Args:
      logits: ``[B, K]`` logits of the classifier (K ≥ 2 classes).
      labels: ``[B, K]`` one-hot labels.
      groups: ``[B, G]`` one-hot group (environment) of each row.
      weights: ``[B]`` 0/1 weights (e.g. 0 where the label is missing); ``None``: all 1.
      inputs: ``[B, D]`` features the recalibration may also read linearly (e.g. the classifier's
        own input z): a correction that rescales the whole logit cannot tell apart a spurious part
        of it from the rest when both move together, one linear in x can. ``None``: logits only.
      ridge: added to the Hessian's diagonal, so that a group whose logits are constant
        (no curvature along the scale) gives a finite gain.
      pairs: ``"halves"`` (even rows against odd rows) or ``"all"`` (every pair of distinct rows).
      relative_to: ``"identity"`` (the gain of each group's recalibration over none) or
        ``"pooled"``: over the one recalibration best for the kept groups pooled, i.e. the gain
        above minus the pooled gain ½ ĝᵀ H⁻¹ ĝ (ĝ, H the kept rows' mean gradient and Hessian,
        estimated with the same pairing). A classifier miscalibrated the same way in every group
        (e.g. too cautious everywhere) has a gain over the identity but none over the pooled
        recalibration: only the part that differs between groups is left, which is what the
        group tells about the label beyond the classifier (I(G; Y | logits) within the family).
        Its population value is ≥ 0: gᵀH⁻¹g is jointly convex in (g, H), so the share-weighted
        mean of the groups' forms is at least the form of their weighted means.
      step: ``"newton"`` (the gain above) or ``"gradient"``: H replaced by the identity, ½ ĝ_gᵀ ĝ_g,
        the risk drop of one gradient step ĝ_g to first order, per unit of step length². It is not in
        nats: it grows with the scale of the logits where the Newton gain does not, so it weighs a
        confident use of a spurious feature more (IRMv1's squared gradient is its scale part). With
        ``relative_to="pooled"`` it is Σ_g P(g) · ½ ‖ĝ_g − ĝ‖², the spread of the groups' gradients
        around the pooled one (what one gradient step per group saves beyond one pooled step, to
        first order), ≥ 0 in population, and 0 exactly when every group's gradient is the same.

    Returns:
      A float32 scalar, in nats with ``step="newton"``; groups with fewer than one weighted row in either half (``"all"``:
      fewer than two weighted rows) are left out, and P(g) is the weighted share of the rows of the
      groups kept.
    """
    if pairs not in ("halves", "all"):
        raise ValueError(f"recalibration_gain: pairs={pairs!r}; allowed: ['halves', 'all'] "
                         "(running means go through recalibration_half_means and paired_gain)")
    if relative_to not in REFERENCES:
        raise ValueError(f"recalibration_gain: relative_to={relative_to!r}; allowed: {list(REFERENCES)}")
    grads, hessian, membership, counts = _group_statistics(logits, labels, groups, weights, inputs, ridge, step)
    pairing = _all_pairs_gains if pairs == "all" else _halves_gains
    gains, kept = pairing(grads, hessian, membership, counts)  # [G] each
    gain = share_weighted_mean(gains, counts * kept)
    if relative_to == "identity":
        return gain
    # The kept groups as one: their rows, and the row-weighted mean of their Hessians (ridge included).
    shares = counts * kept / ops.maximum(ops.sum(counts * kept), 1.0)
    pooled_membership = ops.einsum("bg,g->b", membership, kept)[:, None]  # [B, 1]
    pooled_hessian = ops.einsum("g,gpq->pq", shares, hessian)[None]
    pooled, _ = pairing(grads, pooled_hessian, pooled_membership, ops.sum(pooled_membership, axis=0))
    return gain - pooled[0]


def recalibration_half_means(logits, labels, groups, weights=None, inputs=None, ridge=1e-4, step="newton"):
    """The statistics `recalibration_gain`'s ``pairs="halves"`` pairs, for a caller that averages
    them over batches before pairing them (`paired_gain`): per group, the mean gradient of the
    even rows and of the odd rows along the recalibration parameters, and the Hessian.

    Args:
      logits, labels, groups, weights, inputs, ridge, step: as `recalibration_gain` (``"gradient"``:
        the identity in place of each Hessian).

    Returns:
      ``(half_means, half_counts, hessian, counts)``: ``[2, G, P]`` the even rows' and the odd
      rows' mean gradient per group (0 for an empty half), ``[2, G]`` their weighted row counts,
      ``[G, P, P]`` each group's Hessian plus ``ridge`` · I, and ``[G]`` the groups' weighted
      row counts.
    """
    grads, hessian, membership, counts = _group_statistics(logits, labels, groups, weights, inputs, ridge, step)
    half_means, half_counts, _ = group_half_means(grads, membership)
    return half_means, half_counts, hessian, counts


def paired_gain(first, second, hessian, group_weights):
    """Σ_g P(g) · ½ a_gᵀ H_g⁻¹ b_g for two independent estimates a, b ``[G, P]`` of each group's mean
    gradient (unbiased for ½ μ_gᵀ H_g⁻¹ μ_g when both are), P(g) ∝ ``group_weights`` ``[G]`` (0
    leaves a group out)."""
    return share_weighted_mean(_paired_gains(first, second, hessian), group_weights)


def _paired_gains(first, second, hessian):
    """``[G]``: ½ a_gᵀ H_g⁻¹ b_g."""
    step = ops.solve(hessian, ops.cast(second, "float32")[:, :, None])[:, :, 0]  # H⁻¹ b, [G, P]
    return 0.5 * ops.sum(ops.cast(first, "float32") * step, axis=-1)


def _group_statistics(logits, labels, groups, weights, inputs, ridge, step="newton"):
    """Each row's gradient ``[B, P]`` of its cross-entropy along the recalibration parameters at
    (1, 0, 0), each group's Hessian of its mean cross-entropy plus ``ridge`` · I ``[G, P, P]`` (with
    ``step="gradient"`` the identity instead), the weighted membership ``[B, G]`` and the weighted
    counts ``[G]``."""
    if step not in STEPS:
        raise ValueError(f"recalibration_gain: step={step!r}; allowed: {list(STEPS)}")
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "float32")
    groups = ops.cast(groups, "float32")
    rows = ops.shape(logits)[0]
    weights = ops.ones((rows,), "float32") if weights is None else ops.cast(weights, "float32")
    inputs = None if inputs is None else ops.cast(inputs, "float32")
    features = _features(logits, inputs)  # [B, K, P]
    probs = ops.softmax(logits, axis=-1)
    grads = ops.einsum("bk,bkp->bp", probs - labels, features)  # [B, P]
    membership = weights[:, None] * groups  # [B, G]
    counts = ops.sum(membership, axis=0)  # [G]
    if step == "gradient":
        size = ops.shape(features)[-1]
        identity = ops.broadcast_to(ops.eye(size, dtype="float32")[None], (ops.shape(groups)[-1], size, size))
        return grads, identity, membership, counts
    means = ops.einsum("bk,bkp->bp", probs, features)
    hessians = ops.einsum("bk,bkp,bkq->bpq", probs, features, features) - means[:, :, None] * means[:, None, :]
    return grads, group_mean_hessian(hessians, membership, counts, ridge), membership, counts


def group_mean_hessian(row_hessians, membership, counts, ridge):
    """``[G, P, P]``: each group's weighted mean of the rows' ``[B, P, P]`` matrices plus ``ridge`` · I
    (``membership`` ``[B, G]`` and ``counts`` ``[G]`` as `_group_statistics` returns them)."""
    hessian = ops.einsum("bg,bpq->gpq", membership, row_hessians) / ops.maximum(counts, 1.0)[:, None, None]
    return hessian + ridge * ops.eye(ops.shape(row_hessians)[-1], dtype="float32")[None]


def _halves_gains(grads, hessian, membership, counts):
    """Per group, ½ ĝ_evenᵀ H⁻¹ ĝ_odd from the means of the even and the odd rows' gradients, and
    whether the group is kept (a weighted row in both halves)."""
    half_means, _, kept = group_half_means(grads, membership)
    return _paired_gains(half_means[0], half_means[1], hessian), kept


def _all_pairs_gains(grads, hessian, membership, counts):
    """Per group, ½ of the weighted mean of g_iᵀ H⁻¹ g_j over the ordered pairs of distinct rows, from
    the weighted sum S = Σ_i w_i g_i as (SᵀH⁻¹S − Σ_i w_i² g_iᵀ H⁻¹ g_i) / ((Σ_i w_i)² − Σ_i w_i²),
    i.e. / (n(n − 1)) for 0/1 weights, and whether the group is kept (at least two rows)."""
    inverse = ops.inv(hessian)  # [G, P, P]
    sums = ops.einsum("bg,bp->gp", membership, grads)  # [G, P]
    total = ops.einsum("gp,gpq,gq->g", sums, inverse, sums)
    own = ops.einsum("bg,bp,gpq,bq->g", ops.square(membership), grads, inverse, grads)
    pair_weight = ops.square(counts) - ops.sum(ops.square(membership), axis=0)
    gains = 0.5 * (total - own) / ops.maximum(pair_weight, 1e-12)
    return gains, ops.cast(counts > 1.5, "float32")
